"""RESULTS.md from the current default's measurements: one page, no hand-typed numbers.

    python -m experiments.results --experiments results --battery battery_results

reads every ``<name>.json`` that ``python -m experiments`` wrote into ``--experiments`` and the
JSON lines of ``experiments/battery.py`` (``--battery DIR/battery.jsonl``), and writes
``RESULTS.md`` atomically. ``make results`` runs all three steps. The text around the tables
says what each measures and where to read why; figures, history and reasoning live in
docs/model.md and docs/research-log.md, so nothing here goes stale when the numbers change.
"""

from __future__ import annotations

import argparse
import json
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from experiments import SPECS
from experiments._harness import markdown_table
from experiments.battery import table, timings
from magan.io import write_text_atomic

# What each experiment checks, in a sentence (the paper's claim where it made one).
READING = {
    "gaussians": "The paper's first figure: MAGAN must send each domain-1 cluster to the "
                 "cluster whose shared coordinate matches; the plain GAN satisfies its losses "
                 "with any permutation, so where it lands is chance (`all_right` is the "
                 "fraction of seeds with all three clusters right).",
    "digits": "One known pair must orient the whole manifold: the paper reports 100% for "
              "MAGAN and about 50% (chance between two digits) for the plain GAN.",
    "cytof-batch": "A marker knocked out of one batch must not break the match of the "
                   "populations it separates (CD8 naive/memory label transfer), and the "
                   "knocked-out marker must be imputed.",
    "cytof-panels": "Leave one shared marker out of the correspondence, impute it from the "
                    "other panel: the paper's CD3 figures are GAN −0.275, MAGAN 0.801.",
    "cross-modal": "scGEM expression vs methylation with 10 known pairs: FOSCTTM (lower is "
                   "better; 0.5 is chance) and pair accuracy on the cells not given as pairs.",
    "cross-modal-eccite": "ECCITE-seq RNA vs protein with 10 known pairs, the same metrics.",
    "uncertainty": "Intervals from an ensemble: the fraction of true values inside each "
                   "nominal interval (coverage) and their width.",
}


def experiment_section(result: Mapping[str, Any]) -> str:
    """One experiment's heading, what it checks, its command and table."""
    name = result["experiment"]
    spec = SPECS.get(name)
    paper = spec.paper if spec is not None else {}
    seeds = result["seeds_done"]
    settings = result.get("settings", {})
    steps = settings.get("n_steps")
    lines = [f"### {name}", "", result["description"], ""]
    if name in READING:
        lines += [READING[name], ""]
    lines += [f"`python -m experiments {name} --out results`: seeds "
              f"{_seed_list(seeds)}" + (f", {steps} steps per fit" if steps else "")
              + f"; {result['seconds_total']:.0f} s wall, {result['cpu_seconds_total']:.0f} s "
              "CPU.", ""]
    if result.get("quick") or len(seeds) < len(result["seeds"]):
        lines += ["**Incomplete run**: " + ("quick settings; " if result.get("quick") else "")
                  + f"{len(seeds)} of {len(result['seeds'])} seeds.", ""]
    lines.append(markdown_table(result["summary"], paper))
    return "\n".join(lines)


def _seed_list(seeds: Sequence[int]) -> str:
    seeds = sorted(seeds)
    if seeds == list(range(seeds[0], seeds[-1] + 1)) and len(seeds) > 2:
        return f"{seeds[0]}–{seeds[-1]}"
    return ", ".join(str(s) for s in seeds)


def _defaults(results: Sequence[Mapping[str, Any]]) -> str:
    """The default the runs measured, as recorded in their JSON (one line of JSON)."""
    found = [r["settings"]["magan_defaults"] for r in results
             if "magan_defaults" in r.get("settings", {})]
    if not found:
        return "(not recorded)"
    if any(f != found[0] for f in found[1:]):
        raise SystemExit("the experiment files were made with different MAGAN() defaults; "
                         "rerun them with one version")
    items = ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(found[0].items()))
    return "\n```\n" + textwrap.fill(items, width=96, break_on_hyphens=False) + "\n```"


