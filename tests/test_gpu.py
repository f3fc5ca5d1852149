"""CUDA paths: training and inference on the GPU, no host sync inside a step, CPU reload.

Skipped where torch sees no CUDA device (CI has none); run on a GPU machine with
``pytest tests/test_gpu.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from magan import MAGAN
from magan.correspondence import KnownPairs, SharedFeatures, TransportPairs
from magan.data import PairSampler
from magan.nn import MAGANModule, NetworkConfig
from magan.training import Trainer, resolve_device

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_auto_device_matches_availability():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected


@pytest.mark.gpu
@cuda
def test_fit_on_cuda_reloads_on_cpu_with_the_same_outputs(tmp_path, toy_data, fast_params):
    x1, x2 = toy_data
    model = MAGAN(**{**fast_params, "device": "cuda"}).fit(x1, x2, shared_features=[(0, 0)],
                                                           known_pairs=[(0, 1), (2, 3)])
    assert next(model.module_.parameters()).device.type == "cuda"
    y = model.transform(x1)
    assert np.isfinite(y).all()
    cpu = MAGAN.load(model.save(tmp_path / "m"), device="cpu")
    np.testing.assert_allclose(cpu.transform(x1), y, rtol=1e-4, atol=1e-3)
    again = MAGAN(**{**fast_params, "device": "cuda"}).fit(x1, x2, shared_features=[(0, 0)],
                                                           known_pairs=[(0, 1), (2, 3)])
    np.testing.assert_allclose(again.transform(x1), y, rtol=1e-4, atol=1e-4)


def _steps_never_sync(shared_cost: bool, precision: str = "float32") -> None:
    """A few training steps on CUDA with the sync debug mode set to raise on any host sync."""
    device = torch.device("cuda")
    module = MAGANModule(NetworkConfig(5, 4)).to(device)
    x1, x2 = torch.randn(500, 5, device=device), torch.randn(400, 4, device=device)
    sampler = PairSampler(x1, x2, 128, seed=0, pairs=(x1[:2], x2[:2]))
    if shared_cost:  # MAGAN()'s defaults with shared features
        terms = [SharedFeatures([(0, 0), (1, 1)]).to(device), KnownPairs()]
        terms.append(TransportPairs(0.02, "shared", shared=terms[0]))
    else:  # known pairs only, the minibatch Gromov-Wasserstein plan
        terms = [KnownPairs(), TransportPairs(0.02, "structure")]
    trainer = Trainer(module, sampler, terms, generator_ema=0.995, precision=precision)
    trainer.step()  # warm-up: allocations and lazy init may sync once
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(5):
            trainer.step()
    finally:
        torch.cuda.set_sync_debug_mode("default")


@pytest.mark.gpu
@cuda
@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
@pytest.mark.parametrize("shared_cost", [True, False])
def test_training_step_never_waits_for_the_host(shared_cost, precision):
    _steps_never_sync(shared_cost, precision)


@pytest.mark.gpu
@cuda
def test_bfloat16_fit_on_cuda_is_close_to_float32(toy_data, fast_params):
    x1, x2 = toy_data
    kw = {**fast_params, "device": "cuda"}
    y32 = MAGAN(**kw).fit(x1, x2, shared_features=[(0, 0)]).transform(x1)
    y16 = MAGAN(**kw, precision="bfloat16").fit(x1, x2, shared_features=[(0, 0)]).transform(x1)
    assert np.isfinite(y16).all()
    # same seed, same data: bfloat16 rounding moves the result, but not by much of x2's spread
    assert np.abs(y16 - y32).mean() < 0.05 * x2.std(axis=0).mean()  # CPU autocast: 5e-5
