"""Resumable training checkpoints, written atomically.

A checkpoint holds the trainer's whole state (weights, both optimizers, the sampler's random
state, the step and the loss history), so a run killed at any moment and resumed from its last
checkpoint ends with the same weights as a run never interrupted. It also holds a fingerprint of
the data and parameters: resuming a different run is refused instead of silently mixing two.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from magan.distributed import is_main_process
from magan.errors import DivergenceError, ModelFileError

__all__ = ["Checkpointer"]

_FILE = "checkpoint.pt"


class Checkpointer:
    """Callback for ``Trainer.run``: saves every ``every`` steps into ``directory``."""

    def __init__(
        self, directory: str | os.PathLike, every: int = 1000, fingerprint: str = ""
    ) -> None:
        self.directory = Path(directory)
        self.every = max(1, int(every))
        self.fingerprint = fingerprint
        self._last_saved = 0  # first save at step `every`, not at the first sync

    @property
    def path(self) -> Path:
        return self.directory / _FILE

    def __call__(self, trainer) -> None:
        if trainer.step_count // self.every > self._last_saved // self.every:
            self.save(trainer)

    def save(self, trainer) -> None:
        """Write the trainer's state; refuses non-finite weights so the last good one survives."""
        state = trainer.state_dict()  # collective under torch.distributed: every rank calls it
        if not all(torch.isfinite(p).all() for p in trainer.module.parameters()):
            raise DivergenceError(
                f"training diverged: weights became non-finite by step {trainer.step_count}; "
                f"the last good checkpoint in {self.directory} is kept. Lower the learning "
                "rates or check the input scaling"
            )
        if not is_main_process():  # only rank 0 writes
            self._last_saved = trainer.step_count
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        state["fingerprint"] = self.fingerprint
        fd, tmp = tempfile.mkstemp(prefix=".checkpoint.", dir=self.directory)
        os.close(fd)
        try:
            torch.save(state, tmp)
            os.replace(tmp, self.path)  # atomic on POSIX: readers see old or new, never half
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        self._last_saved = trainer.step_count

    def restore(self, trainer) -> bool:
        """Load the checkpoint into ``trainer``; False (and nothing changed) if there is none."""
        for stale in self.directory.glob(".checkpoint.*"):  # left by a kill during a save
            stale.unlink(missing_ok=True)
        if not self.path.is_file():
            return False
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as exc:  # truncated or tampered file; pickled objects are refused
            raise ModelFileError(f"checkpoint {self.path} cannot be read: {exc}") from exc
        if not isinstance(state, dict) or state.get("fingerprint") != self.fingerprint:
            raise ModelFileError(
                f"checkpoint {self.path} belongs to a run with other data or parameters; "
                "use a fresh checkpoint directory or the original inputs"
            )
        device = trainer.sampler.generator.device
        try:
            trainer.load_state_dict(state)
        except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as exc:
            raise ModelFileError(f"checkpoint {self.path} is damaged: {type(exc).__name__}: "
                                 f"{exc}") from exc
        if device.type != "cpu":
            trainer.module.to(device)
        self._last_saved = trainer.step_count
        return True
