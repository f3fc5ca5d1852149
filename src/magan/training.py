"""The MAGAN training loop: one generator step, then one discriminator step, per minibatch.

Reads like a GAN training plan (scvi-tools' ``AdversarialTrainingPlan``): the generators are
stepped on adversarial + cycle + correspondence losses with the discriminators frozen; the
discriminators are then stepped on the same step's translations, detached (as CycleGAN
implementations do, rather than a second generator forward).

Losses are kept on the device and copied to the host once every ``log_every`` steps, so a GPU
step never waits for the CPU; divergence (non-finite losses) is detected at those points.

With an adversarial weight of 0 (the landmark plan's default) the discriminators take no part:
they are neither run nor stepped, and their terms are recorded as 0. Why: their gradient into
the generators is multiplied by 0, so the generators train exactly as they would with them,
and the discriminator step was a third of every step's time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from torch import nn

from magan.correspondence import CorrespondenceBatch
from magan.data import PairSampler
from magan.distributed import is_distributed, is_main_process, rank, world_size
from magan.errors import ConfigError, DataError, DivergenceError
from magan.losses import cycle_loss, discriminator_loss, generator_adversarial_loss
from magan.nn import MAGANModule, translate_both

__all__ = ["PRECISIONS", "LossWeights", "Trainer", "resolve_device"]

PRECISIONS = ("float32", "bfloat16")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` → CUDA when available, else CPU; anything else is passed to torch."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device='cuda' was asked for, but torch sees no CUDA device")
    return dev


def _frozen(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``net(x)`` with gradients to ``x`` only, none to ``net``'s weights.

    Why not ``requires_grad_(False)``: toggling it recreates the weights' gradient accumulators,
    which silently detaches DistributedDataParallel's all-reduce hooks (ranks then drift apart).
    """
    params = {name: p.detach() for name, p in net.named_parameters()}
    return torch.func.functional_call(net, params, (x,))


def module_device(module: nn.Module) -> torch.device:
    return next(module.parameters()).device



@dataclass
class LossWeights:
    """Weights of the generator's loss terms (the original code weighs all of them 1).

    ``warmup``: for a correspondence term named there, its weight rises linearly from 0 to its
    full value over that many steps (the k-th step, counting from 1, uses k / warmup of it;
    a resumed run continues the ramp from its step count), e.g. so that a plan
    computed from the generators' own translations does not lock in their first mapping.
    """

    adversarial: float = 1.0
    cycle: float = 1.0
    correspondence: dict[str, float] | None = None
    warmup: dict[str, int] | None = None

    def correspondence_weight(self, name: str, step: int) -> float:
        """The weight of term ``name`` at (0-based) step ``step``."""
        weight = (self.correspondence or {}).get(name, 1.0)
        ramp = (self.warmup or {}).get(name, 0)
        return weight * min(1.0, (step + 1) / ramp) if ramp > 0 else weight


