"""Trustworthy under bad input, faults and long runs (issue 8).

Bad input gets a named ``MaganError`` before training; a run killed with SIGKILL resumes to the
same weights; divergence stops the run without writing NaN; inputs are never opened for writing;
same seed gives the same files; loading a model never runs code from it.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from magan import MAGAN
from magan.cli import main
from magan.correspondence import correlated
from magan.errors import (
    ConfigError,
    DataError,
    DivergenceError,
    FileFormatError,
    MaganError,
    ModelFileError,
)

TINY = {"networks": {"generator": (16,), "discriminator": (16,)}, "n_steps": 20,
        "batch_size": 16, "progress": False, "log_every": 10}
CLI_TINY = ["--batch-size", "16", "--quiet", "--generator-widths", "16",
            "--discriminator-widths", "16", "--shared", "CD3:cd3", "--seed", "7"]
CORPUS = Path(__file__).parent / "data" / "corrupt"
pytestmark = [pytest.mark.filterwarnings("ignore:no shared_features"),
              pytest.mark.filterwarnings("ignore:Detected pickle protocol")]


def _env() -> dict[str, str]:
    src = str(Path(__file__).resolve().parents[1] / "src")
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _fit(x1, x2, **kwargs) -> MAGAN:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return MAGAN(**TINY).fit(x1, x2, **kwargs)


@pytest.fixture
def data() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(0)
    f1 = pd.DataFrame(rng.gamma(2, 40, size=(60, 3)), columns=["CD3", "CD4", "CD8"],
                      index=[f"a{i}" for i in range(60)])
    f2 = pd.DataFrame(rng.gamma(2, 40, size=(50, 2)), columns=["cd3", "CD45"],
                      index=[f"b{i}" for i in range(50)])
    return f1, f2


@pytest.fixture
def csvs(tmp_path, data) -> tuple[Path, Path]:
    p1, p2 = tmp_path / "x1.csv", tmp_path / "x2.csv"
    data[0].to_csv(p1)
    data[1].to_csv(p2)
    return p1, p2


# ---- bad input: named errors before training ------------------------------------------------


def _complex(x):
    return x.to_numpy() + 1j


def _masked(x):
    return np.ma.masked_array(x.to_numpy(), mask=np.eye(len(x), x.shape[1], dtype=bool))


def _nullable(x):
    y = x.astype("Float64")
    y.iloc[3, 1] = pd.NA
    return y


def _too_big(x):
    return x.to_numpy() * 1e300


def _category(x):
    return x.assign(CD4=pd.Categorical(x["CD4"].round()))


def _bool_column(x):
    return x.assign(CD4=x["CD4"] > 50)


def _dup_columns(x):
    return x.set_axis(["CD3", "CD3", "CD8"], axis=1)


def _single_row(x):
    return x.iloc[:1]


def _empty(x):
    return x.iloc[:0]


def _no_features(x):
    return x.iloc[:, :0]


def _one_d(x):
    return x["CD3"].to_numpy()


def _three_d(x):
    return x.to_numpy()[None]


def _ragged(x):
    return [[1.0, 2.0], [3.0]]


def _text(x):
    return x.astype(str).to_numpy()


def _inf_row(x):
    y = x.copy()
    y.iloc[5] = np.inf
    return y


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (_complex, "complex"),
        (_masked, "NaN/inf values"),
        (_nullable, r"NaN/inf values in 1 cells, first rows \[3\]"),
        (_too_big, "too large for float32"),
        (_category, "non-numeric columns"),
        (_bool_column, "non-numeric columns"),
        (_dup_columns, "duplicated feature names"),
        (_single_row, "at least 2 cells"),
        (_empty, "at least 2 cells"),
        (_no_features, "no features"),
        (_one_d, "2-D"),
        (_three_d, "2-D"),
        (_ragged, "cannot be read as a matrix"),
        (_text, "numeric"),
        (_inf_row, "drop_nonfinite=True"),
    ],
)
def test_bad_matrix_is_a_named_data_error(data, make, match):
    f1, f2 = data
    with pytest.raises(DataError, match=match):
        MAGAN(**TINY).fit(make(f1), f2)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"shared_features": []}, DataError, "empty"),
        ({"shared_features": 3}, DataError, "list of pairs"),
        ({"shared_features": [("CD3", "CD3")]}, DataError, "'CD3' not found in x2"),
        ({"shared_features": [("CD3", "cd3"), ("CD4", "cd3")]}, DataError, "matched twice"),
        ({"shared_features": [(0, 2)]}, DataError, "out of range"),
        ({"known_pairs": 5}, DataError, "list of"),
        ({"known_pairs": []}, DataError, "empty"),
        ({"known_pairs": [(-1, 0)]}, DataError, "out of range"),
        ({"known_pairs": [(0, 50)]}, DataError, r"out of range for x2 \(50 cells"),
        ({"known_pairs": [(0, 1), (2, 3), (0, 1)]}, DataError, r"more than once: \[\(0, 1\)\]"),
        ({"known_pairs": [(0.0, 1)]}, DataError, "row indices"),
        ({"known_pairs": [(True, 1)]}, DataError, "row indices"),
        ({"checkpoint_every": 0}, ConfigError, "checkpoint_every"),
        ({"resume": True}, ConfigError, "checkpoint_dir"),
    ],
)
def test_bad_correspondence_or_option_is_named(data, kwargs, error, match):
    with pytest.raises(error, match=match):
        MAGAN(**TINY).fit(*data, **kwargs)


def test_shared_features_as_a_mapping_pairs_keys_with_values(data):
    model = _fit(*data, shared_features={"CD3": "cd3"})
    assert model.shared_features_ == [("CD3", "cd3")]


def test_known_pairs_from_a_frame_and_ambiguous_names(data):
    f1, f2 = data
    frame = pd.DataFrame({"x1": ["a1", "a2"], "x2": ["b3", "b4"]})
    assert _fit(f1, f2, known_pairs=frame).n_known_pairs_ == 2
    dup = f1.set_axis(["a1"] * len(f1))
    with pytest.raises(DataError, match="more than once among x1's cell names"):
        MAGAN(**TINY).fit(dup, f2, known_pairs=[("a1", "b3")])
    with pytest.warns(UserWarning, match="several partners"):
        MAGAN(**TINY).fit(f1, f2, known_pairs=[(0, 1), (0, 2)])


def test_constant_columns_are_warned_about_by_name(data):
    f1, f2 = data
    with pytest.warns(UserWarning, match=r"x1: features \['CD4'\] are constant"):
        model = MAGAN(**TINY).fit(f1.assign(CD4=3.0), f2, shared_features=[("CD3", "cd3")])
    # Legal: the constant column comes back at its value, finite.
    y = model.inverse_transform(f2)
    assert np.isfinite(y).all() and np.allclose(y[:, 1], 3.0, atol=1e-3)


def test_drop_nonfinite_drops_cells_and_remaps_known_pairs(data):
    f1, f2 = data
    dirty = f1.copy()
    dirty.iloc[[2, 7], 1] = np.nan
    pairs = [(1, 0), (2, 1), (9, 4)]  # the pair on row 2 names a dropped cell
    with pytest.warns(UserWarning, match=r"x1: dropped 2 of 60 cells .*\[2, 7\].*1 known pairs"):
        model = MAGAN(**TINY).fit(dirty, f2, known_pairs=pairs, drop_nonfinite=True)
    clean = f1.drop(index=["a2", "a7"])
    # Same training as on the cleaned table with the pairs renumbered (row 9 is now row 7).
    reference = _fit(clean, f2, known_pairs=[(1, 0), (7, 4)])
    assert model.n_known_pairs_ == 2
    np.testing.assert_array_equal(model.transform(clean), reference.transform(clean))
    with pytest.raises(DataError, match="only 1 of 60 cells"):
        MAGAN(**TINY).fit(f1.iloc[:1].reindex(f1.index), f2, drop_nonfinite=True)


def test_transform_input_with_wrong_features(data):
    f1, f2 = data
    model = _fit(f1, f2, shared_features=[("CD3", "cd3")])
    with pytest.raises(DataError, match=r"lacks features .*'CD8'"):
        model.transform(f1.rename(columns={"CD8": "CD8a"}))
    with pytest.raises(DataError, match="has 2 features, but this MAGAN was trained with 3"):
        model.transform(f1.to_numpy()[:, :2])
    with pytest.raises(DataError, match="NaN/inf"):
        model.transform(f1.replace(f1.iloc[0, 0], np.nan))
    # Extra columns and another order are fine: features are matched by name.
    extra = f1[["CD8", "CD3", "CD4"]].assign(Time=1.0)
    np.testing.assert_array_equal(model.transform(extra), model.transform(f1))


def test_translation_that_overflows_is_refused_not_returned(data):
    from magan.preprocessing import Arcsinh

    f1, f2 = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = MAGAN(**TINY, preprocess2=Arcsinh(5.0)).fit(f1, f2)
    far = np.full((3, 3), 3e38, dtype=np.float32)
    with pytest.raises(DataError, match="not finite"):
        model.transform(far)


# ---- corrupt files ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(p for p in CORPUS.iterdir() if p.suffix != ".py"),
                         ids=lambda p: p.name)
def test_corrupt_file_corpus_gets_a_named_error(path):
    from magan import io

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(MaganError):
            io.read(path)


def test_cli_reports_a_truncated_fcs_in_one_line(tmp_path, csvs, capsys):
    code = main(["align", str(CORPUS / "truncated_data.fcs"), str(csvs[1]), "--out",
                 str(tmp_path / "o"), *CLI_TINY])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("magan: error: ") and err.count("\n") == 1
    assert "truncated" in err


def test_cli_unwritable_output_is_one_line(tmp_path, csvs, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["align", *map(str, csvs), "--out", str(blocker / "out"), *CLI_TINY,
                 "--steps", "4"]) == 1
    assert capsys.readouterr().err.startswith("magan: error: ")


# ---- saved models and checkpoints -------------------------------------------------------------


class _Payload:
    """Unpickling this would create ``marker``: proof that code from the file ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def _point_checksum_at(path: Path) -> None:
    """Rewrite config.json's checksum: an attacker controls both files."""
    config = json.loads((path / "config.json").read_text())
    config["weights_sha256"] = hashlib.sha256((path / "weights.pt").read_bytes()).hexdigest()
    (path / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize("writer", ["torch", "pickle"])
def test_loading_a_pickle_bearing_model_never_runs_its_code(tmp_path, data, writer):
    path = _fit(*data).save(tmp_path / "m")
    marker = tmp_path / "pwned"
    state = {"g12.net.0.weight": _Payload(marker)}
    if writer == "torch":
        torch.save(state, path / "weights.pt")
    else:
        with open(path / "weights.pt", "wb") as fh:
            pickle.dump(state, fh)
    _point_checksum_at(path)
    with pytest.raises(ModelFileError, match="refused"):
        MAGAN.load(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        (lambda c: [1, 2], "not a MAGAN config"),
        (lambda c: {**c, "feature_names1": c["feature_names1"][:-1]}, "number of features"),
        (lambda c: {**c, "network": {**c["network"], "n_features1": 5}}, "could not be loaded"),
        (lambda c: {**c, "has_names": [True]}, "could not be loaded"),
        (lambda c: {**c, "preprocessing1": [{"kind": "exec"}]}, "unknown preprocessing"),
        (lambda c: {k: v for k, v in c.items() if k != "params"}, "could not be loaded"),
        (lambda c: {**c, "format_version": 0, "magan_version": "0.0.1"}, "format 0"),
    ],
)
def test_tampered_or_foreign_model_config_is_refused(tmp_path, data, damage, match):
    path = _fit(*data).save(tmp_path / "m")
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps(damage(config)))
    with pytest.raises(ModelFileError, match=match):
        MAGAN.load(path)


