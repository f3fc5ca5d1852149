"""Beyond the paper (``uncertainty``): how sure is each imputed value? Calibration of intervals.

Setting: ``cytof-panels``' first group of hidden shared markers (``shared[0::4]``: CD133,
CD235ab, CD7, CD3), hidden from panel 2 and imputed for H2's cells. ``K`` magan models
(default settings of the experiments, seeds ``1000 * seed + k``) are trained. Rows, each a
stated 90% interval scored by :func:`magan.metrics.interval_calibration` (``coverage``: 0.90
if calibrated; ``mean_width``; ``width_error_spearman``, > 0 when wider intervals go with
larger errors), values of the 4 hidden markers pooled; ``coverage_50/80/95``: the same at
other levels (0.50, 0.80, 0.95 if calibrated):

- ``ensemble_local``: the library's :class:`magan.uncertainty.Ensemble` interval (seed spread
  and local noise, conformal quantile from panel 1's own cells; see that module).
- ``member_local``: the same from member 0 alone (local noise only, no ensemble).
- ``ensemble_raw``: mean ± 1.645 sd over members, the seed spread alone (over-confident: it
  cannot see the cell-to-cell noise the shared markers leave).
- ``ensemble_scaled``: the raw interval widened by one factor learnt on the *visible* shared
  markers' cycle values (the first truth-free attempt; still under-covers, kept as a row).

``ensemble_pearson`` / ``member_pearson``: mean Pearson of the ensemble mean and of single
members with the truth (does averaging help?).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from experiments._harness import Experiment, Metrics, make_gan
from experiments.cytof_batch import load_levine
from experiments.cytof_panels import panels
from magan.metrics import interval_calibration, marker_correlation
from magan.uncertainty import Ensemble

Z90 = 1.645


def settings(quick: bool) -> dict[str, Any]:
    return {"K": 2 if quick else 5, "n_steps": 150 if quick else 600, "variant": "magan",
            "hidden_group": "shared[0::4]", "level": 0.9, "n_neighbors": 15,
            "other_levels": [0.5, 0.8, 0.95]}


def task() -> tuple[np.ndarray, np.ndarray, list[tuple[int, int]], list[int], np.ndarray]:
    """(panel 1 = H1 with every shared marker, panel 2 = H2 without the hidden group, the
    visible shared-marker column pairs, the hidden markers' columns in panel 1, their truth
    measured on H2)."""
    h1, h2, _, _, names = load_levine()
    shared, only1, only2 = panels(names)
    hidden = shared[0::4]
    keep = [j for j in shared if j not in hidden]
    cols1, cols2 = shared + only1, keep + only2
    pairs = [(cols1.index(j), cols2.index(j)) for j in keep]
    return h1[:, cols1], h2[:, cols2], pairs, [cols1.index(j) for j in hidden], h2[:, hidden]


def run(seed: int, quick: bool = False) -> Metrics:
    s = settings(quick)
    p1, p2, pairs, at, truth = task()
    vis1 = [a for a, _ in pairs]  # visible shared markers: panel-1 columns ...
    vis2 = [b for _, b in pairs]  # ... and the panel-2 columns they match

    members = [make_gan(s["variant"], 1000 * seed + k, s["n_steps"]).fit(p1, p2,
                                                                          shared_features=pairs)
               for k in range(s["K"])]
    out: Metrics = {}
    for row, models in (("ensemble_local", members), ("member_local", members[:1])):
        ens = Ensemble.from_members(models, p1, p2, n_neighbors=s["n_neighbors"])
        iv = ens.interval(p2, domain=2, level=s["level"])
        out[row] = interval_calibration(iv.mean[:, at], iv.lower[:, at], iv.upper[:, at], truth)
        for level in s["other_levels"]:  # calibrated at other levels too? (measured: no)
            iv = ens.interval(p2, domain=2, level=level)
            inside = (truth >= iv.lower[:, at]) & (truth <= iv.upper[:, at])
            out[row][f"coverage_{round(100 * level)}"] = float(inside.mean())

    back = np.stack([m.inverse_transform(p2) for m in members])  # (K, n, d1)
    mean, sd = back[:, :, at].mean(0), back[:, :, at].std(0, ddof=1)
    # Widening factor from the visible shared markers only (their truth is panel 2 itself).
    v_err = np.abs(back[:, :, vis1].mean(0) - p2[:, vis2])
    v_sd = np.maximum(back[:, :, vis1].std(0, ddof=1), 1e-6)
    factor = float(np.quantile(v_err / (Z90 * v_sd), 0.9))

    pear = lambda x: float(np.nanmean(marker_correlation(x, truth)["pearson"]))  # noqa: E731
    out["ensemble_raw"] = {**interval_calibration(mean, mean - Z90 * sd, mean + Z90 * sd, truth),
                           "ensemble_pearson": pear(mean),
                           "member_pearson": float(np.mean([pear(m) for m in back[:, :, at]]))}
    out["ensemble_scaled"] = {**interval_calibration(mean, mean - factor * Z90 * sd,
                                                     mean + factor * Z90 * sd, truth),
                              "widening_factor": factor}
    return out


EXPERIMENT = Experiment(
    name="uncertainty",
    run=run,
    description="Ensemble of K magan generators on cytof-panels (hidden group CD133, CD235ab, "
                "CD7, CD3): coverage of the stated 90% interval (ensemble + local noise, "
                "and the seed-spread-only rows) and width-vs-error correlation.",
    settings=settings,
)
