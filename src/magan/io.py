"""Read and write single-cell tables (h5ad, CSV/TSV, parquet, npz, FCS) as AnnData.

Why one module: users arrive with FCS files from the cytometer, CSVs from a colleague and AnnData
from scanpy; everything downstream (preprocessing, the estimator) sees one shape, an
:class:`anndata.AnnData` with float32 ``.X`` and meaningful ``var_names``.

FCS files are read and written with `flowio <https://github.com/whitews/flowio>`_ rather than
readfcs: flowio is BSD-licensed, maintained (it underpins FlowKit), depends only on numpy, and is
one library for both reading and writing FCS 2.0/3.0/3.1, whereas readfcs only reads (and pulls
in its own AnnData conversion, which we need to control here for the marker-name rule).

Marker names in FCS files (the rule ``marker_names`` switches):

* ``"auto"`` (default): ``$PnS`` (the antigen, e.g. ``CD3``) when present and not blank, else
  ``$PnN`` (the channel, e.g. ``Nd142Di``): so stained markers read as antigens and ``Time``,
  ``Event_length`` or unlabelled isotopes keep their channel names;
* ``"channel"``: always ``$PnN``, which is unique by the FCS standard;
* ``"antigen"``: always ``$PnS``; a channel without one is an error naming it.

Both names are kept in ``.var["channel"]`` and ``.var["antigen"]`` (empty string when absent),
with ``$PnR`` in ``.var["range"]``, each channel's role (marker, scatter, time, bead, ...: see
:mod:`magan.channels`) in ``.var["role"]`` and the rule that gave it in ``.var["role_rule"]``,
and mass or flow cytometry (and why) in ``.uns["fcs"]["instrument"]`` /
``["instrument_reason"]``. Names that collide under the rule are made unique by adding
the channel, ``"CD3 (Er170Di)"``, with a warning. Values are the stored channel values, as
flowCore reads them: log-amplified integer data are linearised (``$PnE``), but ``$PnG`` gain and
``$TIMESTEP`` are not applied and nothing is compensated unless ``compensate=True``.

Writes are atomic (a temporary file in the destination folder, then :func:`os.replace`) and
never replace an existing file unless ``overwrite=True``.
"""

from __future__ import annotations

import csv
import datetime as _dt
import lzma
import os
import re
import shutil
import sys
import tempfile
import warnings
import zlib
from array import array
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from magan.channels import assign_roles, instrument
from magan.errors import ConfigError, DataError, FileFormatError, MaganError, OutputExistsError

__all__ = [
    "read",
    "read_many",
    "read_pairs",
    "resolve_pairs",
    "write",
    "write_text_atomic",
]

PathLike = str | os.PathLike
MarkerRule = Literal["auto", "channel", "antigen"]

_TABLE_SEPS = {".csv": ",", ".tsv": "\t", ".txt": None}
_COMPRESSION = (".gz", ".bz2", ".xz")
_READ_FORMATS = (".h5ad", ".csv", ".tsv", ".txt", ".parquet", ".npz", ".fcs")
_WRITE_FORMATS = (".h5ad", ".csv", ".fcs")
# Header names of a first column that holds cell ids rather than a feature.
_ID_NAMES = {
    "",
    "cell",
    "cells",
    "cell_id",
    "cellid",
    "cell_name",
    "cell_index",
    "barcode",
    "barcodes",
    "id",
    "index",
    "obs_names",
    "name",
}
_LABEL_NAMES = {"label", "labels"}
# What a damaged compressed table raises: gzip/bz2 raise OSError or EOFError, but zlib and lzma
# have their own exception types.
_DECOMPRESS_ERRORS = (OSError, EOFError, zlib.error, lzma.LZMAError)


# --------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------


def _format_of(path: Path) -> str:
    """The extension that decides the reader; ``x.csv.gz`` reads as ``.csv``."""
    suffixes = [s.lower() for s in path.suffixes]
    if len(suffixes) >= 2 and suffixes[-1] in _COMPRESSION and suffixes[-2] in _TABLE_SEPS:
        return suffixes[-2]
    return suffixes[-1] if suffixes else ""


