"""Self-diagnosis of a fitted MAGAN without ground truth: is this alignment any good?

Why: an alignment can be worse than doing nothing (issue 18: an scRNA batch pair whose label
transfer fell from 0.73 unaligned to 0.34) while every loss looks fine. Each check below needs
only the two point clouds and what the user declared (shared features, known pairs); each has
documented thresholds and one sentence; together they give a verdict:

``"failed"`` if any check fails, ``"check"`` if any warns, else ``"good"``. A ``"note"``
states a fact about the data a user should read (e.g. a dropped-out channel) that does not
make the alignment less trustworthy; notes are listed, and do not lower the verdict.

All checks work in the model's own standardised space ``z`` (the user's preprocessing, then the
model's standardiser) on at most ``max_cells`` cells per domain (seeded by ``model.seed``),
reduced to :data:`PCA_COMPONENTS` principal components where a space has more dimensions.
Cost: a handful of k-nearest-neighbour searches on ≤ 2 × ``max_cells`` points, two passes of
each generator, and PCA where needed; bounded by ``max_cells``, not by the data's size.

Thresholds are module constants. The mixing thresholds are low (pass 0.3) because on the
paper's Gaussians the declared correspondence itself ("values": keep coordinate 0, whose
cluster centres differ between the domains by up to 0.7, seven standard deviations) stops a
right translation from mixing fully: MAGAN reaches 0.36-0.54 there, the plain GAN 0.95.

The checks, and why each exists:

``shared_agreement``
    Per shared pair, Pearson r of G12(x1)[:, j] with x1[:, i] and of G21(x2)[:, i] with
    x2[:, j]. The shared features are the user's statement of what corresponds; a translation
    that does not keep them has ignored the user (the plain GAN on the paper's Gaussians maps
    clusters by an arbitrary permutation: r < 0 on the shared coordinate).
``shared_covariation`` (≥ 3 shared features)
    Do the shared features co-vary alike in both domains? Pearson r between the two domains'
    correlation matrices of the shared features, divided by the better split-half r within
    one domain. Correlations survive each domain's scaling, a batch effect and any good
    translation, but not a *shuffled* input (one domain's rows permuted independently within
    each feature) or wrongly paired features. Why a data check catches the shuffle: measured
    on the CyTOF batches, a MAGAN fitted to the shuffled Day 2 learnt to decorrelate its
    output and mixed with it (0.66 / 0.80, real batches 0.90 / 0.94), so no check on the
    translation alone failed it; the co-variation ratio is 0.96 for the real batches and
    0.03 for the shuffled ones.
``shared_dependence`` (unshared features in both domains)
    The same question for the unshared features: R² of each domain's unshared features
    predicted from its shared ones (kNN regression, held-out half). The paper's Gaussians:
    0.71-0.75 (domain 1) and 0.91 (domain 2) over 3 seeds; domain 2 shuffled: -0.04 to
    -0.07. With one shared coordinate the shuffled domain 2 is 9 blobs, and a GAN happily
    splits each domain-1 cluster into 3 of them (mixing 0.42 / 0.75, structure 0.79 / 0.59
    at 800 steps): again only the data check can tell. When the shared features co-vary
    alike (so the input is not shuffled) and the unexplained channels are few, they are dead
    or dropped-out channels (the paper's CD45RA): a note naming them, verdict unchanged.
``structure``
    The fraction of each cell's k nearest neighbours (own domain) still among its k nearest
    after translation, rescaled so that a random permutation scores 0 and a perfect
    neighbourhood-preserving map 1. A translation that scrambles populations fails here.
``mixing``
    :func:`magan.metrics.mixing_score` of translated vs real cells of the target domain
    ("after", full space); with shared features also "before" (the identity map, i.e. doing
    nothing, on the shared output columns) and "after_shared" (the translation on the same
    columns), so before/after compare like with like. Why it also catches a *shuffled* input
    (one domain's rows permuted independently within each feature): the translation keeps the
    shared features' values, and so their correlations, while the shuffled domain has none, so
    translated and real cells sit in different regions and do not mix.
``cycle``
    ||z - G21(G12(z))||² per cell relative to the domain's total variance in ``z`` (1 = as bad
    as replacing every cell by the mean). A translation that loses which cell it came from
    cannot be inverted.
``range``
    The fraction of translated values beyond the target cells' range of their feature (by
    more than a tenth of its width). A note, never a warning: negative log counts or a marker
    brighter than any measured are worth knowing before reading values, but did not mark a
    worse alignment here.
``vs_identity``
    With shared features: does each direction mix with the other domain at least as well as
    doing nothing (after_shared ≥ before − :data:`VS_IDENTITY_MIXING_TOLERANCE`) while keeping
    structure at least as well as the identity map (its structure score from the identity on
    the shared columns, less :data:`VS_IDENTITY_STRUCTURE_TOLERANCE`) and its populations
    (:func:`population_agreement`, averaged over k-means at :data:`POPULATION_COUNTS`, less
    :data:`VS_IDENTITY_POPULATION_TOLERANCE`)? Worse on two: fail; on one: warn. With every
    feature shared the identity keeps every neighbour (score 1), and any batch correction
    moves cells: on the CyTOF batches MAGAN's structure was 0.56 / 0.67 while mixing rose
    from 0.62 to 0.90 / 0.94, hence a tolerance of 0.5.
``correspondence``
    Warns when nothing tied cells to their matches (this is what keeps the plain GAN on the
    paper's Gaussians from "good": it mixes (0.95) and keeps structure (0.9) whether or not
    it happened to map the clusters right) (no shared features, known pairs or
    relation): a plain GAN may map populations by any permutation, which none of the checks
    above can see without a declared correspondence.
``known_pairs_heldout``
    :func:`holdout_known_pairs` (``fit(..., diagnose="holdout")``): one more fit without a
    quarter of the known pairs, then FOSCTTM of the held-out pairs among all cells.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from sklearn.neighbors import NearestNeighbors

from magan.correspondence import same_value_map
from magan.data import Matrix, apply_steps, resolve_known_pairs, resolve_shared_features, take_rows
from magan.errors import ConfigError, DataError
from magan.metrics import _columnwise_pearson, mixing_score
from magan.nn import apply_in_blocks
from magan.preprocessing import informative_pairs
from magan.settings import Correspondence, check_positive_int

# ``model`` below is a fitted magan.estimator.MAGAN, typed Any: the estimator imports this
# module (imports point one way, tests/test_structure.py).
MAGAN = Any

__all__ = ["Check", "Diagnostics", "diagnose_fitted", "holdout_known_pairs", "verdict_of"]

STATUSES = ("pass", "note", "warn", "fail", "n/a")
VERDICTS = ("good", "check", "failed")

#: Neighbours per cell in the structure and mixing checks.
K_NEIGHBOURS = 15
#: Cells per domain the checks use at most (seeded subsample); the issue's bound is 20,000.
MAX_CELLS = 5000
#: A space with more dimensions is reduced to this many principal components for kNN.
PCA_COMPONENTS = 50

# Thresholds (calibrated on the paper's Gaussians, a shuffled input and the CyTOF batches;
# see the module docstring and the report of issue 18 for the numbers).
#: Median Pearson r of the shared features: pass at or above, fail below the second.
SHARED_AGREEMENT_PASS = 0.8
SHARED_AGREEMENT_FAIL = 0.5
#: Structure score s (0 = random permutation, 1 = every neighbour kept), worst direction.
STRUCTURE_PASS = 0.3
STRUCTURE_FAIL = 0.15
#: Mixing score after translation (1 ≈ perfectly mixed, 0 = apart), worst direction.
MIXING_PASS = 0.3
MIXING_FAIL = 0.1
#: Cycle error relative to total variance (1 = as bad as the mean), worst direction.
CYCLE_PASS = 0.3
CYCLE_FAIL = 1.0
#: vs_identity: how much worse than doing nothing still counts as "as good".
VS_IDENTITY_MIXING_TOLERANCE = 0.05
VS_IDENTITY_STRUCTURE_TOLERANCE = 0.5
#: Populations per domain (k-means on its own principal axes) for the population check, at
#: several granularities: the agreement at one count swings with the clustering more than
#: with the translation (the cytonorm plates, one fit: +0.008 to -0.109 between 3 and 12
#: populations), so the check compares the average over these counts.
POPULATION_COUNTS = (3, 4, 6, 8, 12)
#: vs_identity: how far the translation's averaged population agreement may fall below doing
#: nothing's (adjusted mutual information, 1 = each population lands in one population): the
#: check's resolution. Measured (research/population_resolution.py, seeds 0-2, the default
#: at 1,000 steps): levine32 H1→H2, whose full translation transfers labels better than
#: doing nothing (0.859-0.861 vs 0.852), averages -0.003 to -0.009; the cytonorm plates
#: (mixing 0.58 → 0.92) +0.002 to -0.027; single counts range from +0.015 to -0.069. A
#: scrambled translation loses far more (test_population_agreement_*: 0.85 → < 0.05).
VS_IDENTITY_POPULATION_TOLERANCE = 0.03
#: ... compared only with at least this many shared features: on fewer, doing nothing places
#: cells by one or a few coordinates and the comparison measures noise (the paper's
#: Gaussians, one shared coordinate: -0.07 to +0.11 between equally right translations).
POPULATION_MIN_SHARED = 5
#: Shared co-variation: cross-domain agreement of the shared features' correlations relative
#: to each domain's own split-half reliability (1 = as alike as two halves of one domain).
COVARIATION_PASS = 0.7
COVARIATION_FAIL = 0.4
#: A domain's co-variation counts as real when its split-half r is at least this and its
#: correlations spread at least 3 sampling errors (3 / sqrt(cells)); else nothing to compare.
COVARIATION_MIN_RELIABILITY = 0.5
#: Fewer shared features give too few correlations (10 at 5) for an r between them to mean
#: anything: two sets of 10 pure-noise correlations reach r 0.5 by chance 7% of the time.
COVARIATION_MIN_FEATURES = 5
#: At most this many shared features (a seeded subset) enter the correlation matrices.
COVARIATION_MAX_FEATURES = 200
#: Shared dependence: R² of a domain's unshared features predicted from its shared ones (kNN
#: regression, held-out half). Fail when one domain's is at least the first and the other's
#: below the second (the shared features explain one domain and nothing of the other); warn
#: when the weaker is below the ratio times the stronger.
DEPENDENCE_STRONG = 0.3
DEPENDENCE_NONE = 0.05
DEPENDENCE_WARN_RATIO = 0.25
#: ... and fail only when the unexplained unshared features are at least this fraction of
#: that domain's features; fewer is a warning (a dead channel: the paper's CD45RA drop-out
#: replaces one of 25 markers by noise, and the alignment is still right, CD8 0.93).
DEPENDENCE_FAIL_FRACTION = 0.25
#: Range: a translated value is outside the target's range when it lies beyond the target
#: cells' [min, max] of that feature by more than this fraction of the span.
RANGE_MARGIN = 0.1
#: ... and the translation is noted when more than this fraction of its values are (seed 0,
#: the battery's defaults): CyTOF, digits, Gaussians, ECCITE and PBMC at most 0.3%; doing
#: nothing on the scRNA batch pair 0.7%; scGEM's methylation → expression 8%; the learnt
#: scRNA translation 22% (negative log counts).
RANGE_NOTE = 0.01
#: Held-out known pairs: FOSCTTM (0 = each partner nearest, 0.5 = chance).
HELDOUT_FOSCTTM_PASS = 0.2
HELDOUT_FOSCTTM_FAIL = 0.35
#: At least this many known pairs before holding some out means anything.
HELDOUT_MIN_PAIRS = 4


@dataclass(frozen=True)
class Check:
    """One check: ``status`` in :data:`STATUSES`, measured ``value``s, the ``threshold``s they
    were held against, and a ``sentence`` a user can read."""

    name: str
    status: str
    value: Mapping[str, float] = field(default_factory=dict)
    threshold: Mapping[str, float] = field(default_factory=dict)
    sentence: str = ""

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ConfigError(f"Check status must be one of {STATUSES}, got {self.status!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status,
                "value": {k: _json_float(v) for k, v in self.value.items()},
                "threshold": {k: _json_float(v) for k, v in self.threshold.items()},
                "sentence": self.sentence}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Check:
        return cls(str(d["name"]), str(d["status"]), _floats(d.get("value", {})),
                   _floats(d.get("threshold", {})), str(d.get("sentence", "")))


def verdict_of(checks: Sequence[Check]) -> tuple[str, tuple[str, ...]]:
    """``("failed" | "check" | "good", reasons)``: any fail fails, any warn asks to check;
    the reasons are the failing checks' sentences, then the warning ones'."""
    failing = [c.sentence for c in checks if c.status == "fail"]
    warning = [c.sentence for c in checks if c.status == "warn"]
    # Notes (status "note") are not reasons: see Diagnostics.notes.
    verdict = "failed" if failing else "check" if warning else "good"
    return verdict, tuple(failing + warning)


@dataclass(frozen=True)
class Diagnostics:
    """What :func:`diagnose_fitted` found: ``verdict`` (one of :data:`VERDICTS`), the
    ``reasons`` for it, every ``check``, the cells used per domain and the seconds spent."""

    verdict: str
    reasons: tuple[str, ...]
    checks: tuple[Check, ...]
    n_cells_used: tuple[int, int]
    seconds: float

    @classmethod
    def from_checks(cls, checks: Sequence[Check], n_cells_used: tuple[int, int],
                    seconds: float) -> Diagnostics:
        verdict, reasons = verdict_of(checks)
        return cls(verdict, reasons, tuple(checks), (int(n_cells_used[0]),
                                                      int(n_cells_used[1])), float(seconds))

    def with_checks(self, *checks: Check, seconds: float = 0.0) -> Diagnostics:
        """These diagnostics with ``checks`` added (or replacing those of the same name)."""
        names = {c.name for c in checks}
        kept = [c for c in self.checks if c.name not in names]
        return Diagnostics.from_checks([*kept, *checks], self.n_cells_used,
                                       self.seconds + seconds)

    @property
    def notes(self) -> tuple[str, ...]:
        """Sentences of the checks with status "note": facts about the data worth reading
        that leave the verdict as it is."""
        return tuple(c.sentence for c in self.checks if c.status == "note")

    def __getitem__(self, name: str) -> Check:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able (non-finite numbers become null). Without ``seconds``: the same data and
        seed must write the same files (run.json, the saved model), and time varies."""
        return {"verdict": self.verdict, "reasons": list(self.reasons),
                "checks": [c.to_dict() for c in self.checks],
                "n_cells_used": list(self.n_cells_used)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Diagnostics:
        checks = tuple(Check.from_dict(c) for c in d.get("checks", []))
        n = d.get("n_cells_used", (0, 0))
        return cls(str(d["verdict"]), tuple(str(r) for r in d.get("reasons", [])), checks,
                   (int(n[0]), int(n[1])), float(d.get("seconds", 0.0)))

    def summary(self) -> str:
        """The lines the CLI prints last: the verdict, then one line per reason."""
        took = f", {self.seconds:.1f} s" if self.seconds else ""
        lines = [f"alignment verdict: {self.verdict} ({len(self.checks)} checks on "
                 f"{self.n_cells_used[0]} + {self.n_cells_used[1]} cells{took})"]
        lines += [f"  - {r}" for r in self.reasons]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def __str__(self) -> str:
        rows = [self.summary(), "checks:"]
        for c in self.checks:
            rows.append(f"  {c.name:<20} {c.status:<4}  {c.sentence}")
        return "\n".join(rows)


def _json_float(v: Any) -> float | None:
    v = float(v)
    return v if np.isfinite(v) else None


def _floats(d: Mapping[str, Any]) -> dict[str, float]:
    return {str(k): float("nan") if v is None else float(v) for k, v in d.items()}


def _grade(value: float, good: float, bad: float, *, higher_is_better: bool = True) -> str:
    """"pass" on the good side of ``good``, "fail" beyond ``bad``, "warn" between, "n/a" NaN."""
    if not np.isfinite(value):
        return "n/a"
    if higher_is_better:
        return "pass" if value >= good else "fail" if value < bad else "warn"
    return "pass" if value <= good else "fail" if value > bad else "warn"


# --------------------------------------------------------------------------- geometry


def _neighbours(x: np.ndarray, k: int) -> np.ndarray:
    """(n, k) indices of each row's k nearest other rows (itself removed by value, since with
    duplicate points it need not come first)."""
    n = x.shape[0]
    idx = NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x, return_distance=False)
    not_self = idx != np.arange(n)[:, None]
    keep = np.where(not_self.all(axis=1)[:, None], np.arange(k + 1) < k, not_self)
    return idx[keep].reshape(n, k)


