"""magan.diagnostics: each check's arithmetic on hand-made arrays, the verdict rules,
persistence, the fit/CLI/report wiring, and the verdicts on the paper's Gaussians (MAGAN,
plain GAN, shuffled input)."""

from __future__ import annotations

import json
import warnings
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from magan import MAGAN
from magan import diagnostics as dg
from magan.cli import main
from magan.datasets import three_gaussians
from magan.diagnostics import Check, Diagnostics, diagnose_fitted, structure_score, verdict_of
from magan.errors import ConfigError
from magan.preprocessing import Standardizer
from magan.settings import Correspondence


def _blobs(n: int = 300, d: int = 4, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=4, size=(3, d))
    return centres[rng.integers(3, size=n)] + rng.normal(size=(n, d))


# --------------------------------------------------------------------------- the arithmetic


def test_structure_score_is_one_for_the_identity_and_near_zero_for_a_scramble():
    x = _blobs()
    assert structure_score(x, x) == pytest.approx(1.0)
    assert structure_score(x, 3 * x + 1) == pytest.approx(1.0)  # kNN survive an affine map
    scrambled = x[np.random.default_rng(1).permutation(len(x))]
    s = structure_score(x, scrambled)
    assert abs(s) < 0.05
    assert dg._check_structure(s, 0.9).status == "fail"
    assert dg._check_structure(0.9, 0.8).status == "pass"


def test_structure_score_survives_duplicate_cells():
    x = np.repeat(_blobs(50), 3, axis=0)  # each cell three times: kNN ties everywhere
    assert np.isfinite(structure_score(x, x)) and structure_score(x, x) > 0.5


def _names_model(d1: int, d2: int) -> SimpleNamespace:
    return SimpleNamespace(feature_names1_=[f"a{i}" for i in range(d1)],
                           feature_names2_=[f"b{i}" for i in range(d2)])


def test_shared_agreement_perfect_scrambled_and_constant_columns():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    model = _names_model(3, 3)
    pairs = [(0, 0), (1, 1), (2, 2)]
    perfect = dg._check_shared(model, pairs, x, x, x, x)
    assert perfect.status == "pass" and perfect.value["median"] == pytest.approx(1.0)
    shuffled = x[rng.permutation(len(x))]
    bad = dg._check_shared(model, pairs, shuffled, shuffled, x, x)
    assert bad.status == "fail" and "a0/b0" in bad.sentence  # worst markers named
    const = x.copy()
    const[:, 2] = 1.0  # a constant column has no correlation: skipped, not a failure
    mixed = dg._check_shared(model, pairs, const, const, const, const)
    assert mixed.status == "pass" and mixed.value["n_pairs"] == 3
    none = dg._check_shared(model, [], x, x, None, None)
    assert none.status == "n/a"


def test_identity_map_is_the_same_value_in_the_users_units():
    rng = np.random.default_rng(0)
    x1 = rng.normal(5, 2, size=(100, 3))
    x2 = rng.normal(-1, 7, size=(90, 2))
    s1, s2 = Standardizer().fit(x1), Standardizer().fit(x2)
    model = SimpleNamespace(preprocessing1_=[s1], preprocessing2_=[s2],
                            correspondence=Correspondence(shared_features_match="values"))
    z1 = s1.transform(x1).astype(np.float64)
    out = dg._identity(model, z1, [2, 0], [0, 1], 1)
    expected = s2.transform(np.c_[x1[:, 2], x1[:, 0]])
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    model.correspondence = Correspondence(shared_features_match="standardized")
    np.testing.assert_allclose(dg._identity(model, z1, [2, 0], [0, 1], 1), z1[:, [2, 0]])


def test_vs_identity_fails_when_worse_on_both_and_warns_on_one():
    good = {"after_shared12": 0.9, "before12": 0.5, "after_shared21": 0.9, "before21": 0.5}
    s_good = {"trans12": 0.8, "ident12": 0.9, "trans21": 0.8, "ident21": 0.9,
              "pop_trans12": 0.7, "pop_ident12": 0.7, "pop_trans21": 0.8, "pop_ident21": 0.7}
    assert dg._check_vs_identity(good, s_good, True).status == "pass"
    within = {**s_good, "pop_trans21": 0.68}  # below doing nothing by less than the check resolves
    assert dg._check_vs_identity(good, within, True).status == "pass"
    scattered = {**s_good, "pop_trans21": 0.6}  # populations scattered more than unaligned
    check = dg._check_vs_identity(good, scattered, True)
    assert check.status == "warn" and "2→1 on populations" in check.sentence
    worse_mix = {**good, "after_shared12": 0.3}
    assert dg._check_vs_identity(worse_mix, s_good, True).status == "warn"
    s_bad = {**s_good, "trans12": 0.1}
    check = dg._check_vs_identity(worse_mix, s_bad, True)
    assert check.status == "fail" and "mixing and structure" in check.sentence
    assert dg._check_vs_identity(good, s_good, False).status == "n/a"


