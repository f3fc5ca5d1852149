"""How sure is each translated value? An ensemble of MAGANs with calibrated intervals.

A translated or imputed value is wrong for two reasons, estimated separately:

- **model**: the networks are not pinned down by the data; measured as the spread (sd) of
  ``n_members`` models trained with different seeds.
- **local noise**: the other domain does not determine the value. Among *real* cells of the
  output domain that look like the translated cell on the features the two domains share
  (all features when nothing is shared), the value still varies; measured as its sd over the
  ``n_neighbors`` nearest such cells. Seed spread cannot see this part, and once members are
  averaged it is most of the error (levine32 panels: interval width 0.29 from the seed spread
  alone, 1.70 with it; RESULTS.md, uncertainty).

The stated interval is ``mean ± q_f · sqrt(sd_model² + sd_local²)`` per feature ``f``. ``q_f`` is
a split-conformal quantile: for held-out real cells of the output domain (leave-one-out among
the reference cells) the score ``|value − neighbours' mean| / neighbours' sd`` is computed, and
``q_f`` is its ``level`` quantile with the finite-sample correction ``ceil((n + 1) level) / n``.
So the local part is calibrated where the feature *is* measured, with no truth from the other
domain; adding the model part in quadrature (independent sources) is a choice, measured to
bring coverage of the 90% interval from 0.88 (local part alone) to 0.90 on levine32 panels.

**Known pairs make it honest about the alignment too.** Where the domains share nothing but a
few known pairs (cross-modal data), a wrong alignment is most of the error and neither part
above sees it. With ``pair_holdout`` each member trains without its own share of the known
pairs; its errors on those held-out partners, divided by sqrt(typical seed spread² + local
sd²) there, give a second conformal quantile (pooled over features and pairs), and the interval
uses the larger of the two multipliers. Members then train on fewer pairs (10 pairs, 5 members:
8 each). Measured with 3 members and 10 pairs (3 seeds): coverage of 90% intervals ECCITE
0.89 / 0.84 (0.84 / 0.81 without), scGEM 0.80 / 0.88 (0.45 / 0.59 without).

Not covered: a systematic shift between the domains that the alignment gets wrong for every
cell alike and no pair reveals, e.g. a batch effect on the very marker being imputed.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from sklearn.neighbors import NearestNeighbors

from magan.data import (
    Matrix,
    apply_steps,
    iter_chunks,
    known_pair_items,
    resolve_known_pairs,
    take_rows,
)
from magan.errors import ConfigError, DataError, ModelFileError, NotFittedError
from magan.estimator import MAGAN
from magan.io import write_dir_atomic

__all__ = ["LEVELS", "Ensemble", "Interval", "LocalNoise", "check_level", "is_saved_ensemble"]

# Interval levels the conformal quantiles are tabulated at (any level in between is
# interpolated): 0.5 to 0.995 in steps of 0.005.
LEVELS = np.round(np.arange(0.5, 0.99501, 0.005), 3)
FORMAT_VERSION = 1
_CONFIG = "ensemble.json"
# Neighbour values gathered at once by LocalNoise.sd (float32: 64 MiB), and cells translated
# at once by Ensemble.interval: memory stays bounded for any number of cells.
_BLOCK_ELEMENTS = 1 << 24
_CHUNK = 1 << 15


class Interval(NamedTuple):
    """Per-cell, per-feature prediction in the output domain's units (arrays (n, d_out))."""

    mean: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    sd_model: np.ndarray
    sd_local: np.ndarray
    level: float


def _conformal_table(scores: np.ndarray, axis: int | None = 0) -> np.ndarray:
    """Quantiles of ``scores`` at every level of LEVELS, with the finite-sample correction."""
    n = scores.shape[0] if axis == 0 else scores.size
    probs = np.minimum(np.ceil((n + 1) * LEVELS) / n, 1.0)
    return np.quantile(scores, probs, axis=axis, method="higher").astype(np.float32)


