"""Other minibatch GW plans (issue 9): does any get scGEM's FOSCTTM near SCOT's 0.189, and
what do they do to digits?

    PYTHONPATH=. python research/gw_plans.py --data scgem \
        > benchmarks/results/common_scale/gw_plans.jsonl
    PYTHONPATH=. python research/gw_plans.py --data digits \
        >> benchmarks/results/common_scale/gw_plans.jsonl

Every row is the experiments' ``magan`` with minibatch structure plans,
``transport=Transport(kind="minibatch", cost="structure")`` (what "auto" picked on both when
this ran, as ``transport_cost="structure"``; today's "auto" uses the landmark plan there), and
one change to how the minibatch plan is made. scGEM: the cross-modal
experiment's settings (2,000 steps, 10 known pairs per seed, FOSCTTM on the other 167 cells in
x2's z-units). digits: the digits experiment's data, pair and classifier at 1,000 steps (its
setting before 2026-11-26), ``digit_accuracy``. Rows:

- ``default``: fused GW, half structure (Euclidean within-batch distances), half translation
  cost (``STRUCTURE_WEIGHT = 0.5``);
- ``structure_weight_0.8`` / ``_1.0``: more (or only) structure in the fused cost;
- ``anchors``: the feature part of the fused cost is no longer the translation cost but how
  differently two cells sit relative to the known pairs: each cell's distances to the known-pair
  cells of its own domain (a vector per cell, one entry per pair, comparable across domains
  because the pairs correspond), squared Euclidean between those vectors; structure weight 0.8;
- ``anchors_geodesic``: the same, with all within-domain distances (GW part and anchor vectors)
  taken along a 20-nearest-neighbour graph (correlation, rows L2-normalised, hop counts: SCOT's
  recipe) built on the minibatch plus the known-pair cells; structure weight 0.5;
- ``anchors_geodesic_k35_0.8`` / ``_0.95``: the same on a 35-nearest-neighbour graph, structure
  weight 0.8 / 0.95 (the best full-data plans of ``scgem_plan_ceiling.py``);
- ``geodesic_k20``: the default fused plan with 20-NN hop counts for its GW half;
  ``anchors_geodesic_k20``: ``anchors_geodesic`` again, for ``--data eccite`` (the ECCITE
  experiment's data, pairs and scores, 1,000 steps).

The last two are prototypes patched in here (``TransportPairs.plan`` replaced), not library
options: they are measured to decide whether they earn a place.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import numpy as np
import torch

import magan.correspondence as corr
from experiments._harness import make_gan, zscore
from experiments.crossmodal import _known_pairs, load_scgem
from experiments.digits import load_digits
from magan.metrics import foscttm
from magan.transport import Transport


def _geodesic(x: torch.Tensor, k: int) -> torch.Tensor:
    """Hop counts on the symmetrised k-NN graph (1 - Pearson between L2-normalised rows)."""
    xc = x - x.mean(dim=1, keepdim=True)
    xc = xc / xc.norm(dim=1, keepdim=True).clamp_min(1e-12)
    d = 1.0 - xc @ xc.T
    nearest = d.topk(k + 1, largest=False).indices
    g = torch.full_like(d, float("inf")).scatter_(1, nearest, 1.0)
    g = torch.minimum(g, g.T).fill_diagonal_(0.0)
    for m in range(len(g)):  # Floyd-Warshall
        g = torch.minimum(g, g[:, m : m + 1] + g[m : m + 1, :])
    finite = torch.isfinite(g)
    g[~finite] = g[finite].max()
    return g


def _anchor_plan(structure_weight: float, geodesic_k: int | None) -> Callable:
    def plan(self, batch: corr.CorrespondenceBatch, translation_cost=None) -> torch.Tensor:
        with torch.no_grad():
            b = len(batch.x1)
            a1 = torch.cat([batch.x1, batch.pairs1])
            a2 = torch.cat([batch.x2, batch.pairs2])
            if geodesic_k:
                d1, d2 = _geodesic(a1, geodesic_k), _geodesic(a2, geodesic_k)
            else:
                d1, d2 = torch.cdist(a1, a1), torch.cdist(a2, a2)
            d1, d2 = d1 / d1.mean(), d2 / d2.mean()
            profiles = corr._sq_distances(d1[:b, b:], d2[:b, b:])
            return corr.gromov_plan_from_distances(
                d1[:b, :b], d2[:b, :b], max(self.epsilon, corr.STRUCTURE_EPSILON), profiles,
                structure_weight)
    return plan


def _graph_plan(structure_weight: float, geodesic_k: int) -> Callable:
    """The default fused plan (GW half + translation cost) with graph hop counts for the GW
    half instead of Euclidean distances."""
    def plan(self, batch: corr.CorrespondenceBatch, translation_cost=None) -> torch.Tensor:
        with torch.no_grad():
            c = (translation_cost.detach() if translation_cost is not None
                 else self._translation_cost(batch))
            return corr.gromov_plan_from_distances(
                _geodesic(batch.x1, geodesic_k), _geodesic(batch.x2, geodesic_k),
                max(self.epsilon, corr.STRUCTURE_EPSILON), c, structure_weight)
    return plan


ROWS: dict[str, tuple[float, Callable | None]] = {
    "default": (0.5, None),
    "structure_weight_0.8": (0.8, None),
    "structure_weight_1.0": (1.0, None),
    "anchors": (0.5, _anchor_plan(0.8, None)),
    "anchors_geodesic": (0.5, _anchor_plan(0.5, 20)),
    "anchors_geodesic_k35_0.8": (0.5, _anchor_plan(0.8, 35)),
    "anchors_geodesic_k35_0.95": (0.5, _anchor_plan(0.95, 35)),
    "geodesic_k20": (0.5, _graph_plan(0.5, 20)),
    "anchors_geodesic_k20": (0.5, _anchor_plan(0.5, 20)),
}


def _scgem() -> Callable[[int], tuple]:
    x1, x2, y = load_scgem()

    def task(seed: int) -> tuple:
        pairs, ev = _known_pairs(len(y), seed)

        def score(model) -> dict[str, float]:
            s = foscttm(zscore(model.transform(x1), x2)[ev], zscore(x2, x2)[ev])
            return {"foscttm": round(float(s), 4)}
        return x1, x2, pairs, 2000, score
    return task


def _eccite() -> Callable[[int], tuple]:
    from experiments.crossmodal import _eccite_scores, load_eccite

    x1, x2, y = load_eccite()

    def task(seed: int) -> tuple:
        pairs, ev = _known_pairs(len(y), seed)

        def score(model) -> dict[str, float]:
            s = _eccite_scores(model.transform(x1), model.inverse_transform(x2), x1, x2, y, ev,
                               True)
            return {k: round(float(s[k]), 4) for k in ("foscttm_12", "foscttm_21",
                                                        "label_accuracy")}
        return x1, x2, pairs, 1000, score
    return task


def _digits() -> Callable[[int], tuple]:
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression

    p1, p2, y = load_digits()
    z1 = PCA(50, random_state=0).fit_transform(p1).astype(np.float32)
    z2 = PCA(50, random_state=0).fit_transform(p2).astype(np.float32)
    clf = LogisticRegression(max_iter=2000).fit(z2, y)

    def task(seed: int) -> tuple:
        i = int(np.random.default_rng(seed).integers(len(y)))

        def score(model) -> dict[str, float]:
            return {"digit_accuracy": round(float(clf.score(model.transform(z1), y)), 4)}
        return z1, z2, [(i, i)], 1000, score
    return task


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", choices=["scgem", "digits", "eccite"], default="scgem")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    ap.add_argument("--magan-params", type=json.loads, default={},
                    help='JSON of MAGAN parameters changed for every row, e.g. '
                         '\'{"adversarial_weight": 0.3}\' (recorded in each line)')
    args = ap.parse_args()
    torch.set_num_threads(1)
    task = {"scgem": _scgem, "digits": _digits, "eccite": _eccite}[args.data]()
    original_plan, original_weight = corr.TransportPairs.plan, corr.STRUCTURE_WEIGHT
    for row in args.rows:
        weight, plan = ROWS[row]
        corr.STRUCTURE_WEIGHT = weight
        corr.TransportPairs.plan = plan or original_plan
        try:
            for seed in args.seeds:
                x1, x2, pairs, n_steps, score = task(seed)
                t0 = time.perf_counter()
                model = make_gan("magan", seed, n_steps,
                                 **{"transport": Transport(kind="minibatch", cost="structure"),
                                    **args.magan_params})
                model.fit(x1, x2, known_pairs=pairs)
                extra = {"magan_params": args.magan_params} if args.magan_params else {}
                print(json.dumps({"data": args.data, "row": row, "seed": seed, **extra,
                                  **score(model),
                                  "seconds": round(time.perf_counter() - t0, 1)}), flush=True)
        finally:
            corr.TransportPairs.plan, corr.STRUCTURE_WEIGHT = original_plan, original_weight


if __name__ == "__main__":
    main()
