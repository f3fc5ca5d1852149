"""magan.tl: the AnnData fields written, their names and shapes, copy semantics, h5ad round trip."""

from __future__ import annotations

import json

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from magan import MAGAN, tl
from magan.errors import ConfigError, DataError, NotFittedError

FAST = {"networks": {"generator": (32, 32), "discriminator": (64, 32)}, "n_steps": 60,
        "batch_size": 32, "progress": False, "log_every": 20}


def _adatas() -> tuple[ad.AnnData, ad.AnnData]:
    rng = np.random.default_rng(0)
    a1 = ad.AnnData(rng.normal(size=(120, 4)).astype(np.float32),
                    var=pd.DataFrame(index=["CD3", "CD4", "CD8", "CD19"]))
    a2 = ad.AnnData((rng.normal(size=(100, 3)) * 100 + 500).astype(np.float32),
                    var=pd.DataFrame(index=["CD3", "CD4", "IgD"]))
    a1.obs_names = [f"a{i}" for i in range(120)]
    a2.obs_names = [f"b{i}" for i in range(100)]
    a1.obs["cell_type"] = pd.Categorical(rng.choice(["T", "B"], 120))
    a2.obs["cell_type"] = pd.Categorical(rng.choice(["T", "B"], 100))
    return a1, a2


@pytest.fixture(scope="module")
def fitted() -> tuple[MAGAN, ad.AnnData, ad.AnnData]:
    a1, a2 = _adatas()
    model = MAGAN(**FAST).fit(a1, a2, shared_features="auto")
    return model, a1, a2


def test_translate_writes_named_fields(fitted):
    model, a1, _ = fitted
    a1 = a1.copy()
    assert tl.translate(model, a1, domain=1, metrics={"foscttm": np.float64(0.25)}) is None

    X = a1.obsm["X_magan_domain2"]
    assert isinstance(X, np.ndarray) and X.shape == (120, 3) and X.dtype == np.float32
    np.testing.assert_allclose(X, model.transform(a1), rtol=1e-6)
    imputed = a1.obsm["magan_imputed_domain2"]
    assert isinstance(imputed, pd.DataFrame)
    assert list(imputed.columns) == ["IgD"]  # CD3/CD4 are shared, IgD is what is imputed
    assert list(imputed.index) == list(a1.obs_names)
    np.testing.assert_allclose(imputed["IgD"], X[:, 2])

    uns = a1.uns["magan"]
    assert uns["domain"] == 1
    assert uns["shared_features"] == {"domain1": ["CD3", "CD4"], "domain2": ["CD3", "CD4"]}
    assert uns["feature_names2"] == ["CD3", "CD4", "IgD"]
    assert uns["obsm_keys"] == ["X_magan_domain2", "magan_imputed_domain2"]
    assert uns["metrics"] == {"foscttm": 0.25}
    assert uns["n_steps_trained"] == 60
    hist = uns["history"]
    assert list(hist["steps"]) == list(range(1, 61))
    assert set(hist["terms"]) == set(model.history_.columns)
    assert all(len(v) == 60 for v in hist["terms"].values())
    assert hist["final"]["cycle_1"] == pytest.approx(float(model.history_["cycle_1"].iloc[-1]))
    assert hist["tail_mean"]["cycle_1"] == pytest.approx(
        float(model.history_["cycle_1"].iloc[-6:].mean()), rel=1e-5)
    json.dumps(uns["params"])  # JSON-able as promised
    assert uns["params"]["networks"]["generator"] == [32, 32]


def test_translate_domain2_and_key_added(fitted):
    model, _, a2 = fitted
    a2 = a2.copy()
    tl.translate(model, a2, domain=2, key_added="run1")
    assert a2.obsm["X_run1_domain1"].shape == (100, 4)
    assert list(a2.obsm["run1_imputed_domain1"].columns) == ["CD8", "CD19"]
    assert "run1" in a2.uns and a2.uns["run1"]["domain"] == 2
    assert tl.translated_key(2, "run1") == "X_run1_domain1"
    assert tl.imputed_key(1) == "magan_imputed_domain2"


def test_translate_copy_leaves_input_alone(fitted):
    model, a1, _ = fitted
    before = a1.copy()
    out = tl.translate(model, a1, copy=True)
    assert isinstance(out, ad.AnnData) and out is not a1
    assert "X_magan_domain2" in out.obsm
    assert "X_magan_domain2" not in a1.obsm and "magan" not in a1.uns
    np.testing.assert_array_equal(a1.X, before.X)


def test_translate_matches_features_by_name(fitted):
    model, a1, _ = fitted
    shuffled = a1[:, ["CD19", "CD8", "CD4", "CD3"]].copy()
    out = tl.translate(model, shuffled, copy=True)
    np.testing.assert_allclose(out.obsm["X_magan_domain2"], model.transform(a1), rtol=1e-6)


