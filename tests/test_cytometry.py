"""Cytometry channels end to end: roles read from FCS files, which channels are aligned, the
arcsinh/linear input transform, the estimator's records of both, and the CLI's pass-through of
the channels it did not align."""

from __future__ import annotations

import json
import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from magan import io
from magan.cli import main
from magan.cytometry import (
    ALIGNED_ROLES,
    check_channel_list,
    choose_channels,
    input_transform,
    untransformed_columns,
)
from magan.errors import ConfigError, DataError, ModelFileError
from magan.estimator import MAGAN
from magan.preprocessing import Arcsinh, ChannelTransform, Standardizer, transform_from_state

TINY = {"n_steps": 40, "batch_size": 32, "networks": {"generator": (16,), "discriminator": (16,)},
        "progress": False}
FAST = ["--steps", "40", "--batch-size", "32", "--quiet", "--generator-widths", "16",
        "--discriminator-widths", "16"]

# (var_name, $PnN, $PnS, expected role): what io.write stores and io.read gives back.
CHANNELS = [
    ("Time", "Time", "", "time"),
    ("Event_length", "Event_length", "", "event_length"),
    ("Ce140Di", "Ce140Di", "", "bead"),
    ("DNA1", "Ir191Di", "DNA1", "dna"),
    ("BC1", "Pd102Di", "BC1", "barcode"),
    ("CD4", "Nd145Di", "CD4", "marker"),
    ("CD3", "Er170Di", "CD3", "marker"),
    ("CD19", "Nd142Di", "CD19", "marker"),
    ("CD8a", "Nd146Di", "CD8a", "marker"),
    ("HLADR", "Yb174Di", "HLADR", "marker"),
]
NAMES = [c[0] for c in CHANNELS]
MARKERS = [c[0] for c in CHANNELS if c[3] == "marker"]
OTHER = {c[0]: c[3] for c in CHANNELS if c[3] != "marker"}
N1, N2 = 200, 180


def _panel(n: int, scale: float, seed: int) -> ad.AnnData:
    """Raw CyTOF-like intensities (gamma, in the hundreds); ``scale`` multiplies the markers:
    a batch effect between the two files."""
    rng = np.random.default_rng(seed)
    X = rng.gamma(0.8, 150.0, size=(n, len(CHANNELS)))
    X[:, 0] = np.sort(rng.uniform(0, 5e5, n))  # Time
    X[:, 1] = rng.integers(10, 60, n)  # Event_length
    X[:, 5:] *= scale
    var = pd.DataFrame({"channel": [c[1] for c in CHANNELS], "antigen": [c[2] for c in CHANNELS],
                        "range": [1024.0] * len(CHANNELS)}, index=pd.Index(NAMES))
    return ad.AnnData(X.astype(np.float32), var=var)


@pytest.fixture(scope="module")
def fcs_pair(tmp_path_factory):
    """Two synthetic mass-cytometry FCS files: x1, and x2 with the markers scaled by 1.6."""
    folder = tmp_path_factory.mktemp("fcs")
    p1, p2 = folder / "x1.fcs", folder / "x2.fcs"
    io.write(_panel(N1, 1.0, 0), p1)
    io.write(_panel(N2, 1.6, 1), p2)
    return p1, p2


@pytest.fixture
def fcs_adata(fcs_pair):
    return io.read(fcs_pair[0]), io.read(fcs_pair[1])


