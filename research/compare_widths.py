"""Which network widths should be MAGAN's default? Quality and time on the bundled CyTOF batches.

    python research/compare_widths.py --seeds 0 1 --steps 3000

For each setting and seed: CD8 label transfer accuracy of Day-1 cells translated into Day 2,
and Pearson r of the marker removed from Day 2 and imputed back (see ``magan.demo``), plus the
fit's wall time. One JSON line each.
"""

from __future__ import annotations

import argparse
import json
import warnings

import torch

from magan import Networks
from magan.demo import run_cytof

SETTINGS = {
    "small (default)": {"networks": Networks(), "batch_size": 128},
    "small, batch 256": {"networks": Networks(), "batch_size": 256},
    "paper widths, batch 256": {"networks": Networks.paper(),
                                "batch_size": 256},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore", UserWarning)
    for label, params in SETTINGS.items():
        for seed in args.seeds:
            r = run_cytof(n_steps=args.steps, seed=seed, methods=("magan",), **params)["magan"]
            print(json.dumps({"setting": label, "seed": seed,
                              "cd8_accuracy": round(r["cd8_accuracy"], 4),
                              "imputed_pearson": round(r["imputed_pearson"], 4),
                              "fit_seconds": round(r["fit_seconds"], 1)}), flush=True)


if __name__ == "__main__":
    main()