def test_cycle_and_mixing_grades():
    assert dg._check_cycle(0.05, 0.1).status == "pass"
    assert dg._check_cycle(0.05, 0.6).status == "warn"
    assert dg._check_cycle(1.5, 0.1).status == "fail"
    assert dg._check_mixing({"after12": 0.9, "after21": 0.8}).status == "pass"
    assert dg._check_mixing({"after12": 0.9, "after21": dg.MIXING_FAIL / 2}).status == "fail"


def test_verdict_rules_and_json_round_trip():
    ok = Check("a", "pass", {"x": 1.0}, {"pass": 0.5}, "fine")
    meh = Check("b", "warn", {"x": 0.4}, {"pass": 0.5}, "look at b")
    bad = Check("c", "fail", {"x": float("nan")}, {}, "c failed")
    na = Check("d", "n/a", {}, {}, "not applicable")
    assert verdict_of([ok, na]) == ("good", ())
    assert verdict_of([ok, meh]) == ("check", ("look at b",))
    assert verdict_of([meh, bad, ok]) == ("failed", ("c failed", "look at b"))
    with pytest.raises(ConfigError):
        Check("e", "maybe")
    diag = Diagnostics.from_checks([ok, meh, bad, na], (10, 12), 0.5)
    text = json.dumps(diag.to_dict(), allow_nan=False)  # strict JSON: NaN became null
    back = Diagnostics.from_dict(json.loads(text))
    assert back.to_dict() == diag.to_dict() and back.verdict == "failed"
    assert back["b"].status == "warn" and np.isnan(back["c"].value["x"])
    assert diag.summary().splitlines()[0].startswith("alignment verdict: failed")
    assert "c failed" in str(diag)
    replaced = diag.with_checks(Check("c", "pass", {}, {}, "c fixed"))
    assert replaced.verdict == "check" and len(replaced.checks) == 4


# --------------------------------------------------------------------------- fit, save, load

FAST = {"networks": {"generator": (32, 32), "discriminator": (64, 32)}, "n_steps": 60,
        "batch_size": 32, "progress": False, "log_every": 20}


@pytest.fixture(scope="module")
def fitted():
    d = three_gaussians(60, seed=0)
    model = MAGAN(**FAST).fit(d.x1, d.x2, shared_features=[(0, 0)])
    return model, d


def test_fit_diagnoses_by_default_and_save_load_keeps_it(fitted, tmp_path):
    model, _ = fitted
    diag = model.diagnostics_
    assert isinstance(diag, Diagnostics) and diag.verdict in dg.VERDICTS
    assert {c.name for c in diag.checks} >= {"shared_agreement", "structure", "mixing", "cycle",
                                            "vs_identity"}
    assert diag.n_cells_used == (180, 180)
    model.save(tmp_path / "m")
    again = MAGAN.load(tmp_path / "m")
    assert again.diagnostics_.to_dict() == diag.to_dict()
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    del config["diagnostics"]  # a file from before diagnostics: loads, with None
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    assert MAGAN.load(tmp_path / "m").diagnostics_ is None


def test_diagnose_false_gives_none_and_a_bad_value_is_refused(fitted):
    _, d = fitted
    assert MAGAN(**FAST).fit(d.x1, d.x2, shared_features=[(0, 0)],
                             diagnose=False).diagnostics_ is None
    with pytest.raises(ConfigError, match="'diagnose' parameter of fit"):
        MAGAN(**FAST).fit(d.x1, d.x2, diagnose="yes")


def test_holdout_known_pairs_scores_pairs_the_copy_never_saw(fitted):
    _, d = fitted
    pairs = [(i, i) for i in range(0, 180, 9)]  # same cluster, not the same cell
    model = MAGAN(**FAST).fit(d.x1, d.x2, known_pairs=pairs, diagnose="holdout")
    check = model.diagnostics_["known_pairs_heldout"]
    assert check.status in {"pass", "warn", "fail"} and check.value["n_heldout"] == 5
    assert 0 <= check.value["foscttm"] <= 1 and model.n_known_pairs_ == 20
    few = dg.holdout_known_pairs(model, d.x1, d.x2, known_pairs=pairs[:3])
    assert few.status == "n/a"


