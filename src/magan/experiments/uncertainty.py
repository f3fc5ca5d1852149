"""Beyond the paper (``uncertainty``): how sure is each imputed value? Ensemble calibration.

Setting: ``cytof-panels``' first group of hidden shared markers (``shared[0::4]``: CD133,
CD235ab, CD7, CD3), hidden from panel 2 and imputed for H2's cells. ``K`` magan models
(default settings of the experiments, seeds ``1000 * seed + k``) are trained; per imputed
value the ensemble gives a mean and a spread (sd over members). The stated 90% interval is
mean ± 1.645 sd (Gaussian). Metrics, per hidden marker pooled:

- ``coverage90``: fraction of measured values inside the interval (0.90 if calibrated).
- ``spread_error_spearman``: Spearman between spread and |mean - truth| over all values
  (> 0: larger spread where the error is larger).
- ``ensemble_pearson`` / ``member_pearson``: mean Pearson of the ensemble mean and of single
  members with the truth (does averaging help?).

The spread only sees model variance (which seed), not the cell-to-cell noise the panel cannot
predict, so under-coverage is expected; the rows ``scaled`` widen the interval by a factor
chosen without the truth: so that 90% of the *visible* shared markers' cycle values
(G21(panel 2) on the shared columns vs panel 2's own measurement) fall inside it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import spearmanr

from magan.experiments._harness import Experiment, Metrics, make_gan
from magan.experiments.cytof_batch import load_levine
from magan.experiments.cytof_panels import panels
from magan.metrics import marker_correlation

Z90 = 1.645


def settings(quick: bool) -> dict[str, Any]:
    return {"K": 2 if quick else 5, "n_steps": 150 if quick else 600, "variant": "magan",
            "hidden_group": "shared[0::4]", "interval": "mean ± 1.645 sd over members"}


def _calibration(mean, sd, truth) -> dict[str, float]:
    err = np.abs(mean - truth)
    inside = err <= Z90 * sd
    rho = spearmanr(sd.ravel(), err.ravel()).statistic
    return {"coverage90": float(inside.mean()), "spread_error_spearman": float(rho),
            "mean_interval_width": float((2 * Z90 * sd).mean())}


def run(seed: int, quick: bool = False) -> Metrics:
    s = settings(quick)
    h1, h2, _, _, names = load_levine()
    shared, only1, only2 = panels(names)
    hidden = shared[0::4]
    keep = [j for j in shared if j not in hidden]
    cols1, cols2 = shared + only1, keep + only2
    p1, p2 = h1[:, cols1], h2[:, cols2]
    pairs = [(cols1.index(j), cols2.index(j)) for j in keep]
    at = [cols1.index(j) for j in hidden]
    vis1 = [a for a, _ in pairs]  # visible shared markers: panel-1 columns ...
    vis2 = [b for _, b in pairs]  # ... and the panel-2 columns they match
    truth = h2[:, hidden]

    imputed, visible = [], []
    for k in range(s["K"]):
        model = make_gan(s["variant"], 1000 * seed + k, s["n_steps"]).fit(p1, p2,
                                                                         shared_features=pairs)
        back = model.inverse_transform(p2)
        imputed.append(back[:, at])
        visible.append(back[:, vis1])
    imputed, visible = np.stack(imputed), np.stack(visible)  # (K, n, markers)
    mean, sd = imputed.mean(0), imputed.std(0, ddof=1)

    # Widening factor from the visible shared markers only (their truth is panel 2 itself).
    v_err = np.abs(visible.mean(0) - p2[:, vis2])
    v_sd = np.maximum(visible.std(0, ddof=1), 1e-6)
    factor = float(np.quantile(v_err / (Z90 * v_sd), 0.9))

    pear = lambda x: float(np.nanmean(marker_correlation(x, truth)["pearson"]))  # noqa: E731
    raw = _calibration(mean, sd, truth)
    scaled = _calibration(mean, factor * sd, truth)
    return {
        "ensemble_raw": {**raw, "ensemble_pearson": pear(mean),
                         "member_pearson": float(np.mean([pear(m) for m in imputed]))},
        "ensemble_scaled": {**scaled, "widening_factor": factor},
    }


EXPERIMENT = Experiment(
    name="uncertainty",
    run=run,
    description="Ensemble of K magan generators on cytof-panels (hidden group CD133, CD235ab, "
                "CD7, CD3): calibration of the 90% interval and spread-vs-error correlation.",
    settings=settings,
)
