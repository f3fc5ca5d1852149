"""From what users pass (ndarray, DataFrame, AnnData) to validated float matrices, and the
minibatch sampler that feeds training.

The sampler draws rows with replacement from a torch generator living on the training device, so
a step never waits for the host and a run is reproducible from its seed. (Distributed runs give
each rank its own shard and seed offset; see ``training``.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from magan.errors import DataError

__all__ = ["Matrix", "PairSampler", "as_matrix", "resolve_known_pairs", "resolve_shared_features"]


@dataclass
class Matrix:
    """A validated cells × features matrix with the names that came with it (if any)."""

    X: np.ndarray  # (n, d) float32, finite
    feature_names: list[str] | None
    cell_names: list[str] | None


def _is_anndata(x: Any) -> bool:
    return type(x).__name__ in {"AnnData", "AnnDataView"} or (hasattr(x, "obs_names") and hasattr(
        x, "var_names"
    ))


def as_matrix(x: Any, *, name: str = "X", layer: str | None = None, min_rows: int = 2) -> Matrix:
    """Turn an ndarray, DataFrame or AnnData into a checked float32 matrix.

    Raises DataError naming ``name`` (e.g. "x1") for empty input, wrong dimensionality,
    non-numeric columns and NaN/inf values (with the first offending rows and columns).
    """
    feature_names = cell_names = None
    if _is_anndata(x):
        values = x.layers[layer] if layer is not None else x.X
        if layer is not None and layer not in x.layers:
            raise DataError(f"{name}: AnnData has no layer {layer!r}; layers: {list(x.layers)}")
        if hasattr(values, "toarray"):  # scipy sparse
            values = values.toarray()
        feature_names = [str(v) for v in x.var_names]
        cell_names = [str(v) for v in x.obs_names]
    elif hasattr(x, "columns") and hasattr(x, "dtypes"):  # pandas DataFrame
        non_numeric = [c for c, t in zip(x.columns, x.dtypes) if not np.issubdtype(t, np.number)]
        if non_numeric:
            raise DataError(
                f"{name}: non-numeric columns {non_numeric[:5]}; pass only marker columns "
                "(move labels/ids to the index or a separate table)"
            )
        values = x.to_numpy()
        feature_names = [str(c) for c in x.columns]
        cell_names = [str(i) for i in x.index]
    else:
        if layer is not None:
            raise DataError(f"{name}: layer={layer!r} only applies to AnnData input")
        values = x
    try:
        arr = np.asarray(values)
    except Exception as exc:  # ragged lists and similar
        raise DataError(f"{name}: cannot be read as a matrix ({exc})") from exc
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)
    ):
        raise DataError(f"{name}: values must be numeric, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise DataError(f"{name}: expected a 2-D cells × features matrix, got shape {arr.shape}")
    n, d = arr.shape
    if d == 0:
        raise DataError(f"{name}: has no features (shape {arr.shape})")
    if n < min_rows:
        raise DataError(f"{name}: needs at least {min_rows} cells, got {n}")
    with np.errstate(over="ignore"):
        arr = arr.astype(np.float32)
    bad = ~np.isfinite(arr)
    if bad.any():
        rows = np.unique(np.nonzero(bad)[0])
        cols = np.unique(np.nonzero(bad)[1])
        col_desc = [feature_names[c] for c in cols[:5]] if feature_names else cols[:5].tolist()
        raise DataError(
            f"{name}: {int(bad.sum())} NaN/inf values in {len(rows)} cells "
            f"(first rows {rows[:5].tolist()}) and features {col_desc}; remove or impute them "
            "(values too large for float32 also become inf)"
        )
    if feature_names is not None and len(set(feature_names)) != len(feature_names):
        dup = sorted({f for f in feature_names if feature_names.count(f) > 1})
        raise DataError(f"{name}: duplicated feature names {dup[:5]}")
    return Matrix(arr, feature_names, cell_names)


def _feature_index(spec: Any, names: list[str] | None, d: int, side: str) -> int:
    if isinstance(spec, (int, np.integer)) and not isinstance(spec, bool):
        if not 0 <= int(spec) < d:
            raise DataError(
                f"shared feature index {spec} is out of range for {side} ({d} features)"
            )
        return int(spec)
    if isinstance(spec, str):
        if names is None:
            raise DataError(
                f"shared feature {spec!r} given by name, but {side} has no feature names "
                "(pass a DataFrame/AnnData, or give column indices)"
            )
        if spec not in names:
            raise DataError(f"shared feature {spec!r} not found in {side}'s features")
        return names.index(spec)
    raise DataError(f"shared features are names or integer indices, got {spec!r}")


def resolve_shared_features(
    spec: Any, m1: Matrix, m2: Matrix
) -> list[tuple[int, int]]:
    """Resolve ``"auto"`` or pairs of names/indices into (i in x1, j in x2) column pairs.

    ``"auto"`` pairs features whose names are identical; it is an error if there are none.
    Each feature may be used once per side: a feature matched twice is ambiguous.
    """
    if spec is None:
        return []
    d1, d2 = m1.X.shape[1], m2.X.shape[1]
    if isinstance(spec, str):
        if spec != "auto":
            raise DataError(f"shared_features must be 'auto' or a list of pairs, got {spec!r}")
        if m1.feature_names is None or m2.feature_names is None:
            raise DataError("shared_features='auto' needs feature names on both inputs")
        pairs = [(i, m2.feature_names.index(f)) for i, f in enumerate(m1.feature_names)
                 if f in m2.feature_names]
        if not pairs:
            raise DataError(
                "shared_features='auto' found no feature name present in both inputs; "
                f"x1 has e.g. {m1.feature_names[:3]}, x2 {m2.feature_names[:3]}"
            )
        return pairs
    pairs = []
    for item in spec:
        if isinstance(item, (str, int, np.integer)):
            item = (item, item)
        if not isinstance(item, Sequence) or len(item) != 2:
            raise DataError(f"each shared feature is a pair (x1 feature, x2 feature), got {item!r}")
        pairs.append((_feature_index(item[0], m1.feature_names, d1, "x1"),
                      _feature_index(item[1], m2.feature_names, d2, "x2")))
    for side, col in (("x1", 0), ("x2", 1)):
        used = [p[col] for p in pairs]
        if len(set(used)) != len(used):
            raise DataError(f"a feature of {side} is matched twice in shared_features: {pairs}")
    return pairs


def _cell_index(spec: Any, names: list[str] | None, n: int, side: str) -> int:
    if isinstance(spec, (int, np.integer)) and not isinstance(spec, bool):
        if not 0 <= int(spec) < n:
            raise DataError(f"known pair index {spec} is out of range for {side} ({n} cells)")
        return int(spec)
    if isinstance(spec, str) and names is not None:
        try:
            return names.index(spec)
        except ValueError:
            raise DataError(f"known pair cell {spec!r} not found among {side}'s cells") from None
    raise DataError(f"known pairs are row indices (or cell names for named input), got {spec!r}")


def resolve_known_pairs(spec: Any, m1: Matrix, m2: Matrix) -> np.ndarray:
    """Resolve known pairs (row indices or cell names) into a (k, 2) int64 array."""
    if spec is None:
        return np.zeros((0, 2), dtype=np.int64)
    items = spec.tolist() if isinstance(spec, np.ndarray) else list(spec)
    out = []
    for item in items:
        if not isinstance(item, Sequence) or isinstance(item, str) or len(item) != 2:
            raise DataError(f"each known pair is (row in x1, row in x2), got {item!r}")
        out.append((_cell_index(item[0], m1.cell_names, len(m1.X), "x1"),
                    _cell_index(item[1], m2.cell_names, len(m2.X), "x2")))
    if not out:
        raise DataError("known_pairs is empty; pass None for no known pairs")
    if len(set(out)) != len(out):
        raise DataError("known_pairs contains the same pair more than once")
    return np.asarray(out, dtype=np.int64)


class PairSampler:
    """Draws a minibatch from each domain (and of known pairs) on the training device."""

    def __init__(
        self,
        x1: torch.Tensor,
        x2: torch.Tensor,
        batch_size: int,
        seed: int,
        pairs: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> None:
        """``pairs``: the known partners' rows, (k, d1) and (k, d2), row r matching row r."""
        self.x1, self.x2, self.batch_size = x1, x2, batch_size
        self.generator = torch.Generator(device=x1.device).manual_seed(seed)
        self.pairs1, self.pairs2 = pairs if pairs is not None else (None, None)

    def sample(self) -> tuple[torch.Tensor, ...]:
        """Return x1, x2 minibatches and the known pairs (all of them, or a minibatch)."""
        g, b = self.generator, self.batch_size
        i1 = torch.randint(len(self.x1), (b,), generator=g, device=self.x1.device)
        i2 = torch.randint(len(self.x2), (b,), generator=g, device=self.x2.device)
        p1 = p2 = None
        if self.pairs1 is not None:
            if len(self.pairs1) <= b:
                p1, p2 = self.pairs1, self.pairs2
            else:
                ip = torch.randint(len(self.pairs1), (b,), generator=g, device=self.x1.device)
                p1, p2 = self.pairs1[ip], self.pairs2[ip]
        return self.x1[i1], self.x2[i2], p1, p2
