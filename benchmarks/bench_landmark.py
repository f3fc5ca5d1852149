"""Cost of the landmark plan (``magan.transport``), and of a whole default fit that uses it.

    python benchmarks/bench_landmark.py --landmarks 2000 5000 --fit-cells 10000 100000 \
        > benchmarks/results/landmark_2026-12-02.jsonl

One JSON line per run, each in a fresh process (peak RSS is the process's own):
- ``part: plan``: ``landmark_plan`` between two m-cell samples of a synthetic 50-dimensional
  curved trajectory (the geodesics, the GW rounds, Sinkhorn), seconds and peak RSS;
- ``part: fit``: ``MAGAN().fit`` with 10 known pairs and no shared features at n cells per
  domain (``transport="auto"``: the landmark plan on 2,000 cells per domain, then training),
  seconds, the plan's share of them, and peak RSS.
Threads: all cores (torch's default), as a user's run would.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np


def trajectory(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two views of one curved 1-D trajectory in 50 dimensions (different random maps)."""
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, 1, n)
    base = np.c_[np.cos(3 * t), np.sin(3 * t), t, t ** 2]
    out = []
    for k in range(2):
        mix = np.random.default_rng(100 + k).normal(size=(4, 50))
        out.append((np.tanh(base @ mix) + rng.normal(0, 0.05, (n, 50))).astype(np.float32))
    return out[0], out[1]


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_plan(m: int) -> dict:
    import torch

    from magan.transport import Transport, landmark_plan

    x1, x2 = trajectory(m, 0)
    start = time.perf_counter()
    plan, rounds = landmark_plan(x1, x2, Transport(kind="landmark", landmarks=m),
                                 anchors=(np.arange(10), np.arange(10)))
    seconds = time.perf_counter() - start
    return {"part": "plan", "landmarks": m, "rounds": rounds, "seconds": round(seconds, 1),
            "peak_rss_mb": round(_peak_mb()), "threads": torch.get_num_threads(),
            "finite": bool(torch.isfinite(plan).all())}


def run_fit(n: int) -> dict:
    from magan import MAGAN

    x1, x2 = trajectory(n, 1)
    start = time.perf_counter()
    model = MAGAN(progress=False).fit(x1, x2, known_pairs=[(i, i) for i in range(10)],
                                      diagnose=False)
    seconds = time.perf_counter() - start
    return {"part": "fit", "cells": n, "seconds": round(seconds, 1),
            "plan_seconds": model.transport_["seconds"], "steps": model.n_steps_,
            "landmarks": model.transport_["landmarks"], "peak_rss_mb": round(_peak_mb())}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--landmarks", type=int, nargs="*", default=[2000, 5000])
    parser.add_argument("--fit-cells", type=int, nargs="*", default=[10_000])
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)  # internal: one run
    args = parser.parse_args(argv)
    if args.one:
        kind, size = args.one
        print(json.dumps(run_plan(int(size)) if kind == "plan" else run_fit(int(size))))
        return
    jobs = [("plan", m) for m in args.landmarks] + [("fit", n) for n in args.fit_cells]
    for kind, size in jobs:  # a fresh process each: peak RSS is that run's alone
        out = subprocess.run([sys.executable, __file__, "--one", kind, str(size)],
                             capture_output=True, text=True, check=True)
        print(out.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