@pytest.fixture(scope="module")
def fitted(fcs_pair):
    a1, a2 = io.read(fcs_pair[0]), io.read(fcs_pair[1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = MAGAN(**TINY).fit(a1, a2, shared_features="auto")
    return model


def _flow_like(n: int = 150, seed: int = 0) -> ad.AnnData:
    rng = np.random.default_rng(seed)
    X = np.c_[rng.uniform(2e4, 2e5, (n, 2)), rng.gamma(0.8, 2000.0, (n, 2))]
    var = pd.DataFrame({"channel": ["FSC-A", "SSC-A", "PE-A", "APC-A"],
                        "antigen": ["", "", "CD3", "CD4"],
                        "range": [262144.0] * 4,
                        "role": ["scatter", "scatter", "marker", "marker"]},
                       index=pd.Index(["FSC-A", "SSC-A", "CD3", "CD4"]))
    return ad.AnnData(X.astype(np.float32), var=var,
                      uns={"fcs": {"instrument": "flow", "instrument_reason": "test"}})


# ---- 1. reading roles from FCS ------------------------------------------------------------------
def test_fcs_read_gives_roles_and_instrument(fcs_pair):
    for path, n in zip(fcs_pair, (N1, N2)):
        a = io.read(path)
        assert a.shape == (n, len(CHANNELS))
        assert list(a.var_names) == NAMES
        assert list(a.var["channel"]) == [c[1] for c in CHANNELS]
        assert dict(zip(a.var_names, a.var["role"])) == {c[0]: c[3] for c in CHANNELS}
        assert a.var["role_rule"].str.len().min() > 0
        assert "DNA1" in a.var.loc["DNA1", "role_rule"]
        assert "Ce140" in a.var.loc["Ce140Di", "role_rule"]
        assert a.uns["fcs"]["instrument"] == "mass"
        assert "metal" in a.uns["fcs"]["instrument_reason"]
        np.testing.assert_allclose(a.var["range"], 1024.0)
    a1, a2 = io.read(fcs_pair[0]), io.read(fcs_pair[1])
    assert np.median(a1.X[:, 5:]) > 50  # raw intensities, not arcsinh
    ratio = a2.X[:, 5:].mean() / a1.X[:, 5:].mean()
    assert 1.3 < ratio < 1.9  # the batch shift survived the round trip


# ---- 2. ChannelTransform -----------------------------------------------------------------------
def test_channel_transform_round_trip_and_state():
    rng = np.random.default_rng(0)
    X = np.c_[rng.uniform(0, 2.6e5, 50), rng.gamma(0.8, 300.0, (50, 2)) - 20.0]
    t = ChannelTransform(["linear", "arcsinh", "arcsinh"], [262144.0, 5.0, 150.0])
    Y = t.fit_transform(X)
    assert Y.dtype == np.float32 and Y.shape == X.shape
    np.testing.assert_allclose(Y[:, 0], X[:, 0] / 262144.0, rtol=1e-6)
    np.testing.assert_allclose(Y[:, 1], np.arcsinh(X[:, 1] / 5.0), rtol=1e-6)
    np.testing.assert_allclose(Y[:, 2], np.arcsinh(X[:, 2] / 150.0), rtol=1e-6)
    np.testing.assert_allclose(t.inverse_transform(Y), X, rtol=1e-5, atol=1e-3)

    state = t.get_state()
    assert state == {"kind": "channels", "kinds": ["linear", "arcsinh", "arcsinh"],
                     "scales": [262144.0, 5.0, 150.0]}
    json.dumps(state)  # stored in config.json
    back = transform_from_state(json.loads(json.dumps(state)))
    assert isinstance(back, ChannelTransform)
    np.testing.assert_array_equal(back.transform(X), Y)
    with pytest.raises(ModelFileError):
        transform_from_state({"kind": "channels", "kinds": ["log"], "scales": [1.0]})


@pytest.mark.parametrize(("kinds", "scales"), [
    (["arcsinh", "log"], [5.0, 5.0]),
    (["arcsinh", "linear"], [5.0, 0.0]),
    (["arcsinh", "linear"], [5.0, -1.0]),
    (["arcsinh", "linear"], [5.0, np.nan]),
    (["arcsinh", "linear"], [5.0]),
    (["arcsinh", "linear"], 5.0),
])
def test_channel_transform_bad_kinds_or_scales(kinds, scales):
    t = ChannelTransform(kinds, scales)
    with pytest.raises(ConfigError):
        t.transform(np.ones((3, 2)))
    with pytest.raises(ConfigError):
        t.get_state()


def test_channel_transform_wrong_feature_count():
    t = ChannelTransform(["arcsinh", "linear"], [5.0, 10.0])
    for f in (t.fit, t.transform, t.inverse_transform):
        with pytest.raises(DataError, match="3 features"):
            f(np.ones((4, 3)))
    with pytest.raises(DataError, match="2-D"):
        t.transform(np.ones(2))


# ---- 3. choose_channels ------------------------------------------------------------------------
def test_choose_channels_auto_all_and_list(fcs_adata):
    a1, _ = fcs_adata
    sub, record = choose_channels(a1, "auto")
    assert list(sub.var_names) == MARKERS and sub.n_obs == N1
    np.testing.assert_array_equal(sub.X, a1[:, MARKERS].X)
    assert record["aligned"] == MARKERS
    assert record["passed_through"] == OTHER
    assert set(ALIGNED_ROLES) == {"marker", "scatter"}
    json.dumps(record)

    full, record = choose_channels(a1, "all")
    assert list(full.var_names) == NAMES and record["aligned"] == NAMES
    assert record["passed_through"] == {}

    picked, record = choose_channels(a1, ["CD3", "Time", "NOT_HERE"])
    assert list(picked.var_names) == ["Time", "CD3"]  # the file's order
    assert record["aligned"] == ["Time", "CD3"]
    assert record["passed_through"]["CD4"] == "marker"
    assert record["passed_through"]["DNA1"] == "dna"
    assert "Time" not in record["passed_through"]

    with pytest.raises(DataError, match="no channel to align"):
        choose_channels(a1, ["CD45", "CD56"], name="x1")
    with pytest.raises(ConfigError):
        choose_channels(a1, "markers")


def test_choose_channels_tables_and_arrays_keep_everything():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(20, 3)), columns=["Time", "DNA1", "CD3"])
    out, record = choose_channels(frame, "auto")
    assert out is frame and record["aligned"] == ["Time", "DNA1", "CD3"]
    assert record["passed_through"] == {}
    arr = rng.normal(size=(20, 3))
    out, record = choose_channels(arr, "auto")
    assert out is arr and record["passed_through"] == {}
    # An AnnData without roles (h5ad, CSV) is not filtered either.
    plain = ad.AnnData(arr.astype(np.float32), var=pd.DataFrame(index=["Time", "DNA1", "CD3"]))
    out, record = choose_channels(plain, "auto")
    assert out.n_vars == 3 and record["aligned"] == ["Time", "DNA1", "CD3"]
    # Lists pick by name from a DataFrame, and cannot pick from a nameless array.
    out, record = choose_channels(frame, ["CD3"])
    assert list(out.columns) == ["CD3"] and record["passed_through"] == {
        "Time": "excluded", "DNA1": "excluded"}
    with pytest.raises(DataError, match="no feature names"):
        choose_channels(arr, ["CD3"])


