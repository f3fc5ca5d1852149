"""A cytometry user's first run on raw FCS files, with the defaults: how right, and how fast.

    python benchmarks/bench_fcs.py --out fcs_bench [--steps N] [--tasks ...] [--seeds 0 1 2]

Each task runs ``magan align A.fcs B.fcs --out DIR --report --verbose`` in a subprocess (the
CLI a user types, defaults unless ``--steps``) and prints one JSON line:

* ``cytonorm``: two CyTOF plates of ../shared/data/cytonorm_gates (PTLG021 and PTLG034,
  volunteer 1, same panel). Recorded: channels aligned and passed through, the transform
  chosen, the verdict, the median and worst per-marker Pearson r between x1's markers and
  their translation (both on arcsinh(x / 5)), and the wall time of each CLI stage.
* ``shuffled``: the same with every marker column of the second file permuted across cells
  on its own (the panel's co-expression destroyed): the verdict must not be "good".
* ``flow``: ../shared/data/flowsom_68983 (BD FACSDiva, 7 manual gates), its cells split in
  two halves at random; the second half gets a synthetic instrument shift (each fluorescence
  channel multiplied by a gain drawn from 0.5-2, plus an offset of up to 300; scatter by
  0.85-1.15) and is written as FCS. Label transfer: a 15-NN classifier fitted on the shifted
  half's gates, in the model's space of domain 2 (``aligned.h5ad`` ``.obsm["X_magan"]``),
  applied to the first half translated by G12, against the same classifier applied to the
  first half untranslated (doing nothing: domain 2's preprocessing on its raw values).
* ``large``: the cytonorm pair resampled to 100,000 cells per file: wall time per stage.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from magan import MAGAN, io
from magan.datasets import find_shared_data

STAGE = re.compile(r"^\s+(.+?)\s{2,}([\d.]+) s$")


SEED = 0  # the CLI's --seed (main() sets it per run)


def run_cli(x1: Path, x2: Path, out: Path, steps: int | None) -> tuple[dict, dict, float]:
    cmd = [sys.executable, "-m", "magan", "align", str(x1), str(x2), "--out", str(out),
           "--report", "--verbose", "--quiet", "--overwrite", "--seed", str(SEED)]
    if steps:
        cmd += ["--steps", str(steps)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    stages = {m[1]: float(m[2]) for line in done.stdout.splitlines()
              if (m := STAGE.match(line))}
    run = json.loads((out / "run.json").read_text())
    return run, stages, stages.get("total", float("nan"))


def marker_r(x1: Path, out: Path) -> tuple[float, float]:
    """Median and worst Pearson r over the aligned markers: x1 measured vs translated."""
    model = MAGAN.load(out / "model")
    measured, moved = io.read(x1), io.read(out / "x1_in_domain2.fcs")
    rs = []
    for a, b in model.shared_features_:
        u = np.arcsinh(np.asarray(measured[:, a].X).ravel() / 5)
        v = np.arcsinh(np.asarray(moved[:, b].X).ravel() / 5)
        rs.append(float(np.corrcoef(u, v)[0, 1]))
    return float(np.median(rs)), float(np.min(rs))


def summary(run: dict, stages: dict, total: float) -> dict:
    diag = run.get("diagnostics") or {}
    return {"verdict": diag.get("verdict"), "reasons": diag.get("reasons"),
            "aligned": len(run["channels"][0]["aligned"]),
            "passed_through": sorted(run["channels"][0]["passed_through"]),
            "transforms": run["transforms"], "stages_s": stages, "wall_s": total}


def cytonorm(data: Path, tmp: Path, steps: int | None, shuffle: bool) -> dict:
    folder = data / "cytonorm_gates"
    x1 = folder / "Gates_PTLG021_Unstim_Control_1.fcs"
    x2 = folder / "Gates_PTLG034_Unstim_Control_1.fcs"
    if shuffle:
        b = io.read(x2)
        rng = np.random.default_rng(0)
        X = np.asarray(b.X).copy()
        for j in np.flatnonzero(b.var["role"].to_numpy() == "marker"):
            X[:, j] = X[rng.permutation(len(X)), j]
        b.X = X
        x2 = tmp / "shuffled.fcs"
        io.write(b, x2, overwrite=True)
    out = tmp / ("shuffled" if shuffle else "cytonorm")
    run, stages, total = run_cli(x1, x2, out, steps)
    med, worst = marker_r(x1, out)
    return {"task": "shuffled" if shuffle else "cytonorm", **summary(run, stages, total),
            "median_marker_r": med, "worst_marker_r": worst}


def large(data: Path, tmp: Path, steps: int | None, n_cells: int = 100_000) -> dict:
    """The cytonorm pair resampled to ``n_cells`` per file (cells drawn with replacement, each
    marker jittered by 5% multiplicative noise so no two rows repeat): the CLI's wall time."""
    folder = data / "cytonorm_gates"
    paths = []
    for k, name in enumerate(("Gates_PTLG021_Unstim_Control_1.fcs",
                              "Gates_PTLG034_Unstim_Control_1.fcs")):
        a = io.read(folder / name)
        rng = np.random.default_rng(k)
        big = a[rng.integers(a.n_obs, size=n_cells)].copy()
        X = np.asarray(big.X, dtype=np.float64)
        markers = big.var["role"].to_numpy() == "marker"
        X[:, markers] *= rng.lognormal(0.0, 0.05, size=(n_cells, int(markers.sum())))
        big.X = X.astype(np.float32)
        paths.append(tmp / f"large{k + 1}.fcs")
        io.write(big, paths[-1], overwrite=True)
    run, stages, total = run_cli(paths[0], paths[1], tmp / "large", steps)
    return {"task": "large", "n_cells": n_cells, **summary(run, stages, total)}


