"""magan.uncertainty: local-noise model, Ensemble intervals (calibration on data with known
noise), persistence and errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from magan import MAGAN
from magan.errors import ConfigError, DataError, ModelFileError, NotFittedError, OutputExistsError
from magan.metrics import interval_calibration
from magan.uncertainty import LEVELS, Ensemble, LocalNoise

NOISE = 0.3


def _linear(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """m = a + sd NOISE noise; coords = a: the conditional sd of m given a is NOISE."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    m = a + NOISE * rng.normal(size=n)
    return np.c_[a, m].astype(np.float32), a[:, None].astype(np.float32)


def test_local_noise_recovers_known_sd_and_covers_fresh_cells():
    values, coords = _linear(3000, 0)
    noise = LocalNoise(n_neighbors=30, max_cells=2000).fit(values, coords)
    assert len(noise.reference_) == 2000  # subsampled to max_cells
    fresh, fcoords = _linear(2000, 1)
    sd = noise.sd(fcoords)
    assert sd.shape == (2000, 2)
    assert np.median(sd[:, 1]) == pytest.approx(NOISE, rel=0.2)
    assert np.median(sd[:, 0]) < 0.1 * NOISE  # a is the coordinate: nearly fixed locally
    q = noise.quantile(0.9)
    assert 1.4 < q[1] < 2.2  # ≈ 1.645 for Gaussian noise, a little more (k = 30 neighbours)
    inside = np.abs(fresh[:, 1] - fcoords[:, 0]) <= q[1] * sd[:, 1]
    assert 0.85 < inside.mean() < 0.95


def test_local_noise_levels_and_state_round_trip():
    values, coords = _linear(300, 0)
    noise = LocalNoise(n_neighbors=10).fit(values, coords)
    qs = np.array([noise.quantile(lv)[1] for lv in (0.5, 0.8, 0.9, 0.9025, 0.95, 0.99)])
    assert (np.diff(qs) >= 0).all()  # wider for higher levels, interpolated in between
    for bad in (0.2, 1.0, "0.9", True, None):
        with pytest.raises(ConfigError, match="level must be"):
            noise.quantile(bad)
    again = LocalNoise.from_state(noise.state())
    np.testing.assert_array_equal(again.sd(coords[:20]), noise.sd(coords[:20]))
    np.testing.assert_array_equal(again.quantile(0.9), noise.quantile(0.9))
    with pytest.raises(DataError, match="columns"):
        noise.sd(np.zeros((3, 2)))
    with pytest.raises(DataError, match="more than 11 finite"):
        LocalNoise(n_neighbors=10).fit(values[:11], coords[:11])
    # Non-finite reference cells are left out, not propagated.
    values[0, 1] = np.nan
    assert len(LocalNoise(n_neighbors=10).fit(values, coords).reference_) == 299


