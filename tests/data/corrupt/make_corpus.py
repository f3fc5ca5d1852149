"""Regenerate the corrupt-file corpus: ``python tests/data/corrupt/make_corpus.py``.

Each file is broken in one way a user meets (cut short by a full disk or an interrupted copy,
a wrong header, a wrong extension); ``io.read`` must answer every one with a ``MaganError``.
"""

from __future__ import annotations

import gzip
import io as _io
import lzma
import pickle
import zipfile
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from magan import io

HERE = Path(__file__).parent


def _valid(tmp: Path) -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.gamma(2, 40, size=(12, 3)).astype(np.float32),
                         columns=["CD3", "CD4", "CD8"], index=[f"c{i}" for i in range(12)])
    adata = ad.AnnData(frame)
    out = {}
    for ext in ("fcs", "h5ad", "csv"):
        path = io.write(adata, tmp / f"valid.{ext}", overwrite=True)
        out[ext] = path.read_bytes()
    buf = _io.BytesIO()
    np.savez(buf, X=frame.to_numpy(), features=np.array(frame.columns, dtype=str))
    out["npz"] = buf.getvalue()
    return out


def main() -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        valid = _valid(Path(tmp))
    fcs, h5ad, csv, npz = valid["fcs"], valid["h5ad"], valid["csv"], valid["npz"]
    text_end = int(fcs[26:34])  # TEXT segment end offset in the FCS header
    files: dict[str, bytes] = {
        "truncated_data.fcs": fcs[: len(fcs) - 40],
        "truncated_text.fcs": fcs[: text_end // 2],
        "header_only.fcs": fcs[:58],
        "wrong_magic.fcs": b"XCS3.1" + fcs[6:],
        "bad_offsets.fcs": fcs[:10] + b"  99999999" + fcs[18:],
        "empty.fcs": b"",
        "csv_named.fcs": csv,
        "truncated.h5ad": h5ad[: len(h5ad) // 2],
        "header_only.h5ad": h5ad[:8],
        "text_named.h5ad": b"CD3,CD4\n1,2\n",
        "truncated.npz": npz[: len(npz) // 2],
        "no_X.npz": _npz(Y=np.ones((2, 2))),
        "text_X.npz": _npz(X=np.array([["a", "b"], ["c", "d"]]), features=np.array(["p", "q"])),
        "pickled.npz": _pickled_npz(),
        "feature_count.npz": _npz(X=np.ones((3, 2)), features=np.array(["a", "b", "c"])),
        "empty.csv": b"",
        "header_only.csv": b"cell_id,CD3,CD4\n",
        "extra_fields.csv": b"CD3,CD4\n1,2,3\n4,5,6\n",
        "text_column.csv": b"CD3,CD4\n1,high\n2,low\n",
        "duplicate_header.csv": b"CD3,CD3\n1,2\n",
        "binary.csv": bytes(range(256)) * 2,
        "latin1.csv": "CD3,CD\u00e9\n1,2\n".encode("latin-1"),
        "overflow.csv": b"CD3,CD4\n1,1e400\n2,3\n",
        "truncated.csv.gz": gzip.compress(csv, mtime=0)[:40],
        "damaged.csv.gz": _flip(gzip.compress(csv, mtime=0), 0.25),  # zlib.error, not OSError
        "damaged.csv.xz": _flip(lzma.compress(csv), 0.5),
        "not_parquet.parquet": csv,
        "unknown.xlsx": csv,
    }
    for name, blob in files.items():
        (HERE / name).write_bytes(blob)
    print(f"wrote {len(files)} files to {HERE}")


def _flip(blob: bytes, where: float) -> bytes:
    """One bit flipped, as a bad disk sector or an interrupted download leaves it."""
    out = bytearray(blob)
    out[int(where * len(out))] ^= 1
    return bytes(out)


def _npz(**arrays: np.ndarray) -> bytes:
    buf = _io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _pickled_npz() -> bytes:
    """An object array: np.load(allow_pickle=False) must refuse it, never unpickle."""
    buf = _io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        arr = _io.BytesIO()
        np.save(arr, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
        stamp = (2020, 1, 1, 0, 0, 0)  # fixed, so regenerating gives the same bytes
        z.writestr(zipfile.ZipInfo("X.npy", stamp), arr.getvalue())
        z.writestr(zipfile.ZipInfo("payload.pkl", stamp), pickle.dumps([1, 2]))
    return buf.getvalue()


if __name__ == "__main__":
    main()