def test_check_channel_list_names_unknown_channels():
    check_channel_list(["CD3", "CD45"], ["CD3", "CD4"], ["CD45"])  # each in one input: fine
    with pytest.raises(DataError, match="CD99") as info:
        check_channel_list(["CD3", "CD99", "cd4"], ["CD3", "CD4"], ["CD3"])
    assert "['CD99', 'cd4']" in str(info.value)  # names are exact: cd4 is not CD4


# ---- 4. input_transform ------------------------------------------------------------------------
def test_input_transform_mass_fcs(fcs_adata):
    a1, _ = fcs_adata
    sub, _ = choose_channels(a1, "auto")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # FCS input: chosen from the header, no warning
        t, why = input_transform("auto", sub)
    assert isinstance(t, ChannelTransform)
    assert t.kinds == ["arcsinh"] * len(MARKERS)
    np.testing.assert_array_equal(t.scales, 5.0)
    assert "cofactor 5" in why and "mass" in why
    np.testing.assert_allclose(t.transform(sub.X), np.arcsinh(sub.X / 5.0), rtol=1e-5)


def test_input_transform_flow_scatter_linear():
    flow = _flow_like()
    t, why = input_transform("auto", flow)
    assert isinstance(t, ChannelTransform)
    assert t.kinds == ["linear", "linear", "arcsinh", "arcsinh"]
    np.testing.assert_array_equal(t.scales, [262144.0, 262144.0, 150.0, 150.0])
    assert "cofactor 150" in why and "flow" in why and "2 scatter" in why
    Y = t.transform(flow.X)
    assert Y[:, :2].max() <= 1.0 and Y[:, :2].min() > 0


def test_input_transform_warns_on_raw_arrays_only():
    rng = np.random.default_rng(0)
    raw = rng.gamma(0.3, 800.0, size=(300, 3))  # raw intensities: mostly dim, a bright tail
    raw[:, 1] = rng.normal(0, 1, 300)  # one column already on a small scale
    with pytest.warns(UserWarning, match="untransformed") as record:
        t, why = input_transform("auto", raw, name="x2")
    assert t is None and "no transform" in why
    message = str(record[0].message)
    assert "x2" in message and "'0'" in message and "'2'" in message and "'1'" not in message
    assert untransformed_columns(raw) == ["0", "2"]
    frame = pd.DataFrame(raw, columns=["CD3", "CD4", "CD8"])
    assert untransformed_columns(frame) == ["CD3", "CD8"]
    with pytest.warns(UserWarning, match=r"\['CD3', 'CD8'\]"):
        input_transform("auto", frame)

    scaled = np.arcsinh(raw / 5.0)  # arcsinh-scale values (< 10): no warning
    assert scaled.max() < 10
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        t, why = input_transform("auto", scaled)
    assert t is None and untransformed_columns(scaled) == []