def test_damaged_history_and_missing_weights_are_refused(tmp_path, data):
    path = _fit(*data).save(tmp_path / "m")
    (path / "history.csv").write_bytes(b"\x00\xff garbage")
    with pytest.raises(ModelFileError, match=r"history\.csv"):
        MAGAN.load(path)
    (path / "weights.pt").unlink()
    with pytest.raises(ModelFileError, match="not a saved MAGAN model"):
        MAGAN.load(path)


def test_damaged_checkpoint_is_refused_on_resume(tmp_path, data):
    ck = tmp_path / "ck"
    MAGAN(**TINY).fit(*data, checkpoint_dir=ck, checkpoint_every=10)
    blob = (ck / "checkpoint.pt").read_bytes()
    (ck / "checkpoint.pt").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ModelFileError, match="cannot be read"):
        MAGAN(**TINY).fit(*data, checkpoint_dir=ck, resume=True)
    torch.save({"fingerprint": "x"}, ck / "checkpoint.pt")
    with pytest.raises(ModelFileError, match="other data or parameters"):
        MAGAN(**TINY).fit(*data, checkpoint_dir=ck, resume=True)


# ---- divergence ----------------------------------------------------------------------------


def test_non_finite_loss_stops_with_the_step_and_keeps_the_good_checkpoint(tmp_path, data):
    calls = {"n": 0}

    def relation(x1, x12):  # fine for 25 steps, then inf
        calls["n"] += 1
        base = correlated(0, 0)(x1, x12)
        return base * float("inf") if calls["n"] > 25 else base

    ck = tmp_path / "ck"
    with pytest.raises(DivergenceError, match=r"loss .relation. became non-finite at step 26"):
        MAGAN(**{**TINY, "n_steps": 40}).fit(*data, relation=relation, checkpoint_dir=ck,
                                            checkpoint_every=10)
    state = torch.load(ck / "checkpoint.pt", weights_only=True)
    assert state["step"] == 20  # the last sync before step 26; never a NaN checkpoint
    assert all(torch.isfinite(v).all() for v in state["module"].values())


