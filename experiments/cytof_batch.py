"""Experiment 3 (``cytof-batch``): replicate CyTOF batches with one marker knocked out.

Part A, shaham Person1 Day1 vs Day2 baseline (the paper's CD45RA case). Values arcsinh(x/5).
The knocked-out marker is chosen by a fixed rule on Day1 only: the most bimodal marker, i.e.
the largest Otsu between-class variance ratio (between-class variance / total variance at the
best two-class threshold) among markers whose two classes each hold ≥ 20% of cells. In Day2
that marker is replaced by "baseline noise": values resampled (seeded) from Day2's own cells
below the Otsu threshold, so the column carries no information. The other 24 markers are the
shared features. Metrics:

- ``cd8_accuracy`` / ``cd8_f1``: kNN (k=15) fit on Day2's CD8 flag, applied to G12(Day1)
  (in Day2's space), scored against Day1's flag.
- ``mixing``: ``metrics.mixing_score(G12(Day1), Day2)``.
- ``impute_pearson``: Pearson between G21(Day2)[:, marker] and Day2's true (pre-knock-out)
  value of the marker.

Part B, levine32 donors H1 vs H2 (32 markers, arcsinh(x/5), all shared):
``levine_accuracy`` / ``levine_f1``: kNN on H2's 15 populations applied to G12(H1).

Baselines: ``no_alignment`` (Day1/H1 as measured, compared directly with Day2/H2) and
``knn_shared`` (each source cell replaced by the mean of its 10 nearest target cells on the
shared markers; for imputation, each Day2 cell gets the mean marker value of its 10 nearest
Day1 cells on the shared markers).

``harmony`` (``baselines.harmony_align``: joint PCA of the markers as measured, all of them,
standardised, 20 components, batch as covariate, ``random_state=seed``) gives a joint embedding,
not Day2's marker space, so it has only the metrics defined in a shared space: label transfer
with the kNN fit on the Day2 (H2) cells *of that embedding*, and mixing there. It imputes
nothing (no ``impute_pearson``). ``pca_uncorrected`` is the same joint PCA without Harmony: the
"before" for Harmony in its own space. The row needs harmonypy (skipped without it).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from experiments._harness import GAN_VARIANTS, Experiment, Metrics, load_npz, make_gan
from experiments.baselines import harmony_align, knn_impute_shared
from magan.metrics import label_transfer, marker_correlation, mixing_score

# The full run's GAN rows; the ablation rows of _harness on request (variants=).
VARIANTS = tuple(GAN_VARIANTS)
COFACTOR = 5.0
MIN_CLASS = 0.2
HARMONY_COMPONENTS = 20


def settings(quick: bool) -> dict[str, Any]:
    return {"n_steps": 200 if quick else 1000, "variants": list(VARIANTS),
            "levine": not quick, "cofactor": COFACTOR, "knn_k": 15,
            "harmony": {"n_components": HARMONY_COMPONENTS, "standardize": True, "theta": 2.0,
                        "random_state": "seed", "available": _has_harmony()},
            "knockout_rule": "max Otsu between/total variance on Day1, both classes >= 20%"}


def _has_harmony() -> bool:
    try:
        import harmonypy  # noqa: F401
    except ImportError:
        return False
    return True


def joint_pca(x1: np.ndarray, x2: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The PCA ``harmony_align`` starts from (standardised over both batches), uncorrected."""
    x = np.vstack([x1, x2]).astype(np.float64)
    x = x - x.mean(axis=0)
    sd = x.std(axis=0)
    x = x / np.where(sd > 0, sd, 1.0)
    u, sv, _ = np.linalg.svd(x, full_matrices=False)
    z = u[:, :n] * sv[:n]
    return z[: len(x1)], z[len(x1):]


def _harmony_rows(out: Metrics, a: np.ndarray, b: np.ndarray, ya, yb, prefix: str,
                  seed: int, mixing: bool) -> None:
    """Add ``pca_uncorrected`` and ``harmony`` scores (label transfer, mixing) to ``out``."""
    n = min(HARMONY_COMPONENTS, a.shape[1])
    h = harmony_align(a, b, n_components=n, random_state=seed)
    for name, (za, zb) in (("pca_uncorrected", joint_pca(a, b, n)),
                           ("harmony", (h.x1_embedded, h.x2_embedded))):
        r = _align_scores(za, zb, ya, yb, prefix)
        if mixing:
            r["mixing"] = mixing_score(za, zb)
        out.setdefault(name, {}).update(r)


def otsu(v: np.ndarray) -> tuple[float, float, float]:
    """(threshold, between/total variance ratio, fraction below) of the best 2-class split."""
    v = np.sort(v)
    n = len(v)
    total = v.var() * n
    best = (float(v[0]), 0.0, 0.0)
    if total <= 0:
        return best
    csum = np.cumsum(v)
    for k in range(int(MIN_CLASS * n), int((1 - MIN_CLASS) * n)):
        w0, w1 = k / n, (n - k) / n
        m0 = csum[k - 1] / k
        m1 = (csum[-1] - csum[k - 1]) / (n - k)
        ratio = n * w0 * w1 * (m0 - m1) ** 2 / total
        if ratio > best[1]:
            best = (float((v[k - 1] + v[k]) / 2), float(ratio), w0)
    return best


