"""From what users pass (ndarray, DataFrame, AnnData) to validated float matrices, the row
sources that hold a domain's preprocessed cells in memory or leave them on disk, and the
minibatch samplers that feed training.

The sampler draws rows with replacement from a torch generator living on the training device, so
a step never waits for the host and a run is reproducible from its seed. (Distributed runs give
each rank its own shard and seed offset; see ``training``.)
"""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from magan.errors import DataError
from magan.preprocessing import Standardizer, Transform

__all__ = [
    "HostPairSampler",
    "InMemoryRows",
    "Matrix",
    "OnDiskRows",
    "PairSampler",
    "RowSource",
    "apply_steps",
    "as_matrix",
    "constant_features",
    "drop_nonfinite_rows",
    "host_matrix",
    "invert_steps",
    "is_out_of_core",
    "iter_chunks",
    "pair_sampler",
    "release_rows",
    "resolve_known_pairs",
    "resolve_shared_features",
]


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


def as_matrix(
    x: Any,
    *,
    name: str = "X",
    layer: str | None = None,
    min_rows: int = 2,
    allow_nonfinite: bool = False,
) -> Matrix:
    """Turn an ndarray, DataFrame, sparse matrix or AnnData into a checked float32 matrix.

    Raises DataError naming ``name`` (e.g. "x1") for empty input, wrong dimensionality,
    non-numeric or complex values, duplicated feature names, values too large for float32 and
    NaN/inf values (with the first offending rows and columns). ``allow_nonfinite`` lets NaN/inf
    through for :func:`drop_nonfinite_rows`; masked entries of a masked array count as NaN.
    """
    values, feature_names, cell_names = _values_and_names(x, name, layer)
    arr = _numeric_array(values, name)
    _check_shape(arr, name, min_rows, feature_names)
    arr = _checked_float32(arr, name, feature_names, allow_nonfinite)
    return Matrix(arr, feature_names, cell_names)


def _values_and_names(x: Any, name: str,
                      layer: str | None) -> tuple[Any, list[str] | None, list[str] | None]:
    """The values inside an AnnData or DataFrame with the names only those carry, so errors and
    outputs can speak of features and cells by name."""
    if _is_anndata(x):
        if layer is not None and layer not in x.layers:
            raise DataError(f"{name}: AnnData has no layer {layer!r}; layers: {list(x.layers)}")
        values = x.layers[layer] if layer is not None else x.X
        if hasattr(values, "toarray"):  # scipy sparse
            values = values.toarray()
        return values, [str(v) for v in x.var_names], [str(v) for v in x.obs_names]
    if hasattr(x, "columns") and hasattr(x, "dtypes"):  # pandas DataFrame
        non_numeric = [c for c, t in zip(x.columns, x.dtypes) if not _numeric_column(t)]
        if non_numeric:
            raise DataError(
                f"{name}: non-numeric columns {non_numeric[:5]}; pass only marker columns "
                "(move labels/ids to the index or a separate table)"
            )
        # float64 with NaN for missing values: nullable Int64/Float64 columns hold pd.NA.
        values = x.to_numpy(dtype=np.float64, na_value=np.nan)
        return values, [str(c) for c in x.columns], [str(i) for i in x.index]
    if layer is not None:
        raise DataError(f"{name}: layer={layer!r} only applies to AnnData input")
    return x, None, None


def _numeric_array(values: Any, name: str) -> np.ndarray:
    """``values`` as a real-valued ndarray (sparse densified, masked entries NaN), refused with a
    named error otherwise, since NumPy would accept objects, text and complex numbers."""
    if hasattr(values, "toarray"):  # a scipy sparse matrix passed directly
        values = values.toarray()
    if isinstance(values, np.ma.MaskedArray):  # masked entries are missing values, not data
        values = values.astype(np.float64).filled(np.nan)
    try:
        arr = np.asarray(values)
    except Exception as exc:  # ragged lists and similar
        raise DataError(f"{name}: cannot be read as a matrix ({exc})") from exc
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)
    ):
        raise DataError(f"{name}: values must be numeric, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise DataError(f"{name}: values are complex ({arr.dtype}); pass real numbers, e.g. "
                        "np.abs(x) or x.real")
    return arr


