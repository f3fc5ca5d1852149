"""How well two domains were aligned: scores computed from plain arrays, numpy/scipy/sklearn only.

Every function takes cells as rows. Which scores apply depends on what is known about the data:

- true 1:1 pairs (row i of one domain is row i of the other): :func:`foscttm`, :func:`pair_error`;
- cell labels in both domains: :func:`label_transfer`, :func:`cluster_mapping`,
  :func:`label_preservation`;
- measured values of imputed features: :func:`marker_correlation`, and for stated intervals
  :func:`interval_calibration`;
- nothing but the two point clouds: :func:`mixing_score`.

Neighbour searches go through :class:`sklearn.neighbors.NearestNeighbors` and all-pairs distances
through :func:`scipy.spatial.distance.cdist` in row blocks, so 10^5 cells fit in memory (time is
still quadratic for :func:`foscttm`, which by definition compares every cell with every other).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, overload

import numpy as np
from scipy.spatial.distance import cdist
from scipy.stats import rankdata
from sklearn.metrics import f1_score
from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors

from magan.errors import ConfigError, DataError

__all__ = [
    "ClusterMapping",
    "LabelTransfer",
    "cluster_mapping",
    "foscttm",
    "interval_calibration",
    "label_preservation",
    "label_transfer",
    "marker_correlation",
    "mixing_score",
    "pair_error",
]

# Elements of one distance block: 2**22 float64 = 32 MiB, whatever the number of cells.
_BLOCK_ELEMENTS = 2**22


# --------------------------------------------------------------------------- input checks


def _as_matrix(x: object, name: str, *, min_rows: int = 1) -> np.ndarray:
    """Return ``x`` as a finite 2-D float64 array, or raise DataError naming ``name``."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2:
        raise DataError(f"{name} must be a 2-D array (cells x features); got shape {arr.shape}")
    if arr.shape[0] < min_rows or arr.shape[1] == 0:
        raise DataError(
            f"{name} is empty or too small: shape {arr.shape}, need at least {min_rows} row(s) "
            "and 1 column"
        )
    if not np.isfinite(arr).all():
        raise DataError(f"{name} contains NaN or infinite values")
    return arr


def _as_labels(labels: object, n: int, name: str) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise DataError(f"{name} must be 1-D with one label per cell ({n}); got shape {arr.shape}")
    return arr


