"""Baselines on synthetic data whose right answer is known, plus one run on real scGEM data."""

from __future__ import annotations

import numpy as np
import pytest

from experiments.baselines import gw_ot_align, manifold_alignment
from magan.datasets import find_shared_data
from magan.errors import ConfigError, DataError
from magan.metrics import foscttm


def rotation(dim: int, seed: int) -> np.ndarray:
    """A random orthogonal matrix: the 'other instrument' sees the same cells rotated."""
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(dim, dim)))
    return q


def curve(n: int, seed: int = 0) -> np.ndarray:
    """n points along a 3-D spiral (no symmetry maps it onto itself), lightly noised."""
    t = np.linspace(0, 3 * np.pi, n)
    pts = np.c_[t * np.cos(t), t * np.sin(t), 0.5 * t]
    return pts + np.random.default_rng(seed).normal(0, 0.1, pts.shape)


def branched_cloud(n_per_arm: int, seed: int) -> np.ndarray:
    """A 'Y' with arms of lengths 1, 2 and 3 in 3-D, noised: asymmetric, so GW has one answer."""
    rng = np.random.default_rng(seed)
    arms = []
    for length, direction in [(1.0, [1, 0, 0]), (2.0, [-0.5, 0.87, 0]), (3.0, [-0.5, -0.87, 0])]:
        t = np.linspace(0, length, n_per_arm)[:, None]
        arms.append(t * np.array(direction, dtype=float))
    pts = np.vstack(arms)
    return pts + rng.normal(0, 0.05, pts.shape)


# --------------------------------------------------------------------------- manifold_alignment


def test_manifold_alignment_aligns_a_rotated_curve() -> None:
    x1 = curve(300, seed=0)
    x2 = curve(300, seed=1) @ rotation(3, seed=2).T  # same cells, other noise, rotated
    pairs = [(i, i) for i in np.random.default_rng(3).choice(300, 10, replace=False)]
    res = manifold_alignment(x1, x2, pairs, n_components=2, k=8)
    assert res.x1_embedded.shape == (300, 2) and res.x2_embedded.shape == (300, 2)
    score = foscttm(res.x1_embedded, res.x2_embedded)
    assert score < 0.1, score


def test_manifold_alignment_large_case_uses_sparse_solver(monkeypatch) -> None:
    import experiments.baselines as b

    x1 = curve(200, seed=0)
    x2 = curve(200, seed=1) @ rotation(3, seed=2).T
    pairs = [(i, i) for i in range(0, 200, 20)]
    dense = manifold_alignment(x1, x2, pairs, k=8)
    monkeypatch.setattr(b, "_DENSE_EIGEN_MAX", 10)
    sparse_ = manifold_alignment(x1, x2, pairs, k=8)
    # Eigenvectors are defined up to sign: compare absolute correlations per component.
    for c in range(2):
        r = np.corrcoef(dense.x1_embedded[:, c], sparse_.x1_embedded[:, c])[0, 1]
        assert abs(r) > 0.999


def test_manifold_alignment_survives_outliers_and_disconnected_graphs() -> None:
    # Two far-apart clusters per domain (kNN graphs fall apart) and an outlier whose heat-kernel
    # weights underflow: the trivial eigenvectors of every piece are skipped, D stays invertible.
    rng = np.random.default_rng(0)
    x1 = np.vstack([rng.normal(0, 1, (30, 2)), rng.normal(100, 1, (30, 2)), [[1e4, 1e4]]])
    x2 = x1 @ rotation(2, seed=1).T
    res = manifold_alignment(x1, x2, [(0, 0), (1, 1), (2, 2)], n_components=2, k=3)
    assert np.isfinite(res.x1_embedded).all() and np.isfinite(res.x2_embedded).all()


def test_manifold_alignment_validates() -> None:
    x = curve(20)
    with pytest.raises(DataError, match="out of range"):
        manifold_alignment(x, x, [(0, 20)])
    with pytest.raises(DataError, match="empty"):
        manifold_alignment(x, x, [])
    with pytest.raises(ConfigError, match="mu"):
        manifold_alignment(x, x, [(0, 0)], mu=0)
    with pytest.raises(ConfigError, match="weights"):
        manifold_alignment(x, x, [(0, 0)], weights="gauss")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- gw_ot_align


