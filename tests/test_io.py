"""magan.io: round trips per format, the FCS marker-name rule, corrupt files, safe writes, pairs."""

from __future__ import annotations

import gzip
import os
import struct
import sys

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from magan import io
from magan.datasets import find_shared_data
from magan.errors import ConfigError, DataError, FileFormatError, MaganError

SHARED = find_shared_data()
shared_data = pytest.mark.skipif(SHARED is None, reason="shared/data not found")


@pytest.fixture
def cytof() -> ad.AnnData:
    """A tiny CyTOF-like AnnData: antigens as names, channels and ranges beside them."""
    rng = np.random.default_rng(0)
    X = rng.gamma(1.5, 40.0, size=(50, 4)).astype(np.float32)
    X[:, 0] = np.arange(50, dtype=np.float32) * 1.5  # a Time channel
    var = pd.DataFrame(
        {
            "channel": ["Time", "Nd142Di", "Er170Di", "Ir191Di"],
            "antigen": ["", "CD19", "CD3", "DNA1"],
        },
        index=["Time", "CD19", "CD3", "DNA1"],
    )
    obs = pd.DataFrame({"label": ["B", "T"] * 25}, index=[f"c{i}" for i in range(50)])
    return ad.AnnData(X=X, obs=obs, var=var)


def _fcs_bytes(keywords: dict[str, str], data: bytes, version: str = "FCS3.0") -> bytes:
    """Hand-built FCS for cases flowio cannot write (integer data, log amplification)."""

    def text_for(begin: int, end: int) -> bytes:
        kw = {**keywords, "$BEGINDATA": str(begin), "$ENDDATA": str(end)}
        return ("/" + "".join(f"{k}/{v}/" for k, v in kw.items())).encode()

    begin = 58 + len(text_for(0, 0)) + 20
    text = text_for(begin, begin + len(data) - 1)
    pad = begin - 58 - len(text)
    header = f"{version}    {58:>8}{57 + len(text):>8}{begin:>8}{begin + len(data) - 1:>8}"
    header += f"{0:>8}{0:>8}"
    return header.encode() + text + b" " * pad + data


# ---- round trips ----


@pytest.mark.parametrize("ext", [".h5ad", ".csv", ".fcs"])
def test_round_trip_keeps_values_and_names(tmp_path, cytof, ext):
    path = io.write(cytof, tmp_path / f"out{ext}")
    back = io.read(path)
    assert back.X.dtype == np.float32
    np.testing.assert_array_equal(back.X, cytof.X)  # float32 exact in all three formats
    assert list(back.var_names) == list(cytof.var_names)
    if ext != ".fcs":
        assert list(back.obs_names) == list(cytof.obs_names)
        assert list(back.obs["label"]) == list(cytof.obs["label"])
    else:
        assert list(back.var["channel"]) == list(cytof.var["channel"])
        assert list(back.var["antigen"]) == list(cytof.var["antigen"])


def test_fcs_written_by_magan_has_standard_keywords(tmp_path, cytof):
    import flowio

    io.write(cytof, tmp_path / "k.fcs")
    fcs = flowio.FlowData(str(tmp_path / "k.fcs"))
    text = fcs.text
    assert fcs.version == "3.1"
    assert text["datatype"] == "F" and text["mode"] == "L"
    assert int(text["par"]) == 4 and int(text["tot"]) == 50
    for n in range(1, 5):
        assert {f"p{n}n", f"p{n}b", f"p{n}e", f"p{n}r"} <= text.keys()
        assert float(text[f"p{n}r"]) >= cytof.X[:, n - 1].max()
    assert text["p2n"] == "Nd142Di" and text["p2s"] == "CD19"
    assert "p1s" not in text  # no antigen: no empty $PnS (forbidden by the standard)


def test_fcs_without_channel_column_uses_feature_names(tmp_path):
    adata = ad.AnnData(np.eye(3, dtype=np.float32) * 7)
    adata.var_names = ["a", "b", "c"]
    back = io.read(io.write(adata, tmp_path / "plain.fcs"))
    np.testing.assert_array_equal(back.X, adata.X)
    assert list(back.var_names) == ["a", "b", "c"]


def test_parquet_round_trip(tmp_path, cytof):
    pytest.importorskip("pyarrow")
    frame = pd.DataFrame(cytof.X, columns=cytof.var_names, index=cytof.obs_names)
    frame.index.name = "cell_id"
    frame.to_parquet(tmp_path / "t.parquet")
    back = io.read(tmp_path / "t.parquet")
    np.testing.assert_array_equal(back.X, cytof.X)
    assert list(back.obs_names) == list(cytof.obs_names)


