"""The non-GAN methods MAGAN is compared with, in magan's two-domain shape.

Each takes domain 1 (``x1``, n1 cells x d1 features) and domain 2 (``x2``, n2 x d2) plus whatever
correspondence the method needs, and returns domain-1 cells in domain-2 coordinates (or both
domains in a common space), ready for :mod:`magan.metrics`:

- :func:`knn_impute_shared`: features measured in both panels (MARIO / CytoBackBone idea); it
  lives in the package (:mod:`magan.reference`, for ``magan demo``) and is re-exported here;
- :func:`manifold_alignment`: a few known cell pairs (Ham, Lee & Saul 2005);
- :func:`gw_ot_align`: nothing shared at all, only the shape of each domain (SCOT, Demetci et
  al. 2022);
- :func:`harmony_align`: the same features in both (batches of one panel): a joint PCA corrected
  by Harmony (Korsunsky et al. 2019), through the harmonypy package.

The first three are written from the papers' equations; none copies another project's code.
Harmony calls harmonypy (GPL-3.0-or-later, optional: imported only inside the function).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from typing import Literal, NamedTuple

import numpy as np
from scipy import sparse
from scipy.linalg import eigh
from scipy.sparse.csgraph import connected_components, shortest_path
from scipy.sparse.linalg import eigsh
from scipy.spatial.distance import cdist
from sklearn.neighbors import NearestNeighbors

from magan.errors import ConfigError, DataError
from magan.metrics import _as_matrix, _check_k
from magan.reference import _as_pairs, knn_impute_shared

__all__ = [
    "GWAlignment",
    "ManifoldAlignment",
    "gw_ot_align",
    "knn_impute_shared",
    "manifold_alignment",
]

# Below this many cells in both domains together the eigenproblem is solved densely (exact and
# fast); above it, sparse shift-invert Lanczos keeps memory linear in the number of edges.
_DENSE_EIGEN_MAX = 3000


def _check_choice(value: object, name: str, func: str, choices: tuple[str, ...]) -> None:
    """One message shape for string options: "The 'x' parameter of f must be 'a' or 'b'."."""
    if value not in choices:
        options = " or ".join(repr(c) for c in choices)
        raise ConfigError(f"The {name!r} parameter of {func} must be {options}. "
                          f"Got {value!r} instead.")


# --------------------------------------------------------------------------- known pairs


class ManifoldAlignment(NamedTuple):
    """Both domains in the common space of :func:`manifold_alignment` (n1 x c and n2 x c)."""

    x1_embedded: np.ndarray
    x2_embedded: np.ndarray


def _knn_weights(x: np.ndarray, k: int, weights: str) -> sparse.csr_matrix:
    """Symmetric kNN affinity matrix: heat kernel exp(-d^2 / sigma^2) or 0/1 connectivity."""
    k = _check_k(k, x.shape[0] - 1, "other cells")
    dist, idx = NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x)
    dist, idx = dist[:, 1:], idx[:, 1:]  # drop self
    if weights == "heat":
        sigma = np.median(dist)
        sigma = sigma if sigma > 0 else 1.0
        # Floor: an outlier far beyond the median distance must keep a nonzero degree, or D is
        # singular and the eigenproblem has no solution.
        vals = np.maximum(np.exp(-((dist / sigma) ** 2)), 1e-6)
    else:
        vals = np.ones_like(dist)
    n = x.shape[0]
    w = sparse.csr_matrix((vals.ravel(), (np.repeat(np.arange(n), k), idx.ravel())), shape=(n, n))
    return w.maximum(w.T).tocsr()  # an edge if either point is among the other's neighbours


def manifold_alignment(
    x1: np.ndarray,
    x2: np.ndarray,
    known_pairs: Iterable[Sequence[int]],
    *,
    n_components: int = 2,
    mu: float = 1.0,
    k: int = 10,
    weights: Literal["heat", "connectivity"] = "heat",
    random_state: int | None = 0,
) -> ManifoldAlignment:
    """Semi-supervised manifold alignment (Ham, Lee & Saul 2005), from the paper's equations.

    Why: with a handful of cells known to match, Laplacian eigenmaps of both domains can be
    computed jointly so the two embeddings agree on those cells and, through each domain's
    neighbourhood graph, everywhere else. With kNN graph Laplacians ``L1 = D1 - W1`` and
    ``L2 = D2 - W2``, the embeddings f (of x1) and g (of x2) minimise

        f' L1 f + g' L2 g + mu * sum over known pairs (i, j) of (f_i - g_j)^2

    i.e. ``h' H h`` with ``h = [f; g]`` and ``H = [[L1 + mu U1, -mu U12], [-mu U21, L2 + mu U2]]``
    (U1, U2 diagonal 0/1 masks of paired cells, U12 the 0/1 pair matrix), under ``h' D h = 1``
    with ``D = diag(D1, D2)``. The solution is the generalised eigenproblem ``H h = lambda D h``:
    the columns of the embedding are the eigenvectors of the smallest eigenvalues after the
    trivial ones (constant on each connected piece of the joint graph, eigenvalue 0).

    ``mu`` trades agreement on the pairs against smoothness on each graph; with heat-kernel
    weights (bandwidth: the median kNN distance) an edge weighs at most 1, so ``mu`` of order 1
    to 10 is a reasonable range. ``random_state`` seeds the start vector of the sparse solver
    used above a few thousand cells. Memory is linear in the number of graph edges.
    """
    a = _as_matrix(x1, "x1", min_rows=2)
    b = _as_matrix(x2, "x2", min_rows=2)
    pairs = _as_pairs(known_pairs, a.shape[0], b.shape[0], "known_pairs", "row")
    _check_choice(weights, "weights", "manifold_alignment", ("heat", "connectivity"))
    if not mu > 0:
        raise ConfigError(f"The 'mu' parameter must be a positive float. Got {mu!r} instead.")
    n1, n2 = a.shape[0], b.shape[0]
    n = n1 + n2
    if int(n_components) != n_components or not 1 <= n_components < n - 1:
        raise ConfigError(
            f"The 'n_components' parameter must be an integer in [1, {n - 2}]. "
            f"Got {n_components!r} instead."
        )

    # H is itself the Laplacian of one joint graph: both kNN graphs plus an edge of weight mu
    # for every known pair. Its null space is spanned by indicators of that graph's pieces.
    w = sparse.block_diag([_knn_weights(a, k, weights), _knn_weights(b, k, weights)]).tocsr()
    coupling = sparse.csr_matrix(
        (np.full(len(pairs), float(mu)), (pairs[:, 0], n1 + pairs[:, 1])), shape=(n, n)
    )
    joint = w + coupling + coupling.T
    h = sparse.diags(np.asarray(joint.sum(axis=1)).ravel()) - joint
    d = sparse.diags(np.asarray(w.sum(axis=1)).ravel())  # D of the domain graphs only
    n_trivial, _ = connected_components(joint, directed=False)
    n_eig = n_trivial + int(n_components)
    if n_eig > n - 1:
        raise DataError(
            f"the joint neighbour graph falls into {n_trivial} pieces, too many to embed in "
            f"{n_components} dimensions: increase k or add known pairs"
        )

    if n <= _DENSE_EIGEN_MAX:
        _, vecs = eigh(h.toarray(), d.toarray(), subset_by_index=[0, n_eig - 1])
    else:
        rng = np.random.default_rng(random_state)
        # Shift-invert just below 0 finds the smallest eigenvalues of the (PSD) pencil quickly.
        vals, vecs = eigsh(
            h.tocsc(), k=n_eig, M=d.tocsc(), sigma=-1e-6, which="LM", v0=rng.random(n)
        )
        vecs = vecs[:, np.argsort(vals)]
    emb = vecs[:, n_trivial:n_eig]
    return ManifoldAlignment(emb[:n1], emb[n1:])


# --------------------------------------------------------------------------- nothing shared


class GWAlignment(NamedTuple):
    """Result of :func:`gw_ot_align`: x1 projected into x2's space (n1 x d2) and the n1 x n2
    coupling (rows sum to 1/n1, columns to 1/n2)."""

    x1_in_2: np.ndarray
    coupling: np.ndarray


def _intra_domain_distances(
    x: np.ndarray, k: int, distance: str, mode: str, metric: str
) -> np.ndarray:
    """Distances within one domain, scaled to max 1 so the two domains are comparable."""
    if distance == "correlation":
        c = cdist(x, x, metric="correlation")
        c = np.nan_to_num(c, nan=1.0)  # a constant cell has no correlation: treat as unrelated
    else:
        k = _check_k(k, x.shape[0] - 1, "other cells")
        nn = NearestNeighbors(n_neighbors=k, metric=metric).fit(x)
        graph = nn.kneighbors_graph(mode=mode)
        # Correlation with a constant cell is undefined (NaN): make such edges the longest.
        bad = ~np.isfinite(graph.data)
        if bad.any():
            good = graph.data[~bad]
            graph.data[bad] = good.max() if good.size else 1.0
        c = shortest_path(graph, method="D", directed=False)
        finite = np.isfinite(c)
        # Cells in different graph pieces: as far apart as anything in the domain (SCOT's rule).
        c[~finite] = c[finite].max()
    top = c.max()
    return c / top if top > 0 else c


def gw_ot_align(
    x1: np.ndarray,
    x2: np.ndarray,
    *,
    k: int = 20,
    epsilon: float = 5e-3,
    distance: Literal["geodesic", "correlation"] = "geodesic",
    mode: Literal["connectivity", "distance"] = "connectivity",
    metric: str = "correlation",
    normalize: bool = True,
    max_iter: int = 1000,
    tol: float = 1e-9,
) -> GWAlignment:
    """Align two domains with nothing in common by entropic Gromov-Wasserstein transport (SCOT).

    Why: GW transport needs no shared features or pairs. It matches cells so that distances
    *within* domain 1 agree with distances within domain 2. Following SCOT (Demetci et al.
    2022): rows are L2-normalised (``normalize``); each domain gets a distance matrix, either
    geodesic (``distance="geodesic"``: shortest paths on the ``k``-nearest-neighbour graph built
    with ``metric``, SCOT's default being correlation, counted in hops for
    ``mode="connectivity"`` or summed edge lengths for ``"distance"``) or plain
    ``1 - Pearson correlation`` (``distance="correlation"``, which ignores ``k``, ``mode`` and
    ``metric``), scaled to max 1; POT's ``ot.gromov.entropic_gromov_wasserstein`` with square
    loss and regulariser ``epsilon`` gives the coupling T; and each x1 cell is projected onto
    the T-weighted mean of x2 cells (barycentric projection: T with rows rescaled to sum to 1,
    i.e. ``n1 * T`` when the marginals are met, times ``x2`` as given, not normalised).

    Caveat: GW sees only within-domain distances, so a shape with a near symmetry can be matched
    mirrored. On a trajectory such as scGEM's the whole ordering can come out reversed
    (FOSCTTM near 0.67 instead of 0.2) depending on ``k`` and ``epsilon``: check the orientation
    with a few known pairs or labels before trusting a result. Under the correlation metric a
    constant cell has no defined neighbours; it gets arbitrary ones (hop counts) or the longest
    edges (lengths).

    Smaller ``epsilon`` gives a sharper coupling but slower, less stable Sinkhorn steps; if
    Sinkhorn overflows, the log-domain solver is used instead. Deterministic (the start coupling
    is the product of uniform marginals), so there is no seed.

    Cost: O(n^2) memory (two n x n distance matrices, the n1 x n2 coupling and temporaries of
    that size: about 0.5 GB at 5000 cells per domain) and O(n^3) time per iteration; for larger
    data subsample or use a GAN.
    """
    try:
        import ot
    except ImportError as err:  # optional dependency: only this baseline needs it
        raise ImportError("gw_ot_align needs the POT package: pip install pot") from err

    a = _as_matrix(x1, "x1", min_rows=2)
    b = _as_matrix(x2, "x2", min_rows=2)
    _check_choice(distance, "distance", "gw_ot_align", ("geodesic", "correlation"))
    _check_choice(mode, "mode", "gw_ot_align", ("connectivity", "distance"))
    if not epsilon > 0:
        raise ConfigError(f"The 'epsilon' parameter must be a positive float. Got {epsilon!r}.")
    if normalize:
        a = _l2_rows(a)
        b = _l2_rows(b)
    c1 = _intra_domain_distances(a, k, distance, mode, metric)
    c2 = _intra_domain_distances(b, k, distance, mode, metric)
    p = np.full(a.shape[0], 1.0 / a.shape[0])
    q = np.full(b.shape[0], 1.0 / b.shape[0])

    def solve(**kwargs: object) -> np.ndarray:
        with np.errstate(all="ignore"):
            return ot.gromov.entropic_gromov_wasserstein(
                c1,
                c2,
                p,
                q,
                loss_fun="square_loss",
                epsilon=epsilon,
                symmetric=True,
                max_iter=max_iter,
                tol=tol,
                **kwargs,
            )

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # POT warns per Sinkhorn call; we check the result
        coupling = solve()
        if not _is_coupling(coupling):
            coupling = solve(method="sinkhorn_log")
    if not _is_coupling(coupling):
        raise DataError(
            f"Gromov-Wasserstein did not converge to a valid coupling with epsilon={epsilon}; "
            "try a larger epsilon"
        )
    rows = coupling.sum(axis=1, keepdims=True)
    # Project onto x2 as given (not the L2-normalised copy), so the result is in x2's units.
    x2_orig = np.asarray(x2, dtype=np.float64)
    return GWAlignment((coupling / rows) @ x2_orig, coupling)


def _l2_rows(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norm > 0, norm, 1.0)


def _is_coupling(t: np.ndarray) -> bool:
    return bool(np.isfinite(t).all() and (t.sum(axis=1) > 0).all())


# --------------------------------------------------------------------------- same panel


class HarmonyAlignment(NamedTuple):
    """Both domains in Harmony's corrected PCA space (n1 x c and n2 x c)."""

    x1_embedded: np.ndarray
    x2_embedded: np.ndarray


