"""The paper's first experiment: three Gaussian clusters per domain, one shared coordinate.

MAGAN must map every domain-1 cluster to the domain-2 cluster whose shared coordinate is closest
(cluster k → cluster k here) in at least 9 of 10 seeds. The plain GAN's failure is the paper's
point but not a property a test can pin (any permutation satisfies its losses, the right one
included): its mappings are in RESULTS.md (`python -m experiments gaussians`), and
tests/test_diagnostics.py asserts that its self-diagnosis is never "good".
"""

from __future__ import annotations

import numpy as np
import pytest

from magan import MAGAN
from magan.datasets import GAUSSIAN_CENTRES2, three_gaussians

SEEDS = range(10)
# The cluster mapping is what this file tests; the self-diagnosis (tested in
# test_diagnostics.py, also on these Gaussians) is skipped here (this file: 568 s with it,
# 565 s without, so the fits themselves are the cost; the plain GAN's 10 unasserted fits,
# about 40% of it, went to RESULTS.md).
# Smaller networks than the paper's (which need ~30 ms/step on 2 cores); same algorithm.
PARAMS = {
    "networks": {"generator": (64, 32), "discriminator": (128, 64)},
    "n_steps": 600,  # 10/10 seeds right at 600 as at 1,000 (2026-12-02), in 119 s instead of 172
    "batch_size": 128,
    "progress": False,
}


def cluster_map(model: MAGAN, x1: np.ndarray, labels1: np.ndarray) -> list[int]:
    """Majority domain-2 cluster (nearest centre) of each domain-1 cluster's translations."""
    y = model.transform(x1)
    nearest = ((y[:, None, :] - GAUSSIAN_CENTRES2[None]) ** 2).sum(-1).argmin(1)
    return [int(np.bincount(nearest[labels1 == k], minlength=3).argmax()) for k in range(3)]


@pytest.mark.slow
def test_magan_maps_each_cluster_to_its_nearest_counterpart():
    data = three_gaussians(n_per_cluster=1000, seed=0)
    expected = [data.expected[k] for k in range(3)]
    assert expected == [0, 1, 2]
    maps = [cluster_map(MAGAN(seed=seed, **PARAMS).fit(data.x1, data.x2,
                                                       shared_features=[(0, 0)], diagnose=False),
                        data.x1, data.labels1)
            for seed in SEEDS]
    right = sum(m == expected for m in maps)
    print(f"\nMAGAN mappings: {maps} -> {right}/10 right")
    assert right >= 9, maps


@pytest.mark.slow
def test_bfloat16_mixed_precision_maps_the_clusters_as_float32_does():
    # precision="bfloat16" (autocast; meant for GPU tensor cores) must not cost the paper's
    # first result: every cluster to its nearest counterpart on each of 3 seeds (a bfloat16
    # fit costs ~2x a float32 one on CPU: autocast is for GPU tensor cores).
    data = three_gaussians(n_per_cluster=1000, seed=0)
    maps = [cluster_map(MAGAN(seed=seed, precision="bfloat16", **PARAMS)
                        .fit(data.x1, data.x2, shared_features=[(0, 0)], diagnose=False),
                        data.x1, data.labels1)
            for seed in range(3)]
    assert maps == [[0, 1, 2]] * 3, maps
