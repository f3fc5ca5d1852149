"""CPU roofline: dense matmul GFLOP/s vs the FLOP rate one MAGAN training step reaches.

    python benchmarks/bench_roofline.py --threads 1 2 --batch 256 --profile

Measures torch float32 matmul GFLOP/s (a large 2048^3 product = the machine's practical peak,
and the step's own layer shapes), counts one step's FLOPs with torch's FlopCounterMode (forward
and backward matmuls, default and paper widths, 30 features), times steps, and prints the
fraction of peak. With --profile, prints the torch.profiler table of the top CPU ops. With
--compile, the step's two loss computations and both Adam steps go through ``torch.compile``
first (the compile time is printed as ``compile_s``; the FLOP count is taken eagerly).
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from magan.correspondence import SharedFeatures
from magan.data import PairSampler
from magan.nn import MAGANModule, NetworkConfig
from magan.settings import Networks
from magan.training import Trainer

WIDTHS = {name: (nets.generator, nets.discriminator)
          for name, nets in (("default", Networks()), ("paper", Networks.paper()))}


def matmul_gflops(m: int, k: int, n: int, seconds: float = 1.0) -> float:
    a, b = torch.randn(m, k), torch.randn(k, n)
    for _ in range(3):
        a @ b
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        reps += 1
    return 2 * m * k * n * reps / (time.perf_counter() - t0) / 1e9


def trainer_for(widths: tuple, batch: int, d: int = 30) -> Trainer:
    torch.manual_seed(0)
    x1, x2 = torch.randn(100_000, d), torch.randn(100_000, d)
    module = MAGANModule(NetworkConfig(d, d, widths[0], widths[1]))
    shared = SharedFeatures([(i, i) for i in range(10)])
    return Trainer(module, PairSampler(x1, x2, batch, seed=0), [shared])


def step_rate(trainer: Trainer, steps: int) -> float:
    torch.set_flush_denormal(True)  # as Trainer.run does
    for _ in range(20):
        trainer.step()
    t0 = time.perf_counter()
    for _ in range(steps):
        trainer.step()
    return (time.perf_counter() - t0) / steps


def compile_step(trainer: Trainer) -> float:
    """Swap the step's loss functions and optimizer steps for compiled ones; seconds taken by
    the first compiled steps (where compilation happens)."""
    trainer._generator_loss = torch.compile(trainer._generator_loss)
    trainer._discriminator_loss = torch.compile(trainer._discriminator_loss)
    for opt in (trainer.opt_g, trainer.opt_d):
        opt.step = torch.compile(opt.step)
    t0 = time.perf_counter()
    for _ in range(3):
        trainer.step()
    return round(time.perf_counter() - t0, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch", type=int, nargs="+", default=[256])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--compile", action="store_true")
    args = parser.parse_args()
    for threads in args.threads:
        torch.set_num_threads(threads)
        peak = matmul_gflops(2048, 2048, 2048)
        for batch in args.batch:
            for name, widths in WIDTHS.items():
                trainer = trainer_for(widths, batch)
                with FlopCounterMode(display=False) as counter:
                    trainer.step()
                flops = counter.get_total_flops()
                compile_s = compile_step(trainer) if args.compile else None
                layer = matmul_gflops(batch, widths[1][0], widths[1][1], 0.3)
                s = step_rate(trainer, args.steps)
                print(json.dumps({
                    "threads": threads, "batch": batch, "widths": name,
                    "peak_matmul_gflops_2048": round(peak, 1),
                    "layer_matmul_gflops": round(layer, 1),
                    "step_mflop": round(flops / 1e6, 2), "ms_per_step": round(s * 1e3, 3),
                    "step_gflops": round(flops / s / 1e9, 2),
                    "fraction_of_peak": round(flops / s / 1e9 / peak, 3),
                    "compiled": args.compile, "compile_s": compile_s,
                    "torch": torch.__version__}), flush=True)
                if args.profile:
                    from torch.profiler import ProfilerActivity, profile

                    with profile(activities=[ProfilerActivity.CPU]) as prof:
                        for _ in range(50):
                            trainer.step()
                    print(prof.key_averages().table(sort_by="self_cpu_time_total",
                                                    row_limit=18))


if __name__ == "__main__":
    main()
