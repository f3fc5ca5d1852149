"""Per-domain transforms with exact inverses, stored in the model so new cells get the same.

Every transform follows one small protocol: ``fit(X)``, ``transform(X)``, ``inverse_transform(X)``
and ``get_state()``; :func:`transform_from_state` rebuilds one from its JSON-able state, which is
how a saved model reloads its preprocessing without pickle.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from magan.errors import ConfigError, ModelFileError

__all__ = ["Standardizer", "Transform", "transform_from_state"]

_REGISTRY: dict[str, type[Transform]] = {}


class Transform:
    """Base class; subclasses register themselves by ``kind`` for :func:`transform_from_state`."""

    kind: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.kind:
            _REGISTRY[cls.kind] = cls

    def fit(self, X: np.ndarray) -> Transform:
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def inverse_transform(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def fit_transform(self, X: np.ndarray) -> np.ndarray:
        return self.fit(X).transform(X)

    def get_state(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Transform:
        raise NotImplementedError


class Standardizer(Transform):
    """Centre each feature and divide by its standard deviation.

    Why: the networks and the loss weights assume features of unit scale, whatever units the user
    works in. A feature whose spread is below ``min_scale`` is divided by ``min_scale`` instead,
    so a constant column stays finite (it is reported by input validation, not silently dropped).
    """

    kind = "standardize"

    def __init__(self, min_scale: float = 1e-6) -> None:
        if not min_scale > 0:
            raise ConfigError(f"min_scale must be > 0. Got {min_scale!r} instead.")
        self.min_scale = float(min_scale)
        self.mean_: np.ndarray | None = None
        self.scale_: np.ndarray | None = None

    def fit(self, X: np.ndarray) -> Standardizer:
        X = np.asarray(X, dtype=np.float64)
        self.mean_ = X.mean(axis=0)
        self.scale_ = np.maximum(X.std(axis=0), self.min_scale)
        return self

    def _check(self) -> tuple[np.ndarray, np.ndarray]:
        if self.mean_ is None or self.scale_ is None:
            raise ConfigError("Standardizer is not fitted; call fit first.")
        return self.mean_, self.scale_

    def transform(self, X: np.ndarray) -> np.ndarray:
        mean, scale = self._check()
        return ((np.asarray(X, dtype=np.float64) - mean) / scale).astype(np.float32)

    def inverse_transform(self, X: np.ndarray) -> np.ndarray:
        mean, scale = self._check()
        return (np.asarray(X, dtype=np.float64) * scale + mean).astype(np.float32)

    def get_state(self) -> dict[str, Any]:
        mean, scale = self._check()
        return {
            "kind": self.kind,
            "min_scale": self.min_scale,
            "mean": mean.tolist(),
            "scale": scale.tolist(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Standardizer:
        obj = cls(min_scale=state.get("min_scale", 1e-6))
        obj.mean_ = np.asarray(state["mean"], dtype=np.float64)
        obj.scale_ = np.asarray(state["scale"], dtype=np.float64)
        if obj.mean_.shape != obj.scale_.shape or obj.mean_.ndim != 1:
            raise ModelFileError("standardize state has mismatched mean/scale shapes")
        return obj


def transform_from_state(state: dict[str, Any]) -> Transform:
    """Rebuild a fitted transform from :meth:`Transform.get_state` output."""
    kind = state.get("kind") if isinstance(state, dict) else None
    if kind not in _REGISTRY:
        raise ModelFileError(
            f"unknown preprocessing step {kind!r}; known: {sorted(_REGISTRY)}"
        )
    return _REGISTRY[kind].from_state(state)