def read(
    path: PathLike,
    *,
    layer: str | None = None,
    marker_names: MarkerRule = "auto",
    index_col: str | int | None = "auto",
    obs_cols: Sequence[str] | None = None,
    compensate: bool = False,
) -> ad.AnnData:
    """Read one file into an AnnData with float32 ``.X``, dispatching on the extension.

    Parameters
    ----------
    path
        ``.h5ad``, ``.csv``/``.tsv``/``.txt`` (optionally ``.gz`` etc.), ``.parquet`` (needs
        pyarrow), ``.npz`` (``X`` + ``features`` [+ ``labels``], or CSR ``data``/``indices``/
        ``indptr``/``shape``) or ``.fcs``.
    layer
        h5ad: the layer to use as ``.X``; npz: the name of another (cells × features) array,
        e.g. ``"X_compensated"``.
    marker_names
        FCS (and npz whose features read ``"channel|antigen"``): which name becomes
        ``var_names``; see the module docstring.
    index_col
        Tables: the column holding cell ids (name or position), ``None`` for none, or
        ``"auto"``: the first column when its header is blank or an id-like word (``cell_id``,
        ``barcode``, ``index``...) or when it is non-numeric with unique values.
    obs_cols
        Tables: non-numeric (or numeric) columns to move to ``.obs`` instead of ``.X``. A column
        named ``label``/``labels`` always goes to ``.obs["label"]``.
    compensate
        FCS: apply the file's ``$SPILLOVER``/``$SPILL`` matrix (values of the listed channels
        times its inverse, as ``flowCore::compensate``).
    """
    path = Path(path)
    fmt = _format_of(path)
    if fmt not in _READ_FORMATS:
        raise FileFormatError(
            f"{path}: unknown file type {fmt or '(no extension)'!r}; magan reads "
            f"{', '.join(_READ_FORMATS)}"
        )
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if marker_names not in ("auto", "channel", "antigen"):
        raise ConfigError(
            "The 'marker_names' parameter of read must be 'auto', 'channel' or 'antigen'. "
            f"Got {marker_names!r} instead."
        )
    _only_for(path, fmt, "layer", layer is not None, (".h5ad", ".npz"))
    _only_for(path, fmt, "index_col", index_col != "auto", (".csv", ".tsv", ".txt", ".parquet"))
    _only_for(path, fmt, "obs_cols", obs_cols is not None, (".csv", ".tsv", ".txt", ".parquet"))
    _only_for(path, fmt, "compensate", compensate, (".fcs",))
    _only_for(path, fmt, "marker_names", marker_names != "auto", (".fcs", ".npz"))

    if fmt == ".h5ad":
        adata = _read_h5ad(path, layer)
    elif fmt == ".npz":
        adata = _read_npz(path, layer, marker_names)
    elif fmt == ".fcs":
        adata = _read_fcs(path, marker_names, compensate)
    else:
        frame = _read_parquet(path) if fmt == ".parquet" else _read_table_frame(path, fmt)
        adata = _frame_to_anndata(frame, path, index_col, obs_cols)
    return adata


def _only_for(path: Path, fmt: str, option: str, given: bool, formats: tuple[str, ...]) -> None:
    if given and fmt not in formats:
        raise ConfigError(
            f"read: option {option!r} applies to {', '.join(formats)} files, not {path.name}"
        )


def _as_float32(X: Any, where: str = "the data") -> Any:
    """float32 (CSR stays sparse); text, objects and values beyond float32's range are refused
    here, naming the file, rather than failing or turning into inf later."""
    try:
        if sp.issparse(X):
            return sp.csr_matrix(X, dtype=np.float32)
        arr = np.asarray(X)
        if arr.dtype.kind not in "biuf":
            raise DataError(f"{where}: values must be numbers, got dtype {arr.dtype}")
        with np.errstate(over="ignore"):
            out = np.ascontiguousarray(arr, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"{where}: values cannot be read as numbers: {exc}") from exc
    if arr.dtype.kind == "f" and arr.dtype.itemsize > 4 and np.isinf(out).any():
        over = np.isinf(out) & np.isfinite(arr)
        if over.any():
            raise DataError(f"{where}: {int(over.sum())} values are too large for float32 "
                            "(|x| > 3.4e38); rescale the data")
    return out


def _read_h5ad(path: Path, layer: str | None) -> ad.AnnData:
    try:
        adata = ad.read_h5ad(path)
    except MaganError:
        raise
    except Exception as exc:  # h5py/anndata raise OSError, KeyError, ValueError... on bad files
        raise FileFormatError(
            f"{path}: not a readable h5ad file (corrupt or truncated?): {type(exc).__name__}: {exc}"
        ) from exc
    if layer is not None:
        if layer not in adata.layers:
            raise DataError(f"{path}: no layer {layer!r}; layers are {sorted(adata.layers.keys())}")
        adata.X = adata.layers[layer]
    if adata.X is None:
        raise DataError(f"{path}: the h5ad file has no .X; pass layer= to choose a layer")
    adata.X = _as_float32(adata.X, str(path))
    return adata


def _read_npz(path: Path, layer: str | None, marker_names: MarkerRule) -> ad.AnnData:
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as exc:  # zipfile.BadZipFile, ValueError (pickled objects), EOFError...
        raise FileFormatError(
            f"{path}: not a readable npz file (corrupt, truncated or pickled?): "
            f"{type(exc).__name__}: {exc}"
        ) from exc

    X = _npz_matrix(arrays, path)
    if X.ndim != 2:
        raise FileFormatError(f"{path}: X must be 2-D (cells × features), got shape {X.shape}")
    n_obs, n_vars = X.shape
    layers = {k: arrays.pop(k) for k in list(arrays) if arrays[k].shape == (n_obs, n_vars)}
    if layer is not None:
        if layer not in layers:
            raise DataError(
                f"{path}: no (cells × features) array {layer!r}; found {sorted(layers)}"
            )
        layers["X"] = X
        X = layers.pop(layer)

    var = _npz_var(arrays, n_vars, marker_names, path)

    obs_index = None
    for key in ("cells", "cell_id", "obs_names"):
        if key in arrays and arrays[key].shape == (n_obs,):
            obs_index = pd.Index([str(c) for c in arrays.pop(key)])
            break
    obs = pd.DataFrame(index=obs_index if obs_index is not None else _range_index(n_obs))
    uns: dict[str, Any] = {}
    for key, value in arrays.items():
        name = "label" if key == "labels" else key
        if value.shape == (n_obs,):
            obs[name] = value
        elif value.shape == (n_vars,):
            var[name] = value
        else:
            uns[key] = value.item() if value.ndim == 0 else value
    adata = ad.AnnData(X=_as_float32(X, str(path)), obs=obs, var=var, uns=uns or None)
    for key, value in layers.items():
        adata.layers[key] = _as_float32(value, f"{path} ({key})")
    return adata


