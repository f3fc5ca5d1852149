"""The role of each cytometry channel, so that only biological markers are aligned.

An FCS file holds more than markers: the acquisition time, CyTOF event length and Gaussian
parameters, DNA intercalators, viability dyes, normalisation beads, barcodes and empty masses.
Aligning those as if they were markers distorts the alignment, so each channel gets one role,
decided from its channel name (``$PnN``, e.g. ``Nd145Di``, ``FSC-A``) and its antigen (``$PnS``,
e.g. ``CD4``). The rules below are tried in order; the first that fits decides.

==  ================  ======================================================================
#   role              rule (names are compared ignoring case; ``145Nd``, ``Nd145``,
                      ``Nd145Di`` and ``(Nd145)Dd`` all mean the metal Nd145)
==  ================  ======================================================================
1   ``time``          the channel is named ``Time``
2   ``event_length``  the channel is ``Event_length`` or a Helios Gaussian parameter:
                      ``Center``, ``Offset``, ``Width``, ``Residual``
3   ``scatter``       the channel starts with FSC or SSC (``FSC-A``, ``SSC-H``, ``SSC-B-A``)
4   ``dna``           the antigen (or, with no antigen, the channel) names DNA: ``DNA1``,
                      ``DNA2``, ``DNA``, ``191Ir_DNA1``, "intercalator", "iridium" (not
                      ``DNA-PK``, a protein)
5   ``viability``     ... names a viability dye: cisplatin, Cis, viability, live, dead, LD,
                      L/D, Live-Dead, Zombie, 7-AAD, DAPI, PI, Aqua
6   ``bead``          ... contains "bead" (``beadDist``, ``Beads``) or is ``EQ``/``EQ4``
7   ``barcode``       ... is ``BC1``..``BC6`` (any ``BCn``) or contains "barcode"
8   ``marker``        any other antigen: explicit antigens win over the metal rules below,
                      so ``Ho165Di`` labelled ``CD16`` or ``Eu153Di`` labelled ``STAT1`` stay
                      markers
9   ``dna``           no antigen on Ir191 or Ir193 (iridium DNA intercalator)
10  ``viability``     no antigen on Pt194, Pt195, Pt196, Pt198 (cisplatin) or Rh103 (rhodium)
11  ``bead``          no antigen on Ce140, Eu151, Eu153, Ho165, Lu175 (normalisation beads)
12  ``barcode``       no antigen on Pd102, Pd104, Pd105, Pd106, Pd108, Pd110 (palladium)
13  ``unlabelled``    no antigen on any other metal mass (``Y89Di``, ``I127Di``, ``Ba138Di``)
14  ``unlabelled``    no antigen on a fluorescence detector (``Qdot 605-A``, ``FL1-H``, ``PE``)
15  ``marker``        no antigen, but the channel name is not a detector name (``CD3``): the
                      name is taken as the marker's, as in files written from a table
==  ================  ======================================================================

An antigen that only repeats the channel or its metal (``Ce140Di``, ``140Ce``) counts as no
antigen. ``CD`` followed by digits is always an antigen (``CD106``), never cadmium, unless
written as a mass (``Cd106Di``, ``106Cd``).

:func:`instrument` tells mass from flow cytometry, because the two need different arcsinh
cofactors (:data:`DEFAULT_COFACTOR`): first from the ``$CYT`` keyword, then ``$CREATOR``, then
from whether most channel names are metal masses or flow detectors.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import pandas as pd

from magan.errors import DataError

__all__ = ["DEFAULT_COFACTOR", "ROLES", "assign_roles", "instrument"]

ROLES = (
    "marker", "scatter", "time", "event_length", "dna",
    "viability", "bead", "barcode", "unlabelled",
)
DEFAULT_COFACTOR = {"mass": 5.0, "flow": 150.0}

# Rubidium to bismuth: every element a mass cytometer measures (mass window ~75-209).
_ELEMENTS = frozenset(
    "rb sr y zr nb mo tc ru rh pd ag cd in sn sb te i xe cs ba la ce pr nd pm sm eu gd tb dy ho"
    " er tm yb lu hf ta w re os ir pt au hg tl pb bi".split()
)
_MASS_FIRST = re.compile(r"(\d{2,3})([a-z]{1,2})(di|dd)?")
_ELEMENT_FIRST = re.compile(r"([a-z]{1,2})(\d{2,3})(di|dd)?")
_EMPTY = frozenset({"", "nan", "none", "na", "n/a", "-"})
_EVENT_LENGTH = frozenset({"eventlength", "center", "offset", "width", "residual"})
_SCATTER = re.compile(r"(fsc|ssc|fs|ss)([-_ .].*)?", re.I)
_DETECTOR_SUFFIX = re.compile(r".*[-_ ][ahw]", re.I)
_FLUOR = re.compile(
    r"fitc|pe|apc|percp|pacific|alexa|af\d{3}|qdot|amcyan|bv\d{3}|buv\d{3}|bb\d{3}|cy\d|texas"
    r"|efluor|fl\d+|sb\d{3}|pb|po|hv\d{3}|bio\d+"
)
_VIABILITY = frozenset(
    {"cisplatin", "cis", "viability", "viab", "live", "dead", "ld", "livedead", "zombie",
     "7aad", "aad", "dapi", "pi", "aqua", "fvd"}
)
# (element, mass) -> (role, what the metal is) for channels without an antigen.
_METAL_ROLES = {
    **{("ir", m): ("dna", "DNA intercalator") for m in (191, 193)},
    **{("pt", m): ("viability", "cisplatin viability") for m in (194, 195, 196, 198)},
    ("rh", 103): ("viability", "rhodium viability intercalator"),
    **{k: ("bead", "normalisation bead")
       for k in (("ce", 140), ("eu", 151), ("eu", 153), ("ho", 165), ("lu", 175))},
    **{("pd", m): ("barcode", "palladium barcode") for m in (102, 104, 105, 106, 108, 110)},
}
_MASS_CYT = re.compile(r"cytof|helios|hyperion|dvs|fluidigm|standard\s*bio", re.I)
_FLOW_CYT = re.compile(
    r"facs|lsr|fortessa|aurora|northern\s*lights|cytek|canto|attune|cytoflex|accuri|symphony"
    r"|celesta|aria|melody|calibur|verse|influx|novocyte|quanteon|gallios|navios|cyan|macsquant"
    r"|guava|sony|sh800|sa3800|id7000|bigfoot|cyflow|partec|beckman|becton|\bbd\b",
    re.I,
)


def _text(value: object) -> str:
    """Stripped text; None and NaN (pandas' missing $PnS) read as empty."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return str(value).strip()


def _tokens(name: str) -> list[str]:
    return [t for t in re.split(r"[^a-z0-9]+", name.lower()) if t]


def _metal(name: str) -> tuple[str, int] | None:
    """(element, mass) of a metal-mass name, tolerant to ``145Nd``/``Nd145Di``/``(Nd145)Dd``."""
    s = re.sub(r"[()\s]", "", name.lower())
    if re.fullmatch(r"cd\d+", s):  # CD106 is an antigen; cadmium is written Cd106Di or 106Cd
        return None
    if m := _MASS_FIRST.fullmatch(s):
        mass, elem = int(m.group(1)), m.group(2)
    elif m := _ELEMENT_FIRST.fullmatch(s):
        elem, mass = m.group(1), int(m.group(2))
    else:
        return None
    return (elem, mass) if elem in _ELEMENTS and 75 <= mass <= 209 else None


def _label(metal: tuple[str, int]) -> str:
    return f"{metal[0].capitalize()}{metal[1]}"


def _informative(antigen: str, channel: str) -> str:
    """The antigen, or "" when it is blank or only repeats the channel or a metal name."""
    if antigen.lower() in _EMPTY or antigen.lower() == channel.lower():
        return ""
    rest = [t for t in re.split(r"[^A-Za-z0-9()]+", antigen) if t and _metal(t) is None]
    return antigen if rest else ""


def _reagent(name: str) -> tuple[str, str] | None:
    """(role, what) when a name says DNA, viability dye, bead or barcode (rules 4-7)."""
    toks = _tokens(name)
    joined = "".join(toks)
    dna = [t for t in toks if re.fullmatch(r"dna\d*", t)]
    other = [t for t in toks if t not in dna and not t.isdigit() and _metal(t) is None]
    if (dna and not other) or any(t in ("intercalator", "iridium") for t in toks):
        return "dna", "a DNA intercalator"
    if joined in _VIABILITY or any(t in _VIABILITY for t in toks):
        return "viability", "a viability dye"
    if any("bead" in t or re.fullmatch(r"eq\d?", t) for t in toks):
        return "bead", "normalisation beads"
    if any(re.fullmatch(r"bc\d*", t) or "barcode" in t for t in toks):
        return "barcode", "a barcode"
    return None


def _is_detector(name: str) -> bool:
    """A flow detector or fluorochrome name (``PE-Cy7-A``, ``FL1``), not a marker's name."""
    return bool(_DETECTOR_SUFFIX.fullmatch(name)) or any(
        _FLUOR.fullmatch(t) for t in _tokens(name)
    )


def _role(channel: str, antigen: str) -> tuple[str, str]:
    """(role, rule sentence) for one channel: the numbered rules of the module docstring."""
    key = "".join(_tokens(channel))
    if key == "time":
        return "time", f"channel name {channel!r}: acquisition time"
    if key in _EVENT_LENGTH:
        return "event_length", f"channel name {channel!r}: event length / Gaussian parameter"
    if _SCATTER.fullmatch(channel):
        return "scatter", "FSC/SSC name: scatter"
    given = _informative(antigen, channel)
    source, name = ("antigen", given) if given else ("channel name", channel)
    if found := _reagent(name):
        return found[0], f"{source} {name!r} names {found[1]}"
    if given:
        return "marker", "antigen given: marker"
    if metal := _metal(channel):
        role, what = _METAL_ROLES.get(metal, ("unlabelled", "unlabelled"))
        return role, f"mass channel {_label(metal)} with no antigen: {what}"
    if _is_detector(channel):
        return "unlabelled", f"fluorescence channel {channel!r} with no antigen ($PnS): unlabelled"
    return "marker", f"no antigen, and {channel!r} is not a detector name: taken as the marker"


def assign_roles(channel: Sequence[str], antigen: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per channel, in order: ``channel``, ``antigen``, ``role`` and the ``rule`` that
    decided it, so a user can see (and argue with) why a channel is or is not aligned."""
    channels = [_text(c) for c in channel]
    antigens = [""] * len(channels) if antigen is None else [_text(a) for a in antigen]
    if len(antigens) != len(channels):
        raise DataError(
            f"assign_roles: {len(channels)} channel names but {len(antigens)} antigens; "
            "give one antigen (or '') per channel"
        )
    decided = [_role(c, a) for c, a in zip(channels, antigens)]
    return pd.DataFrame(
        {
            "channel": channels,
            "antigen": antigens,
            "role": [r for r, _ in decided],
            "rule": [s for _, s in decided],
        }
    )


def _keyword(text: Mapping[str, str] | None, name: str) -> str:
    """An FCS TEXT keyword, whether the keys kept their ``$`` and case or not (flowio drops it)."""
    for key, value in (text or {}).items():
        if str(key).lower().lstrip("$") == name:
            return _text(value)
    return ""


def instrument(
    channel: Sequence[str],
    antigen: Sequence[str] | None = None,
    text: Mapping[str, str] | None = None,
) -> tuple[str, str]:
    """``("mass" | "flow" | "unknown", reason)``: which arcsinh cofactor the data need.

    The ``$CYT`` keyword decides when it names a known instrument, then ``$CREATOR`` (e.g.
    "BD FACSDiva"), else a majority of the channel names: metal masses mean mass cytometry,
    FSC/SSC or fluorescence detector names mean flow.
    """
    for key in ("cyt", "creator"):
        value = _keyword(text, key)
        if _MASS_CYT.search(value):
            return "mass", f"${key.upper()} = {value!r}"
        if _FLOW_CYT.search(value):
            return "flow", f"${key.upper()} = {value!r}"
    roles = assign_roles(channel, antigen)
    timing = roles["role"].isin(["time", "event_length"])
    names = list(roles.loc[~timing, "channel"])
    if not names:
        return "unknown", "no channels other than time or event length"
    mass = [c for c in names if _metal(c)]
    flow = [c for c in names if _SCATTER.fullmatch(c) or _is_detector(c)]
    n = len(names)
    if 2 * len(mass) > n:
        return "mass", f"{len(mass)} of {n} channel names are metal masses (e.g. {mass[0]})"
    if 2 * len(flow) > n:
        return "flow", f"{len(flow)} of {n} channel names are flow detectors (e.g. {flow[0]})"
    return "unknown", (
        f"no instrument keyword and no majority: {len(mass)} metal-mass and {len(flow)} "
        f"flow-style names among {n} channels"
    )