def test_input_transform_none_given_and_bad():
    x = np.ones((5, 2)) * 1000
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        t, why = input_transform(None, x)
    assert t is None and "no transform" in why
    given = Arcsinh(150)
    t, why = input_transform(given, _flow_like())
    assert t is given and "Arcsinh" in why
    with pytest.raises(ConfigError):
        input_transform("arcsinh", x)


# ---- 5. the estimator --------------------------------------------------------------------------
def test_fit_aligns_markers_only_and_records_it(fitted, fcs_adata):
    model = fitted
    a1, a2 = fcs_adata
    assert model.feature_names1_ == MARKERS and model.feature_names2_ == MARKERS
    assert model.shared_features_ == [(m, m) for m in MARKERS]
    for record in model.channels_:
        assert record["aligned"] == MARKERS
        assert record["passed_through"] == OTHER
    assert len(model.input_transforms_) == 2
    assert all("cofactor 5" in why for why in model.input_transforms_)
    assert isinstance(model.preprocessing1_[0], ChannelTransform)
    assert isinstance(model.preprocessing1_[-1], Standardizer)
    # Full-channel AnnData in: the model picks its channels by name.
    y = model.transform(a1)
    assert y.shape == (N1, len(MARKERS)) and np.isfinite(y).all()
    np.testing.assert_allclose(model.transform(a1[:, MARKERS[::-1]]), y, rtol=1e-5)
    z = model.inverse_transform(a2)
    assert z.shape == (N2, len(MARKERS)) and np.isfinite(z).all()
    # Output is in x2's raw units (hundreds), not the arcsinh scale.
    assert np.median(y) > 20


def test_embed_is_the_standardised_model_space(fitted, fcs_adata):
    a1, a2 = fcs_adata
    e2 = fitted.embed(a2, domain=2)
    assert e2.shape == (N2, len(MARKERS)) and e2.dtype == np.float32
    np.testing.assert_allclose(e2.mean(axis=0), 0.0, atol=1e-4)
    assert 0.3 < e2.std() < 3
    expected = fitted.preprocessing2_[-1].transform(np.arcsinh(a2[:, MARKERS].X / 5.0))
    np.testing.assert_allclose(e2, expected, rtol=1e-4, atol=1e-4)
    e1 = fitted.embed(a1, domain=1)
    assert e1.shape == (N1, len(MARKERS))
    np.testing.assert_allclose(e1.mean(axis=0), 0.0, atol=1e-4)
    with pytest.raises(ConfigError):
        fitted.embed(a1, domain=3)
    with pytest.raises(DataError, match="lacks features"):
        fitted.embed(a1[:, ["Time", "CD3"]], domain=1)


def test_save_load_keeps_channel_records(fitted, fcs_adata, tmp_path):
    a1, _ = fcs_adata
    fitted.save(tmp_path / "model")
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["channels"][0]["passed_through"] == OTHER
    back = MAGAN.load(tmp_path / "model", device="cpu")
    assert back.channels_ == fitted.channels_
    assert back.input_transforms_ == fitted.input_transforms_
    assert isinstance(back.preprocessing1_[0], ChannelTransform)
    np.testing.assert_allclose(back.transform(a1), fitted.transform(a1), rtol=1e-5, atol=1e-4)


def test_fit_channels_all_and_list(fcs_adata):
    a1, a2 = fcs_adata
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = MAGAN(**TINY).fit(a1, a2, shared_features="auto", channels="all",
                                  diagnose=False)
    assert model.feature_names1_ == NAMES and model.feature_names2_ == NAMES
    assert model.channels_[0]["passed_through"] == {}
    assert model.transform(a1).shape == (N1, len(NAMES))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = MAGAN(**TINY).fit(a1, a2, shared_features="auto", channels=("CD8a", "CD3"),
                                  diagnose=False)
    assert model.feature_names1_ == ["CD3", "CD8a"]
    assert model.channels_[1]["passed_through"]["CD4"] == "marker"
    with pytest.raises(DataError, match="CD99"):
        MAGAN(**TINY).fit(a1, a2, channels=["CD3", "CD99"])


