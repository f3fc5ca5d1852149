"""Does magan.uncertainty's interval hold beyond the panels task it was first measured on?

Coverage of the stated interval (:func:`magan.metrics.interval_calibration`) for an
:class:`magan.uncertainty.Ensemble` of K experiment-default members, on three other tasks:

- ``cytof-batch``: shaham Day1 vs Day2 with the most bimodal marker knocked out of Day2 (the
  cytof-batch experiment's setting); the knocked-out marker imputed for Day2's cells
  (G21), scored against its measured value. 24 shared markers: neighbours on them.
- ``eccite``: RNA (50 PCs) vs protein (49 CLR) of the same 500 cells, 10 known pairs, nothing
  shared: each cell's translation scored against its own measured other modality (both
  directions, the 490 cells not in a pair). Neighbours on all output features.
- ``scgem``: expression vs methylation of 177 cells, the same way.

``--holdout on`` (cross-modal only) trains the ensemble with ``pair_holdout=True``: each member
leaves its share of the 10 known pairs out, and the interval is also calibrated on them. Rows
record the FOSCTTM of the ensemble mean (``metrics.foscttm`` in the target's z-units, as the
experiments score it) so that the cost of training each member on fewer pairs shows.

Usage: ``PYTHONPATH=. python research/uncertainty_calibration.py --data cytof-batch eccite scgem
--seeds 0 1 2 --members 3 [--holdout on]
--out benchmarks/results/uncertainty_local/calibration.jsonl``
(one JSON line per data set, seed and direction).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from experiments import crossmodal, cytof_batch
from experiments._harness import make_gan, zscore
from magan.metrics import foscttm, interval_calibration
from magan.uncertainty import Ensemble


def _ensemble(x1, x2, seed: int, members: int, n_steps: int, holdout: bool = False,
              **fit_kw) -> Ensemble:
    """Members seeded 1000 * seed + k (k < members), as the experiments seed their rows."""
    template = make_gan("magan", 1000 * seed, n_steps)
    return Ensemble(template, n_members=members, pair_holdout=holdout).fit(x1, x2, **fit_kw)


def _row(data: str, seed: int, direction: str, iv, truth, level: float, t0: float,
         holdout: bool = False) -> dict:
    cal = interval_calibration(iv.mean, iv.lower, iv.upper, truth)
    raw = np.abs(iv.mean - truth) <= 1.645 * iv.sd_model  # the seed spread alone (90%)
    row = {"data": data, "seed": seed, "direction": direction, "level": level,
           "calibration": "local+pairs" if holdout else "local", **cal,
           "coverage_seed_spread_only": float(raw.mean())}
    if data != "cytof-batch":
        row["foscttm_of_mean"] = float(foscttm(zscore(iv.mean, truth), zscore(truth)))
    return {**row, "seconds": time.time() - t0}


def run(data: str, seed: int, members: int, level: float, holdout: bool = False) -> list[dict]:
    t0 = time.time()
    if data == "cytof-batch":
        x1, x2_true, _, _ = cytof_batch.load_shaham()
        m = cytof_batch.choose_knockout(x1)
        low = x2_true[x2_true[:, m] <= cytof_batch.otsu(x2_true[:, m])[0], m]
        x2 = x2_true.copy()
        x2[:, m] = np.random.default_rng(seed).choice(low, size=len(x2))
        shared = [(j, j) for j in range(x1.shape[1]) if j != m]
        steps = cytof_batch.settings(False)["n_steps"]
        ens = _ensemble(x1, x2, seed, members, steps, shared_features=shared)
        iv = ens.interval(x2, domain=2, level=level)
        iv = iv._replace(**{k: getattr(iv, k)[:, [m]] for k in
                            ("mean", "lower", "upper", "sd_model", "sd_local")})
        return [_row(data, seed, "impute_knocked_out", iv, x2_true[:, [m]], level, t0)]
    if data == "eccite":
        x1, x2, _ = crossmodal.load_eccite()
        steps = crossmodal.settings_eccite(False)["n_steps"]
    else:
        x1, x2, _ = crossmodal.load_scgem()
        steps = crossmodal.settings(False)["n_steps"]
    pairs, ev = crossmodal._known_pairs(len(x1), seed)
    ens = _ensemble(x1, x2, seed, members, steps, holdout, known_pairs=pairs)
    rows = []
    for direction, src, dst, domain in (("12", x1, x2, 1), ("21", x2, x1, 2)):
        iv = ens.interval(src[ev], domain=domain, level=level)
        rows.append(_row(data, seed, direction, iv, dst[ev], level, t0, holdout))
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", nargs="+", default=["cytof-batch", "eccite", "scgem"],
                   choices=["cytof-batch", "eccite", "scgem"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--members", type=int, default=3)
    p.add_argument("--level", type=float, default=0.9)
    p.add_argument("--holdout", choices=["off", "on"], default="off",
                   help="cross-modal: members leave known pairs out to calibrate on them")
    p.add_argument("--out", type=Path, default=None, help="append JSON lines here")
    args = p.parse_args()
    torch.set_num_threads(1)
    for data in args.data:
        for seed in args.seeds:
            for row in run(data, seed, args.members, args.level, args.holdout == "on"):
                print(json.dumps(row), flush=True)
                if args.out:
                    with args.out.open("a") as f:
                        f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
