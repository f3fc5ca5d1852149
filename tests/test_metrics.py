"""Metrics on small cases whose answers can be worked out by hand."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from magan import metrics
from magan.errors import DataError
from magan.metrics import (
    cluster_mapping,
    foscttm,
    label_preservation,
    label_transfer,
    marker_correlation,
    mixing_score,
    pair_error,
)

LINE = np.array([[0.0], [1.0], [2.0], [3.0]])


def two_clusters(n: int = 20, gap: float = 10.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n cells around 0 labelled 'a' and n around (gap, gap) labelled 'b'."""
    rng = np.random.default_rng(seed)
    x = np.vstack([rng.normal(0, 0.5, (n, 2)), rng.normal(gap, 0.5, (n, 2))])
    return x, np.array(["a"] * n + ["b"] * n)


# --------------------------------------------------------------------------- foscttm


def test_foscttm_is_zero_for_identical_data() -> None:
    x = np.random.default_rng(0).normal(size=(30, 3))
    assert foscttm(x, x) == 0.0


def test_foscttm_swapped_pair_by_hand() -> None:
    # Rows 0 and 1 swapped on a line: cells 0 and 1 each have exactly one of the 3 others closer
    # than their partner (1/3), cells 2 and 3 none; the same from the other side -> mean 1/6.
    x1 = LINE[[1, 0, 2, 3]]
    mean, per_1, per_2 = foscttm(x1, LINE, per_sample=True)
    assert mean == pytest.approx(1 / 6)
    np.testing.assert_allclose(per_1, [1 / 3, 1 / 3, 0, 0])
    np.testing.assert_allclose(per_2, [1 / 3, 1 / 3, 0, 0])


def test_foscttm_reversed_line_by_hand() -> None:
    # x1 = 3,2,1,0 against 0,1,2,3: ends have all 3 others closer, middles one of 3 -> 2/3.
    assert foscttm(LINE[::-1], LINE) == pytest.approx(2 / 3)


def test_foscttm_is_one_half_by_chance() -> None:
    rng = np.random.default_rng(1)
    assert foscttm(rng.normal(size=(400, 4)), rng.normal(size=(400, 4))) == pytest.approx(
        0.5, abs=0.03
    )


def test_foscttm_blocks_give_the_same_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(50, 3)), rng.normal(size=(50, 3))
    whole = foscttm(a, b)
    monkeypatch.setattr(metrics, "_BLOCK_ELEMENTS", 7 * 50)  # 7 rows per block
    assert foscttm(a, b) == whole


def test_foscttm_other_metric() -> None:
    assert foscttm(LINE[[1, 0, 2, 3]], LINE, metric="cityblock") == pytest.approx(1 / 6)


@pytest.mark.parametrize(
    ("a", "b", "match"),
    [
        (np.zeros((4, 2)), np.zeros((5, 2)), "shape"),
        (np.zeros((4, 2)), np.zeros((4, 3)), "shape"),
        (np.array([[0.0, np.nan], [1, 1]]), np.zeros((2, 2)), "NaN"),
        (np.zeros((1, 2)), np.zeros((1, 2)), "empty"),
        (np.zeros(4), np.zeros(4), "2-D"),
    ],
)
def test_foscttm_rejects_bad_input(a: np.ndarray, b: np.ndarray, match: str) -> None:
    with pytest.raises(DataError, match=match):
        foscttm(a, b)


# --------------------------------------------------------------------------- pair_error


def test_pair_error_by_hand() -> None:
    target = np.zeros((3, 2))
    pred = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 3.0]])
    assert pair_error(pred, target) == pytest.approx((3 * 1 + 9) / 6)
    np.testing.assert_allclose(pair_error(pred, target, per_feature=True), [1.0, 3.0])
    with pytest.raises(DataError, match="shape"):
        pair_error(pred, target[:2])


# --------------------------------------------------------------------------- label_transfer


def test_label_transfer_separable_clusters_is_perfect() -> None:
    ref, y = two_clusters(seed=0)
    query, yq = two_clusters(seed=1)
    res = label_transfer(query, ref, y, yq, k=5)
    assert res.accuracy == 1.0
    assert res.macro_f1 == 1.0
    assert res.per_class_f1 == {"a": 1.0, "b": 1.0}
    assert list(res.predicted) == list(yq)


def test_label_transfer_partial_by_hand() -> None:
    # k=1: query cells sit on reference points labelled 0, 0, 1; truth says 0, 1, 1.
    ref = np.array([[0.0], [10.0], [20.0]])
    res = label_transfer(ref + 0.1, ref, [0, 0, 1], [0, 1, 1], k=1)
    assert res.accuracy == pytest.approx(2 / 3)
    # class 0: precision 1/2, recall 1 -> F1 2/3; class 1: precision 1, recall 1/2 -> 2/3.
    assert res.per_class_f1 == pytest.approx({0: 2 / 3, 1: 2 / 3})
    assert res.macro_f1 == pytest.approx(2 / 3)


def test_label_transfer_checks_lengths() -> None:
    ref, y = two_clusters()
    with pytest.raises(DataError, match="labels_query"):
        label_transfer(ref, ref, y, y[:-1])
    with pytest.raises(DataError, match="features"):
        label_transfer(ref[:, :1], ref, y, y)


# --------------------------------------------------------------------------- cluster_mapping


