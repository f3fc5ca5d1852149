"""Channel roles: real CyTOF and flow files, and the tricky names each rule exists for."""

from __future__ import annotations

import csv

import pytest

from magan import io
from magan.channels import DEFAULT_COFACTOR, ROLES, assign_roles, instrument
from magan.errors import DataError


def _roles(pairs: list[str]) -> dict[str, str]:
    """``"channel|antigen"`` strings -> {that string: role}."""
    channel, antigen = zip(*(p.split("|", 1) if "|" in p else (p, "") for p in pairs))
    table = assign_roles(list(channel), list(antigen))
    assert list(table.columns) == ["channel", "antigen", "role", "rule"]
    assert set(table["role"]) <= set(ROLES)
    assert all(isinstance(r, str) and r.strip() for r in table["rule"])
    return dict(zip(pairs, table["role"]))


def test_roles_constants() -> None:
    assert ROLES == (
        "marker", "scatter", "time", "event_length", "dna",
        "viability", "bead", "barcode", "unlabelled",
    )
    assert DEFAULT_COFACTOR == {"mass": 5.0, "flow": 150.0}


@pytest.mark.parametrize(
    ("pair", "role"),
    [
        ("Time", "time"), ("time", "time"), ("TIME", "time"),
        ("Event_length", "event_length"), ("Center", "event_length"),
        ("Offset", "event_length"), ("Width", "event_length"), ("Residual", "event_length"),
        ("FSC-A", "scatter"), ("FSC", "scatter"), ("SSC-B", "scatter"), ("SSC-W", "scatter"),
        ("ssc-h", "scatter"), ("SSC-B-A", "scatter"),
        ("Ho165Di|CD16", "marker"), ("Ho165Di", "bead"), ("Eu153Di|STAT1", "marker"),
        ("Eu151Di", "bead"), ("Lu175Di", "bead"), ("Ce140Di", "bead"), ("140Ce", "bead"),
        ("Ce140Di|Ce140Di", "bead"), ("Ce140Di|140Ce", "bead"),
        ("beadDist|beadDist", "bead"), ("beadDist", "bead"), ("Bi209Di|EQ beads", "bead"),
        ("191Ir|DNA1", "dna"), ("Ir191Di", "dna"), ("Ir193Di|DNA2", "dna"), ("DNA1", "dna"),
        ("Ir193Di|193Ir_DNA", "dna"), ("Ir191Di|Intercalator", "dna"),
        ("Yb172Di|DNA-PK", "marker"),
        ("Pd102Di|BC1", "barcode"), ("Pd110Di", "barcode"), ("BC4", "barcode"),
        ("Cd111Di|CD45_barcode", "barcode"),
        ("Pt198Di|cisplatin", "viability"), ("Pt195Di", "viability"), ("195Pt", "viability"),
        ("Rh103Di", "viability"), ("Pt194Di|Cis", "viability"),
        ("Zombie Aqua-A|Live/Dead", "viability"), ("AmCyan-A|l/d", "viability"),
        ("APC-Cy7-A|LD", "viability"), ("PerCP-Cy5-5-A|7-AAD", "viability"),
        ("BV421-A|Viability", "viability"), ("DAPI-A|DAPI", "viability"),
        ("PE-A|PI", "viability"), ("Zombie NIR-A", "viability"),
        ("Y89Di", "unlabelled"), ("I127Di", "unlabelled"), ("Ba138Di", "unlabelled"),
        ("Dy161Di", "unlabelled"), ("(Nd145)Dd", "unlabelled"), ("Nd145", "unlabelled"),
        ("Qdot 605-A", "unlabelled"), ("FITC-A", "unlabelled"), ("FL1-H", "unlabelled"),
        ("Nd145Di|CD4", "marker"), ("145Nd|CD4", "marker"), ("(Nd145)Dd|145Nd_CD4", "marker"),
        ("PE-Cy7-A|CD3", "marker"), ("PE-A|NK1/1", "marker"), ("Pd106Di|CD3", "marker"),
        ("Cd106Di|CD106", "marker"), ("CD106", "marker"), ("CD3", "marker"),
    ],
)
def test_rule(pair: str, role: str) -> None:
    assert _roles([pair])[pair] == role


