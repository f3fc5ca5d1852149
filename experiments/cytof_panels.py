"""Experiment 4 (``cytof-panels``): two CyTOF panels with a shared backbone, impute a marker.

Data: levine32 (arcsinh(x/5)), 32 markers in file order. Panel design (fixed rule): markers at
odd positions (16, CD3 among them) are the shared backbone; the even positions alternate
between panel-1-only (positions 0, 4, 8, ...) and panel-2-only (2, 6, 10, ...), 8 each.
Panel 1 is measured on donor H1's 750 cells, panel 2 on donor H2's 750 (different cells).

Leave-shared-markers-out: a group of shared markers is hidden from panel 2, so it is measured
in panel 1 only; the remaining shared markers are the correspondence. Each model imputes the
hidden markers for panel 2's cells (MAGAN: G21(panel 2)), which are scored against H2's
measured values (Pearson per marker). To fit in 10 minutes the 16 shared markers are hidden in
4 groups of 4 (``shared[g::4]``), so each marker is imputed from the other 12 shared markers:
a harder task than the paper's leave-one-out (15 remaining). Quick mode hides one group, CD3
and CD4, with fewer steps.

Baselines: ``knn_shared`` (mean of the 10 nearest panel-1 cells on the remaining shared
markers) and the plain GAN. Metric names: ``pearson_<marker>`` and ``mean_pearson``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from experiments._harness import GAN_VARIANTS, Experiment, Metrics, fit_ensemble, make_gan
from experiments.baselines import knn_impute_shared
from experiments.cytof_batch import load_levine
from magan.metrics import marker_correlation

# The full run's GAN rows; the ablation rows of _harness on request (variants=).
VARIANTS = tuple(GAN_VARIANTS)
# "magan_ensemble3" (not in the default run; pass variants=[...]): mean of ENSEMBLE default
# models, seeds 1000 * seed + k.
ENSEMBLE = 3


def panels(names: list[str]) -> tuple[list[int], list[int], list[int]]:
    """(shared, panel-1-only, panel-2-only) column indices of the 32 markers."""
    idx = list(range(len(names)))
    shared = idx[1::2]
    even = idx[0::2]
    return shared, even[0::2], even[1::2]


def settings(quick: bool) -> dict[str, Any]:
    return {"n_steps": 200 if quick else 600, "n_groups": 4,
            "variants": ["magan", "plain_gan"] if quick else list(VARIANTS),
            "quick_markers": ["CD3", "CD4"], "knn_k": 10}


def groups_of(names: list[str], shared: list[int], quick: bool, n_groups: int) -> list[list[int]]:
    if quick:
        return [[names.index("CD3"), names.index("CD4")]]
    return [shared[g::n_groups] for g in range(n_groups)]


def run(seed: int, quick: bool = False, variants: list[str] | None = None) -> Metrics:
    s = settings(quick)
    if variants is not None:
        s["variants"] = variants
    h1, h2, _, _, names = load_levine()
    shared, only1, only2 = panels(names)
    out: Metrics = {m: {} for m in ["knn_shared", *s["variants"]]}
    for hidden in groups_of(names, shared, quick, s["n_groups"]):
        keep = [j for j in shared if j not in hidden]
        cols1 = shared + only1  # panel 1 measures every shared marker, hidden ones included
        cols2 = keep + only2
        p1, p2 = h1[:, cols1], h2[:, cols2]
        pairs = [(cols1.index(j), cols2.index(j)) for j in keep]
        at = [cols1.index(j) for j in hidden]  # hidden markers' columns in panel 1
        truth = h2[:, hidden]
        hnames = [names[j] for j in hidden]

        def record(method: str, imputed: np.ndarray, truth=truth, hnames=hnames) -> None:
            r = marker_correlation(imputed, truth, hnames)
            for nm, v in zip(r["marker"], r["pearson"], strict=True):
                out[method][f"pearson_{nm}"] = float(v)

        record("knn_shared", knn_impute_shared(p2, p1, [(b, a) for a, b in pairs])[:, at])
        for variant in s["variants"]:
            fit_kw = {} if variant == "plain_gan" else {"shared_features": pairs}
            if variant == "magan_ensemble3":  # mean of ENSEMBLE default models
                model = fit_ensemble(seed, s["n_steps"], p1, p2, ENSEMBLE, **fit_kw)
            else:
                model = make_gan(variant, seed, s["n_steps"]).fit(p1, p2, **fit_kw)
            record(variant, model.inverse_transform(p2)[:, at])
    for vals in out.values():
        vals["mean_pearson"] = float(np.nanmean(list(vals.values())))
    return out


EXPERIMENT = Experiment(
    name="cytof-panels",
    run=run,
    description="levine32 H1 (panel 1: 16 shared + 8) vs H2 (panel 2: 16 shared + 8 others); "
                "shared markers hidden from panel 2 in 4 groups of 4, imputed for H2's cells, "
                "Pearson with the measured value.",
    settings=settings,
    paper={("magan", "pearson_CD3"): "0.801 (leave-one-out)",
           ("plain_gan", "pearson_CD3"): "−0.275"},
    extra_variants=("magan_ensemble3",),
)