def test_parquet_without_pyarrow_says_what_to_install(tmp_path, monkeypatch):
    (tmp_path / "t.parquet").write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(FileFormatError, match="pyarrow"):
        io.read(tmp_path / "t.parquet")


def test_npz_layout_labels_layers_and_channel_antigen_names(tmp_path):
    X = np.arange(12, dtype=np.float32).reshape(4, 3)
    np.savez(
        tmp_path / "d.npz",
        X=X,
        X_comp=X * 2,
        features=np.array(["Time", "Nd142Di|CD19", "Er170Di|CD3"]),
        labels=np.array(["a", "b", "a", "b"]),
        is_marker=np.array([False, True, True]),
        batch=np.array("P1"),
    )
    a = io.read(tmp_path / "d.npz")
    assert list(a.var_names) == ["Time", "CD19", "CD3"]
    assert list(a.var["channel"]) == ["Time", "Nd142Di", "Er170Di"]
    assert list(a.obs["label"]) == ["a", "b", "a", "b"]
    assert a.var["is_marker"].tolist() == [False, True, True]
    assert a.uns["batch"] == "P1"
    np.testing.assert_array_equal(a.X, X)
    b = io.read(tmp_path / "d.npz", layer="X_comp", marker_names="channel")
    np.testing.assert_array_equal(b.X, X * 2)
    assert list(b.var_names) == ["Time", "Nd142Di", "Er170Di"]
    with pytest.raises(DataError, match="nope"):
        io.read(tmp_path / "d.npz", layer="nope")


# ---- tables ----


def test_csv_detects_id_column_and_moves_labels(tmp_path):
    (tmp_path / "a.csv").write_text(",CD3,CD4,label\nx,1,2,T\ny,3,4.5,B\n")
    a = io.read(tmp_path / "a.csv")
    assert list(a.obs_names) == ["x", "y"] and list(a.var_names) == ["CD3", "CD4"]
    assert list(a.obs["label"]) == ["T", "B"]
    np.testing.assert_array_equal(a.X, np.array([[1, 2], [3, 4.5]], dtype=np.float32))


def test_csv_without_id_column_and_numeric_first_column(tmp_path):
    (tmp_path / "b.csv").write_text("CD3,CD4\n1,2\n3,4\n")
    a = io.read(tmp_path / "b.csv")
    assert list(a.var_names) == ["CD3", "CD4"] and list(a.obs_names) == ["0", "1"]


def test_csv_non_numeric_column_is_named_or_moved_to_obs(tmp_path):
    (tmp_path / "c.csv").write_text("cell_id,CD3,donor,CD4\nx,1,H1,2\ny,3,H2,4\n")
    with pytest.raises(DataError, match=r"c\.csv.*'donor'.*obs_cols"):
        io.read(tmp_path / "c.csv")
    a = io.read(tmp_path / "c.csv", obs_cols=["donor"])
    assert list(a.var_names) == ["CD3", "CD4"] and list(a.obs["donor"]) == ["H1", "H2"]


def test_csv_stray_text_in_numeric_column_names_the_value(tmp_path):
    (tmp_path / "d.csv").write_text("CD3,CD4\n1,2\n3,n/a?\n")
    with pytest.raises(DataError, match=r"'CD4' \(row 2: 'n/a\?'\)"):
        io.read(tmp_path / "d.csv")


def test_table_duplicate_headers_rejected(tmp_path):
    (tmp_path / "e.csv").write_text("CD3,CD3,CD4\n1,2,3\n")
    with pytest.raises(DataError, match="CD3"):
        io.read(tmp_path / "e.csv")


def test_tsv_txt_and_gzip(tmp_path):
    (tmp_path / "f.tsv").write_text("cell\tCD3\tCD4\nx\t1\t2\n")
    (tmp_path / "g.txt").write_text("CD3 CD4\n1  2\n3 4\n")
    with gzip.open(tmp_path / "h.csv.gz", "wt") as fh:
        fh.write("CD3,CD4\n1,2\n")
    assert list(io.read(tmp_path / "f.tsv").obs_names) == ["x"]
    assert io.read(tmp_path / "g.txt").shape == (2, 2)
    assert list(io.read(tmp_path / "h.csv.gz").var_names) == ["CD3", "CD4"]


def test_explicit_index_col(tmp_path):
    (tmp_path / "i.csv").write_text("CD3,barcode_x,CD4\n1,aa,2\n3,bb,4\n")
    a = io.read(tmp_path / "i.csv", index_col="barcode_x")
    assert list(a.obs_names) == ["aa", "bb"] and list(a.var_names) == ["CD3", "CD4"]


