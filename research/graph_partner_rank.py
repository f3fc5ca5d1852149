"""Would the known pairs vouch for a GW plan on kNN-graph distances? (issue 9, sixth pass)

    PYTHONPATH=src:. python research/graph_partner_rank.py \
        > benchmarks/results/common_scale/graph_partner_rank.txt

Until the landmark plan (issue 19), ``transport_cost="auto"`` asked the known pairs
(``correspondence.known_partner_rank``: the fraction of a minibatch's domain-2 cells a GW plan
alone prefers to a known partner; 0 best, ~0.5 chance, 10 minibatches of 256) whether to trust
the structure plan. This asks the same of GW plans on hop counts along each minibatch's 20- or
35-nearest-neighbour graph (SCOT's distances, ``gw_plans._geodesic``), next to the Euclidean
distances magan used, on the experiments' pairs (seeds 0-4) and magan's input scaling (one
common scale per domain). The Euclidean column reproduces the figures of the former
``known_partner_rank.py`` (RESULTS.md).
"""

from __future__ import annotations

import numpy as np
import torch
from gw_plans import _geodesic  # research/ is the script's folder
from sklearn.decomposition import PCA

import magan.correspondence as corr
from experiments.crossmodal import _known_pairs, load_eccite, load_scgem
from experiments.digits import load_digits
from magan.preprocessing import Standardizer


def _common_scale(x: np.ndarray) -> np.ndarray:
    """magan's default input scaling (``standardize="global"``)."""
    return Standardizer(per_feature=False).fit(x).transform(x)


def rank(x1: np.ndarray, x2: np.ndarray, known: np.ndarray, seed: int, k: int | None,
         batch: int = 256) -> float:
    rng = np.random.default_rng(seed)
    scores = []
    for _ in range(10):
        i1 = np.r_[known[:, 0], rng.integers(len(x1), size=batch - len(known))]
        i2 = np.r_[known[:, 1], rng.integers(len(x2), size=batch - len(known))]
        a, b = torch.tensor(x1[i1]), torch.tensor(x2[i2])
        if k is None:
            plan = corr.gromov_plan(a, b, corr.STRUCTURE_EPSILON)
        else:
            plan = corr.gromov_plan_from_distances(_geodesic(a, k), _geodesic(b, k),
                                                   corr.STRUCTURE_EPSILON)
        rows = torch.arange(len(known))
        scores.append(float((plan[: len(known)] > plan[rows, rows][:, None]).float().mean()))
    return float(np.mean(scores))


def main() -> None:
    torch.set_num_threads(1)
    data = {}
    for name, loader in (("scGEM", load_scgem), ("ECCITE", load_eccite)):
        x1, x2, y = loader()
        data[name] = (_common_scale(x1), _common_scale(x2),
                      [np.array(_known_pairs(len(y), s)[0]) for s in range(5)])
    p1, p2, y = load_digits()
    z1, z2 = (PCA(50, random_state=0).fit_transform(p) for p in (p1, p2))
    data["digits"] = (_common_scale(z1), _common_scale(z2),
                      [np.array([(i, i)]) for i in
                       (int(np.random.default_rng(s).integers(len(y))) for s in range(5))])
    print("| data | Euclidean (magan) | 20-NN graph hops | 35-NN graph hops |")
    print("|---|---|---|---|")
    for name, (a, b, pairs) in data.items():
        cells = [" ".join(f"{rank(a, b, p, s, k):.3f}" for s, p in enumerate(pairs))
                 for k in (None, 20, 35)]
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
