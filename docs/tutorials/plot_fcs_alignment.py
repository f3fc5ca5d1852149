"""
Two FCS files: align, impute a missing marker, check, report
=============================================================

Two CyTOF measurements of one donor's blood, taken on two days: the same cell populations,
shifted by a day-to-day batch effect. Day 2's panel lacks one marker that Day 1 measured. We
align the two files on their 24 shared markers, impute the missing one for every Day-2 cell,
read the model's own verdict on the alignment, and write the HTML report.

This page is executed every time the documentation is built. To keep that under a minute on
two CPU cores the model trains for 500 steps; ``MAGAN()``'s default (``n_steps="auto"``)
would train about three times as long on these files.
"""

# %%
# Two FCS files
# -------------
# The package bundles the two batches (1,858 and 1,460 cells × 25 markers, raw intensities;
# see ``magan/data/SOURCE.md``). To start where a user starts, we write them into two FCS
# files with :func:`magan.io.write`, leaving out of Day 2 the marker most clearly split into
# a negative and a positive population (as the ``magan demo`` does). The marker names of this
# data set were not published, so the markers are called ``marker_00`` ... ``marker_24``.
#
# The FCS files hold only the measurements. The CD8 T-cell flag of each cell and Day 2's true
# values of the hidden marker stay aside, for checking the results at the end.

import tempfile
from pathlib import Path

import anndata as ad
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.decomposition import PCA

from magan import MAGAN, Correspondence, io, plots
from magan.datasets import cytof_batches
from magan.demo import bimodal_marker
from magan.metrics import label_transfer, marker_correlation
from magan.preprocessing import Arcsinh
from magan.report import write_report

day1, day2 = cytof_batches()
hidden = day1.var_names[bimodal_marker(np.arcsinh(day1.X / 5))]
cd8_day1 = day1.obs["cd8"].to_numpy()
cd8_day2 = day2.obs["cd8"].to_numpy()
hidden_day2 = day2[:, hidden].X.ravel()  # the truth, never shown to the model

folder = Path(tempfile.mkdtemp(prefix="magan_tutorial_"))
io.write(day1, folder / "day1.fcs")
io.write(day2[:, day2.var_names != hidden].copy(), folder / "day2.fcs")
print(f"hidden from Day 2: {hidden}")
print(sorted(p.name for p in folder.iterdir()))

# %%
# Read them
# ---------
# :func:`magan.io.read` gives an AnnData per file: float32 values in ``.X``, one variable per
# channel, named by its antigen (``$PnS``) or, without one, its channel name (``$PnN``).
# ``.var["role"]`` says which channels are markers: only markers and scatter are aligned,
# while Time, beads, DNA and the like would pass through unchanged.

x1 = io.read(folder / "day1.fcs")
x2 = io.read(folder / "day2.fcs")
print(x1)
print(x2.var[["channel", "role"]].head())
print(x1.uns["fcs"]["instrument"], "-", x1.uns["fcs"]["instrument_reason"])

# %%
# Fit
# ---
# An FCS file from a cytometer says in its header whether it comes from a mass or a flow
# cytometer, and magan then applies arcsinh with cofactor 5 (mass) or 150 (flow) by default.
# Ours were written from a table and say neither, so we state the transform: arcsinh(x / 5),
# the CyTOF convention. It is inverted on output: translations come back in raw intensities.
#
# The shared markers are given by name (``shared_features="auto"`` would pair the identical
# names just the same). ``Correspondence(shared_features_match="standardized")`` asks that a
# shared marker keep its value *relative to its own day's* spread rather than its raw value,
# because the batch effect shifts the shared markers themselves.

shared = [(name, name) for name in x2.var_names if name in x1.var_names]
model = MAGAN(
    preprocess1=Arcsinh(5.0),
    preprocess2=Arcsinh(5.0),
    correspondence=Correspondence(shared_features_match="standardized"),
    n_steps=500,  # kept short for the documentation build; the default is "auto"
    seed=0,
    progress=False,
)
model.fit(x1, x2, shared_features=shared)
print(f"{len(model.shared_features_)} shared markers, {model.n_steps_} steps")

# %%
# Is the alignment any good?
# --------------------------
# Every fit judges itself without ground truth (:mod:`magan.diagnostics`): do the shared
# markers survive translation, do they co-vary alike in both files, are cells' neighbourhoods
# kept, do translated cells mix with measured ones, is the translation better than doing
# nothing? The verdict is ``"good"``, ``"check"`` or ``"failed"``, with its reasons.

diagnostics = model.diagnostics_
print(diagnostics)

# %%
# A verdict of ``"check"`` points at something worth a look before the results are used; its
# reasons say what. One that can appear here: where the learnt change of the shared markers
# did worse than leaving them as measured, the model falls back to passing them on unchanged
# (``model.shared_residual_``) and says so.

print("verdict:", diagnostics.verdict)
print("shared residual kept:", model.shared_residual_)

