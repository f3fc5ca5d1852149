"""The MAGAN estimator: inputs, outputs in user units, names, persistence, determinism, resume."""

from __future__ import annotations

import json
import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from magan import MAGAN, Optimizer
from magan.errors import ConfigError, DataError, MaganError, ModelFileError, NotFittedError
from magan.preprocessing import Arcsinh


def _frames(x1, x2):
    f1 = pd.DataFrame(x1, columns=["CD3", "CD4", "CD8", "CD19"],
                      index=[f"a{i}" for i in range(len(x1))])
    f2 = pd.DataFrame(x2, columns=["CD8", "CD3", "CD45RA"],
                      index=[f"b{i}" for i in range(len(x2))])
    return f1, f2


def test_fit_transform_shapes_and_user_units(toy_data, fast_params):
    x1, x2 = toy_data
    model = MAGAN(**fast_params).fit(x1, x2, shared_features=[(0, 1)], known_pairs=[(0, 0)])
    y = model.transform(x1)
    z = model.inverse_transform(x2)
    assert y.shape == (len(x1), x2.shape[1]) and z.shape == (len(x2), x1.shape[1])
    assert y.dtype == np.float32 and np.isfinite(y).all()
    # x2 lives around 500 ± 100: translations come back in those units, not standardised ones.
    assert 200 < np.median(y) < 800
    assert abs(np.median(z)) < 5
    assert list(model.history_.columns) == [
        "generator", "adversarial_12", "adversarial_21", "cycle_1", "cycle_2",
        "shared_features", "known_pairs", "transport_pairs", "discriminator_1",
        "discriminator_2",
    ]
    assert len(model.history_) == fast_params["n_steps"]


def test_dataframe_and_anndata_inputs_with_auto_shared_features(toy_data, fast_params):
    f1, f2 = _frames(*toy_data)
    model = MAGAN(**fast_params).fit(f1, f2, shared_features="auto",
                                     known_pairs=[("a3", "b7")])
    assert model.shared_features_ == [("CD3", "CD3"), ("CD8", "CD8")]
    a1 = ad.AnnData(f1)
    a2 = ad.AnnData(f2)
    model2 = MAGAN(**fast_params).fit(a1, a2, shared_features="auto", known_pairs=[("a3", "b7")])
    np.testing.assert_array_equal(model.transform(f1), model2.transform(a1))
    with pytest.raises(DataError, match="no layer 'counts'"):  # named, not a bare KeyError
        model2.transform(a1, layer="counts")
    # Columns in another order are matched by name.
    np.testing.assert_allclose(model.transform(f1[f1.columns[::-1]]), model.transform(f1))
    imputed = model.impute(f1)
    assert list(imputed.columns) == ["CD45RA"] and list(imputed.index[:2]) == ["a0", "a1"]
    assert list(model.impute(f2, domain=2).columns) == ["CD4", "CD19"]


def test_shared_features_by_name_and_index_mixed(toy_data, fast_params):
    f1, f2 = _frames(*toy_data)
    model = MAGAN(**fast_params).fit(f1, f2, shared_features=[("CD3", "CD3"), (2, 0)])
    assert model.shared_features_ == [("CD3", "CD3"), ("CD8", "CD8")]


def test_preprocessing_is_inverted_on_output(fast_params):
    rng = np.random.default_rng(1)
    x1 = rng.gamma(2.0, 50.0, size=(150, 3)).astype(np.float32)
    x2 = rng.gamma(2.0, 50.0, size=(150, 3)).astype(np.float32)
    model = MAGAN(preprocess1=Arcsinh(5.0), preprocess2=Arcsinh(5.0), **fast_params)
    model.fit(x1, x2, shared_features=[(0, 0), (1, 1), (2, 2)])
    y = model.transform(x1)
    assert np.median(y) > 20  # raw intensities, not arcsinh values (~3)


