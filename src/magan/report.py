"""One self-contained HTML page per MAGAN run that leads with the answer.

Why a single file: a biologist mails it to a collaborator or opens it from a cluster share; the
figures are inlined as base64 PNG and the page loads nothing from anywhere.

Order (why: a reader who stops early has still read whether to trust the alignment): the
verdict and its reasons with every check; the before/after embeddings by domain and by
population (the given labels, else a quick k-means, said so in the caption); the per-marker
agreement table, worst first, and the imputed-vs-measured scatters; the training curves; then
metrics (only if any), summary counts, parameters, shared features, known-pair displacement
and the run directory's files. What appears depends on what is known (see
:func:`write_report`): a saved model alone gives the verdict, loss curves and parameters; the
data adds the embeddings, agreement table and scatters; known pairs add their figures.

A run directory written by ``magan align --out RUN_DIR`` holds ``model/`` (``MAGAN.save``) and
may hold ``metrics.json`` (a flat ``{name: number}`` object), the translations
``x1_in_domain2.csv`` / ``x2_in_domain1.csv``, and ``inputs.json``::

    {"x1": "path", "x2": "path", "layer1": null, "layer2": null,
     "labels1": "label", "labels2": "label", "known_pairs": "pairs.csv"}

(paths relative to the run directory or absolute; ``labels*`` name ``obs`` columns; every key
but ``x1``/``x2`` optional), from which the report re-reads the inputs with :func:`magan.io.read`.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io as _io
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from magan.errors import ConfigError, DataError, FileFormatError, OutputExistsError
from magan.io import write_text_atomic

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from magan.estimator import MAGAN

__all__ = ["render_html", "write_report"]

MODEL_DIR = "model"
METRICS_FILE = "metrics.json"
RUN_FILE = "run.json"
INPUTS_FILE = "inputs.json"
TRANSLATION_FILES = ("x1_in_domain2.csv", "x2_in_domain1.csv")
REPORT_FILE = "report.html"
SCATTER_MARKERS = 8  # shared features drawn as scatters (worst agreement first)
SCATTER_POINTS = 1500  # cells per scatter panel
#: Cells per domain, drawn at random, behind the embeddings, the quick clusters and the
#: per-marker table: the report's cost is bounded by this, not by the data's size.
MAX_CELLS = 5000
#: Without labels the populations are a quick k-means: about one cluster per this many cells,
#: at most MAX_CLUSTERS (so that a small data set is not cut into crumbs).
CELLS_PER_CLUSTER = 100
MAX_CLUSTERS = 8

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:2em auto;
max-width:1100px;padding:0 1em;color:#222;line-height:1.45}
h1{margin-bottom:.2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
.meta{color:#666;font-size:.9em}.note{color:#555;background:#f6f6f6;padding:.5em .8em;
border-left:3px solid #bbb}table{border-collapse:collapse;font-size:.9em;margin:.5em 0}
td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left}th{background:#f3f3f3}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.verdict{padding:.6em .9em;border-left:5px solid #2a2;background:#f2faf2}
.verdict.check{border-color:#d90;background:#fdf8ec}.verdict.failed{border-color:#c22;
background:#fcf0f0}
figure{margin:1em 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{color:#555;font-size:.9em}
"""


# --------------------------------------------------------------------------- inputs


def _read_metrics(path: Path) -> tuple[dict[str, Any], str | None]:
    """metrics.json as a dict; a broken file becomes a note on the page, not a lost report."""
    if not path.is_file():
        return {}, None
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as exc:
        return {}, f"{path.name} could not be read: {exc}"
    if not isinstance(data, dict):
        return {}, f"{path.name} is not a JSON object of name: value"
    return data, None


