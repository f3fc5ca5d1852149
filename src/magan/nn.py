"""The four networks of MAGAN, built from integers only (they never see AnnData or names).

Defaults follow the original MAGAN code: generators are MLPs 200→100→50 with a linear output,
discriminators MLPs 800→400→200→100→50 with one logit; no normalisation layers, no noise input.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

__all__ = ["MLP", "MAGANModule", "NetworkConfig", "apply_in_blocks"]

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
    generator_widths: Sequence[int] = field(default_factory=lambda: (200, 100, 50))
    discriminator_widths: Sequence[int] = field(
        default_factory=lambda: (800, 400, 200, 100, 50)
    )
    activation: str = "relu"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["generator_widths"] = list(self.generator_widths)
        d["discriminator_widths"] = list(self.discriminator_widths)
        return d


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
        self.g12 = MLP(c.n_features1, c.generator_widths, c.n_features2, c.activation)
        self.g21 = MLP(c.n_features2, c.generator_widths, c.n_features1, c.activation)
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