def _same_columns(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    if a.shape[1] != b.shape[1]:
        raise DataError(
            f"{name_a} has {a.shape[1]} features but {name_b} has {b.shape[1]}; both must be in "
            "the same space"
        )


def _same_shape(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    if a.shape != b.shape:
        raise DataError(
            f"{name_a} has shape {a.shape} but {name_b} has shape {b.shape}; row i of one must "
            "be the partner of row i of the other"
        )


def _check_k(k: int, n_available: int, what: str) -> int:
    if int(k) != k or k < 1:
        raise ConfigError(f"The 'k' parameter must be a positive integer. Got {k!r} instead.")
    if n_available < 1:
        raise DataError(f"no {what} to take neighbours from")
    return min(int(k), n_available)


# --------------------------------------------------------------------------- paired data


def _frac_closer(a: np.ndarray, b: np.ndarray, metric: str) -> np.ndarray:
    """For each row i of ``a``: fraction of rows j != i of ``b`` strictly closer than ``b[i]``."""
    n = a.shape[0]
    out = np.empty(n)
    step = max(1, _BLOCK_ELEMENTS // n)
    for start in range(0, n, step):
        stop = min(start + step, n)
        d = cdist(a[start:stop], b, metric=metric)  # (block, n)
        rows = np.arange(stop - start)
        true = d[rows, start + rows]  # taken from the same block, so ties compare exactly
        out[start:stop] = (d < true[:, None]).sum(axis=1)
    return out / (n - 1)


@overload
def foscttm(
    x1_in_2: np.ndarray,
    x2: np.ndarray,
    *,
    metric: str = ...,
    per_sample: Literal[False] = ...,
) -> float: ...


@overload
def foscttm(
    x1_in_2: np.ndarray,
    x2: np.ndarray,
    *,
    metric: str = ...,
    per_sample: Literal[True],
) -> tuple[float, np.ndarray, np.ndarray]: ...


def foscttm(
    x1_in_2: np.ndarray,
    x2: np.ndarray,
    *,
    metric: str = "euclidean",
    per_sample: bool = False,
) -> float | tuple[float, np.ndarray, np.ndarray]:
    """Fraction Of Samples Closer Than the True Match, for data whose rows are 1:1 pairs.

    Why: when the same cells were measured twice (row i of ``x1_in_2`` ↔ row i of ``x2``), a good
    alignment puts each cell nearer its own partner than other cells. For cell i of domain 1 this
    is the fraction of the other n-1 domain-2 cells strictly closer to it than its partner; the
    same is done from domain 2's side, and the result is the mean over all cells of both
    directions.

    Range [0, 1]: 0 = every partner is the nearest, 0.5 = chance (random placement), 1 = every
    partner is the farthest. Lower is better. ``x1_in_2`` and ``x2`` must share a space: either
    domain 1 translated into domain 2, or both in a common embedding. ``metric`` is any
    :func:`scipy.spatial.distance.cdist` metric.

    Returns the mean; with ``per_sample=True``, ``(mean, per_x1, per_x2)`` where ``per_x1[i]`` is
    the value for row i of ``x1_in_2`` (looking among rows of ``x2``) and ``per_x2`` the reverse.
    Cost: O(n^2) time, memory bounded by row blocks.
    """
    a = _as_matrix(x1_in_2, "x1_in_2", min_rows=2)
    b = _as_matrix(x2, "x2", min_rows=2)
    _same_shape(a, b, "x1_in_2", "x2")
    per_1 = _frac_closer(a, b, metric)
    per_2 = _frac_closer(b, a, metric)
    mean = float((per_1.mean() + per_2.mean()) / 2)
    if per_sample:
        return mean, per_1, per_2
    return mean


def pair_error(
    pred: np.ndarray, target: np.ndarray, *, per_feature: bool = False
) -> float | np.ndarray:
    """Mean squared error between each translated cell and its measured partner.

    Why: with 1:1 pairs the translation can be checked value by value, not only by neighbours.
    Pass *standardised* values (each feature centred and scaled to unit variance in the target
    domain) so that every feature counts alike and 1.0 means "as bad as predicting the mean".
    Range [0, inf), lower is better. With ``per_feature=True`` returns one MSE per column.
    """
    p = _as_matrix(pred, "pred")
    t = _as_matrix(target, "target")
    _same_shape(p, t, "pred", "target")
    sq = (p - t) ** 2
    if per_feature:
        return sq.mean(axis=0)
    return float(sq.mean())


# --------------------------------------------------------------------------- labelled data


@dataclass(frozen=True)
class LabelTransfer:
    """Result of :func:`label_transfer`.

    ``accuracy`` and ``macro_f1`` lie in [0, 1] (higher is better); ``per_class_f1`` maps each
    label present in the query truth or prediction to its F1; ``predicted`` is one label per cell.
    """

    accuracy: float
    macro_f1: float
    per_class_f1: dict[Hashable, float]
    predicted: np.ndarray


def label_transfer(
    x_query: np.ndarray,
    x_ref: np.ndarray,
    labels_ref: Sequence[Hashable] | np.ndarray,
    labels_query: Sequence[Hashable] | np.ndarray,
    *,
    k: int = 15,
) -> LabelTransfer:
    """Predict query labels by majority vote of the k nearest reference cells, and score them.

    Why: after alignment, cells of one type should land among reference cells of the same type,
    so a kNN classifier trained on the reference alone should label the query correctly.
    ``x_query`` and ``x_ref`` must share a space (e.g. domain 1 translated into domain 2, and
    domain 2). Macro F1 weights each class equally, so rare populations count as much as large
    ones; accuracy is dominated by the large ones.
    """
    q = _as_matrix(x_query, "x_query")
    r = _as_matrix(x_ref, "x_ref")
    _same_columns(q, r, "x_query", "x_ref")
    y_ref = _as_labels(labels_ref, r.shape[0], "labels_ref")
    y_q = _as_labels(labels_query, q.shape[0], "labels_query")
    k = _check_k(k, r.shape[0], "reference cells")
    pred = KNeighborsClassifier(n_neighbors=k).fit(r, y_ref).predict(q)
    classes = np.unique(np.concatenate([y_q, pred]))
    f1 = f1_score(y_q, pred, labels=classes, average=None, zero_division=0)
    return LabelTransfer(
        accuracy=float(np.mean(pred == y_q)),
        macro_f1=float(np.mean(f1)),
        per_class_f1={_plain(c): float(v) for c, v in zip(classes, f1, strict=True)},
        predicted=pred,
    )


def _plain(label: object) -> Hashable:
    """numpy scalar -> Python scalar, so result dicts compare and print like user labels."""
    return label.item() if isinstance(label, np.generic) else label  # type: ignore[return-value]


@dataclass(frozen=True)
class ClusterMapping:
    """Result of :func:`cluster_mapping`.

    ``mapping[s]`` is the target cluster most cells of source cluster ``s`` landed on, and
    ``purity[s]`` the fraction of them that did (in (0, 1]). ``counts[s][t]`` is how many cells of
    ``s`` landed on ``t``. With an ``expected`` mapping: ``cluster_accuracy`` is the fraction of
    source clusters mapped to their expected target, ``cell_accuracy`` the fraction of cells (of
    clusters named in ``expected``) that landed on it; both None otherwise.
    """

    mapping: dict[Hashable, Hashable]
    purity: dict[Hashable, float]
    counts: dict[Hashable, dict[Hashable, int]]
    cluster_accuracy: float | None
    cell_accuracy: float | None


def cluster_mapping(
    translated: np.ndarray,
    source_labels: Sequence[Hashable] | np.ndarray,
    target: np.ndarray,
    target_labels: Sequence[Hashable] | np.ndarray,
    *,
    method: Literal["centre", "knn"] = "centre",
    k: int = 15,
    expected: Mapping[Hashable, Hashable] | None = None,
) -> ClusterMapping:
    """Which target cluster each source cluster lands on after translation.

    Why: without 1:1 pairs, the paper's check is whether, e.g., domain-1 T cells go to domain-2
    T cells. Each translated cell gets a target cluster: the nearest target cluster centre
    (``method="centre"``; centres are the per-label means of ``target``, so passing one row per
    cluster centre as ``target`` also works) or the majority label of its ``k`` nearest target
    cells (``method="knn"``). Each source cluster then maps to the target cluster most of its
    cells received. ``expected`` (source label -> target label) scores the result; source
    clusters absent from ``expected`` are reported but not scored.
    """
    x = _as_matrix(translated, "translated")
    t = _as_matrix(target, "target")
    _same_columns(x, t, "translated", "target")
    src = _as_labels(source_labels, x.shape[0], "source_labels")
    tgt = _as_labels(target_labels, t.shape[0], "target_labels")

    if method == "centre":
        names = np.unique(tgt)
        centres = np.stack([t[tgt == c].mean(axis=0) for c in names])
        nearest = NearestNeighbors(n_neighbors=1).fit(centres).kneighbors(x, return_distance=False)
        assigned = names[nearest[:, 0]]
    elif method == "knn":
        k = _check_k(k, t.shape[0], "target cells")
        assigned = KNeighborsClassifier(n_neighbors=k).fit(t, tgt).predict(x)
    else:
        raise ConfigError(
            f"The 'method' parameter of cluster_mapping must be 'centre' or 'knn'. Got {method!r} "
            "instead."
        )

    mapping: dict[Hashable, Hashable] = {}
    purity: dict[Hashable, float] = {}
    counts: dict[Hashable, dict[Hashable, int]] = {}
    for s in np.unique(src):
        got, n = np.unique(assigned[src == s], return_counts=True)
        key = _plain(s)
        counts[key] = {_plain(g): int(c) for g, c in zip(got, n, strict=True)}
        mapping[key] = _plain(got[np.argmax(n)])
        purity[key] = float(n.max() / n.sum())

    cluster_acc = cell_acc = None
    if expected is not None:
        scored = [s for s in mapping if s in expected]
        if not scored:
            raise DataError("expected names none of the source clusters; nothing to score")
        cluster_acc = float(np.mean([mapping[s] == expected[s] for s in scored]))
        right = sum(counts[s].get(expected[s], 0) for s in scored)
        total = sum(sum(counts[s].values()) for s in scored)
        cell_acc = float(right / total)
    return ClusterMapping(mapping, purity, counts, cluster_acc, cell_acc)


# --------------------------------------------------------------------------- imputed markers


def marker_correlation(
    imputed: np.ndarray,
    measured: np.ndarray,
    names: Sequence[str] | None = None,
) -> dict[str, np.ndarray]:
    """Pearson and Spearman correlation, per marker, between imputed and measured values.

    Why: the paper judges imputation of a marker missing from one panel by how well it tracks
    the measured marker across the same cells (row i ↔ row i). Range [-1, 1] each, 1 = perfect
    monotone (Spearman) or linear (Pearson) agreement. A marker constant in either array has no
    defined correlation: it gets NaN, silently (use ``np.nanmean`` to summarise).

    Returns a dict of columns, ``{"marker", "pearson", "spearman"}``, one entry per marker, so
    ``pandas.DataFrame(result)`` gives a table. ``names`` default to "0", "1", ...
    """
    a = _as_matrix(imputed, "imputed", min_rows=2)
    b = _as_matrix(measured, "measured", min_rows=2)
    _same_shape(a, b, "imputed", "measured")
    if names is None:
        marker = np.array([str(i) for i in range(a.shape[1])])
    else:
        marker = np.asarray(names, dtype=str)
        if marker.shape != (a.shape[1],):
            raise DataError(f"names has {marker.size} entries but there are {a.shape[1]} markers")
    return {
        "marker": marker,
        "pearson": _columnwise_pearson(a, b),
        "spearman": _columnwise_pearson(rankdata(a, axis=0), rankdata(b, axis=0)),
    }


def interval_calibration(
    mean: np.ndarray, lower: np.ndarray, upper: np.ndarray, truth: np.ndarray,
) -> dict[str, float]:
    """Is a stated interval honest? ``coverage`` (fraction of true values inside [lower, upper]:
    0.9 for a calibrated 90% interval), ``mean_width`` and ``width_error_spearman``, the
    Spearman correlation between each interval's width and its actual error ``|mean - truth|``
    (> 0: wider where the value is worse; NaN when every width is equal).

    Why both: coverage alone rewards one wide interval for everything; the correlation says
    whether the width tells good values from bad ones. All arrays have one shape (cells ×
    features); values are pooled.
    """
    arrays = [_as_matrix(v, n) for v, n in ((mean, "mean"), (lower, "lower"), (upper, "upper"),
                                             (truth, "truth"))]
    for a, n in zip(arrays[1:], ("lower", "upper", "truth"), strict=True):
        _same_shape(arrays[0], a, "mean", n)
    m, lo, hi, t = arrays
    if (lo > hi).any():
        raise DataError("lower exceeds upper for some values: not an interval")
    width, err = (hi - lo).ravel(), np.abs(m - t).ravel()
    rho = (np.nan if np.ptp(width) == 0 or np.ptp(err) == 0
           else float(np.corrcoef(rankdata(width), rankdata(err))[0, 1]))
    return {"coverage": float(((t >= lo) & (t <= hi)).mean()), "mean_width": float(width.mean()),
            "width_error_spearman": rho}


def _columnwise_pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # A column counts as constant when its spread is at rounding level relative to its values:
    # testing for exactly 0 fails because subtracting a float mean leaves rounding noise.
    tol = 8 * np.finfo(np.float64).eps * np.sqrt(a.shape[0])
    const = np.zeros(a.shape[1], dtype=bool)
    centred = []
    for m in (a, b):
        c = m - m.mean(axis=0)
        norm = np.sqrt((c * c).sum(axis=0))
        const |= norm <= tol * np.sqrt((m * m).sum(axis=0))
        centred.append(c / np.where(norm > 0, norm, 1.0))
    out = np.clip((centred[0] * centred[1]).sum(axis=0), -1.0, 1.0)
    out[const] = np.nan
    return out


# --------------------------------------------------------------------------- unpaired, unlabelled


def _joint_neighbours(a: np.ndarray, b: np.ndarray, k: int) -> np.ndarray:
    """k nearest neighbours (self excluded) of every cell of ``[a; b]`` within ``[a; b]``."""
    x = np.vstack([a, b])
    k = _check_k(k, x.shape[0] - 1, "other cells")
    idx = NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x, return_distance=False)
    # Drop the cell itself; with duplicate points it may not come first, so remove it by value.
    rows = np.arange(x.shape[0])[:, None]
    not_self = idx != rows
    keep = np.where(not_self.all(axis=1)[:, None], np.arange(k + 1) < k, not_self)
    return idx[keep].reshape(x.shape[0], k)


def mixing_score(a: np.ndarray, b: np.ndarray, *, k: int = 15) -> float:
    """How well the two domains intermix: 1 ≈ perfectly mixed, 0 = not at all.

    Why: with no pairs or labels, an alignment should at least leave no region occupied by one
    domain alone. For each cell of the joint set ``[a; b]``, take the fraction of its ``k``
    nearest neighbours (itself excluded) that come from the other domain, divided by the fraction
    expected if domain membership were random (``n_other / (n - 1)``). The score is the mean of
    that ratio over each domain's cells, then averaged over the two domains so unequal sizes
    weigh alike. Range [0, ~1]; values a little above 1 mean neighbours lean towards the other
    domain (e.g. interleaved grids), which is as mixed as it gets.

    This is magan's own score, not the scib-metrics one. It is close to Seurat's alignment score
    (Butler et al. 2018) and, like scib's iLISI and kBET, measures local batch mixing, but it is a
    plain kNN fraction (no kernel weighting, no test statistic) with a size correction. A high
    score says nothing about whether the right cells met: pair it with
    :func:`label_preservation`.
    """
    a = _as_matrix(a, "a")
    b = _as_matrix(b, "b")
    _same_columns(a, b, "a", "b")
    idx = _joint_neighbours(a, b, k)
    n_a, n = a.shape[0], a.shape[0] + b.shape[0]
    from_b = idx >= n_a
    other = np.where((np.arange(n) < n_a)[:, None], from_b, ~from_b).mean(axis=1)
    score_a = other[:n_a].mean() / (b.shape[0] / (n - 1))
    score_b = other[n_a:].mean() / (n_a / (n - 1))
    return float((score_a + score_b) / 2)


def label_preservation(
    a: np.ndarray,
    b: np.ndarray,
    labels_a: Sequence[Hashable] | np.ndarray,
    labels_b: Sequence[Hashable] | np.ndarray,
    *,
    k: int = 15,
    across_domains: bool = False,
) -> float:
    """Mean fraction of each cell's ``k`` nearest neighbours (in ``[a; b]``) sharing its label.

    Why: the counterpart of :func:`mixing_score`: an alignment that mixes the domains by
    scrambling cell types scores high on mixing but low here. Range [0, 1], higher is better.
    With ``across_domains=True`` only neighbours from the other domain are counted (cells with
    none are skipped), which asks directly whether cells met partners of the same type.

    magan's own score: like scib's cLISI / kNN label purity in spirit, without kernel weighting.
    """
    a = _as_matrix(a, "a")
    b = _as_matrix(b, "b")
    _same_columns(a, b, "a", "b")
    y = np.concatenate(
        [_as_labels(labels_a, a.shape[0], "labels_a"), _as_labels(labels_b, b.shape[0], "labels_b")]
    )
    idx = _joint_neighbours(a, b, k)
    same = y[idx] == y[:, None]
    if not across_domains:
        return float(same.mean())
    n_a = a.shape[0]
    in_a = np.arange(y.shape[0]) < n_a
    cross = (idx >= n_a) == in_a[:, None]
    n_cross = cross.sum(axis=1)
    has = n_cross > 0
    if not has.any():
        raise DataError("no cell has a neighbour from the other domain; the domains do not touch")
    return float(((same & cross).sum(axis=1)[has] / n_cross[has]).mean())