def _check_shape(arr: np.ndarray, name: str, min_rows: int,
                 feature_names: list[str] | None) -> None:
    """Refuse what is not a cells × features matrix training could use, before any copy."""
    if arr.ndim != 2:
        raise DataError(f"{name}: expected a 2-D cells × features matrix, got shape {arr.shape}")
    n, d = arr.shape
    if d == 0:
        raise DataError(f"{name}: has no features (shape {arr.shape})")
    if n < min_rows:
        raise DataError(f"{name}: needs at least {min_rows} cells, got {n}")
    if feature_names is not None and len(set(feature_names)) != len(feature_names):
        dup = sorted({f for f in feature_names if feature_names.count(f) > 1})
        raise DataError(f"{name}: duplicated feature names {dup[:5]}")


def _checked_float32(arr: np.ndarray, name: str, feature_names: list[str] | None,
                     allow_nonfinite: bool) -> np.ndarray:
    """``arr`` as float32, telling values too large for float32 apart from NaN/inf that were
    there already, since the two need different fixes."""
    source_finite = np.isfinite(arr) if np.issubdtype(arr.dtype, np.floating) else None
    with np.errstate(over="ignore", invalid="ignore"):
        arr = arr.astype(np.float32)
    bad = ~np.isfinite(arr)
    if source_finite is not None:
        overflow = bad & source_finite
        if overflow.any():
            raise DataError(
                f"{name}: {int(overflow.sum())} values are too large for float32 (|x| > 3.4e38),"
                f" first in {_where(overflow, feature_names)}; rescale the data (e.g. divide by "
                "a constant or apply magan.preprocessing.Arcsinh)"
            )
    if bad.any() and not allow_nonfinite:
        raise DataError(
            f"{name}: {int(bad.sum())} NaN/inf values in {int(bad.any(axis=1).sum())} cells, "
            f"{_where(bad, feature_names)} (values beyond float32's range also read as inf); "
            "remove or impute them, or pass "
            "drop_nonfinite=True to fit (--drop-nonfinite on the command line) to drop those cells"
        )
    return arr


def _numeric_column(dtype: Any) -> bool:
    """Real numbers (NumPy or pandas nullable); bool, category, text and complex are not."""
    import pandas as pd

    return (pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
            and not pd.api.types.is_complex_dtype(dtype))


def _where(mask: np.ndarray, feature_names: list[str] | None) -> str:
    """'first rows [...] and features [...]' of a cells × features boolean mask."""
    rows = np.flatnonzero(mask.any(axis=1))[:5].tolist()
    cols = np.flatnonzero(mask.any(axis=0))[:5]
    col_desc = [feature_names[c] for c in cols] if feature_names else cols.tolist()
    return f"first rows {rows} and features {col_desc}"


def constant_features(m: Matrix) -> list[str]:
    """Names (or indices) of zero-variance columns: legal, but they carry no information."""
    if len(m.X) < 2:
        return []
    constant = np.flatnonzero((m.X == m.X[0]).all(axis=0))
    return [m.feature_names[c] if m.feature_names else str(c) for c in constant]


