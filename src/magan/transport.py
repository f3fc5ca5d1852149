"""Where magan's correspondence from optimal transport comes from: one setting, ``Transport``.

Two kinds of plan, one rule to choose between them (:meth:`Transport.resolve`):

- ``"landmark"``: before training, a plan between up to ``landmarks`` cells of each domain
  from each domain's *whole* geometry: kNN-graph shortest-path (geodesic) distances on the
  landmarks, matched by entropic Gromov–Wasserstein (SCOT's idea), oriented by the known
  pairs (:func:`landmark_plan`): GW alone cannot tell a trajectory from its reverse. Each
  translated landmark is then asked to land on one of its plan partners
  (:class:`~magan.correspondence.LandmarkPairs`), so the generators translate every cell, new
  ones included. Cost O(m^2) memory and O(m^3) per GW round, once, whatever the number of
  cells.
- ``"minibatch"``: each step, a plan between the minibatch's cells
  (:class:`~magan.correspondence.TransportPairs`), from the shared features, the current
  translations or both domains' within-batch distances (``cost``).

Why the rule is what it is (docs/model.md has the numbers): with shared features, a plan on
the shared markers pairs cells as a kNN on them would, and minibatch plans measured best
(levine32 panels, CyTOF batches, the Gaussians); without them, minibatch plans see only a
batch's Euclidean distances, while a plan over all landmarks' graph geodesics matched whole
trajectories and populations (scGEM 0.225 vs 0.231, PBMC RNA vs ATAC 0.87 vs 0.51, digits
0.991 vs 0.985, 3 seeds each; RESULTS.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import torch

from magan.correspondence import STRUCTURE_EPSILON, sinkhorn  # minibatch GW blur
from magan.errors import ConfigError
from magan.settings import check_fraction, check_number, check_positive_int

__all__ = ["Transport", "anchor_rank", "choose_landmarks", "geodesic_distances", "landmark_plan",
           "neighbour_spread"]

KINDS = ("auto", "landmark", "minibatch", "none")
COSTS = ("auto", "shared", "translation", "structure")
MINIBATCH_EPSILON = 0.02  # relative to the mean cost (magan.correspondence.sinkhorn)
LANDMARK_EPSILON = 2.5e-3  # absolute, on geodesic distances scaled to max 1 (POT's 5e-3)


@dataclass(frozen=True)
class Transport:
    """How the transport plan behind magan's pseudo-pairs is made (one object, saved with the
    model; ``MAGAN(transport=Transport(...))`` or a kind's name).

    Parameters
    ----------
    kind
        ``"auto"`` (the rule in :meth:`resolve`), ``"landmark"``, ``"minibatch"`` or
        ``"none"`` (no pseudo-pairs, as the paper).
    weight
        Weight of the pseudo-pair term (2; 0 is ``"none"``).
    epsilon
        Entropic blur. None: 0.02 of the mean cost for minibatch plans (0.05 with
        ``cost="structure"``), 2.5e-3 on
        geodesic distances scaled to max 1 for the landmark plan (POT's ``epsilon=5e-3``,
        whose gradient is twice this module's).
    landmarks
        Cells per domain in the landmark plan (all when fewer): its memory is ~5 m^2 floats.
    neighbours
        k of the kNN graphs (correlation between L2-normalised cells, SCOT's) whose hop
        counts are the geodesic distances.
    anchor_weight
        Share of the known pairs' cost in the rounds that orient the landmark plan
        (:func:`landmark_plan`); after them, and without known pairs, GW alone.
    unbalanced
        None: every cell's mass is transported. A number: the marginals are only a KL
        penalty of that strength (in ``epsilon``'s units), for domains whose cell-type
        proportions differ.
    cost
        What a minibatch plan pairs cells by (``"auto"``: the shared features when given,
        else the translations; or ``"shared"``, ``"translation"``, ``"structure"``).
    warmup
        Fraction of the steps over which a translation-cost plan's weight ramps in from 0
        (it pairs cells with wherever the generators already send them).
    """

    kind: str = "auto"
    weight: float = 2.0
    epsilon: float | None = None
    landmarks: int = 2000
    neighbours: int = 20
    anchor_weight: float = 0.5
    unbalanced: float | None = None
    cost: str = "auto"
    warmup: float = 0.3
    reason: str = field(default="", compare=False)  # set by resolve()

    @classmethod
    def coerce(cls, value: Any) -> Transport:
        """A ``Transport`` from itself, a kind's name or a dict (a saved model's)."""
        if isinstance(value, Transport):
            return value
        if isinstance(value, str):
            return cls(kind=value)
        if isinstance(value, dict):
            known = {k: v for k, v in value.items() if k in cls.__dataclass_fields__}
            return cls(**known)
        raise ConfigError("The 'transport' parameter of MAGAN must be a magan.Transport, "
                          f"one of {KINDS} or a dict. Got {value!r} instead.")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def check(self) -> None:
        """Refuse settings that cannot be meant, naming the field."""
        if self.kind not in KINDS:
            raise ConfigError(f"Transport kind must be one of {KINDS}. Got {self.kind!r}.")
        if self.cost not in COSTS:
            raise ConfigError(f"Transport cost must be one of {COSTS}. Got {self.cost!r}.")
        check_number("Transport", "weight", self.weight)
        for name in ("anchor_weight", "warmup"):
            check_fraction("Transport", name, getattr(self, name))
        for name in ("epsilon", "unbalanced"):
            check_number("Transport", name, getattr(self, name), strict=True, none=True)
        check_positive_int("Transport", "landmarks", self.landmarks, low=2)
        check_positive_int("Transport", "neighbours", self.neighbours)

    def resolve(self, *, correspondence: bool, shared: bool, known_pairs: int,
                relation: bool) -> Transport:
        """The setting this fit uses (``kind`` and ``cost`` never "auto"), with its ``reason``.

        The rule: no pseudo-pairs for the plain-GAN ablation or weight 0; with shared
        features, minibatch plans on them; otherwise the landmark plan (anchored by the
        known pairs when there are any; GW alone, each domain's geometry, when there are
        none). An explicit kind is kept; an explicit ``cost`` applies to minibatch plans.
        """
        self.check()
        if not correspondence or self.weight == 0 or self.kind == "none":
            why = ("correspondence=False (the plain GAN ablation)" if not correspondence
                   else "switched off")
            return replace(self, kind="none", cost="auto", reason=why)
        kind, why = self.kind, "asked for"
        if kind == "auto" and shared:
            kind, why = "minibatch", "shared features: minibatch plans on the shared markers"
        elif kind == "auto":
            kind = "landmark"
            why = (f"no shared features: a landmark plan from each domain's geometry, anchored "
                   f"by {known_pairs} known pairs" if known_pairs else
                   "no shared features or known pairs: a landmark plan from each domain's "
                   "geometry alone (Gromov-Wasserstein; a symmetric shape may be matched "
                   "mirrored)")
        cost = self.cost
        if kind == "minibatch" and cost == "auto":
            cost = "shared" if shared else "translation"
        if kind == "minibatch" and cost == "shared" and not shared:
            raise ConfigError("Transport cost 'shared' needs shared_features")
        if kind == "minibatch" and not (shared or known_pairs or relation):
            raise ConfigError("minibatch transport needs some correspondence (shared "
                              "features, known pairs or a relation); use kind='landmark'")
        epsilon = self.epsilon if self.epsilon is not None else (
            LANDMARK_EPSILON if kind == "landmark" else
            STRUCTURE_EPSILON if cost == "structure" else MINIBATCH_EPSILON)
        return replace(self, kind=kind, cost=cost if kind == "minibatch" else "auto",
                       epsilon=float(epsilon), reason=why)


# ---- the landmark plan -------------------------------------------------------------------------
def geodesic_distances(x: np.ndarray, neighbours: int) -> np.ndarray:
    """Hop counts on the symmetric kNN graph of L2-normalised rows (correlation metric),
    scaled to max 1 (SCOT's choice). Cells in different graph pieces are as far apart as
    the farthest connected ones."""
    from scipy.sparse.csgraph import shortest_path
    from sklearn.neighbors import NearestNeighbors

    x = np.asarray(x, dtype=np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    k = int(min(neighbours, len(x) - 1))
    with np.errstate(all="ignore"):
        graph = NearestNeighbors(n_neighbors=k, metric="correlation").fit(x).kneighbors_graph(
            mode="connectivity")
    dist = shortest_path(graph, method="D", directed=False, unweighted=True)
    finite = np.isfinite(dist)
    dist[~finite] = dist[finite].max()
    top = dist.max()
    return (dist / top if top > 0 else dist).astype(np.float32)


def choose_landmarks(n: int, m: int, keep: np.ndarray, seed: int) -> np.ndarray:
    """``m`` of ``n`` rows, seeded (all rows when ``n <= m``), always holding ``keep`` (the
    known pairs' cells, which anchor the plan), sorted."""
    if n <= m:
        return np.arange(n)
    keep = np.unique(np.asarray(keep, dtype=np.int64))
    rest = np.setdiff1d(np.arange(n), keep)
    extra = np.random.default_rng(seed).choice(rest, size=max(m - len(keep), 0), replace=False)
    return np.sort(np.r_[keep, extra]).astype(np.int64)


ORIENT_ROUNDS = 3  # rounds with the anchors' cost before the plan is left to the geometry


def landmark_plan(g1: np.ndarray, g2: np.ndarray, setting: Transport, *,
                  anchors: tuple[np.ndarray, np.ndarray] | None = None,
                  device: torch.device | str = "cpu", max_outer: int = 15, n_inner: int = 100,
                  tol: float = 1e-2, start: torch.Tensor | None = None
                  ) -> tuple[torch.Tensor, int]:
    """The plan of :class:`Transport` ``"landmark"`` between landmark cells ``g1``, ``g2``
    (rows in the user's units after any preprocessing, not centred: correlations between
    cells are SCOT's geometry), and the GW rounds it took.

    The GW iterations linearise the square loss at the current plan T (Peyré et al. 2016):
    ``cost = const - 2 C1 T C2^T``, then Sinkhorn; they stop when no entry of T moves by
    more than ``tol`` times the uniform plan's entries, or after ``max_outer`` rounds.
    ``start``: the plan to begin from (default the uniform one).

    ``anchors`` (row positions in ``g1`` and ``g2`` of the known pairs) *orient* the plan and
    then let go: the first ``ORIENT_ROUNDS`` rounds add the anchors' cost (each landmark's
    geodesic distances to its domain's anchors, compared across domains) with weight
    ``setting.anchor_weight``; the rest are pure GW from there. Why: GW alone matched scGEM's
    trajectory reversed at some blurs (FOSCTTM 0.66, 3 of 3 seeds at epsilon 5e-3); kept in
    the cost for every round, the anchors pinned their own cells and bent the rest (scGEM
    0.218 vs 0.204, ECCITE 0.245 vs 0.220); oriented then released, every seed landed on the
    unreversed solution (0.209-0.216 where GW alone was reversed, equal to GW alone where it
    was not; docs/model.md).
    """
    c1 = torch.as_tensor(geodesic_distances(g1, setting.neighbours), device=device)
    c2 = torch.as_tensor(geodesic_distances(g2, setting.neighbours), device=device)
    n, m = len(c1), len(c2)
    const = (c1 * c1).mean(1)[:, None] + (c2 * c2).mean(1)[None, :]
    fused = None
    if anchors is not None and len(anchors[0]) and setting.anchor_weight > 0:
        a1 = c1[:, torch.as_tensor(anchors[0], device=device)]
        a2 = c2[:, torch.as_tensor(anchors[1], device=device)]
        fused = torch.cdist(a1, a2).square_()
        fused *= const.mean() / fused.mean().clamp_min(1e-12)  # on the GW term's scale
    eps = float(setting.epsilon if setting.epsilon is not None else LANDMARK_EPSILON)
    plan = start if start is not None else torch.full((n, m), 1.0 / (n * m), device=device)
    orient = ORIENT_ROUNDS if fused is not None else 0
    rounds = 0
    for rounds in range(1, orient + max_outer + 1):
        cost = const - 2.0 * (c1 @ plan @ c2.T)
        if rounds <= orient:
            cost = (1.0 - setting.anchor_weight) * cost + setting.anchor_weight * fused
        cost = cost - cost.min()
        mean = float(cost.mean().clamp_min(1e-12))  # sinkhorn's blur is relative to it
        new = sinkhorn(cost, eps / mean, n_inner, marginal_penalty=None if (
            setting.unbalanced is None) else setting.unbalanced / mean)
        moved = float((new - plan).abs().max()) * n * m
        plan = new
        if rounds > orient + 1 and moved < tol:
            break
    return plan, rounds


def anchor_rank(plan: torch.Tensor, anchors: tuple[np.ndarray, np.ndarray]) -> float | None:
    """How well the plan finds the known partners: for each anchor, the fraction of the other
    domain's landmarks it sends more mass to than to its partner (0 best, ~0.5 chance).
    The geometry, not the anchors, made the plan after orienting it, so this is evidence."""
    if anchors is None or not len(anchors[0]):
        return None
    i = torch.as_tensor(anchors[0], device=plan.device)
    j = torch.as_tensor(anchors[1], device=plan.device)
    own = plan[i, j]
    return float((plan[i] > own[:, None]).float().mean())


def neighbour_spread(x: torch.Tensor, k: int = 10, sample: int = 2000) -> float:
    """The median squared distance from a cell to its ``k``-th nearest neighbour (at most
    ``sample`` cells, seeded): the scale at which :class:`~magan.correspondence.LandmarkPairs`
    tells one partner from another."""
    idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:sample]
    sub = x[idx.to(x.device)].float()
    d = torch.cdist(sub, sub).square_()
    kth = d.topk(min(k + 1, len(sub)), dim=1, largest=False).values[:, -1]
    return max(float(kth.median()), 1e-12)
