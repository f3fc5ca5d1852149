"""How low can FOSCTTM go on scGEM for a method that translates each cell? Oracle bounds.

    PYTHONPATH=. python research/scgem_ceiling.py \
        > benchmarks/results/common_scale/scgem_ceiling.json

Why: issue 9 asks magan to beat SCOT's FOSCTTM on scGEM (0.189) with 10 known pairs. This
script asks what is reachable at all, by giving methods *more* than magan gets: the true
partner of every cell. All on the 177 cells, x1 = expression, x2 = methylation, FOSCTTM
(``magan.metrics.foscttm``) of the prediction against x2, both in x2's z-units:

- ``ridge_cv`` / ``pls{n}_cv``: supervised regression x1 -> x2 fit on the true pairs, 10-fold
  cross-validated predictions (a cell never predicts itself);
- ``true_partners_of_neighbours_k{k}``: each cell mapped to the mean true partner of its k
  nearest *other* cells in x1 (z-scored): a perfect local translator;
- ``stage_mean``: each cell mapped to the mean x2 of its reprogramming stage (uses labels);
- ``gw_ot_k{k}``: SCOT-style GW (``baselines.gw_ot_align``, epsilon 5e-3, no pairs), with the
  share of its projection's variance on the first principal axis and the plan's effective
  number of partners per cell (exp of the row entropy).
"""

from __future__ import annotations

import json

import numpy as np
from sklearn.cross_decomposition import PLSRegression
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import cross_val_predict
from sklearn.neighbors import NearestNeighbors

from experiments._harness import zscore
from experiments.baselines import gw_ot_align
from experiments.crossmodal import load_scgem
from magan.metrics import foscttm


def main() -> None:
    x1, x2, y = load_scgem()
    z1, z2 = zscore(x1), zscore(x2)
    out: dict[str, float] = {}

    def score(name: str, pred: np.ndarray) -> None:
        out[name] = round(float(foscttm(pred, z2)), 4)

    score("ridge_cv", cross_val_predict(RidgeCV(alphas=np.logspace(-2, 3, 12)), z1, z2, cv=10))
    for n in (1, 2, 3, 5):
        score(f"pls{n}_cv", cross_val_predict(PLSRegression(n), z1, z2, cv=10))
    for k in (1, 5, 10, 20, 40):
        idx = NearestNeighbors(n_neighbors=k + 1).fit(z1).kneighbors(z1, return_distance=False)
        score(f"true_partners_of_neighbours_k{k}", z2[idx[:, 1:]].mean(axis=1))
    score("stage_mean", np.stack([z2[y == c].mean(axis=0) for c in y]))
    for k in (20, 35):
        gw = gw_ot_align(x1, x2, k=k)
        proj = zscore(gw.x1_in_2, x2)
        score(f"gw_ot_k{k}", proj)
        s = np.linalg.svd(proj - proj.mean(axis=0), compute_uv=False) ** 2
        out[f"gw_ot_k{k}_first_axis_variance_share"] = round(float(s[0] / s.sum()), 3)
        rows = gw.coupling / gw.coupling.sum(axis=1, keepdims=True)
        entropy = -(rows * np.log(np.where(rows > 0, rows, 1.0))).sum(axis=1)
        out[f"gw_ot_k{k}_partners_per_cell"] = round(float(np.exp(entropy).mean()), 1)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
