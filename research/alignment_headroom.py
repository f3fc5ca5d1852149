"""How much is there to win? Ceilings and distance choices behind issue 9's targets.

1. ``panels``: levine32 panels (the cytof-panels protocol: 16 shared markers hidden from
   panel 2 in 4 groups of 4). Predictors of the hidden markers from H1 (panel 1) applied to H2,
   and *oracles* trained on H2's own measured values (5-fold CV, shuffled): what the shared
   markers (and panel 2's own markers) can predict at best when the donor shift is removed.
2. ``gw``: entropic Gromov-Wasserstein (POT) on scGEM and ECCITE with different
   within-domain distances: SCOT's kNN-graph geodesics vs plain Euclidean/correlation matrices
   (what a minibatch GW term could see without building a graph over all cells). FOSCTTM of
   the barycentric projection, on the evaluation cells of seed 0's known-pair draw.

    PYTHONPATH=. python research/alignment_headroom.py panels gw > benchmarks/results/headroom.txt
"""

from __future__ import annotations

import sys
import warnings

import numpy as np

from magan.metrics import marker_correlation


def pearson(imputed: np.ndarray, measured: np.ndarray) -> float:
    """Mean over markers of the per-marker Pearson (``metrics.marker_correlation``)."""
    return float(np.mean(marker_correlation(imputed, measured)["pearson"]))


def panels() -> None:
    from sklearn.model_selection import KFold, cross_val_predict
    from sklearn.neighbors import KNeighborsRegressor

    from experiments.cytof_batch import load_levine
    from experiments.cytof_panels import panels as design

    h1, h2, _, _, names = load_levine()
    shared, _, only2 = design(names)
    cv = KFold(5, shuffle=True, random_state=0)
    rows: dict[str, list[float]] = {}
    for g in range(4):
        hidden = shared[g::4]
        keep = [j for j in shared if j not in hidden]
        x1, y1, x2, truth = h1[:, keep], h1[:, hidden], h2[:, keep], h2[:, hidden]
        for k in (10, 20):
            pred = KNeighborsRegressor(n_neighbors=k).fit(x1, y1).predict(x2)
            rows.setdefault(f"kNN k={k}, trained on H1", []).append(pearson(pred, truth))
        # H2's shared markers moved to H1's mean and sd first (a per-marker donor shift)
        x2m = (x2 - x2.mean(0)) / x2.std(0) * x1.std(0) + x1.mean(0)
        pred = KNeighborsRegressor(n_neighbors=20).fit(x1, y1).predict(x2m)
        rows.setdefault("kNN k=20, H1, H2 shared markers re-centred/scaled", []).append(
            pearson(pred, truth))
        for label, x in (("shared", x2), ("shared + panel-2-only", h2[:, keep + only2])):
            pred = cross_val_predict(KNeighborsRegressor(n_neighbors=20), x, truth, cv=cv)
            rows.setdefault(f"oracle: kNN k=20 trained on H2 itself ({label})", []).append(
                pearson(pred, truth))
    print("| predictor (levine32 panels, 4 hidden groups) | mean Pearson | per group |")
    print("|---|---|---|")
    for name, vals in rows.items():
        print(f"| {name} | {np.mean(vals):.3f} | {' '.join(f'{v:.3f}' for v in vals)} |")


def gw() -> None:
    import ot
    from scipy.spatial.distance import cdist

    from experiments._harness import zscore
    from experiments.baselines import gw_ot_align
    from experiments.crossmodal import _known_pairs, load_eccite, load_scgem
    from magan.metrics import foscttm

    warnings.filterwarnings("ignore")
    print("| data | within-domain distance | epsilon | FOSCTTM |")
    print("|---|---|---|---|")
    for name, loader in (("scGEM", load_scgem), ("ECCITE", load_eccite)):
        x1, x2, y = loader()
        z1, z2 = zscore(x1), zscore(x2)
        _, ev = _known_pairs(len(y), 0)
        gw_geo = gw_ot_align(x1, x2)
        print(f"| {name} | kNN-graph geodesic, k=20, correlation (SCOT; gw_ot_align) | 5e-3 | "
              f"{foscttm(zscore(gw_geo.x1_in_2, x2)[ev], z2[ev]):.3f} |")
        mats = {
            "Euclidean (z-scored)": (cdist(z1, z1), cdist(z2, z2)),
            "1 - correlation": (np.nan_to_num(cdist(x1, x1, "correlation"), nan=1.0),
                                np.nan_to_num(cdist(x2, x2, "correlation"), nan=1.0)),
        }
        p = np.full(len(x1), 1 / len(x1))
        for label, (c1, c2) in mats.items():
            c1, c2 = c1 / c1.mean(), c2 / c2.mean()
            for eps in (5e-3, 5e-2):
                t = ot.gromov.entropic_gromov_wasserstein(c1, c2, p, p, "square_loss",
                                                          epsilon=eps, max_iter=500)
                x12 = (t / t.sum(1, keepdims=True)) @ x2
                print(f"| {name} | {label} | {eps:g} | "
                      f"{foscttm(zscore(x12, x2)[ev], z2[ev]):.3f} |")


if __name__ == "__main__":
    for part in sys.argv[1:] or ["panels", "gw"]:
        {"panels": panels, "gw": gw}[part]()
        print()