def _npz_matrix(arrays: dict[str, np.ndarray], path: Path) -> Any:
    """The matrix, popped from ``arrays`` (CSR parts as scipy's ``save_npz`` writes them, or a
    dense ``X``), so that what remains are the annotations."""
    if {"data", "indices", "indptr", "shape"} <= arrays.keys():
        shape = tuple(int(s) for s in arrays.pop("shape"))
        try:
            return sp.csr_matrix(
                (arrays.pop("data"), arrays.pop("indices"), arrays.pop("indptr")), shape=shape
            )
        except ValueError as exc:
            raise FileFormatError(f"{path}: inconsistent sparse matrix arrays: {exc}") from exc
    if "X" in arrays:
        return arrays.pop("X")
    raise FileFormatError(
        f"{path}: an npz needs an 'X' array (or CSR data/indices/indptr/shape); "
        f"found {sorted(arrays)}"
    )


def _npz_var(arrays: dict[str, np.ndarray], n_vars: int, marker_names: MarkerRule,
             path: Path) -> pd.DataFrame:
    """The feature table from the popped ``features`` names; "PnN|PnS" names (the shared data's
    layout) become channel and antigen columns, as an FCS file's would."""
    features = arrays.pop("features", None)
    if features is None:
        features = np.array([f"f{i}" for i in range(n_vars)])
    if features.shape != (n_vars,):
        raise FileFormatError(
            f"{path}: 'features' has {features.size} names for {n_vars} columns of X"
        )
    names = [str(f) for f in features]
    if any("|" in n for n in names):  # shared-data layout: "PnN|PnS", or "PnN" alone
        channel = [n.split("|", 1)[0] for n in names]
        antigen = [n.split("|", 1)[1] if "|" in n else "" for n in names]
        return _marker_var(channel, antigen, marker_names, path)
    if marker_names != "auto":
        raise ConfigError(
            f"read: marker_names={marker_names!r} needs 'channel|antigen' feature names; "
            f"{path.name} has plain names"
        )
    return pd.DataFrame(index=pd.Index(names))


def _range_index(n: int) -> pd.Index:
    return pd.Index([str(i) for i in range(n)])


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        import pyarrow  # noqa: F401
    except ImportError as exc:
        raise FileFormatError(
            f"{path}: reading parquet needs pyarrow, which is not installed "
            "(pip install pyarrow); or save the table as CSV or h5ad"
        ) from exc
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow.ArrowInvalid and friends
        raise FileFormatError(
            f"{path}: not a readable parquet file: {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(frame.index, pd.RangeIndex):
        frame = frame.reset_index()
    return frame


def _sniff_sep(path: Path, fmt: str) -> str:
    """``.txt`` may be tab-, comma- or whitespace-separated; decide from the header line."""
    sep = _TABLE_SEPS[fmt]
    if sep is not None:
        return sep
    header = _first_line(path)
    if "\t" in header:
        return "\t"
    if "," in header:
        return ","
    return r"\s+"


def _first_line(path: Path) -> str:
    import bz2
    import gzip
    import lzma

    opener = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}.get(path.suffix.lower(), open)
    with opener(path, "rt", encoding="utf-8-sig", errors="replace") as fh:
        return fh.readline().rstrip("\r\n")


def _read_table_frame(path: Path, fmt: str) -> pd.DataFrame:
    try:
        sep = _sniff_sep(path, fmt)
        header = _first_line(path)
    except _DECOMPRESS_ERRORS as exc:  # e.g. gzip.BadGzipFile, zlib.error on a damaged .gz
        raise FileFormatError(f"{path}: cannot read the header line: {exc}") from exc
    if sep == r"\s+":
        columns = re.split(sep, header.strip())
    else:
        columns = next(csv.reader([header], delimiter=sep))
    dupes = sorted({c for c in columns if columns.count(c) > 1 and c != ""})
    if dupes:
        raise DataError(f"{path}: duplicated column names {dupes}; features must be unique")
    try:
        with warnings.catch_warnings():
            # index_col=False silently drops fields beyond the header's: refuse instead.
            warnings.simplefilter("error", category=pd.errors.ParserWarning)
            frame = pd.read_csv(path, sep=sep, header=0, index_col=False, encoding="utf-8-sig")
    except pd.errors.ParserWarning as exc:
        raise FileFormatError(
            f"{path}: some rows have more fields than the header ({len(columns)} columns); "
            "fix the table (a missing header name, or a separator inside a value?)"
        ) from exc
    except pd.errors.EmptyDataError as exc:
        raise FileFormatError(f"{path}: the file is empty") from exc
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, *_DECOMPRESS_ERRORS) as exc:
        raise FileFormatError(f"{path}: not a readable table: {exc}") from exc
    return frame


