"""The benchmark battery (issue 18): MAGAN's defaults against doing nothing and the peers.

    python experiments/battery.py [--seeds 0 1 2] [--jobs 2] [--quick] [--tasks ...] [--out DIR]
    python -m experiments.battery ...     # the same, from the repository root
    make battery

Each (task, seed) runs in its own worker process with one torch/BLAS thread. The MAGAN row is
``MAGAN(seed=seed, progress=False)`` with its defaults, as a user would call it: only the
data-specific inputs (shared features, known pairs) are set, nothing tuned per task; ``--quick``
lowers ``n_steps`` to 300 (a smoke test, not a result). Every (task, seed, method) goes as one
JSON line to ``DIR/battery.jsonl`` (metrics, seconds, MAGAN's ``diagnostics_`` where it has
them) and the table to ``DIR/battery.md``; ``--table-only`` reprints it from the JSON lines.

The table has one row per (task, headline metric): MAGAN's default (mean ± sd over seeds), no
alignment, kNN on the shared features, GW-OT (SCOT-style, ``baselines.gw_ot_align`` defaults),
Harmony (``baselines.harmony_align`` on the shared features, 20 components, ``random_state``
the seed), the plain GAN where the paper has one, the verdict of MAGAN's self-diagnosis
(``model.diagnostics_.verdict``; "-" while fit does not set it) and whether MAGAN is at least as
good as doing nothing. "Doing nothing" is the raw cells where both domains have the same
features; for imputation it is kNN on the shared features (looking up the unaligned cells);
between modalities it is chance (FOSCTTM 0.5; label transfer: every cell given the reference's
most frequent label). GW-OT needs no seed; its projections are cached under ``DIR/cache`` by a
hash of the inputs (delete the folder to recompute).

Expected run time: the full battery (3 seeds, ``--jobs 2``, 3,000-step defaults) about 50
minutes on this project's 2-core machine when nothing else runs: 12 GAN fits per seed (11
default, 1 plain GAN) at ~45 ms a step on one thread, ~2.5 min each (scrna-eccite, 2,000
genes: ~4x that), plus ~10 CPU-minutes of GW-OT once (cached). That is above issue 18's
30-minute aim; more cores scale it (``--jobs N``). ``--quick --seeds 0 --jobs 2``: 14.5 min
measured with the 2 cores shared with other jobs (10 CPU-minutes, two thirds of it GW-OT);
4 min once GW-OT is cached.

Tasks (data in ../shared/data, read through ``experiments._harness``; loaders reused from
``experiments``):

1. ``levine32-h1h2``: levine32 donors H1 vs H2, 750 cells each, arcsinh(x/5), all 32 markers
   shared. Label transfer accuracy: kNN (k=15) fit on H2's 15 populations, applied to G12(H1);
   no alignment = the raw H1 cells (0.852).
2. ``levine32-panels``: the two-panel design of ``experiments/cytof_panels.py`` (16 shared
   markers, 8 per panel); one fixed group of 4 shared markers (the experiment's group 0,
   ``shared[0::4]``) is hidden from panel 2 and imputed by G21(panel 2); mean Pearson with H2's
   measured values, against kNN on the 12 remaining shared markers.
3. ``shaham``: ``experiments/cytof_batch.py`` part A: Day1 vs Day2, the most bimodal marker
   (Otsu rule on Day1) replaced in Day2 by negative-mode noise, drawn with a fixed data seed
   (0) so that every seed sees the same data and only the model's seed varies; the other 24
   markers shared. Rows: CD8 label transfer accuracy (kNN k=15 fit on Day2's flag applied to
   G12(Day1)) and the knocked-out marker's imputation Pearson (G21(Day2) vs Day2's measured
   values; reference kNN on the shared markers).
4. ``cytonorm``: CytoNorm's plates PTLG021 (domain 1) and PTLG034 (domain 2), volunteer 1,
   Control_1, 1,000 cells each, read from the original FCS files with ``magan.io.read``; the
   37 antigen channels (``marker_channels``: no barcodes, DNA, beads, viability, Time or
   Event_length), arcsinh(x/5). Ground truth: the 3 most bimodal markers of plate A (largest
   Otsu ratio, ``cytof_batch.otsu``: CD3, CD11b, CD16) are removed from plate B and imputed by
   G21(plate B); mean Pearson with plate B's measured values, against kNN on the 34 shared
   markers. Second
   row: ``metrics.mixing_score`` of G12(plate A) with plate B (no alignment: the raw shared
   markers); third: the self-diagnosis' structure score (``diag_structure``, MAGAN only). Every
   MAGAN line's JSON holds all its diagnostics (``diag_<check>`` among the metrics).
5. ``scrna-eccite``: an scRNA same-genes batch task built from dev-visible data. ECCITE's 500
   control PBMCs (``citeseq_example_rna_hvg2000_counts.npz``: 2,000 genes, raw counts); cell
   types from the protein side: CLR of the 49 ADT counts (``crossmodal.load_eccite``),
   k-means (k=6, ``random_state=0``, 10 starts). The cells are split into two random halves
   (fixed seed 0); batch 2 gets a synthetic batch effect on its counts: per-gene factors
   exp(N(0, 0.5²)) (rounded) and binomial down-sampling to 60% depth; both batches then
   log1p(CP10k), as DataFrames with the gene names. ``MAGAN().fit(b1, b2,
   shared_features="auto")``. Label transfer accuracy, kNN (k=5) fit on batch 2's labels,
   applied to transform(b1), both projected on batch 2's first 50 principal components (as
   scRNA analyses do: in raw gene space the same kNN scores 0.49 even with no batch effect,
   the protein clusters drowned in count noise); no alignment: the same on the raw b1;
   Harmony: the kNN in Harmony's joint space. (Mimics a held-out HSC case where MAGAN scored
   0.34 against 0.73 for doing nothing.)
6. ``scgem``: ``experiments/crossmodal.py``: expression vs methylation of the same 177 cells,
   10 seeded known pairs; FOSCTTM (lower is better) on the other 167, in x2's z-units.
7. ``eccite``: ``crossmodal.load_eccite``: RNA (50 PCs) vs protein (49 ADT, CLR), 500 cells,
   10 seeded known pairs; FOSCTTM of G12(RNA) vs protein (``foscttm_12``; the JSON also has
   ``foscttm_21``, pair errors and labels).
8. ``digits``: ``experiments/digits.py``: MNIST 3s and 7s vs the same rotated 120°, per-domain
   PCA 50, one seeded known pair; the fraction of G12(x1) a logistic regression trained on the
   rotated domain calls the right digit.
9. ``gaussians``: ``experiments/gaussians.py``: ``datasets.three_gaussians`` (1,000 per
   cluster, the data seed = the seed), coordinate 0 shared; ``all_right``: 1 when all three
   clusters land on the expected cluster (nearest centre; the mean over seeds is the fraction
   of seeds right, the paper's 10/10), with the plain GAN beside it.
10. ``pbmc``: Pamona's PBMC scRNA (1,985) vs scATAC (1,919), unpaired, 50 components each, no
    pairs and no shared features (``MAGAN().fit(rna, atac)``). Label transfer accuracy on the
    4 cell types both sides have: kNN (k=15) fit on the ATAC cells of those types, applied to
    G12(RNA) of those types.
11. ``scnmt``: Pamona's scNMT RNA (597) vs methylation (725), 30 components each, unpaired;
    stage transfer (4 stages, kNN k=15 fit on methylation's stages applied to G12(RNA)).

A task is a ``Task`` in ``TASKS``: a loader returning a ``Problem`` (the two domains, the fit
inputs, the shared columns, a scorer of a method's ``Views``) plus the rows and baselines.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import re
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

QUICK_STEPS = 300
DATA_SEED = 0  # the data set-ups drawn at random (knock-out noise, scRNA split) use this seed
METHODS = ("magan", "no_alignment", "knn_shared", "gw_ot", "harmony", "plain_gan")
HEADERS = {"magan": "magan default", "no_alignment": "no alignment",
           "knn_shared": "kNN on shared", "gw_ot": "GW-OT", "harmony": "Harmony",
           "plain_gan": "plain GAN"}
REFERENCES = {"no_alignment": "", "knn_shared": " vs kNN", "chance": " vs chance"}

# Run as a script (python experiments/battery.py), the folder itself is on sys.path, not the
# repository root that `import experiments` needs; spawned workers inherit the fixed path.
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)


# ---------------------------------------------------------------------------------- framework


@dataclass
class Views:
    """One method's output in the spaces a task scores.

    ``x1_in_2``: domain-1 cells in the space of ``x2_ref`` (G12(x1) beside x2, or a joint
    embedding of both); ``x2_in_1``: domain-2 cells in domain 1's features (imputation), or
    None. ``native``: ``x1_in_2`` is in domain 2's features (False for a joint embedding)."""

    x1_in_2: np.ndarray | None
    x2_ref: np.ndarray | None
    x2_in_1: np.ndarray | None = None
    native: bool = True