def test_judging_a_plain_gan_on_features_it_did_not_train_with(fitted):
    _, d = fitted
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = MAGAN.plain_gan(**FAST).fit(d.x1, d.x2)
    assert plain.diagnostics_["correspondence"].status == "warn"
    assert plain.diagnostics_["shared_agreement"].status == "n/a"
    judged = diagnose_fitted(plain, d.x1, d.x2, shared_features=[(0, 0)], max_cells=100)
    assert judged["shared_agreement"].status != "n/a" and judged.n_cells_used == (100, 100)


# --------------------------------------------------------------------------- CLI and report

CLI_FAST = ["--steps", "60", "--batch-size", "64", "--quiet", "--generator-widths", "32",
            "--discriminator-widths", "32"]


@pytest.fixture
def panels(tmp_path):
    """Two batches of one 6-marker panel with three correlated populations, and a copy of the
    second with each marker's values shuffled independently (no population left)."""
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=3, size=(3, 6))
    names = [f"M{i}" for i in range(6)]
    frames = []
    for shift, n in ((0.0, 400), (0.5, 350)):
        x = centres[rng.integers(3, size=n)] + 0.5 * rng.normal(size=(n, 6)) + shift
        frames.append(pd.DataFrame(x, columns=names))
    shuffled = pd.DataFrame(np.apply_along_axis(rng.permutation, 0, frames[1].to_numpy()),
                            columns=names)
    paths = []
    for name, frame in (("b1", frames[0]), ("b2", frames[1]), ("b2_shuffled", shuffled)):
        paths.append(tmp_path / f"{name}.csv")
        frame.to_csv(paths[-1], index=False)
    return paths


def test_cli_strict_fails_a_shuffled_input_and_passes_a_real_one(tmp_path, panels, capsys):
    b1, b2, shuffled = panels
    bad = tmp_path / "bad"
    assert main(["align", str(b1), str(shuffled), "--out", str(bad), "--strict",
                 "--shared-match", "standardized", *CLI_FAST]) == 3
    err = capsys.readouterr().err
    assert "WARNING" in err and "FAILED" in err and "--strict" in err
    assert (bad / "x1_in_domain2.csv").is_file()  # outputs written before the verdict
    assert json.loads((bad / "run.json").read_text())["diagnostics"]["verdict"] == "failed"

    good = tmp_path / "good"
    loud = [a for a in CLI_FAST if a != "--quiet"]  # the verdict lines are not printed quiet
    assert main(["align", str(b1), str(b2), "--out", str(good), "--strict", "--report",
                 "--shared-match", "standardized", *loud]) == 0
    out = capsys.readouterr().out
    run = json.loads((good / "run.json").read_text())
    verdict = run["diagnostics"]["verdict"]
    assert verdict != "failed"
    assert out.strip().splitlines()[-1 - len(run["diagnostics"]["reasons"])].startswith(
        f"alignment verdict: {verdict}")  # the verdict lines come last
    page = (good / "report.html").read_text()
    assert f"Alignment verdict: {verdict}" in page
    assert page.index('id="verdict"') < page.index('id="parameters"')


def test_cli_diagnose_off_and_default_holdout(tmp_path, panels):
    from magan.cli import _diagnose_mode

    assert _diagnose_mode(None, None) is True
    assert _diagnose_mode(None, [(0, 0), (1, 1), (2, 2), (3, 3)]) == "holdout"
    assert _diagnose_mode("off", [(0, 0)] * 5) is False
    b1, b2, _ = panels
    out = tmp_path / "off"
    assert main(["align", str(b1), str(b2), "--out", str(out), "--diagnose", "off",
                 *CLI_FAST]) == 0
    assert json.loads((out / "run.json").read_text())["diagnostics"] is None


# --------------------------------------------------------------------------- the verdicts