def test_results_survive_h5ad(fitted, tmp_path):
    model, a1, _ = fitted
    out = tl.translate(model, a1, copy=True, metrics={"mixing": 0.5, "n": 3})
    out.write_h5ad(tmp_path / "a.h5ad")
    back = ad.read_h5ad(tmp_path / "a.h5ad")
    np.testing.assert_allclose(back.obsm["X_magan_domain2"], out.obsm["X_magan_domain2"])
    assert list(back.obsm["magan_imputed_domain2"].columns) == ["IgD"]
    assert back.uns["magan"]["metrics"]["mixing"] == 0.5
    assert len(back.uns["magan"]["history"]["terms"]["generator"]) == 60


def test_translate_errors(fitted):
    model, a1, a2 = fitted
    with pytest.raises(NotFittedError, match="align"):
        tl.translate(MAGAN(), a1)
    with pytest.raises(ConfigError, match="domain"):
        tl.translate(model, a1, domain=3)
    with pytest.raises(DataError, match="view"):
        tl.translate(model, a1[:10])
    with pytest.raises(DataError, match="lacks features"):
        tl.translate(model, a2, domain=1)  # domain-2 cells passed as domain 1
    with pytest.raises(DataError, match="AnnData"):
        tl.translate(model, a1.X)


def test_align_writes_both(fitted):
    a1, a2 = _adatas()
    model = tl.align(a1, a2, **FAST)
    assert isinstance(model, MAGAN)
    assert a1.obsm["X_magan_domain2"].shape == (120, 3)
    assert a2.obsm["X_magan_domain1"].shape == (100, 4)
    assert a1.uns["magan"]["domain"] == 1 and a2.uns["magan"]["domain"] == 2
    # same seed and data as the fixture's model: same translation
    np.testing.assert_allclose(a1.obsm["X_magan_domain2"], fitted[0].transform(a1), rtol=1e-5)


def test_align_with_named_shared_features_and_layers():
    a1, a2 = _adatas()
    a1.layers["raw"] = a1.X.copy()
    a1.X = np.zeros_like(a1.X)  # must not be used
    model = tl.align(a1, a2, shared_features=[("CD3", "CD3")], layer1="raw", **FAST)
    assert model.shared_features_ == [("CD3", "CD3")]
    assert list(a1.obsm["magan_imputed_domain2"].columns) == ["CD4", "IgD"]
    np.testing.assert_allclose(a1.obsm["X_magan_domain2"],
                               model.transform(a1, layer="raw"), rtol=1e-6)


def test_combine(fitted):
    model, a1, a2 = fitted
    both = tl.combine(model, a1, a2)
    assert both.shape == (220, 3)
    assert list(both.var_names) == ["CD3", "CD4", "IgD"]
    assert both.obs["domain"].tolist() == ["domain1"] * 120 + ["domain2"] * 100
    assert both.obs["translated"].tolist() == [True] * 120 + [False] * 100
    assert both.obs_names.is_unique and both.obs_names[0] == "a0-domain1"
    assert isinstance(both.obs["cell_type"].dtype, pd.CategoricalDtype)
    np.testing.assert_allclose(both.X[:120], model.transform(a1), rtol=1e-6)
    np.testing.assert_array_equal(both.X[120:], a2.X)

    mirror = tl.combine(model, a1, a2, space=1, obs_keys=[])
    assert mirror.shape == (220, 4)
    assert mirror.obs["domain"].tolist()[:100] == ["domain2"] * 100
    assert list(mirror.obs.columns) == ["domain", "translated"]
    with pytest.raises(DataError, match="obs_keys"):
        tl.combine(model, a1, a2, obs_keys=["nope"])


def test_translate_with_an_ensemble_writes_interval_bounds(fitted, tmp_path):
    from magan.uncertainty import Ensemble

    model, a1, a2 = fitted
    ens = Ensemble.from_members([model, MAGAN(**FAST, seed=1).fit(a1, a2,
                                                                   shared_features="auto")],
                                a1, a2)
    out = tl.translate(ens, a2, domain=2, level=0.8, copy=True)
    imp = out.obsm["magan_imputed_domain1"]
    lo, hi = out.obsm["magan_imputed_domain1_lower"], out.obsm["magan_imputed_domain1_upper"]
    assert list(imp.columns) == list(lo.columns) == list(hi.columns) == ["CD8", "CD19"]
    assert (lo.to_numpy() <= imp.to_numpy()).all() and (imp.to_numpy() <= hi.to_numpy()).all()
    np.testing.assert_allclose(out.obsm["X_magan_domain1"], ens.inverse_transform(a2), rtol=1e-6)
    assert out.uns["magan"]["ensemble"] == {"n_members": 2, "level": 0.8}
    assert "magan_imputed_domain1_upper" in out.uns["magan"]["obsm_keys"]
    out.write_h5ad(tmp_path / "x.h5ad")  # DataFrames in obsm and the record survive h5ad
    # A single model afterwards removes the now stale bounds.
    tl.translate(model, out, domain=2)
    assert "magan_imputed_domain1_lower" not in out.obsm and "ensemble" not in out.uns["magan"]
    with pytest.raises(NotFittedError, match="Ensemble is not fitted"):
        tl.translate(Ensemble(), a2, domain=2)
