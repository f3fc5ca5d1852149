"""Training and inference throughput of MAGAN's networks on synthetic cytometry-shaped data.

    python benchmarks/bench_train.py --device cpu --features 30 --batch 256 --steps 200
    python benchmarks/bench_train.py ... --recipe paper default   # with/without issue 9's terms
    python benchmarks/bench_train.py ... --recipe pairs pairs_translation  # no shared features
    python benchmarks/bench_train.py --device cuda ... --precision float32 bfloat16

Prints one JSON line per configuration: ms per training step, cells per second (both domains
counted), and transform cells per second. Seeded; warm-up steps are not timed; CUDA timings
synchronise only at the ends of the timed loops.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from magan.correspondence import KnownPairs, SharedFeatures, TransportPairs
from magan.data import PairSampler
from magan.nn import MAGANModule, NetworkConfig
from magan.settings import Networks
from magan.training import Trainer, resolve_device

PAPER = (Networks.paper().generator, Networks.paper().discriminator)
SMALL = (Networks().generator, Networks().discriminator)  # MAGAN()'s default


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench(d: int, batch: int, steps: int, widths: tuple, device: torch.device,
          n_cells: int = 100_000, warmup: int = 20, recipe: str = "paper",
          precision: str = "float32") -> dict:
    """``recipe="paper"``: shared-feature correspondence only (the paper's losses);
    ``"default"``: plus MAGAN()'s transport pseudo-pairs (shared cost, epsilon 0.02, weight 2)
    and averaged generators (EMA 0.995). Without shared features, 10 known pairs:
    ``"pairs"`` with the fused Gromov-Wasserstein plan ("structure", which MAGAN()'s "auto"
    uses when the known pairs vouch for it), ``"pairs_translation"`` with the plan from the
    translations alone (its choice otherwise). ``precision``: the Trainer's (``"bfloat16"``:
    training under autocast; inference is timed in float32 either way)."""
    torch.manual_seed(0)
    x1 = torch.randn(n_cells, d, device=device)
    x2 = torch.randn(n_cells, d, device=device)
    module = MAGANModule(NetworkConfig(d, d, widths[0], widths[1])).to(device)
    shared = SharedFeatures([(i, i) for i in range(min(d, 16))]).to(device)
    terms, extra, pairs = [shared], {}, None
    if recipe == "default":
        terms.append(TransportPairs(0.02, "shared", shared=shared).to(device))
        extra = {"generator_ema": 0.995}
    elif recipe in {"pairs", "pairs_translation"}:
        cost = "structure" if recipe == "pairs" else "translation"
        terms = [KnownPairs(), TransportPairs(0.02, cost).to(device)]
        extra = {"generator_ema": 0.995}
        pairs = (x1[:10], x2[:10])
    trainer = Trainer(module, PairSampler(x1, x2, batch, seed=0, pairs=pairs), terms,
                      precision=precision, **extra)
    torch.set_flush_denormal(True)
    for _ in range(warmup):
        trainer.step()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        trainer.step()
    _sync(device)
    step_s = (time.perf_counter() - t0) / steps
    module.eval()
    with torch.inference_mode():
        module.g12(x1[:1024])
        _sync(device)
        t0 = time.perf_counter()
        for start in range(0, n_cells, 65536):
            module.g12(x1[start:start + 65536])
        _sync(device)
        infer_s = time.perf_counter() - t0
    return {
        "device": str(device), "features": d, "batch": batch,
        "widths": "paper" if widths == PAPER else "small", "recipe": recipe,
        "precision": precision,
        "ms_per_step": round(step_s * 1e3, 3),
        "train_cells_per_s": round(2 * batch / step_s),
        "transform_cells_per_s": round(n_cells / infer_s),
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--features", type=int, nargs="+", default=[30])
    parser.add_argument("--batch", type=int, nargs="+", default=[256])
    parser.add_argument("--widths", choices=["paper", "small", "both"], default="both")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--cells", type=int, default=100_000)
    parser.add_argument("--recipe", nargs="+", default=["paper"],
                        choices=["paper", "default", "pairs", "pairs_translation"])
    parser.add_argument("--precision", nargs="+", default=["float32"],
                        choices=["float32", "bfloat16"])
    args = parser.parse_args()
    device = resolve_device(args.device)
    choices = {"paper": [PAPER], "small": [SMALL], "both": [PAPER, SMALL]}[args.widths]
    for widths in choices:
        for d in args.features:
            for batch in args.batch:
                for recipe in args.recipe:
                    for precision in args.precision:
                        result = bench(d, batch, args.steps, widths, device,
                                       n_cells=args.cells, recipe=recipe, precision=precision)
                        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