def drop_nonfinite_rows(
    m1: Matrix, m2: Matrix, known: np.ndarray
) -> tuple[Matrix, Matrix, np.ndarray, str]:
    """Drop cells holding NaN/inf from both domains and remap known pairs (row indices).

    The explicit opt-in behind ``fit(..., drop_nonfinite=True)``: a pair that names a dropped
    cell is dropped too. Returns the new matrices, pairs and a one-line summary to warn with.
    """
    kept, notes = [], []
    for m, name in ((m1, "x1"), (m2, "x2")):
        keep = np.isfinite(m.X).all(axis=1)
        n_keep = int(keep.sum())
        if n_keep < 2:
            raise DataError(f"{name}: only {n_keep} of {len(m.X)} cells have no NaN/inf; "
                            "at least 2 are needed")
        if n_keep < len(keep):
            notes.append(f"{name}: dropped {len(keep) - n_keep} of {len(keep)} cells with NaN/inf"
                         f" (first rows {np.flatnonzero(~keep)[:5].tolist()})")
        kept.append(keep)
    new = []
    for m, keep in zip((m1, m2), kept):
        names = [c for c, k in zip(m.cell_names, keep) if k] if m.cell_names else None
        new.append(Matrix(m.X[keep], m.feature_names, names))
    if len(known):
        new_index = [np.cumsum(keep) - 1 for keep in kept]
        ok = kept[0][known[:, 0]] & kept[1][known[:, 1]]
        if not ok.all():
            notes.append(f"{int((~ok).sum())} known pairs named a dropped cell and were dropped")
        known = np.stack([new_index[0][known[ok, 0]], new_index[1][known[ok, 1]]], axis=1)
        known = known.astype(np.int64).reshape(-1, 2)
    return new[0], new[1], known, "; ".join(notes)


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
    if isinstance(spec, Mapping):  # {"CD3": "cd3"}: iterating would pair keys with themselves
        spec = list(spec.items())
    if not isinstance(spec, Iterable):
        raise DataError(f"shared_features must be 'auto' or a list of pairs, got {spec!r}")
    spec = list(spec)
    if not spec:
        raise DataError("shared_features is empty; pass None for no shared features")
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


class _CellLookup:
    """Row of a cell name in O(1) (``list.index`` per pair is quadratic on 100k-cell inputs);
    a name that occurs twice is ambiguous and refused."""

    def __init__(self, names: list[str] | None, n: int, side: str) -> None:
        self.names, self.n, self.side = names, n, side
        self._rows: dict[str, int] | None = None
        self._dups: set[str] = set()

    def __call__(self, spec: Any) -> int:
        n, side = self.n, self.side
        if isinstance(spec, (int, np.integer)) and not isinstance(spec, (bool, np.bool_)):
            if not 0 <= int(spec) < n:
                raise DataError(f"known pair index {spec} is out of range for {side} "
                                f"({n} cells; indices are 0-based)")
            return int(spec)
        if isinstance(spec, str) and self.names is not None:
            if self._rows is None:
                self._rows = {}
                for i, name in enumerate(self.names):
                    if name in self._rows:
                        self._dups.add(name)
                    self._rows.setdefault(name, i)
            if spec in self._dups:
                raise DataError(f"known pair cell {spec!r} occurs more than once among {side}'s "
                                "cell names, so the pair is ambiguous; make cell names unique")
            if spec not in self._rows:
                raise DataError(f"known pair cell {spec!r} not found among {side}'s cells")
            return self._rows[spec]
        raise DataError(
            f"known pairs are row indices (or cell names for named input), got {spec!r}"
        )


def known_pair_items(spec: Any) -> list:
    """Known pairs as given (a list, an (n, 2) array or a two-column DataFrame), as a plain
    list of items, unresolved: so they can be split by position (uncertainty's held-out pairs)."""
    if spec is None:
        return []
    if hasattr(spec, "to_numpy"):  # a two-column DataFrame
        spec = spec.to_numpy()
    if isinstance(spec, np.ndarray):
        return spec.tolist()
    if isinstance(spec, Iterable) and not isinstance(spec, (str, bytes, Mapping)):
        return list(spec)
    raise DataError(f"known_pairs must be a list of (row in x1, row in x2), got {spec!r}")