@dataclass
class Problem:
    """What a task's loader returns: the inputs ``MAGAN().fit`` gets (``x1``, ``x2``,
    ``fit_kw``), the shared columns (pairs (column in x1, column in x2)) for the baselines, the
    scorer of a method's views, and the chance level of metrics with no "no alignment".
    ``same_features``: both domains have the same columns in the same units (no alignment is
    then the cells as measured, and Harmony uses every column), else only the shared ones."""

    x1: Any
    x2: Any
    score: Callable[[Views], dict[str, float]]
    fit_kw: dict[str, Any] = field(default_factory=dict)
    shared: list[tuple[int, int]] | None = None
    chance: dict[str, float] = field(default_factory=dict)
    same_features: bool = False


@dataclass(frozen=True)
class Row:
    """A table row: ``metric`` of the scorer, its direction and what "doing nothing" is
    (a method of ``METHODS``, ``"chance"``, or ``""``: no comparison)."""

    metric: str
    higher: bool = True
    reference: str = "no_alignment"


@dataclass(frozen=True)
class Task:
    name: str
    load: Callable[[int], Problem]  # seed -> problem (the seed draws known pairs, if any)
    rows: tuple[Row, ...]
    baselines: tuple[str, ...]  # of METHODS[1:]
    cost: float  # rough minutes per seed at full length: the longest jobs start first


