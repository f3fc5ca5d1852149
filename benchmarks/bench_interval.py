"""Throughput and peak memory of ``Ensemble.interval`` (calibrated intervals) as cells grow.

    python benchmarks/bench_interval.py --cells 10000 100000 1000000 --members 5

Two synthetic cytometry-like panels (30 markers each, 20 shared by name; arcsinh of
gamma-distributed intensities from 8 populations, ``bench_scale.make_domain``'s recipe) with
20,000 cells train an ensemble of ``--members`` small models (``--steps`` each: speed, not
quality, is measured here). Then, per size, in a fresh subprocess (its own peak RSS), panel-2
cells are given intervals for panel 1's features: cells/s of the whole call (K translations,
local-noise neighbour search among at most 5,000 reference cells, conformal quantiles) and
peak RSS. One JSON line per size.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

D, SHARED, TRAIN_CELLS = 30, 20, 20_000


def cells(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pops = np.random.default_rng(0)  # populations shared by both panels
    shapes, scales = pops.uniform(0.5, 6.0, size=(8, D)), pops.uniform(5.0, 200.0, size=(8, D))
    out = np.empty((n, D), dtype=np.float32)
    for start in range(0, n, 1 << 18):
        k = min(1 << 18, n - start)
        pop = rng.integers(0, 8, size=k)
        out[start:start + k] = np.arcsinh(rng.gamma(shapes[pop], scales[pop]) / 5)
    return out


def names(panel: int) -> list[str]:
    own = [f"p{panel}_m{j}" for j in range(D - SHARED)]
    return [f"shared{j}" for j in range(SHARED)] + own


def child(model_dir: str, n: int) -> None:
    import pandas as pd
    import torch

    from magan.uncertainty import Ensemble

    torch.set_num_threads(1)
    ens = Ensemble.load(model_dir, device="cpu")
    x2 = pd.DataFrame(cells(n, 2), columns=names(2))
    t0 = time.perf_counter()
    iv = ens.interval(x2, domain=2, level=0.9)
    seconds = time.perf_counter() - t0
    assert iv.lower.shape == (n, D) and np.isfinite(iv.upper).all()
    print(json.dumps({"cells": n, "members": len(ens.members_), "seconds": round(seconds, 2),
                      "cells_per_s": round(n / seconds),
                      "peak_rss_MB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                                           / 1024)}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cells", nargs="+", type=int, default=[10_000, 100_000, 1_000_000])
    p.add_argument("--members", type=int, default=5)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--dir", type=Path, default=Path("/tmp/magan_bench_interval"))
    p.add_argument("--child", nargs=2, metavar=("MODEL", "N"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]))
        return
    import pandas as pd

    from magan import MAGAN
    from magan.uncertainty import Ensemble

    model_dir = args.dir / "ensemble"
    if not model_dir.exists():
        x1 = pd.DataFrame(cells(TRAIN_CELLS, 1), columns=names(1))
        x2 = pd.DataFrame(cells(TRAIN_CELLS, 2), columns=names(2))
        base = MAGAN(n_steps=args.steps, progress=False, device="cpu")
        Ensemble(base, n_members=args.members).fit(x1, x2, shared_features="auto").save(
            model_dir)
    for n in args.cells:
        subprocess.run([sys.executable, __file__, "--child", str(model_dir), str(n)], check=True)


if __name__ == "__main__":
    main()