def test_same_seed_same_model_and_different_seed_differs(toy_data, fast_params):
    x1, x2 = toy_data
    a = MAGAN(seed=3, **fast_params).fit(x1, x2, shared_features=[(0, 0)]).transform(x1)
    b = MAGAN(seed=3, **fast_params).fit(x1, x2, shared_features=[(0, 0)]).transform(x1)
    c = MAGAN(seed=4, **fast_params).fit(x1, x2, shared_features=[(0, 0)]).transform(x1)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_save_load_round_trip_is_bit_identical(tmp_path, toy_data, fast_params):
    f1, f2 = _frames(*toy_data)
    # both domains arcsinh-transformed: the generators start by copying the shared features
    # (start_from_identity), so x2's raw ~500s would overflow domain 1's inverse arcsinh
    model = MAGAN(preprocess1=Arcsinh(5.0), preprocess2=Arcsinh(5.0), **fast_params).fit(
        f1, f2, shared_features="auto")
    path = model.save(tmp_path / "run")
    loaded = MAGAN.load(path, device="cpu")
    np.testing.assert_array_equal(model.transform(f1), loaded.transform(f1))
    np.testing.assert_array_equal(model.inverse_transform(f2), loaded.inverse_transform(f2))
    assert loaded.shared_features_ == model.shared_features_
    assert loaded.get_params()["n_steps"] == fast_params["n_steps"]
    pd.testing.assert_frame_equal(loaded.history_, model.history_, check_dtype=False, atol=1e-6)
    from magan.errors import OutputExistsError

    with pytest.raises(OutputExistsError):
        model.save(path)
    model.save(path, overwrite=True)
    assert not list(tmp_path.glob(".run*"))  # no temporary directories left behind


def test_load_refuses_tampered_or_foreign_models(tmp_path, toy_data, fast_params):
    x1, x2 = toy_data
    path = MAGAN(**fast_params).fit(x1, x2, shared_features=[(0, 0)]).save(tmp_path / "m")
    weights = path / "weights.pt"
    blob = bytearray(weights.read_bytes())
    blob[-10] ^= 0xFF
    weights.write_bytes(bytes(blob))
    with pytest.raises(ModelFileError, match="checksum"):
        MAGAN.load(path)
    config = json.loads((path / "config.json").read_text())
    config["format_version"] = 999
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelFileError, match="format"):
        MAGAN.load(path)
    with pytest.raises(ModelFileError):
        MAGAN.load(tmp_path / "nothing-here")


def test_resume_after_interruption_reaches_the_same_weights(tmp_path, toy_data, fast_params):
    x1, x2 = toy_data
    params = {**fast_params, "n_steps": 80, "log_every": 10}
    full = MAGAN(**params).fit(x1, x2, shared_features=[(0, 0)])
    # Stop the first run at step 40 (as a kill would), then resume to 80.
    MAGAN(**{**params, "n_steps": 40}).fit(
        x1, x2, shared_features=[(0, 0)], checkpoint_dir=tmp_path / "ck", checkpoint_every=20
    )
    resumed = MAGAN(**params).fit(x1, x2, shared_features=[(0, 0)],
                                  checkpoint_dir=tmp_path / "ck", checkpoint_every=20,
                                  resume=True)
    np.testing.assert_array_equal(full.transform(x1), resumed.transform(x1))
    np.testing.assert_allclose(full.history_.to_numpy(), resumed.history_.to_numpy())
    with pytest.raises(ModelFileError, match="other data"):
        MAGAN(**params).fit(x1 + 1, x2, shared_features=[(0, 0)],
                            checkpoint_dir=tmp_path / "ck", resume=True)


def test_plain_gan_is_the_same_model_without_correspondence(toy_data, fast_params):
    x1, x2 = toy_data
    with pytest.warns(UserWarning, match="ignored"):
        plain = MAGAN.plain_gan(**fast_params).fit(x1, x2, shared_features=[(0, 0)])
    assert "shared_features" not in plain.history_.columns
    assert plain.get_params()["correspondence"] is False
    paper = MAGAN.paper().get_params()
    assert paper["batch_size"] == 100
    assert paper["networks"].discriminator == (800, 400, 200, 100, 50)


