"""The four networks of MAGAN, built from integers only (they never see AnnData or names).

The widths are a :class:`~magan.settings.Networks` setting: magan's default G 128-64 and
D 256-128, or the original code's G 200-100-50 and D 800-400-200-100-50 (``Networks.paper()``).
Generators have a linear output, discriminators one logit; no normalisation layers, no noise
input.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from magan.settings import Networks

__all__ = ["MLP", "Generator", "MAGANModule", "NetworkConfig", "SharedSkip", "apply_in_blocks"]

# In place: each activation follows a Linear whose output nothing else reads, so overwriting
# it saves an allocation and a memory pass per layer (autograd supports all three in place).
# With apply_in_blocks, G12 inference went from 1.48 M to 2.75 M cells/s on one CPU thread
# (BENCHMARKS.md, "Idle re-measure, and the transform made faster"); training steps unchanged.
_ACTIVATIONS = {"relu": lambda: nn.ReLU(inplace=True),
                "leaky_relu": lambda: nn.LeakyReLU(0.2, inplace=True),
                "elu": lambda: nn.ELU(inplace=True)}


@dataclass
class NetworkConfig:
    """Everything needed to rebuild the networks: stored in a saved model's config."""

    n_features1: int
    n_features2: int
    generator_widths: Sequence[int] = field(default_factory=lambda: Networks().generator)
    discriminator_widths: Sequence[int] = field(
        default_factory=lambda: Networks().discriminator)
    activation: str = "relu"
    # Shared features the generators pass through (see Generator); None: plain MLPs.
    skip12: dict | None = None
    skip21: dict | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["generator_widths"] = list(self.generator_widths)
        d["discriminator_widths"] = list(self.discriminator_widths)
        return d


@dataclass
class SharedSkip:
    """Where a generator copies its input: output column ``outputs[k]`` starts as
    ``scale[k] * x[:, inputs[k]] + shift[k]`` (an affine map between the two domains'
    standardised units, so that the copy is "the same value" in the user's units)."""

    inputs: Sequence[int]
    outputs: Sequence[int]
    scale: Sequence[float]
    shift: Sequence[float]

    def to_dict(self) -> dict:
        return {k: [float(v) if k in ("scale", "shift") else int(v) for v in vals]
                for k, vals in asdict(self).items()}


class MLP(nn.Sequential):
    """Linear layers with an activation between them and a linear output layer."""

    def __init__(self, n_in: int, widths: Sequence[int], n_out: int, activation: str) -> None:
        if activation not in _ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}"
            )
        layers: list[nn.Module] = []
        prev = n_in
        for width in widths:
            layers += [nn.Linear(prev, int(width)), _ACTIVATIONS[activation]()]
            prev = int(width)
        layers.append(nn.Linear(prev, n_out))
        super().__init__(*layers)