def test_nan_weights_after_the_last_finite_loss_are_caught(data):
    def relation(x1, x12):  # value 0, gradient NaN (d sqrt(0)): the update poisons the weights
        return torch.sqrt((x12[:, 0] * 0).abs()).sum()

    with pytest.raises(DivergenceError, match="weights became non-finite by step 1"):
        MAGAN(**{**TINY, "n_steps": 1, "log_every": 1}).fit(*data, relation=relation)


def test_cli_divergence_is_one_line_and_writes_no_output(tmp_path, capsys):
    rng = np.random.default_rng(0)
    huge = pd.DataFrame(rng.normal(size=(40, 2)) * 1e30, columns=["CD3", "CD4"])
    p1, p2 = tmp_path / "a.csv", tmp_path / "b.csv"
    huge.to_csv(p1)
    huge.rename(columns={"CD3": "cd3"}).to_csv(p2)
    out = tmp_path / "out"
    code = main(["align", str(p1), str(p2), "--out", str(out), "--preset", "paper",
                 "--steps", "20", *CLI_TINY])
    err = capsys.readouterr().err
    assert code == 1 and "diverged" in err and "at step 1" in err
    assert not (out / "model").exists() and not list(out.glob("x*_in_domain*"))


# ---- kill -9 and resume -------------------------------------------------------------------


