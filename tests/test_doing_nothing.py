"""The promise of issue 18 on the bundled CyTOF batches (same panel, Day 1 vs Day 2): MAGAN's
default is never worse than doing nothing, and its self-diagnosis says how good it is.

Doing nothing = Day 1's cells as measured, classified by a kNN fitted on Day 2's CD8 flag;
MAGAN = the same kNN on G12(Day 1). Over 2 seeds with the default networks and 1,500 steps
(half the default, to keep the suite short; the battery runs the full length).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from magan import MAGAN
from magan.datasets import cytof_batches
from magan.metrics import label_transfer


def _batches() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    a1, a2 = cytof_batches()
    x1, x2 = (np.arcsinh(np.asarray(a.X, dtype=np.float64) / 5).astype(np.float32)
              for a in (a1, a2))
    return x1, x2, a1.obs["cd8"].to_numpy(), a2.obs["cd8"].to_numpy()


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_default_is_never_worse_than_doing_nothing_and_says_so(seed):
    x1, x2, y1, y2 = _batches()
    shared = [(j, j) for j in range(x1.shape[1])]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = MAGAN(seed=seed, n_steps=1500, progress=False).fit(x1, x2,
                                                                   shared_features=shared)
    nothing = label_transfer(x1, x2, y2, y1, k=15).accuracy
    aligned = label_transfer(model.transform(x1), x2, y2, y1, k=15).accuracy
    print(f"\nseed {seed}: doing nothing {nothing:.3f}, MAGAN {aligned:.3f}, "
          f"shared_residual {model.shared_residual_}\n{model.diagnostics_}")
    assert aligned >= nothing - 0.005
    assert model.diagnostics_.verdict != "failed"
    if model.diagnostics_.verdict == "good":  # "good" only where it beats doing nothing
        assert aligned > nothing


@pytest.mark.slow
def test_a_shuffled_day2_fails_its_diagnosis():
    x1, x2, _, _ = _batches()
    rng = np.random.default_rng(0)
    shuffled = np.apply_along_axis(rng.permutation, 0, x2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = MAGAN(seed=0, n_steps=300, progress=False).fit(
            x1, shuffled, shared_features=[(j, j) for j in range(x1.shape[1])])
    assert model.diagnostics_.verdict == "failed", str(model.diagnostics_)