def _panels(n: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series]:
    """Panel 1 measures (a, b, m), panel 2 (a, b, c); m = a + b + noise is to be imputed for
    panel 2's cells, whose true m is returned for scoring."""
    rng = np.random.default_rng(seed)

    def cells(k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        a, b = rng.normal(size=k), rng.normal(size=k)
        return a, b, a + b + NOISE * rng.normal(size=k)

    a, b, m = cells(n)
    p1 = pd.DataFrame({"a": a, "b": b, "m": m}, dtype=np.float32)
    a, b, m = cells(n)
    p2 = pd.DataFrame({"a": a, "b": b, "c": a - b}, dtype=np.float32)
    return p1, p2, pd.Series(m)


@pytest.fixture(scope="module")
def ensemble():
    p1, p2, truth = _panels(600, 0)
    base = MAGAN(networks={"generator": (32, 32), "discriminator": (32, 32)}, n_steps=1000,
                 batch_size=64, progress=False, device="cpu", seed=3)
    ens = Ensemble(base, n_members=3, n_neighbors=15).fit(p1, p2, shared_features="auto")
    return ens, p1, p2, truth


def test_ensemble_interval_is_calibrated_where_noise_is_known(ensemble):
    ens, p1, p2, truth = ensemble
    assert [m.seed for m in ens.members_] == [3, 4, 5]
    iv = ens.interval(p2, domain=2, level=0.9)
    assert iv.mean.shape == iv.lower.shape == (600, 3) and iv.level == 0.9
    assert (iv.lower <= iv.mean).all() and (iv.mean <= iv.upper).all()
    np.testing.assert_allclose(iv.mean, ens.inverse_transform(p2), rtol=1e-6)
    cal = interval_calibration(iv.mean[:, [2]], iv.lower[:, [2]], iv.upper[:, [2]],
                               truth.to_numpy()[:, None])
    assert 0.8 <= cal["coverage"] <= 0.97, cal
    # The seed spread alone sees none of the noise m has given (a, b): far narrower.
    assert np.median(iv.sd_model[:, 2]) < 0.5 * np.median(iv.sd_local[:, 2])
    wide = ens.interval(p2, domain=2, level=0.99)
    assert (wide.upper - wide.lower >= iv.upper - iv.lower - 1e-6).all()
    # The other direction works too (domain-1 cells into domain 2).
    assert ens.interval(p1, domain=1).mean.shape == (600, 3)


def test_ensemble_impute_frames(ensemble):
    ens, _, p2, _ = ensemble
    frame = ens.impute(p2, domain=2)
    assert list(dict.fromkeys(frame.columns.get_level_values(0))) == ["mean", "lower", "upper",
                                                                      "sd"]
    assert list(frame["mean"].columns) == ["m"]  # "unshared": a, b are measured in panel 2
    assert (frame["lower"]["m"] <= frame["upper"]["m"]).all()
    plain = ens.impute(p2, domain=2, level=None, features=None)
    assert list(plain.columns) == ["a", "b", "m"]
    np.testing.assert_allclose(plain["m"], frame["mean"]["m"], rtol=1e-6)
    with pytest.raises(DataError, match="unknown features"):
        ens.impute(p2, domain=2, features=["nope"])
    with pytest.raises(ConfigError, match="domain must be 1 or 2"):
        ens.interval(p2, domain=3)


def test_ensemble_save_load_round_trip(ensemble, tmp_path):
    ens, _, p2, _ = ensemble
    path = ens.save(tmp_path / "ens")
    with pytest.raises(OutputExistsError):
        ens.save(path)
    again = Ensemble.load(path, device="cpu")
    a, b = ens.interval(p2, domain=2), again.interval(p2, domain=2)
    for x, y in zip(a[:5], b[:5], strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-6)
    (path / "local_noise1.npz").write_bytes(b"not an npz")
    with pytest.raises(ModelFileError, match=r"local_noise1\.npz"):
        Ensemble.load(path)
    with pytest.raises(ModelFileError, match="not a saved magan Ensemble"):
        Ensemble.load(tmp_path)


def test_ensemble_errors(ensemble, toy_data, fast_params):
    ens, p1, p2, _ = ensemble
    with pytest.raises(NotFittedError, match="Ensemble is not fitted"):
        Ensemble().interval(p2)
    for bad in ({"n_members": 0}, {"n_members": 2.5}, {"n_neighbors": 1},
                {"reference_cells": True}):
        with pytest.raises(ConfigError):
            Ensemble(**bad).fit(p1, p2)
    with pytest.raises(ConfigError, match="estimator must be a MAGAN"):
        Ensemble("MAGAN").fit(p1, p2)
    with pytest.raises(ConfigError, match="level must be"):
        ens.interval(p2, domain=2, level=0.3)
    x1, x2 = toy_data
    other = MAGAN(**fast_params, correspondence=False).fit(x1, x2)
    with pytest.raises(DataError, match="same inputs"):
        Ensemble.from_members([ens.members_[0], other], p1, p2)
    with pytest.raises(ConfigError, match="non-empty list"):
        Ensemble.from_members([], p1, p2)
    assert LEVELS[0] == 0.5 and LEVELS[-1] == 0.995


def test_pair_holdout_members_leave_out_their_share_and_widen_honestly(tmp_path, fast_params):
    rng = np.random.default_rng(0)
    t = rng.uniform(-2, 2, size=(200, 1))
    x1 = np.c_[t, t ** 2, np.sin(t)] + 0.05 * rng.normal(size=(200, 3))
    x2 = np.c_[2 * t, np.cos(t)] + 0.05 * rng.normal(size=(200, 2))
    pairs = [(i, i) for i in range(0, 200, 17)]  # 12 known pairs
    base = MAGAN(**fast_params, seed=7)
    ens = Ensemble(base, n_members=3).fit(x1, x2, known_pairs=pairs)  # "auto": 12 ≥ 2 × 3
    assert [m.n_known_pairs_ for m in ens.members_] == [8, 8, 8]  # each left 4 out
    assert set(ens.pair_quantiles_) == {1, 2}
    assert all(t.shape == LEVELS.shape and (np.diff(t) >= 0).all()
               for t in ens.pair_quantiles_.values())
    # The held-out pairs can only widen the interval (the larger multiplier is used).
    plain = Ensemble.from_members(ens.members_, x1, x2)
    assert plain.pair_quantiles_ == {}
    a, b = ens.interval(x1, domain=1), plain.interval(x1, domain=1)
    assert (a.upper - a.lower >= b.upper - b.lower - 1e-6).all()
    again = Ensemble.load(ens.save(tmp_path / "e"))
    np.testing.assert_allclose(again.interval(x2, domain=2).upper, ens.interval(x2, domain=2).upper,
                               rtol=1e-6)
    # Off, or too few pairs for "auto": every member sees every pair. Checkpoints per member.
    off = Ensemble(base, n_members=2, pair_holdout=False).fit(
        x1, x2, known_pairs=pairs[:3], checkpoint_dir=tmp_path / "ck", checkpoint_every=20)
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["member_0", "member_1"]
    assert [m.n_known_pairs_ for m in off.members_] == [3, 3] and off.pair_quantiles_ == {}
    auto = Ensemble(base, n_members=2).fit(x1, x2, known_pairs=pairs[:3])
    assert auto.pair_quantiles_ == {}
    one = Ensemble(base, n_members=1).fit(x1, x2, known_pairs=pairs)  # "auto" needs 2 members
    assert one.members_[0].n_known_pairs_ == 12 and one.pair_quantiles_ == {}
    assert [Ensemble(n_members=k).holds_out_pairs(n) for k, n in
            ((1, 12), (3, 5), (3, 6), (3, 0))] == [False, False, True, False]
    with pytest.raises(ConfigError, match="at least 2 known pairs and 2 members"):
        Ensemble(base, n_members=2, pair_holdout=True).fit(x1, x2, known_pairs=pairs[:1])
    # Cells with NaN are dropped by every member and left out of the reference cells.
    x1n = x1.copy()
    x1n[0, 0] = np.nan
    with pytest.warns(UserWarning, match="drop_nonfinite"):
        nan = Ensemble(base, n_members=2).fit(x1n, x2, known_pairs=pairs[:4], drop_nonfinite=True)
    assert len(nan.noise_[1].reference_) == 199 and set(nan.pair_quantiles_) == {1, 2}
    with pytest.raises(ConfigError, match="pair_holdout must be"):
        Ensemble(base, pair_holdout="yes").fit(x1, x2)


def test_interval_in_chunks_equals_one_pass(ensemble, monkeypatch):
    import magan.uncertainty as unc

    ens, _, p2, _ = ensemble
    whole = ens.interval(p2, domain=2)
    monkeypatch.setattr(unc, "_CHUNK", 7)  # cells per step, and neighbour values per block
    monkeypatch.setattr(unc, "_BLOCK_ELEMENTS", 100)
    parts = ens.interval(p2, domain=2)
    for a, b in zip(whole[:5], parts[:5], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
