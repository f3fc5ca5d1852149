"""What the self-diagnosis (and its fall-back towards doing nothing) adds to a default fit.

    python benchmarks/bench_diagnostics.py --cells 10000 --features 30 1000 --threads 2

Two synthetic batches of the same panel (3 populations, every feature shared, batch 2 shifted
and rescaled), ``MAGAN(seed=0)`` with its defaults, fitted once with ``diagnose=False``; then
its two steps timed alone (``prepare_reference``: the cells, doing nothing and the data checks,
once per fit; ``diagnose_reference``: one translation judged), and the whole
``fit(diagnose=True)`` path. One JSON line per size: seconds of the fit without diagnosis, of
each step, of the fit with it, its overhead, and the worst case's (the fall-back judging three
translations: reference + 3 judgements).
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch

from magan import MAGAN
from magan.diagnostics import diagnose_reference, prepare_reference


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
        ref = prepare_reference(model, x1, x2)
        ref_s = time.perf_counter() - t
        t = time.perf_counter()
        diag = diagnose_reference(model, ref)
        judge_s = time.perf_counter() - t
        diag_s = ref_s + judge_s
        t = time.perf_counter()
        full = MAGAN(seed=0, progress=False).fit(x1, x2, shared_features=shared)
        full_s = time.perf_counter() - t
        print(json.dumps({
            "cells_per_domain": args.cells, "features": d, "threads": args.threads,
            "fit_without_s": round(fit_s, 1), "one_diagnosis_s": round(diag_s, 1),
            "reference_s": round(ref_s, 1), "judgement_s": round(judge_s, 1),
            "fit_with_s": round(full_s, 1), "overhead": round(full_s / fit_s - 1, 3),
            "worst_case_overhead": round((ref_s + 3 * judge_s) / fit_s, 3),
            "shared_residual": full.shared_residual_, "verdict": full.diagnostics_.verdict,
            "verdict_diagnosis_alone": diag.verdict, "torch": torch.__version__,
            "machine": platform.processor() or platform.machine(),
            "date": time.strftime("%Y-%m-%d")}), flush=True)


if __name__ == "__main__":
    main()
