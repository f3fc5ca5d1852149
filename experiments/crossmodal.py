"""Experiment 5: two modalities measured on the same cells, with 10 known pairs.

``cross-modal``: scGEM expression vs DNA methylation of the same 177 cells.

Row i of the expression matrix (34 genes) and row i of the methylation matrix (27 loci) are
the same cell. Ten rows, drawn at random per seed, are given as known pairs; the other 167
are the evaluation set (the pairs never enter a metric). Metrics, on the evaluation cells:

- ``foscttm``: ``metrics.foscttm`` between G12(x1) and x2, both z-scored with x2's column
  means/sds (for manifold alignment: the two embeddings; for GW-OT: its barycentric projection).
- ``pair_error``: MSE between G12(x1) and its true partner in those z-units (not defined for
  manifold alignment, whose embedding is not x2's space).
- ``label_accuracy`` / ``label_f1``: kNN (k=15) on x2's reprogramming stages, applied to the
  translated evaluation cells.

Baselines: semi-supervised manifold alignment (Ham et al.) with the same 10 pairs, and GW-OT
(SCOT-style, ``baselines.gw_ot_align`` defaults), which uses no pairs.

``cross-modal-eccite`` (its own table, so that each run stays under 10 minutes): ECCITE-seq
RNA vs protein of the same 500 control PBMCs (CiteFuse's ``CITEseq_example``,
shared/data/citefuse_eccite; GPL-3 data, read from there only):

- domain 1, RNA: the 2,000 given highly variable genes, counts scaled to 10,000 per cell by
  each cell's total RNA count, log1p, then PCA to 50 components fit on RNA alone;
- domain 2, protein: the 49 ADT counts, CLR per cell (log1p, minus the cell's mean over
  proteins).

Ten random rows per seed are the known pairs (excluded from every metric; 490 evaluation cells).
``foscttm_12``: G12(RNA) vs protein in protein's z-units; ``foscttm_21``: G21(protein) vs RNA in
RNA's z-units (each is ``metrics.foscttm``, itself averaged over both sides of its distance
matrix). Manifold alignment has one common embedding, so its two values are the same number.
GW-OT: barycentric projection with the coupling (12) and with its transpose (21).
``pair_error_12/21``: MSE to the true partner in those z-units. Labels: only the 128 cells of
CiteFuse's ``sce_control_subset`` carry cluster labels (``SNF_W_clust``: two clusters of 97 and
31 cells, computed by CiteFuse from both modalities, not gated ground truth);
``label_accuracy/f1``: kNN (k=15) fit on those 128 protein cells, applied to the translated
labelled evaluation cells (the majority class alone scores 0.76 accuracy).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from experiments._harness import (
    GAN_VARIANTS,
    Experiment,
    Metrics,
    fit_ensemble,
    load_npz,
    make_gan,
    shared_data,
    zscore,
)
from experiments.baselines import gw_ot_align, manifold_alignment
from magan.metrics import foscttm, label_transfer, pair_error

# The full run's GAN rows; the ablation rows of _harness on request (variants=).
VARIANTS = tuple(GAN_VARIANTS)
N_PAIRS = 10
ECCITE_PCS = 50


def settings(quick: bool) -> dict[str, Any]:
    return {"n_known_pairs": N_PAIRS, "n_steps": 200 if quick else 2000,
            "variants": ["magan", "plain_gan"] if quick else list(VARIANTS), "knn_k": 15,
            "baselines": ["manifold_alignment(n_components=5, mu=1, k=10)", "gw_ot_align()"]}


def load_scgem() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    e = load_npz("scgem", "scgem_expression.npz")
    m = load_npz("scgem", "scgem_methylation.npz")
    assert (e["labels"] == m["labels"]).all()
    return e["X"].astype(np.float32), m["X"].astype(np.float32), e["labels"].astype(str)


def settings_eccite(quick: bool) -> dict[str, Any]:
    # 1,000 steps (scGEM: 2,000): 500 cells, and 5 seeds of 3 GANs stay under 10 minutes.
    return {"n_known_pairs": N_PAIRS, "n_steps": 200 if quick else 1000,
            "variants": ["magan", "plain_gan"] if quick else list(VARIANTS), "knn_k": 15,
            "rna": f"CP10k by total RNA count, log1p, PCA {ECCITE_PCS} (fit on RNA only)",
            "adt": "CLR (log1p minus the cell's mean over proteins)",
            "labels": "SNF_W_clust of sce_control_subset (128 of 500 cells)",
            "baselines": ["manifold_alignment(n_components=5, mu=1, k=10)", "gw_ot_align()"]}


def load_eccite() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(RNA 500 x 50 PCs, ADT 500 x 49 CLR, cluster labels; "" for the unlabelled cells)."""
    import csv

    rna = load_npz("citefuse_eccite", "citeseq_example_rna_hvg2000_counts.npz")
    adt = load_npz("citefuse_eccite", "citeseq_example_adt_counts.npz")
    ctrl = load_npz("citefuse_eccite", "control_adt_counts.npz")
    cells = rna["cells"].astype(str)
    assert (adt["cells"].astype(str) == cells).all()
    with open(shared_data("citefuse_eccite", "citeseq_example_cells.csv")) as f:
        total = {r["cell"]: float(r["rna_total"]) for r in csv.DictReader(f)}
    lib = np.array([total[c] for c in cells])
    x = np.log1p(rna["X"].astype(np.float64) / lib[:, None] * 1e4)
    x -= x.mean(axis=0)
    u, sv, _ = np.linalg.svd(x, full_matrices=False)
    x1 = (u[:, :ECCITE_PCS] * sv[:ECCITE_PCS]).astype(np.float32)
    la = np.log1p(adt["X"].astype(np.float64))
    x2 = (la - la.mean(axis=1, keepdims=True)).astype(np.float32)
    lab = dict(zip(ctrl["cells"].astype(str), ctrl["labels"].astype(str), strict=True))
    return x1, x2, np.array([lab.get(c, "") for c in cells])