# ---- FCS marker names ----


def test_fcs_marker_name_rule(tmp_path, cytof):
    path = io.write(cytof, tmp_path / "m.fcs")
    assert list(io.read(path).var_names) == ["Time", "CD19", "CD3", "DNA1"]
    assert list(io.read(path, marker_names="channel").var_names) == list(cytof.var["channel"])
    with pytest.raises(DataError, match=r"\['Time'\].*no \$PnS"):
        io.read(path, marker_names="antigen")
    with pytest.raises(ConfigError, match="marker_names"):
        io.read(path, marker_names="pns")


def test_fcs_repeated_antigen_made_unique_with_channel(tmp_path, cytof):
    cytof.var["antigen"] = ["", "CD3", "CD3", "DNA1"]
    cytof.var_names = ["Time", "Nd142Di", "Er170Di", "DNA1"]  # names equal channels: PnS = antigen
    path = io.write(cytof, tmp_path / "dup.fcs")
    with pytest.warns(UserWarning, match="repeat"):
        a = io.read(path)
    assert list(a.var_names) == ["Time", "CD3 (Nd142Di)", "CD3 (Er170Di)", "DNA1"]


def test_fcs_integer_data_with_log_amplification_is_linearised(tmp_path):
    values = np.array([[0, 512], [1023, 256]], dtype=">u2")
    keywords = {
        "$BYTEORD": "4,3,2,1", "$DATATYPE": "I", "$MODE": "L", "$NEXTDATA": "0",
        "$PAR": "2", "$TOT": "2",
        "$P1N": "FSC-A", "$P1B": "16", "$P1E": "0,0", "$P1R": "1024",
        "$P2N": "FL1-H", "$P2S": "CD4", "$P2B": "16", "$P2E": "4,1", "$P2R": "1024",
    }  # fmt: skip
    (tmp_path / "int.fcs").write_bytes(_fcs_bytes(keywords, values.tobytes()))
    a = io.read(tmp_path / "int.fcs")
    assert list(a.var_names) == ["FSC-A", "CD4"]
    np.testing.assert_allclose(a.X[:, 0], [0, 1023])
    np.testing.assert_allclose(a.X[:, 1], [10 ** (4 * 512 / 1024), 10 ** (4 * 256 / 1024)])


def test_fcs_compensate_applies_inverse_spillover(tmp_path):
    X = np.array([[100, 10], [50, 200]], dtype="<f4")
    keywords = {
        "$BYTEORD": "1,2,3,4", "$DATATYPE": "F", "$MODE": "L", "$NEXTDATA": "0",
        "$PAR": "2", "$TOT": "2", "$SPILLOVER": "2,A,B,1,0.1,0,1",
        "$P1N": "A", "$P1B": "32", "$P1E": "0,0", "$P1R": "1024",
        "$P2N": "B", "$P2B": "32", "$P2E": "0,0", "$P2R": "1024",
    }  # fmt: skip
    (tmp_path / "s.fcs").write_bytes(_fcs_bytes(keywords, X.tobytes()))
    spill = np.array([[1, 0.1], [0, 1]])
    raw = io.read(tmp_path / "s.fcs")
    np.testing.assert_array_equal(raw.X, X)
    np.testing.assert_allclose(raw.uns["spillover"]["matrix"], spill)
    comp = io.read(tmp_path / "s.fcs", compensate=True)
    np.testing.assert_allclose(comp.X, X @ np.linalg.inv(spill), rtol=1e-6)


# ---- corrupt files ----


@pytest.mark.parametrize("keep", [0.002, 0.02, 0.3, 0.9, 0.999])
def test_truncated_fcs_raises_file_format_error(tmp_path, cytof, keep):
    whole = io.write(cytof, tmp_path / "whole.fcs").read_bytes()
    cut = tmp_path / "cut.fcs"
    cut.write_bytes(whole[: int(len(whole) * keep)])
    with pytest.raises(FileFormatError, match=r"cut\.fcs"):
        io.read(cut)


def test_fcs_with_wrong_event_count_or_garbage(tmp_path, cytof):
    whole = io.write(cytof, tmp_path / "w.fcs").read_bytes()
    (tmp_path / "tot.fcs").write_bytes(whole.replace(b"/$TOT/50/", b"/$TOT/60/"))
    with pytest.raises(FileFormatError, match=r"tot\.fcs.*truncated or corrupt"):
        io.read(tmp_path / "tot.fcs")
    (tmp_path / "junk.fcs").write_bytes(b"hello, this is not cytometry" * 10)
    with pytest.raises(FileFormatError, match=r"junk\.fcs.*not an FCS"):
        io.read(tmp_path / "junk.fcs")
    (tmp_path / "hdr.fcs").write_bytes(b"FCS3.0    " + b"x" * 60)
    with pytest.raises(FileFormatError, match=r"hdr\.fcs"):
        io.read(tmp_path / "hdr.fcs")


