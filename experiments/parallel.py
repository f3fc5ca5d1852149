"""Run the paper's experiments with one process per (experiment, seed), then merge.

Why: each fit uses one CPU thread (small networks are fastest that way), so a machine with
many cores runs the seeds side by side. The merged ``<name>.json``/``.md`` are what
``python -m experiments NAME`` would write for the same seeds (per-seed metrics are identical:
each seed's run is independent and single-threaded). ``python -m experiments NAME --jobs N``
does the same for one experiment at a time; this runs the seeds of several at once.

    python -m experiments.parallel run --out results --jobs 16 cytof-panels cross-modal
    python -m experiments.parallel merge --out results cytof-panels
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the repository root, where experiments/ is


def _run_one(name: str, seed: int, out: Path) -> int:
    part = out / "parts" / f"{name}_seed{seed}"
    part.mkdir(parents=True, exist_ok=True)
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": path}
    code = ("import sys; from experiments import run_experiment; "
            f"run_experiment({name!r}, [{seed}], {str(part)!r})")
    with open(part / "log.txt", "w") as log:
        return subprocess.call([sys.executable, "-c", code], env=env, stdout=log,
                               stderr=subprocess.STDOUT)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("action", choices=["run", "merge"])
    ap.add_argument("names", nargs="+")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seeds", type=int, default=None, help="default: each experiment's own")
    ap.add_argument("--jobs", type=int, default=os.cpu_count())
    args = ap.parse_args()
    if str(ROOT) not in sys.path:  # run as a script: python experiments/parallel.py
        sys.path.insert(0, str(ROOT))
    from experiments import SPECS, merge_experiment

    if args.action == "run":
        jobs = [(n, s) for n in args.names
                for s in range(args.seeds or SPECS[n].default_seeds)]
        with ThreadPoolExecutor(args.jobs) as pool:
            codes = list(pool.map(lambda job: _run_one(*job, args.out), jobs))
        for (n, s), c in zip(jobs, codes, strict=True):
            if c:
                print(f"{n} seed {s} failed (exit {c}); see {args.out}/parts/{n}_seed{s}/log.txt")
    for n in args.names:
        parts = sorted((args.out / "parts").glob(f"{n}_seed*/{n}.json"))
        if parts:
            result = merge_experiment(n, parts, args.out)
            print(f"## {n}: seeds {result['seeds_done']}\n\n{result['table']}")


if __name__ == "__main__":
    main()