def _eccite_scores(x1_in_2, x2_in_1, x1, x2, y, ev, translated: bool) -> dict[str, float]:
    """Metrics on evaluation rows ``ev``. ``translated``: G12(x1), G21(x2), scored in the
    target's z-units; otherwise ``x1_in_2``/``x2_in_1`` are x1's and x2's common embedding."""
    if translated:
        a12, b12 = zscore(x1_in_2, x2), zscore(x2, x2)
        a21, b21 = zscore(x2_in_1, x1), zscore(x1, x1)
    else:
        a12, b12 = x1_in_2, x2_in_1
        a21, b21 = x2_in_1, x1_in_2
    out = {"foscttm_12": foscttm(a12[ev], b12[ev]), "foscttm_21": foscttm(a21[ev], b21[ev])}
    if translated:
        out["pair_error_12"] = pair_error(a12[ev], b12[ev])
        out["pair_error_21"] = pair_error(a21[ev], b21[ev])
    ref = y != ""
    query = np.intersect1d(ev, np.flatnonzero(ref))
    lt = label_transfer(a12[query], b12[ref], y[ref], y[query], k=15)
    out["label_accuracy"] = lt.accuracy
    out["label_f1"] = lt.macro_f1
    return out


def _known_pairs(n: int, seed: int) -> tuple[list[tuple[int, int]], np.ndarray]:
    """``N_PAIRS`` seeded row pairs (i, i) as known pairs, and the rows left for evaluation."""
    paired = np.random.default_rng(seed).choice(n, N_PAIRS, replace=False)
    return [(int(i), int(i)) for i in paired], np.setdiff1d(np.arange(n), paired)


def _fit_gan(variant: str, seed: int, n_steps: int, x1: np.ndarray, x2: np.ndarray,
             pairs: list[tuple[int, int]]):
    """Fit one GAN row; the plain GAN gets no known pairs (it is the ablation).
    ``magan_ensemble3``: the mean of 3 default models (seeds 1000 * seed + k)."""
    if variant == "magan_ensemble3":
        return fit_ensemble(seed, n_steps, x1, x2, known_pairs=pairs)
    model = make_gan(variant, seed, n_steps)
    return model.fit(x1, x2, **({} if variant == "plain_gan" else {"known_pairs": pairs}))