def _read_inputs(run_dir: Path) -> dict[str, Any]:
    path = run_dir / INPUTS_FILE
    if not path.is_file():
        return {}
    try:
        spec = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FileFormatError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(spec, dict) or "x1" not in spec or "x2" not in spec:
        raise FileFormatError(f"{path} must be a JSON object with at least 'x1' and 'x2' paths")
    from magan.io import read, read_pairs

    def resolve(p: str) -> Path:
        q = Path(p).expanduser()
        return q if q.is_absolute() else run_dir / q

    out: dict[str, Any] = {
        "x1": read(resolve(spec["x1"]), layer=spec.get("layer1")),
        "x2": read(resolve(spec["x2"]), layer=spec.get("layer2")),
        "labels1": spec.get("labels1"),
        "labels2": spec.get("labels2"),
    }
    if spec.get("known_pairs"):
        out["known_pairs"] = read_pairs(resolve(spec["known_pairs"]),
                                        list(out["x1"].obs_names), list(out["x2"].obs_names))
    return out


def _default_labels(labels: Any, x: Any) -> Any:
    """AnnData read by magan.io keeps a ``label`` column in ``obs``: use it when none is given."""
    if labels is None and hasattr(x, "obs") and "label" in x.obs:
        return "label"
    return labels


# --------------------------------------------------------------------------- HTML pieces


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return "n/a" if not np.isfinite(v) else f"{v:.4g}"
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, default=str)
    return str(value)


def _table(rows: list[tuple[Any, ...]], header: tuple[str, ...]) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = []
        for v in row:
            num = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
            cells.append(f'<td class="num">{_esc(_fmt(v))}</td>' if num
                         else f"<td>{_esc(_fmt(v))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _note(text: str) -> str:
    return f'<p class="note">{_esc(text)}</p>'


def _png(fig: Figure, dpi: int) -> str:
    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _figure_html(draw: Callable[[Figure], Any], caption: str, alt: str, dpi: int) -> str:
    """Draw into a pyplot-free Figure (no GUI backend, nothing left open), inline it as PNG."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5))
    result = draw(fig)
    if result is not None and hasattr(result, "figure") and result.figure is not fig:
        fig = result.figure
    data = _png(fig, dpi)
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{_esc(alt)}">'
            f"<figcaption>{_esc(caption)}</figcaption></figure>")


def _section(sid: str, title: str, body: str) -> str:
    return f'<section id="{sid}"><h2>{_esc(title)}</h2>{body}</section>'


def _check_values(value: Mapping[str, float], limit: int = 4) -> str:
    """A check's measured numbers on one line, the first ``limit`` of them (why: the table is a
    summary; run.json keeps every number)."""
    items = [f"{k} {_fmt(v)}" for k, v in value.items()]
    more = f", +{len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def _verdict_html(diag: Any) -> str:
    """The self-diagnosis first (why: a reader who stops after one line must see whether the
    alignment can be trusted), then each check's status, numbers and sentence."""
    from magan.diagnostics import Diagnostics

    if diag is None:
        return _section("verdict", "Verdict", _note(
            "No self-diagnosis recorded for this run (fitted with diagnose=False, or by a magan "
            "older than its diagnostics)."))
    if isinstance(diag, Mapping):
        diag = Diagnostics.from_dict(diag)
    reasons = "".join(f"<li>{_esc(r)}</li>" for r in diag.reasons)
    body = (f'<div class="verdict {_esc(diag.verdict)}"><strong>Alignment verdict: '
            f"{_esc(diag.verdict)}</strong>"
            + (f"<ul>{reasons}</ul>" if reasons else "") + "</div>")
    body += "".join(_note(f"Note: {n}") for n in diag.notes)
    if diag.checks:
        body += _table([(c.name, c.status, _check_values(c.value), c.sentence)
                        for c in diag.checks], ("check", "status", "value", "finding"))
    body += _note(f"Measured without ground truth on {diag.n_cells_used[0]} + "
                  f"{diag.n_cells_used[1]} cells (magan.diagnostics).")
    return _section("verdict", "Verdict", body)


# --------------------------------------------------------------------------- the data, once


