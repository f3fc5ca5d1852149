"""Peak memory and throughput of out-of-core MAGAN training from on-disk data, 10^4–10^7 cells.

    python benchmarks/bench_scale.py --cells 10000 100000 1000000 10000000 --steps 300

For each size, writes two synthetic cytometry-like domains (30 float32 features: arcsinh of
gamma-distributed intensities from 8 populations) as raw np.memmap files under --dir, then in a
fresh subprocess (so peak RSS is that size's alone) fits MAGAN from the memmaps for --steps
steps and translates every cell of domain 1 into a memmap output. Prints one JSON line per
size: peak RSS (VmHWM: anonymous and file-backed pages), the chunked preprocessing pass,
training steps/s and cells/s, transform cells/s, and the 1-min load average around the timing.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

D = 30


def make_domain(path: Path, n: int, seed: int, chunk: int = 1 << 20) -> None:
    """Cytometry-like intensities: 8 populations with their own gamma shapes, arcsinh(x / 5)."""
    if path.exists() and path.stat().st_size == n * D * 4:
        return
    rng = np.random.default_rng(seed)
    shapes = rng.uniform(0.5, 6.0, size=(8, D))
    scales = rng.uniform(5.0, 200.0, size=(8, D))
    out = np.memmap(path, dtype=np.float32, mode="w+", shape=(n, D))
    for start in range(0, n, chunk):
        k = min(chunk, n - start)
        pop = rng.integers(0, 8, size=k)
        x = rng.gamma(shapes[pop], scales[pop])
        out[start:start + k] = np.arcsinh(x / 5.0)
    out.flush()
    del out


def vm(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def worker(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    import magan.estimator
    from magan import MAGAN
    from magan.data import OnDiskRows
    from magan.preprocessing import Standardizer

    run_s = []  # time the training loop itself, apart from fit's preprocessing pass
    original_run = magan.estimator.Trainer.run

    def timed_run(self, *a, **k):
        t = time.perf_counter()
        try:
            return original_run(self, *a, **k)
        finally:
            run_s.append(time.perf_counter() - t)

    magan.estimator.Trainer.run = timed_run

    n = args.n
    x1 = np.memmap(Path(args.dir) / f"d1_{n}.f32", dtype=np.float32, mode="r", shape=(n, D))
    x2 = np.memmap(Path(args.dir) / f"d2_{n}.f32", dtype=np.float32, mode="r", shape=(n, D))
    if args.in_memory:
        x1, x2 = np.array(x1), np.array(x2)
    model = MAGAN(n_steps=args.steps, batch_size=args.batch, progress=False, seed=0,
                  log_every=100)
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    for x, name in ((x1, "x1"), (x2, "x2")):  # the chunked pass fit makes on disk data
        OnDiskRows.fit(x, None, lambda d: Standardizer(per_feature=False), name, seed=0)
    prep_s = time.perf_counter() - t0
    rss_after_prep = vm("VmRSS")
    t0 = time.perf_counter()
    model.fit(x1, x2, shared_features=[(i, i) for i in range(10)])
    fit_s = time.perf_counter() - t0
    out = np.memmap(Path(args.dir) / f"out_{n}.f32", dtype=np.float32, mode="w+", shape=(n, D))
    model.transform(x1[:1024])  # warm-up
    t0 = time.perf_counter()
    model.transform(x1, out=out)
    out.flush()
    transform_s = time.perf_counter() - t0
    train_s = run_s[0]
    print(json.dumps({
        "cells_per_domain": n, "features": D, "steps": args.steps, "batch": args.batch,
        "mode": "in_memory" if args.in_memory else "memmap (out-of-core)",
        "peak_rss_MB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "vm_hwm_MB": round(vm("VmHWM") / 2**20), "rss_after_prep_MB": round(rss_after_prep / 2**20),
        "rss_anon_end_MB": round(vm("RssAnon") / 2**20),
        "rss_file_end_MB": round(vm("RssFile") / 2**20),
        "prep_pass_s": round(prep_s, 2), "fit_s": round(fit_s, 2),
        "steps_per_s": round(args.steps / train_s, 1),
        "train_cells_per_s": round(2 * args.batch * args.steps / train_s),
        "transform_cells_per_s": round(n / transform_s),
        "threads": torch.get_num_threads(), "torch": torch.__version__,
        "load1_start": round(load0, 2), "load1_end": round(os.getloadavg()[0], 2),
    }), flush=True)


def wait_for_quiet(limit: float, max_wait: float) -> None:
    t0 = time.time()
    while os.getloadavg()[0] >= limit and time.time() - t0 < max_wait:
        time.sleep(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, nargs="+", default=[10**4, 10**5, 10**6, 10**7])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dir", default="/tmp/magan_scale")
    parser.add_argument("--in-memory", action="store_true",
                        help="load the memmaps into RAM first (the old path, for comparison)")
    parser.add_argument("--max-load", type=float, default=1.5)
    parser.add_argument("--max-wait", type=float, default=300)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)  # worker mode
    args = parser.parse_args()
    if args.n is not None:
        return worker(args)
    Path(args.dir).mkdir(parents=True, exist_ok=True)
    for n in args.cells:
        make_domain(Path(args.dir) / f"d1_{n}.f32", n, seed=1)
        make_domain(Path(args.dir) / f"d2_{n}.f32", n, seed=2)
        wait_for_quiet(args.max_load, args.max_wait)
        cmd = [sys.executable, __file__, "--n", str(n), "--steps", str(args.steps), "--batch",
               str(args.batch), "--threads", str(args.threads), "--dir", args.dir]
        if args.in_memory:
            cmd.append("--in-memory")
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        subprocess.run(cmd, check=True, env=env)
        (Path(args.dir) / f"out_{n}.f32").unlink(missing_ok=True)


if __name__ == "__main__":
    main()