class Generator(MLP):
    """An MLP that, given a :class:`SharedSkip`, adds the shared input features to its output,
    with the last layer's rows for those outputs starting at zero: on the shared features the
    untrained generator is "doing nothing" (each copied) and training only learns the departure
    from it. The unshared outputs start as a plain MLP's: zeroing them too (a constant output)
    collapsed them on the paper's Gaussians (translated spread 0.004 against 0.10 real).

    Why: a bottleneck MLP (128-64) cannot represent the identity on hundreds of shared genes,
    so a translation of two batches of the same panel lost the within-population detail that
    doing nothing keeps (an unseen scRNA batch pair: label transfer 0.34 after alignment, 0.73
    doing nothing). The skip is fixed (buffers, not weights): with it, the residual only has
    to learn the batch effect and the unshared features. Without a skip it is the plain MLP,
    unchanged (same weights from the same seed).
    """

    def __init__(self, n_in: int, widths: Sequence[int], n_out: int, activation: str,
                 skip: SharedSkip | None = None) -> None:
        super().__init__(n_in, widths, n_out, activation)
        self.has_skip = skip is not None and len(skip.inputs) > 0
        if not self.has_skip:
            return
        if max(skip.inputs) >= n_in or max(skip.outputs) >= n_out:
            raise ValueError("SharedSkip indices outside the generator's input/output")
        self.register_buffer("skip_inputs", torch.as_tensor(list(skip.inputs), dtype=torch.long))
        self.register_buffer("skip_outputs",
                             torch.as_tensor(list(skip.outputs), dtype=torch.long))
        self.register_buffer("skip_scale", torch.as_tensor(list(skip.scale), dtype=torch.float32))
        self.register_buffer("skip_shift", torch.as_tensor(list(skip.shift), dtype=torch.float32))
        # How much of the learnt departure the shared outputs keep (1; 0 = doing nothing on
        # them): set after training when the departure does not beat doing nothing.
        self.register_buffer("residual_scale", torch.ones(n_out))
        last = self[-1]
        with torch.no_grad():  # shared outputs start as the copy alone; unshared as an MLP's
            last.weight[self.skip_outputs] = 0.0
            last.bias[self.skip_outputs] = 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (b, n_in) -> (b, n_out)
        y = super().forward(x)
        if not self.has_skip:
            return y
        y = y * self.residual_scale.to(y.dtype)
        copied = x[:, self.skip_inputs] * self.skip_scale + self.skip_shift
        return y.index_add(1, self.skip_outputs, copied.to(y.dtype))


    def scale_shared_residual(self, factor: float) -> None:
        """Keep ``factor`` of the learnt departure on the shared outputs (1 = all of it, 0 =
        the shared inputs as they are); the unshared outputs are untouched."""
        if self.has_skip:
            self.residual_scale[self.skip_outputs] = float(factor)


def _skip(d: dict | None) -> SharedSkip | None:
    return None if d is None else SharedSkip(**d)


def apply_in_blocks(net: nn.Module, z: torch.Tensor, block: int = 8192) -> torch.Tensor:
    """``net(z)`` computed ``block`` rows at a time (inference only).

    On a CPU, the hidden activations of 8,192 cells (4 MB at width 128) stay in cache while
    those of a 65,536-cell chunk do not: blocks made G12 1.6-3x faster per cell (BENCHMARKS.md).
    """
    if len(z) <= block:
        return net(z)
    first = net(z[:block])
    out = first.new_empty((len(z), first.shape[1]))
    out[:block] = first
    for start in range(block, len(z), block):
        out[start:start + block] = net(z[start:start + block])
    return out


class MAGANModule(nn.Module):
    """G12: X1→X2, G21: X2→X1, D1 scores X1 samples, D2 scores X2 samples (logits)."""

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.g12 = Generator(c.n_features1, c.generator_widths, c.n_features2, c.activation,
                             _skip(c.skip12))
        self.g21 = Generator(c.n_features2, c.generator_widths, c.n_features1, c.activation,
                             _skip(c.skip21))
        self.d1 = MLP(c.n_features1, c.discriminator_widths, 1, c.activation)
        self.d2 = MLP(c.n_features2, c.discriminator_widths, 1, c.activation)

    def generators(self) -> list[nn.Parameter]:
        return [*self.g12.parameters(), *self.g21.parameters()]

    def discriminators(self) -> list[nn.Parameter]:
        return [*self.d1.parameters(), *self.d2.parameters()]

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> dict[str, torch.Tensor]:
        """One pass of both generators and both cycles; shapes (b1, d1) and (b2, d2)."""
        return translate_both(self.g12, self.g21, x1, x2)


def translate_both(
    g12: nn.Module, g21: nn.Module, x1: torch.Tensor, x2: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Both translations and both cycle reconstructions. Takes the generators as arguments so
    the trainer can pass them wrapped in DistributedDataParallel."""
    x12 = g12(x1)  # (b1, d2): x1 translated into domain 2
    x21 = g21(x2)  # (b2, d1)
    return {"x12": x12, "x21": x21, "x121": g21(x12), "x212": g12(x21)}