def harmony_align(
    x1: np.ndarray,
    x2: np.ndarray,
    *,
    n_components: int = 20,
    standardize: bool = True,
    theta: float = 2.0,
    random_state: int = 0,
    ncores: int = 1,
) -> HarmonyAlignment:
    """Correct a batch effect between two batches of the same panel with Harmony.

    Why: for replicate batches (same markers, different days or donors) the usual tool is not a
    translation but a joint embedding in which the batch no longer separates cells. Following
    Harmony's standard use: stack ``[x1; x2]`` (same columns), centre (and, if ``standardize``,
    scale to unit variance) each column over the joint data, take the first ``n_components``
    principal components, and run ``harmonypy.run_harmony`` with the batch (1 or 2) as the only
    covariate and diversity penalty ``theta``. Returns the corrected components split back into
    the two batches. Unlike MAGAN's G12, the result is not domain 2's feature space: compare
    the two in the shared space (e.g. a kNN trained on the ``x2_embedded`` labels, mixing).
    """
    try:
        import harmonypy
    except ImportError as err:  # optional dependency: only this baseline needs it
        raise ImportError("harmony_align needs the harmonypy package: pip install harmonypy") \
            from err

    a = _as_matrix(x1, "x1", min_rows=2)
    b = _as_matrix(x2, "x2", min_rows=2)
    if a.shape[1] != b.shape[1]:
        raise DataError(
            f"harmony_align needs the same features in both batches; x1 has {a.shape[1]}, "
            f"x2 has {b.shape[1]}"
        )
    if not 1 <= n_components <= a.shape[1]:
        raise ConfigError(
            f"The 'n_components' parameter of harmony_align must be an int in "
            f"[1, {a.shape[1]}] (the number of features). Got {n_components!r} instead."
        )
    x = np.vstack([a, b])
    x = x - x.mean(axis=0)
    if standardize:
        sd = x.std(axis=0)
        x = x / np.where(sd > 0, sd, 1.0)
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    pcs = u[:, :n_components] * s[:n_components]
    batch = np.array(["1"] * a.shape[0] + ["2"] * b.shape[0])
    h = harmonypy.run_harmony(pcs, {"batch": batch}, ["batch"], theta=theta,
                              random_state=random_state, verbose=False, ncores=ncores)
    z = np.asarray(h.Z_corr, dtype=np.float64)
    if z.shape[0] != x.shape[0]:  # harmonypy < 0.1 returns components x cells
        z = z.T
    return HarmonyAlignment(z[: a.shape[0]], z[a.shape[0]:])
