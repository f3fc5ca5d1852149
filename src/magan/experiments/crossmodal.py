"""Experiment 5 (``cross-modal``): scGEM expression vs DNA methylation of the same 177 cells.

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
"""

from __future__ import annotations

from typing import Any

import numpy as np

from magan.baselines import gw_ot_align, manifold_alignment
from magan.experiments._harness import Experiment, Metrics, load_npz, make_gan, zscore
from magan.metrics import foscttm, label_transfer, pair_error

VARIANTS = ("magan", "magan_paper", "plain_gan")
N_PAIRS = 10


def settings(quick: bool) -> dict[str, Any]:
    return {"n_known_pairs": N_PAIRS, "n_steps": 200 if quick else 2000,
            "variants": ["magan", "plain_gan"] if quick else list(VARIANTS), "knn_k": 15,
            "baselines": ["manifold_alignment(n_components=5, mu=1, k=10)", "gw_ot_align()"]}


def load_scgem() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    e = load_npz("scgem", "scgem_expression.npz")
    m = load_npz("scgem", "scgem_methylation.npz")
    assert (e["labels"] == m["labels"]).all()
    return e["X"].astype(np.float32), m["X"].astype(np.float32), e["labels"].astype(str)


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


def run(seed: int, quick: bool = False) -> Metrics:
    s = settings(quick)
    x1, x2, y = load_scgem()
    n = len(y)
    rng = np.random.default_rng(seed)
    paired = rng.choice(n, N_PAIRS, replace=False)
    ev = np.setdiff1d(np.arange(n), paired)
    pairs = [(int(i), int(i)) for i in paired]

    out: Metrics = {}
    for variant in s["variants"]:
        model = make_gan(variant, seed, s["n_steps"])
        fit_kw = {} if variant == "plain_gan" else {"known_pairs": pairs}
        model.fit(x1, x2, **fit_kw)
        out[variant] = _scores(model.transform(x1), x2, y, ev, x2)
    ma = manifold_alignment(zscore(x1), zscore(x2), pairs, n_components=5, mu=1.0, k=10,
                            random_state=seed)
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
)