def _frame_to_anndata(
    frame: pd.DataFrame,
    path: Path,
    index_col: str | int | None,
    obs_cols: Sequence[str] | None,
) -> ad.AnnData:
    """Split a table into cell ids, annotations and the numeric matrix, refusing to guess."""
    frame.columns = [str(c) for c in frame.columns]
    if frame.shape[1] == 0:
        raise FileFormatError(f"{path}: the table has no columns")
    if len(frame) == 0:
        raise DataError(f"{path}: the table has a header but no cells (rows)")

    id_name = _id_column(frame, path, index_col)
    obs = pd.DataFrame(index=_range_index(len(frame)))
    if id_name is not None:
        ids = frame.pop(id_name).astype(str)
        if not ids.is_unique:
            dup = ids[ids.duplicated()].unique()[:5].tolist()
            raise DataError(f"{path}: cell ids in column {id_name!r} repeat, e.g. {dup}")
        obs.index = pd.Index(ids.to_list())

    wanted = list(obs_cols or [])
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: obs_cols {missing} are not columns of the table")
    for col in list(frame.columns):
        if col in wanted:
            obs[col] = frame.pop(col).to_numpy()
        elif col.strip().lower() in _LABEL_NAMES:
            obs["label"] = frame.pop(col).to_numpy()

    X = _feature_matrix(frame, path)
    return ad.AnnData(X=X, obs=obs, var=pd.DataFrame(index=pd.Index(list(frame.columns))))


def _id_column(frame: pd.DataFrame, path: Path, index_col: str | int | None) -> str | None:
    """The column holding cell ids, if any; with ``"auto"`` only a first column that is named
    like one or is unique text, since mistaking a marker for ids would lose a feature."""
    if index_col == "auto":
        first = frame.columns[0]
        blank = first == "" or first.startswith("Unnamed: 0")
        if blank or first.strip().lower() in _ID_NAMES:
            return first
        if not pd.api.types.is_numeric_dtype(frame[first]) and frame[first].is_unique:
            return first
        return None
    if isinstance(index_col, int):
        if not -frame.shape[1] <= index_col < frame.shape[1]:
            raise ConfigError(f"index_col={index_col} but {path.name} has {frame.shape[1]} columns")
        return frame.columns[index_col]
    if index_col is not None:
        if index_col not in frame.columns:
            raise DataError(f"{path}: no column {index_col!r} for index_col")
        return index_col
    return None


def _feature_matrix(frame: pd.DataFrame, path: Path) -> np.ndarray:
    """The columns left after ids and annotations as float32, parsing numbers pandas kept as
    text; anything else is refused with an example cell, since it cannot be a feature."""
    for col in [c for c in frame.columns if frame[c].dtype == object]:
        parsed = _parse_numbers(frame[col], path, col)  # integers beyond int64 stay text
        if parsed is not None:
            frame[col] = parsed
    bad = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    if bad:
        examples = []
        for c in bad[:5]:
            coerced = pd.to_numeric(frame[c], errors="coerce")
            rows = np.flatnonzero(coerced.isna() & frame[c].notna())
            row = int(rows[0]) if len(rows) else 0
            examples.append(f"{c!r} (row {row + 1}: {frame[c].iloc[row]!r})")
        raise DataError(
            f"{path}: non-numeric columns {bad}, e.g. {', '.join(examples)}; pass "
            "obs_cols=[...] to keep them as cell annotations, index_col= if one holds cell "
            "ids, or remove them"
        )
    if frame.shape[1] == 0:
        raise DataError(f"{path}: no numeric feature columns left after ids and annotations")
    limit = float(np.finfo(np.float32).max)
    for col in frame.columns:
        values = frame[col].to_numpy(dtype=np.float64, na_value=np.nan)
        over = np.flatnonzero(np.isfinite(values) & (np.abs(values) > limit))
        if len(over):
            raise DataError(
                f"{path}: column {col!r} holds values too large for float32 (row "
                f"{int(over[0]) + 1}: {values[over[0]]:g}); rescale the data before reading"
            )
    return frame.to_numpy(dtype=np.float32)


def _parse_numbers(values: pd.Series, path: Path, col: str) -> np.ndarray | None:
    """A text column whose every value is a number (pandas keeps integers beyond int64 as
    text) as float64; None if any value is not a number. A number too large even for float64
    (e.g. ``1e400``) is an error rather than a silent inf."""
    out = np.empty(len(values), dtype=np.float64)
    for i, v in enumerate(values):
        if isinstance(v, str) and "_" in v:  # float() accepts "1_000"; pandas does not
            return None
        try:
            out[i] = float(v)
        except (TypeError, ValueError):
            return None
        if np.isinf(out[i]) and "inf" not in str(v).lower():
            raise DataError(f"{path}: column {col!r} row {i + 1} holds {str(v)[:40]!r}, too large"
                            " for a floating-point number; rescale the data before reading")
    return out


# ---- FCS ---------------------------------------------------------------------------------------