@pytest.mark.parametrize("keep", [0.0, 0.1, 0.5, 0.95])
def test_truncated_h5ad_raises_file_format_error(tmp_path, cytof, keep):
    whole = io.write(cytof, tmp_path / "whole.h5ad").read_bytes()
    (tmp_path / "cut.h5ad").write_bytes(whole[: int(len(whole) * keep)])
    with pytest.raises(FileFormatError, match=r"cut\.h5ad"):
        io.read(tmp_path / "cut.h5ad")


def test_truncated_npz_and_empty_csv(tmp_path):
    np.savez(tmp_path / "whole.npz", X=np.ones((30, 3), np.float32), features=np.array(list("abc")))
    data = (tmp_path / "whole.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(FileFormatError, match=r"cut\.npz"):
        io.read(tmp_path / "cut.npz")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(FileFormatError, match=r"empty\.csv"):
        io.read(tmp_path / "empty.csv")


def test_unknown_extension_missing_file_and_misplaced_options(tmp_path):
    (tmp_path / "x.xlsx").write_bytes(b"")
    with pytest.raises(FileFormatError, match="xlsx"):
        io.read(tmp_path / "x.xlsx")
    with pytest.raises(FileNotFoundError):
        io.read(tmp_path / "missing.fcs")
    (tmp_path / "y.csv").write_text("a\n1\n")
    with pytest.raises(ConfigError, match="compensate"):
        io.read(tmp_path / "y.csv", compensate=True)


def test_errors_are_magan_errors():
    assert issubclass(FileFormatError, MaganError)


# ---- writing safely ----


@pytest.mark.parametrize("ext", [".h5ad", ".csv", ".fcs"])
def test_refuses_to_overwrite_unless_asked_and_leaves_no_temp_files(tmp_path, cytof, ext):
    target = tmp_path / f"o{ext}"
    target.write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        io.write(cytof, target)
    assert target.read_bytes() == b"precious"
    io.write(cytof, target, overwrite=True)
    np.testing.assert_array_equal(io.read(target).X, cytof.X)
    assert sorted(os.listdir(tmp_path)) == [target.name]


def test_failed_write_leaves_nothing_behind(tmp_path, cytof):
    cytof.X[0, 1] = np.nan
    with pytest.raises(DataError, match="CD19"):
        io.write(cytof, tmp_path / "nan.fcs")
    assert os.listdir(tmp_path) == []


def test_written_file_has_normal_permissions(tmp_path, cytof):
    path = io.write(cytof, tmp_path / "perm.csv")
    umask = os.umask(0)
    os.umask(umask)
    if os.name == "posix":
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_read_only_input_can_be_read_and_replaced_in_place(tmp_path, cytof):
    path = io.write(cytof, tmp_path / "ro.fcs")
    path.chmod(0o444)
    adata = io.read(path)  # reading never opens for writing
    io.write(adata, path, overwrite=True)  # atomic replace, not an in-place rewrite
    np.testing.assert_array_equal(io.read(path).X, cytof.X)


def test_write_rejects_unknown_format(tmp_path, cytof):
    with pytest.raises(FileFormatError, match="parquet"):
        io.write(cytof, tmp_path / "x.parquet")


# ---- several files ----


def test_read_many_tags_samples_and_reorders(tmp_path, cytof):
    io.write(cytof, tmp_path / "s1.fcs")
    io.write(cytof[:, ["CD3", "Time", "DNA1", "CD19"]].copy(), tmp_path / "s2.fcs")
    both = io.read_many([tmp_path / "s1.fcs", tmp_path / "s2.fcs"], sample_key="batch")
    assert both.shape == (100, 4) and both.X.dtype == np.float32
    assert list(both.obs["batch"].cat.categories) == ["s1", "s2"]
    np.testing.assert_array_equal(both.X[50:], cytof.X)
    assert both.obs_names.is_unique


def test_read_many_lists_marker_differences(tmp_path, cytof):
    io.write(cytof, tmp_path / "s1.fcs")
    io.write(cytof[:, ["Time", "CD19", "CD3"]].copy(), tmp_path / "s2.fcs")
    with pytest.raises(DataError, match=r"s2\.fcs: lacks \['DNA1'\]"):
        io.read_many([tmp_path / "s1.fcs", tmp_path / "s2.fcs"])


# ---- pairs ----


def test_read_pairs_integer_indices_with_and_without_header(tmp_path):
    (tmp_path / "p.csv").write_text("cell1,cell2\n0,2\n1,0\n")
    (tmp_path / "q.csv").write_text("0,2\n1,0\n")
    for name in ("p.csv", "q.csv"):
        pairs = io.read_pairs(tmp_path / name)
        assert pairs.dtype == np.int64
        np.testing.assert_array_equal(pairs, [[0, 2], [1, 0]])
    with pytest.raises(DataError, match="out of range"):
        io.read_pairs(tmp_path / "q.csv", ["a", "b"], ["x", "y"])


def test_read_pairs_by_name(tmp_path):
    (tmp_path / "n.csv").write_text("rna,protein\nc2,p1\nc1,p3\n")
    names1, names2 = ["c1", "c2"], ["p1", "p2", "p3"]
    np.testing.assert_array_equal(
        io.read_pairs(tmp_path / "n.csv", names1, names2), [[1, 0], [0, 2]]
    )
    with pytest.raises(DataError, match="obs_names1"):
        io.read_pairs(tmp_path / "n.csv")
    with pytest.raises(DataError, match=r"not found in dataset 2: \['p3'\]"):
        io.read_pairs(tmp_path / "n.csv", names1, ["p1", "p2"], header=True)


def test_resolve_pairs_rejects_duplicated_ids_and_repeated_pairs():
    with pytest.raises(DataError, match=r"\['a'\] occur more than once in dataset 1"):
        io.resolve_pairs([("a", "x")], ["a", "a", "b"], ["x"])
    with pytest.raises(DataError, match="more than once"):
        io.resolve_pairs([("a", "x"), ("a", "x")], ["a"], ["x"])
    assert io.resolve_pairs([], ["a"], ["x"]).shape == (0, 2)


def test_read_pairs_needs_two_columns(tmp_path):
    (tmp_path / "three.csv").write_text("0,1,2\n")
    with pytest.raises(FileFormatError, match="two columns"):
        io.read_pairs(tmp_path / "three.csv")


# ---- real files from shared/data -----------------------------------------------------------------


@shared_data
@pytest.mark.shared_data
def test_cytonorm_fcs_match_their_npz_copies():
    folder = SHARED / "cytonorm_gates"
    files = sorted(folder.glob("*.fcs"))
    assert len(files) == 6
    for fcs_path in files:
        a = io.read(fcs_path)
        z = np.load(fcs_path.with_suffix(".npz"), allow_pickle=False)
        np.testing.assert_array_equal(a.X, z["X"])
        pairs = zip(a.var["channel"], a.var["antigen"], strict=True)
        joined = [c if s in ("", c) else f"{c}|{s}" for c, s in pairs]  # shared-data naming
        assert joined == list(z["features"])
        assert list(io.read(fcs_path.with_suffix(".npz")).var_names) == list(a.var_names)
    both = io.read_many(files)
    assert both.shape == (6000, 55) and both.obs["sample"].nunique() == 6


@shared_data
@pytest.mark.shared_data
def test_flowsom_fcs_raw_and_compensated_match_npz():
    path = SHARED / "flowsom_68983" / "68983.fcs"
    z = np.load(path.with_suffix(".npz"), allow_pickle=False)
    raw = io.read(path)
    np.testing.assert_array_equal(raw.X, z["X"])
    assert "Qdot 605-A" in raw.var_names and "CD3" in raw.var_names  # blank $PnS -> channel
    assert raw.var.loc["CD3", "channel"] == "PE-Cy7-A"
    comp = io.read(path, compensate=True)
    np.testing.assert_allclose(comp.X, z["X_compensated"], rtol=1e-5, atol=1e-2)
    assert comp.uns["spillover"]["channels"] == list(z["spill_channels"])


@shared_data
@pytest.mark.shared_data
def test_real_fcs_survives_magan_write_and_read(tmp_path):
    a = io.read(SHARED / "cytonorm_gates" / "Gates_PTLG028_Unstim_Control_2.fcs")
    back = io.read(io.write(a, tmp_path / "copy.fcs"))
    np.testing.assert_array_equal(back.X, a.X)
    pd.testing.assert_frame_equal(back.var, a.var)


def test_fcs_bytes_helper_is_valid():
    # guard for the hand-built fixtures above: the header offsets point at the TEXT segment
    raw = _fcs_bytes({"$PAR": "1"}, struct.pack("<f", 1.0))
    assert raw[:6] == b"FCS3.0" and raw[58:59] == b"/"
