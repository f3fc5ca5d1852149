"""Calibrating intervals on held-out *shared markers* (issue 5's levels; a negative result).

    PYTHONPATH=src:. python research/uncertainty_shared_holdout.py SEED \
        >> benchmarks/results/uncertainty_local/shared_holdout.jsonl

Why: ``Ensemble``'s intervals hold 90% at the 90% level on levine32 panels but 42% / 70% /
96% at 50% / 80% / 95%: their conformal scores come from leave-one-out among measured cells,
not from the translator's own errors. The held-out known pairs (``pair_holdout``) give such
errors where there are pairs; with shared markers instead, the analogue is to let each member
train without its share of the shared markers and score its imputation of them. This
prototype does that on the ``uncertainty`` experiment's task (same data, hidden group, 5
members of 600 steps, seeds ``1000 * SEED + k``): the 12 visible shared markers are split into
5 folds, member k trains without fold k as correspondence, and its errors on fold k (H2's
cells, |G21(x2)[:, a] - x2[:, b]| / sqrt(typical seed spread² + local sd²), the pair-holdout
score) give a second conformal table; the interval uses the larger multiplier, as with pairs.
All members' local-noise neighbours are found on the 12 visible markers (members' own shared
lists differ, so the ensemble is assembled here, not by ``Ensemble.from_members``).

Output, per level: coverage of the hidden markers' truth with the local-noise interval alone
(``cov_local_*``) and with the held-out-marker multiplier (``cov_holdout_*``), mean widths,
and the ensemble mean's Pearson (members now train on fewer shared markers).
"""

from __future__ import annotations

import json
import sys
import warnings

import numpy as np
import torch

from experiments._harness import make_gan
from experiments.uncertainty import task
from magan.metrics import marker_correlation
from magan.uncertainty import Ensemble, _at_level, _conformal_table

K, N_STEPS, LEVELS = 5, 600, (0.5, 0.8, 0.9, 0.95)


def main(seed: int) -> None:
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    p1, p2, pairs, at, truth = task()
    order = np.random.default_rng(seed).permutation(len(pairs))
    folds = [set(f.tolist()) for f in np.array_split(order, K)]
    members = [make_gan("magan", 1000 * seed + k, N_STEPS).fit(
        p1, p2, shared_features=[p for i, p in enumerate(pairs) if i not in folds[k]])
        for k in range(K)]
    visible = [(members[0].feature_names1_[a], members[0].feature_names2_[b]) for a, b in pairs]
    for m in members:  # one neighbour space for the local noise: the 12 visible markers
        m.shared_features_ = visible
    ens = Ensemble.from_members(members, p1, p2)

    ref = ens.noise_[2].reference_[:2000]
    outs = np.stack([m.inverse_transform(ref) for m in members])
    typical = np.median(outs.std(axis=0, ddof=1), axis=0)
    sd_local = ens._spread(outs, 2)[2]
    scores = [np.abs(outs[k][:, a] - ref[:, b]) / np.sqrt(typical[a] ** 2 + sd_local[:, a] ** 2)
              for k, fold in enumerate(folds) for a, b in (pairs[i] for i in fold)]
    table = _conformal_table(np.concatenate(scores), axis=None)

    res: dict[str, float | int] = {"seed": seed}
    for level in LEVELS:
        iv = ens.interval(p2, domain=2, level=level)
        scale = np.sqrt(iv.sd_model ** 2 + iv.sd_local ** 2)[:, at]
        q_local = ens.noise_[1].quantile(level)[at]
        for name, q in (("local", q_local), ("holdout", np.maximum(q_local,
                                                                  _at_level(table, level)))):
            half = q * scale
            res[f"cov_{name}_{level}"] = round(float((np.abs(truth - iv.mean[:, at])
                                                      <= half).mean()), 4)
            res[f"width_{name}_{level}"] = round(float(2 * half.mean()), 3)
    res["ensemble_pearson"] = round(float(np.nanmean(
        marker_correlation(iv.mean[:, at], truth)["pearson"])), 4)
    print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]))