def _read_fcs(path: Path, marker_names: MarkerRule, compensate: bool) -> ad.AnnData:
    with open(path, "rb") as fh:
        head = fh.read(58)
    if len(head) < 58 or not head.startswith(b"FCS"):
        raise FileFormatError(
            f"{path}: not an FCS file (the header does not start with 'FCS' or is cut short)"
        )
    try:
        fcs = _open_fcs(path)
        if fcs.events is None:
            raise FileFormatError(f"{path}: unsupported FCS integer bit widths")
        raw = np.asarray(fcs.events, dtype=np.float64)
        n_par, n_tot = int(fcs.channel_count), int(fcs.event_count)
        if raw.size != n_par * n_tot:
            raise FileFormatError(
                f"{path}: DATA holds {raw.size} values but $PAR × $TOT = {n_par} × {n_tot}; "
                "the file is truncated or corrupt"
            )
        X = raw.reshape(n_tot, n_par)
        order = sorted(fcs.channels)
        if order != list(range(1, n_par + 1)):
            raise FileFormatError(f"{path}: $PnN keywords do not cover channels 1..{n_par}")
        channels = [fcs.channels[i] for i in order]
        for j, ch in enumerate(channels):
            decades, log0 = ch["pne"]
            if decades > 0:  # log-amplified integer data: back to linear scale
                X[:, j] = 10 ** (decades * X[:, j] / ch["pnr"]) * log0
        text = dict(fcs.text)
    except MaganError:
        raise
    except Exception as exc:  # flowio raises FCSParsingError, ValueError, EOFError, KeyError...
        raise FileFormatError(
            f"{path}: corrupt or truncated FCS file: {type(exc).__name__}: {exc}"
        ) from exc

    pnn = [str(ch["pnn"]).strip() for ch in channels]
    pns = [str(ch["pns"]).strip() for ch in channels]
    var = _marker_var(pnn, pns, marker_names, path)
    var["range"] = np.array([float(ch["pnr"]) for ch in channels])
    roles = assign_roles(pnn, pns)
    var["role"] = roles["role"].to_numpy()
    var["role_rule"] = roles["rule"].to_numpy()
    kind, why = instrument(pnn, pns, text)

    uns: dict[str, Any] = {}
    spill = _parse_spill(text, pnn, path)
    if spill is not None:
        spill_channels, matrix = spill
        if compensate:
            idx = [pnn.index(c) for c in spill_channels]
            try:
                X[:, idx] = X[:, idx] @ np.linalg.inv(matrix)
            except np.linalg.LinAlgError as exc:
                raise DataError(f"{path}: the spillover matrix is singular") from exc
        uns["spillover"] = {
            "channels": list(spill_channels),
            "matrix": matrix,
            "applied": bool(compensate),
        }
    elif compensate:
        raise DataError(
            f"{path}: compensate=True but the file has no $SPILLOVER/$SPILL keyword; it may be "
            "compensated already, or its matrix is kept elsewhere"
        )
    uns["fcs"] = {"file": path.name, "version": str(fcs.version), "instrument": kind,
                  "instrument_reason": why}
    return ad.AnnData(
        X=X.astype(np.float32), obs=pd.DataFrame(index=_range_index(n_tot)), var=var, uns=uns
    )


def _open_fcs(path: Path) -> Any:
    """Parse with flowio, retrying the two offset quirks that real instruments commonly write."""
    import flowio

    quirks = {}
    for _ in range(3):
        try:
            with warnings.catch_warnings():
                # flowio warns and then guesses (unknown byte order, odd bit widths): refuse.
                warnings.simplefilter("error", category=UserWarning)
                return flowio.FlowData(path, **quirks)
        except flowio.exceptions.MultipleDataSetsError:
            warnings.warn(
                f"{path.name} holds several data sets; magan reads the first", stacklevel=4
            )
            quirks["nextdata_offset"] = 0
        except flowio.exceptions.DataOffsetDiscrepancyError as exc:
            if "ignore_offset_discrepancy" in quirks:
                raise
            warnings.warn(f"{path.name}: {exc}; using the TEXT offsets", stacklevel=4)
            quirks["ignore_offset_discrepancy"] = True
    return flowio.FlowData(path, **quirks)


def _parse_spill(
    text: dict[str, str], pnn: list[str], path: Path
) -> tuple[list[str], np.ndarray] | None:
    raw = text.get("spillover") or text.get("spill")
    if raw is None or not raw.strip():
        return None
    parts = [p.strip() for p in raw.split(",")]
    try:
        n = int(parts[0])
        names = parts[1 : 1 + n]
        values = np.array([float(v) for v in parts[1 + n :]], dtype=np.float64)
        matrix = values.reshape(n, n)
    except (ValueError, IndexError) as exc:
        raise FileFormatError(f"{path}: malformed $SPILLOVER keyword: {exc}") from exc
    unknown = [c for c in names if c not in pnn]
    if unknown:
        raise FileFormatError(f"{path}: $SPILLOVER names channels {unknown} not in $PnN")
    return names, matrix


def _marker_var(
    channel: list[str], antigen: list[str], rule: MarkerRule, path: Path
) -> pd.DataFrame:
    """Choose var_names by ``rule``, keeping both names as columns."""
    if rule == "channel":
        names = list(channel)
    elif rule == "antigen":
        missing = [c for c, a in zip(channel, antigen, strict=True) if not a]
        if missing:
            raise DataError(
                f"{path}: marker_names='antigen' but channels {missing} have no $PnS; use "
                "marker_names='auto' to fall back to the channel name"
            )
        names = list(antigen)
    else:
        names = [a if a else c for c, a in zip(channel, antigen, strict=True)]
    counts = pd.Series(names).value_counts()
    clashes = set(counts[counts > 1].index)
    if clashes:
        warnings.warn(
            f"{path.name}: marker names {sorted(clashes)} repeat; adding the channel to each",
            stacklevel=4,
        )
        names = [f"{n} ({c})" if n in clashes else n for n, c in zip(names, channel, strict=True)]
    var = pd.DataFrame({"channel": channel, "antigen": antigen}, index=pd.Index(names))
    if not var.index.is_unique:
        raise DataError(f"{path}: channel names are not unique: {sorted(clashes)}")
    return var


