"""magan.reference: kNN imputation on shared features (the demo's reference method), on data
whose right answer is known."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import pearsonr

from magan.errors import DataError
from magan.reference import knn_impute_shared


def test_knn_impute_recovers_a_function_of_the_shared_features() -> None:
    rng = np.random.default_rng(0)
    shared2 = rng.uniform(-2, 2, (1500, 2))
    hidden = np.sin(shared2[:, 0]) + shared2[:, 1] ** 2
    x2 = np.c_[hidden, shared2]  # domain 2: hidden marker, then the two shared ones
    shared1 = rng.uniform(-2, 2, (300, 2))
    x1 = np.c_[rng.normal(size=300), shared1[:, 1], shared1[:, 0]]  # other order, extra column
    out = knn_impute_shared(x1, x2, [(2, 1), (1, 2)], k=10)
    assert out.shape == (300, 3)
    truth = np.sin(shared1[:, 0]) + shared1[:, 1] ** 2
    assert pearsonr(out[:, 0], truth)[0] > 0.98


def test_knn_impute_k1_copies_the_nearest_row() -> None:
    x2 = np.array([[0.0, 100.0], [10.0, 200.0]])
    x1 = np.array([[1.0], [9.0], [4.0]])
    np.testing.assert_array_equal(knn_impute_shared(x1, x2, [(0, 0)], k=1), x2[[0, 1, 0]])
    # k=2 averages both rows.
    np.testing.assert_array_equal(knn_impute_shared(x1, x2, [(0, 0)], k=2), [[5.0, 150.0]] * 3)


@pytest.mark.parametrize(
    ("pairs", "match"),
    [
        ([], "empty"),
        ([(0, 2)], "out of range"),
        ([(-1, 0)], "out of range"),
        ([(0.5, 0)], "integer"),
    ],
)
def test_knn_impute_rejects_bad_pairs(pairs: list, match: str) -> None:
    with pytest.raises(DataError, match=match):
        knn_impute_shared(np.zeros((3, 1)), np.zeros((3, 2)), pairs)


def test_knn_impute_rejects_nan() -> None:
    x2 = np.array([[0.0, np.nan]])
    with pytest.raises(DataError, match=r"x2.*NaN"):
        knn_impute_shared(np.zeros((3, 1)), x2, [(0, 0)])
