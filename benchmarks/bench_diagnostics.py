"""What the self-diagnosis (and its fall-back towards doing nothing) adds to a default fit.

    python benchmarks/bench_diagnostics.py --cells 10000 --features 30 1000 --threads 2

Two synthetic batches of the same panel (3 populations, every feature shared, batch 2 shifted
and rescaled), ``MAGAN(seed=0)`` with its defaults, fitted once with ``diagnose=False``; then
``diagnose_fitted`` timed alone, and the whole ``fit(diagnose=True)`` path (diagnosis plus up
to two re-diagnoses when the translation loses to doing nothing). One JSON line per size:
seconds of the fit without diagnosis, of one diagnosis, of the fit with it, and the overhead.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch

from magan import MAGAN
from magan.diagnostics import diagnose_fitted


def batches(n: int, d: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3, size=(3, d))
    x1 = centres[rng.integers(3, size=n)] + rng.normal(size=(n, d))
    x2 = centres[rng.integers(3, size=n)] + rng.normal(size=(n, d))
    x2 = x2 * rng.uniform(0.8, 1.2, size=d) + rng.normal(scale=0.5, size=d)
    return x1.astype(np.float32), x2.astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=10_000)
    ap.add_argument("--features", type=int, nargs="+", default=[30, 1000])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    for d in args.features:
        x1, x2 = batches(args.cells, d)
        shared = [(j, j) for j in range(d)]
        t = time.perf_counter()
        model = MAGAN(seed=0, progress=False).fit(x1, x2, shared_features=shared, diagnose=False)
        fit_s = time.perf_counter() - t
        t = time.perf_counter()
        diag = diagnose_fitted(model, x1, x2)
        diag_s = time.perf_counter() - t
        t = time.perf_counter()
        full = MAGAN(seed=0, progress=False).fit(x1, x2, shared_features=shared)
        full_s = time.perf_counter() - t
        print(json.dumps({
            "cells_per_domain": args.cells, "features": d, "threads": args.threads,
            "fit_without_s": round(fit_s, 1), "one_diagnosis_s": round(diag_s, 1),
            "fit_with_s": round(full_s, 1), "overhead": round(full_s / fit_s - 1, 3),
            "shared_residual": full.shared_residual_, "verdict": full.diagnostics_.verdict,
            "verdict_diagnosis_alone": diag.verdict, "torch": torch.__version__,
            "machine": platform.processor() or platform.machine(),
            "date": time.strftime("%Y-%m-%d")}), flush=True)


if __name__ == "__main__":
    main()
