"""Shared harness for the paper's experiments: seeds loop, JSON of every metric, markdown table.

Each experiment module exposes ``run(seed, quick) -> {method: {metric: float}}``. The harness
runs it once per seed, stores every value (``out_dir/<name>.json``) and a mean ± sd table
(``out_dir/<name>.md``) with the paper's figure beside ours where the paper gave one.

Model settings live here (``GAN_VARIANTS``) so every experiment compares the same three GAN
rows: magan's default mode, a paper-like recipe and the plain GAN ablation, all with the same
(small) network widths so that a full run fits in 10 minutes on 2 CPU cores (``jobs=2``). The
ablation rows (``ABLATION_VARIANTS``) run only when asked for (``variants=``).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from magan.errors import ConfigError
from magan.settings import Correspondence, Optimizer
from magan.transport import Transport

Metrics = dict[str, dict[str, float]]  # method -> metric -> value

TORCH_THREADS = 1

GAN_VARIANTS: dict[str, dict[str, Any]] = {
    # magan's default, exactly MAGAN() (only the steps are the experiment's).
    "magan": {},
    # The published recipe (MAGAN.paper(): batch 100, no input scaling, plain generators,
    # none of magan's additions), with the default widths and far fewer than its 100,000 steps.
    "magan_paper": {"batch_size": 100, "standardize": False, "transport": "none",
                    "optimizer": Optimizer(ema=None), "start_from_identity": False},
    # The ablation: no correspondence at all (a CycleGAN with manifold augmentation).
    "plain_gan": {"correspondence": False},
}

# The steps from the published recipe to magan's default, one change at a time (issue 9's
# ablation); run on request (variants=[...], CLI --variants).
ABLATION_VARIANTS: dict[str, dict[str, Any]] = {
    # magan's first default mode: the paper's losses on inputs scaled feature by feature,
    # batch 256.
    "magan_basic": {"batch_size": 256, "standardize": True, "transport": "none",
                    "optimizer": Optimizer(ema=None)},
    "magan_no_transport": {"batch_size": 256, "transport": "none"},
    "magan_no_average": {"batch_size": 256, "optimizer": Optimizer(ema=None)},
    # magan's default with shared features compared after each domain's own standardisation.
    "magan_standardized": {"batch_size": 256,
                           "correspondence": Correspondence(shared_features_match="standardized")},
    # magan's default with each feature scaled to unit variance (the default until the
    # common-scale change; with shared features, exactly the issue-9 default).
    "magan_per_feature": {"batch_size": 256, "standardize": True},
    # magan's default with minibatch plans where "auto" uses the landmark plan (no shared
    # features): a fused Gromov-Wasserstein plan per batch (within-batch distances + the
    # translations), or the translations alone (the default before the landmark plan).
    "magan_structure": {"batch_size": 256,
                        "transport": Transport(kind="minibatch", cost="structure")},
    "magan_translation": {"batch_size": 256,
                          "transport": Transport(kind="minibatch", cost="translation")},
    # the translation plan at full weight from the first step (no warm-up ramp)
    "magan_no_warmup": {"batch_size": 256,
                        "transport": Transport(kind="minibatch", cost="translation", warmup=0.0)},
}
ALL_VARIANTS = {**GAN_VARIANTS, **ABLATION_VARIANTS}

class DataMissing(FileNotFoundError):
    """The shared/data folder (or one of its datasets) is not there."""


def shared_data(*parts: str) -> Path:
    """Path of a file in ``shared/data``; raises :class:`DataMissing` if absent."""
    from magan.datasets import find_shared_data

    root = find_shared_data()
    if root is None:
        raise DataMissing("shared/data not found (set MAGAN_SHARED_DATA)")
    path = root.joinpath(*parts)
    if not path.exists():
        raise DataMissing(f"{path} not found")
    return path


def load_npz(*parts: str) -> dict[str, np.ndarray]:
    with np.load(shared_data(*parts), allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def make_gan(variant: str, seed: int, n_steps: int, **overrides: Any):
    """A MAGAN for one of ``GAN_VARIANTS`` (MAGAN's default widths), on the CPU."""
    from magan.estimator import MAGAN

    params = {
        "n_steps": n_steps,
        "seed": seed,
        "progress": False,
        "device": "cpu",
        "log_every": 100,
        **ALL_VARIANTS[variant],
        **overrides,
    }
    return MAGAN(**params)


def fit_ensemble(seed: int, n_steps: int, x1: np.ndarray, x2: np.ndarray,
                 n_members: int = 3, **fit_kw: Any):
    """The ``magan_ensemble3`` rows: ``n_members`` default models (seeds ``1000 * seed + k``)
    as a :class:`magan.uncertainty.Ensemble` (its transforms are the members' mean)."""
    from magan.uncertainty import Ensemble

    return Ensemble(make_gan("magan", 1000 * seed, n_steps), n_members=n_members,
                    pair_holdout=False).fit(x1, x2, **fit_kw)


def zscore(x: np.ndarray, ref: np.ndarray | None = None) -> np.ndarray:
    """Centre and scale columns by ``ref``'s mean and sd (constant columns: sd 1)."""
    ref = x if ref is None else ref
    sd = ref.std(axis=0)
    return (x - ref.mean(axis=0)) / np.where(sd > 0, sd, 1.0)


@dataclass
class Experiment:
    name: str
    run: Callable[[int, bool], Metrics]
    description: str
    settings: Callable[[bool], dict[str, Any]]
    default_seeds: int = 5
    # (method, metric) -> the paper's figure, shown beside ours
    paper: dict[tuple[str, str], str] = field(default_factory=dict)
    # GAN rows this experiment builds itself, accepted in variants= besides ALL_VARIANTS
    extra_variants: tuple[str, ...] = ()


def _finite(v: float) -> bool:
    return v is not None and isinstance(v, (int, float)) and math.isfinite(v)


def summarise(per_seed: Sequence[Metrics]) -> dict[str, dict[str, dict[str, float]]]:
    """method -> metric -> {mean, sd, n} over seeds (NaNs skipped and counted out)."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for result in per_seed:
        for method, metrics in result.items():
            for metric in metrics:
                out.setdefault(method, {}).setdefault(metric, {})
    for method, metrics in out.items():
        for metric in metrics:
            vals = [r.get(method, {}).get(metric) for r in per_seed]
            vals = [float(v) for v in vals if _finite(v)]
            metrics[metric] = {
                "mean": float(np.mean(vals)) if vals else float("nan"),
                "sd": float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0,
                "n": len(vals),
            }
    return out


def markdown_table(summary: Mapping[str, Mapping[str, Mapping[str, float]]],
                   paper: Mapping[tuple[str, str], str] | None = None) -> str:
    """Methods as rows, metrics as columns, ``mean ± sd``; the paper's figure in brackets."""
    paper = paper or {}
    summary = {k: v for k, v in summary.items() if not k.startswith("_")}  # "_x": run facts
    metrics: list[str] = []
    for m in summary.values():
        metrics += [k for k in m if k not in metrics]
    lines = ["| method | " + " | ".join(metrics) + " |",
             "|---|" + "---|" * len(metrics)]
    for method, vals in summary.items():
        cells = []
        for metric in metrics:
            s = vals.get(metric)
            if s is None or s["n"] == 0:
                cell = "–"
            else:
                cell = f"{s['mean']:.3f} ± {s['sd']:.3f}"
            if (method, metric) in paper:
                cell += f" (paper {paper[(method, metric)]})"
            cells.append(cell)
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return float(x) if math.isfinite(float(x)) else None
    if isinstance(x, np.integer):
        return int(x)
    if hasattr(x, "to_dict"):  # a magan setting (Transport, Networks, ...)
        return _jsonable(x.to_dict())
    return x


def _defaults() -> dict[str, Any]:
    """``MAGAN()``'s parameters, recorded so a table names the default it measured."""
    from magan.estimator import MAGAN

    return MAGAN().get_params()


def _write(exp: Experiment, seeds: Sequence[int], done: list[dict[str, Any]], out_dir: Path,
           quick: bool, wall: float, cpu: float,
           variants: Sequence[str] | None = None) -> dict[str, Any]:
    """Write ``<name>.json`` and ``<name>.md`` for the seeds done so far."""
    summary = summarise([r["metrics"] for r in done])
    settings = exp.settings(quick)
    if variants is not None:  # the GAN rows actually run, not the experiment's default list
        settings["variants"] = list(variants)
    result = {
        "experiment": exp.name,
        "description": exp.description,
        "quick": quick,
        "seeds": [int(s) for s in seeds],
        "seeds_done": [r["seed"] for r in done],
        "settings": {**settings, "torch_threads": TORCH_THREADS,
                     "gan_variants": ALL_VARIANTS, "magan_defaults": _defaults()},
        "seconds_total": round(wall, 2),
        "cpu_seconds_total": round(cpu, 2),
        "per_seed": done,
        "summary": summary,
        "paper": {f"{m}/{k}": v for (m, k), v in exp.paper.items()},
    }
    result = _jsonable(result)
    (out_dir / f"{exp.name}.json").write_text(json.dumps(result, indent=2))
    table = markdown_table(summary, exp.paper)
    header = (f"### {exp.name}{' (quick)' if quick else ''}\n\n{exp.description}\n\n"
              f"Seeds {result['seeds_done']} of {result['seeds']}: "
              f"{result['seconds_total']:.0f} s wall, {result['cpu_seconds_total']:.0f} s CPU.\n\n")
    (out_dir / f"{exp.name}.md").write_text(header + table)
    result["table"] = table
    return result


def _run_seed(exp: Experiment, seed: int, quick: bool,
              variants: Sequence[str] | None) -> dict[str, Any]:
    """One seed of ``exp`` with one torch thread: its metrics, wall and CPU seconds.

    Module-level so that a worker process can run it (``jobs > 1``)."""
    import torch

    # These nets are small: one thread is 2-10x faster than two on a shared 2-core machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(TORCH_THREADS)
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        metrics = (exp.run(int(seed), quick) if variants is None
                   else exp.run(int(seed), quick, variants=list(variants)))
        # CPU seconds: what the run costs on an idle machine (one torch thread), whereas
        # wall seconds grow with whatever else shares the cores.
        return {"seed": int(seed), "seconds": round(time.perf_counter() - t0, 2),
                "cpu_seconds": round(time.process_time() - c0, 2), "metrics": metrics}
    finally:
        torch.set_num_threads(threads)


def takes_variants(exp: Experiment) -> bool:
    """Whether ``exp``'s GAN rows can be chosen (``uncertainty`` has fixed rows)."""
    import inspect

    return "variants" in inspect.signature(exp.run).parameters


def check_run_options(exp: Experiment, variants: Sequence[str] | None, jobs: Any) -> None:
    """Refuse bad ``variants``/``jobs`` before any training (ConfigError naming the choices)."""
    if variants is not None and not takes_variants(exp):
        raise ConfigError(f"experiment {exp.name!r} has a fixed list of rows; variants= is "
                          "only for experiments whose run() takes it")
    if variants is not None:
        known = [*ALL_VARIANTS, *exp.extra_variants]
        unknown = [v for v in variants if v not in known]
        if unknown:
            raise ConfigError(f"unknown GAN row {unknown[0]!r} for {exp.name!r}; choose from "
                              f"{known}")
    if isinstance(jobs, bool) or not (isinstance(jobs, (int, np.integer)) and jobs >= 1):
        raise ConfigError(f"jobs must be a positive integer, got {jobs!r}")


def run_experiment_spec(exp: Experiment, seeds: Sequence[int], out_dir: Path, *,
                        quick: bool = False, progress: bool = False,
                        variants: Sequence[str] | None = None, jobs: int = 1) -> dict[str, Any]:
    """Run ``exp`` once per seed and write its JSON/markdown after every finished seed.

    ``jobs > 1`` runs that many seeds at once, each in its own (spawned) process with one
    torch thread: the per-seed metrics are the same as in one process (each seed's run is
    independent and single-threaded), only the wall time shrinks.
    """
    check_run_options(exp, variants, jobs)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    records: list[dict[str, Any]] = []
    start = time.perf_counter()

    def finished(record: dict[str, Any]) -> dict[str, Any]:
        records.append(record)
        records.sort(key=lambda r: r["seed"])
        if progress:
            print(f"[{exp.name}] seed {record['seed']}: {record['seconds']:.1f} s", flush=True)
        # Rewritten after every seed, so an interrupted run keeps what it finished.
        return _write(exp, seeds, records, out_dir, quick, time.perf_counter() - start,
                      sum(r["cpu_seconds"] for r in records), variants)

    result = None
    if jobs == 1 or len(seeds) < 2:
        for seed in seeds:
            result = finished(_run_seed(exp, seed, quick, variants))
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        # spawn, not fork: a forked child inherits torch's thread pools and may deadlock.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(min(int(jobs), len(seeds)), mp_context=context) as pool:
            futures = [pool.submit(_run_seed, exp, s, quick, variants) for s in seeds]
            try:
                for future in as_completed(futures):
                    result = finished(future.result())
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
    if result is None:  # no seeds: still write an (empty) table
        result = _write(exp, seeds, records, out_dir, quick, time.perf_counter() - start,
                        0.0, variants)
    return result


def merge_runs(exp: Experiment, parts: Sequence[Path], out_dir: Path) -> dict[str, Any]:
    """Merge single-seed runs of one experiment (e.g. run in parallel processes, one seed
    each) into ``out_dir/<name>.json`` and ``.md``, as one run over all their seeds would
    write them. Wall seconds add up as if run one after another; CPU seconds are exact."""
    done: list[dict[str, Any]] = []
    quick = None
    for part in parts:
        data = json.loads(Path(part).read_text())
        if data["experiment"] != exp.name:
            raise ValueError(f"{part} is a run of {data['experiment']!r}, not {exp.name!r}")
        if quick is not None and data["quick"] != quick:
            raise ValueError("cannot merge quick and full runs")
        quick = data["quick"]
        done += data["per_seed"]
    done.sort(key=lambda r: r["seed"])
    seeds = [r["seed"] for r in done]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"a seed appears twice among the runs: {seeds}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    wall = sum(r["seconds"] for r in done)
    cpu = sum(r["cpu_seconds"] for r in done)
    return _write(exp, seeds, done, out_dir, bool(quick), wall, cpu)