# ---- several files -----------------------------------------------------------------------------


def read_many(
    paths: Iterable[PathLike],
    sample_key: str = "sample",
    **read_kwargs: Any,
) -> ad.AnnData:
    """Read several files with the same markers into one AnnData, cells tagged by sample.

    Why: a CyTOF batch usually arrives as one FCS file per sample. ``obs[sample_key]`` holds each
    file's stem (its name if stems repeat); ``obs_names`` become ``"<id>-<sample>"``. Markers
    must agree as a set (a different order is reordered to the first file's); otherwise a
    :class:`DataError` lists what each file lacks or adds.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise ConfigError("read_many needs at least one path")
    stems = [p.stem for p in paths]
    keys = stems if len(set(stems)) == len(stems) else [str(p) for p in paths]
    if len(set(keys)) != len(keys):
        raise ConfigError(f"read_many got the same file twice: {keys}")
    adatas = [read(p, **read_kwargs) for p in paths]

    ref = list(adatas[0].var_names)
    problems = []
    for p, a in zip(paths[1:], adatas[1:], strict=True):
        names = list(a.var_names)
        if names == ref:
            continue
        lacks = [n for n in ref if n not in set(names)]
        extra = [n for n in names if n not in set(ref)]
        if lacks or extra:
            problems.append(f"{p.name}: lacks {lacks}, has extra {extra}")
    if problems:
        raise DataError(
            f"read_many: markers differ from {paths[0].name}:\n  " + "\n  ".join(problems)
        )
    adatas = [a if list(a.var_names) == ref else a[:, ref].copy() for a in adatas]
    merged = ad.concat(
        dict(zip(keys, adatas, strict=True)),
        label=sample_key,
        index_unique="-",
        merge="same",
    )
    merged.obs[sample_key] = pd.Categorical(merged.obs[sample_key], categories=keys)
    merged.X = _as_float32(merged.X)
    return merged


# ---- known pairs ---------------------------------------------------------------------------------


def read_pairs(
    path: PathLike,
    obs_names1: Sequence[str] | None = None,
    obs_names2: Sequence[str] | None = None,
    *,
    by: Literal["auto", "index", "name"] = "auto",
    header: bool | None = None,
) -> np.ndarray:
    """Known cell correspondences from a two-column CSV, as an ``(k, 2)`` int64 array of rows.

    Each line pairs a cell of dataset 1 with one of dataset 2, either as 0-based row indices or
    as cell ids (``obs_names``). With ``by="auto"``, integers are row indices and anything else
    is a name, resolved through :func:`resolve_pairs` (so ``obs_names1``/``obs_names2`` are then
    required). ``header=None`` treats the first line as a header when it does not look like the
    rest (words above integers, or names not found in either dataset). When the obs_names are
    given, indices are checked against their lengths.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if by not in ("auto", "index", "name"):
        raise ConfigError(
            f"The 'by' parameter of read_pairs must be 'auto', 'index' or 'name'. Got {by!r} "
            "instead."
        )
    rows = _read_pair_rows(path)
    if header is None:
        header = _looks_like_header(rows, by, obs_names1, obs_names2)
    if header:
        rows = rows[1:]
    if not rows:
        return np.zeros((0, 2), dtype=np.int64)

    use_index = by == "index" or (by == "auto" and all(_is_int(v) for r in rows for v in r))
    if use_index:
        try:
            pairs = np.array([[int(a), int(b)] for a, b in rows], dtype=np.int64)
        except ValueError as exc:
            raise DataError(f"{path}: by='index' but a value is not an integer: {exc}") from exc
        _check_pairs(pairs, obs_names1, obs_names2, path)
    else:
        if obs_names1 is None or obs_names2 is None:
            raise DataError(
                f"{path}: the pairs are cell names (e.g. {rows[0]!r}); pass obs_names1 and "
                "obs_names2 to resolve them to rows"
            )
        pairs = resolve_pairs(rows, obs_names1, obs_names2, source=str(path))
    return pairs


def _read_pair_rows(path: Path) -> list[tuple[str, str]]:
    """The file's lines as stripped text pairs, header included: whether values are indices or
    names, and whether the first line is a header, is decided from the text."""
    try:
        sep = "\t" if _format_of(path) == ".tsv" else _sniff_sep(path, ".txt")
        frame = pd.read_csv(
            path, sep=sep, header=None, dtype=str, keep_default_na=False, skip_blank_lines=True
        )
    except pd.errors.EmptyDataError as exc:
        raise FileFormatError(f"{path}: the pairs file is empty") from exc
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError, EOFError) as exc:
        raise FileFormatError(f"{path}: not a readable pairs table: {exc}") from exc
    if frame.shape[1] != 2:
        raise FileFormatError(
            f"{path}: a pairs file has exactly two columns (dataset 1, dataset 2); found "
            f"{frame.shape[1]}"
        )
    return [(a.strip(), b.strip()) for a, b in frame.itertuples(index=False)]