def render(results: Sequence[Mapping[str, Any]], battery: Sequence[Mapping[str, Any]],
           battery_source: str) -> str:
    """The whole of RESULTS.md."""
    order = list(SPECS)
    results = sorted(results, key=lambda r: order.index(r["experiment"])
                     if r["experiment"] in order else len(order))
    parts = [HEADER.format(defaults=_defaults(results))]
    if battery:
        parts.append(BATTERY.format(source=battery_source) + "\n" + table(battery)
                     + "\nSeconds per task (one worker, mean over seeds):\n\n"
                     + timings(battery))
    parts.append(EXPERIMENTS)
    parts += [experiment_section(r) for r in results]
    return "\n".join(parts).rstrip() + "\n"


HEADER = """# magan: what the current default scores

This page is generated (`make results`, i.e. `python -m experiments.results`); do not edit it
by hand. Every table below was made by `MAGAN()` with its current defaults, on the datasets in
`../shared/data` (their sources and licences are in its README), against doing nothing and
peer methods. Why the default is what it is, with the measurements that chose it:
[docs/model.md](docs/model.md); the history of earlier defaults: docs/research-log.md.
Tables show mean ± sd over seeds (sd with ddof=1; "±" omitted when the seeds agree to three
decimals); "(paper …)" is the paper's figure where it gave one.

The default measured, its parameters as the experiment runs recorded them:{defaults}
"""

BATTERY = """## 1. The benchmark battery: every task, against doing nothing and the peers

`MAGAN(seed=seed, progress=False)` as a user would call it, only the data-specific inputs set
(shared features, known pairs), on 11 tasks; 3 seeds each. "Doing nothing" is the cells as
measured where both domains have the same features, kNN on the shared features for
imputation, chance between modalities. The verdict is MAGAN's own, without ground truth
(`model.diagnostics_`); the last column compares the default with that reference. Each task is
described in `experiments/battery.py`. Command:

```
make battery        # = python experiments/battery.py --seeds 0 1 2 --jobs 2 --out battery_results
```

JSON lines (every metric, every fit's diagnostics): `{source}`.
"""

EXPERIMENTS = """## 2. The paper's experiments

Each experiment compares `magan` (exactly `MAGAN()`, only the steps set by the experiment),
`magan_paper` (the published recipe: batch 100, no input scaling, plain generators, no
transport or averaging; magan's widths and far fewer than its 100,000 steps) and `plain_gan`
(the ablation: no correspondence), with the baselines named in each table. `make experiments`
runs them all (`python -m experiments all --out results --jobs 2`); each writes
`results/<name>.json` (every metric per seed, settings, seconds) and the table below.
"""


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Write RESULTS.md from experiment and battery "
                                             "results (module docstring).")
    ap.add_argument("--experiments", type=Path, default=Path("results"),
                    help="folder of <name>.json files from python -m experiments")
    ap.add_argument("--battery", type=Path, default=Path("battery_results/battery.jsonl"),
                    help="the battery's JSON lines (a file, or a folder holding battery.jsonl)")
    ap.add_argument("--out", type=Path, default=Path("RESULTS.md"))
    args = ap.parse_args(argv)
    files = sorted(args.experiments.glob("*.json"))
    results = [json.loads(f.read_text()) for f in files]
    results = [r for r in results if isinstance(r, dict) and "experiment" in r]
    if not results:
        ap.error(f"no experiment results (<name>.json) in {args.experiments}")
    jsonl = args.battery / "battery.jsonl" if args.battery.is_dir() else args.battery
    battery = ([json.loads(line) for line in jsonl.read_text().splitlines() if line]
               if jsonl.is_file() else [])
    text = render(results, battery, str(jsonl))
    write_text_atomic(args.out, text)
    print(f"wrote {args.out}: {len(results)} experiments, "
          f"{len({r['task'] for r in battery})} battery tasks")


if __name__ == "__main__":
    main()