def _label_scorer(y1: np.ndarray, y2: np.ndarray, k: int,
                  keep: Sequence[str] | None = None,
                  pca: int | None = None) -> Callable[[Views], dict[str, float]]:
    """Label transfer: kNN (``k``) fit on domain 2's labels, applied to domain 1's cells in
    domain 2's space (only the cells whose label is in ``keep``, on both sides, if given).
    ``pca``: the kNN runs on that many principal components of domain 2's reference cells
    (both sides projected on them), as scRNA practice does: on 2,000 raw log-count genes the
    neighbours are noise-dominated."""
    from magan.metrics import label_transfer

    q = np.isin(y1, keep) if keep is not None else np.ones(len(y1), bool)
    r = np.isin(y2, keep) if keep is not None else np.ones(len(y2), bool)

    def score(v: Views) -> dict[str, float]:
        a, b = np.asarray(v.x1_in_2, np.float64), np.asarray(v.x2_ref, np.float64)
        if pca is not None:
            mean = b.mean(axis=0)
            basis = np.linalg.svd(b - mean, full_matrices=False)[2][:pca]
            a, b = (a - mean) @ basis.T, (b - mean) @ basis.T
        lt = label_transfer(a[q], b[r], y2[r], y1[q], k=k)
        return {"accuracy": lt.accuracy, "macro_f1": lt.macro_f1}

    return score


def _majority(y1: np.ndarray, y2: np.ndarray, keep: Sequence[str] | None = None) -> float:
    """Accuracy of labelling every query cell with the reference's most frequent label."""
    if keep is not None:
        y1, y2 = y1[np.isin(y1, keep)], y2[np.isin(y2, keep)]
    values, counts = np.unique(y2, return_counts=True)
    return float(np.mean(y1 == values[np.argmax(counts)]))


def _pearson(imputed: np.ndarray, truth: np.ndarray) -> float:
    from magan.metrics import marker_correlation

    return float(np.nanmean(marker_correlation(imputed, truth)["pearson"]))


def _all_shared(d: int) -> list[tuple[int, int]]:
    return [(j, j) for j in range(d)]


# -------------------------------------------------------------------------------------- tasks


def load_levine_h1h2(seed: int) -> Problem:
    from experiments.cytof_batch import load_levine

    h1, h2, y1, y2, _ = load_levine()
    shared = _all_shared(h1.shape[1])
    return Problem(h1, h2, _label_scorer(y1, y2, 15), {"shared_features": shared}, shared,
                   same_features=True)


def load_levine_panels(seed: int) -> Problem:
    from experiments.cytof_batch import load_levine
    from experiments.cytof_panels import groups_of, panels

    h1, h2, _, _, names = load_levine()
    shared, only1, only2 = panels(names)
    hidden = groups_of(names, shared, False, 4)[0]
    cols1 = shared + only1
    cols2 = [j for j in shared if j not in hidden] + only2
    pairs = [(cols1.index(j), c) for c, j in enumerate(cols2) if j in shared]
    at, truth = [cols1.index(j) for j in hidden], h2[:, hidden]

    def score(v: Views) -> dict[str, float]:
        return {"mean_pearson": _pearson(v.x2_in_1[:, at], truth)} if v.x2_in_1 is not None \
            else {}

    return Problem(h1[:, cols1], h2[:, cols2], score, {"shared_features": pairs}, pairs)