def test_fit_plain_arrays_warns_about_raw_values():
    rng = np.random.default_rng(0)
    x1 = rng.gamma(0.3, 800.0, size=(120, 3))
    x2 = rng.gamma(0.3, 900.0, size=(100, 3))
    with pytest.warns(UserWarning, match="untransformed"):
        model = MAGAN(**TINY).fit(x1, x2, shared_features=[(0, 0)], diagnose=False)
    assert len(model.preprocessing1_) == 1  # the standardiser only
    assert all("no transform" in why for why in model.input_transforms_)
    assert model.channels_[0]["passed_through"] == {}


# ---- 6. the command line -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def align_run(fcs_pair, tmp_path_factory):
    out = tmp_path_factory.mktemp("align") / "out"
    code = main(["align", str(fcs_pair[0]), str(fcs_pair[1]), "--out", str(out), *FAST])
    return code, out


def test_cli_align_passes_channels_through(align_run, fcs_pair):
    code, out = align_run
    assert code == 0
    a1, a2 = io.read(fcs_pair[0]), io.read(fcs_pair[1])
    y = io.read(out / "x1_in_domain2.fcs")
    assert list(y.var_names) == NAMES and y.n_obs == N1
    assert list(y.var["channel"]) == [c[1] for c in CHANNELS]
    assert dict(zip(y.var_names, y.var["role"])) == {c[0]: c[3] for c in CHANNELS}
    for name in OTHER:
        np.testing.assert_allclose(y[:, name].X, a1[:, name].X, rtol=1e-6, err_msg=name)
    markers = np.asarray(y[:, MARKERS].X)
    assert np.isfinite(markers).all()
    assert not np.allclose(markers, a1[:, MARKERS].X)  # translated, not passed through
    z = io.read(out / "x2_in_domain1.fcs")
    assert list(z.var_names) == NAMES and z.n_obs == N2
    for name in OTHER:
        np.testing.assert_allclose(z[:, name].X, a2[:, name].X, rtol=1e-6, err_msg=name)


def test_cli_fcs_outputs_read_in_flowkit_with_the_inputs_channel_names(align_run, fcs_pair):
    """The files a cytometry user opens elsewhere: FlowKit reads each output with the input's
    $PnN and $PnS, and the passed-through channels' raw values."""
    import flowkit

    _, out = align_run
    for name, source in (("x1_in_domain2.fcs", fcs_pair[0]), ("x2_in_domain1.fcs", fcs_pair[1])):
        written, given = flowkit.Sample(out / name), flowkit.Sample(source)
        assert written.pnn_labels == given.pnn_labels
        assert written.pns_labels == given.pns_labels
        assert written.event_count == given.event_count
        raw_w = written.as_dataframe(source="raw")
        raw_g = given.as_dataframe(source="raw")
        np.testing.assert_allclose(raw_w[("Time", "")].to_numpy(), raw_g[("Time", "")].to_numpy(),
                                   rtol=1e-6)


def test_cli_transform_writes_what_align_wrote(align_run, fcs_pair, tmp_path):
    """`magan transform OUT/model x1.fcs` gives align's x1_in_domain2.fcs: the same channels
    ($PnN/$PnS recorded at fit), translated markers and raw passed-through channels."""
    _, out = align_run
    again = tmp_path / "again.fcs"
    assert main(["transform", str(out / "model"), str(fcs_pair[0]), "--out", str(again)]) == 0
    first, second = io.read(out / "x1_in_domain2.fcs"), io.read(again)
    assert list(second.var_names) == list(first.var_names)
    assert list(second.var["channel"]) == list(first.var["channel"])
    np.testing.assert_allclose(second.X, first.X, rtol=1e-5, atol=1e-4)
    assert main(["transform", str(out / "model"), str(fcs_pair[0]), "--out", str(again)]) == 1


