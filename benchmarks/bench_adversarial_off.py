"""Training time of a landmark-plan fit (adversarial weight 0): 3,000 cells per domain, 600
steps, 1 thread. Run on two checkouts to compare: PYTHONPATH=SRC python benchmarks/bench_adversarial_off.py"""
import time
import warnings

import numpy as np
import torch

torch.set_num_threads(1); warnings.simplefilter("ignore")
from magan import MAGAN

rng = np.random.default_rng(0)
x1 = rng.normal(size=(3000, 50)).astype(np.float32); x2 = rng.normal(size=(3000, 40)).astype(np.float32)
m = MAGAN(n_steps=600, progress=False, device="cpu", seed=0)
t = time.perf_counter(); m.fit(x1, x2, known_pairs=[(i, i) for i in range(10)], diagnose=False)
total = time.perf_counter() - t
print(f"fit {total:.1f} s, plan {m.transport_['seconds']} s, training {total - m.transport_['seconds']:.1f} s")
