"""magan.plots: every figure returns what it drew on and renders to PNG, on a small fitted run."""

from __future__ import annotations

import io
import sys
import types

import matplotlib

matplotlib.use("Agg")

import anndata as ad
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from magan import MAGAN, plots
from magan.datasets import three_gaussians
from magan.errors import ConfigError, DataError

FAST = {"networks": {"generator": (32, 32), "discriminator": (64, 32)}, "n_steps": 60,
        "batch_size": 32, "progress": False, "log_every": 20}
PAIRS = [(i, i) for i in range(0, 150, 10)]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def run():
    d = three_gaussians(50, seed=0)
    x1 = pd.DataFrame(d.x1, columns=["shared", "a"])
    x2 = pd.DataFrame(d.x2, columns=["shared", "b"])
    model = MAGAN(**FAST).fit(x1, x2, shared_features="auto", known_pairs=PAIRS)
    return model, x1, x2, d.labels1, d.labels2


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=40)
    data = buf.getvalue()
    assert data.startswith(b"\x89PNG") and len(data) > 1000
    return data


def test_loss_curves(run):
    model = run[0]
    ax = plots.loss_curves(model)
    assert isinstance(ax, Axes)
    assert ax.get_yscale() == "log"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == list(model.history_.columns)
    _png(ax.figure)

    _, own = plt.subplots()
    out = plots.loss_curves(model.history_, terms=["cycle_1", "cycle_2"], smooth=1, log=False,
                            ax=own)
    assert out is own and own.get_yscale() == "linear" and len(own.get_lines()) == 2
    with pytest.raises(DataError, match="unknown loss terms"):
        plots.loss_curves(model, terms=["nope"])
    with pytest.raises(ConfigError, match="smooth"):
        plots.loss_curves(model, smooth=0)
    _png(plots.loss_curves(pd.DataFrame()).figure)  # a loaded model without history


def test_embedding_panels(run):
    model, x1, x2, l1, l2 = run
    ax = plots.embedding(model, x1, x2)
    assert isinstance(ax, Axes) and "After" in ax.get_title()
    assert ax.get_xlabel() == "PC1"  # umap-learn is not a dependency
    _png(ax.figure)
    fig, own = plt.subplots()
    out = plots.embedding(model, x1, x2, stage="before", color="label", labels1=l1, labels2=l2,
                          ax=own)
    assert out is own and "Before" in own.get_title()
    _png(fig)
    with pytest.raises(DataError, match="labels"):
        plots.embedding(model, x1, x2, color="label")
    with pytest.raises(ConfigError, match="stage"):
        plots.embedding(model, x1, x2, stage="during")


def test_alignment_grid(run):
    model, x1, x2, l1, l2 = run
    fig = plots.alignment(model, x1, x2, labels1=l1, labels2=l2)
    assert isinstance(fig, Figure) and len(fig.axes) == 4
    _png(fig)
    assert len(plots.alignment(model, x1, x2, max_cells=20).axes) == 2  # no labels: one row


def test_labels_from_obs_column(run):
    model, x1, x2, l1, l2 = run
    a1 = ad.AnnData(x1.to_numpy(), var=pd.DataFrame(index=x1.columns))
    a2 = ad.AnnData(x2.to_numpy(), var=pd.DataFrame(index=x2.columns))
    a1.obs["type"] = l1.astype(str)
    a2.obs["type"] = l2.astype(str)
    ax = plots.embedding(model, a1, a2, color="label", labels1="type", labels2="type")
    assert "label" in ax.get_title()
    with pytest.raises(DataError, match="obs column"):
        plots.embedding(model, a1, a2, color="label", labels1="nope", labels2="type")


def test_no_shared_features_says_so():
    rng = np.random.default_rng(1)
    x1, x2 = rng.normal(size=(60, 3)), rng.normal(size=(60, 3))
    with pytest.warns(UserWarning, match="plain GAN"):
        model = MAGAN(**FAST).fit(x1, x2)
    fig = plots.alignment(model, x1, x2)
    assert "no shared features" in fig.axes[0].texts[0].get_text()
    _png(fig)


def test_umap_used_when_importable(run, monkeypatch):
    from sklearn.decomposition import PCA

    class FakeUMAP:  # stands in for umap.UMAP: same fit/transform surface
        def __init__(self, n_components: int, random_state: int) -> None:
            self.pca = PCA(n_components=n_components, random_state=random_state)

        def fit(self, X):
            self.pca.fit(X)
            return self

        def transform(self, X):
            return self.pca.transform(X)

    monkeypatch.setitem(sys.modules, "umap", types.SimpleNamespace(UMAP=FakeUMAP))
    model, x1, x2, *_ = run
    assert plots.embedding(model, x1, x2).get_xlabel() == "UMAP1"
    assert plots.embedding(model, x1, x2, method="pca").get_xlabel() == "PC1"


def test_umap_requested_but_missing(run, monkeypatch):
    monkeypatch.setitem(sys.modules, "umap", None)  # makes `import umap` fail
    model, x1, x2, *_ = run
    with pytest.raises(ConfigError, match="umap-learn"):
        plots.embedding(model, x1, x2, method="umap")


def test_marker_scatter_reports_pearson():
    rng = np.random.default_rng(0)
    measured = pd.DataFrame(rng.normal(size=(200, 3)), columns=["CD3", "CD4", "IgD"])
    imputed = measured.copy()
    imputed["CD4"] = -measured["CD4"]
    imputed["IgD"] = rng.normal(size=200)
    ax = plots.marker_scatter(imputed, measured, "CD3")
    assert isinstance(ax, Axes) and ax.get_title() == "CD3   r = 1.00"
    assert plots.marker_scatter(imputed, measured, 1).get_title() == "CD4   r = -1.00"
    constant = pd.DataFrame({"X": np.ones(10)})
    assert plots.marker_scatter(constant, constant + rng.normal(size=(10, 1))).get_title() \
        == "X   r = n/a"
    with pytest.raises(DataError, match="pass marker="):
        plots.marker_scatter(imputed, measured)
    with pytest.raises(DataError, match="same cells"):
        plots.marker_scatter(imputed, measured.iloc[:10], "CD3")

    fig = plots.marker_scatters(imputed, measured[["IgD", "CD3"]], ncols=2)
    titles = [a.get_title() for a in fig.axes if a.get_title()]
    assert [t.split()[0] for t in titles] == ["CD3", "IgD"]  # columns matched by name
    _png(fig)
    fig = plots.marker_scatters(imputed.to_numpy(), measured.to_numpy(), ncols=2)
    assert len(fig.axes) == 4 and not fig.axes[3].axison  # 3 markers, one empty cell
    _png(fig)


def test_pair_displacement(run):
    model, x1, x2, *_ = run
    ax = plots.pair_displacement(model, x1, x2, PAIRS)
    assert isinstance(ax, Axes) and f"{len(PAIRS)} of {len(PAIRS)}" in ax.get_title()
    assert len(ax.collections) >= 3  # background, arrows, both ends
    _png(ax.figure)
    ax = plots.pair_displacement(model, x1, x2, np.asarray(PAIRS), max_arrows=5)
    assert "5 of 15" in ax.get_title()
    with pytest.raises(DataError):
        plots.pair_displacement(model, x1, x2, [(0, 10_000)])


def test_plots_not_imported_by_package():
    import subprocess

    code = "import magan, magan.tl, sys; print('magan.plots' in sys.modules, " \
           "'matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.split() == ["False", "False"]
