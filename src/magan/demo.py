"""``magan demo``: the paper's toy problem and a real CyTOF batch problem, on bundled data.

1. Three Gaussians: MAGAN vs the plain GAN; does each cluster land on its matching cluster?
2. CyTOF replicate batches (one donor, Day 1 vs Day 2, bundled, MIT): the most bimodal marker
   is removed from Day 2 (the paper's CD45RA drop-out); the other 24 markers are shared. MAGAN
   must still put Day-1 CD8 T cells onto Day-2 CD8 T cells, and impute the missing marker for
   Day-2 cells. Measured against no alignment and a kNN on the shared markers.

Prints what it measured, writes ``demo.json`` and a picture ``demo.png``.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from magan.datasets import GAUSSIAN_CENTRES2, cytof_batches, three_gaussians
from magan.estimator import MAGAN
from magan.io import write_text_atomic
from magan.metrics import label_transfer, marker_correlation
from magan.preprocessing import Arcsinh
from magan.reference import knn_impute_shared
from magan.settings import Correspondence

__all__ = ["bimodal_marker", "run_cytof", "run_demo", "run_gaussians"]



def bimodal_marker(x_arcsinh: np.ndarray) -> int:
    """The marker with the most cells in both modes: max over markers of
    min(fraction below 1, fraction above 2) on the arcsinh scale (a CD45RA-like marker)."""
    low = (x_arcsinh < 1).mean(axis=0)
    high = (x_arcsinh > 2).mean(axis=0)
    return int(np.argmax(np.minimum(low, high)))


def run_gaussians(*, n_steps: int = 1000, seed: int = 0, progress: bool = False) -> dict[str, Any]:
    """Fit MAGAN and the plain GAN on the three-Gaussian toy; report each one's cluster map."""
    data = three_gaussians(n_per_cluster=1000, seed=seed)
    result: dict[str, Any] = {"expected": [data.expected[k] for k in range(3)]}
    params = {"networks": {"generator": (64, 32), "discriminator": (128, 64)},
              "n_steps": n_steps, "seed": seed, "progress": progress}
    for name, model in (("magan", MAGAN(**params)), ("plain_gan", MAGAN.plain_gan(**params))):
        model.fit(data.x1, data.x2, shared_features=[(0, 0)] if name == "magan" else None)
        y = model.transform(data.x1)
        nearest = ((y[:, None, :] - GAUSSIAN_CENTRES2[None]) ** 2).sum(-1).argmin(1)
        mapping = [int(np.bincount(nearest[data.labels1 == k], minlength=3).argmax())
                   for k in range(3)]
        result[name] = {"mapping": mapping, "right": mapping == result["expected"],
                        "translated": y}
    result["data"] = data
    return result


def run_cytof(
    *,
    n_steps: int = 3000,
    seed: int = 0,
    progress: bool = False,
    methods: tuple[str, ...] = ("magan", "plain_gan"),
    **params: Any,
) -> dict[str, Any]:
    """Day 1 vs Day 2 with one bimodal marker missing from Day 2.

    ``params`` override MAGAN's defaults (e.g. ``networks``) for every method.
    """
    day1, day2 = cytof_batches()
    a1, a2_full = np.arcsinh(day1.X / 5), np.arcsinh(day2.X / 5)
    k = bimodal_marker(a1)
    marker = day1.var_names[k]
    keep = [j for j in range(day2.n_vars) if j != k]
    x2 = day2[:, keep].copy()  # the Day-2 panel without the marker
    truth2 = a2_full[:, k]
    labels1, labels2 = day1.obs["cd8"].to_numpy(), day2.obs["cd8"].to_numpy()
    shared_idx = [(j, i) for i, j in enumerate(keep)]

    result: dict[str, Any] = {"dropped_marker": marker, "n_cells": [day1.n_obs, day2.n_obs]}
    none = label_transfer(a1[:, keep], a2_full[:, keep], labels2, labels1)
    knn = knn_impute_shared(a2_full[:, keep], a1, [(i, j) for i, j in enumerate(keep)], k=10)
    result["no_alignment"] = {"cd8_accuracy": none.accuracy, "cd8_macro_f1": none.macro_f1}
    result["knn_on_shared"] = {
        "imputed_pearson": float(marker_correlation(knn[:, [k]], truth2[:, None])["pearson"][0])
    }
    params = {"n_steps": n_steps, "seed": seed, "progress": progress,
              "preprocess1": Arcsinh(5.0), "preprocess2": Arcsinh(5.0),
              "correspondence": Correspondence(shared_features_match="standardized"), **params}
    makers = {"magan": MAGAN, "plain_gan": MAGAN.plain_gan}
    for name in methods:
        model = makers[name](**params)
        t0 = time.perf_counter()
        model.fit(day1, x2, shared_features=shared_idx if name == "magan" else None)
        seconds = time.perf_counter() - t0
        y = np.arcsinh(model.transform(day1) / 5)  # Day-1 cells in Day-2 panel, arcsinh scale
        back = np.arcsinh(model.inverse_transform(x2) / 5)  # Day-2 cells with the marker imputed
        lt = label_transfer(y, a2_full[:, keep], labels2, labels1)
        r = marker_correlation(back[:, [k]], truth2[:, None])["pearson"][0]
        result[name] = {"cd8_accuracy": lt.accuracy, "cd8_macro_f1": lt.macro_f1,
                        "imputed_pearson": float(r), "fit_seconds": seconds, "translated": y}
    result["arrays"] = {"a1": a1[:, keep], "a2": a2_full[:, keep], "labels1": labels1,
                        "labels2": labels2}
    return result