def resolve_known_pairs(spec: Any, m1: Matrix, m2: Matrix) -> np.ndarray:
    """Resolve known pairs (row indices or cell names) into a (k, 2) int64 array.

    Refuses out-of-range indices, unknown or ambiguous names and a pair listed twice. A cell
    paired with two different partners is allowed (replicates) but warned about: the known-pairs
    loss then pulls it towards their average.
    """
    if spec is None:
        return np.zeros((0, 2), dtype=np.int64)
    items = known_pair_items(spec)
    lookup1 = _CellLookup(m1.cell_names, len(m1.X), "x1")
    lookup2 = _CellLookup(m2.cell_names, len(m2.X), "x2")
    out = []
    for item in items:
        if not isinstance(item, Sequence) or isinstance(item, str) or len(item) != 2:
            raise DataError(f"each known pair is (row in x1, row in x2), got {item!r}")
        out.append((lookup1(item[0]), lookup2(item[1])))
    if not out:
        raise DataError("known_pairs is empty; pass None for no known pairs")
    if len(set(out)) != len(out):
        seen: set[tuple[int, int]] = set()
        dup = [p for p in out if p in seen or seen.add(p)]
        raise DataError(f"known_pairs contains the same pair more than once: {dup[:5]}")
    arr = np.asarray(out, dtype=np.int64)
    for side, col in (("x1", 0), ("x2", 1)):
        rows, counts = np.unique(arr[:, col], return_counts=True)
        if (counts > 1).any():
            warnings.warn(f"known_pairs: {int((counts > 1).sum())} cells of {side} are paired "
                          f"with several partners (e.g. row {int(rows[counts > 1][0])}); each "
                          "is pulled towards their average", stacklevel=3)
    return arr


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


# ---- out-of-core input: data stays on disk (np.memmap, backed AnnData, h5py) -----------------
def is_out_of_core(x: Any, layer: str | None = None) -> bool:
    """True for inputs read lazily from disk: an ``np.memmap``, an h5py dataset, or an AnnData
    opened with ``backed="r"`` (its ``.X``)."""
    if _is_anndata(x):
        return bool(getattr(x, "isbacked", False)) and layer is None
    return isinstance(x, np.memmap) or type(x).__module__.startswith("h5py")


def host_matrix(x: Any, *, name: str = "X", layer: str | None = None,
                cell_names: bool = False) -> Matrix:
    """Like :func:`as_matrix` but without reading the values: checks shape and dtype and keeps
    ``X`` as the on-disk array (memmap or h5py dataset). Values are checked chunk by chunk
    later (:func:`iter_chunks`). Cell names of a backed AnnData are read only if asked for:
    10^7 names cost more memory than the model."""
    feature_names = names = None
    values = x
    if _is_anndata(x):
        if layer is not None:
            raise DataError(f"{name}: layer={layer!r} is not supported for backed AnnData; "
                            "load it into memory or pass the layer as its own array")
        values = x.X
        feature_names = [str(v) for v in x.var_names]
        if cell_names:
            names = [str(v) for v in x.obs_names]
    if hasattr(values, "to_memory") and not hasattr(values, "dtype"):  # anndata sparse dataset
        raise DataError(f"{name}: sparse backed matrices are not supported out-of-core")
    dtype = np.dtype(values.dtype)
    if not (np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.integer)):
        raise DataError(f"{name}: values must be real numbers, got dtype {dtype}")
    if len(values.shape) != 2:
        raise DataError(f"{name}: expected a 2-D cells × features matrix, got shape "
                        f"{values.shape}")
    n, d = values.shape
    if d == 0:
        raise DataError(f"{name}: has no features (shape {values.shape})")
    if n < 2:
        raise DataError(f"{name}: needs at least 2 cells, got {n}")
    if feature_names is not None and len(set(feature_names)) != len(feature_names):
        raise DataError(f"{name}: duplicated feature names")
    return Matrix(values, feature_names, names)