def test_gw_ot_aligns_rotated_noisy_copies() -> None:
    x1 = branched_cloud(50, seed=0)
    x2 = branched_cloud(50, seed=1) @ rotation(3, seed=4).T
    res = gw_ot_align(x1, x2, k=10, epsilon=5e-3, metric="euclidean", normalize=False)
    assert res.x1_in_2.shape == (150, 3)
    np.testing.assert_allclose(res.coupling.sum(axis=1), 1 / 150, rtol=1e-3)
    score = foscttm(res.x1_in_2, x2)
    assert score < 0.1, score


def test_gw_ot_handles_a_constant_cell_under_correlation() -> None:
    rng = np.random.default_rng(0)
    x1 = np.vstack([np.ones((1, 4)), rng.normal(size=(19, 4))])
    for mode in ("connectivity", "distance"):
        res = gw_ot_align(x1, rng.normal(size=(15, 3)), k=4, epsilon=5e-2, mode=mode)
        assert res.x1_in_2.shape == (20, 3) and np.isfinite(res.x1_in_2).all()


def test_gw_ot_validates() -> None:
    with pytest.raises(DataError, match="NaN"):
        gw_ot_align(np.full((5, 2), np.nan), np.zeros((5, 2)))
    with pytest.raises(ConfigError, match="distance"):
        gw_ot_align(np.eye(5), np.eye(5), distance="cosine")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- real data


def _load_scgem() -> tuple[np.ndarray, np.ndarray]:
    root = find_shared_data()
    if root is None:
        pytest.skip("shared/data not found")
    folder = root / "scgem"
    x1 = np.load(folder / "scgem_expression.npz", allow_pickle=False)["X"].astype(np.float64)
    x2 = np.load(folder / "scgem_methylation.npz", allow_pickle=False)["X"].astype(np.float64)
    return x1, x2


@pytest.mark.shared_data
def test_scgem_gw_ot_beats_chance() -> None:
    # SCOT's own scGEM setting (correlation kNN graph, k=35, epsilon=5e-3); published ~0.19.
    x1, x2 = _load_scgem()
    res = gw_ot_align(x1, x2, k=35, epsilon=5e-3)
    score = foscttm(res.x1_in_2, x2)
    print(f"scGEM GW-OT FOSCTTM: {score:.3f}")
    assert score < 0.4


@pytest.mark.shared_data
def test_scgem_manifold_alignment_with_ten_pairs_beats_chance() -> None:
    x1, x2 = _load_scgem()
    z1, z2 = ((x - x.mean(0)) / np.where(x.std(0) > 0, x.std(0), 1.0) for x in (x1, x2))
    rows = np.random.default_rng(0).choice(x1.shape[0], 10, replace=False)
    res = manifold_alignment(z1, z2, [(i, i) for i in rows], n_components=2, k=10)
    score = foscttm(res.x1_embedded, res.x2_embedded)
    print(f"scGEM manifold alignment (10 pairs) FOSCTTM: {score:.3f}")
    assert score < 0.4


# --------------------------------------------------------------------------- harmony_align


def test_harmony_removes_a_batch_shift_and_keeps_clusters() -> None:
    pytest.importorskip("harmonypy")
    from experiments.baselines import harmony_align
    from magan.metrics import label_transfer, mixing_score

    # Two copies of the same 4-cluster data; batch 2 shifted along 3 features.
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 4, (4, 10))
    labels = rng.integers(0, 4, 400)
    x = centres[labels] + rng.normal(0, 1, (400, 10))
    x1, x2 = x[:200], x[200:] + np.r_[5.0, -5.0, 3.0, np.zeros(7)]
    y1, y2 = labels[:200], labels[200:]
    before = mixing_score(x1, x2)
    h = harmony_align(x1, x2, n_components=10)
    assert h.x1_embedded.shape == (200, 10) and h.x2_embedded.shape == (200, 10)
    after = mixing_score(h.x1_embedded, h.x2_embedded)
    assert before < 0.1 and after > 0.7, (before, after)
    # The right clusters met: a kNN on batch 2's labels reads batch 1's correctly.
    assert label_transfer(h.x1_embedded, h.x2_embedded, y2, y1, k=15).accuracy > 0.95


def test_harmony_needs_the_same_features() -> None:
    pytest.importorskip("harmonypy")
    from experiments.baselines import harmony_align

    with pytest.raises(DataError, match="same features"):
        harmony_align(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(ConfigError, match="n_components"):
        harmony_align(np.ones((5, 3)), np.ones((5, 3)), n_components=4)