def test_cluster_mapping_by_centres_and_knn() -> None:
    target, ty = two_clusters(seed=0)  # 'a' near 0, 'b' near 10
    # Source cluster 'A' lands near 'b' and 'B' near 'a'; 3 of B's 4 cells do.
    translated = np.array([[10.0, 10], [9, 10], [0, 0], [1, 0], [0, 1], [10, 9]])
    src = ["A", "A", "B", "B", "B", "B"]
    for method in ("centre", "knn"):
        res = cluster_mapping(
            translated, src, target, ty, method=method, k=3, expected={"A": "b", "B": "b"}
        )
        assert res.mapping == {"A": "b", "B": "a"}
        assert res.purity == pytest.approx({"A": 1.0, "B": 0.75})
        assert res.counts == {"A": {"b": 2}, "B": {"a": 3, "b": 1}}
        assert res.cluster_accuracy == 0.5  # A right, B wrong
        assert res.cell_accuracy == pytest.approx((2 + 1) / 6)


def test_cluster_mapping_accepts_centres_only() -> None:
    centres = np.array([[0.0, 0.0], [10.0, 10.0]])
    res = cluster_mapping(np.array([[1.0, 1.0], [9.0, 9.0]]), [1, 2], centres, ["x", "y"])
    assert res.mapping == {1: "x", 2: "y"}
    assert res.cluster_accuracy is None and res.cell_accuracy is None


# --------------------------------------------------------------------------- marker_correlation


def test_marker_correlation_known_relations() -> None:
    x = np.arange(1.0, 11.0)
    measured = np.c_[x, x, x, np.full(10, 0.1)]
    imputed = np.c_[2 * x + 1, x**3, -x, x]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a constant marker must not warn
        res = marker_correlation(imputed, measured, names=["lin", "cube", "neg", "const"])
    assert list(res["marker"]) == ["lin", "cube", "neg", "const"]
    np.testing.assert_allclose(res["pearson"][[0, 2]], [1.0, -1.0])
    assert 0.8 < res["pearson"][1] < 1.0  # monotone but not linear
    np.testing.assert_allclose(res["spearman"][:3], [1.0, 1.0, -1.0])
    assert np.isnan(res["pearson"][3]) and np.isnan(res["spearman"][3])


def test_marker_correlation_default_names_and_errors() -> None:
    x = np.random.default_rng(0).normal(size=(8, 3))
    assert list(marker_correlation(x, x)["marker"]) == ["0", "1", "2"]
    with pytest.raises(DataError, match="names"):
        marker_correlation(x, x, names=["a"])
    with pytest.raises(DataError, match="shape"):
        marker_correlation(x, x[:, :2])


# --------------------------------------------------------------------------- mixing, labels


def test_mixing_score_separate_domains_is_zero() -> None:
    a, _ = two_clusters()
    assert mixing_score(a, a + 100.0, k=5) == 0.0


def test_mixing_score_same_distribution_is_about_one() -> None:
    rng = np.random.default_rng(0)
    assert mixing_score(rng.normal(size=(600, 2)), rng.normal(size=(300, 2)), k=15) == (
        pytest.approx(1.0, abs=0.08)
    )


def test_mixing_score_twins_by_hand() -> None:
    # Each cell's nearest neighbour is its twin in the other domain: fraction 1 where 2/3 is
    # expected at random (2 other-domain cells among 3 others) -> 1.5.
    a = np.array([[0.0], [10.0]])
    assert mixing_score(a, a + 1, k=1) == pytest.approx(1.5)


def test_label_preservation_by_hand() -> None:
    # Domain a at 0 and 1 labelled x, domain b at 5 and 6 labelled y. k=1: each cell's
    # neighbour is the other cell of its own domain, same label -> 1.
    a = np.array([[0.0], [1.0]])
    b = np.array([[5.0], [6.0]])
    assert label_preservation(a, b, ["x", "x"], ["y", "y"], k=1) == 1.0
    # Across domains: with k=3 every cell sees both cells of the other domain, all other-labelled.
    assert label_preservation(a, b, ["x", "x"], ["y", "y"], k=3, across_domains=True) == 0.0
    # Same labels on both sides -> 1 across domains.
    assert label_preservation(a, b, ["x", "x"], ["x", "x"], k=3, across_domains=True) == 1.0
    # k=2 within the joint set: cell 0 sees 1 (x) and 5 (y) -> 1/2, likewise for each -> 1/2.
    assert label_preservation(a, b, ["x", "x"], ["y", "y"], k=2) == pytest.approx(0.5)


def test_label_preservation_across_needs_contact() -> None:
    a = np.array([[0.0], [1.0]])
    with pytest.raises(DataError, match="other domain"):
        label_preservation(a, a + 100, [0, 0], [0, 0], k=1, across_domains=True)


def test_duplicate_points_exclude_self() -> None:
    # Two identical cells: each must count the other as neighbour, never itself.
    a = np.zeros((2, 1))
    b = np.ones((2, 1)) * 50
    assert label_preservation(a, b, [0, 1], [2, 2], k=1) == pytest.approx(0.5)


def test_metrics_do_not_import_torch() -> None:
    import ast
    from pathlib import Path

    tree = ast.parse(Path(metrics.__file__).read_text())
    imported = {
        (node.module or "") if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    roots = {name.split(".")[0] for name in imported}
    assert roots <= {
        "__future__",
        "collections",
        "dataclasses",
        "typing",
        "numpy",
        "scipy",
        "sklearn",
        "magan",
    }