def _align(args: list[str], **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "magan", "align", *args], env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def test_kill_9_then_resume_is_bit_identical_to_an_uninterrupted_run(tmp_path, csvs):
    steps = 1500
    common = [*map(str, csvs), *CLI_TINY, "--steps", str(steps), "--checkpoint-every", "100"]
    reference = _align([*common, "--out", str(tmp_path / "ref")])

    killed_dir = tmp_path / "killed"
    victim = _align([*common, "--out", str(killed_dir)])
    checkpoint = killed_dir / "checkpoint" / "checkpoint.pt"
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert victim.poll() is None, "the run ended before it could be killed; raise steps"
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(timeout=30)
    assert victim.returncode == -signal.SIGKILL
    saved = torch.load(checkpoint, weights_only=True)
    assert 0 < saved["step"] < steps
    print(f"killed at step {saved['step']} of {steps}")
    assert not (killed_dir / "model").exists()  # killed before any output

    resumed = _align([*common, "--out", str(killed_dir), "--resume"])
    for proc in (reference, resumed):
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()

    ref, res = tmp_path / "ref", killed_dir
    for name in ("x1_in_domain2.csv", "x2_in_domain1.csv", "model/history.csv"):
        assert (ref / name).read_bytes() == (res / name).read_bytes(), name
    w_ref = torch.load(ref / "model" / "weights.pt", weights_only=True)
    w_res = torch.load(res / "model" / "weights.pt", weights_only=True)
    assert w_ref.keys() == w_res.keys()
    assert all(torch.equal(w_ref[k], w_res[k]) for k in w_ref)
    # The killed run was on the same trajectory: its history is a prefix of the reference's.
    history = pd.read_csv(ref / "model" / "history.csv", index_col="step").to_numpy()
    np.testing.assert_array_equal(saved["history"].numpy(),
                                  history[: saved["step"]].astype(np.float32))


# ---- inputs untouched, outputs atomic, determinism -------------------------------------------

