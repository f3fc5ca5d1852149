"""Shared fixtures: tiny data and fast model settings, so the suite fits in minutes on 2 cores."""

from __future__ import annotations

import numpy as np
import pytest

from magan.datasets import find_shared_data

# Small networks keep each fit to seconds; the algorithm is the same as with the paper's widths.
FAST = {
    "networks": {"generator": (32, 32), "discriminator": (64, 32)},
    "n_steps": 60,
    "batch_size": 32,
    "progress": False,
    "log_every": 20,
}


@pytest.fixture
def fast_params() -> dict:
    return dict(FAST)


@pytest.fixture
def toy_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x1 = rng.normal(size=(120, 4)).astype(np.float32)
    x2 = (rng.normal(size=(100, 3)) * 100 + 500).astype(np.float32)
    return x1, x2


@pytest.fixture
def shared_data():
    path = find_shared_data()
    if path is None:
        pytest.skip("shared/data is not beside this checkout")
    return path


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """One intra-op thread: tiny fits are faster, and a busy 2-core CI box is not oversubscribed
    (OpenMP threads spinning against other processes made fits up to 100x slower)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
