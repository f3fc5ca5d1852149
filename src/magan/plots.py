"""Figures of a MAGAN run, with matplotlib: losses, alignment embeddings, imputation, known pairs.

Why pictures: a GAN's numbers alone hide its failure modes (a collapsed generator, clusters
matched to the wrong partner), which one look at an embedding shows.

Every function returns what it drew on: an ``Axes`` for one panel (pass ``ax=`` to draw into
yours) or a ``Figure`` for several (pass ``fig=``). Nothing here calls ``plt.show`` or picks a
backend. Not imported by ``magan/__init__``: matplotlib loads only when plots are asked for.

Embeddings are fitted on **domain 2's space** (its cells, standardised by domain 2's own mean and
spread), then domain-1 cells translated by G12 are placed in it, so both share axes. UMAP is used
when ``umap-learn`` is installed and ``method="auto"``; else PCA.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from magan.errors import ConfigError, DataError
from magan.tl import domain_matrix

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from magan.estimator import MAGAN

__all__ = [
    "alignment",
    "cell_labels",
    "embedding",
    "loss_curves",
    "marker_scatter",
    "marker_scatters",
    "pair_displacement",
]

DOMAIN_COLORS = {"domain1": "#e66101", "domain2": "#5e3c99"}
_LOSS_GROUPS = ("generator", "adversarial", "cycle", "discriminator")


def _new_axes(ax: Axes | None, figsize: tuple[float, float]) -> Axes:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    return plt.figure(figsize=figsize).add_subplot()


def _new_figure(fig: Figure | None, figsize: tuple[float, float]) -> Figure:
    if fig is not None:  # a grid needs its own size: the figure is cleared and resized
        fig.clear()
        fig.set_size_inches(figsize)
        return fig
    import matplotlib.pyplot as plt

    return plt.figure(figsize=figsize)


# --------------------------------------------------------------------------- losses


def _history(history: Any) -> pd.DataFrame:
    if hasattr(history, "history_"):
        history = history.history_
    if not isinstance(history, pd.DataFrame):
        raise DataError("loss_curves needs a MAGAN with history_ or its history DataFrame, got "
                        f"{type(history).__name__}")
    return history


def loss_curves(
    history: Any,
    *,
    terms: Sequence[str] | None = None,
    smooth: int | None = None,
    log: bool = True,
    raw: bool = True,
    ax: Axes | None = None,
) -> Axes:
    """Each loss term over training steps, smoothed by a running mean.

    ``history`` is a fitted MAGAN or its ``history_``. ``smooth``: window in steps (default about
    2% of the run; 1 for none). ``log``: log-scale y axis (terms differ by orders of magnitude;
    non-positive values are not drawn). ``raw``: also draw the unsmoothed values, faintly.
    A healthy run shows the discriminator losses settling near 2·ln 2 ≈ 1.39 and the cycle and
    correspondence terms falling.
    """
    frame = _history(history)
    if terms is not None:
        unknown = [t for t in terms if t not in frame.columns]
        if unknown:
            raise DataError(f"unknown loss terms {unknown}; history has {list(frame.columns)}")
        frame = frame[list(terms)]
    ax = _new_axes(ax, (7.5, 4.0))
    if len(frame) == 0:
        ax.text(0.5, 0.5, "no loss history (the model was not trained here)",
                ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return ax
    if smooth is None:
        smooth = max(1, len(frame) // 50)
    if not isinstance(smooth, (int, np.integer)) or smooth < 1:
        raise ConfigError(f"smooth must be an int >= 1 or None. Got {smooth!r} instead.")
    steps = np.asarray(frame.index)
    import matplotlib as mpl

    colors = mpl.colormaps["tab10" if frame.shape[1] <= 10 else "tab20"].colors
    for i, term in enumerate(frame.columns):
        values = frame[term].astype(float)
        smoothed = values.rolling(int(smooth), min_periods=1).mean()
        color = colors[i % len(colors)]
        style = "--" if term.startswith("discriminator") else "-"
        if raw and smooth > 1:
            ax.plot(steps, _positive(values, log), color=color, alpha=0.15, lw=0.6)
        ax.plot(steps, _positive(smoothed, log), color=color, ls=style, lw=1.4, label=term)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel("loss" + (" (log scale)" if log else ""))
    ax.set_title("Loss terms" + (f" (running mean over {smooth} steps)" if smooth > 1 else ""))
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False)
    ax.grid(alpha=0.3, which="both", lw=0.5)
    return ax


def _positive(values: pd.Series, log: bool) -> np.ndarray:
    out = values.to_numpy(dtype=float)
    return np.where(out > 0, out, np.nan) if log else out


# --------------------------------------------------------------------------- embeddings


class _Embedder:
    """Standardise with domain 2's statistics, then PCA (or UMAP) fitted on domain 2's cells."""

    def __init__(self, method: str = "auto", seed: int = 0) -> None:
        if method not in {"auto", "pca", "umap"}:
            raise ConfigError(f"method must be 'auto', 'pca' or 'umap'. Got {method!r} instead.")
        if method in {"auto", "umap"}:
            try:  # an empty or broken `umap` package (no UMAP class) counts as absent
                from umap import UMAP  # noqa: F401
            except ImportError:
                if method == "umap":
                    raise ConfigError("method='umap' needs umap-learn (pip install umap-learn); "
                                      "use method='pca'") from None
                method = "pca"
            else:
                method = "umap"
        self.method, self.seed = method, seed

    @property
    def axis_label(self) -> str:
        return "UMAP" if self.method == "umap" else "PC"

    def fit(self, X: np.ndarray) -> _Embedder:
        self.mean_ = X.mean(axis=0)
        sd = X.std(axis=0)
        self.scale_ = np.where(sd > 0, sd, 1.0)
        Z = (X - self.mean_) / self.scale_
        self.jitter_ = Z.shape[1] < 2  # one feature: second axis is jitter, said on the axis
        if self.jitter_:
            self.model_ = None
        elif self.method == "umap":
            from umap import UMAP

            self.model_ = UMAP(n_components=2, random_state=self.seed).fit(Z)
        else:
            from sklearn.decomposition import PCA

            self.model_ = PCA(n_components=2, random_state=self.seed).fit(Z)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        Z = (X - self.mean_) / self.scale_
        if self.jitter_:
            rng = np.random.default_rng(self.seed)
            return np.column_stack([Z[:, 0], rng.uniform(-0.5, 0.5, len(Z))])
        return np.asarray(self.model_.transform(Z), dtype=float)

    def label_axes(self, ax: Axes) -> None:
        if self.jitter_:
            ax.set_xlabel("shared feature (standardised)")
            ax.set_ylabel("random jitter")
        else:
            ax.set_xlabel(f"{self.axis_label}1")
            ax.set_ylabel(f"{self.axis_label}2")
        ax.set_xticks([])
        ax.set_yticks([])


def _subsample(n: int, max_cells: int | None, rng: np.random.Generator) -> np.ndarray:
    if max_cells is None or n <= max_cells:
        return np.arange(n)
    return np.sort(rng.choice(n, size=max_cells, replace=False))


def cell_labels(labels: Any, x: Any, n: int, name: str) -> np.ndarray | None:
    """Labels given as an array, or as the name of an ``obs`` column of AnnData ``x``
    (``name`` is the argument's, for the error); one per cell of ``n``, else DataError."""
    if labels is None:
        return None
    if isinstance(labels, str):
        obs = getattr(x, "obs", None)
        if obs is None or labels not in obs:
            raise DataError(f"{name}={labels!r} names an obs column, but x has none of that name")
        labels = obs[labels]
    arr = np.asarray(labels)
    if arr.shape != (n,):
        raise DataError(f"{name} has shape {arr.shape}; expected one label per cell ({n},)")
    return arr


class _Layout:
    """Before/after coordinates of both domains in one embedding, computed once for all panels."""

    def __init__(self, model: MAGAN, x1: Any, x2: Any, labels1: Any, labels2: Any,
                 method: str, max_cells: int | None, seed: int) -> None:
        rng = np.random.default_rng(seed)
        X1 = domain_matrix(model, x1, domain=1)
        X2 = domain_matrix(model, x2, domain=2)
        l1 = cell_labels(labels1, x1, len(X1), "labels1")
        l2 = cell_labels(labels2, x2, len(X2), "labels2")
        i1, i2 = _subsample(len(X1), max_cells, rng), _subsample(len(X2), max_cells, rng)
        X1, X2 = X1[i1], X2[i2]
        self.labels1 = None if l1 is None else l1[i1]
        self.labels2 = None if l2 is None else l2[i2]
        self.n1, self.n2 = len(X1), len(X2)

        after = _Embedder(method, seed).fit(X2)
        self.after = (after.transform(model.transform(X1)), after.transform(X2))
        self.after_embedder = after
        # Before alignment the two domains share only their shared features: that is the one
        # space where both can be drawn without the model (the whole space for batch effects).
        pairs = model.shared_features_
        self.before = self.before_embedder = None
        if pairs:
            c1 = [model.feature_names1_.index(p[0]) for p in pairs]
            c2 = [model.feature_names2_.index(p[1]) for p in pairs]
            before = _Embedder(method, seed).fit(X2[:, c2])
            self.before = (before.transform(X1[:, c1]), before.transform(X2[:, c2]))
            self.before_embedder = before
        self.n_shared = len(pairs)
        self.n_features2 = len(model.feature_names2_)
        # One random drawing order for both domains, so neither hides the other.
        self.order = rng.permutation(self.n1 + self.n2)

    def draw(self, ax: Axes, stage: str, color: str, *, size: float | None = None,
             legend: bool = True) -> Axes:
        coords = self.after if stage == "after" else self.before
        embedder = self.after_embedder if stage == "after" else self.before_embedder
        if coords is None:
            ax.text(0.5, 0.5, "no shared features:\nthe domains have no common\ncoordinates "
                    "before alignment", ha="center", va="center", transform=ax.transAxes)
            ax.set_title("Before alignment")
            ax.set_xticks([])
            ax.set_yticks([])
            return ax
        xy = np.vstack(coords)[self.order]
        domain = np.array(["domain1"] * self.n1 + ["domain2"] * self.n2)[self.order]
        size = size if size is not None else float(np.clip(3000 / max(len(xy), 1), 1.0, 12.0))
        if color == "domain":
            for name in ("domain1", "domain2"):  # legend entries, drawn empty
                ax.scatter([], [], c=DOMAIN_COLORS[name], s=12, label=_domain_legend(name, stage))
            ax.scatter(xy[:, 0], xy[:, 1], c=[DOMAIN_COLORS[d] for d in domain], s=size,
                       alpha=0.6, linewidths=0, rasterized=True)
        else:
            if self.labels1 is None or self.labels2 is None:
                raise DataError("color='label' needs labels1 and labels2")
            labels = np.concatenate([self.labels1, self.labels2])[self.order]
            _scatter_labels(ax, xy, labels, domain, size)
        ax.set_title(_stage_title(stage, color, self))
        embedder.label_axes(ax)
        if legend:
            ax.legend(loc="best", fontsize="small", markerscale=1.5, frameon=True,
                      framealpha=0.8)
        return ax


def _domain_legend(name: str, stage: str) -> str:
    if name == "domain2":
        return "domain 2 (measured)"
    return "domain 1 → 2 (G12)" if stage == "after" else "domain 1 (measured)"


def _stage_title(stage: str, color: str, layout: _Layout) -> str:
    by = "domain" if color == "domain" else "label"
    if stage == "after":
        return f"After alignment: domain 2 space, by {by}"
    what = ("all features" if layout.n_shared == layout.n_features2
            else f"{layout.n_shared} shared feature{'s' if layout.n_shared != 1 else ''}")
    return f"Before alignment: {what}, by {by}"


def _scatter_labels(ax: Axes, xy: np.ndarray, labels: np.ndarray, domain: np.ndarray,
                    size: float) -> None:
    import matplotlib as mpl

    cats: list[Hashable] = sorted({str(v) for v in labels})
    cmap = mpl.colormaps["tab10" if len(cats) <= 10 else "tab20"]
    colour = {c: cmap(i % cmap.N) for i, c in enumerate(cats)}
    text = np.array([str(v) for v in labels])
    # Domain 1 as crosses, domain 2 as dots: a label shared by both shows whether they met.
    for name, marker in (("domain1", "x"), ("domain2", "o")):
        keep = domain == name
        ax.scatter(xy[keep, 0], xy[keep, 1], c=[colour[t] for t in text[keep]], s=size,
                   marker=marker, alpha=0.6, linewidths=0.5 if marker == "x" else 0,
                   rasterized=True)
    shown = cats[:20]
    for c in shown:
        ax.scatter([], [], c=[colour[c]], s=12, label=c)
    if len(cats) > len(shown):
        ax.scatter([], [], c="none", label=f"... {len(cats) - len(shown)} more")
    ax.scatter([], [], c="grey", marker="x", s=12, label="× domain 1, ● domain 2")


def embedding(
    model: MAGAN,
    x1: Any,
    x2: Any,
    *,
    stage: str = "after",
    color: str = "domain",
    labels1: Any = None,
    labels2: Any = None,
    method: str = "auto",
    max_cells: int | None = 5000,
    seed: int = 0,
    ax: Axes | None = None,
) -> Axes:
    """One panel: both domains in a 2-D embedding fitted on domain 2's space.

    ``stage="after"``: domain-1 cells translated by G12 over measured domain-2 cells, in all of
    domain 2's features; a good alignment interleaves them. ``stage="before"``: both domains
    in their shared features only (there is no other common space without the model).
    ``color``: ``"domain"`` or ``"label"`` (needs ``labels1``/``labels2``: arrays, or the name of
    an ``obs`` column when ``x1``/``x2`` are AnnData). ``max_cells`` per domain are drawn, chosen
    at random with ``seed``. ``method``: ``"auto"``, ``"pca"`` or ``"umap"``.
    """
    if stage not in {"before", "after"}:
        raise ConfigError(f"stage must be 'before' or 'after'. Got {stage!r} instead.")
    if color not in {"domain", "label"}:
        raise ConfigError(f"color must be 'domain' or 'label'. Got {color!r} instead.")
    layout = _Layout(model, x1, x2, labels1, labels2, method, max_cells, seed)
    return layout.draw(_new_axes(ax, (5.5, 5.0)), stage, color)


def alignment(
    model: MAGAN,
    x1: Any,
    x2: Any,
    *,
    labels1: Any = None,
    labels2: Any = None,
    method: str = "auto",
    max_cells: int | None = 5000,
    seed: int = 0,
    fig: Figure | None = None,
) -> Figure:
    """Before and after alignment side by side, by domain and (when labels exist) by label.

    Columns: before, after; rows: coloured by domain, then by label if both label arrays are
    given. Same embedding rules as :func:`embedding`, computed once for all panels.
    """
    layout = _Layout(model, x1, x2, labels1, labels2, method, max_cells, seed)
    rows = ["domain"] + (["label"] if layout.labels1 is not None
                         and layout.labels2 is not None else [])
    fig = _new_figure(fig, (11.0, 5.0 * len(rows)))
    axes = fig.subplots(len(rows), 2, squeeze=False)
    for r, color in enumerate(rows):
        for c, stage in enumerate(("before", "after")):
            layout.draw(axes[r, c], stage, color)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- imputation


def _paired_frames(imputed: Any, measured: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two cells × markers tables, same cells in the same rows, columns matched by name."""
    a = imputed if isinstance(imputed, pd.DataFrame) else pd.DataFrame(np.asarray(imputed))
    b = measured if isinstance(measured, pd.DataFrame) else pd.DataFrame(np.asarray(measured))
    if a.ndim != 2 or b.ndim != 2 or len(a) != len(b):
        raise DataError(f"imputed {a.shape} and measured {b.shape} must be 2-D with the same "
                        "cells in the same rows")
    if isinstance(imputed, pd.DataFrame) and isinstance(measured, pd.DataFrame):
        common = [c for c in a.columns if c in b.columns]
        if not common:
            raise DataError(f"imputed and measured share no column: {list(a.columns)[:5]} vs "
                            f"{list(b.columns)[:5]}")
        return a[common], b[common]
    if a.shape[1] != b.shape[1]:
        raise DataError(f"imputed has {a.shape[1]} markers, measured {b.shape[1]}")
    names = a.columns if isinstance(imputed, pd.DataFrame) else b.columns
    a.columns = b.columns = [str(n) for n in names]
    return a, b


def marker_scatter(
    imputed: Any,
    measured: Any,
    marker: str | int | None = None,
    *,
    max_points: int | None = 5000,
    seed: int = 0,
    ax: Axes | None = None,
) -> Axes:
    """Imputed against measured values of one marker over the same cells, Pearson r in the title.

    ``imputed``/``measured``: DataFrames (columns matched by name) or arrays, rows = the same
    cells (e.g. known pairs, or shared markers of the translated cells). ``marker``: column name
    or position; may be omitted when there is a single column. The dashed line is y = x.
    """
    from magan.metrics import marker_correlation

    a, b = _paired_frames(imputed, measured)
    if marker is None:
        if a.shape[1] != 1:
            raise DataError(f"pass marker=: there are {a.shape[1]} markers, e.g. "
                            f"{list(a.columns)[:5]}")
        marker = a.columns[0]
    elif isinstance(marker, (int, np.integer)) and marker not in a.columns:
        marker = a.columns[int(marker)]
    if marker not in a.columns:
        raise DataError(f"unknown marker {marker!r}; have {list(a.columns)[:8]}")
    x, y = b[marker].to_numpy(float), a[marker].to_numpy(float)
    r = marker_correlation(y[:, None], x[:, None])["pearson"][0] if len(x) > 1 else np.nan
    keep = _subsample(len(x), max_points, np.random.default_rng(seed))
    ax = _new_axes(ax, (3.5, 3.5))
    ax.scatter(x[keep], y[keep], s=float(np.clip(2000 / max(len(keep), 1), 1.0, 10.0)),
               alpha=0.4, linewidths=0, color="#3a7dbf", rasterized=True)
    finite = np.concatenate([x, y])
    if finite.size:
        lo, hi = float(np.min(finite)), float(np.max(finite))
        ax.plot([lo, hi], [lo, hi], ls="--", lw=0.8, color="grey")
    ax.set_title(f"{marker}   r = {r:.2f}" if np.isfinite(r) else f"{marker}   r = n/a")
    ax.set_xlabel("measured")
    ax.set_ylabel("imputed")
    return ax


def marker_scatters(
    imputed: Any,
    measured: Any,
    *,
    markers: Sequence[str] | None = None,
    ncols: int = 4,
    max_markers: int = 24,
    max_points: int | None = 3000,
    seed: int = 0,
    fig: Figure | None = None,
) -> Figure:
    """:func:`marker_scatter` for each marker in a grid (first ``max_markers``)."""
    a, b = _paired_frames(imputed, measured)
    names = list(a.columns) if markers is None else list(markers)
    names = names[:max_markers]
    if not names:
        raise DataError("no markers to plot")
    ncols = max(1, min(int(ncols), len(names)))
    nrows = int(np.ceil(len(names) / ncols))
    fig = _new_figure(fig, (3.2 * ncols, 3.0 * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, name in zip(axes, names):
        marker_scatter(a, b, name, max_points=max_points, seed=seed, ax=ax)
    for ax in axes[len(names):]:
        ax.set_axis_off()
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- known pairs


def pair_displacement(
    model: MAGAN,
    x1: Any,
    x2: Any,
    known_pairs: Any,
    *,
    method: str = "auto",
    max_arrows: int = 300,
    max_cells: int | None = 5000,
    seed: int = 0,
    ax: Axes | None = None,
) -> Axes:
    """Arrows from each translated known-pair cell, G12(x1[i]), to its true partner x2[j].

    Short arrows mean the model put the cells where they belong. Drawn in the embedding fitted on
    domain 2 (measured domain-2 cells in grey behind); at most ``max_arrows`` pairs, at random.
    The title gives the median arrow length in domain 2's standardised units (all features, not
    the 2-D picture), the number that does not depend on the projection.
    """
    from magan.data import as_matrix, resolve_known_pairs

    X1 = domain_matrix(model, x1, domain=1)
    X2 = domain_matrix(model, x2, domain=2)
    m1 = as_matrix(x1, name="x1", min_rows=1)
    m2 = as_matrix(x2, name="x2", min_rows=1)
    pairs = resolve_known_pairs(known_pairs, m1, m2)
    if not len(pairs):
        raise DataError("pair_displacement needs at least one known pair")
    rng = np.random.default_rng(seed)
    embedder = _Embedder(method, seed).fit(X2)
    moved = model.transform(X1[pairs[:, 0]])
    partners = X2[pairs[:, 1]]
    dist = np.linalg.norm((moved - partners) / embedder.scale_, axis=1)

    ax = _new_axes(ax, (5.5, 5.0))
    bg = embedder.transform(X2[_subsample(len(X2), max_cells, rng)])
    ax.scatter(bg[:, 0], bg[:, 1], s=3, c="#cccccc", linewidths=0, rasterized=True,
               label="domain 2 (measured)")
    show = _subsample(len(pairs), max_arrows, rng)
    start, end = embedder.transform(moved[show]), embedder.transform(partners[show])
    delta = end - start
    ax.quiver(start[:, 0], start[:, 1], delta[:, 0], delta[:, 1], angles="xy",
              scale_units="xy", scale=1, width=0.004, headwidth=4, headlength=5,
              color="#b2182b", alpha=0.7)
    ax.scatter(start[:, 0], start[:, 1], s=10, c=DOMAIN_COLORS["domain1"], linewidths=0,
               label="G12(x1[i]), translated")
    ax.scatter(end[:, 0], end[:, 1], s=10, c=DOMAIN_COLORS["domain2"], linewidths=0,
               label="x2[j], true partner")
    ax.set_title(f"Known pairs: {len(show)} of {len(pairs)} shown\nmedian distance "
                 f"{np.median(dist):.2f} (domain-2 SD units)")
    embedder.label_axes(ax)
    ax.legend(loc="best", fontsize="small", framealpha=0.8)
    return ax