def _is_int(s: str) -> bool:
    """A row index as written in a pairs file (no float or other spellings int() would take)."""
    return re.fullmatch(r"[+-]?\d+", s) is not None


def _looks_like_header(rows: list[tuple[str, str]], by: str, obs_names1: Sequence[str] | None,
                       obs_names2: Sequence[str] | None) -> bool:
    """``header=None``: the first line is a header when it does not look like the rest (words
    above integers, or names found in neither dataset), so either kind of file just works."""
    if len(rows) <= 1:
        return False
    first_int = all(_is_int(v) for v in rows[0])
    rest_int = all(_is_int(v) for r in rows[1:] for v in r)
    if rest_int and not first_int and by != "name":
        return True
    if obs_names1 is not None and obs_names2 is not None and not rest_int:
        return rows[0][0] not in set(obs_names1) and rows[0][1] not in set(obs_names2)
    return False


def _check_pairs(
    pairs: np.ndarray,
    names1: Sequence[str] | None,
    names2: Sequence[str] | None,
    path: Path,
) -> None:
    if (pairs < 0).any():
        row = int(np.flatnonzero((pairs < 0).any(axis=1))[0])
        raise DataError(f"{path}: negative row index on line {row + 1}: {pairs[row].tolist()}")
    for side, names in ((0, names1), (1, names2)):
        if names is not None and len(pairs) and pairs[:, side].max() >= len(names):
            row = int(np.argmax(pairs[:, side]))
            raise DataError(
                f"{path}: row index {int(pairs[row, side])} for dataset {side + 1} is out of "
                f"range (it has {len(names)} cells)"
            )
    _check_duplicate_pairs(pairs, str(path))


def _check_duplicate_pairs(pairs: np.ndarray, source: str) -> None:
    _, first, counts = np.unique(pairs, axis=0, return_index=True, return_counts=True)
    if (counts > 1).any():
        dup = pairs[first[counts > 1][:5]].tolist()
        raise DataError(f"{source}: the same pair is listed more than once: {dup}")


def resolve_pairs(
    pairs: Iterable[tuple[str, str]],
    obs_names1: Sequence[str],
    obs_names2: Sequence[str],
    *,
    source: str = "pairs",
) -> np.ndarray:
    """Turn ``(name1, name2)`` pairs into ``(k, 2)`` row indices of two obs_names lists.

    Raises :class:`DataError` naming unknown ids, ids that occur more than once in an
    obs_names list (so would be a guess), and pairs listed twice.
    """
    pairs = [(str(a), str(b)) for a, b in pairs]
    lookups = []
    for side, names in ((1, obs_names1), (2, obs_names2)):
        names = [str(n) for n in names]
        index = pd.Index(names)
        used = {p[side - 1] for p in pairs}
        dup = sorted(set(index[index.duplicated()]) & used)
        if dup:
            raise DataError(
                f"{source}: cell ids {dup[:10]} occur more than once in dataset {side}'s "
                "obs_names, so a pair naming them is ambiguous; make obs_names unique first"
            )
        unknown = [n for n in dict.fromkeys(p[side - 1] for p in pairs) if n not in index]
        if unknown:
            raise DataError(
                f"{source}: {len(unknown)} cell ids not found in dataset {side}: "
                f"{unknown[:10]}{' ...' if len(unknown) > 10 else ''}"
            )
        lookups.append({n: i for i, n in enumerate(names)})
    out = np.array([[lookups[0][a], lookups[1][b]] for a, b in pairs], dtype=np.int64).reshape(
        -1, 2
    )
    _check_duplicate_pairs(out, source)
    return out


# --------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------


def write(adata: ad.AnnData, path: PathLike, *, overwrite: bool = False) -> Path:
    """Write ``adata`` to ``.h5ad``, ``.csv`` or ``.fcs``, atomically; returns the path.

    * ``.h5ad``: everything AnnData keeps.
    * ``.csv``: a ``cell_id`` column (obs_names), one column per feature and, if present,
      ``obs["label"]`` as a last ``label`` column; other annotations are not written.
    * ``.fcs``: FCS 3.1, float32 list mode, one channel per feature. ``$PnN`` is
      ``var["channel"]`` when present (else the feature name) and ``$PnS`` the feature name
      (else ``var["antigen"]``), so :func:`read` gives back the same names; ``$PnR`` is
      ``var["range"]`` or the column maximum rounded up. Cell annotations are not stored.

    The file is first written beside ``path`` under a hidden temporary name and then moved into
    place, so a crash never leaves a half-written file; an existing file is kept unless
    ``overwrite=True``.
    """
    path = Path(path)
    fmt = _format_of(path)
    if fmt not in _WRITE_FORMATS or path.suffix.lower() != fmt:
        raise FileFormatError(
            f"{path}: cannot write {path.suffix or '(no extension)'!r}; magan writes "
            f"{', '.join(_WRITE_FORMATS)}"
        )
    if not isinstance(adata, ad.AnnData):
        raise DataError(f"write expects an AnnData, got {type(adata).__name__}")
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path} exists; pass overwrite=True to replace it")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{path.parent}: the output folder does not exist")

    writer = {".h5ad": _write_h5ad, ".csv": _write_csv, ".fcs": _write_fcs}[fmt]
    return _write_via_temp(path, lambda tmp: writer(adata, tmp, path), overwrite, suffix=fmt)


