"""Which channels of a cytometry file are aligned, and how they are transformed first.

Why here, between reading (:mod:`magan.io`) and the estimator: an FCS file read by
:func:`magan.io.read` carries each channel's role (``.var["role"]``, see
:mod:`magan.channels`) and the instrument (``.uns["fcs"]["instrument"]``), and both
``MAGAN.fit`` and the CLI must make the same two choices from them:

* **Channels.** Only ``ALIGNED_ROLES`` are aligned: markers, and scatter (cell size and
  granularity, which flow gates use). Time, event length, DNA, viability, beads, barcodes and
  unlabelled channels describe the acquisition, not the cell's phenotype; the CLI passes them
  through its outputs unchanged. ``channels="all"`` or a list of names overrides.
* **Transform.** ``preprocess="auto"``: for FCS input, arcsinh with the instrument's cofactor
  (:data:`magan.channels.DEFAULT_COFACTOR`: 5 mass cytometry, 150 flow fluorescence) on every
  aligned channel except scatter, which is divided by its ``$PnR`` range (linear), unless the
  values are all small already (transformed, e.g. an h5ad saved after arcsinh that kept the FCS
  metadata: then none, with a warning). For arrays, tables and other h5ad, no transform; a
  warning names the columns whose values look untransformed.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from magan.channels import DEFAULT_COFACTOR
from magan.errors import ConfigError, DataError
from magan.preprocessing import ChannelTransform, Transform

__all__ = [
    "ALIGNED_ROLES",
    "check_channel_list",
    "choose_both",
    "choose_channels",
    "input_transform",
    "untransformed_columns",
]

ALIGNED_ROLES = ("marker", "scatter")
# "Looks untransformed": a column whose 99th percentile of |x| is above this (arcsinh/log data
# stay below ~15) and above 3 times its median (a heavy right tail).
RAW_QUANTILE = 0.99
RAW_LEVEL = 100.0
# FCS channels whose 99th percentiles are all below this were transformed already (arcsinh(x/5)
# of a 10^6 count is 12.9), e.g. an h5ad saved after arcsinh that kept the FCS metadata.
TRANSFORMED_LEVEL = 20.0


def _roles(x: Any) -> Any:
    if not hasattr(x, "var_names"):  # an AnnData's .var, not a DataFrame's .var() method
        return None
    return x.var["role"] if "role" in x.var else None


def choose_channels(x: Any, channels: str | Sequence[str] = "auto", *,
                    name: str = "x") -> tuple[Any, dict[str, Any]]:
    """``x`` restricted to the channels to align, and a record of the choice.

    ``channels``: ``"auto"`` (the ``ALIGNED_ROLES`` of an FCS-read AnnData; everything for
    other input), ``"all"``, or a list of names (each domain keeps those it has; a domain left
    with none is an error). The record: ``{"aligned": [...], "passed_through": {name: role},
    "rule": sentence}``, JSON-able, saved with the model.
    """
    names = _feature_names(x)
    roles = _roles(x)
    if isinstance(channels, str):
        if channels not in ("auto", "all"):
            raise ConfigError(f"channels must be 'auto', 'all' or a list of names; got "
                              f"{channels!r}")
        if channels == "all" or roles is None:
            rule = "all features" if roles is None else "channels='all'"
            return x, {"aligned": names, "passed_through": {}, "rule": rule,
                       **_fcs_names(x, names or [])}
        keep = [n for n, r in zip(names, roles, strict=True) if r in ALIGNED_ROLES]
        rule = "channel roles: " + " and ".join(ALIGNED_ROLES) + " are aligned"
    else:
        wanted = [str(c) for c in channels]
        if names is None:
            raise DataError(f"{name} has no feature names, so channels= cannot pick by name")
        keep = [n for n in names if n in set(wanted)]
        rule = "channels= given"
    if not keep:
        raise DataError(f"{name}: no channel to align ({rule}); its channels are {names[:20]}; "
                        "pass channels='all' or a list of names")
    role_of = dict(zip(names, roles, strict=True)) if roles is not None else {}
    passed = {n: str(role_of.get(n, "excluded")) for n in names if n not in set(keep)}
    subset = x if len(keep) == len(names) else _columns(x, keep)
    return subset, {"aligned": keep, "passed_through": passed, "rule": rule,
                    **_fcs_names(x, keep)}


def _fcs_names(x: Any, keep: list[str]) -> dict[str, Any]:
    """``{"fcs_names": {name: [$PnN, $PnS]}}`` for the aligned channels of an FCS-read AnnData,
    so that files written later (``magan transform``) carry the same channel names."""
    var = getattr(x, "var", None) if hasattr(x, "var_names") else None
    if var is None or "channel" not in var:
        return {}
    antigen = var["antigen"] if "antigen" in var else None
    return {"fcs_names": {n: [str(var["channel"][n]),
                              "" if antigen is None else str(antigen[n])] for n in keep}}


def choose_both(x1: Any, x2: Any, channels: str | Sequence[str] = "auto"
                ) -> tuple[Any, Any, list[dict[str, Any]]]:
    """:func:`choose_channels` for both domains, after checking that every listed name is in
    one of them (a name in neither is a typo); returns both subsets and both records."""
    if not isinstance(channels, str):
        channels = [str(c) for c in channels]
        check_channel_list(channels, _feature_names(x1) or [], _feature_names(x2) or [])
    y1, record1 = choose_channels(x1, channels, name="x1")
    y2, record2 = choose_channels(x2, channels, name="x2")
    return y1, y2, [record1, record2]


def check_channel_list(channels: Sequence[str], names1: Sequence[str],
                       names2: Sequence[str]) -> None:
    """A name in ``channels`` that neither domain has is a typo: say so."""
    unknown = [c for c in channels if c not in set(names1) | set(names2)]
    if unknown:
        raise DataError(f"channels {unknown} are in neither input; x1 has {list(names1)[:20]}, "
                        f"x2 has {list(names2)[:20]}")


def _feature_names(x: Any) -> list[str] | None:
    if hasattr(x, "var_names"):
        return [str(n) for n in x.var_names]
    if hasattr(x, "columns"):
        return [str(c) for c in x.columns]
    return None


def _columns(x: Any, keep: list[str]) -> Any:
    if hasattr(x, "var_names"):
        return x[:, keep]
    return x[keep]


def input_transform(preprocess: Any, x: Any, *, name: str = "x") -> tuple[Transform | None,
                                                                           str]:
    """Resolve ``preprocess`` (``"auto"``, a Transform or None) for the aligned channels of
    ``x``; returns the transform and a sentence saying what was chosen and why."""
    if preprocess is None:
        return None, "no transform (preprocess=None)"
    if isinstance(preprocess, Transform):
        return preprocess, f"{type(preprocess).__name__} (given)"
    if preprocess != "auto":
        raise ConfigError(f"preprocess must be 'auto', a magan.preprocessing.Transform or None; "
                          f"got {preprocess!r}")
    fcs = x.uns.get("fcs", {}) if hasattr(x, "var_names") and hasattr(x, "uns") else {}
    kind = fcs.get("instrument") if isinstance(fcs, dict) else None
    roles = _roles(x)
    if kind in DEFAULT_COFACTOR and roles is not None:
        if _looks_transformed(x):
            warnings.warn(f"{name}: an FCS file's channels, but every value is already below "
                          f"{TRANSFORMED_LEVEL:g} (transformed already?): no transform "
                          "applied; pass preprocess explicitly if that is wrong", stacklevel=3)
            return None, "no transform (FCS channels, but the values look transformed already)"
        return _fcs_transform(x, kind, str(fcs.get("instrument_reason", "")))
    raw = untransformed_columns(x)
    if raw:
        warnings.warn(f"{name}: columns {raw[:8]}{' ...' if len(raw) > 8 else ''} look "
                      "untransformed (large, right-skewed values); cytometry intensities "
                      "usually need arcsinh (preprocess1=magan.preprocessing.Arcsinh(5) for "
                      "CyTOF, 150 for flow; CLI --arcsinh) and counts a log", stacklevel=3)
    return None, "no transform (not an FCS file)"


def _fcs_transform(x: Any, kind: str, reason: str) -> tuple[Transform, str]:
    cofactor = DEFAULT_COFACTOR[kind]
    roles = [str(r) for r in x.var["role"]]
    ranges = (np.asarray(x.var["range"], dtype=np.float64) if "range" in x.var
              else np.ones(len(roles)))
    kinds = ["linear" if r == "scatter" else "arcsinh" for r in roles]
    scales = [float(rg) if k == "linear" and np.isfinite(rg) and rg > 0 else
              (1.0 if k == "linear" else cofactor) for k, rg in zip(kinds, ranges, strict=True)]
    n_lin = kinds.count("linear")
    what = f"arcsinh, cofactor {cofactor:g} ({kind} cytometry: {reason})"
    if n_lin:
        what += f"; {n_lin} scatter channels linear (divided by their $PnR range)"
    return ChannelTransform(kinds, scales), what


def _sample(x: Any) -> np.ndarray:
    """|values| of at most 5,000 evenly spaced cells, float64 (enough for quantiles)."""
    X = getattr(x, "X", x)
    if hasattr(X, "toarray"):
        X = X.toarray()
    try:
        X = np.asarray(getattr(X, "values", X), dtype=np.float64)
    except (TypeError, ValueError):  # not numbers: as_matrix, which runs next, names why
        return np.zeros((0, 0))
    if X.ndim != 2 or not len(X):
        return np.zeros((0, X.shape[-1] if X.ndim == 2 else 0))
    return np.abs(X[np.linspace(0, len(X) - 1, min(len(X), 5000)).astype(int)])


def _looks_transformed(x: Any) -> bool:
    a = _sample(x)
    with np.errstate(invalid="ignore"):
        return bool(len(a)) and bool(
            (np.nanquantile(a, RAW_QUANTILE, axis=0) < TRANSFORMED_LEVEL).all())


def untransformed_columns(x: Any) -> list[str]:
    """Names (or indices) of columns whose values look like raw intensities or counts: a 99th
    percentile above ``RAW_LEVEL`` and more than 3 times the median (a heavy right tail)."""
    a = _sample(x)
    if not len(a):
        return []
    with np.errstate(invalid="ignore"):
        q = np.nanquantile(a, RAW_QUANTILE, axis=0)
        bad = (q > RAW_LEVEL) & (q > 3.0 * np.nanmedian(a, axis=0))
    names = _feature_names(x) or [str(j) for j in range(a.shape[1])]
    return [n for n, b in zip(names, bad, strict=True) if b]
