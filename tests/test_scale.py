"""Out-of-core training and chunked transform: on-disk inputs (np.memmap, backed h5ad) give a
working model, reproducible from the seed, without copying the data into memory."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from magan import MAGAN
from magan.data import HostPairSampler, take_rows
from magan.errors import ConfigError

FAST = dict(n_steps=30, batch_size=32, networks={"generator": (16,), "discriminator": (16,)},
            log_every=10, seed=3, progress=False)


def _domains(n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    latent = rng.normal(size=(n, 2))
    x1 = np.arcsinh(rng.gamma(2.0, 50.0, size=(n, 5)) / 5 + latent @ rng.normal(size=(2, 5)))
    x2 = np.tanh(latent @ rng.normal(size=(2, 4))) * 3 + rng.normal(0, 0.1, size=(n, 4))
    return x1.astype(np.float32), x2.astype(np.float32)


def _memmap(path, a: np.ndarray) -> np.memmap:
    m = np.memmap(path, dtype=np.float32, mode="w+", shape=a.shape)
    m[:] = a
    m.flush()
    return np.memmap(path, dtype=np.float32, mode="r", shape=a.shape)


def test_memmap_fit_is_reproducible_and_finite(tmp_path):
    a1, a2 = _domains()
    m1, m2 = _memmap(tmp_path / "x1.f32", a1), _memmap(tmp_path / "x2.f32", a2)
    fits = [MAGAN(**FAST).fit(m1, m2, known_pairs=[(i, i) for i in range(5)]) for _ in range(2)]
    for p, q in zip(fits[0].module_.parameters(), fits[1].module_.parameters()):
        assert torch.equal(p, q)
    out = fits[0].transform(m1)
    assert out.shape == (400, 4) and np.isfinite(out).all()
    # The chunked standardizer matches a full-array fit to rounding.
    in_mem = MAGAN(**FAST).fit(a1, a2, known_pairs=[(0, 0)])
    np.testing.assert_allclose(fits[0].preprocessing1_[-1].mean_,
                               in_mem.preprocessing1_[-1].mean_, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(fits[0].preprocessing1_[-1].scale_,
                               in_mem.preprocessing1_[-1].scale_, rtol=1e-10)
    # Chunked transform into a preallocated memmap equals the in-memory answer.
    dst = np.memmap(tmp_path / "y.f32", dtype=np.float32, mode="w+", shape=(400, 4))
    fits[0].transform(m1, out=dst)
    np.testing.assert_array_equal(np.asarray(dst), out)
    # Chunk size changes only matmul blocking (rounding).
    np.testing.assert_allclose(fits[0]._translate(a1, 1, chunk=7), out, rtol=1e-5, atol=1e-5)


def test_memmap_fit_global_scale_matches_in_memory(tmp_path):
    a1, a2 = _domains()
    m1, m2 = _memmap(tmp_path / "x1.f32", a1), _memmap(tmp_path / "x2.f32", a2)
    params = {**FAST, "n_steps": 2, "standardize": "global"}
    chunked = MAGAN(**params).fit(m1, m2, known_pairs=[(0, 0)])
    in_mem = MAGAN(**params).fit(a1, a2, known_pairs=[(0, 0)])
    s1, s2 = chunked.preprocessing1_[-1].scale_, in_mem.preprocessing1_[-1].scale_
    np.testing.assert_allclose(s1, s2, rtol=1e-10)
    assert np.ptp(s1) == 0  # one common scale


def test_in_memory_false_on_ndarray_and_different_seed(tmp_path):
    a1, a2 = _domains()
    m = MAGAN(**FAST).fit(a1, a2, in_memory=False)
    other = MAGAN(**{**FAST, "seed": 4}).fit(a1, a2, in_memory=False)
    assert np.isfinite(m.transform(a1)).all()
    assert not torch.equal(next(m.module_.parameters()), next(other.module_.parameters()))
    with pytest.raises(ConfigError):
        MAGAN(**FAST).fit(a1, a2, in_memory=False, drop_nonfinite=True)


def test_backed_h5ad(tmp_path):
    anndata = pytest.importorskip("anndata")
    a1, a2 = _domains()
    for i, a in ((1, a1), (2, a2)):
        ad = anndata.AnnData(a)
        ad.var_names = [f"m{i}_{j}" for j in range(a.shape[1])]
        ad.obs_names = [f"c{k}" for k in range(len(a))]
        ad.write_h5ad(tmp_path / f"d{i}.h5ad")
    b1 = anndata.read_h5ad(tmp_path / "d1.h5ad", backed="r")
    b2 = anndata.read_h5ad(tmp_path / "d2.h5ad", backed="r")
    fits = [MAGAN(**FAST).fit(b1, b2, known_pairs=[("c1", "c1"), ("c7", "c7")])
            for _ in range(2)]
    for p, q in zip(fits[0].module_.parameters(), fits[1].module_.parameters()):
        assert torch.equal(p, q)
    assert fits[0].feature_names1_ == [f"m1_{j}" for j in range(5)]
    out = fits[0].transform(b1)
    assert out.shape == (400, 4) and np.isfinite(out).all()
    np.testing.assert_allclose(out, fits[0].transform(a1), rtol=1e-6, atol=1e-6)


def test_sampler_reads_sorted_rows_and_keeps_order_for_pairs():
    x = np.arange(40, dtype=np.float32).reshape(20, 2)
    np.testing.assert_array_equal(take_rows(x, [5, 1, 5]), x[[5, 1, 5]])
    s = HostPairSampler(x, x, 8, seed=0, preprocess1=lambda a: a, preprocess2=lambda a: a,
                        device=torch.device("cpu"))
    b1, _, p1, _ = s.sample()
    assert b1.shape == (8, 2) and p1 is None
    assert (b1[1:, 0] >= b1[:-1, 0]).all()  # sorted reads