class Trainer:
    """Owns the optimizers and the step; the estimator owns data, validation and persistence."""

    def __init__(
        self,
        module: MAGANModule,
        sampler: PairSampler,
        terms: Sequence[nn.Module] = (),
        weights: LossWeights | None = None,
        *,
        manifold_augmentation: bool = True,
        generator_lr: float = 1e-3,
        discriminator_lr: float = 1e-3,
        adam_betas: tuple[float, float] = (0.5, 0.99),
        generator_ema: float | None = None,
        precision: str = "float32",
    ) -> None:
        self.module = module
        self.sampler = sampler
        self.terms = nn.ModuleList(terms)
        self.weights = weights or LossWeights()
        self.manifold_augmentation = manifold_augmentation
        # Mixed precision: the forward passes and losses run under torch.autocast in bfloat16
        # (weights, gradients and optimizer state stay float32; bfloat16 has float32's range,
        # so no loss scaling is needed). Transport plans opt back out to float32
        # (correspondence._float32).
        if precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.precision = precision
        self._device_type = module_device(module).type  # looked up once, not every step
        # On CUDA, the fused Adam kernel updates all weights in a few launches: GPU steps here
        # are bound by kernel launches, not arithmetic (BENCHMARKS.md).
        fused = {"fused": True} if self._device_type == "cuda" else {}
        self.opt_g = torch.optim.Adam(module.generators(), lr=generator_lr, betas=adam_betas,
                                      **fused)
        self.opt_d = torch.optim.Adam(module.discriminators(), lr=discriminator_lr,
                                      betas=adam_betas, **fused)
        self.step_count = 0
        # Exponential moving average of the generators' weights: the adversarial game keeps
        # the live weights circling; their average over the last ~1/(1 - decay) steps is a
        # cheap ensemble. Used for the fitted model, never for training. The update is the
        # one of torch's AveragedModel with get_ema_multi_avg_fn (first update copies, then
        # lerp towards the live weights), with the update count kept on the host: AveragedModel
        # keeps it in a device tensor and reads it back every step, a GPU->host sync.
        self.ema_decay = generator_ema
        self._ema: list[torch.Tensor] = (
            [p.detach().clone() for p in module.generators()] if generator_ema is not None
            else [])
        self._ema_updates = 0
        # Under torch.distributed, each network is wrapped in DistributedDataParallel (which
        # broadcasts rank 0's initial weights and all-reduces gradients). The generator step
        # scores translations with the discriminators' weights detached (see _frozen), so the
        # D wrappers only ever see the discriminator step.
        self.g12, self.g21, self.d1, self.d2 = module.g12, module.g21, module.d1, module.d2
        if is_distributed():
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [module_device(module).index] if module_device(module).type == "cuda" else None
            self.g12, self.g21, self.d1, self.d2 = (
                DDP(net, device_ids=ids) for net in (module.g12, module.g21, module.d1, module.d2)
            )
        self.loss_names = [
            "generator",
            "adversarial_12",
            "adversarial_21",
            "cycle_1",
            "cycle_2",
            *[t.name for t in self.terms],
            "discriminator_1",
            "discriminator_2",
        ]
        self._records: list[np.ndarray] = []

    # ---- one step ----------------------------------------------------------------------
    def _autocast(self) -> torch.autocast:
        return torch.autocast(self._device_type, dtype=torch.bfloat16,
                              enabled=self.precision == "bfloat16")

    def step(self) -> torch.Tensor:
        """One G step then one D step; returns the loss terms as one detached device tensor."""
        x1, x2, p1, p2 = self.sampler.sample()
        with self._autocast():
            out, g_loss, parts = self._generator_loss(x1, x2, p1, p2)
        self.opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        self.opt_g.step()
        if self.ema_decay is not None:
            self._update_average()
        if self.weights.adversarial == 0:  # no game to play (module docstring)
            d1_loss = d2_loss = g_loss.new_zeros(())
        else:
            with self._autocast():
                d1_loss, d2_loss = self._discriminator_loss(x1, x2, out)
            self.opt_d.zero_grad(set_to_none=True)
            (d1_loss + d2_loss).backward()
            self.opt_d.step()

        self.step_count += 1
        # float32 whatever the precision: the history and divergence checks read these
        return torch.stack([t.float() for t in (g_loss, *parts, d1_loss, d2_loss)]).detach()

    def _generator_loss(self, x1: torch.Tensor, x2: torch.Tensor, p1: torch.Tensor | None,
                        p2: torch.Tensor | None
                        ) -> tuple[dict[str, torch.Tensor], torch.Tensor, list[torch.Tensor]]:
        """Translations, the generators' total loss, and its terms (adversarial, cycle,
        correspondence) in ``loss_names`` order."""
        m, w = self.module, self.weights
        out = translate_both(self.g12, self.g21, x1, x2)
        if w.adversarial == 0:  # the discriminators take no part (module docstring)
            adv12 = adv21 = out["x12"].new_zeros(())
        else:
            adv12 = generator_adversarial_loss(_frozen(m.d2, out["x12"]))
            adv21 = generator_adversarial_loss(_frozen(m.d1, out["x21"]))
        cyc1 = cycle_loss(x1, out["x121"])
        cyc2 = cycle_loss(x2, out["x212"])
        batch = CorrespondenceBatch(x1, x2, out["x12"], out["x21"], p1, p2,
                                    self.step_count)
        corr = [term(batch, m) for term in self.terms]
        g_loss = w.adversarial * (adv12 + adv21) + w.cycle * (cyc1 + cyc2)
        for term, value in zip(self.terms, corr):
            g_loss = g_loss + w.correspondence_weight(term.name, self.step_count) * value
        return out, g_loss, [adv12, adv21, cyc1, cyc2, *corr]

    def _discriminator_loss(self, x1: torch.Tensor, x2: torch.Tensor,
                            out: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Both discriminators' losses on this step's (detached) translations."""
        # One forward per discriminator over [real, fake, reconstructed], then split.
        b1, b2, aug = len(x1), len(x2), self.manifold_augmentation
        parts1 = [x1, out["x21"].detach()] + ([out["x121"].detach()] if aug else [])
        parts2 = [x2, out["x12"].detach()] + ([out["x212"].detach()] if aug else [])
        logits1 = self.d1(torch.cat(parts1))  # rows: [b1 real | b2 fake | b1 reconstructed]
        logits2 = self.d2(torch.cat(parts2))  # rows: [b2 real | b1 fake | b2 reconstructed]
        d1_loss = discriminator_loss(
            logits1[:b1], logits1[b1:b1 + b2], logits1[b1 + b2:] if aug else None
        )
        d2_loss = discriminator_loss(
            logits2[:b2], logits2[b2:b2 + b1], logits2[b2 + b1:] if aug else None
        )
        return d1_loss, d2_loss

    # ---- the loop ----------------------------------------------------------------------
    def run(
        self,
        n_steps: int,
        *,
        log_every: int = 50,
        progress: bool = True,
        callback: Callable[[Trainer], None] | None = None,
    ) -> pd.DataFrame:
        """Train until ``step_count == n_steps``; returns the history of every step's losses.

        ``callback(trainer)`` runs at each host sync (every ``log_every`` steps), e.g. to write
        a checkpoint.
        """
        from tqdm.auto import tqdm

        self.module.train()
        # Denormal floats appear as GAN weights and activations shrink and make CPU matmuls up
        # to 7x slower (measured: 1.8 s vs 0.03 s per step with the paper's networks); flushing
        # them to zero changes no result that matters. Restored when the run ends.
        flushed = torch.set_flush_denormal(True)
        pending: list[torch.Tensor] = []
        bar = tqdm(total=n_steps, initial=self.step_count,
                   disable=not progress or not is_main_process(),
                   desc="magan", unit="step", dynamic_ncols=True)
        try:
            while self.step_count < n_steps:
                pending.append(self.step())
                if len(pending) >= log_every or self.step_count >= n_steps:
                    block = torch.stack(pending)
                    if is_distributed():  # history = losses averaged over ranks
                        dist.all_reduce(block)
                        block /= world_size()
                    block = block.cpu().numpy()
                    pending.clear()
                    self._flush(block)
                    bar.update(len(block))
                    last = block[-1]
                    bar.set_postfix(
                        {k: f"{v:.3g}" for k, v in zip(self.loss_names, last)
                         if k in {"generator", "cycle_1", "discriminator_1", "discriminator_2"}
                         or k in {t.name for t in self.terms}},
                        refresh=False,
                    )
                    if callback is not None:
                        callback(self)
        finally:
            bar.close()
            if flushed:
                torch.set_flush_denormal(False)
        self.module.eval()
        return self.history()

    def _flush(self, block: np.ndarray) -> None:
        if not np.isfinite(block).all():
            row = int(np.argwhere(~np.isfinite(block))[0][0])
            bad = [c for c in np.flatnonzero(~np.isfinite(block[row]))]
            # Name the term that broke, not the total it feeds ("generator"), when possible.
            col = next((c for c in bad if self.loss_names[c] != "generator"), bad[0])
            step = self.step_count - len(block) + row + 1
            raise DivergenceError(
                f"training diverged: loss {self.loss_names[col]!r} became non-finite at step "
                f"{step}; lower the learning rates or check the input scaling"
            )
        self._records.append(block)

    def history(self) -> pd.DataFrame:
        """Every step's loss terms, one row per step (index = step number, from 1)."""
        if not self._records:
            return pd.DataFrame(columns=self.loss_names, dtype=np.float32)
        data = np.concatenate(self._records)
        return pd.DataFrame(data, columns=self.loss_names,
                            index=pd.RangeIndex(1, len(data) + 1, name="step"))

    def _update_average(self) -> None:
        live = [p.detach() for p in self.module.generators()]
        with torch.no_grad():
            if self._ema_updates == 0:
                for avg, p in zip(self._ema, live, strict=True):
                    avg.copy_(p)
            else:
                torch._foreach_lerp_(self._ema, live, 1.0 - self.ema_decay)
        self._ema_updates += 1

    def use_average(self) -> None:
        """Copy the averaged generator weights into the module (end of training)."""
        if self.ema_decay is None or self._ema_updates == 0:
            return
        with torch.no_grad():
            for avg, p in zip(self._ema, self.module.generators(), strict=True):
                p.copy_(avg)

    # ---- checkpoints ---------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs to continue exactly: weights, optimizers, RNG, history."""
        n = len(self.loss_names)
        hist = np.concatenate(self._records) if self._records else np.zeros((0, n))
        return {
            "module": self.module.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "step": self.step_count,
            "sampler_rng": self._gather_rng_states(),
            "history": torch.as_tensor(hist, dtype=torch.float32),
            **({"ema": {"weights": [t.clone() for t in self._ema],
                        "updates": self._ema_updates}} if self.ema_decay is not None else {}),
        }

    def _gather_rng_states(self) -> torch.Tensor:
        """This rank's sampler state, or under torch.distributed every rank's, stacked."""
        state = self.sampler.generator.get_state()
        if not is_distributed():
            return state
        backend_device = module_device(self.module) if dist.get_backend() == "nccl" else "cpu"
        local = state.to(backend_device)
        gathered = [torch.empty_like(local) for _ in range(world_size())]
        dist.all_gather(gathered, local)
        return torch.stack([g.cpu() for g in gathered])

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["module"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.step_count = int(state["step"])
        if self.ema_decay is not None:
            if "ema" not in state:
                raise DataError("checkpoint has no generator average; resume with the same "
                                "generator_ema setting")
            with torch.no_grad():
                for avg, saved in zip(self._ema, state["ema"]["weights"], strict=True):
                    avg.copy_(saved)
            self._ema_updates = int(state["ema"]["updates"])
        rng = state["sampler_rng"]
        if rng.ndim == 2:  # one row per rank, written by a distributed run
            if len(rng) != world_size():
                raise DataError(f"checkpoint was written by {len(rng)} ranks, this run has "
                                f"{world_size()}; resume with the same number of processes")
            rng = rng[rank()]
        self.sampler.generator.set_state(rng.cpu().contiguous())
        hist = state["history"].numpy()
        self._records = [hist] if len(hist) else []