def test_sklearn_style_params(toy_data, fast_params):
    model = MAGAN(**fast_params)
    assert model.get_params()["batch_size"] == fast_params["batch_size"]
    model.set_params(batch_size=16)
    assert model.batch_size == 16
    assert "batch_size=16" in repr(model)
    with pytest.raises(ConfigError):
        model.set_params(not_a_param=1)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"shared_features": [("CD99", "CD3")]}, "CD99"),
        ({"shared_features": [(0, 9)]}, "out of range"),
        ({"shared_features": [(0, 0), (0, 1)]}, "matched twice"),
        ({"known_pairs": [(0, 1000)]}, "out of range"),
        ({"known_pairs": [(0, 1), (0, 1)]}, "more than once"),
        ({"known_pairs": [("zz", "b1")]}, "zz"),
        ({"known_pairs": [(1, 2, 3)]}, "each known pair"),
    ],
)
def test_bad_correspondence_gets_a_named_error(toy_data, fast_params, kwargs, match):
    f1, f2 = _frames(*toy_data)
    with pytest.raises(DataError, match=match):
        MAGAN(**fast_params).fit(f1, f2, **kwargs)


def test_bad_data_gets_a_named_error(toy_data, fast_params):
    x1, x2 = toy_data
    bad = x1.copy()
    bad[5, 2] = np.nan
    with pytest.raises(DataError, match=r"x1: 1 NaN/inf values .*first rows \[5\]"):
        MAGAN(**fast_params).fit(bad, x2)
    with pytest.raises(DataError, match="at least 2 cells"):
        MAGAN(**fast_params).fit(x1[:1], x2)
    with pytest.raises(DataError, match="2-D"):
        MAGAN(**fast_params).fit(x1[0], x2)
    with pytest.raises(DataError, match="non-numeric"):
        MAGAN(**fast_params).fit(pd.DataFrame({"a": ["x", "y"], "b": [1, 2]}), x2)
    with pytest.raises(DataError, match="feature names"):
        MAGAN(**fast_params).fit(x1, x2, shared_features="auto")
    with pytest.raises(ConfigError, match="batch_size"):
        MAGAN(**{**fast_params, "batch_size": 0}).fit(x1, x2)
    with pytest.raises(ConfigError, match=r"'standardize'.*'pca'"):
        MAGAN(**{**fast_params, "standardize": "pca"}).fit(x1, x2)
    with pytest.raises(NotFittedError):
        MAGAN().transform(x1)
    model = MAGAN(**fast_params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(x1, x2)
    with pytest.raises(DataError, match="has 3 features"):
        model.transform(x1[:, :3])
    f1, f2 = _frames(x1, x2)
    named = MAGAN(**fast_params).fit(f1, f2, shared_features="auto")
    with pytest.raises(DataError, match="lacks features"):
        named.transform(f1.drop(columns="CD4"))
    assert issubclass(DataError, MaganError) and issubclass(DataError, ValueError)


def test_bfloat16_trains_under_autocast_with_float32_weights(tmp_path, toy_data, fast_params):
    import torch

    x1, x2 = toy_data
    model = MAGAN(**{**fast_params, "precision": "bfloat16"})
    seen = set()
    hook = torch.nn.modules.module.register_module_forward_hook(
        lambda mod, inp, out: seen.add(out.dtype) if isinstance(mod, torch.nn.Linear) else None)
    try:
        model.fit(x1, x2, shared_features=[(0, 0)], known_pairs=[(0, 1), (2, 3)])
    finally:
        hook.remove()
    assert torch.bfloat16 in seen  # the training step ran its layers in bfloat16
    assert {p.dtype for p in model.module_.parameters()} == {torch.float32}
    assert np.isfinite(model.history_.to_numpy()).all()
    y = model.transform(x1)
    assert y.dtype == np.float32 and np.isfinite(y).all()
    loaded = MAGAN.load(model.save(tmp_path / "m"))
    assert loaded.precision == "bfloat16"
    np.testing.assert_array_equal(loaded.transform(x1), y)
    with pytest.raises(ConfigError, match="precision"):
        MAGAN(**{**fast_params, "precision": "float16"}).fit(x1, x2)


def test_start_from_identity_begins_as_doing_nothing(toy_data):
    """Before any step, the generators copy each shared feature (in the user's units); plain
    MLP generators do not."""
    x1, x2 = toy_data
    shared = [(0, 1), (2, 0)]
    frozen = Optimizer(generator_lr=1e-12, ema=None)
    model = MAGAN(n_steps=1, optimizer=frozen, progress=False, seed=0)
    model.fit(x1, x2, shared_features=shared)
    y = model.transform(x1)
    np.testing.assert_allclose(y[:, 1], x1[:, 0], rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(y[:, 0], x1[:, 2], rtol=1e-4, atol=1e-3)
    assert y[:, 2].std() > 0  # the unshared output starts as a plain MLP's, not a constant
    back = model.inverse_transform(x2)
    np.testing.assert_allclose(back[:, 0], x2[:, 1], rtol=1e-4, atol=1e-2)
    plain = MAGAN(n_steps=1, optimizer=frozen, progress=False, seed=0,
                  start_from_identity=False).fit(x1, x2, shared_features=shared)
    assert not np.allclose(plain.transform(x1)[:, 1], x1[:, 0], atol=1e-2)
    with pytest.raises(ConfigError, match="start_from_identity"):
        MAGAN(start_from_identity="yes").fit(x1, x2, shared_features=shared)


def test_a_shared_feature_constant_in_one_domain_is_left_out_of_the_loss(toy_data):
    """A gene with no counts in one batch has a standardiser scale of 1e-6; copying "the same
    value" into that domain would multiply by a million, so the pair is left out, loudly."""
    x1, _ = toy_data
    x2 = np.random.default_rng(1).normal(size=(100, 4)).astype(np.float32)
    x2[:, 3] = 0.0  # e.g. a gene never seen in batch 2
    with pytest.warns(UserWarning, match="1 of 4 shared feature pairs are constant"):
        model = MAGAN(n_steps=30, batch_size=32, progress=False).fit(
            x1, x2, shared_features=[(j, j) for j in range(4)])
    assert model.shared_features_ == [(str(j), str(j)) for j in range(4)]
    y = model.transform(x1)
    assert np.abs(y).max() < 100  # not a millionfold copy of x1[:, 3]
    assert model.diagnostics_["cycle"].value["max"] < 10


def test_auto_steps_scale_with_the_larger_domain_within_bounds(toy_data, fast_params):
    """n_steps="auto": ~100 passes over the larger domain, clipped to 1,000-3,000 steps; an
    explicit count is used as given and recorded in n_steps_."""
    from magan.estimator import AUTO_PASSES, AUTO_STEPS

    auto = MAGAN()
    assert auto.get_params()["n_steps"] == "auto"
    assert auto._steps_for(200, 100) == AUTO_STEPS[0]  # small data: the floor
    assert auto._steps_for(2000, 300) == int(np.ceil(AUTO_PASSES * 2000 / auto.batch_size))
    assert auto._steps_for(300, 10**6) == AUTO_STEPS[1]  # large data: the former default
    assert MAGAN(batch_size=64)._steps_for(1000, 10) == int(np.ceil(AUTO_PASSES * 1000 / 64))
    model = MAGAN(**fast_params).fit(*toy_data[:2], shared_features=[(0, 0)], diagnose=False)
    assert model.n_steps_ == fast_params["n_steps"] == model.n_steps_trained_
    with pytest.raises(ConfigError, match="n_steps"):
        MAGAN(n_steps="fast").fit(*toy_data[:2])