def test_cli_align_writes_aligned_h5ad_and_run_json(align_run):
    _, out = align_run
    both = ad.read_h5ad(out / "aligned.h5ad")
    assert both.n_obs == N1 + N2 and list(both.var_names) == MARKERS
    assert both.obs["domain"].nunique() == 2
    assert (both.obs["domain"].value_counts().sort_values().to_numpy() == [N2, N1]).all()
    emb = both.obsm["X_magan"]
    assert emb.shape == (N1 + N2, len(MARKERS)) and np.isfinite(emb).all()
    record = both.uns["magan"]
    assert record["verdict"] in {"good", "check", "failed"}
    assert set(record["transforms"]) == {"domain1", "domain2"}
    assert "cofactor 5" in record["transforms"]["domain1"]
    assert list(record["channels"]["domain1"]["aligned"]) == MARKERS
    assert dict(record["channels"]["domain2"]["passed_through"]) == OTHER
    run = json.loads((out / "run.json").read_text())
    assert run["channels"][0]["aligned"] == MARKERS
    assert run["channels"][0]["passed_through"] == OTHER
    assert len(run["transforms"]) == 2 and "cofactor 5" in run["transforms"][1]
    model = MAGAN.load(out / "model", device="cpu")
    assert model.feature_names1_ == MARKERS and model.channels_ == run["channels"]
    assert model.shared_features_ == [(m, m) for m in MARKERS]


def test_cli_exclude_and_channels(fcs_pair, tmp_path):
    p1, p2 = map(str, fcs_pair)
    out = tmp_path / "excl"
    assert main(["align", p1, p2, "--out", str(out), "--exclude", "CD19",
                 "--diagnose", "off", *FAST]) == 0
    model = MAGAN.load(out / "model", device="cpu")
    assert model.feature_names1_ == [m for m in MARKERS if m != "CD19"]
    assert model.channels_[0]["passed_through"]["CD19"] == "marker"
    y = io.read(out / "x1_in_domain2.fcs")
    assert list(y.var_names) == NAMES  # CD19 passes through unchanged
    np.testing.assert_allclose(y[:, "CD19"].X, io.read(p1)[:, "CD19"].X, rtol=1e-6)

    out = tmp_path / "chosen"
    assert main(["align", p1, p2, "--out", str(out), "--channels", "CD3,CD4,CD8a",
                 "--diagnose", "off", *FAST]) == 0
    model = MAGAN.load(out / "model", device="cpu")
    assert model.feature_names1_ == ["CD4", "CD3", "CD8a"]  # the file's order
    assert model.feature_names2_ == ["CD4", "CD3", "CD8a"]
    run = json.loads((out / "run.json").read_text())
    assert run["channels"][0]["rule"] == "channels= given"
    assert run["channels"][0]["passed_through"]["HLADR"] == "marker"


def test_cli_no_transform(fcs_pair, tmp_path, capsys):
    p1, p2 = map(str, fcs_pair)
    out = tmp_path / "raw"
    assert main(["align", p1, p2, "--out", str(out), "--no-transform", "--diagnose", "off",
                 *FAST]) == 0
    run = json.loads((out / "run.json").read_text())
    assert all("no transform" in why for why in run["transforms"])
    model = MAGAN.load(out / "model", device="cpu")
    assert len(model.preprocessing1_) == 1  # the standardiser only
    assert model.feature_names1_ == MARKERS

    capsys.readouterr()
    assert main(["align", p1, p2, "--out", str(tmp_path / "both"), "--no-transform",
                 "--arcsinh", "5", *FAST]) == 1
    err = capsys.readouterr().err
    assert "--no-transform" in err and "--arcsinh" in err
    assert not (tmp_path / "both" / "model").exists()


def test_cli_unknown_channel_names(fcs_pair, tmp_path, capsys):
    p1, p2 = map(str, fcs_pair)
    assert main(["align", p1, p2, "--out", str(tmp_path / "a"), "--exclude", "NOPE",
                 *FAST]) == 1
    assert "NOPE" in capsys.readouterr().err
    assert main(["align", p1, p2, "--out", str(tmp_path / "b"), "--channels", "CD3,NOPE2",
                 *FAST]) == 1
    assert "NOPE2" in capsys.readouterr().err
    assert main(["align", p1, p2, "--out", str(tmp_path / "c"), "--channels", "CD3",
                 "--exclude", "CD4", *FAST]) == 1
    assert "not both" in capsys.readouterr().err