def _figure(gauss: dict[str, Any], cytof: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA

    fig, axes = plt.subplots(2, 3, figsize=(15, 9.5))
    data = gauss["data"]
    colors = np.array(["tab:blue", "tab:orange", "tab:green"])
    ax = axes[0, 0]
    ax.scatter(*data.x1[::5].T, s=3, c=colors[data.labels1[::5]], marker="o")
    ax.scatter(*data.x2[::5].T, s=3, c=colors[data.labels2[::5]], marker="x")
    ax.set_title("3 Gaussians: domain 1 (top) and 2 (bottom)")
    for ax, name in ((axes[0, 1], "magan"), (axes[0, 2], "plain_gan")):
        y = gauss[name]["translated"]
        ax.scatter(*data.x2[::5].T, s=3, c="lightgrey")
        ax.scatter(*y[::5].T, s=3, c=colors[data.labels1[::5]])
        verdict = "right" if gauss[name]["right"] else "wrong"
        label = "MAGAN" if name == "magan" else "plain GAN"
        ax.set_title(f"{label}: G12(domain 1) by source cluster ({verdict})")
    arr = cytof["arrays"]
    pca = PCA(2, random_state=0).fit(arr["a2"])
    p2 = pca.transform(arr["a2"])
    ax = axes[1, 0]
    ax.scatter(*p2.T, s=3, c="tab:blue", alpha=0.5, label="Day 2")
    ax.scatter(*pca.transform(arr["a1"]).T, s=3, c="tab:red", alpha=0.5, label="Day 1 (raw)")
    ax.set_title("CyTOF batches before alignment (PCA of Day 2)")
    ax.legend(markerscale=4)
    for ax, name in ((axes[1, 1], "magan"), (axes[1, 2], "plain_gan")):
        py = pca.transform(cytof[name]["translated"])
        cd8_2, cd8_1 = arr["labels2"] == 1, arr["labels1"] == 1
        ax.scatter(*p2[~cd8_2].T, s=3, c="lightsteelblue", label="Day 2, other")
        ax.scatter(*p2[cd8_2].T, s=3, c="tab:blue", label="Day 2, CD8")
        ax.scatter(*py[~cd8_1].T, s=3, c="mistyrose", label="Day 1 → Day 2, other")
        ax.scatter(*py[cd8_1].T, s=3, c="tab:red", label="Day 1 → Day 2, CD8")
        acc = cytof[name]["cd8_accuracy"]
        label = "MAGAN" if name == "magan" else "plain GAN"
        ax.set_title(f"{label}: Day 1 → Day 2 (CD8 transfer {acc:.1%})")
        ax.legend(markerscale=4, fontsize=7)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    tmp.replace(path)


def run_demo(out: Path, *, quick: bool = False, progress: bool = True) -> dict[str, Any]:
    """Run both parts, print a summary, write ``out/demo.json`` and ``out/demo.png``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # plain GAN without correspondence: intended
        print("[1/2] three Gaussians: MAGAN vs plain GAN ...", flush=True)
        gauss = run_gaussians(n_steps=200 if quick else 1000, progress=progress)
        print("[2/2] CyTOF Day 1 vs Day 2 with one marker missing from Day 2 ...", flush=True)
        cytof = run_cytof(n_steps=200 if quick else 3000, progress=progress)

    lines = [
        "",
        "Three Gaussians (shared coordinate 0; cluster k should map to cluster "
        f"{gauss['expected']}):",
        f"  MAGAN     maps clusters to {gauss['magan']['mapping']}"
        f"  -> {'right' if gauss['magan']['right'] else 'WRONG'}",
        f"  plain GAN maps clusters to {gauss['plain_gan']['mapping']}"
        f"  -> {'right' if gauss['plain_gan']['right'] else 'wrong'} (any permutation fits it)",
        "",
        f"CyTOF Day 1 vs Day 2, marker {cytof['dropped_marker']} removed from Day 2 "
        f"({cytof['n_cells'][0]} + {cytof['n_cells'][1]} cells):",
        "  method          CD8 label transfer   imputed-marker Pearson",
        f"  no alignment    {cytof['no_alignment']['cd8_accuracy']:>17.1%}   {'-':>22}",
        f"  kNN on shared   {'-':>17}   {cytof['knn_on_shared']['imputed_pearson']:>22.3f}",
    ]
    for name, label in (("magan", "MAGAN"), ("plain_gan", "plain GAN")):
        r = cytof[name]
        lines.append(f"  {label:<14}  {r['cd8_accuracy']:>17.1%}   {r['imputed_pearson']:>22.3f}")
    print("\n".join(lines))

    summary = {
        "gaussians": {k: {kk: vv for kk, vv in v.items() if kk != "translated"}
                      for k, v in gauss.items() if k in {"magan", "plain_gan"}},
        "cytof": {k: ({kk: vv for kk, vv in v.items() if kk != "translated"}
                      if isinstance(v, dict) else v)
                  for k, v in cytof.items() if k != "arrays"},
        "quick": quick,
    }
    summary["gaussians"]["expected"] = gauss["expected"]
    write_text_atomic(out / "demo.json", json.dumps(summary, indent=2, default=float))
    _figure(gauss, cytof, out / "demo.png")
    print(f"\nwrote {out / 'demo.json'} and {out / 'demo.png'}")
    return summary
