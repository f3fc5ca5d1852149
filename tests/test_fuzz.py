"""Property-based fuzzing: whatever arrays, frames or bytes arrive, magan either works or raises
a ``magan.errors.MaganError``: never another exception type, never a hang.

Examples are few and small so the file runs in well under a minute on 2 busy cores; each example
runs under an alarm so a hang fails instead of stalling the suite. Run with
``--hypothesis-show-statistics`` to see how many cases each property tried.
"""

from __future__ import annotations

import functools
import importlib.util
import io as _io
import os
import signal
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anndata as ad
import hypothesis.extra.numpy as hnp
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from magan import MAGAN, io
from magan.errors import MaganError

TINY = {"networks": {"generator": (4,), "discriminator": (4,)}, "n_steps": 2, "batch_size": 4,
        "progress": False, "log_every": 1}
# MAGAN_FUZZ_EXAMPLES=1000 (and MAGAN_FUZZ_RANDOM=1 for fresh examples) for a deeper hunt.
EXAMPLES = int(os.environ.get("MAGAN_FUZZ_EXAMPLES", "40"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                derandomize=os.environ.get("MAGAN_FUZZ_RANDOM") != "1",
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
HANG_S = 20


@contextmanager
def no_hang(seconds: int = HANG_S) -> Iterator[None]:
    """Fail (TimeoutError) instead of hanging; the alarm is cleared however the block ends."""

    def alarm(signum, frame):
        raise TimeoutError(f"no answer within {seconds} s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def works_or_magan_error(fn, *args, **kwargs):
    """Call ``fn``; a MaganError is a fine answer, any other exception fails the property."""
    with no_hang(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            out = fn(*args, **kwargs)
        except MaganError as exc:
            event(f"refused: {type(exc).__name__}")
            return None
    event("worked")
    return out


# ---- strategies ------------------------------------------------------------------------------

SPECIAL = st.sampled_from([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e38, 3.5e38, 1e300, -1e300,
                           5e-324, 1.0])
DTYPES = st.sampled_from([np.float16, np.float32, np.float64, np.int8, np.int32, np.int64,
                          np.uint8, np.uint64, np.bool_, np.complex64])


@st.composite
def arrays(draw) -> np.ndarray:
    """0-D to 3-D arrays of any numeric dtype, with NaN, inf, huge and tiny values sprinkled."""
    dtype = draw(DTYPES)
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=6))
    arr = draw(hnp.arrays(dtype, shape))
    if arr.size and np.issubdtype(arr.dtype, np.floating) and draw(st.booleans()):
        flat = arr.reshape(-1).astype(np.float64)
        for _ in range(draw(st.integers(1, 3))):
            flat[draw(st.integers(0, flat.size - 1))] = draw(SPECIAL)
        with np.errstate(over="ignore"):
            arr = flat.reshape(shape).astype(dtype)
    return arr


CELL = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-2**70, 2**70),
                 st.text(max_size=3), st.none(), st.booleans())


@st.composite
def lists(draw):
    """Nested Python lists: ragged rows, mixed types, empty."""
    n = draw(st.integers(0, 5))
    return [draw(st.lists(CELL, min_size=0, max_size=4)) for _ in range(n)]


@st.composite
def frames(draw) -> pd.DataFrame:
    """DataFrames mixing float/int/nullable/bool/text/category/datetime columns."""
    n = draw(st.integers(0, 6))
    kinds = draw(st.lists(st.sampled_from(["float", "int", "Int64", "bool", "str", "category",
                                           "datetime", "object", "huge"]), max_size=4))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    cols = {}
    for i, kind in enumerate(kinds):
        values = rng.normal(size=n)
        if kind == "float":
            values[rng.random(n) < 0.2] = np.nan
            col = values
        elif kind == "int":
            col = rng.integers(-5, 5, n)
        elif kind == "Int64":
            col = pd.array([None if v < -1 else int(v * 10) for v in values], dtype="Int64")
        elif kind == "bool":
            col = values > 0
        elif kind == "str":
            col = [f"c{v:.1f}" for v in values]
        elif kind == "category":
            col = pd.Categorical(np.round(values))
        elif kind == "datetime":
            col = pd.date_range("2020-01-01", periods=n)
        elif kind == "object":
            col = pd.Series(list(values), dtype=object)
        else:
            col = values * 1e300
        cols[draw(st.sampled_from(["CD3", "CD4", f"m{i}", ""]))] = col  # names may repeat
    return pd.DataFrame(cols, index=[f"r{i}" for i in range(n)])


INPUTS = st.one_of(arrays(), lists(), frames())


@functools.cache
def fitted() -> MAGAN:
    rng = np.random.default_rng(0)
    x1 = pd.DataFrame(rng.normal(size=(20, 3)), columns=["CD3", "CD4", "CD8"])
    x2 = pd.DataFrame(rng.normal(size=(20, 2)), columns=["CD3", "CD45"])
    return MAGAN(**TINY).fit(x1, x2, shared_features="auto")


# ---- estimator ------------------------------------------------------------------------------


@FUZZ
@given(x1=INPUTS)
def test_fit_takes_anything_as_x1(x1):
    x2 = np.random.default_rng(1).normal(size=(10, 2))
    model = works_or_magan_error(MAGAN(**TINY).fit, x1, x2)
    if model is not None:
        assert np.isfinite(works_or_magan_error(model.transform, x1)).all()


