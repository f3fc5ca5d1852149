"""Package structure: imports point one way (STYLE.md's module map), the package never reaches
into the repository's experiments/, research/ or benchmarks/ (they are not installed), and
importing magan is cheap (no matplotlib, no plotting modules)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "magan"

# A module may import only from modules of a *lower* layer.
LAYERS = [
    ["errors"],
    ["channels", "settings"],
    ["io", "preprocessing", "metrics", "distributed"],
    ["datasets", "data", "nn", "losses", "cytometry", "reference"],
    ["correspondence"],
    ["transport"],
    ["training", "checkpoint", "diagnostics"],
    ["estimator"],
    ["uncertainty"],
    ["tl"],
    ["plots", "demo"],
    ["report"],
    ["cli"],
    ["__main__"],
]
LAYER = {name: i for i, names in enumerate(LAYERS) for name in names}


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC).with_suffix("")
    return rel.parts[0]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            parts = node.module.split(".")
            if parts[0] == "magan":
                if len(parts) > 1:
                    found.add(parts[1])
                else:  # from magan import io, tl, __version__
                    found.update(a.name for a in node.names if not a.name.startswith("__"))
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            found.add((node.module or "").split(".")[0])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "magan" and len(parts) > 1:
                    found.add(parts[1])
    return found


@pytest.mark.parametrize("path", sorted(SRC.rglob("*.py")), ids=lambda p: str(p.relative_to(SRC)))
def test_imports_point_one_way(path):
    if path.name == "__init__.py" and path.parent == SRC:
        return  # the package root re-exports lazily
    me = _module_name(path)
    assert me in LAYER, f"{me} is not placed in tests/test_structure.py LAYERS"
    for target in _imports(path):
        if target == me or target not in LAYER:
            continue
        assert LAYER[target] < LAYER[me], f"{me} (layer {LAYER[me]}) imports {target} " \
                                          f"(layer {LAYER[target]}): a backward arrow"


# Top-level folders of the repository that are not part of the installed package.
OUTSIDE = {"experiments", "research", "benchmarks", "tests"}


def _outside_imports(path: Path) -> list[str]:
    """Modules outside the package that ``path`` imports, eagerly, lazily or by name."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(
                node.func, "id", None)) in {"import_module", "__import__"} and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            names = [node.args[0].value]
        found += [n for n in names if n.split(".")[0] in OUTSIDE]
    return found


@pytest.mark.parametrize("path", sorted(SRC.rglob("*.py")), ids=lambda p: str(p.relative_to(SRC)))
def test_the_package_never_imports_experiments_or_research(path):
    assert not _outside_imports(path), (
        f"{path.relative_to(SRC)} imports {_outside_imports(path)}: the installed package holds "
        "the library only (experiments/, research/ and benchmarks/ are not installed)")


def test_outside_import_check_sees_every_form(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("import experiments.baselines\nfrom research import x\n"
                     "def f():\n    from experiments import SPECS\n"
                     "importlib.import_module('experiments.digits')\nimport magan.metrics\n")
    assert _outside_imports(probe) == ["experiments.baselines", "research", "experiments",
                                       "experiments.digits"]


def test_import_magan_stays_light():
    code = ("import sys, magan; from magan import MAGAN; import magan.tl; "
            "bad = [m for m in ('matplotlib', 'magan.plots', 'magan.report') if m in sys.modules];"
            "print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
