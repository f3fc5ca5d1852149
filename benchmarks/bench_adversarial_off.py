"""Training time of a landmark-plan fit (adversarial weight 0): 3,000 cells per domain, 600
steps, one thread. Compare two checkouts by running it with each one's ``src`` on PYTHONPATH:

    PYTHONPATH=<checkout>/src OMP_NUM_THREADS=1 python benchmarks/bench_adversarial_off.py
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import torch

from magan import MAGAN


def main() -> None:
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    rng = np.random.default_rng(0)
    x1 = rng.normal(size=(3000, 50)).astype(np.float32)
    x2 = rng.normal(size=(3000, 40)).astype(np.float32)
    model = MAGAN(n_steps=600, progress=False, device="cpu", seed=0)
    start = time.perf_counter()
    model.fit(x1, x2, known_pairs=[(i, i) for i in range(10)], diagnose=False)
    total = time.perf_counter() - start
    plan = model.transport_["seconds"]
    print(f"fit {total:.1f} s, plan {plan} s, training {total - plan:.1f} s")


if __name__ == "__main__":
    main()