@FUZZ
@given(x1=arrays(), drop=st.booleans())
def test_fit_with_correspondence_takes_any_array(x1, drop):
    x2 = np.random.default_rng(1).normal(size=(10, 2))
    works_or_magan_error(MAGAN(**TINY).fit, x1, x2, shared_features=[(0, 0)],
                         known_pairs=[(0, 0), (1, 1)], drop_nonfinite=drop)


@FUZZ
@given(x=INPUTS)
def test_transform_takes_anything(x):
    model = fitted()
    for fn in (model.transform, model.inverse_transform, model.impute):
        out = works_or_magan_error(fn, x)
        if out is not None:
            assert np.isfinite(np.asarray(out, dtype=np.float64)).all()


CORR = st.one_of(st.none(), st.just("auto"), st.text(max_size=3), st.integers(-3, 30),
                 st.lists(st.one_of(st.tuples(CELL, CELL), CELL,
                                    st.tuples(st.integers(-3, 30), st.integers(-3, 30)),
                                    st.lists(st.integers(-3, 30), max_size=3)), max_size=4),
                 st.dictionaries(st.text(max_size=3), CELL, max_size=2))


@FUZZ
@given(shared=CORR, known=CORR)
def test_fit_takes_any_correspondence_spec(shared, known):
    rng = np.random.default_rng(2)
    x1 = pd.DataFrame(rng.normal(size=(12, 3)), columns=["CD3", "CD4", "CD8"],
                      index=[f"a{i}" for i in range(12)])
    x2 = pd.DataFrame(rng.normal(size=(10, 2)), columns=["CD3", "CD45"])
    works_or_magan_error(MAGAN(**TINY).fit, x1, x2, shared_features=shared, known_pairs=known)


# ---- readers --------------------------------------------------------------------------------

EXTS = [".csv", ".tsv", ".txt", ".fcs", ".h5ad", ".npz", ".parquet", ".csv.gz"]


@functools.cache
def valid_files() -> dict[str, bytes]:
    """One small valid file per format: the starting point for truncations and bit flips."""
    import gzip
    import tempfile

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.gamma(2, 40, size=(6, 3)).astype(np.float32),
                         columns=["CD3", "CD4", "CD8"], index=[f"c{i}" for i in range(6)])
    adata = ad.AnnData(frame)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for ext in (".csv", ".fcs", ".h5ad"):
            out[ext] = io.write(adata, Path(tmp) / f"v{ext}").read_bytes()
        if importlib.util.find_spec("pyarrow") is not None:  # parquet is an optional extra
            frame.to_parquet(Path(tmp) / "v.parquet")
            out[".parquet"] = (Path(tmp) / "v.parquet").read_bytes()
    out[".tsv"] = out[".csv"].replace(b",", b"\t")
    out[".txt"] = out[".csv"].replace(b",", b" ")
    out[".csv.gz"] = gzip.compress(out[".csv"], mtime=0)
    buf = _io.BytesIO()
    np.savez(buf, X=frame.to_numpy(), features=np.array(frame.columns, dtype=str))
    out[".npz"] = buf.getvalue()
    return out


def _read(tmp_path: Path, ext: str, blob: bytes) -> None:
    path = tmp_path / f"fuzz{ext}"
    path.write_bytes(blob)
    adata = works_or_magan_error(io.read, path)
    if adata is not None:
        assert adata.X.dtype == np.float32 and adata.X.ndim == 2


@FUZZ
@given(ext=st.sampled_from(EXTS), blob=st.binary(max_size=400))
def test_readers_take_random_bytes(tmp_path, ext, blob):
    _read(tmp_path, ext, blob)


@FUZZ
@given(ext=st.sampled_from(EXTS), cut=st.floats(0, 1, exclude_max=True),
       flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)),
                      max_size=3))
def test_readers_take_truncated_or_flipped_files(tmp_path, ext, cut, flips):
    assume(ext in valid_files())  # .parquet only with pyarrow installed
    blob = bytearray(valid_files()[ext])
    for where, xor in flips:
        blob[int(where * len(blob))] ^= xor
    _read(tmp_path, ext, bytes(blob[: max(1, int(cut * len(blob)))] if cut else blob))


TEXT_CELL = st.one_of(st.from_regex(r"-?\d{1,30}(\.\d{0,3})?(e[+-]?\d{1,3})?", fullmatch=True),
                      st.sampled_from(["", "NA", "nan", "inf", "-inf", "x", '"', "1,2", " "]),
                      st.text(max_size=4))


@FUZZ
@given(header=st.lists(st.text(max_size=4), min_size=0, max_size=4),
       rows=st.lists(st.lists(TEXT_CELL, max_size=5), max_size=5), sep=st.sampled_from(",\t "))
def test_table_reader_takes_any_text(tmp_path, header, rows, sep):
    text = "\n".join(sep.join(r) for r in [header, *rows])
    _read(tmp_path, {",": ".csv", "\t": ".tsv", " ": ".txt"}[sep], text.encode())


@pytest.mark.parametrize("ext", EXTS)
def test_valid_fuzz_seeds_read(tmp_path, ext):
    """The seeds above are valid files, so the truncation property starts from real content."""
    if ext not in valid_files():
        pytest.skip(f"{ext} needs an optional package (pyarrow) that is not installed")
    path = tmp_path / f"v{ext}"
    path.write_bytes(valid_files()[ext])
    assert io.read(path).shape == (6, 3)
