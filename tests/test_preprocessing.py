"""magan.preprocessing: exact inverses, JSON state round trips, marker matching."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from magan.datasets import find_shared_data
from magan.errors import ConfigError, DataError, ModelFileError
from magan.preprocessing import (
    Arcsinh,
    Log1p,
    MarkerMatch,
    NormalizeTotal,
    Pipeline,
    Standardizer,
    Transform,
    marker_key,
    match_markers,
    transform_from_state,
)

SHARED = find_shared_data()


@pytest.fixture
def cytof_raw() -> np.ndarray:
    rng = np.random.default_rng(1)
    X = rng.gamma(0.8, 200.0, size=(300, 5))
    X[:, 0] -= 1.0  # CyTOF randomisation gives small negative values
    return X.astype(np.float32)


def _json_round_trip(t: Transform) -> Transform:
    return transform_from_state(json.loads(json.dumps(t.get_state())))


# ---- transforms ----------------------------------------------------------------------------------


def test_arcsinh_values_and_inverse(cytof_raw):
    t = Arcsinh(5.0).fit(cytof_raw)
    Y = t.transform(cytof_raw)
    assert Y.dtype == np.float32
    np.testing.assert_allclose(Y, np.arcsinh(cytof_raw / 5.0), rtol=1e-6)
    np.testing.assert_allclose(t.inverse_transform(Y), cytof_raw, rtol=1e-5, atol=1e-4)
    assert Arcsinh(5.0).transform(np.array([[5.0]]))[0, 0] == pytest.approx(np.arcsinh(1.0))


def test_arcsinh_per_feature_cofactor(cytof_raw):
    cof = [5.0, 150.0, 5.0, 1.0, 20.0]
    t = Arcsinh(cof).fit(cytof_raw)
    np.testing.assert_allclose(t.transform(cytof_raw), np.arcsinh(cytof_raw / cof), rtol=1e-6)
    back = _json_round_trip(t)
    assert isinstance(back, Arcsinh) and back.get_state()["cofactor"] == cof
    with pytest.raises(DataError, match="5 features, but Arcsinh has 2"):
        Arcsinh([5.0, 5.0]).fit(cytof_raw)


@pytest.mark.parametrize("bad", [0.0, -5.0, float("nan"), [1.0, -1.0], [[5.0]]])
def test_arcsinh_rejects_bad_cofactor(bad):
    with pytest.raises(ConfigError, match="cofactor"):
        Arcsinh(bad).transform(np.ones((2, 1 if np.ndim(bad) == 0 else np.size(bad))))


def test_log1p_inverse_and_domain():
    counts = np.random.default_rng(2).poisson(3.0, size=(40, 6)).astype(np.float32)
    t = Log1p().fit(counts)
    np.testing.assert_allclose(t.inverse_transform(t.transform(counts)), counts, rtol=1e-5)
    assert isinstance(_json_round_trip(t), Log1p)
    with pytest.raises(DataError, match=r"<= -1.*\[1\]"):
        t.transform(np.array([[0.0, -1.0]]))


def test_normalize_total_scales_and_inverts_only_with_totals():
    counts = np.array([[1, 3, 0], [10, 0, 10], [0, 0, 0]], dtype=np.float32)
    t = NormalizeTotal(target_sum=100).fit(counts)
    Y = t.transform(counts)
    np.testing.assert_allclose(Y.sum(axis=1), [100, 100, 0])
    with pytest.raises(ConfigError, match="totals"):
        t.inverse_transform(Y)
    np.testing.assert_allclose(t.inverse_transform(Y, totals=counts.sum(axis=1)), counts)
    assert NormalizeTotal().fit(counts).target_sum_ == pytest.approx(12.0)  # median of 4, 20
    back = _json_round_trip(t)
    np.testing.assert_allclose(back.transform(counts), Y)
    with pytest.raises(ConfigError, match="not fitted"):
        NormalizeTotal().transform(counts)
    with pytest.raises(DataError, match="non-negative"):
        t.transform(-counts - 1)


def test_pipeline_inverse_and_json_state(cytof_raw):
    pipe = Pipeline([Arcsinh(5.0), Standardizer()]).fit(cytof_raw)
    Y = pipe.transform(cytof_raw)
    np.testing.assert_allclose(Y.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(pipe.inverse_transform(Y), cytof_raw, rtol=1e-4, atol=1e-3)
    state = json.loads(json.dumps(pipe.get_state()))
    assert [s["kind"] for s in state["steps"]] == ["arcsinh", "standardize"]
    back = transform_from_state(state)
    np.testing.assert_allclose(back.transform(cytof_raw), Y, rtol=1e-6)
    nested = Pipeline([Pipeline([Log1p()]), Standardizer()]).fit(np.abs(cytof_raw))
    np.testing.assert_allclose(
        _json_round_trip(nested).inverse_transform(nested.transform(np.abs(cytof_raw))),
        np.abs(cytof_raw),
        rtol=1e-4,
        atol=1e-3,
    )


def test_pipeline_errors():
    with pytest.raises(ConfigError, match="Transform objects"):
        Pipeline([Arcsinh(), "log"]).fit(np.ones((2, 2)))
    pipe = Pipeline([NormalizeTotal(10.0), Log1p()]).fit(np.ones((3, 2)))
    with pytest.raises(ConfigError, match="totals"):
        pipe.inverse_transform(pipe.transform(np.ones((3, 2))))
    with pytest.raises(ModelFileError, match="steps"):
        transform_from_state({"kind": "pipeline"})


def test_standardizer_and_registry_unchanged(cytof_raw):
    t = Standardizer().fit(cytof_raw)
    back = _json_round_trip(t)
    np.testing.assert_allclose(
        back.inverse_transform(back.transform(cytof_raw)), cytof_raw, rtol=1e-5, atol=1e-4
    )
    with pytest.raises(ModelFileError, match="unknown preprocessing step"):
        transform_from_state({"kind": "logicle"})


def test_standardizer_global_keeps_relative_spreads():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 3)) * [4.0, 2.0, 0.5] + [1.0, -2.0, 3.0]
    t = Standardizer(per_feature=False).fit(x)
    z = t.transform(x)
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-6)
    # one common scale: the root mean square of the feature sds, so ratios are kept
    np.testing.assert_allclose(t.scale_, np.sqrt(np.mean(x.std(axis=0) ** 2)))
    np.testing.assert_allclose(z.std(axis=0) / z.std(axis=0)[0], x.std(0) / x.std(0)[0],
                               rtol=1e-5)
    np.testing.assert_allclose((z ** 2).mean(), 1.0, rtol=1e-5)  # average feature: unit variance
    back = _json_round_trip(t)
    assert back.per_feature is False
    np.testing.assert_allclose(back.inverse_transform(z), x, rtol=1e-5, atol=1e-4)
    # a constant feature keeps min_scale (its value comes back exactly), the others share one
    c = Standardizer(per_feature=False).fit(np.c_[x, np.full(len(x), 7.0)])
    assert c.scale_[3] == c.min_scale and np.ptp(c.scale_[:3]) == 0
    # an old model file (no per_feature key) reads as per-feature scaling
    state = Standardizer().fit(x).get_state()
    del state["per_feature"]
    assert transform_from_state(state).per_feature is True


def test_transforms_reject_1d_input():
    with pytest.raises(DataError, match="2-D"):
        Arcsinh().transform(np.ones(3))


# ---- marker matching --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("CD3(Nd142)Dd", "CD3"),
        ("142Nd_CD3", "CD3"),
        ("Nd142Di|CD3", "cd3 "),
        ("CD3_Er170Di", "CD3"),
        ("HLA-DR", "HLADR"),
        ("CD45RA", "CD45-RA"),
        ("FoxP3", "FOXP3"),
        ("PD-1", "CD279"),
        ("CTLA-4", "CD152"),
        ("Ki-67", "Ki67"),
        ("TCRγδ", "TCRgd"),
        ("TCRyd", "TCR_gd"),
        ("Nd142Di", "142Nd"),  # a bare channel keeps its isotope as its key
        ("IL7Ra", "CD127"),
    ],
)
def test_marker_key_forgives_spelling(a, b):
    assert marker_key(a) == marker_key(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [("CD4", "CD45"), ("CD8a", "CD8"), ("CD45", "Cd45"), ("Nd142Di", "Nd143Di"), ("CD3", "CD33")],
)
def test_marker_key_keeps_different_markers_apart(a, b):
    assert marker_key(a) != marker_key(b) or a.lower() == b.lower()


def test_isotope_rule_does_not_eat_marker_names():
    assert marker_key("CD45") == "cd45"  # "Cd" is an element, but case and mass rule it out
    assert marker_key("Yb174Di|HLADR") == "hladr"
    assert marker_key("CCR7") == marker_key("CD197")


def test_match_markers_pairs_rules_and_unmatched():
    panel1 = ["Time", "CD3(Nd142)Dd", "HLA-DR", "PD-1", "CD8a", "CD4"]
    panel2 = ["CD4", "142Nd_CD3", "CD279", "HLADR", "CD19", "Time"]
    m = match_markers(panel1, panel2)
    assert isinstance(m, MarkerMatch) and len(m) == 5
    assert m.pairs.tolist() == [[0, 5], [1, 1], [2, 3], [3, 2], [5, 0]]
    assert m.rules == ("exact", "normalised", "normalised", "alias", "exact")
    assert m.unmatched1 == ("CD8a",) and m.unmatched2 == ("CD19",)
    assert m.ambiguous == ()
    assert [panel1[i] for i in m.indices1] == list(m.names1)
    assert [panel2[j] for j in m.indices2] == list(m.names2)


def test_match_markers_reports_ambiguity_instead_of_guessing():
    m = match_markers(["PD-1", "CD279", "CD3", "CD4"], ["PD1", "cd3", "CD3 ", "CD4"])
    assert m.names1 == ("CD4",)
    assert m.ambiguous == ((("PD-1", "CD279"), ("PD1",)), (("CD3",), ("cd3", "CD3 ")))
    assert m.unmatched1 == () and m.unmatched2 == ()


def test_exact_names_win_over_normalised_collisions():
    m = match_markers(["CD3", "cd3"], ["CD3"])
    assert m.pairs.tolist() == [[0, 0]] and m.rules == ("exact",)
    assert m.unmatched1 == ("cd3",)


def test_match_markers_user_aliases_and_builtin_switch():
    m = match_markers(["CD8a"], ["CD8"], aliases={"CD8a": "CD8"})
    assert m.pairs.tolist() == [[0, 0]] and m.rules == ("alias",)
    assert len(match_markers(["NK1.1"], ["CD161c"], aliases=[("NK1.1", "CD161c")])) == 1
    assert len(match_markers(["PD-1"], ["CD279"], builtin_aliases=False)) == 0
    with pytest.raises(ConfigError, match="aliases"):
        match_markers(["a"], ["b"], aliases=["ab"])


def test_match_markers_is_deterministic_and_table_prints():
    names1 = ["CD3", "CD4", "PD-1", "CD279", "x1"]
    names2 = ["CD4", "PD1", "CD3", "y2"]
    a, b = match_markers(names1, names2), match_markers(list(names1), list(names2))
    assert a.pairs.tolist() == b.pairs.tolist() and a.ambiguous == b.ambiguous
    table = a.table()
    assert isinstance(table, pd.DataFrame)
    assert list(table.columns) == ["status", "name1", "name2", "index1", "index2", "rule"]
    assert table["status"].tolist() == ["matched", "matched", "ambiguous", "only in 1", "only in 2"]
    assert table.loc[2, "name1"] == "PD-1, CD279" and pd.isna(table.loc[2, "index1"])
    assert "only in 2" in table.to_string()


def test_match_markers_empty():
    m = match_markers([], ["CD3"])
    assert m.pairs.shape == (0, 2) and m.unmatched2 == ("CD3",)
    assert len(m.table()) == 1


@pytest.mark.shared_data
@pytest.mark.skipif(SHARED is None, reason="shared/data not found")
def test_match_real_cytof_and_flow_panels():
    import magan.io as mio

    cytof = mio.read(SHARED / "cytonorm_gates" / "Gates_PTLG021_Unstim_Control_1.fcs")
    flow = mio.read(SHARED / "flowsom_68983" / "68983.fcs")
    m = match_markers(cytof.var_names, flow.var_names)
    matched = dict(zip(m.names1, m.names2, strict=True))
    assert matched["CD3"] == "CD3" and matched["CD4"] == "CD4" and matched["CD19"] == "CD19"
    assert matched["TCRgd"] == "TCRyd" and matched["Time"] == "Time"
    assert "CD8a" in m.unmatched1 and "CD8" in m.unmatched2  # different claims: not guessed
