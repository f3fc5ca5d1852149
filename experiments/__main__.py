"""``python -m experiments {all,NAME}``: run the paper's experiments from the repository root.

The experiments are not part of the installed ``magan`` package (they read ``../shared/data``
and compare with peer methods), so they have their own entry point instead of a ``magan``
subcommand::

    python -m experiments all --out results --jobs 2
    python -m experiments cytof-panels --seeds 3 --quick --variants magan,magan_ensemble3

Errors magan raises on purpose (``MaganError``) and missing data or unwritable folders
(``OSError``) are printed as one line and exit with status 1; usage errors exit with 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from magan.errors import ConfigError, MaganError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m experiments",
        description="Run one of the paper's experiments (or 'all'): gaussians, digits, "
                    "cytof-batch, cytof-panels, cross-modal, cross-modal-eccite, uncertainty "
                    "(real data from ../shared/data). Writes OUT/<name>.json and OUT/<name>.md.")
    parser.add_argument("name", help="an experiment's name, or 'all'")
    parser.add_argument("--seeds", type=int, default=None,
                        help="number of seeds, 0..N-1 (default: 10 for gaussians, 5 otherwise)")
    parser.add_argument("--out", default="results",
                        help="folder for <name>.json and <name>.md")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--jobs", type=int, default=1,
                        help="seeds run at once, one process and one CPU thread each "
                             "(default 1); same metrics, shorter wall time")
    parser.add_argument("--variants", default=None,
                        help="comma-separated GAN rows instead of the experiment's own, e.g. "
                             "magan,magan_structure (see experiments/_harness.py); baselines "
                             "always run")
    return parser


def run(args: argparse.Namespace) -> int:
    # Looked up at call time, so that tests can replace experiments.run_experiment.
    import experiments
    from experiments._harness import check_run_options, takes_variants

    specs = experiments.SPECS
    names = list(experiments.EXPERIMENTS) if args.name == "all" else [args.name]
    unknown = [n for n in names if n not in specs]
    if unknown:
        raise ConfigError(f"unknown experiment {unknown[0]!r}; choose from "
                          f"{sorted(specs)} or 'all'")
    seeds = None if args.seeds is None else range(args.seeds)
    variants = None if args.variants is None else [v for v in args.variants.split(",") if v]
    if variants is not None and not variants:
        raise ConfigError("--variants needs at least one GAN row name")
    # Every option checked before the first experiment trains; with "all", experiments with
    # fixed rows (uncertainty) run their own rows instead of stopping the run.
    rows = {n: variants if (variants is None or args.name != "all"
                            or takes_variants(specs[n])) else None for n in names}
    for name in names:
        check_run_options(specs[name], rows[name], args.jobs)
    for name in names:
        if rows[name] is None and variants is not None:
            print(f"{name}: fixed rows, --variants not applied")
        result = experiments.run_experiment(name, seeds, Path(args.out), quick=args.quick,
                                            progress=not args.quiet, variants=rows[name],
                                            jobs=args.jobs)
        print(f"\n## {name}\n{result['table']}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except (MaganError, OSError) as exc:  # bad option, missing shared/data, unwritable --out
        print(f"experiments: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("experiments: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