def load_shaham_knockout(seed: int) -> Problem:
    from experiments.cytof_batch import choose_knockout, load_shaham, otsu

    x1, measured, y1, y2 = load_shaham()
    m = choose_knockout(x1)
    negative = measured[measured[:, m] <= otsu(measured[:, m])[0], m]
    x2 = measured.copy()
    x2[:, m] = np.random.default_rng(DATA_SEED).choice(negative, size=len(x2))
    shared = [(j, j) for j in range(x1.shape[1]) if j != m]
    transfer = _label_scorer(y1, y2, 15)

    def score(v: Views) -> dict[str, float]:
        out = {f"cd8_{k}": val for k, val in transfer(v).items()}
        if v.x2_in_1 is not None:
            out["impute_pearson"] = _pearson(v.x2_in_1[:, [m]], measured[:, [m]])
        return out

    return Problem(x1, x2, score, {"shared_features": shared}, shared, same_features=True)


CYTONORM_PLATES = ("Gates_PTLG021_Unstim_Control_1.fcs", "Gates_PTLG034_Unstim_Control_1.fcs")
# $PnS names that are no antigen, and channels (isotopes) that carry no marker in this panel.
_NOT_ANTIGEN = re.compile(r"^(BC\d+|DNA\d*|beadDist|Time|Event_length|viability|live|dead)$",
                          re.IGNORECASE)
_NOT_MARKER_CHANNEL = re.compile(r"^(Time|Event_length|Ce140|Ir19[13]|Pt19[4-8]|beadDist)",
                                 re.IGNORECASE)


def marker_channels(channels: Sequence[str], antigens: Sequence[str]) -> np.ndarray:
    """Which channels measure an antigen: a non-empty $PnS name that is no barcode (BC1...),
    DNA intercalator (DNA1/2, Ir191/193), bead (beadDist, Ce140), viability (Pt195) or
    acquisition parameter (Time, Event_length); metal-only channels (no $PnS) are dropped."""
    return np.array([bool(a) and not _NOT_ANTIGEN.match(a) and not _NOT_MARKER_CHANNEL.match(c)
                     for c, a in zip(channels, antigens, strict=True)])


def load_cytonorm(seed: int) -> Problem:
    from experiments._harness import shared_data
    from experiments.cytof_batch import otsu
    from magan.io import read

    plates = []
    for name in CYTONORM_PLATES:
        adata = read(shared_data("cytonorm_gates", name))
        var = adata.var
        keep = marker_channels(list(var["channel"]), list(var["antigen"].fillna("")))
        plates.append(np.arcsinh(np.asarray(adata.X)[:, keep] / 5.0).astype(np.float32))
    a, b = plates
    hidden = [int(j) for j in np.argsort([-otsu(a[:, j])[1] for j in range(a.shape[1])])[:3]]
    kept = [j for j in range(a.shape[1]) if j not in hidden]
    pairs = [(j, c) for c, j in enumerate(kept)]

    def score(v: Views) -> dict[str, float]:
        out = {}
        if v.x2_in_1 is not None:
            out["impute_pearson"] = _pearson(v.x2_in_1[:, hidden], b[:, hidden])
        if v.x1_in_2 is not None:
            from magan.metrics import mixing_score

            out["mixing"] = mixing_score(v.x1_in_2, v.x2_ref)
        return out

    return Problem(a, b[:, kept], score, {"shared_features": pairs}, pairs)