def _at_level(table: np.ndarray, level: float) -> np.ndarray:
    """Row of a LEVELS table at ``level``, interpolated between grid points."""
    level = check_level(level)
    j = int(np.searchsorted(LEVELS, level))
    if j < len(LEVELS) and np.isclose(LEVELS[j], level):
        return table[j]
    w = (level - LEVELS[j - 1]) / (LEVELS[j] - LEVELS[j - 1])
    return (1 - w) * table[j - 1] + w * table[j]


def check_level(level: Any) -> float:
    """``level`` as a float if it is an interval level the quantile tables cover, else
    ConfigError (shared by the API and the CLI)."""
    if isinstance(level, bool) or not isinstance(level, (int, float, np.floating)) or \
            not LEVELS[0] <= float(level) <= LEVELS[-1]:
        raise ConfigError(f"level must be a number in [{LEVELS[0]}, {LEVELS[-1]}] (e.g. 0.9 "
                          f"for a 90% interval), got {level!r}")
    return float(level)


class LocalNoise:
    """sd of each feature among real cells near a query point, with conformal quantiles.

    ``values`` are real cells of one domain (cells × features, the user's units) and
    ``coords`` the same cells in the space neighbours are found in. :class:`Ensemble` passes
    the shared features as the model sees them (after its preprocessing and ``standardize``):
    with the default one common scale; scaling each feature to sd 1 instead was measured worse
    on levine32 panels (coverage 0.88 vs 0.90), as for the model itself. Fitted on at most
    ``max_cells`` cells (a random subset) so memory and time stay bounded.
    """

    def __init__(self, n_neighbors: int = 15, max_cells: int = 5000, seed: int = 0) -> None:
        self.n_neighbors = n_neighbors
        self.max_cells = max_cells
        self.seed = seed

    def fit(self, values: np.ndarray, coords: np.ndarray) -> LocalNoise:
        X = np.asarray(values, dtype=np.float32)
        C = np.asarray(coords, dtype=np.float32)
        if X.ndim != 2 or C.ndim != 2 or len(X) != len(C):
            raise DataError(f"values {X.shape} and coords {C.shape} must be matrices with one "
                            "row per cell")
        keep = np.isfinite(X).all(axis=1) & np.isfinite(C).all(axis=1)
        X, C = X[keep], C[keep]
        if len(X) > self.max_cells:
            rows = np.sort(np.random.default_rng(self.seed).choice(len(X), self.max_cells,
                                                                   replace=False))
            X, C = X[rows], C[rows]
        if len(X) < self.n_neighbors + 2:
            raise DataError(f"local noise needs more than {self.n_neighbors + 1} finite "
                            f"reference cells (n_neighbors + 1), got {len(X)}")
        self.reference_, self.coords_ = X, C
        # Floor for a neighbourhood sd of 0 (a zero-inflated feature): 1e-3 of its global sd.
        self.floor_ = (1e-3 * X.std(axis=0) + 1e-12).astype(np.float32)
        self._build_index()
        # Leave-one-out scores: each reference cell against its neighbours (itself excluded).
        idx = self._index.kneighbors(C, n_neighbors=self.n_neighbors + 1,
                                     return_distance=False)
        own = idx == np.arange(len(X))[:, None]
        own[own.sum(axis=1) == 0, -1] = True  # duplicates can push the cell itself out
        idx = idx[~own].reshape(len(X), self.n_neighbors)
        mean, sd = self._moments(idx)
        self.quantiles_ = _conformal_table(np.abs(X - mean) / sd)
        return self

    def _build_index(self) -> None:
        self._index = NearestNeighbors(n_neighbors=self.n_neighbors).fit(self.coords_)

    def _moments(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        nb = self.reference_[idx]  # (n, k, d)
        return nb.mean(axis=1), np.maximum(nb.std(axis=1, ddof=1), self.floor_)

    def sd(self, coords: np.ndarray) -> np.ndarray:
        """Local sd of every feature around each point given in ``coords`` (the fit's space),
        (n, d)."""
        C = np.asarray(coords, dtype=np.float32)
        if C.ndim != 2 or C.shape[1] != self.coords_.shape[1]:
            raise DataError(f"coords must have {self.coords_.shape[1]} columns, got shape "
                            f"{C.shape}")
        out = np.empty((len(C), self.reference_.shape[1]), dtype=np.float32)
        step = max(1, _BLOCK_ELEMENTS // (self.n_neighbors * self.reference_.shape[1]))
        for start in range(0, len(C), step):  # (rows, k, d) neighbour values: bounded memory
            idx = self._index.kneighbors(C[start:start + step], return_distance=False)
            out[start:start + step] = self._moments(idx)[1]
        return out

    def quantile(self, level: float) -> np.ndarray:
        """Conformal multiplier of the local sd for a ``level`` interval, per feature."""
        return _at_level(self.quantiles_, level)

    def state(self) -> dict[str, np.ndarray]:
        return {"reference": self.reference_, "coords": self.coords_, "floor": self.floor_,
                "quantiles": self.quantiles_,
                "settings": np.array([self.n_neighbors, self.max_cells, self.seed])}

    @classmethod
    def from_state(cls, state: Any) -> LocalNoise:
        k, max_cells, seed = (int(v) for v in state["settings"])
        noise = cls(k, max_cells, seed)
        noise.reference_ = np.asarray(state["reference"], dtype=np.float32)
        noise.coords_ = np.asarray(state["coords"], dtype=np.float32)
        noise.floor_, noise.quantiles_ = state["floor"], state["quantiles"]
        if len(noise.coords_) != len(noise.reference_):
            raise ModelFileError("local-noise coords and reference disagree on the number of "
                                 "cells")
        if noise.quantiles_.shape != (len(LEVELS), noise.reference_.shape[1]):
            raise ModelFileError("local-noise quantile table has shape "
                                 f"{noise.quantiles_.shape}, expected ({len(LEVELS)}, "
                                 f"{noise.reference_.shape[1]})")
        noise._build_index()
        return noise


class Ensemble:
    """``n_members`` MAGANs (seeds ``seed``, ``seed + 1``, ...) and the local-noise models
    of both domains: averaged translations with calibrated intervals.

    ``estimator`` is the member template (a MAGAN, default ``MAGAN()``); its parameters are
    copied and only the seed changes. The mean of the members is itself more accurate than one
    member (levine32 panels: Pearson 0.629 vs 0.615). ``n_neighbors`` and ``reference_cells``
    set the local-noise model; ``pair_holdout`` (``"auto"``: when there are two or more
    members and ``fit`` gets at least two known pairs per member) calibrates on held-out
    known pairs too (module docstring).
    """

    def __init__(self, estimator: MAGAN | None = None, *, n_members: int = 5,
                 n_neighbors: int = 15, reference_cells: int = 5000,
                 pair_holdout: bool | str = "auto") -> None:
        self.estimator = estimator
        self.n_members = n_members
        self.n_neighbors = n_neighbors
        self.reference_cells = reference_cells
        self.pair_holdout = pair_holdout

    def _check_params(self) -> None:
        for name, low in (("n_members", 1), ("n_neighbors", 2), ("reference_cells", 10)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
                raise ConfigError(f"{name} must be an integer ≥ {low}, got {v!r}")
        if self.estimator is not None and not isinstance(self.estimator, MAGAN):
            raise ConfigError(f"estimator must be a MAGAN, got {type(self.estimator).__name__}")
        if self.pair_holdout not in (True, False, "auto"):
            raise ConfigError(f"pair_holdout must be True, False or 'auto', got "
                              f"{self.pair_holdout!r}")

    def fit(self, x1: Any, x2: Any, *, layer1: str | None = None, layer2: str | None = None,
            **fit_params: Any) -> Ensemble:
        """Train the members on the same data (``fit_params`` as for :meth:`MAGAN.fit`:
        ``shared_features``, ``known_pairs``, ...), then fit the local-noise models on x1 and
        x2 as given (the user's units). With ``checkpoint_dir``, member k checkpoints into
        ``checkpoint_dir/member_<k>`` (``resume=True`` resumes each)."""
        self._check_params()
        checkpoints = fit_params.pop("checkpoint_dir", None)
        template = self.estimator if self.estimator is not None else MAGAN()
        params = template.get_params()
        pairs = known_pair_items(fit_params.pop("known_pairs", None))
        folds = self._folds(pairs, params["seed"])
        members = []
        for k in range(self.n_members):
            member = MAGAN(**{**params, "seed": params["seed"] + k})
            out = set(folds[k])
            train = [p for i, p in enumerate(pairs) if i not in out] or None
            where = None if checkpoints is None else Path(checkpoints) / f"member_{k}"
            members.append(member.fit(x1, x2, layer1=layer1, layer2=layer2, known_pairs=train,
                                      checkpoint_dir=where, **fit_params))
        nonfinite = bool(fit_params.get("drop_nonfinite", False))
        self._fit_noise(members, x1, x2, layer1, layer2, nonfinite)
        if any(folds):
            self._fit_pair_quantiles(x1, x2, layer1, layer2, [[pairs[i] for i in f]
                                                              for f in folds], nonfinite)
        return self

    def holds_out_pairs(self, n_pairs: int) -> bool:
        """Whether :meth:`fit` with ``n_pairs`` known pairs lets each member leave some out
        (``pair_holdout``: True, or "auto" with two or more members and at least two pairs
        per member). Then no member has seen every pair, so none of them is the model to keep
        for plain translation."""
        return n_pairs > 0 and (self.pair_holdout is True or (
            self.pair_holdout == "auto" and self.n_members >= 2
            and n_pairs >= 2 * self.n_members))

    def _folds(self, pairs: list, seed: int) -> list[list[int]]:
        """Which known pairs (positions) each member leaves out; all empty without holdout."""
        n = len(pairs)
        if not self.holds_out_pairs(n):
            return [[] for _ in range(self.n_members)]
        if n < 2 or self.n_members < 2:
            raise ConfigError("pair_holdout needs at least 2 known pairs and 2 members (each "
                              f"member must keep some pairs); got {n} pairs, "
                              f"{self.n_members} members")
        order = np.random.default_rng(seed).permutation(n)
        return [sorted(f.tolist()) for f in np.array_split(order, self.n_members)]

    def _fit_pair_quantiles(self, x1: Any, x2: Any, layer1: str | None, layer2: str | None,
                            held_out: list[list], nonfinite: bool = False) -> None:
        """Per source domain, the conformal table of |member k's translation − true partner|
        / sqrt(typical spread² + local sd²) there, over the pairs member k did not train on."""
        m1 = self.members_[0].check_input(x1, domain=1, layer=layer1, allow_nonfinite=nonfinite)
        m2 = self.members_[0].check_input(x2, domain=2, layer=layer2, allow_nonfinite=nonfinite)
        self.pair_quantiles_ = {}
        for domain in (1, 2):
            # The seed spread at a known pair is inflated (the members that trained on it agree
            # with the truth, member k does not), so scores use the *typical* spread instead:
            # its median over (up to 2,000) reference cells, per feature. scGEM coverage of
            # 90% intervals: 0.80 / 0.88 with it, 0.74 / 0.82 with the spread at the pair; the
            # local sd alone exploded where it is near zero (RESULTS.md, fourth pass).
            ref = self.noise_[domain].reference_[:2000]
            spread = np.stack([_translate(m, ref, domain) for m in self.members_]).std(axis=0,
                                                                                      ddof=1)
            typical = np.median(spread, axis=0)
            scores = []
            for k, fold in enumerate(held_out):
                if not fold:
                    continue
                with warnings.catch_warnings():  # repeated partners were warned about in fit
                    warnings.simplefilter("ignore")
                    rows = resolve_known_pairs(fold, m1, m2)
                src = take_rows(m1.X if domain == 1 else m2.X, rows[:, domain - 1])
                truth = take_rows(m2.X if domain == 1 else m1.X, rows[:, 2 - domain])
                ok = np.isfinite(src).all(axis=1) & np.isfinite(truth).all(axis=1)
                if not ok.any():  # pairs naming dropped (NaN/inf) cells were not trained on
                    continue
                src, truth = src[ok], truth[ok]
                out = np.stack([_translate(m, src, domain) for m in self.members_])
                sd_local = self._spread(out, domain)[2]
                scores.append(np.abs(out[k] - truth) / np.sqrt(typical ** 2 + sd_local ** 2))
            if scores:
                self.pair_quantiles_[domain] = _conformal_table(np.concatenate(scores), axis=None)

    @classmethod
    def from_members(cls, members: Sequence[MAGAN], x1: Any, x2: Any, *,
                     layer1: str | None = None, layer2: str | None = None,
                     n_neighbors: int = 15, reference_cells: int = 5000) -> Ensemble:
        """An ensemble of already fitted models (same features and shared features), e.g.
        trained in parallel or with checkpoints; ``x1``, ``x2`` give the reference cells."""
        members = list(members)
        if not members or not all(isinstance(m, MAGAN) for m in members):
            raise ConfigError("members must be a non-empty list of fitted MAGAN models")
        for i, m in enumerate(members):
            if not m.__sklearn_is_fitted__():
                raise NotFittedError(f"member {i} is not fitted; an ensemble is built from "
                                     "fitted models (MAGAN.fit or MAGAN.load)")
        first = members[0]
        for i, m in enumerate(members[1:], start=1):
            if (m.feature_names1_, m.feature_names2_, m.shared_features_) != \
                    (first.feature_names1_, first.feature_names2_, first.shared_features_):
                raise DataError(f"member {i} was trained on other features or shared features "
                                "than member 0; an ensemble needs the same inputs throughout")
        ens = cls(None, n_members=len(members), n_neighbors=n_neighbors,
                  reference_cells=reference_cells, pair_holdout=False)
        ens._check_params()
        return ens._fit_noise(members, x1, x2, layer1, layer2)

    def _fit_noise(self, members: list[MAGAN], x1: Any, x2: Any, layer1: str | None,
                   layer2: str | None, nonfinite: bool = False) -> Ensemble:
        self.members_ = members
        self.pair_quantiles_: dict[int, np.ndarray] = {}
        self.noise_ = {}
        for domain, x, layer in ((1, x1, layer1), (2, x2, layer2)):
            X = np.asarray(members[0].check_input(x, domain=domain, layer=layer,
                                                  allow_nonfinite=nonfinite).X, np.float32)
            self.noise_[domain] = LocalNoise(self.n_neighbors, self.reference_cells,
                                             members[0].seed).fit(X, self._coords(X, domain))
        return self

    def _coords(self, X: np.ndarray, domain: int) -> np.ndarray:
        """Cells of ``domain`` (user's units) in the local-noise neighbour space: the shared
        features (all features if none are shared) as member 0's networks see them."""
        first = self.members_[0]
        names = first.feature_names1_ if domain == 1 else first.feature_names2_
        shared = [names.index(p[domain - 1]) for p in first.shared_features_]
        steps = first.preprocessing1_ if domain == 1 else first.preprocessing2_
        Z = apply_steps(steps, X)  # X is checked already, and may hold dropped NaN cells
        return Z[:, shared] if shared else Z

    # ---- prediction ---------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "members_"):
            raise NotFittedError("This Ensemble is not fitted yet; call fit(x1, x2, ...), "
                                 "Ensemble.from_members(...) or Ensemble.load(path) first.")

    def _source(self, x: Any, domain: int, layer: str | None) -> Matrix:
        """Cells of ``domain`` checked against the members' features (a data.Matrix)."""
        if domain not in (1, 2):
            raise ConfigError(f"domain must be 1 or 2, got {domain!r}")
        return self.members_[0].check_input(x, domain=domain, layer=layer)

    def _mean(self, X: Any, domain: int) -> np.ndarray:
        """Members' mean translation, accumulated (two (n, d) arrays, whatever K)."""
        total = _translate(self.members_[0], X, domain)
        for m in self.members_[1:]:
            total += _translate(m, X, domain)
        return total / len(self.members_)

    def transform(self, x1: Any, *, layer: str | None = None) -> np.ndarray:
        """Mean of the members' G12(x1), in x2's units."""
        self._check_fitted()
        return self._mean(self._source(x1, 1, layer).X, 1)

    def inverse_transform(self, x2: Any, *, layer: str | None = None) -> np.ndarray:
        """Mean of the members' G21(x2), in x1's units."""
        self._check_fitted()
        return self._mean(self._source(x2, 2, layer).X, 2)

    def interval(self, x: Any, *, domain: int = 1, level: float = 0.9,
                 layer: str | None = None) -> Interval:
        """Translate cells of ``domain`` into the other domain with a ``level`` interval per
        value (module docstring for how it is made and calibrated)."""
        self._check_fitted()
        return self._interval(self._source(x, domain, layer).X, domain, check_level(level))

    def _interval(self, X: Any, domain: int, level: float) -> Interval:
        q = self.noise_[3 - domain].quantile(level)
        if domain in self.pair_quantiles_:
            q = np.maximum(q, _at_level(self.pair_quantiles_[domain], level))
        d_out = self.noise_[3 - domain].reference_.shape[1]
        mean, lower, upper, sd_model, sd_local = (np.empty((X.shape[0], d_out), np.float32)
                                                  for _ in range(5))
        for start, block in iter_chunks(X, _CHUNK):  # K translations of one chunk at a time
            rows = slice(start, start + len(block))
            out = np.stack([_translate(m, block, domain) for m in self.members_])
            mean[rows], sd_model[rows], sd_local[rows] = self._spread(out, domain)
            half = q * np.sqrt(sd_model[rows] ** 2 + sd_local[rows] ** 2)
            lower[rows], upper[rows] = mean[rows] - half, mean[rows] + half
        return Interval(mean, lower, upper, sd_model, sd_local, level)

    def _spread(self, out: np.ndarray, domain: int) -> tuple[np.ndarray, ...]:
        """(mean, sd_model, sd_local) of members' translations ``out`` (K, n, d) of cells of
        ``domain``."""
        mean = out.mean(axis=0)
        sd_model = out.std(axis=0, ddof=1) if len(out) > 1 else np.zeros_like(mean)
        return mean, sd_model, self.noise_[3 - domain].sd(self._coords(mean, 3 - domain))

    def impute(self, x: Any, *, domain: int = 1,
               features: Sequence[str] | str | None = "unshared", level: float | None = 0.9,
               layer: str | None = None) -> pd.DataFrame:
        """The other domain's features for cells of ``domain`` (selection as in
        :meth:`MAGAN.impute`). With ``level``: columns ``(stat, feature)`` for stat in mean,
        lower, upper, sd (the total sd, model and local), so ``frame["lower"]["CD3"]`` works;
        with ``level=None``: the mean only, like :meth:`MAGAN.impute`."""
        self._check_fitted()
        first = self.members_[0]
        columns = first.output_features(domain, features)
        names = first.feature_names2_ if domain == 1 else first.feature_names1_
        at = [names.index(c) for c in columns]
        if level is not None:
            level = check_level(level)
        m = self._source(x, domain, layer)
        if level is None:
            frame = pd.DataFrame(self._mean(m.X, domain), columns=names, index=m.cell_names)
            return frame[columns]
        iv, cells = self._interval(m.X, domain, level), m.cell_names
        sd = np.sqrt(iv.sd_model ** 2 + iv.sd_local ** 2)
        parts = {k: pd.DataFrame(v[:, at], columns=columns, index=cells)
                 for k, v in (("mean", iv.mean), ("lower", iv.lower), ("upper", iv.upper),
                              ("sd", sd))}
        return pd.concat(parts, axis=1)

    # ---- persistence --------------------------------------------------------------------
    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write ``path/ensemble.json``, ``path/member_<k>/`` (each a saved MAGAN) and
        ``path/local_noise<d>.npz``, atomically (a crash leaves no half-written folder)."""
        self._check_fitted()

        def fill(folder: Path) -> None:
            for k, m in enumerate(self.members_):
                m.save(folder / f"member_{k}")
            for d, noise in self.noise_.items():
                np.savez(folder / f"local_noise{d}.npz", **noise.state())
            config = {"format_version": FORMAT_VERSION, "n_members": len(self.members_),
                      "n_neighbors": self.n_neighbors, "reference_cells": self.reference_cells,
                      "pair_quantiles": {str(d): t.tolist()
                                         for d, t in self.pair_quantiles_.items()}}
            (folder / _CONFIG).write_text(json.dumps(config, indent=2))

        return write_dir_atomic(path, fill, overwrite=overwrite)

    @classmethod
    def load(cls, path: str | os.PathLike, *, device: str = "auto") -> Ensemble:
        """Rebuild a saved ensemble (no pickled objects are read)."""
        path = Path(path)
        try:
            config = json.loads((path / _CONFIG).read_text())
            n = int(config["n_members"])
            if config.get("format_version") != FORMAT_VERSION:
                raise ModelFileError(f"{path}: ensemble format {config.get('format_version')}"
                                     f", this magan reads {FORMAT_VERSION}")
        except FileNotFoundError as exc:
            raise ModelFileError(f"{path} is not a saved magan Ensemble (no {_CONFIG})") from exc
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError,
                ValueError) as exc:
            raise ModelFileError(f"{path / _CONFIG} is corrupt: {exc}") from exc
        ens = cls(None, n_members=n, n_neighbors=int(config["n_neighbors"]),
                  reference_cells=int(config["reference_cells"]))
        try:
            ens.pair_quantiles_ = {int(d): np.asarray(t, dtype=np.float32).reshape(len(LEVELS))
                                   for d, t in config.get("pair_quantiles", {}).items()}
        except (TypeError, ValueError, AttributeError) as exc:
            raise ModelFileError(f"{path / _CONFIG}: pair_quantiles is corrupt: {exc}") from exc
        ens.members_ = [MAGAN.load(path / f"member_{k}", device=device) for k in range(n)]
        ens.noise_ = {}
        for d in (1, 2):
            file = path / f"local_noise{d}.npz"
            try:
                with np.load(file, allow_pickle=False) as state:
                    ens.noise_[d] = LocalNoise.from_state(state)
            except ModelFileError:
                raise
            except Exception as exc:  # missing, truncated, not an npz, a key missing
                raise ModelFileError(f"{file} could not be read: {type(exc).__name__}: "
                                     f"{exc}") from exc
        return ens



def _translate(model: MAGAN, X: Any, domain: int) -> np.ndarray:
    """One member's translation of cells of ``domain`` into the other domain."""
    return model.transform(X) if domain == 1 else model.inverse_transform(X)


def is_saved_ensemble(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder written by :meth:`Ensemble.save`."""
    return (Path(path) / _CONFIG).is_file()