# Small networks; MAGAN needs ~800 steps to learn the unshared coordinate. The plain GAN's
# verdict (no correspondence) and the shuffled input's (its shared coordinate explains none of
# the other) do not hinge on training length, so those fits are short.
QUALITY = {"networks": {"generator": (32, 32), "discriminator": (64, 32)}, "batch_size": 64,
           "progress": False}


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_verdicts_on_the_papers_gaussians(seed):
    data = three_gaussians(n_per_cluster=300, seed=seed)
    rng = np.random.default_rng(seed)
    x2s = np.apply_along_axis(rng.permutation, 0, data.x2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        magan = MAGAN(seed=seed, n_steps=800, **QUALITY).fit(data.x1, data.x2,
                                                              shared_features=[(0, 0)])
        plain = MAGAN.plain_gan(seed=seed, n_steps=150, **QUALITY).fit(data.x1, data.x2)
        shuffled = MAGAN(seed=seed, n_steps=150, **QUALITY).fit(data.x1, x2s,
                                                                 shared_features=[(0, 0)])
    print(f"\nseed {seed}\nMAGAN: {magan.diagnostics_}\nplain GAN: {plain.diagnostics_}\n"
          f"shuffled: {shuffled.diagnostics_}")
    assert magan.diagnostics_.verdict == "good", str(magan.diagnostics_)
    assert plain.diagnostics_.verdict != "good", str(plain.diagnostics_)
    assert shuffled.diagnostics_.verdict == "failed", str(shuffled.diagnostics_)
    assert shuffled.diagnostics_["shared_dependence"].status == "fail"


# ------------------------------------------------------------- never worse than doing nothing


def test_population_agreement_is_one_for_doing_nothing_and_near_zero_for_a_scramble():
    x = _blobs(400, seed=3)
    pops = dg._populations(x, 0, 8)
    assert dg.population_agreement(pops, x, x, pops) > 0.85  # 8 k-means parts of 3 blobs
    scrambled = x[np.random.default_rng(0).permutation(len(x))]
    assert dg.population_agreement(pops, scrambled, x, pops) < 0.05
    sets = dg._population_sets(x, 0)  # 3, 4, 6, 8 and 12 populations of 400 cells
    assert len(sets) == len(dg.POPULATION_COUNTS) and sets[-1].max() == 11
    assert dg.mean_population_agreement(sets, x, x, sets) > 0.85
    assert dg.mean_population_agreement(sets, scrambled, x, sets) < 0.05
    assert len(dg._population_sets(x[:90], 0)) == 2  # 90 cells, 20 per population: 3 and 4


def _vs_identity(status: str) -> Check:
    return Check("vs_identity", status, {}, {}, f"vs_identity {status}")


@pytest.mark.parametrize(("statuses", "factor"), [(["pass"], 1.0),
                                                   (["fail", "pass"], 0.5),
                                                   (["warn", "fail", "pass"], 0.0)])
def test_a_translation_worse_than_nothing_falls_back_towards_it(monkeypatch, statuses, factor):
    """The diagnostics choose how much of the learnt change of the shared features is kept:
    all of it while it beats doing nothing, else half, else none (the shared features as
    measured); the verdict then asks to check, naming why."""
    d = three_gaussians(60, seed=0)
    seen = []

    def fake(model, ref, **kw):
        seen.append(model.shared_residual_)
        return Diagnostics.from_checks([_vs_identity(statuses[len(seen) - 1])], (1, 1), 0.0)

    monkeypatch.setattr(dg, "diagnose_reference", fake)
    model = MAGAN(**FAST).fit(d.x1, d.x2, shared_features=[(0, 0)])
    assert seen == [1.0, 0.5, 0.0][:len(statuses)]
    assert model.shared_residual_ == factor
    residual = model.diagnostics_["shared_residual"]
    assert residual.status == ("pass" if factor == 1 else "warn")
    assert model.diagnostics_.verdict == ("good" if factor == 1 else "check")
    if factor < 1:
        assert statuses[0] in residual.sentence
    if factor == 0:  # the shared coordinate comes out exactly as it went in
        np.testing.assert_allclose(model.transform(d.x1)[:, 0], d.x1[:, 0], atol=1e-4)
        np.testing.assert_allclose(model.inverse_transform(d.x2)[:, 0], d.x2[:, 0], atol=1e-4)


def test_the_fallback_survives_save_and_load(fitted, tmp_path):
    model, d = fitted
    model = MAGAN.load(model.save(tmp_path / "m"))
    model._scale_shared_residual(0.5)
    again = MAGAN.load(model.save(tmp_path / "half"))
    assert again.shared_residual_ == 0.5
    np.testing.assert_array_equal(again.transform(d.x1), model.transform(d.x1))


def test_one_dead_channel_warns_where_a_shuffled_domain_fails():
    """Shared features that explain one domain's unshared features and none of the other's:
    a failure when those are a large part of the domain (a shuffled input), a warning for
    one dead channel of 25 (the paper's CD45RA drop-out)."""
    rng = np.random.default_rng(0)
    z1 = _blobs(600, d=25, seed=1)
    z2 = _blobs(600, d=25, seed=1)
    z2[:, 24] = rng.normal(size=600)  # the dropped-out marker: noise in domain 2
    pairs = [(j, j) for j in range(24)]
    check = dg._check_dependence(pairs, z1[:, :24], z2[:, :24], z1, z2, rng)
    assert check.status == "warn" and "dead" in check.sentence
    # The shared features co-vary alike (not shuffled, paired right): a note naming it.
    names = ([f"m{c}" for c in range(25)], [f"m{c}" for c in range(25)])
    check = dg._check_dependence(pairs, z1[:, :24], z2[:, :24], z1, z2, rng, covaried=True,
                                 names=names)
    assert check.status == "note" and "domain 2's unshared channel m24 is" in check.sentence
    diag = Diagnostics.from_checks([check], (600, 600), 0.0)
    assert diag.verdict == "good" and diag.notes == (check.sentence,)
    assert "note: domain 2" in diag.summary()
    g1 = _blobs(600, d=3, seed=2)
    g2 = np.apply_along_axis(rng.permutation, 0, _blobs(600, d=3, seed=2))
    check = dg._check_dependence([(0, 0)], g1[:, :1], g2[:, :1], g1, g2, rng)
    assert check.status == "fail"


def test_populations_are_compared_only_with_enough_shared_features():
    mix = {"after_shared12": 0.9, "before12": 0.5, "after_shared21": 0.9, "before21": 0.5}
    s = {"trans12": 0.8, "ident12": 0.9, "trans21": 0.8, "ident21": 0.9,
         "pop_trans12": 0.5, "pop_ident12": 0.6, "pop_trans21": 0.7, "pop_ident21": 0.7}
    assert dg._check_vs_identity(mix, {**s, "n_shared": 32.0}, True).status == "warn"
    assert dg._check_vs_identity(mix, {**s, "n_shared": 1.0}, True).status == "pass"


def test_doing_nothing_leaves_out_a_feature_constant_in_one_domain():
    """A gene with no counts in batch 2 has scale 1e-6 there: copied as "the same value" it
    would be a millionfold axis that dominates doing nothing's neighbours, mixing and
    populations (an scRNA batch pair: doing nothing kept 0.45 of its own neighbours). The
    diagnostics judge on the pairs the fit used."""
    x1 = _blobs(200, 6, seed=0).astype(np.float32)
    x2 = _blobs(200, 6, seed=1).astype(np.float32)
    x1[:, 5] = np.random.default_rng(2).normal(size=200)  # varies in batch 1 ...
    x2[:, 5] = 0.0  # ... never seen in batch 2
    pairs = [(j, j) for j in range(6)]
    with pytest.warns(UserWarning, match="1 of 6 shared feature pairs are constant"):
        model = MAGAN(**FAST).fit(x1, x2, shared_features=pairs, diagnose=False)
    ref = dg.prepare_reference(model, x1, x2)
    assert ref.pairs == pairs[:5]
    assert np.abs(ref.identity[0]).max() < 100  # not a millionfold copy of x1[:, 5]
    found = dg.diagnose_reference(model, ref, has_relation=False)
    assert found["vs_identity"].value["structure_identity12"] > 0.7  # 0.04 with the copy
    assert found["shared_agreement"].value["n_pairs"] == 5


def test_the_range_check_notes_values_the_target_never_shows():
    """Values far outside the target's range (negative log counts) are a note naming the
    features; within it, a pass. Notes never lower the verdict."""
    rng = np.random.default_rng(0)
    cells = np.vstack([np.zeros(3), np.ones(3), rng.uniform(0, 1, size=(98, 3))])  # span [0, 1]
    fitted = Standardizer().fit(cells)
    model = SimpleNamespace(**vars(_names_model(3, 3)), preprocessing1_=[fitted],
                            preprocessing2_=[fitted])
    inside = rng.uniform(0, 1, size=(100, 3))
    assert dg._check_range(inside, inside, cells, cells, model).status == "pass"
    shifted = inside.copy()
    shifted[:50, 2] -= 2.0  # half of feature b2's values far below anything measured
    check = dg._check_range(shifted, inside, cells, cells, model)
    assert check.status == "note" and "b2" in check.sentence and "1→2" in check.sentence
    assert check.value["outside12"] == pytest.approx(50 / 300)
    assert check.value["outside21"] == 0.0
    within_margin = inside + 0.05  # a twentieth of the width past the top: tolerated
    assert dg._check_range(within_margin, inside, cells, cells, model).value["max"] == 0.0
    flat = cells.copy()
    flat[:, 2] = 0.0  # b2 constant (0) in the target: what is output comes back as 0
    model.preprocessing2_ = [Standardizer().fit(flat)]
    assert dg._check_range(shifted, inside, cells, flat, model).status == "pass"
    assert verdict_of([check])[0] == "good"