def flow(data: Path, tmp: Path, steps: int | None, seed: int = 0) -> dict:
    path = data / "flowsom_68983" / "68983.fcs"
    full = io.read(path)
    labels = pd.read_csv(data / "flowsom_68983" / "68983_labels.csv")["label"].to_numpy()
    rng = np.random.default_rng(seed)
    order = rng.permutation(full.n_obs)
    half = [np.sort(order[: full.n_obs // 2]), np.sort(order[full.n_obs // 2:])]
    parts = []
    for k, idx in enumerate(half):
        part = full[idx].copy()
        if k == 1:
            X = np.asarray(part.X, dtype=np.float64)
            roles = part.var["role"].to_numpy()
            for j, role in enumerate(roles):
                if role == "scatter":
                    X[:, j] *= rng.uniform(0.85, 1.15)
                elif role in ("marker", "viability", "unlabelled"):
                    X[:, j] = X[:, j] * rng.uniform(0.5, 2.0) + rng.uniform(-300, 300)
            part.X = X.astype(np.float32)
        target = tmp / f"flow_half{k + 1}.fcs"
        io.write(part, target, overwrite=True)
        parts.append(target)
    out = tmp / "flow"
    run, stages, total = run_cli(parts[0], parts[1], out, steps)
    model = MAGAN.load(out / "model")
    both = ad.read_h5ad(out / "aligned.h5ad")
    is2 = (both.obs["domain"] == "domain2").to_numpy()
    y1, y2 = labels[half[0]], labels[half[1]]
    from sklearn.neighbors import KNeighborsClassifier

    knn = KNeighborsClassifier(n_neighbors=15).fit(both.obsm["X_magan"][is2], y2)
    aligned = float((knn.predict(both.obsm["X_magan"][~is2]) == y1).mean())
    raw1 = io.read(parts[0])[:, model.feature_names2_]
    nothing = float((knn.predict(model.embed(raw1, domain=2)) == y1).mean())
    return {"task": "flow", **summary(run, stages, total), "gate_accuracy": aligned,
            "gate_accuracy_nothing": nothing, "n_gates": len(set(labels))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None, help="folder for the runs (default: a temp dir)")
    ap.add_argument("--steps", type=int, default=None, help="default: the CLI's default")
    ap.add_argument("--tasks", nargs="+", default=["cytonorm", "shuffled", "flow", "large"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0],
                    help="MAGAN seeds (the flow task's split and shift stay seed 0)")
    args = ap.parse_args()
    data = find_shared_data(required=True)
    tmp = Path(args.out or tempfile.mkdtemp(prefix="magan_fcs_"))
    tmp.mkdir(parents=True, exist_ok=True)
    global SEED
    for SEED in args.seeds:
        for task in args.tasks:
            if task == "flow":
                row = flow(data, tmp, args.steps)
            elif task == "large":
                row = large(data, tmp, args.steps)
            else:
                row = cytonorm(data, tmp, args.steps, shuffle=task == "shuffled")
            row["seed"] = SEED
            row["machine"] = f"{platform.machine()}, {platform.python_version()}"
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