def release_rows(x: Any, start: int, stop: int) -> None:
    """Unmap the pages of rows [start, stop) of a C-ordered np.memmap from this process: they
    stay in the OS page cache, but no longer count towards its resident memory."""
    mm = getattr(x, "_mmap", None)
    if mm is None or not hasattr(mm, "madvise") or not x.flags.c_contiguous:
        return
    import mmap

    row = x.strides[0]
    first = x.offset + start * row if hasattr(x, "offset") else start * row
    page = mmap.PAGESIZE
    lo = (first // page) * page
    hi = x.offset + stop * row if hasattr(x, "offset") else stop * row
    try:
        mm.madvise(mmap.MADV_DONTNEED, lo, max(0, min(hi, len(mm)) - lo))
    except (OSError, ValueError):
        pass


def iter_chunks(x: Any, chunk: int = 1 << 16):
    """Yield (start, float32 copy of rows [start, start + chunk)) of a (possibly on-disk)
    matrix, releasing each memmap chunk's pages once copied."""
    n = x.shape[0]
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        block = np.array(x[start:stop], dtype=np.float32)  # a copy, never a view of the map
        release_rows(x, start, stop)
        yield start, block


def take_rows(x: Any, rows: np.ndarray) -> np.ndarray:
    """Rows ``rows`` (any order, repeats allowed) of a matrix as a float32 copy, in that order.
    On-disk matrices are read once per distinct row, in increasing order (h5py requires
    increasing unique indices; sorted reads are also kinder to disks)."""
    rows = np.asarray(rows, dtype=np.int64)
    if type(x) is np.ndarray:
        return np.array(x[rows], dtype=np.float32)
    uniq, inverse = np.unique(rows, return_inverse=True)
    block = _pread_rows(x, uniq) if isinstance(x, np.memmap) else None
    if block is None:
        block = x[uniq]
    return np.asarray(block, dtype=np.float32)[inverse.reshape(-1)]


def _pread_rows(x: np.memmap, rows: np.ndarray) -> np.ndarray | None:
    """Rows of a C-ordered memmap read with pread, not through the mapping: a fault on a
    mapped file maps a whole page-cache folio (measured: ~2 MB per random row on Linux 6.18),
    so 20 random minibatches put 1.1 GB of a 1.2 GB file into resident memory."""
    mm = getattr(x, "_mmap", None)
    if mm is None or not x.filename or not x.flags.c_contiguous or x.ndim != 2:
        return None
    import mmap as _mmap

    base = np.frombuffer(mm, dtype=np.uint8).ctypes.data
    start = x.offset - x.offset % _mmap.ALLOCATIONGRANULARITY
    first = start + (x.ctypes.data - base)  # file offset of x[0, 0]
    row = x.strides[0]
    out = np.empty((len(rows), x.shape[1]), dtype=x.dtype)
    view = memoryview(out.reshape(-1).view(np.uint8))
    fd = os.open(x.filename, os.O_RDONLY)
    try:
        for k, r in enumerate(rows.tolist()):
            view[k * row:(k + 1) * row] = os.pread(fd, row, first + r * row)
    finally:
        os.close(fd)
    return out


def gather_rows(x: Any, rows: np.ndarray) -> np.ndarray:
    """Rows ``rows`` as a float32 copy, in increasing row order (for minibatches, where the
    order within a batch does not matter)."""
    return take_rows(x, np.sort(rows))


class HostPairSampler:
    """A :class:`PairSampler` for data that stays on the host (or on disk): each step draws row
    indices from a seeded CPU torch generator, reads only those rows (sorted), preprocesses
    them and moves the minibatch to the device. Memory is O(batch), not O(cells).

    ``rows1``/``rows2`` restrict sampling to a shard (distributed runs); ``preprocess1``/``2``
    are callables from raw float32 rows to model inputs.
    """

    def __init__(
        self,
        x1: Any,
        x2: Any,
        batch_size: int,
        seed: int,
        *,
        preprocess1: Any,
        preprocess2: Any,
        device: torch.device,
        rows1: np.ndarray | None = None,
        rows2: np.ndarray | None = None,
        pairs: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> None:
        self.x1, self.x2, self.batch_size, self.device = x1, x2, batch_size, device
        self.preprocess1, self.preprocess2 = preprocess1, preprocess2
        self.rows1 = np.arange(x1.shape[0]) if rows1 is None else np.asarray(rows1)
        self.rows2 = np.arange(x2.shape[0]) if rows2 is None else np.asarray(rows2)
        # On the CPU whatever the device: the indices are needed on the host to read rows.
        self.generator = torch.Generator().manual_seed(seed)
        self.pairs1, self.pairs2 = pairs if pairs is not None else (None, None)
        self._draws = 0

    def _draw(self, x: Any, rows: np.ndarray, preprocess: Any) -> torch.Tensor:
        i = torch.randint(len(rows), (self.batch_size,), generator=self.generator).numpy()
        batch = preprocess(gather_rows(x, rows[i]))
        self._draws += 1
        if self._draws % 512 == 0:  # unmap the pages random reads touched (RSS stays O(batch))
            release_rows(x, 0, x.shape[0])
        return torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(
            self.device, non_blocking=True)

    def sample(self) -> tuple[torch.Tensor, ...]:
        """Return x1, x2 minibatches and the known pairs (all of them, or a minibatch)."""
        b1 = self._draw(self.x1, self.rows1, self.preprocess1)
        b2 = self._draw(self.x2, self.rows2, self.preprocess2)
        p1 = p2 = None
        if self.pairs1 is not None:
            if len(self.pairs1) <= self.batch_size:
                p1, p2 = self.pairs1, self.pairs2
            else:
                ip = torch.randint(len(self.pairs1), (self.batch_size,),
                                   generator=self.generator).to(self.pairs1.device)
                p1, p2 = self.pairs1[ip], self.pairs2[ip]
        return b1, b2, p1, p2


# ---- row sources: one interface for in-memory and on-disk training data ----------------------
def apply_steps(steps: Sequence[Transform], X: Any) -> np.ndarray:
    """``X`` through a domain's fitted preprocessing (its ``preprocessing1_``/``2_`` list), as
    float32: the units the networks work in."""
    for step in steps:
        X = step.transform(X)
    return np.asarray(X, dtype=np.float32)


def invert_steps(steps: Sequence[Transform], X: Any) -> np.ndarray:
    """Back from the networks' units to the user's: the steps inverted in reverse order."""
    for step in reversed(steps):
        X = step.inverse_transform(X)
    return np.asarray(X, dtype=np.float32)


ScalerFactory = Callable[[int], Standardizer]  # d features -> an unfitted last step


class RowSource:
    """One domain's training cells behind one interface, so that training has no in-memory /
    on-disk branches: ``steps`` (the fitted preprocessing), ``take(rows)`` (preprocessed rows),
    a sampler over them and a fingerprint for checkpoints. Built by :meth:`fit` of
    :class:`InMemoryRows` or :class:`OnDiskRows`."""

    on_disk = False

    def __init__(self, raw: Any, steps: list[Transform]) -> None:
        self.raw, self.steps = raw, steps

    @property
    def n(self) -> int:
        return int(self.raw.shape[0])

    def take(self, rows: np.ndarray) -> np.ndarray:
        """Rows ``rows`` (any order), preprocessed."""
        return apply_steps(self.steps, take_rows(self.raw, rows))

    def fingerprint(self) -> list[np.ndarray]:
        """Arrays that identify these cells for a checkpoint's fingerprint."""
        raise NotImplementedError


class InMemoryRows(RowSource):
    """Cells preprocessed once into memory (``values``); minibatches are drawn on the device."""

    def __init__(self, raw: Any, steps: list[Transform]) -> None:
        super().__init__(raw, steps)
        self.values = apply_steps(steps, raw)

    @classmethod
    def fit(cls, X: np.ndarray, user: Transform | None, scaler: ScalerFactory,
            name: str) -> InMemoryRows:
        """Fit the user's transform (if any), then the model's scaling, on all of ``X``."""
        steps: list[Transform] = []
        Z = X
        if user is not None:
            step = copy.deepcopy(user)
            Z = step.fit_transform(X)
            if not np.isfinite(Z).all():
                raise DataError(f"{name}: preprocessing {type(user).__name__} produced NaN/inf "
                                "(e.g. log of negative values)")
            steps.append(step)
        steps.append(scaler(Z.shape[1]).fit(Z))
        return cls(X, steps)

    def take(self, rows: np.ndarray) -> np.ndarray:
        return self.values[rows]

    def fingerprint(self) -> list[np.ndarray]:
        return [self.values]


class OnDiskRows(RowSource):
    """Cells left where they are (memmap, h5py, backed AnnData); each minibatch is read and
    preprocessed when drawn, so memory does not grow with the number of cells."""

    on_disk = True
    fit_rows = 131_072  # a data-dependent user transform is fitted on at most this many cells

    @classmethod
    def fit(cls, X: Any, user: Transform | None, scaler: ScalerFactory, name: str,
            seed: int, chunk: int = 1 << 16) -> OnDiskRows:
        """One pass over chunks, O(chunk) memory. The scaling's mean and variance are merged
        chunk by chunk in float64 (Chan et al.'s parallel update), so they match a full-array
        fit to rounding; the pass also checks every value is finite and warns about constant
        features."""
        steps: list[Transform] = []
        n, d = X.shape
        if user is not None:
            step = copy.deepcopy(user)
            rng = np.random.default_rng(seed)
            rows = np.arange(n) if n <= cls.fit_rows else np.sort(
                rng.choice(n, cls.fit_rows, replace=False))
            step.fit(take_rows(X, rows))
            steps.append(step)
        count, mean, m2 = 0, np.zeros(d), np.zeros(d)
        for start, block in iter_chunks(X, chunk):
            Z = steps[0].transform(block) if steps else block
            _check_finite_chunk(Z, block, start, name, user if steps else None)
            Z = np.asarray(Z, dtype=np.float64)
            k = len(Z)
            bmean = Z.mean(axis=0)
            bm2 = ((Z - bmean) ** 2).sum(axis=0)
            delta = bmean - mean
            total = count + k
            mean = mean + delta * (k / total)
            m2 = m2 + bm2 + delta ** 2 * (count * k / total)
            count = total
        std = np.sqrt(m2 / count)
        constant = np.flatnonzero(std == 0)
        if len(constant):
            warnings.warn(f"{name}: features {constant[:10].tolist()} are constant (zero "
                          "variance); they carry no information for the alignment",
                          stacklevel=4)
        steps.append(scaler(d).set_moments(mean, std))
        return cls(X, steps)

    def fingerprint(self) -> list[np.ndarray]:
        """Shape, fitted scaling and the first and last 1,024 rows, not every value: hashing
        10^7 cells would cost a full read."""
        n = self.n
        head, tail = np.arange(min(n, 1024)), np.arange(max(0, n - 1024), n)
        return [np.asarray(self.raw.shape), self.steps[-1].mean_, self.steps[-1].scale_,
                take_rows(self.raw, head), take_rows(self.raw, tail)]


def _check_finite_chunk(Z: np.ndarray, block: np.ndarray, start: int, name: str,
                        user: Transform | None) -> None:
    """Name the first rows of a chunk whose values (or preprocessed values) are not finite."""
    bad = ~np.isfinite(Z)
    if bad.any():
        rows = (start + np.flatnonzero(bad.any(axis=1))[:5]).tolist()
        what = (f"preprocessing {type(user).__name__} produced NaN/inf"
                if user is not None and np.isfinite(block).all() else "NaN/inf values")
        raise DataError(f"{name}: {what} in rows {rows} (out-of-core input is "
                        "checked chunk by chunk; clean the file first)")


def pair_sampler(source1: RowSource, source2: RowSource, batch_size: int, seed: int,
                 device: torch.device, known: np.ndarray,
                 shards: tuple[np.ndarray, np.ndarray]) -> PairSampler | HostPairSampler:
    """The minibatch sampler over two row sources and the known pairs' rows: on the device for
    cells in memory, from the host for cells on disk. ``shards``: each domain's rows this
    process trains on (all of them outside a distributed run)."""
    known_rows = None
    if len(known):
        known_rows = tuple(torch.as_tensor(s.take(known[:, c]), device=device)
                           for c, s in enumerate((source1, source2)))
    if not (source1.on_disk or source2.on_disk):
        t1, t2 = (torch.as_tensor(s.values[r], device=device)
                  for s, r in zip((source1, source2), shards))
        return PairSampler(t1, t2, batch_size, seed=seed, pairs=known_rows)
    return HostPairSampler(
        source1.raw, source2.raw, batch_size, seed,
        preprocess1=lambda a: apply_steps(source1.steps, a),
        preprocess2=lambda a: apply_steps(source2.steps, a), device=device,
        rows1=shards[0], rows2=shards[1], pairs=known_rows)