def test_cli_markers_prints_roles(fcs_pair, capsys):
    assert main(["markers", str(fcs_pair[0]), str(fcs_pair[1])]) == 0
    text = capsys.readouterr().out
    for word in ("barcode", "bead", "dna", "time", "event_length", "aligned", "mass"):
        assert word in text, word
    assert "5 matched" in text
    line = next(ln for ln in text.splitlines() if ln.strip().startswith("BC1"))
    assert "barcode" in line and "no" in line.split()
    line = next(ln for ln in text.splitlines() if ln.strip().startswith("CD4 "))
    assert "marker" in line and "yes" in line.split()



def test_cli_passthrough_channel_clashing_with_other_panel(tmp_path, capsys):
    """x1 leaves Nd142Di unlabelled (passed through); x2 stains CD19 on Nd142Di. Translating x1
    into domain 2 yields x2's CD19 (channel Nd142Di) beside x1's own Nd142Di, whose $PnN gets
    the suffix "_x1" so that the FCS file's channel names stay unique."""
    rng = np.random.default_rng(3)
    for name, last in (("p1", ""), ("p2", "CD19")):
        chans = [("Time", ""), ("Nd145Di", "CD4"), ("Er170Di", "CD3"), ("Nd146Di", "CD8a"),
                 ("Nd142Di", last)]
        var = pd.DataFrame({"channel": [c for c, _ in chans], "antigen": [a for _, a in chans]},
                           index=pd.Index([a or c for c, a in chans]))
        X = rng.gamma(0.8, 150.0, (120, len(chans))).astype(np.float32)
        io.write(ad.AnnData(X, var=var), tmp_path / f"{name}.fcs")
    code = main(["align", str(tmp_path / "p1.fcs"), str(tmp_path / "p2.fcs"), "--out",
                 str(tmp_path / "out"), "--diagnose", "off", *FAST])
    assert code == 0, capsys.readouterr().err
    y = io.read(tmp_path / "out" / "x1_in_domain2.fcs")
    assert {"CD19", "Nd142Di"} <= set(y.var_names)
    assert y.var.loc["Nd142Di", "channel"] == "Nd142Di_x1"
    np.testing.assert_allclose(y[:, "Nd142Di"].X, io.read(tmp_path / "p1.fcs")[:, "Nd142Di"].X)


def test_auto_transform_is_saved_and_skips_values_transformed_already(fcs_pair, tmp_path):
    """"auto" survives save/load (a refit of the loaded model transforms again); an FCS-read
    AnnData whose values were arcsinh-transformed by the user is not transformed twice."""
    a1, a2 = (io.read(p) for p in fcs_pair)
    model = MAGAN(**TINY).fit(a1, a2, shared_features="auto", diagnose=False)
    model.save(tmp_path / "m")
    assert MAGAN.load(tmp_path / "m").get_params()["preprocess1"] == "auto"
    done = a1.copy()
    done.X = np.arcsinh(np.asarray(done.X) / 5)
    with pytest.warns(UserWarning, match="transformed already"):
        again = MAGAN(**TINY).fit(done, a2, shared_features="auto", diagnose=False)
    assert "no transform" in again.input_transforms_[0]
    assert "cofactor 5" in again.input_transforms_[1]

# ---- 7. real files -----------------------------------------------------------------------------
@pytest.mark.shared_data
def test_shared_fcs_markers_and_flow_roles(shared_data, capsys):
    gates = shared_data / "cytonorm_gates" / "Gates_PTLG021_Unstim_Control_1.fcs"
    flow = shared_data / "flowsom_68983" / "68983.fcs"
    assert main(["markers", str(gates), str(flow)]) == 0
    text = capsys.readouterr().out
    assert "barcode" in text and "scatter" in text and "matched" in text
    a = io.read(flow)
    assert a.uns["fcs"]["instrument"] == "flow"
    role = dict(zip(a.var["channel"], a.var["role"]))
    assert role["FSC-A"] == "scatter" and role["SSC-A"] == "scatter"
    assert role["Time"] == "time"
    sub, record = choose_channels(a, "auto")
    assert "FSC-A" in sub.var_names and "Time" not in sub.var_names
    assert record["passed_through"]["Time"] == "time"
    t, why = input_transform("auto", sub)
    kinds = dict(zip(sub.var_names, t.kinds))
    assert kinds["FSC-A"] == "linear" and kinds["CD3"] == "arcsinh"
    assert "cofactor 150" in why
    assert io.read(gates).uns["fcs"]["instrument"] == "mass"
