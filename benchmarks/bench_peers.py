"""MAGAN next to SCOT-style Gromov–Wasserstein (POT), Pamona and UnionCom on paired data.

    python benchmarks/bench_peers.py --datasets scgem synth1000 synth10000 --cap 600

Datasets: scGEM (177 cells, expression vs methylation, row i <-> row i, /work/shared/data) and
a synthetic paired set (the same 2-D latent points through two random nonlinear maps into 30 and
20 features, plus noise) at the sizes asked. Each method runs in its own subprocess with
OMP_NUM_THREADS=--threads; the parent polls its peak RSS (VmHWM) and kills it after --cap
seconds. FOSCTTM (magan.metrics.foscttm, lower is better, 0.5 = chance) is measured in x2's
space for MAGAN (10 known pairs) and GW (barycentric projection), and in the shared embedding
Pamona and UnionCom return. Prints one JSON line per (dataset, method).

The peers are not magan dependencies; install them beside it, e.g. in a side environment that
sees the project's (so torch stays the project's CPU build):

    python -m venv /tmp/peers && echo "$PWD/.venv/lib/python3.11/site-packages" \
        > /tmp/peers/lib/python3.11/site-packages/project.pth
    /tmp/peers/bin/pip install pamona unioncom umap-learn
    PYTHONPATH=src /tmp/peers/bin/python benchmarks/bench_peers.py

UnionCom 0.4.0 imports ``torchvision.models`` in ``unioncom/Model.py`` and never uses it; a
PyPI torchvision cannot load against a CPU torch build, so the worker gives it an empty
``torchvision`` module when the real one is missing or broken, and NumPy the ``np.int`` /
``np.float`` aliases (removed in NumPy 1.24) that its code still calls.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

# scGEM's loader and GW-OT live in the repository's experiments/ (not the installed package);
# as a script (and in its workers) this folder is on sys.path, so add the repository root.
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)


def load(name: str) -> tuple[np.ndarray, np.ndarray]:
    if name == "scgem":  # the cross-modal experiment's loader (rows are the same cells)
        from experiments.crossmodal import load_scgem

        return load_scgem()[:2]
    n = int(name.removeprefix("synth"))
    rng = np.random.default_rng(0)
    t = rng.uniform(0, 3 * np.pi, n)  # a curved 1-D trajectory with 2-D spread
    latent = np.stack([t * np.cos(t), t * np.sin(t), rng.normal(0, 1, n)], axis=1) / 5
    a, b = rng.normal(size=(3, 30)), rng.normal(size=(3, 20))
    x1 = np.tanh(latent @ a) + rng.normal(0, 0.05, (n, 30))
    x2 = np.log1p(np.exp(latent @ b)) + rng.normal(0, 0.05, (n, 20))
    return x1.astype(np.float32), x2.astype(np.float32)


def run_method(method: str, x1: np.ndarray, x2: np.ndarray, seed: int = 0,
               magan_params: dict | None = None) -> float:
    from magan.metrics import foscttm

    if method == "magan":
        from magan import MAGAN

        known = np.random.default_rng(1).choice(len(x1), 10, replace=False)
        model = MAGAN(**{"n_steps": 1500, "batch_size": 128, "seed": seed, "progress": False,
                         **(magan_params or {})})
        model.fit(x1, x2, known_pairs=[(i, i) for i in known])
        return foscttm(model.transform(x1), x2)
    if method == "gw_ot":
        from experiments.baselines import gw_ot_align

        return foscttm(gw_ot_align(x1, x2).x1_in_2, x2)
    if method == "pamona":
        from pamona import Pamona

        emb, _ = Pamona.Pamona(n_shared=[len(x1)], output_dim=5, verbose=False).run_Pamona(
            [x1, x2])
        return foscttm(emb[0], emb[1])
    if method == "unioncom":
        try:
            import torchvision  # noqa: F401
        except Exception:  # absent or built for another torch: UnionCom only names it
            import types

            sys.modules["torchvision"] = types.ModuleType("torchvision")
            sys.modules["torchvision"].models = types.ModuleType("torchvision.models")
        for alias, builtin in (("int", int), ("float", float)):  # removed in NumPy 1.24,
            if alias not in np.__dict__:  # still called by UnionCom 0.4.0
                setattr(np, alias, builtin)
        from unioncom import UnionCom

        emb = UnionCom.UnionCom(output_dim=5).fit_transform(dataset=[x1, x2])
        return foscttm(emb[0], emb[1])
    raise ValueError(method)


def worker(dataset: str, method: str, threads: int, seed: int, magan_params: dict) -> None:
    import torch

    torch.set_num_threads(threads)
    x1, x2 = load(dataset)
    t0 = time.perf_counter()
    score = run_method(method, x1, x2, seed, magan_params)
    wall = time.perf_counter() - t0
    print("RESULT " + json.dumps({"foscttm": round(float(score), 4), "wall_s": round(wall, 2)}),
          flush=True)


def hwm(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["scgem", "synth1000", "synth10000"])
    parser.add_argument("--methods", nargs="+", default=["magan", "gw_ot", "pamona", "unioncom"])
    parser.add_argument("--cap", type=float, default=600)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0],
                        help="MAGAN's seeds, one row each (the peers run once)")
    parser.add_argument("--magan-params", type=json.loads, default={},
                        help='JSON of MAGAN parameters over the benchmark\'s, e.g. '
                             '\'{"transport": "minibatch"}\'')
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        dataset, method, seed = args.worker
        return worker(dataset, method, args.threads, int(seed), args.magan_params)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    for dataset in args.datasets:
        n = len(load(dataset)[0])
        for method in args.methods:
            for seed in args.seeds if method == "magan" else [0]:
                cmd = [sys.executable, __file__, "--worker", dataset, method, str(seed),
                       "--threads", str(args.threads),
                       "--magan-params", json.dumps(args.magan_params)]
                row = {"dataset": dataset, "cells": n, "method": method,
                       **({"seed": seed, "magan_params": args.magan_params}
                          if method == "magan" else {}),
                       **run_capped(cmd, env, args.cap), "threads": args.threads}
                print(json.dumps(row), flush=True)


def run_capped(cmd: list[str], env: dict, cap: float) -> dict:
    """Run one worker, polling its peak RSS; kill it after ``cap`` seconds."""
    t0, peak = time.perf_counter(), 0
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    status = "ok"
    while proc.poll() is None:
        peak = max(peak, hwm(proc.pid))
        if time.perf_counter() - t0 > cap:
            proc.kill()
            status = f"killed at the {cap:.0f} s cap"
            break
        time.sleep(0.2)
    out, err = proc.communicate()
    row = {"status": status, "peak_rss_MB": round(peak / 2**20),
           "load1": round(os.getloadavg()[0], 2)}
    lines = [ln for ln in out.splitlines() if ln.startswith("RESULT ")]
    if lines:
        row.update(json.loads(lines[-1][7:]))
    elif status == "ok":
        row["status"] = f"failed (exit {proc.returncode}): {err.strip()[-300:]}"
    else:
        row["wall_s"] = f">{cap:.0f}"
    return row

if __name__ == "__main__":
    main()
