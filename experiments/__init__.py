"""The MAGAN paper's experiments on real data, with metrics and baselines.

Not part of the installed ``magan`` package: this folder sits at the repository root and is run
from there, ``python -m experiments {all,NAME} --out DIR`` (``__main__.py``; ``make
experiments``). The peer methods are in ``baselines.py``, the quality battery in
``battery.py``, a runner of several experiments' seeds in parallel processes in ``parallel.py``.

``run_experiment(name, seeds, out_dir)`` runs one experiment over seeds and writes
``out_dir/<name>.json`` (every metric, per seed, per method) and ``out_dir/<name>.md`` (mean ± sd
table). ``EXPERIMENTS`` maps each name to its ``run(seed, quick) -> {method: {metric: value}}``.
Experiments on ``shared/data`` raise ``DataMissing`` (a FileNotFoundError) when it is absent.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from experiments._harness import DataMissing, Experiment, merge_runs, run_experiment_spec

__all__ = ["EXPERIMENTS", "SPECS", "DataMissing", "merge_experiment", "run_experiment"]

_MODULES = ("gaussians", "digits", "cytof_batch", "cytof_panels", "crossmodal", "uncertainty")
SPECS: dict[str, Experiment] = {}
for _mod in _MODULES:
    try:
        _module = importlib.import_module(f"experiments.{_mod}")
    except ModuleNotFoundError as _err:  # an experiment not written yet
        if _err.name != f"experiments.{_mod}":
            raise
        continue
    # A module may define more than one (EXPERIMENT, EXPERIMENT_<DATASET>), in that order.
    for _attr in sorted(a for a in vars(_module) if a.startswith("EXPERIMENT")):
        _exp = getattr(_module, _attr)
        SPECS[_exp.name] = _exp
EXPERIMENTS: dict[str, Callable[[int, bool], dict]] = {k: v.run for k, v in SPECS.items()}


def run_experiment(name: str, seeds: Sequence[int] | None, out_dir: Path, quick: bool = False,
                   progress: bool = False, variants: Sequence[str] | None = None,
                   jobs: int = 1) -> dict[str, Any]:
    """Run experiment ``name`` once per seed; write ``<name>.json`` and ``<name>.md`` in
    ``out_dir``; return the JSON content plus ``table`` (the markdown table).

    ``seeds=None`` uses the experiment's default count (10 for gaussians, 5 otherwise).
    ``variants`` replaces the experiment's list of GAN rows (any of ``GAN_VARIANTS`` and
    ``ABLATION_VARIANTS`` in ``_harness``; cytof-panels also takes ``"magan_ensemble3"``); the
    baselines always run; ``uncertainty`` has fixed rows. ``jobs`` seeds run at once, each in
    its own process (same metrics, shorter wall time).
    """
    if name not in SPECS:
        raise KeyError(f"unknown experiment {name!r}; choose from {sorted(SPECS)}")
    spec = SPECS[name]
    if seeds is None:
        seeds = range(spec.default_seeds)
    return run_experiment_spec(spec, list(seeds), Path(out_dir), quick=quick, progress=progress,
                               variants=variants, jobs=jobs)


def merge_experiment(name: str, parts: Sequence[Path], out_dir: Path) -> dict[str, Any]:
    """Merge single-seed runs of experiment ``name`` (their ``<name>.json`` files) into one
    ``out_dir/<name>.json``/``.md``; see ``experiments/parallel.py``."""
    if name not in SPECS:
        raise KeyError(f"unknown experiment {name!r}; choose from {sorted(SPECS)}")
    return merge_runs(SPECS[name], parts, Path(out_dir))