_GUARD = """
import os, sys
inputs = {os.path.realpath(p) for p in sys.argv[1].split(os.pathsep)}
WRITE = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC

def hook(event, args):
    if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        path, mode, flags = args
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and flags & WRITE)
        if writing and os.path.realpath(os.fsdecode(path)) in inputs:
            os.write(2, b"INPUT OPENED FOR WRITING: " + os.fsencode(path))
            os._exit(99)

sys.addaudithook(hook)
import h5py
_init = h5py.File.__init__

def guarded(self, name, mode="r", *args, **kwargs):
    if isinstance(name, (str, os.PathLike)) and os.path.realpath(name) in inputs and mode != "r":
        os.write(2, b"INPUT OPENED FOR WRITING (h5py)")
        os._exit(98)
    return _init(self, name, mode, *args, **kwargs)

h5py.File.__init__ = guarded
from magan.cli import main
sys.exit(main(sys.argv[2:]))
"""


def test_inputs_are_never_opened_for_writing_and_outputs_leave_no_temp_files(tmp_path, data):
    import anndata as ad

    f1, f2 = data
    p1, p2 = tmp_path / "x1.h5ad", tmp_path / "x2.csv"
    ad.AnnData(f1.astype(np.float32)).write_h5ad(p1)
    f2.to_csv(p2)
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("a1,b2\na3,b4\n")
    inputs = [p1, p2, pairs]
    before = {p: (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
              for p in inputs}
    for p in inputs:
        p.chmod(0o444)
    guard = tmp_path / "guard.py"
    guard.write_text(_GUARD)
    out = tmp_path / "out"
    args = [sys.executable, str(guard), os.pathsep.join(map(str, inputs)), "align", str(p1),
            str(p2), "--out", str(out), "--known-pairs", str(pairs), "--steps", "30",
            "--checkpoint-every", "10", *CLI_TINY]
    result = subprocess.run(args, env=_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    # The same again over the existing outputs: refused without --overwrite, then replaced.
    refused = subprocess.run(args, env=_env(), capture_output=True, text=True, timeout=300)
    assert refused.returncode == 1 and "--overwrite" in refused.stderr
    again = subprocess.run([*args, "--overwrite"], env=_env(), capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0, again.stderr
    after = {p: (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
             for p in inputs}
    assert after == before
    leftovers = [p.name for p in out.rglob(".*")]
    assert leftovers == [], leftovers
    from magan import io

    translated = io.read(out / "x2_in_domain1.h5ad")
    assert translated.shape == (50, 3) and np.isfinite(translated.X).all()


def test_cli_same_seed_gives_identical_files(tmp_path, csvs):
    outs = [tmp_path / "a", tmp_path / "b"]
    for out in outs:
        assert main(["align", *map(str, csvs), "--out", str(out), "--steps", "40",
                     *CLI_TINY]) == 0
    for name in ("x1_in_domain2.csv", "x2_in_domain1.csv", "model/weights.pt",
                 "model/history.csv", "run.json"):
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name
    assert main(["align", *map(str, csvs), "--out", str(tmp_path / "c"), "--steps", "40",
                 *CLI_TINY[:-1], "8"]) == 0
    assert (tmp_path / "c" / "x1_in_domain2.csv").read_bytes() != (
        outs[0] / "x1_in_domain2.csv").read_bytes()


def test_cli_drop_nonfinite(tmp_path, data, capsys):
    f1, f2 = data
    dirty = f1.copy()
    dirty.iloc[4, 0] = np.nan
    p1, p2 = tmp_path / "x1.csv", tmp_path / "x2.csv"
    dirty.to_csv(p1)
    f2.to_csv(p2)
    out = tmp_path / "out"
    assert main(["align", str(p1), str(p2), "--out", str(out), "--steps", "10",
                 *CLI_TINY]) == 1
    assert "--drop-nonfinite" in capsys.readouterr().err
    assert main(["align", str(p1), str(p2), "--out", str(out), "--steps", "10",
                 "--drop-nonfinite", *CLI_TINY]) == 0
    y = pd.read_csv(out / "x1_in_domain2.csv", index_col=0)
    assert len(y) == 59 and "a4" not in y.index and np.isfinite(y.to_numpy()).all()


def test_file_format_errors_are_magan_errors():
    assert issubclass(FileFormatError, MaganError) and issubclass(DivergenceError, MaganError)


def test_resume_refuses_a_checkpoint_trained_in_another_precision(tmp_path, data):
    ck = tmp_path / "ck"
    MAGAN(**TINY, precision="bfloat16").fit(*data, checkpoint_dir=ck, checkpoint_every=10)
    with pytest.raises(ModelFileError, match="other data or parameters"):
        MAGAN(**TINY).fit(*data, checkpoint_dir=ck, resume=True)
    MAGAN(**TINY, precision="bfloat16").fit(*data, checkpoint_dir=ck, resume=True)  # same: ok
