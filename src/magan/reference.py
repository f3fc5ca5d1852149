"""The simplest method MAGAN should beat: kNN imputation on the features both panels share.

Why this lives in the package: ``magan demo`` compares MAGAN with it on the bundled CyTOF
batches, so the installed library must carry it. The other peer methods of the paper's
experiments (manifold alignment, Gromov-Wasserstein OT, Harmony) are in the repository's
``experiments/baselines.py``, which imports this function from here rather than keeping a copy.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from sklearn.neighbors import NearestNeighbors

from magan.errors import DataError
from magan.metrics import _as_matrix, _check_k

__all__ = ["knn_impute_shared"]


def _as_pairs(pairs: Iterable[Sequence[int]], n1: int, n2: int, name: str, what: str) -> np.ndarray:
    """Validate (i, j) index pairs: non-empty, integer, 0 <= i < n1 and 0 <= j < n2."""
    arr = np.asarray(list(pairs))
    if arr.size == 0:
        raise DataError(
            f"{name} is empty; at least one ({what} in x1, {what} in x2) pair is needed"
        )
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise DataError(f"{name} must be a list of (i, j) pairs; got an array of shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise DataError(f"{name} must hold integer indices; got dtype {arr.dtype}")
    bad = (arr[:, 0] < 0) | (arr[:, 0] >= n1) | (arr[:, 1] < 0) | (arr[:, 1] >= n2)
    if bad.any():
        i, j = arr[np.argmax(bad)]
        raise DataError(
            f"{name} has pair ({i}, {j}) out of range: x1 has {n1} {what}s and x2 has {n2}"
        )
    return arr


def knn_impute_shared(
    x1: np.ndarray,
    x2: np.ndarray,
    shared_pairs: Iterable[Sequence[int]],
    k: int = 10,
) -> np.ndarray:
    """Impute every domain-2 feature of each x1 cell from its k nearest x2 cells.

    Why: when the two panels share some markers (the paper's "backbone"), the simplest
    translation is to look up, on the shared markers only, the x2 cells most like each x1 cell
    and average their full x2 profiles (the idea behind CytoBackBone and MARIO's matching). It
    needs no training but assumes the shared markers are on the same scale in both domains and
    carry all the information about the rest: standardise or batch-correct them first.

    ``shared_pairs`` lists (column in x1, column in x2) for each shared feature. Returns an
    n1 x d2 array (the shared columns too are replaced by their neighbour average).
    """
    a = _as_matrix(x1, "x1")
    b = _as_matrix(x2, "x2")
    cols = _as_pairs(shared_pairs, a.shape[1], b.shape[1], "shared_pairs", "column")
    k = _check_k(k, b.shape[0], "x2 cells")
    nn = NearestNeighbors(n_neighbors=k).fit(b[:, cols[:, 1]])
    idx = nn.kneighbors(a[:, cols[:, 0]], return_distance=False)  # (n1, k)
    return b[idx].mean(axis=1)
