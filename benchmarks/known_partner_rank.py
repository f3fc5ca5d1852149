"""What MAGAN()'s transport_cost="auto" decides on the experiments with known pairs only.

    python benchmarks/known_partner_rank.py \
        > benchmarks/results/common_scale/known_partner_rank.json

For digits (one pair), scGEM and ECCITE (10 pairs), seeds 0-4 with the experiments' pairs:
``known_partner_rank_`` (how well a Gromov-Wasserstein plan alone ranks the known partners in
a minibatch; 0 best, ~0.5 chance) and the plan "auto" chose (structure below 0.25). The
verdict is made before training, so one training step is enough to read it.
"""

from __future__ import annotations

import json

import numpy as np
import torch
from sklearn.decomposition import PCA

from experiments import crossmodal
from experiments._harness import make_gan
from experiments.digits import load_digits


def main() -> None:
    torch.set_num_threads(1)
    out: dict[str, list] = {}
    x1, x2, y = load_digits()
    z1 = PCA(50, random_state=0).fit_transform(x1).astype(np.float32)
    z2 = PCA(50, random_state=0).fit_transform(x2).astype(np.float32)
    for seed in range(5):  # the digits experiment's pair
        i = int(np.random.default_rng(seed).integers(len(y)))
        m = make_gan("magan", seed, 1).fit(z1, z2, known_pairs=[(i, i)])
        out.setdefault("digits", []).append([round(m.known_partner_rank_, 3), m.transport_cost_])
    for name, loader in (("cross-modal", crossmodal.load_scgem),
                         ("cross-modal-eccite", crossmodal.load_eccite)):
        a, b, labels = loader()
        for seed in range(5):
            pairs, _ = crossmodal._known_pairs(len(labels), seed)
            m = make_gan("magan", seed, 1).fit(a, b, known_pairs=pairs)
            out.setdefault(name, []).append([round(m.known_partner_rank_, 3), m.transport_cost_])
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
