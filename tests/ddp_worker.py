"""Run under torchrun by test_distributed.py: fit the 3-Gaussian toy data-parallel, then each
rank writes a checksum of its weights and the cluster mapping it reaches."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import torch

from magan import MAGAN
from magan.datasets import GAUSSIAN_CENTRES2, three_gaussians
from magan.distributed import rank, world_size

out = Path(sys.argv[1])
torch.set_num_threads(1)
data = three_gaussians(n_per_cluster=1000, seed=0)
model = MAGAN(networks={"generator": (64, 32), "discriminator": (128, 64)},
              n_steps=int(sys.argv[2]), batch_size=64, progress=False, device="cpu", seed=0)
model.fit(data.x1, data.x2, shared_features=[(0, 0)], checkpoint_dir=out / "ck",
          checkpoint_every=100)
digest = hashlib.sha256()
for value in model.module_.state_dict().values():
    digest.update(value.detach().cpu().numpy().tobytes())
y = model.transform(data.x1)
nearest = ((y[:, None, :] - GAUSSIAN_CENTRES2[None]) ** 2).sum(-1).argmin(1)
mapping = [int(np.bincount(nearest[data.labels1 == k], minlength=3).argmax()) for k in range(3)]
(out / f"rank{rank()}.json").write_text(json.dumps({
    "world_size": world_size(), "weights": digest.hexdigest(), "mapping": mapping,
    "history_rows": len(model.history_),
}))
