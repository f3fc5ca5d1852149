"""Is the fall-back's population check steadier averaged over several cluster counts?

    MAGAN_SHARED_DATA=../shared/data python research/population_resolution.py --seeds 0 1 2

For levine32 H1/H2 and the cytonorm plates (battery loaders), a default fit with
``diagnose=False``; then population agreement (``magan.diagnostics.population_agreement``)
of the full translation and of doing nothing, with k-means at 3, 4, 6, 8 and 12 populations,
printed per count and averaged. The default's check averages the same counts
(``magan.diagnostics.POPULATION_COUNTS``, since 2026-12-03).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from sklearn.cluster import KMeans

from experiments import battery
from magan import MAGAN
from magan import diagnostics as dg

COUNTS = (3, 4, 6, 8, 12)


def gaps(model: MAGAN, x1, x2) -> dict[int, tuple[float, float]]:
    ref = dg.prepare_reference(model, x1, x2)
    p1, p2 = ref.p
    (sh1, sh2), (real1, real2) = ref.shared, ref.real
    id12, id21 = ref.identity
    j = [p[1] for p in ref.pairs]
    i = [p[0] for p in ref.pairs]
    y12 = dg._generate(model.module_.g12, ref.z1)
    y21 = dg._generate(model.module_.g21, ref.z2)
    out = {}
    for n in COUNTS:
        pop1 = KMeans(n, n_init=3, random_state=model.seed).fit_predict(p1)
        pop2 = KMeans(n, n_init=3, random_state=model.seed).fit_predict(p2)
        g12 = (dg.population_agreement(pop1, dg._project(y12[:, j], sh2), real2, pop2)
               - dg.population_agreement(pop1, dg._project(id12, sh2), real2, pop2))
        g21 = (dg.population_agreement(pop2, dg._project(y21[:, i], sh1), real1, pop1)
               - dg.population_agreement(pop2, dg._project(id21, sh1), real1, pop1))
        out[n] = (g12, g21)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = ap.parse_args()
    torch.set_num_threads(1)
    for name, load in (("levine32-h1h2", battery.load_levine_h1h2),
                       ("cytonorm", battery.load_cytonorm)):
        for seed in args.seeds:
            prob = load(seed)
            model = MAGAN(seed=seed, progress=False).fit(prob.x1, prob.x2, diagnose=False,
                                                         **prob.fit_kw)
            g = gaps(model, prob.x1, prob.x2)
            per = "  ".join(f"{n}: {a:+.3f}/{b:+.3f}" for n, (a, b) in g.items())
            mean = np.mean([v for v in g.values()], axis=0)
            print(f"{name} seed {seed}  {per}  mean {mean[0]:+.3f}/{mean[1]:+.3f}", flush=True)


if __name__ == "__main__":
    main()