def _manifold_alignment(x1: np.ndarray, x2: np.ndarray, pairs: list[tuple[int, int]],
                        seed: int):
    """The manifold-alignment baseline with the settings both datasets use (untuned)."""
    return manifold_alignment(zscore(x1), zscore(x2), pairs, n_components=5, mu=1.0, k=10,
                              random_state=seed)


def run_eccite(seed: int, quick: bool = False, variants: list[str] | None = None) -> Metrics:
    s = settings_eccite(quick)
    if variants is not None:
        s["variants"] = variants
    x1, x2, y = load_eccite()
    pairs, ev = _known_pairs(len(y), seed)
    out: Metrics = {}
    for variant in s["variants"]:
        model = _fit_gan(variant, seed, s["n_steps"], x1, x2, pairs)
        out[variant] = _eccite_scores(model.transform(x1), model.inverse_transform(x2), x1, x2,
                                      y, ev, True)
    ma = _manifold_alignment(x1, x2, pairs, seed)
    out["manifold_alignment"] = _eccite_scores(ma.x1_embedded, ma.x2_embedded, x1, x2, y, ev,
                                               False)
    if not quick:
        gw = gw_ot_align(x1, x2)
        t21 = gw.coupling.T / gw.coupling.sum(axis=0)[:, None]
        out["gw_ot"] = _eccite_scores(gw.x1_in_2, t21 @ x1, x1, x2, y, ev, True)
    return out


def _scores(x1_in_2: np.ndarray, x2: np.ndarray, y: np.ndarray, ev: np.ndarray,
            z_ref: np.ndarray | None) -> dict[str, float]:
    """Metrics on evaluation rows ``ev``; ``z_ref`` (x2) gives the z-units, None = as given."""
    a = zscore(x1_in_2, z_ref) if z_ref is not None else x1_in_2
    b = zscore(x2, z_ref) if z_ref is not None else x2
    lt = label_transfer(a[ev], b, y, y[ev], k=15)
    out = {"foscttm": foscttm(a[ev], b[ev]), "label_accuracy": lt.accuracy,
           "label_f1": lt.macro_f1}
    if z_ref is not None:  # an embedding is not x2's space: no pair error
        out["pair_error"] = pair_error(a[ev], b[ev])
    return out


def run(seed: int, quick: bool = False, variants: list[str] | None = None) -> Metrics:
    s = settings(quick)
    if variants is not None:
        s["variants"] = variants
    x1, x2, y = load_scgem()
    pairs, ev = _known_pairs(len(y), seed)

    out: Metrics = {}
    for variant in s["variants"]:
        model = _fit_gan(variant, seed, s["n_steps"], x1, x2, pairs)
        out[variant] = _scores(model.transform(x1), x2, y, ev, x2)
    ma = _manifold_alignment(x1, x2, pairs, seed)
    out["manifold_alignment"] = _scores(ma.x1_embedded, ma.x2_embedded, y, ev, None)
    if not quick:
        out["gw_ot"] = _scores(gw_ot_align(x1, x2).x1_in_2, x2, y, ev, x2)
    return out


EXPERIMENT = Experiment(
    name="cross-modal",
    run=run,
    description="scGEM expression (34) vs methylation (27), same 177 cells; 10 random known "
                "pairs per seed, metrics on the other 167 cells in x2's z-units.",
    settings=settings,
    extra_variants=("magan_ensemble3",),
)

EXPERIMENT_ECCITE = Experiment(
    name="cross-modal-eccite",
    run=run_eccite,
    description="ECCITE-seq RNA (2000 HVG, log1p CP10k, PCA 50 fit on RNA) vs protein (49 ADT, "
                "CLR), same 500 PBMCs; 10 random known pairs per seed, metrics on the other 490; "
                "labels: CiteFuse SNF_W_clust on 128 cells.",
    settings=settings_eccite,
    extra_variants=("magan_ensemble3",),
)