def scrna_batches() -> tuple[Any, Any, np.ndarray, np.ndarray]:
    """The scRNA same-genes task's two batches (DataFrames, log1p CP10k) and their labels."""
    import pandas as pd
    from sklearn.cluster import KMeans

    from experiments._harness import load_npz
    from experiments.crossmodal import load_eccite

    rna = load_npz("citefuse_eccite", "citeseq_example_rna_hvg2000_counts.npz")
    labels = KMeans(6, random_state=0, n_init=10).fit_predict(load_eccite()[1]).astype(str)
    counts = rna["X"].astype(np.float64)
    rng = np.random.default_rng(DATA_SEED)
    order = rng.permutation(len(counts))
    half1, half2 = order[: len(order) // 2], order[len(order) // 2:]
    shifted = np.rint(counts[half2] * rng.lognormal(0.0, 0.5, size=counts.shape[1]))
    shifted = rng.binomial(shifted.astype(np.int64), 0.6).astype(np.float64)
    genes = [str(g) for g in rna["features"]]

    def log_cp10k(c: np.ndarray) -> Any:
        x = np.log1p(c / np.maximum(c.sum(axis=1, keepdims=True), 1.0) * 1e4)
        return pd.DataFrame(x.astype(np.float32), columns=genes)

    return log_cp10k(counts[half1]), log_cp10k(shifted), labels[half1], labels[half2]


def load_scrna(seed: int) -> Problem:
    b1, b2, y1, y2 = scrna_batches()
    return Problem(b1, b2, _label_scorer(y1, y2, 5, pca=50), {"shared_features": "auto"},
                   _all_shared(b1.shape[1]), same_features=True)


def load_scgem(seed: int) -> Problem:
    from experiments import crossmodal

    x1, x2, y = crossmodal.load_scgem()
    pairs, ev = crossmodal._known_pairs(len(y), seed)

    def score(v: Views) -> dict[str, float]:
        return crossmodal._scores(v.x1_in_2, x2, y, ev, x2)

    return Problem(x1, x2, score, {"known_pairs": pairs}, chance={"foscttm": 0.5})


def load_eccite_pairs(seed: int) -> Problem:
    from experiments import crossmodal

    x1, x2, y = crossmodal.load_eccite()
    pairs, ev = crossmodal._known_pairs(len(y), seed)

    def score(v: Views) -> dict[str, float]:
        return crossmodal._eccite_scores(v.x1_in_2, v.x2_in_1, x1, x2, y, ev, True)

    return Problem(x1, x2, score, {"known_pairs": pairs},
                   chance={"foscttm_12": 0.5, "foscttm_21": 0.5})


def load_digits_pair(seed: int) -> Problem:
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression

    from experiments.digits import load_digits

    x1_pix, x2_pix, y = load_digits()
    z1, z2 = (PCA(50, random_state=0).fit_transform(x).astype(np.float32)
              for x in (x1_pix, x2_pix))
    clf = LogisticRegression(max_iter=2000).fit(z2, y)
    i = int(np.random.default_rng(seed).integers(len(y)))

    def score(v: Views) -> dict[str, float]:
        return {"digit_accuracy": float(clf.score(v.x1_in_2, y))}

    return Problem(z1, z2, score, {"known_pairs": [(i, i)]},
                   chance={"digit_accuracy": _majority(y, y)})


def load_gaussians(seed: int) -> Problem:
    from magan.datasets import three_gaussians
    from magan.metrics import cluster_mapping

    data = three_gaussians(n_per_cluster=1000, seed=seed)

    def score(v: Views) -> dict[str, float]:
        cm = cluster_mapping(v.x1_in_2, data.labels1, v.x2_ref, data.labels2,
                             expected=data.expected)
        return {"all_right": float(cm.cluster_accuracy == 1.0),
                "cluster_accuracy": cm.cluster_accuracy, "cell_accuracy": cm.cell_accuracy}

    return Problem(data.x1, data.x2, score, {"shared_features": [(0, 0)]}, [(0, 0)],
                   same_features=True)


def _unpaired(file1: str, file2: str) -> Problem:
    """Pamona's unpaired modalities: label transfer on the labels both sides have."""
    from experiments._harness import load_npz

    d1 = load_npz("pamona_pbmc_scnmt", file1)
    d2 = load_npz("pamona_pbmc_scnmt", file2)
    y1, y2 = d1["labels"].astype(str), d2["labels"].astype(str)
    both = sorted(set(y1) & set(y2))
    return Problem(d1["X"].astype(np.float32), d2["X"].astype(np.float32),
                   _label_scorer(y1, y2, 15, both), chance={"accuracy": _majority(y1, y2, both)})


TASKS: tuple[Task, ...] = (
    Task("levine32-h1h2", load_levine_h1h2, (Row("accuracy"),),
         ("no_alignment", "knn_shared", "gw_ot", "harmony"), 3),
    Task("levine32-panels", load_levine_panels, (Row("mean_pearson", reference="knn_shared"),),
         ("knn_shared",), 2),
    Task("shaham", load_shaham_knockout,
         (Row("cd8_accuracy"), Row("impute_pearson", reference="knn_shared")),
         ("no_alignment", "knn_shared", "gw_ot", "harmony"), 4),
    Task("cytonorm", load_cytonorm,
         (Row("impute_pearson", reference="knn_shared"), Row("mixing"),
          Row("diag_structure", reference="")),
         ("no_alignment", "knn_shared", "gw_ot", "harmony"), 3),
    Task("scrna-eccite", load_scrna, (Row("accuracy"),),
         ("no_alignment", "knn_shared", "gw_ot", "harmony"), 2.5),
    Task("scgem", load_scgem, (Row("foscttm", higher=False, reference="chance"),),
         ("gw_ot",), 2),
    Task("eccite", load_eccite_pairs, (Row("foscttm_12", higher=False, reference="chance"),),
         ("gw_ot",), 2),
    Task("digits", load_digits_pair, (Row("digit_accuracy", reference="chance"),),
         ("gw_ot",), 3),
    Task("gaussians", load_gaussians, (Row("all_right"),),
         ("no_alignment", "knn_shared", "plain_gan"), 4),
    Task("pbmc", lambda seed: _unpaired("pbmc_rna.npz", "pbmc_atac.npz"),
         (Row("accuracy", reference="chance"),), ("gw_ot",), 4),
    Task("scnmt", lambda seed: _unpaired("scnmt_rna.npz", "scnmt_met.npz"),
         (Row("accuracy", reference="chance"),), ("gw_ot",), 2.5),
)
TASK_NAMES = tuple(t.name for t in TASKS)


# ------------------------------------------------------------------------------------ methods


def _as_other(x: np.ndarray, pairs: Sequence[tuple[int, int]], d_other: int) -> np.ndarray | None:
    """``x``'s columns in the other domain's order, if every column of that domain is shared."""
    source = {j: i for i, j in pairs}
    if sorted(source) != list(range(d_other)):
        return None
    return x[:, [source[j] for j in range(d_other)]]


def _cached_gw(a1: np.ndarray, a2: np.ndarray, cache: Path) -> tuple[np.ndarray, np.ndarray]:
    """GW-OT's projections both ways (``gw_ot_align`` defaults), cached by the inputs' hash."""
    from experiments.baselines import gw_ot_align

    digest = hashlib.sha1()
    for a in (a1, a2):
        digest.update(repr(a.shape).encode())
        digest.update(np.ascontiguousarray(a, dtype=np.float64).tobytes())
    path = cache / f"gw_{digest.hexdigest()[:20]}.npz"
    if path.exists():
        with np.load(path) as f:
            return f["x1_in_2"], f["x2_in_1"]
    gw = gw_ot_align(a1, a2)
    x2_in_1 = (gw.coupling.T / gw.coupling.sum(axis=0)[:, None]) @ a1
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(tmp, x1_in_2=gw.x1_in_2, x2_in_1=x2_in_1)
    os.replace(tmp, path)
    return gw.x1_in_2, x2_in_1


def _diagnostics(model: Any) -> tuple[str, Any]:
    """(verdict, JSON-able diagnostics) of a fitted model; ("-", None) without them."""
    diag = getattr(model, "diagnostics_", None)
    if diag is None:
        return "-", None
    if hasattr(diag, "to_dict"):
        data = diag.to_dict()
    elif dataclasses.is_dataclass(diag):
        data = dataclasses.asdict(diag)
    elif isinstance(diag, Mapping):
        data = dict(diag)
    else:
        data = {"repr": repr(diag)}
    verdict = getattr(diag, "verdict", None)
    if verdict is None and isinstance(diag, Mapping):
        verdict = diag.get("verdict")
    return str(verdict) if verdict is not None else "-", data


def _diagnostic_scores(data: Any) -> dict[str, float]:
    """``diag_<check>``: each check's number (its ``value``, or the ``min`` of its values) from
    the diagnostics' ``checks`` list, where the diagnostics have one; else nothing."""
    out: dict[str, float] = {}
    checks = data.get("checks", []) if isinstance(data, Mapping) else []
    for check in checks if isinstance(checks, list) else []:
        value = check.get("value") if isinstance(check, Mapping) else None
        if isinstance(value, Mapping):
            value = value.get("min")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[f"diag_{check.get('name')}"] = float(value)
    return out


def _run_method(method: str, p: Problem, seed: int, quick: bool,
                cache: Path) -> tuple[Views, dict[str, Any]]:
    """The views of one method on problem ``p`` and extra facts for its JSON line."""
    a1, a2 = np.asarray(p.x1, dtype=np.float32), np.asarray(p.x2, dtype=np.float32)
    shared = p.shared or []
    flipped = [(j, i) for i, j in shared]
    if method in ("magan", "plain_gan"):
        from magan.estimator import MAGAN

        steps = {"n_steps": QUICK_STEPS} if quick else {}
        if method == "magan":
            model = MAGAN(seed=seed, progress=False, **steps).fit(p.x1, p.x2, **p.fit_kw)
        else:
            model = MAGAN.plain_gan(seed=seed, progress=False, **steps).fit(p.x1, p.x2)
        verdict, diag = _diagnostics(model)
        views = Views(np.asarray(model.transform(p.x1)), a2,
                      np.asarray(model.inverse_transform(p.x2)))
        return views, {"n_steps": model.n_steps_, "verdict": verdict, "diagnostics": diag}
    if method == "no_alignment":
        if p.same_features:
            return Views(a1, a2, a2), {}
        return Views(_as_other(a1, shared, a2.shape[1]), a2,
                     _as_other(a2, flipped, a1.shape[1])), {}
    if method == "knn_shared":
        from experiments.baselines import knn_impute_shared

        return Views(knn_impute_shared(a1, a2, shared), a2,
                     knn_impute_shared(a2, a1, flipped)), {}
    if method == "gw_ot":
        x1_in_2, x2_in_1 = _cached_gw(a1, a2, cache)
        return Views(x1_in_2, a2, x2_in_1), {}
    if method == "harmony":
        from experiments.baselines import harmony_align

        s = np.asarray(_all_shared(a1.shape[1]) if p.same_features else shared)
        h = harmony_align(a1[:, s[:, 0]], a2[:, s[:, 1]], n_components=min(20, len(s)),
                          random_state=seed)
        return Views(h.x1_embedded, h.x2_embedded, None, native=False), {}
    raise ValueError(f"unknown method {method!r}")


def run_job(task_name: str, seed: int, quick: bool, cache: str) -> list[dict[str, Any]]:
    """Every method of one (task, seed), one torch thread: a JSON-able record per method."""
    import warnings

    import torch

    torch.set_num_threads(1)
    warnings.simplefilter("ignore")  # constant-feature and convergence notes, per fit
    task = next(t for t in TASKS if t.name == task_name)
    base = {"task": task_name, "seed": int(seed), "quick": bool(quick)}
    t0 = time.perf_counter()
    try:
        problem = task.load(int(seed))
    except Exception as exc:  # e.g. DataMissing: the row says so instead of the whole run failing
        return [{**base, "method": "_load", "error": f"{type(exc).__name__}: {exc}",
                 "seconds": round(time.perf_counter() - t0, 2)}]
    records = [{**base, "method": "chance", "metrics": problem.chance, "seconds": 0.0}] \
        if problem.chance else []
    load_seconds = time.perf_counter() - t0
    for method in ("magan", *task.baselines):
        t0 = time.perf_counter()
        try:
            views, extra = _run_method(method, problem, int(seed), quick, Path(cache))
            record = {**base, "method": method, "metrics": problem.score(views), **extra}
            record["metrics"].update(_diagnostic_scores(extra.get("diagnostics")))
        except Exception as exc:  # one method failing (e.g. harmonypy missing) keeps the rest
            record = {**base, "method": method, "error": f"{type(exc).__name__}: {exc}",
                      "traceback": traceback.format_exc(limit=3)}
        record["seconds"] = round(time.perf_counter() - t0, 2)
        records.append(record)
    records.append({**base, "method": "_load", "seconds": round(load_seconds, 2)})
    return records


# -------------------------------------------------------------------------------------- table


def _cell(stats: Mapping[str, float] | None) -> str:
    if stats is None or not stats.get("n"):
        return "-"
    if stats["n"] > 1 and stats["sd"] > 0:
        return f"{stats['mean']:.3f} ± {stats['sd']:.3f}"
    return f"{stats['mean']:.3f}"


def _verdicts(records: Sequence[Mapping[str, Any]], task: str, method: str) -> str:
    seen = Counter(r.get("verdict", "-") for r in records
                   if r["task"] == task and r["method"] == method and "metrics" in r)
    if not seen:
        return "-"
    if len(seen) == 1:
        return next(iter(seen))
    return ", ".join(f"{v}×{n}" for v, n in sorted(seen.items()))


def table(records: Sequence[Mapping[str, Any]]) -> str:
    """The markdown table of ``records`` (JSON lines of one battery run)."""
    from experiments._harness import summarise

    tasks = [t for t in TASKS if any(r["task"] == t.name for r in records)]
    methods = [m for m in METHODS if m != "plain_gan"
               or any(r["method"] == m for r in records)]
    lines = ["| task | metric | " + " | ".join(HEADERS[m] for m in methods)
             + " | verdict | magan ≥ nothing |",
             "|---|---|" + "---|" * (len(methods) + 2)]
    for task in tasks:
        mine = [r for r in records if r["task"] == task.name and "metrics" in r]
        by_seed: dict[int, dict[str, dict[str, float]]] = {}
        for r in mine:
            by_seed.setdefault(r["seed"], {})[r["method"]] = r["metrics"]
        summary = summarise(list(by_seed.values()))
        errors = sorted({r["method"] for r in records if r["task"] == task.name and "error" in r})
        for row in task.rows:
            cells = []
            for m in methods:
                cell = _cell(summary.get(m, {}).get(row.metric))
                if m == "plain_gan" and cell != "-":
                    cell += f" [{_verdicts(records, task.name, m)}]"
                if m in errors or "_load" in errors:  # the JSON lines hold the message
                    cell = "error"
                cells.append(cell)
            ours = summary.get("magan", {}).get(row.metric)
            ref = summary.get(row.reference, {}).get(row.metric)
            beats = "-"
            if ours and ref and ours["n"] and ref["n"]:
                delta = ours["mean"] - ref["mean"]
                ok = delta >= 0 if row.higher else delta <= 0
                beats = f"{'yes' if ok else 'no'} ({delta:+.3f}{REFERENCES[row.reference]})"
            arrow = "↑" if row.higher else "↓"
            lines.append(f"| {task.name} | {row.metric} {arrow} | " + " | ".join(cells)
                         + f" | {_verdicts(records, task.name, 'magan')} | {beats} |")
    return "\n".join(lines) + "\n"


def timings(records: Sequence[Mapping[str, Any]]) -> str:
    """Seconds per task: the whole job per seed (mean) and the MAGAN fit within it."""
    lines = ["| task | seeds | s per seed | of which magan fit | errors |", "|---|---|---|---|---|"]
    for task in TASKS:
        mine = [r for r in records if r["task"] == task.name]
        seeds = sorted({r["seed"] for r in mine})
        if not seeds:
            continue
        total = sum(r.get("seconds", 0.0) for r in mine) / len(seeds)
        fit = [r["seconds"] for r in mine if r["method"] == "magan"]
        errors = "; ".join(f"{r['method']}: {r['error']}" for r in mine if "error" in r)
        lines.append(f"| {task.name} | {len(seeds)} | {total:.0f} | "
                     f"{np.mean(fit) if fit else float('nan'):.0f} | {errors or '-'} |")
    return "\n".join(lines) + "\n"


def _json_default(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    return str(x)


# --------------------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        description="MAGAN's defaults vs no alignment, kNN on shared features, GW-OT and "
                    "Harmony on every task; one markdown table (see the module docstring). "
                    "Full run: ~50 min with --jobs 2 on 2 cores; --quick --seeds 0: ~5-15 min.")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="default: 0 1 2")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes (one thread each)")
    ap.add_argument("--quick", action="store_true",
                    help=f"n_steps={QUICK_STEPS} for the GANs: a smoke test, not a result")
    ap.add_argument("--tasks", nargs="+", choices=TASK_NAMES, default=list(TASK_NAMES),
                    metavar="TASK", help="any of: " + ", ".join(TASK_NAMES))
    ap.add_argument("--out", type=Path, default=Path("battery_results"),
                    help="where battery.jsonl, battery.md and cache/ go")
    ap.add_argument("--table-only", action="store_true",
                    help="reprint the table from OUT/battery.jsonl without running anything")
    args = ap.parse_args(argv)
    out: Path = args.out
    jsonl = out / "battery.jsonl"
    if args.table_only:
        records = [json.loads(line) for line in jsonl.read_text().splitlines() if line]
        print(table(records) + "\n" + timings(records), end="")
        return
    if args.jobs < 1:
        ap.error("--jobs must be >= 1")
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"  # inherited by the spawned workers before numpy/torch load
    out.mkdir(parents=True, exist_ok=True)
    cache = str(out / "cache")
    cost = {t.name: t.cost for t in TASKS}
    # Seed by seed, longest tasks first: a task's later seeds find its GW-OT cached.
    jobs = [(name, seed) for seed in args.seeds
            for name in sorted(args.tasks, key=lambda n: -cost[n])]
    records: list[dict[str, Any]] = []
    start = time.perf_counter()
    with open(jsonl, "w") as sink:

        def finished(name: str, seed: int, result: list[dict[str, Any]]) -> None:
            for r in result:
                sink.write(json.dumps(r, default=_json_default) + "\n")
            sink.flush()
            records.extend(result)
            seconds = sum(r.get("seconds", 0.0) for r in result)
            print(f"[battery] {name} seed {seed}: {seconds:.0f} s "
                  f"({time.perf_counter() - start:.0f} s elapsed)", file=sys.stderr, flush=True)

        if args.jobs == 1:
            for name, seed in jobs:
                finished(name, seed, run_job(name, seed, args.quick, cache))
        else:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor, as_completed

            # spawn, not fork: a forked child inherits torch's thread pools and may deadlock.
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(args.jobs, mp_context=context) as pool:
                futures = {pool.submit(run_job, name, seed, args.quick, cache): (name, seed)
                           for name, seed in jobs}
                for future in as_completed(futures):
                    finished(*futures[future], future.result())
    wall = time.perf_counter() - start
    text = (f"Battery{' (quick)' if args.quick else ''}: seeds {args.seeds}, "
            f"--jobs {args.jobs}, {wall:.0f} s wall.\n\n{table(records)}\n"
            f"Seconds per task (one worker, mean over seeds):\n\n{timings(records)}")
    (out / "battery.md").write_text(text)
    print(text, end="")


if __name__ == "__main__":
    main()