def test_rule_sentences_name_the_rule() -> None:
    table = assign_roles(["Ce140Di", "FSC-A", "Nd145Di", "Y89Di"], ["", "", "CD4", None])
    assert list(table["rule"]) == [
        "mass channel Ce140 with no antigen: normalisation bead",
        "FSC/SSC name: scatter",
        "antigen given: marker",
        "mass channel Y89 with no antigen: unlabelled",
    ]
    assert list(table["antigen"]) == ["", "", "CD4", ""]


def test_no_antigens_and_mismatched_lengths() -> None:
    assert list(assign_roles(["Time", "Ir191Di"])["role"]) == ["time", "dna"]
    assert assign_roles([]).shape == (0, 4)
    with pytest.raises(DataError, match="2 channel names but 1 antigens"):
        assign_roles(["Time", "Nd145Di"], ["CD4"])


def test_instrument_from_keyword_and_names() -> None:
    assert instrument(["FSC-A"], text={"cyt": "Helios"}) == ("mass", "$CYT = 'Helios'")
    assert instrument(["Nd145Di"], text={"$CYT": "BD LSRFortessa"})[0] == "flow"
    assert instrument([], text={"cyt": "Cytek Aurora"})[0] == "flow"
    kind, reason = instrument(["Time", "Nd145Di", "Ir191Di", "beadDist"], text={"cyt": "?"})
    assert kind == "mass"
    assert reason == "2 of 3 channel names are metal masses (e.g. Nd145Di)"
    kind, reason = instrument(["Time", "FSC-A", "SSC-A", "PE-A"], ["", "", "", "CD3"])
    assert (kind, reason) == ("flow", "3 of 3 channel names are flow detectors (e.g. FSC-A)")
    assert instrument(["CD3", "CD4"])[0] == "unknown"
    assert instrument(["Time"])[0] == "unknown"


@pytest.mark.shared_data
def test_shared_fcs_files(shared_data) -> None:
    flowio = pytest.importorskip("flowio")
    paths = sorted(shared_data.rglob("*.fcs"))
    assert len(paths) == 7
    with open(shared_data / "cytonorm_gates" / "channels.csv", newline="") as fh:
        used = {r["pnn"] for r in csv.DictReader(fh) if r["used_in_cytonorm"] == "True"}
    for path in paths:
        adata = io.read(path)
        table = assign_roles(adata.var["channel"], adata.var["antigen"])
        assert set(table["role"]) <= set(ROLES) and table["rule"].str.len().min() > 0
        role = dict(zip(table["channel"], table["role"]))
        kind, reason = instrument(adata.var["channel"], adata.var["antigen"],
                                  flowio.FlowData(str(path)).text)
        if path.parent.name == "cytonorm_gates":
            assert {c for c, r in role.items() if r == "marker"} == used, path.name
            expected = {"Time": "time", "Event_length": "event_length", "Ce140Di": "bead",
                        "beadDist": "bead", "Ir191Di": "dna", "Ir193Di": "dna",
                        "Pt195Di": "viability"}
            expected |= {f"Pd{m}Di": "barcode" for m in (102, 104, 105, 106, 108, 110)}
            expected |= {c: "unlabelled" for c in
                         ("Y89Di", "I127Di", "Ba138Di", "Dy161Di", "Dy163Di")}
            assert {c: role[c] for c in expected} == expected, path.name
            assert (kind, reason) == ("mass", "$CYT = 'DVSSCIENCES-CYTOF'")
        else:
            assert path.name == "68983.fcs"
            expected = {c: "scatter" for c in ("FSC-A", "FSC-H", "FSC-W", "SSC-A", "SSC-H",
                                               "SSC-W")}
            expected |= {"Time": "time", "AmCyan-A": "viability", "Qdot 605-A": "unlabelled"}
            assert {c: role[c] for c in expected} == expected
            markers = set(table.loc[table["role"] == "marker", "antigen"])
            assert markers == {"GFP", "CD8", "TCRyd", "CD45", "TCRb", "NK1/1", "CD4", "CD19",
                               "CD3"}
            # The file has no $CYT; BD FACSDiva wrote it, and its names are flow detectors.
            assert "cyt" not in flowio.FlowData(str(path)).text
            assert kind == "flow" and "FACSDiva" in reason
            assert instrument(adata.var["channel"], adata.var["antigen"])[0] == "flow"
