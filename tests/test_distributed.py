"""Data-parallel training with torchrun: 2 CPU processes (gloo) end with identical weights and
the quality of a single process; the CLI runs under torchrun with rank 0 writing outputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

HERE = Path(__file__).parent


def torchrun(args: list[str], timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           "--nproc-per-node", "2", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.mark.slow
def test_two_ranks_end_identical_and_align_the_gaussians(tmp_path):
    result = torchrun([str(HERE / "ddp_worker.py"), str(tmp_path), "600"])
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert all(r["world_size"] == 2 for r in ranks)
    assert ranks[0]["weights"] == ranks[1]["weights"]  # gradients were all-reduced
    assert ranks[0]["mapping"] == [0, 1, 2]  # same answer as single-process MAGAN
    assert ranks[0]["history_rows"] == 600
    assert (tmp_path / "ck" / "checkpoint.pt").is_file()  # rank 0 checkpointed

    # Resume from the checkpoint with more steps: both ranks continue identically.
    result = torchrun([str(HERE / "ddp_worker.py"), str(tmp_path), "700"])
    assert result.returncode == 0, result.stderr[-3000:]


def test_cli_under_torchrun_writes_outputs_once(tmp_path):
    rng = np.random.default_rng(0)
    for name, cols in (("a.csv", ["CD3", "CD4", "CD8"]), ("b.csv", ["CD3", "CD8", "CD19"])):
        pd.DataFrame(rng.gamma(2, 30, size=(64, 3)), columns=cols).to_csv(tmp_path / name)
    # Known pairs only: "auto" uses the landmark plan, which every rank computes alike (the
    # same seeded landmarks and a deterministic solver).
    (tmp_path / "pairs.csv").write_text("x1,x2\n" + "".join(f"{i},{i}\n" for i in range(8)))
    result = torchrun(["-m", "magan", "align", str(tmp_path / "a.csv"), str(tmp_path / "b.csv"),
                       "--out", str(tmp_path / "run"), "--steps", "30", "--batch-size", "16",
                       "--generator-widths", "16", "--discriminator-widths", "16", "--quiet",
                       "--device", "cpu", "--shared", "none",
                       "--known-pairs", str(tmp_path / "pairs.csv")])
    assert result.returncode == 0, result.stderr[-3000:]
    y = pd.read_csv(tmp_path / "run" / "x1_in_domain2.csv", index_col=0)
    assert y.shape == (64, 3) and np.isfinite(y.to_numpy()).all()
    config = json.loads((tmp_path / "run" / "model" / "config.json").read_text())
    assert config["transport"]["kind"] == "landmark"
    assert config["transport"]["landmarks"] == [64, 64]
