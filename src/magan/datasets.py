"""Data magan ships or makes: the paper's toy problem, the bundled demo batches, and the finder
for the project's ``shared/data`` folder of real public datasets.

Nothing here downloads anything: bundled files live in ``magan/data`` (MIT/BSD only, with their
source noted beside them) and larger datasets are read from ``shared/data`` when it exists.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import anndata as ad

__all__ = ["GAUSSIAN_CENTRES1", "GAUSSIAN_CENTRES2", "TwoDomains", "cytof_batches",
           "find_shared_data", "three_gaussians"]

_BUNDLED = Path(__file__).resolve().parent / "data"

# The paper's toy problem (centres from the original MAGAN code). Coordinate 0 is shared.
GAUSSIAN_CENTRES1 = np.array([(-1.3, 2.2), (0.1, 1.8), (0.8, 2.0)])
GAUSSIAN_CENTRES2 = np.array([(-0.9, -2.0), (0.0, -2.3), (1.5, -1.5)])


@dataclass
class TwoDomains:
    """Two domains with per-cell labels; ``expected[k]`` is the domain-2 label that domain-1
    label ``k`` should land on."""

    x1: np.ndarray
    x2: np.ndarray
    labels1: np.ndarray
    labels2: np.ndarray
    expected: dict[int, int]


def three_gaussians(n_per_cluster: int = 5000, sd: float = 0.1, seed: int = 0) -> TwoDomains:
    """Three 2-D Gaussian clusters per domain, as in the MAGAN paper (5,000 points each, sd 0.1).

    Coordinate 0 is the shared feature: each domain-1 cluster should map to the domain-2
    cluster whose coordinate 0 is closest (here cluster k to cluster k). A plain GAN maps the
    clusters to each other by an arbitrary permutation.
    """
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(3), n_per_cluster)
    x1 = GAUSSIAN_CENTRES1[labels] + sd * rng.standard_normal((len(labels), 2))
    x2 = GAUSSIAN_CENTRES2[labels] + sd * rng.standard_normal((len(labels), 2))
    c1, c2 = GAUSSIAN_CENTRES1[:, 0], GAUSSIAN_CENTRES2[:, 0]
    expected = {k: int(np.argmin(np.abs(c2 - c1[k]))) for k in range(3)}
    return TwoDomains(x1.astype(np.float32), x2.astype(np.float32), labels, labels.copy(),
                      expected)


def find_shared_data(required: bool = False) -> Path | None:
    """Locate the ``shared/data`` folder that sits beside a magan checkout.

    Looks at ``$MAGAN_SHARED_DATA`` first, then for ``shared/data`` next to the current directory
    or any parent of it or of this package (CI clones the repo with ``../shared`` beside it).
    Returns None when absent, or raises FileNotFoundError if ``required``.
    """
    env = os.environ.get("MAGAN_SHARED_DATA")
    candidates: list[Path] = [Path(env)] if env else []
    for start in (Path.cwd(), Path(__file__).resolve().parent):
        for parent in (start, *start.parents):
            candidates.append(parent / "shared" / "data")
            candidates.append(parent.parent / "shared" / "data")
    for path in candidates:
        if (path / "README.md").is_file():
            return path
    if required:
        raise FileNotFoundError(
            "shared/data not found: set MAGAN_SHARED_DATA or place the shared/ folder beside "
            "the checkout"
        )
    return None


def cytof_batches() -> tuple[ad.AnnData, ad.AnnData]:
    """The bundled CyTOF replicate batches (one donor, Day 1 and Day 2; MIT, see data/SOURCE.md).

    Raw intensities in ``.X`` (25 markers), ``obs["cd8"]`` the CD8 T-cell flag. Day-to-day
    differences are a batch effect: the same populations should line up after alignment.
    """
    import anndata as ad

    out = []
    for day in (1, 2):
        with np.load(_BUNDLED / f"cytof_day{day}.npz", allow_pickle=False) as z:
            adata = ad.AnnData(np.asarray(z["X"], dtype=np.float32))
            adata.var_names = [str(f) for f in z["features"]]
            adata.obs_names = [f"day{day}_{i}" for i in range(adata.n_obs)]
            adata.obs["cd8"] = np.asarray(z["labels"]).astype(int)
        out.append(adata)
    return out[0], out[1]