@dataclass(frozen=True)
class _Cells:
    """The two domains read once for every section: the full matrices (for counts and known
    pairs) and one random subsample of at most :data:`MAX_CELLS` per domain, translated both
    ways. Why one subsample: the report's cost stays bounded whatever the data's size, and the
    embeddings, populations and correlations all describe the same cells."""

    X1: np.ndarray
    X2: np.ndarray
    S1: np.ndarray  # measured domain-1 cells of the subsample
    S2: np.ndarray
    T1: np.ndarray  # G12(S1), in domain 2's units
    U2: np.ndarray  # G21(S2), in domain 1's units
    labels1: np.ndarray | None  # one per subsampled cell: the user's labels or quick clusters
    labels2: np.ndarray | None
    n_clusters: int  # > 0 when labels1/labels2 are a quick k-means, not the user's
    pairs: np.ndarray | None  # resolved known pairs, (row in X1, row in X2)


def _rows(n: int, rng: np.random.Generator) -> np.ndarray:
    return np.arange(n) if n <= MAX_CELLS else np.sort(rng.choice(n, MAX_CELLS, replace=False))


def _quick_clusters(T1: np.ndarray, S2: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """k-means on the 'after' panel's points (translated domain-1 and measured domain-2 cells
    together, standardised by domain 2) when no labels are given. Why: colour by population
    still shows whether domain 1's populations land on domain 2's, and fitting both domains
    together makes a cluster mean the same region in both."""
    import warnings

    from sklearn.cluster import KMeans
    from sklearn.exceptions import ConvergenceWarning

    both = np.vstack([T1, S2]).astype(np.float64)
    sd = S2.std(axis=0)
    z = (both - S2.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    k = int(min(MAX_CLUSTERS, len(z), max(2, len(z) // CELLS_PER_CLUSTER)))
    with warnings.catch_warnings():  # fewer distinct points than k: fewer clusters, said so
        warnings.simplefilter("ignore", ConvergenceWarning)
        ids = KMeans(n_clusters=k, n_init=3, random_state=0).fit_predict(z)
    names = np.array([f"cluster {i + 1}" for i in ids])
    return names[:len(T1)], names[len(T1):], k


def _read_cells(model: MAGAN, x1: Any, x2: Any, labels1: Any, labels2: Any,
                known_pairs: Any) -> _Cells:
    from magan.tl import domain_matrix

    X1 = domain_matrix(model, x1, domain=1)
    X2 = domain_matrix(model, x2, domain=2)
    rng = np.random.default_rng(0)
    r1, r2 = _rows(len(X1), rng), _rows(len(X2), rng)
    S1, S2 = np.asarray(X1[r1]), np.asarray(X2[r2])
    T1, U2 = model.transform(S1), model.inverse_transform(S2)
    from magan.plots import cell_labels

    l1 = cell_labels(labels1, x1, len(X1), "labels1")
    l2 = cell_labels(labels2, x2, len(X2), "labels2")
    if l1 is not None and l2 is not None:
        lab1, lab2, k = l1[r1], l2[r2], 0
    else:
        lab1, lab2, k = _quick_clusters(T1, S2)
    pairs = None
    if known_pairs is not None:
        from magan.data import as_matrix, resolve_known_pairs

        pairs = resolve_known_pairs(known_pairs, as_matrix(x1, name="x1", min_rows=1),
                                    as_matrix(x2, name="x2", min_rows=1))
    return _Cells(X1, X2, S1, S2, T1, U2, lab1, lab2, k, pairs)


# --------------------------------------------------------------------------- the sections


def _alignment_html(model: MAGAN, cells: _Cells | None, method: str, dpi: int) -> str:
    from magan import plots

    if cells is None:
        return _section("alignment", "Alignment", _note(
            "Embeddings, per-marker agreement and imputation scatters need the data: pass x1 "
            f"and x2 to write_report (or record the input paths in {INPUTS_FILE} in the run "
            "directory)."))
    caption = ("Left: the domains in their shared features before alignment. Right: domain-1 "
               "cells translated by G12 over measured domain-2 cells, in an embedding fitted on "
               "domain 2. A good alignment interleaves them. Top row: by domain. ")
    if cells.n_clusters:
        caption += (f"Bottom row: by population, where the populations are a quick k-means "
                    f"({cells.n_clusters} clusters) of the right-hand panel's points, not labels "
                    "(pass labels1 and labels2 for cell types); a domain-1 cell keeps its "
                    "translation's cluster on the left.")
    else:
        caption += "Bottom row: by the given labels, cell types meeting their own kind."
    if len(cells.S1) < len(cells.X1) or len(cells.S2) < len(cells.X2):
        caption += (f" {len(cells.S1)} of {len(cells.X1)} domain-1 and {len(cells.S2)} of "
                    f"{len(cells.X2)} domain-2 cells, drawn at random.")
    body = _figure_html(
        lambda f: plots.alignment(model, cells.S1, cells.S2, labels1=cells.labels1,
                                  labels2=cells.labels2, method=method, max_cells=None, fig=f),
        caption, "alignment embeddings", dpi)
    return _section("alignment", "Alignment", body)


def _pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-column Pearson r (NaN for a constant column, or under two cells)."""
    from magan.metrics import marker_correlation

    if len(a) < 2:
        return np.full(a.shape[1], np.nan)
    return marker_correlation(a, b)["pearson"]


def _agreement_rows(model: MAGAN, cells: _Cells) -> list[tuple[str, str, float, float]]:
    """(feature 1, feature 2, r of G12(x1)[:, j] with x1[:, i], r of G21(x2)[:, i] with
    x2[:, j]) per shared pair, the worse direction's lowest r first (why: the table is read
    for the features the translation did not keep; a NaN r, a constant feature, goes last)."""
    i = [model.feature_names1_.index(a) for a, _ in model.shared_features_]
    j = [model.feature_names2_.index(b) for _, b in model.shared_features_]
    r12 = _pearson(np.asarray(cells.T1)[:, j], cells.S1[:, i])
    r21 = _pearson(np.asarray(cells.U2)[:, i], cells.S2[:, j])
    worst = np.fmin(r12, r21)
    order = np.argsort(np.where(np.isfinite(worst), worst, np.inf), kind="stable")
    return [(model.shared_features_[p][0], model.shared_features_[p][1], float(r12[p]),
             float(r21[p])) for p in order]


def _agreement_html(model: MAGAN, cells: _Cells | None) -> str:
    if cells is None:
        return ""
    if not model.shared_features_:
        return _section("agreement", "Per-marker agreement", _note(
            "No shared features, so no marker to compare across the translation."))
    body = _table(_agreement_rows(model, cells),
                  ("domain 1", "domain 2", "r, G12(x1) vs x1", "r, G21(x2) vs x2"))
    body += _note(f"Pearson r per shared feature between a cell's translation and its own "
                  f"measured value, on {len(cells.S1)} + {len(cells.S2)} cells; worst first. "
                  "The self-diagnosis' shared_agreement check summarises these as a median.")
    return _section("agreement", "Per-marker agreement", body)


def _imputation_html(model: MAGAN, cells: _Cells | None, dpi: int) -> str:
    from magan import plots

    if cells is None:
        return ""
    parts = []
    if model.shared_features_:
        # the worst-agreeing few (all are in the agreement table): 37 panels took 4 s to draw
        worst = [(a, b) for a, b, _, _ in _agreement_rows(model, cells)[:SCATTER_MARKERS]]
        moved = pd.DataFrame(cells.T1, columns=model.feature_names2_)[[b for _, b in worst]]
        measured = pd.DataFrame(cells.S1, columns=model.feature_names1_)[[a for a, _ in worst]]
        moved.columns = measured.columns = [a if a == b else f"{a} / {b}" for a, b in worst]
        parts.append(_figure_html(
            lambda f: plots.marker_scatters(moved, measured, max_points=SCATTER_POINTS, fig=f),
            f"Shared features, the {len(worst)} with the lowest agreement: value after "
            "translation by G12 against the value measured in the same domain-1 cell. The "
            "correspondence loss asks for these to agree.",
            "shared feature scatter", dpi))
    if cells.pairs is not None:
        pairs = cells.pairs
        shared2 = {p[1] for p in model.shared_features_}
        order = ([n for n in model.feature_names2_ if n not in shared2]
                 + [n for n in model.feature_names2_ if n in shared2])
        moved_p = pd.DataFrame(model.transform(cells.X1[pairs[:, 0]]),
                               columns=model.feature_names2_)
        measured_p = pd.DataFrame(cells.X2[pairs[:, 1]], columns=model.feature_names2_)
        parts.append(_figure_html(
            lambda f: plots.marker_scatters(moved_p[order], measured_p[order], fig=f),
            "Known pairs: domain-2 features imputed for domain-1 cell i (G12) against those "
            "measured in its partner j; unshared (truly imputed) features first.",
            "known pair imputation scatter", dpi))
    if not parts:
        parts.append(_note("Imputation scatters need shared features or known pairs."))
    return _section("imputation", "Imputed vs measured", "".join(parts))


def _training_html(model: MAGAN, dpi: int) -> str:
    from magan import plots
    from magan.tl import history_summary

    history = getattr(model, "history_", None)
    if history is None or not len(history):
        return _section("training", "Training", _note("No loss history was saved with this "
                                                      "model."))
    summary = history_summary(history)
    body = _figure_html(lambda f: plots.loss_curves(history, ax=f.add_subplot()),
                        "Each loss term per training step (running mean; raw values faint).",
                        "loss curves", dpi)
    body += _table([(t, summary["final"][t], summary["tail_mean"][t])
                    for t in summary["terms"]],
                   ("term", "last step", "mean of last 10% of steps"))
    return _section("training", "Training", body)


def _metrics_html(metrics: Mapping[str, Any]) -> str:
    """Only when some are recorded (why: an empty section says nothing a reader needs)."""
    if not metrics:
        return ""
    return _section("metrics", "Metrics", _table(list(metrics.items()), ("metric", "value")))


def _summary_html(model: MAGAN, cells: _Cells | None, notes: list[str]) -> str:
    rows: list[tuple[Any, ...]] = [
        ("domain 1 features", len(model.feature_names1_)),
        ("domain 2 features", len(model.feature_names2_)),
        ("shared features", len(model.shared_features_)),
        ("known pairs (training)", int(getattr(model, "n_known_pairs_", 0))),
        ("training steps", int(getattr(model, "n_steps_trained_", 0))),
    ]
    if cells is not None:
        rows += [("domain 1 cells", len(cells.X1)), ("domain 2 cells", len(cells.X2))]
    return _section("summary", "Summary",
                    _table(rows, ("", "value")) + "".join(_note(t) for t in notes))


def _parameters_html(model: MAGAN) -> str:
    from magan.tl import model_params

    return _section("parameters", "Parameters",
                    _table(sorted(model_params(model).items()), ("parameter", "value")))


def _shared_features_html(model: MAGAN) -> str:
    if model.shared_features_:
        body = _table([(a, b) for a, b in model.shared_features_], ("domain 1", "domain 2"))
    else:
        body = _note("No shared features: the model was aligned by known pairs, a relation, or "
                     "nothing (plain GAN).")
    return _section("shared-features", "Shared features", body)


def _known_pairs_html(model: MAGAN, x1: Any, x2: Any, cells: _Cells | None, method: str,
                      dpi: int) -> str:
    from magan import plots

    if cells is None or cells.pairs is None:
        return ""
    body = _figure_html(
        lambda f: plots.pair_displacement(model, x1, x2, cells.pairs, method=method,
                                          ax=f.add_subplot()),
        "Arrows from each translated domain-1 cell of a known pair to its true partner.",
        "known pair displacement", dpi)
    return _section("known-pairs", "Known-pair displacement", body)


def _files_html(run_dir: Path | None) -> str:
    if run_dir is None or not run_dir.is_dir():
        return ""
    files = sorted(p for p in run_dir.rglob("*") if p.is_file())
    rows = [(str(p.relative_to(run_dir)), p.stat().st_size) for p in files
            if not p.name.startswith(".")]
    return _section("files", "Files in the run directory", _table(rows, ("file", "bytes")))


def _page(title: str, run_dir: Path | None, parts: list[str]) -> str:
    from magan import __version__

    when = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    where = f" · run directory {_esc(run_dir)}" if run_dir is not None else ""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{_esc(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{_esc(title)}</h1><p class=\"meta\">magan {_esc(__version__)} · written {_esc(when)}"
        f"{where}</p>{''.join(parts)}</body></html>\n"
    )


# --------------------------------------------------------------------------- the page


def render_html(
    model: MAGAN,
    *,
    x1: Any = None,
    x2: Any = None,
    labels1: Any = None,
    labels2: Any = None,
    known_pairs: Any = None,
    metrics: Mapping[str, Any] | None = None,
    title: str = "MAGAN alignment report",
    run_dir: Path | None = None,
    notes: list[str] | None = None,
    method: str = "auto",
    dpi: int = 90,
    diagnostics: Any = None,
) -> str:
    """The report as an HTML string (see :func:`write_report`, which writes it to disk).

    ``diagnostics``: a :class:`~magan.diagnostics.Diagnostics` or its ``to_dict()``; default
    the model's ``diagnostics_``. The page leads with the answer: the verdict and its reasons,
    the embeddings, the per-marker agreement; then training, and the run's details last."""
    from magan.tl import check_model

    model = check_model(model)
    if (x1 is None) != (x2 is None):
        raise ConfigError("pass both x1 and x2 (the two domains' cells), or neither")
    labels1, labels2 = _default_labels(labels1, x1), _default_labels(labels2, x2)
    cells = (_read_cells(model, x1, x2, labels1, labels2, known_pairs) if x1 is not None
             else None)
    diag = diagnostics if diagnostics is not None else getattr(model, "diagnostics_", None)
    parts = [
        _verdict_html(diag),
        _alignment_html(model, cells, method, dpi),
        _agreement_html(model, cells),
        _imputation_html(model, cells, dpi),
        _training_html(model, dpi),
        _metrics_html(dict(metrics or {})),
        _summary_html(model, cells, list(notes or [])),
        _parameters_html(model),
        _shared_features_html(model),
        _known_pairs_html(model, x1, x2, cells, method, dpi),
        _files_html(run_dir),
    ]
    return _page(title, run_dir, [p for p in parts if p])


def _load_model(run_dir: Path) -> MAGAN:
    from magan.estimator import MAGAN

    model_dir = run_dir / MODEL_DIR
    if not model_dir.is_dir() and (run_dir / "config.json").is_file():
        model_dir = run_dir  # a bare MAGAN.save directory
    return MAGAN.load(model_dir, device="cpu")


def write_report(
    run_dir: str | os.PathLike | None,
    out_path: str | os.PathLike | None = None,
    *,
    model: MAGAN | None = None,
    x1: Any = None,
    x2: Any = None,
    labels1: Any = None,
    labels2: Any = None,
    known_pairs: Any = None,
    metrics: Mapping[str, Any] | None = None,
    title: str = "MAGAN alignment report",
    method: str = "auto",
    dpi: int = 90,
    overwrite: bool = False,
) -> Path:
    """Write a self-contained HTML report of a MAGAN run; returns its path.

    run_dir
        A directory written by ``magan align --out`` (``model/``, optionally ``metrics.json``,
        ``inputs.json``; see the module docstring), a bare ``MAGAN.save`` directory, or None
        when ``model`` and ``out_path`` are given.
    out_path
        Default ``run_dir/report.html``. Written atomically; an existing file is kept unless
        ``overwrite=True`` (else :class:`magan.errors.OutputExistsError`).
    model
        A fitted MAGAN; default: loaded from ``run_dir`` (on the CPU).
    x1, x2
        The two domains' cells (arrays, DataFrames or AnnData), for the embeddings and
        imputation figures; default: read through ``run_dir/inputs.json`` if present.
    labels1, labels2
        One label per cell (arrays) or ``obs`` column names; default ``obs["label"]`` if present.
    known_pairs
        (row or obs name in x1, row or obs name in x2) pairs, for the displacement figure.
    metrics
        ``{name: value}``, shown over those in ``run_dir/metrics.json``.
    """
    run = Path(run_dir) if run_dir is not None else None
    if run is not None and not run.is_dir():
        raise FileNotFoundError(f"{run}: no such run directory")
    out = _report_path(run, out_path, overwrite)
    if model is None:
        if run is None:
            raise ConfigError("write_report needs a run_dir with a saved model, or model=")
        model = _load_model(run)
    given = {"x1": x1, "x2": x2, "labels1": labels1, "labels2": labels2,
             "known_pairs": known_pairs}
    page = (_from_run_dir(run, model, given) if run is not None
            else {**given, "metrics": {}, "notes": [], "diagnostics": None})
    if metrics is not None:
        if not isinstance(metrics, Mapping):
            raise DataError(f"metrics must be a dict of name -> value, got "
                            f"{type(metrics).__name__}")
        page["metrics"].update(metrics)
    text = render_html(model, **page, title=title, run_dir=run, method=method, dpi=dpi)
    write_text_atomic(out, text, overwrite=overwrite)
    return out


def _report_path(run: Path | None, out_path: str | os.PathLike | None,
                 overwrite: bool) -> Path:
    """The report's path, checked before a model is loaded or data read, so a path that cannot
    be written fails at once."""
    if out_path is None:
        if run is None:
            raise ConfigError("write_report needs run_dir or out_path to know where to write")
        out_path = run / REPORT_FILE
    out = Path(out_path)
    if out.exists() and not overwrite:
        raise OutputExistsError(f"{out} exists; pass overwrite=True to replace it")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"{out.parent}: the output folder does not exist")
    return out


def _from_run_dir(run: Path, model: MAGAN, given: dict[str, Any]) -> dict[str, Any]:
    """``render_html``'s data arguments completed from the run directory (verdict, metrics,
    the cells named in inputs.json), so that ``magan report OUT`` alone makes a full page; the
    notes say what came from where."""
    diagnostics = None
    if getattr(model, "diagnostics_", None) is None:
        diagnostics = _run_diagnostics(run / RUN_FILE)
    found, problem = _read_metrics(run / METRICS_FILE)
    notes = [problem] if problem else []
    if given["x1"] is None and given["x2"] is None:
        inputs = _read_inputs(run)
        if inputs:  # what the caller gave (labels, pairs) stands over the file's
            given = {k: v if v is not None else inputs.get(k) for k, v in given.items()}
            notes.append(f"Data read from the paths in {INPUTS_FILE}.")
    present = [f for f in TRANSLATION_FILES if (run / f).is_file()]
    if present:
        notes.append("Translations written by the run: " + ", ".join(present) + ".")
    return {**given, "metrics": dict(found), "notes": notes, "diagnostics": diagnostics}


def _run_diagnostics(path: Path) -> dict[str, Any] | None:
    """run.json's "diagnostics" (written by ``magan align``), or None if absent or unreadable."""
    if not path.is_file():
        return None
    try:
        found = json.loads(path.read_text()).get("diagnostics")
    except (json.JSONDecodeError, UnicodeDecodeError, OSError, AttributeError):
        return None
    return found if isinstance(found, dict) and "verdict" in found else None