def write_text_atomic(path: PathLike, text: str, *, overwrite: bool = True) -> Path:
    """Write ``text`` to ``path`` atomically (temporary file, then rename): a summary or report
    is never left half-written by a crash or a full disk. With ``overwrite=False`` an existing
    ``path`` (even one that appears meanwhile) raises OutputExistsError."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path} exists; pass overwrite=True to replace it")
    return _write_via_temp(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), overwrite)


def write_dir_atomic(path: PathLike, fill: Callable[[Path], object], *,
                     overwrite: bool = False) -> Path:
    """Build a folder (a saved model) with ``fill(tmp)`` in a hidden temporary sibling, then
    rename it to ``path``: a crash never leaves a half-written folder, and an existing
    ``path`` is replaced only with ``overwrite=True`` (else OutputExistsError)."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path} exists; pass overwrite=True to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; a saved model is an ordinary folder
        fill(tmp)
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def _write_via_temp(
    path: Path, fill: Callable[[Path], object], overwrite: bool, suffix: str = ""
) -> Path:
    """``fill`` a temporary file beside ``path``, then move it into place: replacing ``path``
    if ``overwrite``, else only if nothing is there (even something that appeared meanwhile).
    The temporary file is removed whatever happens."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}",
                                    dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        fill(tmp)
        _set_default_mode(tmp)
        if overwrite:
            os.replace(tmp, path)
        else:
            _move_no_clobber(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _move_no_clobber(tmp: Path, path: Path) -> None:
    """Move ``tmp`` to ``path`` unless something appeared there meanwhile (hard link is atomic)."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise OutputExistsError(f"{path} exists; pass overwrite=True to replace it") from None
    except OSError:  # filesystem without hard links: best effort
        if path.exists():
            raise OutputExistsError(f"{path} exists; pass overwrite=True to replace it") from None
        os.replace(tmp, path)


def _set_default_mode(tmp: Path) -> None:
    """mkstemp makes 0600 files; give the result the permissions a plain ``open`` would."""
    if os.name != "posix":
        return
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)


def _dense(X: Any) -> np.ndarray:
    return np.asarray(X.toarray() if sp.issparse(X) else X)


def _write_h5ad(adata: ad.AnnData, tmp: Path, path: Path) -> None:
    adata.write_h5ad(tmp)


def _write_csv(adata: ad.AnnData, tmp: Path, path: Path) -> None:
    frame = pd.DataFrame(
        _dense(adata.X),
        index=pd.Index(adata.obs_names, name="cell_id"),
        columns=list(adata.var_names),
    )
    if "label" in adata.obs:
        frame["label"] = adata.obs["label"].to_numpy()
    frame.to_csv(tmp)


def _write_fcs(adata: ad.AnnData, tmp: Path, path: Path) -> None:
    import flowio

    X = np.ascontiguousarray(_dense(adata.X), dtype=np.float32)
    if X.ndim != 2 or X.shape[1] == 0:
        raise DataError(f"{path}: nothing to write (X has shape {X.shape})")
    if not np.isfinite(X).all():
        bad = list(adata.var_names[~np.isfinite(X).all(axis=0)])[:10]
        raise DataError(f"{path}: FCS cannot hold NaN/inf sensibly; features {bad} have them")
    names = [str(n) for n in adata.var_names]
    if "channel" in adata.var and all(str(c).strip() for c in adata.var["channel"]):
        pnn = [str(c).strip() for c in adata.var["channel"]]
        antigen = (
            [str(a).strip() for a in adata.var["antigen"]]
            if "antigen" in adata.var
            else [""] * len(names)
        )
        pns = [n if n != c else a for n, c, a in zip(names, pnn, antigen, strict=True)]
    else:
        pnn, pns = names, [""] * len(names)
    if len(set(pnn)) != len(pnn):
        dup = sorted({c for c in pnn if pnn.count(c) > 1})
        raise DataError(f"{path}: FCS channel names ($PnN) must be unique; {dup} repeat")
    if any("$" in s for s in pnn + pns):
        warnings.warn(f"{path.name}: '$' in names is dropped by FCS readers", stacklevel=3)

    meta: dict[str, str] = {
        "fil": path.name,
        "date": _dt.date.today().strftime("%d-%b-%Y").upper(),
        "com": "written by magan",
    }
    ranges = adata.var["range"].to_numpy(float) if "range" in adata.var else None
    col_max = X.max(axis=0) if len(X) else np.zeros(X.shape[1], np.float32)
    for j in range(X.shape[1]):
        r = ranges[j] if ranges is not None and np.isfinite(ranges[j]) and ranges[j] > 0 else None
        r = r if r is not None else max(float(np.ceil(col_max[j])), 1.0)
        meta[f"p{j + 1}r"] = str(int(np.ceil(r)))

    events = array("f")
    data = X if sys.byteorder == "little" else X.byteswap()  # flowio declares $BYTEORD 1,2,3,4
    events.frombytes(data.tobytes())
    with open(tmp, "wb") as fh:
        flowio.create_fcs(fh, events, pnn, opt_channel_names=pns, metadata_dict=meta)