def choose_knockout(x: np.ndarray) -> int:
    """Index of the most bimodal marker of ``x`` (Otsu ratio, both classes >= 20%)."""
    return int(np.argmax([otsu(x[:, j])[1] for j in range(x.shape[1])]))


def load_shaham() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    a = load_npz("shaham_cytof_batch", "Person1Day1_baseline.npz")
    b = load_npz("shaham_cytof_batch", "Person1Day2_baseline.npz")
    t = np.arcsinh
    return (t(a["X"] / COFACTOR).astype(np.float32), t(b["X"] / COFACTOR).astype(np.float32),
            a["labels"].astype(int), b["labels"].astype(int))


def load_levine() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    a = load_npz("levine32", "levine32_H1.npz")
    b = load_npz("levine32", "levine32_H2.npz")
    mk = a["is_marker"].astype(bool)
    f = lambda d: np.arcsinh(d["X"][:, mk] / COFACTOR).astype(np.float32)  # noqa: E731
    return f(a), f(b), a["labels"].astype(str), b["labels"].astype(str), list(a["features"][mk])


def _align_scores(x1_in_2, x2, y1, y2, prefix: str) -> dict[str, float]:
    lt = label_transfer(x1_in_2, x2, y2, y1, k=15)
    return {f"{prefix}_accuracy": lt.accuracy, f"{prefix}_f1": lt.macro_f1}


def run(seed: int, quick: bool = False, variants: list[str] | None = None) -> Metrics:
    s = settings(quick)
    if variants is not None:
        s["variants"] = variants
    x1, x2_true, y1, y2 = load_shaham()
    m = choose_knockout(x1)
    thr = otsu(x2_true[:, m])[0]
    low = x2_true[x2_true[:, m] <= thr, m]
    rng = np.random.default_rng(seed)
    x2 = x2_true.copy()
    x2[:, m] = rng.choice(low, size=len(x2))
    shared = [(j, j) for j in range(x1.shape[1]) if j != m]
    truth = x2_true[:, [m]]

    def shaham_scores(x1_in_2, imputed):
        r = _align_scores(x1_in_2, x2, y1, y2, "cd8")
        r["mixing"] = mixing_score(x1_in_2, x2)
        if imputed is not None:  # no_alignment imputes nothing: no such metric
            r["impute_pearson"] = float(marker_correlation(imputed[:, None], truth)["pearson"][0])
        return r

    out: Metrics = {}
    out["no_alignment"] = shaham_scores(x1, None)
    out["knn_shared"] = shaham_scores(knn_impute_shared(x1, x2, shared),
                                      knn_impute_shared(x2, x1, shared)[:, m])
    for variant in s["variants"]:
        model = make_gan(variant, seed, s["n_steps"])
        fit_kw = {} if variant == "plain_gan" else {"shared_features": shared}
        model.fit(x1, x2, **fit_kw)
        out[variant] = shaham_scores(model.transform(x1), model.inverse_transform(x2)[:, m])
    if s["harmony"]["available"]:
        _harmony_rows(out, x1, x2, y1, y2, "cd8", seed, mixing=True)
    # which marker the rule picked (not a method; kept out of the tables)
    out["_knockout"] = {"marker_index": float(m), "otsu_ratio_day1": otsu(x1[:, m])[1]}

    if s["levine"]:
        l1, l2, ly1, ly2, _ = load_levine()
        all_shared = [(j, j) for j in range(l1.shape[1])]
        out["no_alignment"].update(_align_scores(l1, l2, ly1, ly2, "levine"))
        out["knn_shared"].update(_align_scores(knn_impute_shared(l1, l2, all_shared), l2, ly1,
                                               ly2, "levine"))
        for variant in s["variants"]:
            model = make_gan(variant, seed, s["n_steps"])
            fit_kw = {} if variant == "plain_gan" else {"shared_features": all_shared}
            model.fit(l1, l2, **fit_kw)
            out[variant].update(_align_scores(model.transform(l1), l2, ly1, ly2, "levine"))
        if s["harmony"]["available"]:
            _harmony_rows(out, l1, l2, ly1, ly2, "levine", seed, mixing=False)
    return out


EXPERIMENT = Experiment(
    name="cytof-batch",
    run=run,
    description="shaham Person1 Day1 vs Day2 baseline (arcsinh/5), the most bimodal marker "
                "replaced by negative-mode noise in Day2, other 24 markers shared; plus "
                "levine32 H1 vs H2 (all 32 shared) label transfer of 15 populations.",
    settings=settings,
)
