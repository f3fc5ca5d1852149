"""Per-domain transforms with exact inverses, stored in the model so new cells get the same.

Every transform follows one small protocol: ``fit(X)``, ``transform(X)``, ``inverse_transform(X)``
and ``get_state()``; :func:`transform_from_state` rebuilds one from its JSON-able state, which is
how a saved model reloads its preprocessing without pickle.

Cytometry and count transforms (:class:`Arcsinh`, :class:`Log1p`, :class:`NormalizeTotal`) and
:class:`Pipeline` follow the same protocol. :func:`match_markers` pairs the marker names of two
panels, forgiving spelling but never guessing.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from magan.errors import ConfigError, DataError, ModelFileError

__all__ = [
    "BUILTIN_ALIASES",
    "Arcsinh",
    "ChannelTransform",
    "Log1p",
    "MarkerMatch",
    "NormalizeTotal",
    "Pipeline",
    "Standardizer",
    "Transform",
    "marker_key",
    "match_markers",
    "transform_from_state",
]

_REGISTRY: dict[str, type[Transform]] = {}


class Transform:
    """Base class; subclasses register themselves by ``kind`` for :func:`transform_from_state`."""

    kind: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "kind" in cls.__dict__ and cls.kind:  # subclasses that reuse a kind do not replace it
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
    """Centre each feature and divide by its standard deviation (or by one common scale).

    Why: the networks and the loss weights assume features of unit scale, whatever units the user
    works in. A feature whose spread is below ``min_scale`` is divided by ``min_scale`` instead,
    so a constant column stays finite (it is reported by input validation, not silently dropped).

    ``per_feature=False`` divides every feature by the same number, the root mean square of the
    features' standard deviations (so the average feature still has unit variance): the
    *relative* spreads are kept (constant features still get ``min_scale``). Right for
    embeddings (PCA components), where scaling each component to unit variance would blow its
    low-variance, mostly-noise tail up to the weight of the leading components.
    """

    kind = "standardize"

    def __init__(self, min_scale: float = 1e-6, per_feature: bool = True) -> None:
        if not min_scale > 0:
            raise ConfigError(f"min_scale must be > 0. Got {min_scale!r} instead.")
        self.min_scale = float(min_scale)
        self.per_feature = bool(per_feature)
        self.mean_: np.ndarray | None = None
        self.scale_: np.ndarray | None = None

    def fit(self, X: np.ndarray) -> Standardizer:
        X = np.asarray(X, dtype=np.float64)
        return self.set_moments(X.mean(axis=0), X.std(axis=0))

    def set_moments(self, mean: np.ndarray, std: np.ndarray) -> Standardizer:
        """Fit from each feature's mean and standard deviation (e.g. merged over chunks)."""
        std = np.asarray(std, dtype=np.float64)
        if not self.per_feature:
            # A constant feature keeps min_scale, as per feature: whatever a generator outputs
            # for it then comes back at its constant value.
            common = np.sqrt(np.mean(std ** 2)) if std.size else 1.0
            std = np.where(std < self.min_scale, std, common)
        self.mean_ = np.asarray(mean, dtype=np.float64)
        self.scale_ = np.maximum(std, self.min_scale)
        return self

    def constant_features(self) -> np.ndarray:
        """Which features were constant in the data it was fit on (scale ``min_scale``)."""
        return np.asarray(self._check()[1]) <= self.min_scale

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
            "per_feature": self.per_feature,
            "mean": mean.tolist(),
            "scale": scale.tolist(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Standardizer:
        obj = cls(min_scale=state.get("min_scale", 1e-6),
                  per_feature=state.get("per_feature", True))
        obj.mean_ = np.asarray(state["mean"], dtype=np.float64)
        obj.scale_ = np.asarray(state["scale"], dtype=np.float64)
        if obj.mean_.shape != obj.scale_.shape or obj.mean_.ndim != 1:
            raise ModelFileError("standardize state has mismatched mean/scale shapes")
        return obj


def informative_pairs(pairs: Sequence[tuple[int, int]], scaler1: Standardizer,
                      scaler2: Standardizer) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """``(kept, dropped)``: the shared pairs whose feature varies in both domains, and those
    constant in either. Why: such a feature's standardiser scale is ``min_scale`` (1e-6), so
    "the same value" in that domain's units is a millionfold copy (a gene with no counts in
    one scRNA batch). The fit's shared-feature loss and pass-through, and the self-diagnosis'
    "doing nothing", all leave them out through this one rule."""
    flat1, flat2 = scaler1.constant_features(), scaler2.constant_features()
    kept: list[tuple[int, int]] = []
    dropped: list[tuple[int, int]] = []
    for i, j in pairs:
        (dropped if flat1[i] or flat2[j] else kept).append((int(i), int(j)))
    return kept, dropped


def transform_from_state(state: dict[str, Any]) -> Transform:
    """Rebuild a fitted transform from :meth:`Transform.get_state` output."""
    kind = state.get("kind") if isinstance(state, dict) else None
    if kind not in _REGISTRY:
        raise ModelFileError(
            f"unknown preprocessing step {kind!r}; known: {sorted(_REGISTRY)}"
        )
    return _REGISTRY[kind].from_state(state)


def _as_2d(X: np.ndarray, who: str) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise DataError(f"{who} expects a 2-D array (cells × features); got shape {X.shape}")
    return X


class Arcsinh(Transform):
    """``y = arcsinh(x / cofactor)``, inverse ``cofactor * sinh(y)``.

    Why: cytometry intensities are roughly linear near zero (noise, negative values after
    background subtraction) and logarithmic above the cofactor; arcsinh treats both without the
    clipping a log needs. Use cofactor 5 for mass cytometry (CyTOF) and 150 for fluorescence flow
    cytometry. ``cofactor`` may also be one value per feature. Stateless: ``fit`` only checks the
    feature count against a per-feature cofactor.
    """

    kind = "arcsinh"

    def __init__(self, cofactor: float | Sequence[float] | np.ndarray = 5.0) -> None:
        self.cofactor = cofactor

    def _cofactor(self, n_features: int | None = None) -> np.ndarray:
        c = np.asarray(self.cofactor, dtype=np.float64)
        if c.ndim > 1 or c.size == 0 or not np.all(np.isfinite(c)) or not np.all(c > 0):
            raise ConfigError(
                "The 'cofactor' parameter of Arcsinh must be a positive number or a 1-D array of "
                f"them. Got {self.cofactor!r} instead."
            )
        if c.ndim == 1 and n_features is not None and c.size != n_features:
            raise DataError(f"X has {n_features} features, but Arcsinh has {c.size} cofactors")
        return c

    def fit(self, X: np.ndarray) -> Arcsinh:
        self._cofactor(_as_2d(X, "Arcsinh").shape[1])
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        X = _as_2d(X, "Arcsinh")
        return np.arcsinh(X / self._cofactor(X.shape[1])).astype(np.float32)

    def inverse_transform(self, X: np.ndarray) -> np.ndarray:
        X = _as_2d(X, "Arcsinh")
        return (self._cofactor(X.shape[1]) * np.sinh(X)).astype(np.float32)

    def get_state(self) -> dict[str, Any]:
        c = self._cofactor()
        return {"kind": self.kind, "cofactor": c.tolist() if c.ndim else float(c)}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Arcsinh:
        obj = cls(cofactor=state["cofactor"])
        try:
            obj._cofactor()
        except ConfigError as exc:
            raise ModelFileError(f"arcsinh state is invalid: {exc}") from exc
        return obj


class ChannelTransform(Transform):
    """Per channel, ``arcsinh(x / scale)`` or the linear ``x / scale``; exact inverse.

    Why: a cytometry file mixes fluorescence or mass channels, which need arcsinh (a cofactor
    per instrument), with scatter, which is linear in cell size and granularity and which
    arcsinh would squash. One transform per domain keeps the model's state a single step.
    ``kinds`` holds "arcsinh" or "linear" per channel, ``scales`` the cofactor or divisor.
    """

    kind = "channels"
    KINDS = ("arcsinh", "linear")

    def __init__(self, kinds: Sequence[str], scales: Sequence[float] | np.ndarray) -> None:
        self.kinds = list(kinds)
        self.scales = np.asarray(scales, dtype=np.float64)

    def _check(self, n_features: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        bad = sorted({k for k in self.kinds if k not in self.KINDS})
        if bad:
            raise ConfigError(f"ChannelTransform kinds must be 'arcsinh' or 'linear'; got {bad}")
        s = self.scales
        if s.shape != (len(self.kinds),) or not (np.isfinite(s).all() and (s > 0).all()):
            raise ConfigError("ChannelTransform needs one positive finite scale per channel; "
                              f"got {len(self.kinds)} kinds and scales {s.tolist()}")
        if n_features is not None and n_features != len(self.kinds):
            raise DataError(f"X has {n_features} features, but this ChannelTransform has "
                            f"{len(self.kinds)} channels")
        return np.array([k == "arcsinh" for k in self.kinds]), s

    def fit(self, X: np.ndarray) -> ChannelTransform:
        self._check(_as_2d(X, "ChannelTransform").shape[1])
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        X = _as_2d(X, "ChannelTransform")
        asinh, s = self._check(X.shape[1])
        Y = X / s
        Y[:, asinh] = np.arcsinh(Y[:, asinh])
        return Y.astype(np.float32)

    def inverse_transform(self, X: np.ndarray) -> np.ndarray:
        Y = _as_2d(X, "ChannelTransform").copy()
        asinh, s = self._check(Y.shape[1])
        Y[:, asinh] = np.sinh(Y[:, asinh])
        return (Y * s).astype(np.float32)

    def get_state(self) -> dict[str, Any]:
        self._check()
        return {"kind": self.kind, "kinds": list(self.kinds), "scales": self.scales.tolist()}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ChannelTransform:
        obj = cls(state.get("kinds", []), state.get("scales", []))
        try:
            obj._check()
        except ConfigError as exc:
            raise ModelFileError(f"channels state is invalid: {exc}") from exc
        return obj


class Log1p(Transform):
    """``y = log(1 + x)``, inverse ``expm1(y)``: the usual variance-taming step for counts.

    Values at or below -1 have no logarithm and raise :class:`DataError` rather than NaN.
    """

    kind = "log1p"

    def transform(self, X: np.ndarray) -> np.ndarray:
        X = _as_2d(X, "Log1p")
        if (X <= -1).any():
            cols = np.flatnonzero((X <= -1).any(axis=0))[:10].tolist()
            raise DataError(
                f"Log1p is undefined for values <= -1; feature columns {cols} have them "
                "(counts should be >= 0; is this data already transformed?)"
            )
        return np.log1p(X).astype(np.float32)

    def inverse_transform(self, X: np.ndarray) -> np.ndarray:
        return np.expm1(_as_2d(X, "Log1p")).astype(np.float32)

    def get_state(self) -> dict[str, Any]:
        return {"kind": self.kind}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Log1p:
        return cls()


class NormalizeTotal(Transform):
    """Scale each cell so its features sum to ``target_sum`` (library-size normalisation).

    ``target_sum=None`` learns the median total of the cells seen by ``fit``. Cells whose total
    is 0 stay 0. The inverse needs each cell's original total, which a generated or translated
    cell does not have, so ``inverse_transform`` requires ``totals=`` and otherwise raises
    :class:`ConfigError`; in a model that maps cells between domains, put it before the
    alignment only if you do not need output in raw counts.
    """

    kind = "normalize_total"

    def __init__(self, target_sum: float | None = None) -> None:
        self.target_sum = target_sum
        self.target_sum_: float | None = None

    def fit(self, X: np.ndarray) -> NormalizeTotal:
        totals = self._totals(_as_2d(X, "NormalizeTotal"))
        if self.target_sum is not None:
            target = float(self.target_sum)
        else:
            nonzero = totals[totals > 0]
            target = float(np.median(nonzero)) if nonzero.size else 1.0
        if not (np.isfinite(target) and target > 0):
            raise ConfigError(
                "The 'target_sum' parameter of NormalizeTotal must be a positive number or None. "
                f"Got {self.target_sum!r} instead."
            )
        self.target_sum_ = target
        return self

    @staticmethod
    def _totals(X: np.ndarray) -> np.ndarray:
        if (X < 0).any():
            raise DataError("NormalizeTotal expects non-negative counts; X has negative values")
        return X.sum(axis=1)

    def _target(self) -> float:
        if self.target_sum_ is None:
            raise ConfigError("NormalizeTotal is not fitted; call fit first.")
        return self.target_sum_

    def transform(self, X: np.ndarray) -> np.ndarray:
        target = self._target()
        X = _as_2d(X, "NormalizeTotal")
        totals = self._totals(X)
        scale = np.divide(target, totals, out=np.zeros_like(totals), where=totals > 0)
        return (X * scale[:, None]).astype(np.float32)

    def inverse_transform(self, X: np.ndarray, totals: np.ndarray | None = None) -> np.ndarray:
        target = self._target()
        if totals is None:
            raise ConfigError(
                "NormalizeTotal cannot be inverted without each cell's original total; pass "
                "totals= (one per cell) or leave it out of pipelines that must map back to counts"
            )
        X = _as_2d(X, "NormalizeTotal")
        totals = np.asarray(totals, dtype=np.float64).reshape(-1)
        if totals.shape != (X.shape[0],):
            raise DataError(f"totals has {totals.size} values for {X.shape[0]} cells")
        return (X * (totals / target)[:, None]).astype(np.float32)

    def get_state(self) -> dict[str, Any]:
        return {"kind": self.kind, "target_sum": self.target_sum, "target_sum_": self._target()}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> NormalizeTotal:
        obj = cls(target_sum=state.get("target_sum"))
        obj.target_sum_ = float(state["target_sum_"])
        return obj


class Pipeline(Transform):
    """Several transforms applied in order and inverted in reverse order.

    Why: a domain's preprocessing is usually two or three steps (e.g. ``Arcsinh(5)`` then
    ``Standardizer()``), and the model stores them as one state: ``{"kind": "pipeline",
    "steps": [state, ...]}``.
    """

    kind = "pipeline"

    def __init__(self, steps: Sequence[Transform]) -> None:
        self.steps = list(steps)

    def _steps(self) -> list[Transform]:
        bad = [type(s).__name__ for s in self.steps if not isinstance(s, Transform)]
        if bad:
            raise ConfigError(
                f"The 'steps' parameter of Pipeline must hold Transform objects. Got {bad} instead."
            )
        return self.steps

    def fit(self, X: np.ndarray) -> Pipeline:
        steps = self._steps()
        for i, step in enumerate(steps):
            step.fit(X)
            if i < len(steps) - 1:
                X = step.transform(X)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        X = _as_2d(X, "Pipeline")
        for step in self._steps():
            X = step.transform(X)
        return np.asarray(X, dtype=np.float32)

    def inverse_transform(self, X: np.ndarray) -> np.ndarray:
        X = _as_2d(X, "Pipeline")
        for step in reversed(self._steps()):
            X = step.inverse_transform(X)
        return np.asarray(X, dtype=np.float32)

    def get_state(self) -> dict[str, Any]:
        return {"kind": self.kind, "steps": [s.get_state() for s in self._steps()]}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Pipeline:
        steps = state.get("steps")
        if not isinstance(steps, list):
            raise ModelFileError("pipeline state has no list of steps")
        return cls([transform_from_state(s) for s in steps])


# ---- marker matching ----------------------------------------------------------------------------

#: Names that denote the same antigen, one group per tuple; extend with ``aliases=``.
BUILTIN_ALIASES: tuple[tuple[str, ...], ...] = (
    ("HLA-DR", "HLADR"),
    ("CD45RA", "CD45-RA"),
    ("CD45RO", "CD45-RO"),
    ("FoxP3", "FOXP3"),
    ("Ki-67", "Ki67"),
    ("PD-1", "CD279"),
    ("PD-L1", "CD274"),
    ("PD-L2", "CD273"),
    ("CTLA-4", "CD152"),
    ("ICOS", "CD278"),
    ("OX40", "CD134"),
    ("4-1BB", "CD137"),
    ("TIM-3", "CD366"),
    ("LAG-3", "CD223"),
    ("NKG2D", "CD314"),
    ("CCR4", "CD194"),
    ("CCR5", "CD195"),
    ("CCR6", "CD196"),
    ("CCR7", "CD197"),
    ("CXCR3", "CD183"),
    ("CXCR4", "CD184"),
    ("CXCR5", "CD185"),
    ("IL-7Ra", "CD127"),
    ("IL-2Ra", "CD25"),
    ("TCRgd", "TCRyd", "TCR-γδ"),
    ("TCRab", "TCR-αβ"),
)

# Metals used as mass tags (lanthanides, plus Y, In, Pd, Pt, Ir, Rh, Cd, Bi, Ba, I, Cs, Xe...).
_MASS_TAG_ELEMENTS = frozenset(
    "Y La Ce Pr Nd Pm Sm Eu Gd Tb Dy Ho Er Tm Yb Lu In Pd Pt Ir Rh Cd Bi Ba I Cs Xe Sn Te Ag "
    "Au Os Hf Ta Pb Ru Cu Ga Ge Rb Sr Zr Nb Mo Tl Hg".split()
)
_ISOTOPE = re.compile(
    r"(?:(?P<el>[A-Z][a-z]?)(?P<mass>\d{2,3})|(?P<mass2>\d{2,3})(?P<el2>[A-Z][a-z]?))(?:Di|Dd)?"
)
_SEPARATORS = re.compile(r"[\s_|()\[\]{}:;,./\\+\-]+")
_GREEK = str.maketrans({"α": "a", "β": "b", "γ": "g", "δ": "d", "κ": "k", "λ": "l"})


def _isotope(token: str) -> str | None:
    """``"Nd142Di"``, ``"142Nd"``, ``"Nd142"`` → ``"nd142"``; anything else → None."""
    m = _ISOTOPE.fullmatch(token)
    if m is None:
        return None
    el, mass = (m["el"], m["mass"]) if m["el"] else (m["el2"], m["mass2"])
    if el not in _MASS_TAG_ELEMENTS or not 70 <= int(mass) <= 210:
        return None
    return f"{el.lower()}{mass}"


def _normalise(name: str) -> str:
    """Case-, space-, hyphen- and isotope-blind spelling of a marker name."""
    text = unicodedata.normalize("NFKC", str(name)).translate(_GREEK)
    tokens = [t for t in _SEPARATORS.split(text) if t]
    isotopes = [iso for t in tokens if (iso := _isotope(t)) is not None]
    if isotopes:
        rest = [t for t in tokens if _isotope(t) is None and t.lower() not in ("di", "dd")]
        tokens = rest if rest else isotopes[:1]  # a bare channel keeps its isotope as its name
    return "".join(tokens).lower()


def _alias_table(
    aliases: Mapping[str, str] | Sequence[Sequence[str]] | None, builtin: bool
) -> dict[str, str]:
    """Normalised name → canonical key, by union of alias groups (canonical = smallest key)."""
    groups: list[Sequence[str]] = list(BUILTIN_ALIASES) if builtin else []
    if isinstance(aliases, Mapping):
        groups += [(k, v) for k, v in aliases.items()]
    elif aliases is not None:
        groups += [g if isinstance(g, str) else tuple(g) for g in aliases]
    parent: dict[str, str] = {}

    def find(k: str) -> str:
        parent.setdefault(k, k)
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    for group in groups:
        if isinstance(group, str) or len(group) < 2:
            raise ConfigError(
                "The 'aliases' parameter of match_markers must map names to names or list "
                f"groups of two or more names. Got {group!r} instead."
            )
        keys = [find(_normalise(n)) for n in group]
        root = min(keys)
        for k in keys:
            parent[k] = root
    return {k: find(k) for k in list(parent)}


def marker_key(
    name: str,
    aliases: Mapping[str, str] | Sequence[Sequence[str]] | None = None,
    *,
    builtin_aliases: bool = True,
) -> str:
    """The key two marker names must share to match, e.g. ``"142Nd_CD3"`` → ``"cd3"``."""
    key = _normalise(name)
    return _alias_table(aliases, builtin_aliases).get(key, key)


@dataclass(frozen=True)
class MarkerMatch:
    """Outcome of :func:`match_markers`: what matched, by which rule, and what did not.

    ``pairs[r] = (i, j)`` says ``names1[i]`` and ``names2[j]`` are the same marker, ordered by
    ``i``; ``rules[r]`` is ``"exact"``, ``"normalised"`` or ``"alias"``. ``ambiguous`` holds
    groups of names sharing one key where a match would be a guess (more than one candidate on
    either side); their names appear in neither ``unmatched`` list.
    """

    pairs: np.ndarray
    names1: tuple[str, ...]
    names2: tuple[str, ...]
    rules: tuple[str, ...]
    unmatched1: tuple[str, ...]
    unmatched2: tuple[str, ...]
    ambiguous: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = field(default=())

    def __len__(self) -> int:
        return len(self.pairs)

    @property
    def indices1(self) -> np.ndarray:
        """Columns of dataset 1 in match order (``adata1[:, m.indices1]``)."""
        return self.pairs[:, 0]

    @property
    def indices2(self) -> np.ndarray:
        """Columns of dataset 2 in match order."""
        return self.pairs[:, 1]

    def table(self) -> pd.DataFrame:
        """One row per matched pair, ambiguous group and unmatched name, for printing."""
        rows: list[dict[str, Any]] = []
        for (i, j), n1, n2, rule in zip(
            self.pairs.tolist(), self.names1, self.names2, self.rules, strict=True
        ):
            rows.append(
                {
                    "status": "matched",
                    "name1": n1,
                    "name2": n2,
                    "index1": i,
                    "index2": j,
                    "rule": rule,
                }
            )
        for g1, g2 in self.ambiguous:
            rows.append(
                {
                    "status": "ambiguous",
                    "name1": ", ".join(g1),
                    "name2": ", ".join(g2),
                    "index1": None,
                    "index2": None,
                    "rule": "",
                }
            )
        for n in self.unmatched1:
            rows.append(
                {
                    "status": "only in 1",
                    "name1": n,
                    "name2": "",
                    "index1": None,
                    "index2": None,
                    "rule": "",
                }
            )
        for n in self.unmatched2:
            rows.append(
                {
                    "status": "only in 2",
                    "name1": "",
                    "name2": n,
                    "index1": None,
                    "index2": None,
                    "rule": "",
                }
            )
        columns = ["status", "name1", "name2", "index1", "index2", "rule"]
        frame = pd.DataFrame(rows, columns=columns)
        return frame.astype({"index1": "Int64", "index2": "Int64"})


def match_markers(
    names1: Sequence[str],
    names2: Sequence[str],
    aliases: Mapping[str, str] | Sequence[Sequence[str]] | None = None,
    *,
    builtin_aliases: bool = True,
) -> MarkerMatch:
    """Pair the markers of two panels that name the same antigen.

    Why: panels spell markers differently (``"CD3(Nd142)Dd"``, ``"142Nd_CD3"``, ``"cd3"``), and
    the shared markers are what ties two datasets together, so a silent wrong pairing is worse
    than none. Names are compared by :func:`marker_key`: case, whitespace, hyphens, underscores
    and mass-tag decorations (an element symbol with its mass, ``Di``/``Dd``) are ignored, Greek
    letters spelled out, and :data:`BUILTIN_ALIASES` plus ``aliases`` (``{"name": "same
    as"}`` or groups of names) joined. Identical names are matched first; among the rest a key
    held by exactly one name on each side matches, and a key held by several names on a side
    with a candidate on the other is reported in ``ambiguous``, never guessed. Deterministic.
    """
    names1 = [str(n) for n in names1]
    names2 = [str(n) for n in names2]
    table = _alias_table(aliases, builtin_aliases)
    norm1 = [_normalise(n) for n in names1]
    norm2 = [_normalise(n) for n in names2]
    key1 = [table.get(k, k) for k in norm1]
    key2 = [table.get(k, k) for k in norm2]

    match = _exact_matches(names1, names2)
    by_key1 = _positions_by_key(key1, set(match))
    by_key2 = _positions_by_key(key2, {j for j, _ in match.values()})

    ambiguous: list[tuple[tuple[str, ...], tuple[str, ...]]] = []
    in_ambiguous1: set[int] = set()
    in_ambiguous2: set[int] = set()
    for k in [*by_key1, *(k for k in by_key2 if k not in by_key1)]:
        a, b = by_key1.get(k, []), by_key2.get(k, [])
        if len(a) == 1 and len(b) == 1:
            i, j = a[0], b[0]
            match[i] = (j, "normalised" if norm1[i] == norm2[j] else "alias")
        elif a and b:
            ambiguous.append((tuple(names1[i] for i in a), tuple(names2[j] for j in b)))
            in_ambiguous1.update(a)
            in_ambiguous2.update(b)

    order = sorted(match)
    pairs = np.array([[i, match[i][0]] for i in order], dtype=np.int64).reshape(-1, 2)
    matched2 = set(pairs[:, 1].tolist())
    return MarkerMatch(
        pairs=pairs,
        names1=tuple(names1[i] for i in order),
        names2=tuple(names2[j] for j in pairs[:, 1]),
        rules=tuple(match[i][1] for i in order),
        unmatched1=tuple(
            n for i, n in enumerate(names1) if i not in match and i not in in_ambiguous1
        ),
        unmatched2=tuple(
            n for j, n in enumerate(names2) if j not in matched2 and j not in in_ambiguous2
        ),
        ambiguous=tuple(ambiguous),
    )


def _exact_matches(names1: list[str], names2: list[str]) -> dict[int, tuple[int, str]]:
    """{column in 1: (column in 2, "exact")} for names spelled alike and unique on both sides,
    matched before any normalising so that an exact name is never lost to an alias."""
    count1 = pd.Series(names1, dtype=object).value_counts().to_dict()
    count2 = pd.Series(names2, dtype=object).value_counts().to_dict()
    where2 = {n: j for j, n in enumerate(names2)}
    return {i: (where2[n], "exact") for i, n in enumerate(names1)
            if count1[n] == 1 and count2.get(n, 0) == 1}


def _positions_by_key(keys: list[str], taken: set[int]) -> dict[str, list[int]]:
    """{key: columns} of the columns not ``taken`` yet, in column order, so a key held by
    several columns shows as ambiguous rather than being matched at random."""
    by_key: dict[str, list[int]] = {}
    for i, k in enumerate(keys):
        if i not in taken:
            by_key.setdefault(k, []).append(i)
    return by_key