def structure_score(before: np.ndarray, after: np.ndarray, k: int = K_NEIGHBOURS, *,
                    before_neighbours: np.ndarray | None = None) -> float:
    """Neighbourhoods kept by a map, 0 for a random permutation and 1 for all kept.

    ``before`` and ``after`` hold the same cells (rows) in two spaces. Each cell's k nearest
    neighbours are found in both; the mean overlap fraction ``o`` is rescaled as
    ``(o - k/(n-1)) / (1 - k/(n-1))``, since k/(n-1) is what a random re-placement keeps.
    ``before_neighbours``: ``before``'s (n, k) neighbours when already found (one search
    per space).
    """
    n = before.shape[0]
    if after.shape[0] != n:
        raise DataError(f"structure_score: {n} cells before, {after.shape[0]} after")
    k = min(k, n - 2)
    if k < 1:
        return float("nan")
    a = before_neighbours if before_neighbours is not None else _neighbours(before, k)
    b = _neighbours(after, k)
    overlap = (a[:, :, None] == b[:, None, :]).any(axis=2).mean()
    chance = k / (n - 1)
    return float((overlap - chance) / (1 - chance))


def _populations(x: np.ndarray, seed: int, count: int) -> np.ndarray:
    """Each cell's population: k-means (``count``, at least 20 cells each) on the rows of
    ``x`` (a domain on its own principal axes)."""
    from sklearn.cluster import KMeans

    n = max(1, min(count, x.shape[0] // 20))
    return KMeans(n, n_init=3, random_state=seed).fit_predict(x)


def _population_sets(x: np.ndarray, seed: int) -> list[np.ndarray]:
    """:func:`_populations` at each of :data:`POPULATION_COUNTS` (fewer on small data, where
    the counts coincide once each population needs 20 cells)."""
    counts = sorted({max(1, min(c, x.shape[0] // 20)) for c in POPULATION_COUNTS})
    return [_populations(x, seed, c) for c in counts]


def mean_population_agreement(own: Sequence[np.ndarray], moved: np.ndarray,
                              target: np.ndarray, target_populations: Sequence[np.ndarray],
                              k: int = K_NEIGHBOURS) -> float:
    """:func:`population_agreement` averaged over paired partitions (``own[c]`` with
    ``target_populations[c]``, paired from the coarsest: the same count unless one domain is
    too small for the finer ones); one neighbour search."""
    idx = _target_neighbours(moved, target, k)
    return float(np.mean([_agreement(o, idx, t) for o, t in zip(own, target_populations)]))


def _target_neighbours(moved: np.ndarray, target: np.ndarray, k: int) -> np.ndarray:
    k = max(1, min(k, target.shape[0]))
    return NearestNeighbors(n_neighbors=k).fit(target).kneighbors(moved, return_distance=False)


def _agreement(own: np.ndarray, idx: np.ndarray, target_populations: np.ndarray) -> float:
    """AMI between ``own`` and each moved cell's majority population among ``idx``."""
    from sklearn.metrics import adjusted_mutual_info_score

    votes = target_populations[idx]
    n_pop = int(target_populations.max()) + 1
    counts = np.stack([(votes == c).sum(axis=1) for c in range(n_pop)], axis=1)
    return float(adjusted_mutual_info_score(own, counts.argmax(axis=1)))


def population_agreement(own: np.ndarray, moved: np.ndarray, target: np.ndarray,
                         target_populations: np.ndarray, k: int = K_NEIGHBOURS) -> float:
    """Do the cells of one population land in one population of the other domain?

    Each moved cell (a translation, or doing nothing) takes the majority population of its
    ``k`` nearest target cells; the score is the adjusted mutual information between the
    cells' own populations ``own`` and those (1 = each population lands in one, 0 = as by
    chance). Why: this is label transfer with labels the data give itself, and the check
    against doing nothing asks whether translating keeps populations together at least as
    well as not translating. A translation that scatters a population over several (the
    scRNA batch pair where label transfer fell from 0.73 to 0.34) loses here.
    """
    return _agreement(own, _target_neighbours(moved, target, k), target_populations)


def _pca_basis(ref: np.ndarray, n_components: int = PCA_COMPONENTS
               ) -> tuple[np.ndarray, np.ndarray] | None:
    """(mean, components) of ``ref``'s leading principal axes, or None when it already has
    at most ``n_components`` dimensions (kNN in > 50 dimensions is slow and noise-dominated)."""
    if ref.shape[1] <= n_components:
        return None
    mean = ref.mean(axis=0)
    centred = np.asarray(ref - mean, dtype=np.float64)
    if min(centred.shape) <= 4 * n_components:
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
    else:  # 5,000 cells x 1,000 genes: 9 s for a full SVD, ~1 s randomised (same leading axes)
        from sklearn.utils.extmath import randomized_svd

        _, _, vt = randomized_svd(centred, n_components, n_iter=4, random_state=0)
    return mean, vt[:n_components].T


def _reduce(x: np.ndarray) -> np.ndarray:
    """``x`` on its own leading principal axes (unchanged at <= 50 dimensions). For the
    structure check each space gets its own axes: a near-identity translation then keeps
    the same axes, where the target domain's would differ in its noise directions (measured:
    1,000 noisy features, structure 0.04 on the target's axes for a translation that barely
    moved any cell)."""
    return _project(x, _pca_basis(x))


def _project(x: np.ndarray, basis: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
    if basis is None:
        return np.asarray(x, dtype=np.float64)
    return (np.asarray(x, dtype=np.float64) - basis[0]) @ basis[1]


# --------------------------------------------------------------------------- the model's maps


def _shared_pairs(model: MAGAN, spec: Any = None) -> list[tuple[int, int]]:
    """Column pairs (i in domain 1, j in domain 2): the model's own, or ``spec`` resolved as
    ``fit``'s ``shared_features`` is (to judge a model on features it did not train with)."""
    if spec is None:
        return [(model.feature_names1_.index(a), model.feature_names2_.index(b))
                for a, b in model.shared_features_]
    m1 = Matrix(np.empty((0, len(model.feature_names1_)), dtype=np.float32),
                model.feature_names1_ if model.has_names1_ else None, None)
    m2 = Matrix(np.empty((0, len(model.feature_names2_)), dtype=np.float32),
                model.feature_names2_ if model.has_names2_ else None, None)
    return resolve_shared_features(spec, m1, m2)


def _identity(model: MAGAN, z: np.ndarray, src: list[int], dst: list[int],
              domain: int) -> np.ndarray:
    """Doing nothing, in the target's standardised units: the shared columns ``src`` of ``z``
    (domain ``domain``) as the target's columns ``dst``. ``"values"``: the same value in the
    user's units, undoing only the standardisers (the user's own preprocessing is the same on
    both sides); ``"standardized"``: the same standardised value. Private so that it can be
    swapped for the generators' own skip map."""
    pre_in = model.preprocessing1_ if domain == 1 else model.preprocessing2_
    pre_out = model.preprocessing2_ if domain == 1 else model.preprocessing1_
    d_in, d_out = z.shape[1], len(np.atleast_1d(pre_out[-1].mean_))
    a, b = same_value_map(src, dst, *(np.broadcast_to(np.asarray(v, dtype=np.float64), (d,))
                                      for v, d in ((pre_in[-1].mean_, d_in),
                                                   (pre_in[-1].scale_, d_in),
                                                   (pre_out[-1].mean_, d_out),
                                                   (pre_out[-1].scale_, d_out))),
                          (Correspondence.of(model.correspondence)
                           or Correspondence()).shared_features_match)
    return np.asarray(z[:, src], dtype=np.float64) * a + b


def _generate(net: torch.nn.Module, z: np.ndarray) -> np.ndarray:
    device = next(net.parameters()).device
    with torch.inference_mode():
        out = apply_in_blocks(net, torch.as_tensor(np.asarray(z, dtype=np.float32),
                                                   device=device))
    return out.float().cpu().numpy().astype(np.float64)


def _subsample(x: Any, n_max: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    n = x.shape[0]
    rows = np.arange(n) if n <= n_max else np.sort(rng.choice(n, n_max, replace=False))
    return rows, take_rows(x, rows)


def _marker(model: MAGAN, pair: tuple[int, int]) -> str:
    a, b = model.feature_names1_[pair[0]], model.feature_names2_[pair[1]]
    return a if a == b else f"{a}/{b}"


# --------------------------------------------------------------------------- the checks


def _check_shared(model: MAGAN, pairs: list[tuple[int, int]], y12: np.ndarray,
                  y21: np.ndarray, id12: np.ndarray | None, id21: np.ndarray | None) -> Check:
    thr = {"pass": SHARED_AGREEMENT_PASS, "fail": SHARED_AGREEMENT_FAIL}
    if not pairs or id12 is None or id21 is None:
        return Check("shared_agreement", "n/a", {}, thr, "no shared features to agree on")
    i = [p[0] for p in pairs]
    j = [p[1] for p in pairs]
    r12 = _columnwise_pearson(y12[:, j], id12)
    r21 = _columnwise_pearson(y21[:, i], id21)
    both = np.concatenate([r12, r21])
    if not np.isfinite(both).any():
        return Check("shared_agreement", "n/a", {}, thr,
                     "every shared feature is constant in the cells checked")
    median = float(np.nanmedian(both))
    worst_r = np.fmin(r12, r21)  # NaN (constant) only where both directions are constant
    order = [p for p in np.argsort(np.where(np.isfinite(worst_r), worst_r, np.inf))
             if np.isfinite(worst_r[p])][:3]
    worst = ", ".join(f"{_marker(model, pairs[p])} {worst_r[p]:.2f}" for p in order)
    status = _grade(median, SHARED_AGREEMENT_PASS, SHARED_AGREEMENT_FAIL)
    sentence = (f"shared features agree after translation with median r {median:.2f} "
                f"(worst: {worst})")
    if status != "pass":
        sentence += (f"; below {SHARED_AGREEMENT_PASS} the translation does not keep the "
                     "features declared shared")
    value = {"median": median, "median12": float(np.nanmedian(r12)) if np.isfinite(r12).any()
             else float("nan"),
             "median21": float(np.nanmedian(r21)) if np.isfinite(r21).any() else float("nan"),
             "min": float(np.nanmin(both)), "n_pairs": float(len(pairs))}
    return Check("shared_agreement", status, value, thr, sentence)


def _upper_corr(z: np.ndarray) -> np.ndarray:
    """The upper triangle of the features' correlation matrix (constant features give NaN)."""
    c = z - z.mean(axis=0)
    norm = np.sqrt((c * c).sum(axis=0))
    c = c / np.where(norm > 0, norm, np.nan)
    corr = c.T @ c
    return corr[np.triu_indices(z.shape[1], 1)]


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or np.ptp(a[ok]) == 0 or np.ptp(b[ok]) == 0:
        return float("nan")
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


def _check_covariation(pairs: list[tuple[int, int]], z1: np.ndarray, z2: np.ndarray,
                       rng: np.random.Generator) -> Check:
    """Do the shared features co-vary alike in both domains? Correlations are unchanged by
    each domain's own scaling, so doing nothing, a batch effect or a good translation keep
    them; a shuffled input, features paired wrongly or unrelated samples do not. The
    cross-domain similarity of the correlation matrices (Pearson r of their upper
    triangles) is divided by the better of the two domains' split-half similarities, the
    most two samples of one domain agree, so sparse, noisy features are not failed for
    their noise."""
    thr = {"pass": COVARIATION_PASS, "fail": COVARIATION_FAIL,
           "min_reliability": COVARIATION_MIN_RELIABILITY}
    if len(pairs) < COVARIATION_MIN_FEATURES:
        return Check("shared_covariation", "n/a", {}, thr,
                     f"fewer than {COVARIATION_MIN_FEATURES} shared features: no co-variation "
                     "to compare")
    if len(pairs) > COVARIATION_MAX_FEATURES:
        pairs = [pairs[p] for p in np.sort(rng.choice(len(pairs), COVARIATION_MAX_FEATURES,
                                                      replace=False))]
    a, b = z1[:, [p[0] for p in pairs]], z2[:, [p[1] for p in pairs]]
    h1, h2 = rng.permutation(len(a)), rng.permutation(len(b))
    r11 = _pearson(_upper_corr(a[h1[::2]]), _upper_corr(a[h1[1::2]]))
    r22 = _pearson(_upper_corr(b[h2[::2]]), _upper_corr(b[h2[1::2]]))
    c1, c2 = _upper_corr(a), _upper_corr(b)
    r12 = _pearson(c1, c2)
    real = [r for r, c, n in ((r11, c1, len(a)), (r22, c2, len(b)))
            if np.isfinite(r) and r >= COVARIATION_MIN_RELIABILITY
            and np.nanstd(c) >= 3 / np.sqrt(max(n, 1))]
    reliability = max(real) if real else float("nan")
    value = {"cross": r12, "within1": r11, "within2": r22}
    if not np.isfinite(reliability) or not np.isfinite(r12):
        return Check("shared_covariation", "n/a", value, thr,
                     "the shared features barely co-vary in either domain: nothing to compare")
    ratio = r12 / reliability
    value["ratio"] = ratio
    status = _grade(ratio, COVARIATION_PASS, COVARIATION_FAIL)
    sentence = (f"the shared features co-vary alike in both domains (correlations agree "
                f"r {r12:.2f}, within a domain {r11:.2f} / {r22:.2f})")
    if status != "pass":
        sentence = (f"the shared features co-vary differently in the two domains "
                    f"(correlations agree r {r12:.2f}, within a domain {r11:.2f} / "
                    f"{r22:.2f}): check that they are paired right and that one input is not "
                    "shuffled or from other cells")
    return Check("shared_covariation", status, value, thr, sentence)


def _dependence(shared: np.ndarray, rest: np.ndarray, rng: np.random.Generator,
                k: int = K_NEIGHBOURS) -> tuple[float, np.ndarray]:
    """R² of ``rest`` predicted from ``shared`` by a k-nearest-neighbour mean, fitted on one
    random half of the cells and scored on the other (so noise is not memorised): over all
    of ``rest``'s columns, and per column (NaN where a column is constant)."""
    order = rng.permutation(len(shared))
    fit, test = order[::2], order[1::2]
    if len(fit) <= k or len(test) < 2:
        return float("nan"), np.full(rest.shape[1], np.nan)
    idx = NearestNeighbors(n_neighbors=k).fit(shared[fit]).kneighbors(
        shared[test], return_distance=False)
    pred = rest[fit][idx].mean(axis=1)
    truth = rest[test]
    sse = ((truth - pred) ** 2).sum(axis=0)
    sst = ((truth - truth.mean(axis=0)) ** 2).sum(axis=0)
    per = np.where(sst > 0, 1 - sse / np.where(sst > 0, sst, 1.0), np.nan)
    pooled = float(1 - sse.sum() / sst.sum()) if sst.sum() > 0 else float("nan")
    return pooled, per


def _check_dependence(pairs: list[tuple[int, int]], p1: np.ndarray, p2: np.ndarray,
                      z1: np.ndarray, z2: np.ndarray, rng: np.random.Generator, *,
                      covaried: bool = False,
                      names: tuple[Sequence[str], Sequence[str]] | None = None) -> Check:
    """Do the shared features explain the unshared ones alike in both domains? In the
    paper's Gaussians the shared coordinate tells the cluster, so the other coordinate, in
    both domains (R² 0.7-0.9); shuffle one domain's rows within each feature and there it
    explains nothing (R² ≈ 0). The translation can then only invent the unshared values:
    the declared correspondence does not hold. Needs unshared features in both domains.

    ``covaried``: the shared features co-vary alike in both domains (``shared_covariation``
    passed), so the input is not shuffled and the pairs are right. A few unexplained
    channels (under :data:`DEPENDENCE_FAIL_FRACTION` of the domain) are then dead or
    dropped-out channels, the case the paper's CD45RA drop-out is about: a "note" naming
    them, not a warning about the alignment. ``names``: each domain's feature names."""
    thr = {"strong": DEPENDENCE_STRONG, "none": DEPENDENCE_NONE,
           "warn_ratio": DEPENDENCE_WARN_RATIO}
    i = [p[0] for p in pairs]
    j = [p[1] for p in pairs]
    rest1 = np.setdiff1d(np.arange(z1.shape[1]), i)
    rest2 = np.setdiff1d(np.arange(z2.shape[1]), j)
    if not pairs or not len(rest1) or not len(rest2):
        return Check("shared_dependence", "n/a", {}, thr,
                     "needs shared features and unshared ones in both domains")
    r1, per1 = _dependence(p1, z1[:, rest1], rng)
    r2, per2 = _dependence(p2, z2[:, rest2], rng)
    value = {"domain1": r1, "domain2": r2}
    if not np.isfinite([r1, r2]).all():
        return Check("shared_dependence", "n/a", value, thr, "too few cells or constant "
                     "unshared features")
    strong, weak = max(r1, r2), min(r1, r2)
    low = 1 if r1 < r2 else 2
    share = (len(rest1) / z1.shape[1]) if low == 1 else (len(rest2) / z2.shape[1])
    thr["fail_fraction"] = DEPENDENCE_FAIL_FRACTION
    status = ("fail" if strong >= DEPENDENCE_STRONG and weak < DEPENDENCE_NONE
              and share >= DEPENDENCE_FAIL_FRACTION
              else "warn" if strong >= DEPENDENCE_STRONG and weak < DEPENDENCE_WARN_RATIO
              * strong else "pass")
    sentence = (f"the shared features explain the unshared ones alike (R² {r1:.2f} in domain "
                f"1, {r2:.2f} in domain 2)")
    if status == "warn" and covaried and share < DEPENDENCE_FAIL_FRACTION:
        rest, per = (rest1, per1) if low == 1 else (rest2, per2)
        dead = [int(c) for c, r in zip(rest, per, strict=True)
                if not np.isfinite(r) or r < DEPENDENCE_WARN_RATIO * strong]
        label = ", ".join(str(names[low - 1][c]) if names else f"column {c}" for c in dead[:5])
        label += f" and {len(dead) - 5} more" if len(dead) > 5 else ""
        value["n_unexplained"] = float(len(dead))
        read = "inverse_transform" if low == 2 else "transform"
        return Check("shared_dependence", "note", value, thr,
                     f"domain {low}'s unshared channel{'s' if len(dead) != 1 else ''} {label} "
                     f"{'are' if len(dead) != 1 else 'is'} not explained by the shared features "
                     f"(R² {weak:.2f}; domain {3 - low}'s {strong:.2f}), while the shared "
                     "features co-vary alike in both domains: a dead or dropped-out channel; "
                     f"its values for domain {low}'s cells are in the translation "
                     f"(`{read}`), not in the measurement")
    if status != "pass":
        sentence = (f"the shared features explain domain {3 - low}'s unshared features "
                    f"(R² {strong:.2f}) but {'little' if weak >= DEPENDENCE_NONE else 'none'} "
                    f"of domain {low}'s (R² {weak:.2f}): check the pairing, that domain "
                    f"{low}'s rows are not shuffled and its unshared channels are not dead")
    return Check("shared_dependence", status, value, thr, sentence)


def _check_structure(s12: float, s21: float) -> Check:
    worst = float(np.nanmin([s12, s21])) if np.isfinite([s12, s21]).any() else float("nan")
    status = _grade(worst, STRUCTURE_PASS, STRUCTURE_FAIL)
    sentence = (f"translation keeps cells' neighbourhoods: structure score {s12:.2f} "
                f"(domain 1) and {s21:.2f} (domain 2), 0 = random, 1 = all neighbours kept")
    if status == "fail":
        sentence = (f"translation scrambles cells' neighbourhoods: structure score {s12:.2f} "
                    f"(domain 1) / {s21:.2f} (domain 2), near a random permutation's 0")
    elif status == "warn":
        sentence += f"; below {STRUCTURE_PASS} populations may be mixed up"
    return Check("structure", status, {"domain1": s12, "domain2": s21, "min": worst},
                 {"pass": STRUCTURE_PASS, "fail": STRUCTURE_FAIL}, sentence)


def _check_mixing(mix: dict[str, float]) -> Check:
    worst = min(mix["after12"], mix["after21"])
    status = _grade(worst, MIXING_PASS, MIXING_FAIL)
    sentence = (f"translated cells mix with the other domain's: {mix['after12']:.2f} (1→2) "
                f"and {mix['after21']:.2f} (2→1), 1 = fully mixed")
    if "before12" in mix:
        sentence += (f"; on the shared features {mix['before12']:.2f}/{mix['before21']:.2f} "
                     f"before, {mix['after_shared12']:.2f}/{mix['after_shared21']:.2f} after")
    if status == "fail":
        sentence = ("translated cells do not mix with the other domain's (" + sentence +
                    "): the domains' shapes disagree or lie far apart, e.g. one input is "
                    "shuffled, the wrong features were paired, or a batch shift was too "
                    "large for the translation to remove")
    return Check("mixing", status, {**mix, "min": worst},
                 {"pass": MIXING_PASS, "fail": MIXING_FAIL}, sentence)


def _cycle_error(z: np.ndarray, cycled: np.ndarray) -> float:
    """Mean squared distance of cells from their round trip, as a fraction of the domain's
    total variance, so that one threshold serves domains of any scale."""
    return float(((z - cycled) ** 2).sum(axis=1).mean() / max(z.var(axis=0).sum(), 1e-12))


def _check_cycle(c1: float, c2: float) -> Check:
    worst = max(c1, c2)
    status = _grade(worst, CYCLE_PASS, CYCLE_FAIL, higher_is_better=False)
    sentence = (f"cycle error {c1:.2f} (1→2→1) and {c2:.2f} (2→1→2) of each domain's "
                "variance")
    if status != "pass":
        sentence += f"; above {CYCLE_PASS} translations lose which cell they came from"
    return Check("cycle", status, {"domain1": c1, "domain2": c2, "max": worst},
                 {"pass": CYCLE_PASS, "fail": CYCLE_FAIL}, sentence)


def _outside(y: np.ndarray, z: np.ndarray, constant: np.ndarray) -> np.ndarray:
    """Per output feature, the fraction of ``y``'s values beyond the target cells ``z``'s
    [min, max] of it by more than :data:`RANGE_MARGIN` of its width. A feature its
    standardiser found ``constant`` counts as inside: its scale is ``min_scale``, so whatever
    is output comes back at the constant (a gene with no counts in that batch)."""
    lo, hi = z.min(axis=0), z.max(axis=0)
    pad = RANGE_MARGIN * (hi - lo)
    out = ((y < lo - pad) | (y > hi + pad)).mean(axis=0)
    return np.where(constant, 0.0, out)


def _check_range(y12: np.ndarray, y21: np.ndarray, z1: np.ndarray, z2: np.ndarray,
                 model: MAGAN) -> Check:
    """Do the translated cells stay within what the target domain shows? A note, not a
    warning: out-of-range values (negative log counts, a marker brighter than any measured)
    are worth knowing before reading translated values, but were not a sign of a worse
    alignment here (an scRNA translation with 22% of them transferred labels better than the
    same translation clipped to the range)."""
    out12 = _outside(y12, z2, model.preprocessing2_[-1].constant_features())
    out21 = _outside(y21, z1, model.preprocessing1_[-1].constant_features())
    value = {"outside12": float(out12.mean()), "outside21": float(out21.mean())}
    value["max"] = max(value["outside12"], value["outside21"])
    thr = {"margin": RANGE_MARGIN, "note": RANGE_NOTE}
    if value["max"] <= RANGE_NOTE:
        return Check("range", "pass", value, thr,
                     "translated values stay within the range each target domain shows")
    parts = []
    for label, out, names in (("1→2", out12, model.feature_names2_),
                              ("2→1", out21, model.feature_names1_)):
        if out.mean() > RANGE_NOTE:
            worst = ", ".join(str(names[c]) for c in np.argsort(-out, kind="stable")[:3])
            parts.append(f"{label} {out.mean():.0%} (most: {worst})")
    return Check("range", "note", value, thr,
                 f"translated values outside the range the target domain shows: "
                 f"{'; '.join(parts)}; clip or check them before reading values")


def _check_vs_identity(mix: dict[str, float], s: dict[str, float], has_pairs: bool) -> Check:
    thr = {"mixing_tolerance": VS_IDENTITY_MIXING_TOLERANCE,
           "structure_tolerance": VS_IDENTITY_STRUCTURE_TOLERANCE}
    if not has_pairs:
        return Check("vs_identity", "n/a", {}, thr,
                     "no shared features: doing nothing is not defined")
    value: dict[str, float] = {}
    worse: list[str] = []
    n_worse = 0
    thr["population_tolerance"] = VS_IDENTITY_POPULATION_TOLERANCE
    for d, label in (("12", "1→2"), ("21", "2→1")):
        mixes = mix[f"after_shared{d}"] >= mix[f"before{d}"] - VS_IDENTITY_MIXING_TOLERANCE
        keeps = s[f"trans{d}"] >= s[f"ident{d}"] - VS_IDENTITY_STRUCTURE_TOLERANCE
        groups = (s[f"pop_trans{d}"] >= s[f"pop_ident{d}"] - VS_IDENTITY_POPULATION_TOLERANCE
                  or not np.isfinite(s[f"pop_ident{d}"])
                  or s.get("n_shared", POPULATION_MIN_SHARED) < POPULATION_MIN_SHARED)
        value.update({f"mixing_gain{d}": mix[f"after_shared{d}"] - mix[f"before{d}"],
                      f"structure_identity{d}": s[f"ident{d}"],
                      f"structure_loss{d}": s[f"ident{d}"] - s[f"trans{d}"],
                      f"populations_identity{d}": s[f"pop_ident{d}"],
                      f"populations{d}": s[f"pop_trans{d}"]})
        lost = [w for w, ok in (("mixing", mixes), ("structure", keeps),
                                ("populations", groups)) if not ok]
        n_worse = max(n_worse, len(lost))
        if lost:
            worse.append(f"{label} on {' and '.join(lost)}")
    status = "fail" if n_worse >= 2 else "warn" if n_worse == 1 else "pass"
    if status == "pass":
        sentence = ("translation mixes the domains and keeps structure at least as well as "
                    "doing nothing (the shared features as they are)")
    else:
        sentence = ("translation is worse than doing nothing (the shared features as they "
                    f"are) {'; '.join(worse)}: compare with the unaligned data before use")
    return Check("vs_identity", status, value, thr, sentence)


def residual_check(factor: float, first: Check) -> Check:
    """What the fit kept of its learnt departure from doing nothing on the shared features
    (``MAGAN.shared_residual_``), with ``first``, the ``vs_identity`` check of the full
    translation, as the reason when it kept less than all."""
    value = {"factor": float(factor)}
    if factor >= 1.0:
        return Check("shared_residual", "pass", value, {},
                     "the learnt translation of the shared features is kept in full")
    what = ("dropped: the shared features are passed on as measured" if factor == 0 else
            f"scaled by {factor:g}")
    return Check("shared_residual", "warn", value, {},
                 f"the learnt change of the shared features was {what}, because the full "
                 f"translation was worse than doing nothing ({first.sentence})")


def _check_correspondence(model: MAGAN, n_pairs: int, has_relation: bool) -> Check:
    if not model.correspondence:
        return Check("correspondence", "warn", {}, {},
                     "plain GAN (correspondence off): populations may be matched by any "
                     "permutation, and nothing here can tell")
    if n_pairs or model.n_known_pairs_ or has_relation:
        return Check("correspondence", "pass", {"n_shared": float(n_pairs),
                                                "n_known_pairs": float(model.n_known_pairs_)},
                     {}, "correspondence given (shared features, known pairs or a relation)")
    return Check("correspondence", "warn", {}, {},
                 "no shared features, known pairs or relation: populations may be matched by "
                 "any permutation, and nothing here can tell")


@dataclass(frozen=True)
class Reference:
    """What the checks compare a translation with, computed once per fit: the cells used
    (standardised ``z1``, ``z2``), each domain on its own principal axes with its
    neighbours, doing nothing (the identity on the shared features) and its scores, each
    domain's populations, and the checks on the data alone. Why a separate step: the
    fall-back towards doing nothing re-judges up to three translations of the same cells,
    and only the translation changes between them."""

    z1: np.ndarray
    z2: np.ndarray
    pairs: list[tuple[int, int]]
    own: tuple[Any, Any]
    p: tuple[np.ndarray, np.ndarray]
    neighbours: tuple[np.ndarray | None, np.ndarray | None]
    identity: tuple[np.ndarray | None, np.ndarray | None]
    shared: tuple[Any, Any] = (None, None)
    real: tuple[np.ndarray | None, np.ndarray | None] = (None, None)
    populations: tuple[list[np.ndarray] | None, list[np.ndarray] | None] = (None, None)
    scores: Mapping[str, float] = field(default_factory=dict)
    mixing: Mapping[str, float] = field(default_factory=dict)
    data_checks: tuple[Check, ...] = ()
    seconds: float = 0.0


def prepare_reference(model: MAGAN, x1: Any, x2: Any, *, shared_features: Any = None,
                      max_cells: int = MAX_CELLS, k: int = K_NEIGHBOURS) -> Reference:
    """The :class:`Reference` for judging ``model``'s translations of ``x1`` and ``x2`` (at
    most ``max_cells`` rows of each, drawn with ``model.seed``); arguments as
    :func:`diagnose_fitted`'s. Depends on the model's preprocessing, not on its generators."""
    check_positive_int("diagnostics", "max_cells", max_cells, low=3)
    t0 = time.perf_counter()
    rng = np.random.default_rng(model.seed)
    m1 = model.check_input(x1, domain=1)
    m2 = model.check_input(x2, domain=2)
    _, raw1 = _subsample(m1.X, max_cells, rng)
    _, raw2 = _subsample(m2.X, max_cells, rng)
    z1 = apply_steps(model.preprocessing1_, raw1).astype(np.float64)
    z2 = apply_steps(model.preprocessing2_, raw2).astype(np.float64)
    # A feature constant in one domain is no "same value" to compare with (a millionfold
    # copy in that domain's units): left out here as in the fit.
    pairs = informative_pairs(_shared_pairs(model, shared_features),
                              model.preprocessing1_[-1], model.preprocessing2_[-1])[0]
    i = [p[0] for p in pairs]
    j = [p[1] for p in pairs]
    id12 = _identity(model, z1, i, j, 1) if pairs else None
    id21 = _identity(model, z2, j, i, 2) if pairs else None
    checks = [_check_covariation(pairs, z1, z2, rng)]
    # Bases: each domain's own space, and (for > 50 shared) the shared columns of each.
    own1, own2 = _pca_basis(z1), _pca_basis(z2)
    p1, p2 = _project(z1, own1), _project(z2, own2)
    nn1 = _neighbours(p1, min(k, len(z1) - 2)) if len(z1) > 2 else None
    nn2 = _neighbours(p2, min(k, len(z2) - 2)) if len(z2) > 2 else None
    ref = Reference(z1, z2, pairs, (own1, own2), (p1, p2), (nn1, nn2), (id12, id21))
    if pairs:
        # Every feature shared, in order (same genes): the shared space is the whole one.
        sh2 = own2 if j == list(range(z2.shape[1])) else _pca_basis(z2[:, j])
        sh1 = own1 if i == list(range(z1.shape[1])) else _pca_basis(z1[:, i])
        real2, real1 = _project(z2[:, j], sh2), _project(z1[:, i], sh1)
        ident12, ident21 = _project(id12, sh2), _project(id21, sh1)
        checks.append(_check_dependence(
            pairs, real1, real2, z1, z2, rng, covaried=checks[0].status == "pass",
            names=(model.feature_names1_, model.feature_names2_)))
        pop1, pop2 = _population_sets(p1, model.seed), _population_sets(p2, model.seed)
        scores = {"ident12": structure_score(p1, _reduce(id12), k, before_neighbours=nn1),
                  "ident21": structure_score(p2, _reduce(id21), k, before_neighbours=nn2),
                  "n_shared": float(len(pairs)),
                  "pop_ident12": mean_population_agreement(pop1, ident12, real2, pop2, k),
                  "pop_ident21": mean_population_agreement(pop2, ident21, real1, pop1, k)}
        mixing = {"before12": mixing_score(ident12, real2, k=k),
                  "before21": mixing_score(ident21, real1, k=k)}
        ref = dataclasses.replace(ref, shared=(sh1, sh2), real=(real1, real2),
                                  populations=(pop1, pop2), scores=scores, mixing=mixing)
    return dataclasses.replace(ref, data_checks=tuple(checks),
                               seconds=time.perf_counter() - t0)


def diagnose_reference(model: MAGAN, ref: Reference, *, has_relation: bool = False,
                       k: int = K_NEIGHBOURS) -> Diagnostics:
    """Judge ``model``'s translations (its generators as they are now) against ``ref``."""
    t0 = time.perf_counter()
    z1, z2, pairs = ref.z1, ref.z2, ref.pairs
    (own1, own2), (p1, p2), (nn1, nn2) = ref.own, ref.p, ref.neighbours
    g12, g21 = model.module_.g12, model.module_.g21
    y12, y21 = _generate(g12, z1), _generate(g21, z2)
    cyc1, cyc2 = _generate(g21, y12), _generate(g12, y21)
    i = [p[0] for p in pairs]
    j = [p[1] for p in pairs]
    checks = [_check_shared(model, pairs, y12, y21, *ref.identity), *ref.data_checks]
    s = {"trans12": structure_score(p1, _reduce(y12), k, before_neighbours=nn1),
         "trans21": structure_score(p2, _reduce(y21), k, before_neighbours=nn2),
         **ref.scores}
    mix = {"after12": mixing_score(_project(y12, own2), p2, k=k),
           "after21": mixing_score(_project(y21, own1), p1, k=k), **ref.mixing}
    if pairs:
        (sh1, sh2), (real1, real2), (pop1, pop2) = ref.shared, ref.real, ref.populations
        moved12 = _project(y12[:, j], sh2)
        moved21 = _project(y21[:, i], sh1)
        s.update({"pop_trans12": mean_population_agreement(pop1, moved12, real2, pop2, k),
                  "pop_trans21": mean_population_agreement(pop2, moved21, real1, pop1, k)})
        # Every output column shared: the same cells in permuted columns, the same score.
        mix.update({"after_shared12": mix["after12"] if len(set(j)) == z2.shape[1]
                    else mixing_score(moved12, real2, k=k),
                    "after_shared21": mix["after21"] if len(set(i)) == z1.shape[1]
                    else mixing_score(moved21, real1, k=k)})
    checks.append(_check_structure(s["trans12"], s["trans21"]))
    checks.append(_check_mixing(mix))
    checks.append(_check_cycle(_cycle_error(z1, cyc1), _cycle_error(z2, cyc2)))
    checks.append(_check_range(y12, y21, z1, z2, model))
    checks.append(_check_vs_identity(mix, s, bool(pairs)))
    checks.append(_check_correspondence(model, len(pairs), has_relation))
    return Diagnostics.from_checks(checks, (len(z1), len(z2)),
                                   ref.seconds + time.perf_counter() - t0)


def diagnose_fitted(model: MAGAN, x1: Any, x2: Any, *, shared_features: Any = None,
                    has_relation: bool = False, max_cells: int = MAX_CELLS,
                    k: int = K_NEIGHBOURS) -> Diagnostics:
    """Run every check on a fitted ``model`` with cells of both domains (no ground truth):
    :func:`prepare_reference`, then :func:`diagnose_reference`.

    x1, x2
        The cells it was fitted on (or others of the same domains): arrays, DataFrames,
        AnnData or on-disk matrices; at most ``max_cells`` rows of each are read.
    shared_features
        Judge on these pairs instead of the model's own (e.g. a plain GAN against the
        coordinate it should have kept); same forms as ``fit``'s.
    has_relation
        The model was fitted with a ``relation`` (not stored in the model).
    """
    ref = prepare_reference(model, x1, x2, shared_features=shared_features,
                            max_cells=max_cells, k=k)
    return diagnose_reference(model, ref, has_relation=has_relation, k=k)


# --------------------------------------------------------------------------- held-out pairs


def _rank_among(query: np.ndarray, partners: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """For each query row q: the fraction of ``pool`` rows strictly closer to q than its
    partner (the partner itself is in the pool at distance exactly that, so never counted)."""
    d_partner = np.sqrt(((query - partners) ** 2).sum(axis=1))
    out = np.empty(len(query))
    for start in range(0, len(query), 256):
        q = query[start:start + 256]
        d = np.sqrt(np.maximum((q ** 2).sum(1)[:, None] - 2 * q @ pool.T
                               + (pool ** 2).sum(1)[None], 0.0))
        out[start:start + 256] = (d < d_partner[start:start + 256, None] - 1e-9).mean(axis=1)
    return out


def holdout_known_pairs(model: MAGAN, x1: Any, x2: Any, *, known_pairs: Any,
                        fraction: float = 0.25, seed: int | None = None,
                        max_cells: int = MAX_CELLS, **fit_kw: Any) -> Check:
    """Held-out known pairs: fit a clone of ``model`` (``MAGAN(**model.get_params())``,
    unfitted parameters only) without ``fraction`` of ``known_pairs``, then score those.

    Cost: one more fit with the same ``n_steps``. ``fit_kw`` are passed to that fit (e.g.
    ``shared_features``); ``known_pairs`` as ``fit`` takes them. Returns the
    ``known_pairs_heldout`` check: FOSCTTM of G12(held-out x1 rows) among all x2 cells (at
    most ``max_cells``, plus the partners) and the reverse, and the held-out pairs' mean
    squared error in the target's standardised units. ``"n/a"`` with fewer than
    :data:`HELDOUT_MIN_PAIRS` pairs.
    """
    from magan.data import as_matrix, host_matrix, is_out_of_core

    thr = {"pass": HELDOUT_FOSCTTM_PASS, "fail": HELDOUT_FOSCTTM_FAIL,
           "min_pairs": float(HELDOUT_MIN_PAIRS)}
    if not 0 < fraction < 1:
        raise ConfigError(f"fraction must be in (0, 1). Got {fraction!r} instead.")
    t0 = time.perf_counter()
    m1, m2 = (host_matrix(x, name=f"x{d}", layer=layer, cell_names=True)
              if is_out_of_core(x, layer) else
              as_matrix(x, name=f"x{d}", layer=layer, allow_nonfinite=True)
              for d, x, layer in ((1, x1, fit_kw.get("layer1")), (2, x2, fit_kw.get("layer2"))))
    known = resolve_known_pairs(known_pairs, m1, m2)
    if len(known) < HELDOUT_MIN_PAIRS:
        return Check("known_pairs_heldout", "n/a", {"n_pairs": float(len(known))}, thr,
                     f"fewer than {HELDOUT_MIN_PAIRS} known pairs: none held out")
    rng = np.random.default_rng(model.seed if seed is None else seed)
    n_held = max(1, round(fraction * len(known)))
    order = rng.permutation(len(known))
    held, train = known[order[:n_held]], known[order[n_held:]]
    clone = type(model)(**{**model.get_params(), "progress": False})
    clone.fit(x1, x2, known_pairs=train, diagnose=False, **fit_kw)
    z1h = apply_steps(clone.preprocessing1_, take_rows(m1.X, held[:, 0]))
    z2h = apply_steps(clone.preprocessing2_, take_rows(m2.X, held[:, 1]))
    _, pool1 = _subsample(m1.X, max_cells, rng)
    _, pool2 = _subsample(m2.X, max_cells, rng)
    pool1 = apply_steps(clone.preprocessing1_, pool1).astype(np.float64)
    pool2 = apply_steps(clone.preprocessing2_, pool2).astype(np.float64)
    y12 = _generate(clone.module_.g12, z1h)
    y21 = _generate(clone.module_.g21, z2h)
    z1h, z2h = z1h.astype(np.float64), z2h.astype(np.float64)
    f12 = _rank_among(y12, z2h, np.vstack([pool2, z2h]))
    f21 = _rank_among(y21, z1h, np.vstack([pool1, z1h]))
    fos = float((f12.mean() + f21.mean()) / 2)
    e12 = float(((y12 - z2h) ** 2).mean())
    e21 = float(((y21 - z1h) ** 2).mean())
    status = _grade(fos, HELDOUT_FOSCTTM_PASS, HELDOUT_FOSCTTM_FAIL, higher_is_better=False)
    sentence = (f"{n_held} held-out known pairs: FOSCTTM {fos:.2f} (0 = each partner nearest, "
                f"0.5 = chance), error {e12:.2f} / {e21:.2f} in standardised units "
                f"(one more fit, {time.perf_counter() - t0:.0f} s)")
    if status != "pass":
        sentence += "; held-out partners are not found"
    return Check("known_pairs_heldout", status,
                 {"foscttm": fos, "foscttm12": float(f12.mean()), "foscttm21": float(f21.mean()),
                  "error12": e12, "error21": e21, "n_heldout": float(n_held),
                  "n_pairs": float(len(known))}, thr, sentence)
