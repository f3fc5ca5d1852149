"""The command line end to end on small files: align, transform, markers, errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from magan.cli import main

FAST = ["--steps", "40", "--batch-size", "32", "--quiet", "--generator-widths", "16",
        "--discriminator-widths", "16"]


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    f1 = pd.DataFrame(rng.gamma(2, 40, size=(80, 4)), columns=["CD3", "CD4", "CD8a", "CD19"],
                      index=[f"c{i}" for i in range(80)])
    f2 = pd.DataFrame(rng.gamma(2, 40, size=(70, 3)), columns=["cd3", "CD8A", "CD45RA"],
                      index=[f"d{i}" for i in range(70)])
    p1, p2 = tmp_path / "panel1.csv", tmp_path / "panel2.csv"
    f1.to_csv(p1)
    f2.to_csv(p2)
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("x1,x2\nc0,d5\nc1,d9\n")
    return p1, p2, pairs


def test_align_writes_model_and_translations_then_transform(tmp_path, files, capsys):
    p1, p2, pairs = files
    out = tmp_path / "run"
    assert main(["align", str(p1), str(p2), "--out", str(out), "--arcsinh", "5",
                 "--known-pairs", str(pairs), "--report", *FAST]) == 0
    y = pd.read_csv(out / "x1_in_domain2.csv", index_col=0)
    z = pd.read_csv(out / "x2_in_domain1.csv", index_col=0)
    assert list(y.columns) == ["cd3", "CD8A", "CD45RA"] and list(y.index[:2]) == ["c0", "c1"]
    assert z.shape == (70, 4) and np.isfinite(z.to_numpy()).all()
    assert (out / "model" / "config.json").is_file() and (out / "run.json").is_file()
    both = pd.read_csv(out / "x1_with_imputed.csv", index_col=0)
    assert list(both.columns) == ["CD3", "CD4", "CD8a", "CD19", "CD45RA (imputed)"]
    np.testing.assert_allclose(both["CD4"].to_numpy(), pd.read_csv(p1, index_col=0)["CD4"],
                               rtol=1e-6)
    assert (out / "report.html").is_file() and "<img" in (out / "report.html").read_text()
    from magan import MAGAN

    model = MAGAN.load(out / "model")
    assert model.shared_features_ == [("CD3", "cd3"), ("CD8a", "CD8A")]  # matched by name
    assert model.n_known_pairs_ == 2
    # Refuses to overwrite; transform with the saved model gives the same numbers.
    assert main(["align", str(p1), str(p2), "--out", str(out), *FAST]) == 1
    assert "--overwrite" in capsys.readouterr().err
    again = tmp_path / "again.csv"
    assert main(["transform", str(out / "model"), str(p1), "--out", str(again)]) == 0
    np.testing.assert_allclose(pd.read_csv(again, index_col=0).to_numpy(), y.to_numpy(),
                               rtol=1e-5)


def test_align_scaling_and_transport_options_reach_the_model(tmp_path, files):
    p1, p2, pairs = files
    out = tmp_path / "run"
    assert main(["align", str(p1), str(p2), "--out", str(out), "--standardize", "global",
                 "--shared", "none", "--known-pairs", str(pairs), "--transport-cost",
                 "structure", "--transport-warmup", "0.5", *FAST]) == 0
    from magan import MAGAN, Transport

    model = MAGAN.load(out / "model")
    assert model.standardize == "global" and model.transport_["cost"] == "structure"
    assert model.transport == Transport(kind="minibatch", cost="structure", warmup=0.5)
    assert np.ptp(model.preprocessing1_[-1].scale_) == 0  # one common scale per domain
    assert main(["align", str(p1), str(p2), "--out", str(tmp_path / "lm"), "--shared", "none",
                 "--known-pairs", str(pairs), "--landmarks", "20", *FAST]) == 0
    run = json.loads((tmp_path / "lm" / "run.json").read_text())
    assert run["transport"]["kind"] == "landmark" and run["transport"]["landmarks"] == [20, 20]
    assert run["adversarial_weight"] == 0.0 and "known pairs" in run["transport"]["reason"]


def test_align_interval_writes_calibrated_columns_and_an_ensemble(tmp_path, files, capsys):
    p1, p2, _ = files
    out = tmp_path / "run"
    assert main(["align", str(p1), str(p2), "--out", str(out), "--arcsinh", "5",
                 "--interval", "0.8", "--members", "2", *FAST]) == 0
    frame = pd.read_csv(out / "x2_imputed_interval.csv", index_col=0)
    assert list(frame.columns) == [f"{f} ({s})" for s in ("mean", "lower", "upper")
                                   for f in ("CD4", "CD19")]
    assert (frame["CD4 (lower)"] <= frame["CD4 (mean)"]).all()
    assert (frame["CD4 (mean)"] <= frame["CD4 (upper)"]).all()
    assert (out / "checkpoint" / "member_1").is_dir()
    from magan.uncertainty import Ensemble

    ens = Ensemble.load(out / "ensemble")
    assert [m.seed for m in ens.members_] == [0, 1]
    mean = ens.impute(pd.read_csv(p2, index_col=0), domain=2, level=None)
    np.testing.assert_allclose(mean["CD4"], frame["CD4 (mean)"], rtol=1e-5)
    # transform with the saved ensemble: the mean, or every feature with its interval
    again = tmp_path / "again.csv"
    assert main(["transform", str(out / "ensemble"), str(p2), "--inverse", "--out", str(again),
                 "--interval", "0.8"]) == 0
    back = pd.read_csv(again, index_col=0)
    assert back.shape == (70, 12) and list(back.columns[:2]) == ["CD3 (mean)", "CD4 (mean)"]
    np.testing.assert_allclose(back["CD4 (mean)"], frame["CD4 (mean)"], rtol=1e-5)
    assert main(["transform", str(out / "model"), str(p2), "--inverse", "--out",
                 str(tmp_path / "x.csv"), "--interval", "0.9"]) == 1
    assert "needs an ensemble folder" in capsys.readouterr().err
    assert main(["align", str(p1), str(p2), "--out", str(tmp_path / "b"), "--members", "3",
                 *FAST]) == 1
    assert "--interval" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["align", str(p1), str(p2), "--out", str(tmp_path / "c"), "--interval", "2"])


def test_align_interval_with_known_pairs_calibrates_on_held_out_pairs(tmp_path, files):
    """Enough pairs for the members to leave some out: the interval is also calibrated on them,
    and the written model is a separate fit that saw every pair."""
    p1, p2, _ = files
    pairs = tmp_path / "four_pairs.csv"
    pairs.write_text("x1,x2\nc0,d5\nc1,d9\nc2,d3\nc3,d7\n")
    out = tmp_path / "run"
    assert main(["align", str(p1), str(p2), "--out", str(out), "--known-pairs", str(pairs),
                 "--interval", "0.9", "--members", "2", *FAST]) == 0
    from magan import MAGAN
    from magan.uncertainty import Ensemble

    ens = Ensemble.load(out / "ensemble")
    assert [m.n_known_pairs_ for m in ens.members_] == [2, 2]  # each left 2 pairs out
    assert set(ens.pair_quantiles_) == {1, 2}
    model = MAGAN.load(out / "model")
    assert model.n_known_pairs_ == 4 and model.seed == 0
    assert sorted(p.name for p in (out / "checkpoint").iterdir()) == [
        "member_0", "member_1", "model"]
    y = pd.read_csv(out / "x1_in_domain2.csv", index_col=0).to_numpy()
    np.testing.assert_allclose(y, model.transform(pd.read_csv(p1, index_col=0)), rtol=1e-5)


def test_markers_prints_the_matching_table(files, capsys):
    p1, p2, _ = files
    assert main(["markers", str(p1), str(p2)]) == 0
    out = capsys.readouterr().out
    assert "CD8a" in out and "CD8A" in out and "CD45RA" in out


def test_errors_are_one_line_without_traceback(tmp_path, files):
    _, p2, _ = files
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\nnan,3\n")
    result = subprocess.run(
        [sys.executable, "-m", "magan", "align", str(bad), str(p2), "--out",
         str(tmp_path / "o"), "--shared", "none", *FAST],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and "NaN" in result.stderr
    result = subprocess.run([sys.executable, "-m", "magan", "align", str(tmp_path / "nope.csv"),
                             str(p2), "--out", str(tmp_path / "o")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "nope.csv" in result.stderr
    assert "Traceback" not in result.stderr


def test_help_lists_every_command():
    result = subprocess.run([sys.executable, "-m", "magan", "--help"], capture_output=True,
                            text=True, timeout=60)
    for command in ("align", "transform", "markers", "demo", "report"):
        assert command in result.stdout
    # The paper's experiments are not part of the installed package: `python -m experiments`.
    assert "experiment" not in result.stdout


@pytest.mark.shared_data
def test_align_real_fcs_files_writes_fcs(tmp_path, shared_data):
    """Two real CyTOF plates (FCS, same panel): FCS in, FCS out, markers matched by name."""
    from magan import io

    fcs = sorted((shared_data / "cytonorm_gates").glob("*.fcs"))[:2]
    out = tmp_path / "run"
    assert main(["align", str(fcs[0]), str(fcs[1]), "--out", str(out), *FAST]) == 0
    translated = io.read(out / "x1_in_domain2.fcs")
    original = io.read(fcs[0])
    assert translated.n_obs == original.n_obs
    assert list(translated.var_names) == list(original.var_names)  # every channel, in order
    assert np.isfinite(translated.X).all()
    # By default: the 37 markers aligned, arcsinh 5 chosen from $CYT, the rest passed through.
    run = json.loads((out / "run.json").read_text())
    channels = pd.read_csv(shared_data / "cytonorm_gates" / "channels.csv")
    markers = set(channels.loc[channels["used_in_cytonorm"], "pnn"])
    aligned = set(original.var.loc[run["channels"][0]["aligned"], "channel"])
    assert aligned == markers
    assert all("cofactor 5" in t and "CYTOF" in t for t in run["transforms"])
    for name in ("Time", "DNA1", "BC1", "beadDist"):
        np.testing.assert_allclose(translated[:, name].X, original[:, name].X, rtol=1e-6)
