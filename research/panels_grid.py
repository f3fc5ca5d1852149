"""Grid over MAGAN settings on the cytof-panels task (issue 9's search for a better default).

Same protocol as ``python -m experiments cytof-panels`` (levine32, H1 panel 1 vs H2 panel 2,
the 16 shared markers hidden from panel 2 in 4 groups of 4, imputed by G21, Pearson with H2's
measurement), on seeds 0 and 1, small widths, 600 steps unless ``steps`` is given; prints one
line per setting: the per-seed mean Pearson over the 16 markers, their mean, and seconds.
Each setting is a dict of MAGAN parameters (on top of the experiments' ``magan`` row) plus
``steps`` and ``ens`` (number of models averaged). The settings are for the search only: the
default was chosen on 2 seeds here, then measured on 5 seeds by the experiment itself.

    PYTHONPATH=. python research/panels_grid.py "{'basic': {'transport': 'none',
                                                           'optimizer': {'ema': None}}}"

Results of the runs made for issue 9: ``benchmarks/results/issue9/panels_grid.txt`` (its
settings name parameters of the time, e.g. ``transport_pairs_weight``, now ``transport=``).
"""

from __future__ import annotations

import ast
import sys
import time

import numpy as np
import torch

from experiments._harness import make_gan
from experiments.cytof_batch import load_levine
from experiments.cytof_panels import panels
from magan.metrics import marker_correlation


def pearson(imputed: np.ndarray, measured: np.ndarray) -> float:
    """Mean over markers of the per-marker Pearson (``metrics.marker_correlation``)."""
    return float(np.mean(marker_correlation(imputed, measured)["pearson"]))


def main(configs: dict[str, dict], seeds: tuple[int, ...] = (0, 1)) -> None:
    torch.set_num_threads(1)
    h1, h2, _, _, names = load_levine()
    shared, only1, only2 = panels(names)
    for label, params in configs.items():
        params = dict(params)
        n_models, steps = params.pop("ens", 1), params.pop("steps", 600)
        start, per_seed = time.perf_counter(), []
        for seed in seeds:
            groups = []
            for g in range(4):
                hidden = shared[g::4]
                keep = [j for j in shared if j not in hidden]
                cols1, cols2 = shared + only1, keep + only2
                p1, p2 = h1[:, cols1], h2[:, cols2]
                pairs = [(cols1.index(j), cols2.index(j)) for j in keep]
                at = [cols1.index(j) for j in hidden]
                preds = [make_gan("magan", seed * 100 + e, steps, **params)
                         .fit(p1, p2, shared_features=pairs).inverse_transform(p2)[:, at]
                         for e in range(n_models)]
                groups.append(pearson(np.mean(preds, 0), h2[:, hidden]))
            per_seed.append(np.mean(groups))
        print(label, np.round(per_seed, 3), round(float(np.mean(per_seed)), 3),
              f"{time.perf_counter() - start:.0f}s", flush=True)


if __name__ == "__main__":
    main(ast.literal_eval(sys.argv[1]))
