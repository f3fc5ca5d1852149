"""``magan`` command line: argparse over the public API.

Every error magan raises on purpose (``MaganError``) is printed as one line, without a
traceback, and the command exits with status 1; usage errors exit with 2 (argparse);
``align --strict`` exits with 3 when the self-diagnosis judged the alignment "failed"
(:class:`~magan.errors.AlignmentFailedError`, after every output was written).
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from magan import __version__
from magan.errors import AlignmentFailedError, ConfigError, MaganError, OutputExistsError

WRITABLE = {".h5ad", ".csv", ".fcs"}


def _parse_shared(spec: str | None, names1: list[str], names2: list[str]):
    """``auto`` → forgiving marker-name matching; ``A:B,C:D`` → explicit pairs; None → none."""
    from magan.preprocessing import match_markers

    if spec is None or spec == "none":
        return None, None
    if spec == "auto":
        match = match_markers(names1, names2)
        if not len(match):
            raise ConfigError("--shared auto matched no marker names between the two inputs; "
                              "run `magan markers X1 X2` to see both lists")
        return [(int(i), int(j)) for i, j in match.pairs], match
    pairs = []
    for item in spec.split(","):
        left, sep, right = item.partition(":")
        if not sep:
            left = right = item
        pairs.append((left.strip(), right.strip()))
    return pairs, None


def _widths(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(w) for w in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated ints, got {text!r}") from None
    if not widths or min(widths) < 1:
        raise argparse.ArgumentTypeError(f"widths must be positive, got {text!r}")
    return widths


def _output_suffix(path: Path, fmt: str | None) -> str:
    if fmt:
        return "." + fmt.lstrip(".")
    suffix = path.suffix.lower()
    return suffix if suffix in WRITABLE else ".csv"


def _write_translation(values, cell_names, feature_names, path: Path, overwrite: bool) -> Path:
    import anndata as ad
    import pandas as pd

    from magan import io

    frame = pd.DataFrame(values, index=cell_names, columns=feature_names)
    adata = ad.AnnData(frame)
    return io.write(adata, path, overwrite=overwrite)


def _transport(args: argparse.Namespace) -> Any:
    """The ``--transport*`` and ``--landmarks`` options as one Transport (None: default)."""
    from magan.transport import Transport

    given = {"kind": args.transport, "landmarks": args.landmarks, "cost": args.transport_cost,
             "warmup": args.transport_warmup}
    given = {k: v for k, v in given.items() if v is not None}
    if given.get("cost") not in (None, "auto") and "kind" not in given:
        given["kind"] = "minibatch"  # a minibatch cost asks for minibatch plans
    return Transport(**given) if given else None


def _preprocess(args: argparse.Namespace, own: float | None):
    """``--arcsinh1/2`` over ``--arcsinh``; None (the estimator's "auto") when neither."""
    cofactor = own if own is not None else args.arcsinh
    if cofactor is None:
        return None
    if args.no_transform:
        raise ConfigError("--no-transform and --arcsinh contradict each other; pass one")
    from magan.preprocessing import Arcsinh

    return Arcsinh(cofactor)


def _names(text: str | None) -> list[str] | None:
    return None if text is None else [t.strip() for t in text.split(",") if t.strip()]


def _channel_choice(args: argparse.Namespace, a1, a2):
    """``--channels`` (the names to align) or ``--exclude`` (left out of the default roles),
    as the ``channels=`` of ``MAGAN.fit``; "auto" when neither (magan.cytometry)."""
    from magan.cytometry import check_channel_list, choose_both

    chosen, excluded = _names(args.channels), _names(args.exclude)
    if chosen is not None and excluded is not None:
        raise ConfigError("pass --channels or --exclude, not both")
    if chosen is not None:  # checked where it is used (choose_both)
        return chosen
    if excluded is None:
        return "auto"
    check_channel_list(excluded, [str(n) for n in a1.var_names], [str(n) for n in a2.var_names])
    auto = [n for record in choose_both(a1, a2, "auto")[2] for n in record["aligned"]]
    return list(dict.fromkeys(n for n in auto if n not in set(excluded)))


def _var_rows(adata, names: list[str]):
    """``adata.var``'s channel/antigen/range for ``names`` (blank where absent), so FCS output
    keeps each channel's $PnN and $PnS."""
    import pandas as pd

    cols = [c for c in ("channel", "antigen", "range") if c in adata.var]
    var = pd.DataFrame(index=pd.Index(names, dtype=str))
    for c in cols:
        var[c] = [adata.var[c].get(n, "" if c != "range" else np.nan) for n in names]
    return var


def _write_outputs(model, a1, a2, targets: list[Path]) -> list[Path]:
    """The translations (each input's cells in the other domain) and each input with the other
    domain's unmeasured markers imputed ("(imputed)"); channels that were not aligned (Time,
    DNA, beads, ...) pass through both unchanged."""
    import pandas as pd

    written = []
    for domain, adata, other, target in ((1, a1, a2, targets[0]), (2, a2, a1, targets[1])):
        values = model.transform(adata) if domain == 1 else model.inverse_transform(adata)
        names = model.feature_names2_ if domain == 1 else model.feature_names1_
        written.append(_write_with_passthrough(model, adata, domain, values,
                                               _var_rows(other, names), target))
    for domain, adata, other, target in ((1, a1, a2, targets[2]), (2, a2, a1, targets[3])):
        imputed = model.impute(adata, domain=domain)
        if imputed.shape[1]:
            measured = model.check_input(adata, domain=domain)
            var = _var_rows(adata, list(measured.feature_names))
            extra = _var_rows(other, list(imputed.columns))
            if "antigen" in extra:  # a new channel: its own $PnN unless this file has it
                _distinct_channels(extra, var, "_imputed")
                extra["antigen"] = [f"{a or n} (imputed)" for a, n in
                                    zip(extra["antigen"], extra.index, strict=True)]
            extra.index = [f"{c} (imputed)" for c in imputed.columns]
            values = np.hstack([measured.X, imputed.to_numpy(dtype=np.float32)])
            written.append(_write_with_passthrough(model, adata, domain, values,
                                                   pd.concat([var, extra]), target))
    return written


def _distinct_channels(rows, beside, suffix: str) -> None:
    """Give ``rows`` whose $PnN is already in ``beside`` the ``suffix``: FCS channel names must
    be unique within a file."""
    if "channel" in rows and "channel" in beside:
        taken = set(beside["channel"])
        rows["channel"] = [f"{c}{suffix}" if c in taken else c for c in rows["channel"]]


def _model_var(model, domain: int, names: list[str]):
    """The $PnN/$PnS the model saw for ``names`` of ``domain`` (recorded at fit from FCS
    input), for files written without that domain's data at hand; the name itself else."""
    import pandas as pd

    record = ((model.channels_ or [{}, {}])[domain - 1] or {}).get("fcs_names", {})
    pairs = [record.get(n, [n, ""]) for n in names]
    return pd.DataFrame({"channel": [c for c, _ in pairs], "antigen": [a for _, a in pairs]},
                        index=pd.Index(names, dtype=str))


def _write_with_passthrough(model, adata, domain: int, values, var, target: Path,
                            overwrite: bool = True) -> Path:
    """``values`` (cells × ``var``) plus ``adata``'s channels the model did not align, in the
    input's channel order where names allow, atomically."""
    import anndata as ad
    import pandas as pd

    from magan import io

    record = (model.channels_ or [{}, {}])[domain - 1] or {}
    passed = [n for n in record.get("passed_through", {}) if n in adata.var_names]
    clash = [n for n in passed if n in set(var.index)]
    if clash:
        warnings.warn(f"x{domain}: channels {clash} are both passed through and translated; "
                      "the output keeps the translation", stacklevel=2)
        passed = [n for n in passed if n not in set(clash)]
    if passed:
        raw = adata[:, passed].X
        raw = np.asarray(raw.toarray() if hasattr(raw, "toarray") else raw, dtype=np.float32)
        values = np.hstack([np.asarray(values, dtype=np.float32), raw])
        own = _var_rows(adata, passed)
        _distinct_channels(own, var, f"_x{domain}")  # e.g. Nd142Di unlabelled here, CD19 there
        var = pd.concat([var, own])
        order = [n for n in adata.var_names if n in set(var.index)]
        order += [n for n in var.index if n not in set(order)]
        index = {n: i for i, n in enumerate(var.index)}
        values, var = values[:, [index[n] for n in order]], var.loc[order]
    out = ad.AnnData(X=np.asarray(values, dtype=np.float32), var=var)
    out.obs_names = [str(c) for c in adata.obs_names]
    return io.write(out, target, overwrite=overwrite)


def _write_combined(model, a1, a2, path: Path) -> Path:
    """Both inputs' cells in domain 2's space, one h5ad: ``.X`` in domain 2's units (domain-1
    cells translated), ``.obsm["X_magan"]`` the model's space (transformed and standardised:
    for neighbours and UMAP), ``.uns["magan"]`` what was done and the verdict."""
    from magan import io
    from magan.tl import combine, uns_record

    both = combine(model, a1, a2, space=2, obs_keys=[])
    both.obsm["X_magan"] = model.embed(both.X, domain=2)
    record = uns_record(model, domain=2)
    for key, value in (("channels", model.channels_), ("transforms", model.input_transforms_)):
        if value is not None:
            record[key] = {"domain1": value[0], "domain2": value[1]}
    if model.diagnostics_ is not None:
        record["verdict"] = model.diagnostics_.verdict
        record["reasons"] = list(model.diagnostics_.reasons)
        record["notes"] = list(model.diagnostics_.notes)
    both.uns["magan"] = _h5ad_safe(record)
    return io.write(both, path, overwrite=True)


def _h5ad_safe(value):
    """h5ad stores nested dicts of strings and numbers: tuples become lists, None "none"."""
    if isinstance(value, dict):
        return {str(k): _h5ad_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_h5ad_safe(v) for v in value]
    return "none" if value is None else value


def _finite_cells(adata):
    """The cells without NaN/inf (what ``fit(drop_nonfinite=True)`` trains on)."""
    import numpy as np

    X = adata.X.toarray() if hasattr(adata.X, "toarray") else np.asarray(adata.X)
    keep = np.isfinite(X).all(axis=1)
    return adata if keep.all() else adata[keep]


def cmd_align(args: argparse.Namespace) -> int:
    """``magan align``: every option checked before the fit, so a mistake costs seconds, not a
    training run; each stage is timed for ``--verbose``."""
    clock = _Stopwatch()
    from magan import cytometry, estimator, io  # noqa: F401 - torch loads in the first stage

    clock.lap("import (torch, magan)")
    a1 = io.read(args.x1)
    a2 = io.read(args.x2)
    clock.lap("read inputs")
    out = Path(args.out)
    suffix = _output_suffix(Path(args.x1), args.format)
    targets = _align_targets(args, out, suffix)
    fit_kw, diagnose = _fit_arguments(args, a1, a2, out)
    model = _model_from_args(args)
    out.mkdir(parents=True, exist_ok=True)
    model, ensemble = _fit_align(args, model, a1, a2, fit_kw, diagnose)
    from magan.distributed import barrier, is_main_process

    clock.lap("fit (training and self-diagnosis)")
    if not is_main_process():  # under torchrun every rank trained; rank 0 writes the outputs
        barrier()
        return 0
    if args.drop_nonfinite:  # translations cover the cells that were trained on
        a1, a2 = _finite_cells(a1), _finite_cells(a2)
    written = _write_align_outputs(args, model, ensemble, a1, a2, targets, suffix)
    clock.lap("translate and write outputs")
    if args.report:
        _report(out, overwrite=True)
        clock.lap("report")
    if not args.quiet:
        print(f"model: {out / 'model'}")
        for path in written:
            print(f"wrote {path}")
    barrier()
    if args.verbose:
        print(clock.table())
    _print_verdict(model.diagnostics_, quiet=args.quiet)
    if args.strict and model.diagnostics_ is not None and model.diagnostics_.verdict == "failed":
        raise AlignmentFailedError(f"the alignment failed its self-diagnosis (--strict); the "
                                   f"outputs in {out} were written but should not be used")
    return 0


def _align_targets(args: argparse.Namespace, out: Path, suffix: str) -> list[Path]:
    """Every path ``align`` writes (model, translations, imputed, intervals), known before the
    fit so that existing outputs are refused then rather than overwritten after it."""
    targets = [out / "model", out / f"x1_in_domain2{suffix}", out / f"x2_in_domain1{suffix}",
               out / f"x1_with_imputed{suffix}", out / f"x2_with_imputed{suffix}"]
    if args.members < 1:
        raise ConfigError(f"--members must be at least 1, got {args.members}")
    if args.interval is not None:
        targets += [out / "ensemble", out / f"x1_imputed_interval{suffix}",
                    out / f"x2_imputed_interval{suffix}"]
    elif args.members != 1:
        raise ConfigError("--members trains an ensemble for --interval; pass --interval LEVEL "
                          "(e.g. 0.9) too")
    if not args.overwrite and not args.resume:
        existing = [str(t) for t in targets if t.exists()]
        if existing:
            raise OutputExistsError(f"outputs exist: {existing}; pass --overwrite or --resume")
    return targets


def _fit_arguments(args: argparse.Namespace, a1, a2,
                   out: Path) -> tuple[dict[str, Any], bool | str]:
    """``fit``'s data-dependent arguments (channels, shared markers, known pairs) and the
    diagnose mode, resolved against the inputs so a wrong name fails before any training."""
    from magan import io
    from magan.cytometry import choose_both

    channels = _channel_choice(args, a1, a2)
    b1, b2, _ = choose_both(a1, a2, channels)
    shared, match = _parse_shared(args.shared, list(b1.var_names), list(b2.var_names))
    if match is not None and not args.quiet:
        print(f"shared markers matched by name: {len(match)}")
        print(match.table().to_string(index=False))
    known = None
    if args.known_pairs:
        known = io.read_pairs(args.known_pairs, list(a1.obs_names), list(a2.obs_names))
    fit_kw = {"shared_features": shared, "known_pairs": known,
              "checkpoint_dir": out / "checkpoint", "checkpoint_every": args.checkpoint_every,
              "resume": args.resume, "drop_nonfinite": args.drop_nonfinite,
              "channels": channels}
    return fit_kw, _diagnose_mode(args.diagnose, known)


def _model_from_args(args: argparse.Namespace):
    """The unfitted estimator; options left unset are dropped so the preset's own defaults
    (``MAGAN()`` or ``MAGAN.paper()``) stand."""
    from dataclasses import replace

    from magan.estimator import MAGAN
    from magan.settings import Correspondence

    preset = MAGAN.paper if args.preset == "paper" else MAGAN
    nets = preset().networks
    params = {
        "n_steps": args.steps,
        "batch_size": args.batch_size,
        "networks": None if not (args.generator_widths or args.discriminator_widths) else replace(
            nets, generator=args.generator_widths or nets.generator,
            discriminator=args.discriminator_widths or nets.discriminator),
        "seed": args.seed,
        "device": args.device,
        "precision": args.precision,
        "progress": not args.quiet,
        "manifold_augmentation": not args.no_augmentation,
        "correspondence": False if args.plain else None if args.shared_match is None
        else Correspondence(shared_features_match=args.shared_match),
        "standardize": {None: None, "features": True, "global": "global",
                        "none": False}[args.standardize],
        "transport": _transport(args),
        "preprocess1": _preprocess(args, args.arcsinh1),
        "preprocess2": _preprocess(args, args.arcsinh2),
    }
    model = preset(**{k: v for k, v in params.items() if v is not None})
    if args.no_transform:
        model.set_params(preprocess1=None, preprocess2=None)
    return model


def _fit_align(args: argparse.Namespace, model, a1, a2, fit_kw: dict[str, Any],
               diagnose: bool | str) -> tuple[Any, Any]:
    """(the model to write, the ensemble or None): ``--interval`` trains an ensemble, and which
    fitted model is written then depends on how its members use the known pairs."""
    with warnings.catch_warnings():
        if args.quiet:
            warnings.simplefilter("ignore")
        if args.interval is None:
            model.fit(a1, a2, **fit_kw, diagnose=diagnose)
            return model, None
        return _fit_ensemble(model, args.members, a1, a2, fit_kw, diagnose)


def _fit_ensemble(model, members: int, a1, a2, fit_kw: dict[str, Any],
                  diagnose: bool | str) -> tuple[Any, Any]:
    """(the model to write, the fitted ensemble), with one extra fit only where members leave
    known pairs out, so the written model always saw every pair."""
    from magan.data import known_pair_items
    from magan.uncertainty import Ensemble

    ensemble = Ensemble(model, n_members=members)
    if ensemble.holds_out_pairs(len(known_pair_items(fit_kw["known_pairs"]))):
        # Members leave known pairs out to calibrate on them (scGEM 90% intervals held
        # 0.80 / 0.88 instead of 0.45 / 0.59): the model to write is one more fit that sees
        # them all (its own checkpoint beside the members').
        ensemble.fit(a1, a2, **fit_kw, diagnose=False)
        model.fit(a1, a2, **{**fit_kw, "checkpoint_dir": fit_kw["checkpoint_dir"] / "model"},
                  diagnose=diagnose)
        return model, ensemble
    # every member sees every pair: member 0 is the model to write
    return ensemble.fit(a1, a2, **fit_kw, diagnose=bool(diagnose)).members_[0], ensemble


def _write_align_outputs(args: argparse.Namespace, model, ensemble, a1, a2,
                         targets: list[Path], suffix: str) -> list[Path]:
    """Everything ``align`` leaves in OUT; returns the data files written, which are the ones
    announced (the model, run.json and inputs.json are not)."""
    from magan import io

    out = Path(args.out)
    model.save(out / "model", overwrite=True)
    written = _write_outputs(model, a1, a2, targets[1:5])
    if suffix == ".fcs" or Path(args.x1).suffix.lower() == ".fcs":
        written.append(_write_combined(model, a1, a2, out / "aligned.h5ad"))
    if ensemble is not None:
        written += _write_intervals(ensemble, a1, a2, args.interval, targets[5:])
    summary = _run_summary(args, model, a1, a2)
    io.write_text_atomic(out / "run.json", json.dumps(summary, indent=2))
    inputs = {"x1": str(Path(args.x1).resolve()), "x2": str(Path(args.x2).resolve())}
    if args.known_pairs:
        inputs["known_pairs"] = str(Path(args.known_pairs).resolve())
    io.write_text_atomic(out / "inputs.json", json.dumps(inputs, indent=2))  # for `magan report`
    return written


def _run_summary(args: argparse.Namespace, model, a1, a2) -> dict[str, Any]:
    """run.json: what the fit decided (shared features, channels, transport...) and its
    verdict, so a run can be judged later without loading the model."""
    return {
        "x1": str(args.x1), "x2": str(args.x2), "n_cells": [a1.n_obs, a2.n_obs],
        "shared_features": model.shared_features_, "n_known_pairs": model.n_known_pairs_,
        "channels": model.channels_, "transforms": model.input_transforms_,
        "transport": model.transport_, "adversarial_weight": model.adversarial_weight_,
        "final_losses": {k: float(v) for k, v in model.history_.iloc[-1].items()},
        "diagnostics": None if model.diagnostics_ is None else model.diagnostics_.to_dict(),
    }


class _Stopwatch:
    """Wall time per stage of a command, for ``--verbose`` (where did the minute go?)."""

    def __init__(self) -> None:
        import time

        self._now = time.perf_counter
        self._last = self._start = self._now()
        self.laps: list[tuple[str, float]] = []

    def lap(self, stage: str) -> None:
        now = self._now()
        self.laps.append((stage, now - self._last))
        self._last = now

    def table(self) -> str:
        rows = [f"  {stage:<36} {sec:7.1f} s" for stage, sec in self.laps]
        total = f"  {'total':<36} {self._now() - self._start:7.1f} s"
        return "\n".join(["time per stage:", *rows, total])


def _diagnose_mode(option: str | None, known) -> bool | str:
    """``--diagnose``: on, holdout or off; by default "holdout" once 4 known pairs are given
    (one more fit, which scores pairs the model never saw), else on."""
    from magan.data import known_pair_items
    from magan.diagnostics import HELDOUT_MIN_PAIRS

    if option is None:
        n = len(known_pair_items(known)) if known is not None else 0
        option = "holdout" if n >= HELDOUT_MIN_PAIRS else "on"
    return {"on": True, "holdout": "holdout", "off": False}[option]


def _print_verdict(diag, *, quiet: bool) -> None:
    """The verdict lines, last; "failed"/"check" also as a WARNING on stderr, even --quiet."""
    if diag is None:
        return
    if diag.verdict != "good":
        what = "FAILED" if diag.verdict == "failed" else "needs checking"
        print(f"WARNING: magan: the self-diagnosis says this alignment {what}: "
              + "; ".join(diag.reasons), file=sys.stderr)
    if not quiet:
        print(diag.summary())


def _write_intervals(ens, a1, a2, level: float, targets: list[Path]) -> list[Path]:
    """OUT/ensemble and, per domain, the other domain's unshared features imputed with a
    ``level`` interval: columns "<feature> (mean)", "(lower)", "(upper)" (magan.uncertainty)."""
    written = [ens.save(targets[0], overwrite=True)]
    for domain, adata, target in ((1, a1, targets[1]), (2, a2, targets[2])):
        frame = ens.impute(adata, domain=domain, level=level)
        if frame.shape[1]:
            frame = frame.drop(columns="sd", level=0)
            names = _interval_names(frame.columns)
            written.append(_write_translation(frame.to_numpy(dtype=np.float32),
                                              list(adata.obs_names), names, target,
                                              overwrite=True))
    return written


def _interval_names(columns: Iterable[tuple[str, str]]) -> list[str]:
    """Output column names "<feature> (<stat>)" for (stat, feature) pairs, in both commands."""
    return [f"{feature} ({stat})" for stat, feature in columns]


def _level(text: str) -> float:
    from magan.uncertainty import check_level

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    try:
        return check_level(value)
    except ConfigError as exc:  # the library's range check, and its message
        raise argparse.ArgumentTypeError(str(exc)) from None


def cmd_transform(args: argparse.Namespace) -> int:
    from magan import io
    from magan.estimator import MAGAN
    from magan.uncertainty import Ensemble, is_saved_ensemble

    domain = 2 if args.inverse else 1
    if is_saved_ensemble(args.model):  # OUT/ensemble: the members' mean (+ interval)
        model = Ensemble.load(args.model, device=args.device)
        first = model.members_[0]
    elif args.interval is not None:
        raise ConfigError(f"--interval needs an ensemble folder (OUT/ensemble, written by "
                          f"align --interval); {args.model} is a single model")
    else:
        model = first = MAGAN.load(args.model, device=args.device)
    adata = io.read(args.x)
    names = first.output_features(domain, None)
    if args.interval is not None:
        iv = model.interval(adata, domain=domain, level=args.interval)
        values = np.hstack([iv.mean, iv.lower, iv.upper])
        names = _interval_names((stat, f) for stat in ("mean", "lower", "upper") for f in names)
        path = _write_translation(values, list(adata.obs_names), names, Path(args.out),
                                  overwrite=args.overwrite)
    else:  # like align's outputs: the input's unaligned channels pass through
        values = model.inverse_transform(adata) if args.inverse else model.transform(adata)
        path = _write_with_passthrough(first, adata, domain, values,
                                       _model_var(first, 3 - domain, names), Path(args.out),
                                       overwrite=args.overwrite)
    print(f"wrote {path}")
    return 0


def cmd_markers(args: argparse.Namespace) -> int:
    from magan import io
    from magan.cytometry import ALIGNED_ROLES, choose_both
    from magan.preprocessing import match_markers

    a1, a2 = io.read(args.x1), io.read(args.x2)
    for label, path, adata in (("x1", args.x1, a1), ("x2", args.x2, a2)):
        if "role" in adata.var:
            table = adata.var[[c for c in ("channel", "antigen", "role", "role_rule")
                               if c in adata.var]].copy()
            table.insert(0, "name", list(adata.var_names))
            table.insert(4, "aligned", ["yes" if r in ALIGNED_ROLES else "no"
                                        for r in adata.var["role"]])
            instrument = adata.uns.get("fcs", {})
            print(f"{label}: {path} ({instrument.get('instrument', '?')} cytometry: "
                  f"{instrument.get('instrument_reason', '')})")
            print(table.to_string(index=False) + "\n")
    b1, b2, _ = choose_both(a1, a2, "auto")
    match = match_markers(list(b1.var_names), list(b2.var_names))
    print(match.table().to_string(index=False))
    print(f"\n{len(match)} matched; unmatched in x1: {list(match.unmatched1)}; "
          f"unmatched in x2: {list(match.unmatched2)}")
    if match.ambiguous:
        print(f"ambiguous (not matched): {list(match.ambiguous)}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from magan.demo import run_demo

    run_demo(Path(args.out), quick=args.quick, progress=not args.quiet)
    return 0


def _report(run_dir: Path, overwrite: bool = False) -> Path:
    try:
        from magan.report import write_report
    except ImportError as exc:  # pragma: no cover - report module not installed
        raise ConfigError(f"reports are unavailable: {exc}") from exc
    path = write_report(run_dir, overwrite=overwrite)
    print(f"wrote {path}")
    return path


def cmd_report(args: argparse.Namespace) -> int:
    _report(Path(args.run_dir), overwrite=args.overwrite)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``magan`` parser, one ``_add_*`` per subcommand so each can change on its own."""
    parser = argparse.ArgumentParser(
        prog="magan",
        description="Align two single-cell datasets with a Manifold-Aligning GAN (MAGAN).",
    )
    parser.add_argument("--version", action="version", version=f"magan {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_align(sub)
    _add_transform(sub)
    _add_markers(sub)
    _add_demo(sub)
    _add_report(sub)
    return parser


def _add_align(sub: argparse._SubParsersAction) -> None:
    """``align`` has some forty options, so they are added in groups of one concern each, in
    the order ``--help`` lists them."""
    p = sub.add_parser("align", help="train MAGAN on two files and write the translations",
                       description="Train MAGAN between X1 and X2 (.h5ad, .csv/.tsv, .fcs, .npz, "
                                   ".parquet) and write OUT/model, OUT/x1_in_domain2.*, "
                                   "OUT/x2_in_domain1.* and OUT/run.json.")
    p.add_argument("x1", help="domain 1 data file")
    p.add_argument("x2", help="domain 2 data file")
    p.add_argument("--out", required=True, help="output directory")
    _add_shared_options(p)
    _add_transport_options(p)
    _add_correspondence_options(p)
    _add_channel_options(p)
    _add_training_options(p)
    _add_output_options(p)
    _add_diagnosis_options(p)
    p.set_defaults(func=cmd_align)


def _add_shared_options(p: argparse.ArgumentParser) -> None:
    """Together because they decide which features tie the two domains and on what scale."""
    p.add_argument("--shared", default="auto",
                   help="shared features: 'auto' (match marker names, forgiving case and "
                        "aliases), 'none', or 'A:B,C:D' pairs of names (default: auto)")
    p.add_argument("--shared-match", choices=["values", "standardized"], default=None,
                   help="shared markers equal in value (paper) or after per-domain scaling "
                        "(batch effects)")
    p.add_argument("--standardize", choices=["features", "global", "none"], default=None,
                   help="input scaling per domain: each feature centred and all divided by "
                        "one common scale, keeping relative spreads (default; right for PCA "
                        "components too), each feature to unit variance, or none (the paper "
                        "preset's)")


def _add_transport_options(p: argparse.ArgumentParser) -> None:
    """Together because ``_transport`` reads all four into one Transport."""
    p.add_argument("--transport", choices=["auto", "landmark", "minibatch", "none"],
                   default=None,
                   help="where the pseudo-pairs come from: a plan computed once between "
                        "landmark cells from each domain's geometry, anchored by the known "
                        "pairs (landmark), each step's minibatch plan (minibatch), or none; "
                        "default auto: minibatch with shared markers, else landmark")
    p.add_argument("--landmarks", type=int, metavar="N",
                   help="cells per domain in the landmark plan (default 2000)")
    p.add_argument("--transport-cost", choices=["auto", "shared", "translation", "structure"],
                   default=None,
                   help="what a minibatch plan pairs cells by: shared markers, the "
                        "translations, or 'structure' (Gromov-Wasserstein on each batch's "
                        "distances fused with the translations); default auto: shared if "
                        "any, else translation")
    p.add_argument("--transport-warmup", type=float, metavar="FRACTION",
                   help="fraction of the steps over which a translation plan ramps in "
                        "(default 0.3; 0 = from the first step)")


def _add_correspondence_options(p: argparse.ArgumentParser) -> None:
    """Together because each changes where the correspondence comes from: given pairs, the
    ablations of MAGAN's own terms, or the published recipe."""
    p.add_argument("--known-pairs", help="CSV of known corresponding cells: two columns, row "
                                         "indices or cell ids of X1 and X2")
    p.add_argument("--plain", action="store_true", help="plain GAN ablation: no correspondence")
    p.add_argument("--no-augmentation", action="store_true",
                   help="switch manifold augmentation off")
    p.add_argument("--preset", choices=["default", "paper"], default="default",
                   help="'paper': the published recipe (batch 100, no input scaling)")


def _add_channel_options(p: argparse.ArgumentParser) -> None:
    """Together because the channel choice and the transforms both decide what the model sees
    of a cytometry file."""
    p.add_argument("--arcsinh", type=float,
                   help="arcsinh cofactor for both inputs (5 CyTOF, 150 flow); default: from "
                        "the FCS header (5 mass, 150 flow), none for other files")
    p.add_argument("--no-transform", action="store_true",
                   help="no transform (FCS input gets arcsinh 5 mass / 150 flow by default)")
    p.add_argument("--channels", metavar="A,B,...",
                   help="align exactly these channels (default: markers and scatter of FCS "
                        "files, every feature otherwise; see `magan markers`)")
    p.add_argument("--exclude", metavar="A,B,...",
                   help="leave these channels out of the default ones")
    p.add_argument("--arcsinh1", type=float, help="arcsinh cofactor for X1 only")
    p.add_argument("--arcsinh2", type=float, help="arcsinh cofactor for X2 only")


def _joined(widths: tuple[int, ...]) -> str:
    return ",".join(str(w) for w in widths)


def _add_training_options(p: argparse.ArgumentParser) -> None:
    """Together because they set how a fit runs (budget, sizes, seed, hardware), not what it
    aligns."""
    p.add_argument("--steps", type=int, help="training steps")
    p.add_argument("--batch-size", type=int, help="cells per domain per step")
    from magan.settings import Networks  # torch-free: the defaults' text, written once

    default, paper = Networks(), Networks.paper()
    for side in ("generator", "discriminator"):
        p.add_argument(f"--{side}-widths", type=_widths, metavar="W1,W2,...",
                       help=f"hidden layer widths of both {side}s (default "
                            f"{_joined(getattr(default, side))}; paper preset "
                            f"{_joined(getattr(paper, side))})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--precision", choices=["float32", "bfloat16"], default=None,
                   help="bfloat16: mixed-precision training (autocast) for GPUs with bfloat16 "
                        "tensor cores; default float32")


def _add_output_options(p: argparse.ArgumentParser) -> None:
    """Together because they decide what lands in OUT and what happens to what is there."""
    p.add_argument("--format", choices=["csv", "h5ad", "fcs"],
                   help="format of the translated files (default: X1's, else csv)")
    p.add_argument("--checkpoint-every", type=int, default=1000,
                   help="steps between resumable checkpoints in OUT/checkpoint")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run from OUT/checkpoint")
    p.add_argument("--drop-nonfinite", action="store_true",
                   help="drop cells with NaN/inf values (with a warning) instead of refusing "
                        "the input; translations then cover the remaining cells")
    p.add_argument("--interval", type=_level, metavar="LEVEL",
                   help="also write each domain's imputed features with a LEVEL (e.g. 0.9) "
                        "interval per value, calibrated on the measured domain's own cells "
                        "and, with at least 2 known pairs per member, on pairs each member "
                        "leaves out (OUT/x*_imputed_interval.*, OUT/ensemble)")
    p.add_argument("--members", type=int, default=1,
                   help="with --interval: models in the ensemble (seeds SEED, SEED+1, ...); "
                        "their spread adds model uncertainty (default 1; levine32 panels: 90%% "
                        "intervals held 0.87 of true values with 1, 0.91 with 5)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--report", action="store_true", help="also write OUT/report.html")


def _add_diagnosis_options(p: argparse.ArgumentParser) -> None:
    """Together because they decide what a run says about itself: verdict, exit status,
    messages."""
    p.add_argument("--diagnose", choices=["on", "holdout", "off"], default=None,
                   help="self-diagnosis of the alignment without ground truth (verdict good / "
                        "check / failed, in run.json and the last lines): 'holdout' also "
                        "refits without a quarter of the known pairs to score them (one more "
                        "fit); default: holdout with 4 or more known pairs, else on")
    p.add_argument("--strict", action="store_true",
                   help="exit with status 3 (after writing the outputs) when the verdict is "
                        "'failed'")
    p.add_argument("--quiet", action="store_true", help="no progress bar or messages")
    p.add_argument("--verbose", action="store_true", help="print the wall time of each stage")


def _add_transform(sub: argparse._SubParsersAction) -> None:
    """``transform``: a saved model (or ensemble) applied to new cells, without retraining."""
    p = sub.add_parser("transform", help="translate cells with a saved model")
    p.add_argument("model", help="model directory written by align (OUT/model, or "
                                 "OUT/ensemble for the members' mean)")
    p.add_argument("x", help="cells of domain 1 (or domain 2 with --inverse)")
    p.add_argument("--out", required=True, help="output file (.csv, .h5ad or .fcs)")
    p.add_argument("--inverse", action="store_true", help="domain 2 → domain 1")
    p.add_argument("--interval", type=_level, metavar="LEVEL",
                   help="with OUT/ensemble: every feature as '(mean)', '(lower)', '(upper)' "
                        "columns of a LEVEL interval")
    p.add_argument("--device", default="auto")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_transform)


def _add_markers(sub: argparse._SubParsersAction) -> None:
    """``markers``: the name matching ``align --shared auto`` would do, shown before a fit."""
    p = sub.add_parser("markers", help="show which marker names of X1 and X2 match")
    p.add_argument("x1")
    p.add_argument("x2")
    p.set_defaults(func=cmd_markers)


def _add_demo(sub: argparse._SubParsersAction) -> None:
    """``demo``: the bundled data end to end, for a first look or a smoke test."""
    p = sub.add_parser("demo", help="run the bundled demo (toy + real CyTOF batches)")
    p.add_argument("--out", default="magan_demo", help="output directory (default magan_demo)")
    p.add_argument("--quick", action="store_true", help="fewer steps, for a smoke test")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_demo)


def _add_report(sub: argparse._SubParsersAction) -> None:
    """``report``: an HTML page for a run directory written earlier."""
    p = sub.add_parser("report", help="write an HTML report of a run directory")
    p.add_argument("run_dir")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_report)



def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except AlignmentFailedError as exc:  # outputs written; the verdict is the news
        print(f"magan: error: {exc}", file=sys.stderr)
        return 3
    except MaganError as exc:
        print(f"magan: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # missing input, unwritable output folder, full disk...
        print(f"magan: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("magan: interrupted (resume with --resume)", file=sys.stderr)
        return 130
    finally:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