# %%
# Translate and impute
# --------------------
# ``transform`` puts Day-1 cells into Day 2's panel (its 24 markers, in Day 2's units);
# ``impute`` gives Day-2 cells the markers only Day 1 measured, as a named DataFrame, here
# the one hidden marker.

day1_in_day2 = model.transform(x1)
imputed = model.impute(x2, domain=2)
print(day1_in_day2.shape)
print(imputed.head())

# %%
# Now the answers we kept aside. On the arcsinh scale: how close are the imputed values to
# the measured ones, and do Day-1 CD8 T cells land on Day-2 CD8 T cells (a kNN classifier
# trained on Day 2's cells and labels, applied to the translated Day-1 cells)?

truth = pd.DataFrame({hidden: np.arcsinh(hidden_day2 / 5)}, index=imputed.index)
imputed_arcsinh = np.arcsinh(imputed / 5)
r = marker_correlation(imputed_arcsinh.to_numpy(), truth.to_numpy())["pearson"][0]
a2 = np.arcsinh(x2.X / 5)
before = label_transfer(np.arcsinh(x1[:, list(x2.var_names)].X / 5), a2, cd8_day2, cd8_day1)
after = label_transfer(np.arcsinh(day1_in_day2 / 5), a2, cd8_day2, cd8_day1)
print(f"imputed {hidden}: Pearson r {r:.2f} with the measured values")
print(f"CD8 label transfer: {before.accuracy:.1%} unaligned, {after.accuracy:.1%} aligned")

# %%
# The imputed against the measured values of the hidden marker, cell by cell:

ax = plots.marker_scatter(imputed_arcsinh, truth, hidden)

# %%
# Before and after alignment, in the space the model works in (:meth:`~magan.MAGAN.embed`:
# arcsinh, then Day 2's scaling) and projected on Day 2's first two principal components.
# Before, Day-1 cells are drawn as measured; after, translated into Day 2's panel, where they
# should sit on Day 2's cells of the same population (CD8 T cells or not).

z2 = model.embed(x2, domain=2)
pca = PCA(n_components=2, random_state=0).fit(z2)
p2 = pca.transform(z2)
fig, axes = plt.subplots(1, 2, figsize=(10, 4.6), sharex=True, sharey=True)
stages = (("before", x1[:, list(x2.var_names)].X), ("after", day1_in_day2))
for ax, (stage, day1_values) in zip(axes, stages):
    p1 = pca.transform(model.embed(day1_values, domain=2))
    for p, cd8, day, colors in ((p2, cd8_day2, "Day 2", ("lightsteelblue", "tab:blue")),
                                (p1, cd8_day1, "Day 1", ("mistyrose", "tab:red"))):
        ax.scatter(*p[cd8 == 0].T, s=2, c=colors[0], label=f"{day}, other")
        ax.scatter(*p[cd8 == 1].T, s=2, c=colors[1], label=f"{day}, CD8 T")
    ax.set_title(f"{stage} alignment")
    ax.set_xlabel("PC1 of Day 2")
axes[0].set_ylabel("PC2 of Day 2")
axes[1].legend(markerscale=5, fontsize="small")
fig.tight_layout()

# %%
# Write the results
# -----------------
# Day 2 with its imputed marker goes back to FCS, for FlowJo or any gating tool; the model
# itself is saved with ``model.save`` and restored with ``MAGAN.load``.

with_imputed = ad.AnnData(
    np.hstack([x2.X, imputed.to_numpy(np.float32)]),
    obs=x2.obs,
    var=pd.DataFrame(index=[*x2.var_names, f"{hidden} (imputed)"]),
)
io.write(with_imputed, folder / "day2_with_imputed.fcs")
model.save(folder / "model")
print(io.read(folder / "day2_with_imputed.fcs").var_names[-3:].tolist())

# %%
# The report
# ----------
# :func:`magan.report.write_report` writes one self-contained HTML page (figures inlined, it
# loads nothing from anywhere) that leads with the verdict and its checks, then the
# embeddings, the per-marker agreement table, imputation scatters, the training curves and
# the parameters. Given the cells and labels it draws everything above; given only a saved
# model (``magan report RUN_DIR`` on the command line) it shows what the model alone knows.

report = write_report(
    None,
    folder / "report.html",
    model=model,
    x1=x1,
    x2=x2,
    labels1=cd8_day1,
    labels2=cd8_day2,
    title="Day 1 vs Day 2",
)
print(f"{report.name}: {report.stat().st_size / 1e6:.1f} MB")

# %%
# The training curves (every loss term at every step, in ``model.history_``), as in the report:

ax = plots.loss_curves(model.history_)
ax.figure.tight_layout()  # room for the legend beside the axes

# sphinx_gallery_start_ignore
import shutil  # noqa: E402

shutil.rmtree(folder, ignore_errors=True)
# sphinx_gallery_end_ignore
