"""Sphinx configuration of magan's documentation (``make docs``).

The site is built with warnings as errors (``sphinx-build -W``), offline: the API reference
comes from the docstrings, the command-line page from ``magan.cli.build_parser()`` and the
tutorial is executed during the build (sphinx-gallery) on the data bundled in the package.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
# The checkout's own code, ahead of any installed magan (make docs installs it editable anyway).
sys.path.insert(0, str(DOCS.parent / "src"))

os.environ.setdefault("OMP_NUM_THREADS", "1")  # the tutorial trains a small model on the CPU
os.environ.setdefault("MPLBACKEND", "Agg")

import magan  # noqa: E402

project = "magan"
author = "the magan developers"
copyright = "the magan developers, MIT licence"
version = release = magan.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sphinx_gallery.gen_gallery",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "tutorials/*",
                    "generated/cli_help.md"]  # included by cli.md
templates_path = ["_templates"]

html_theme = "alabaster"
html_title = f"magan {release}"
html_static_path: list[str] = []
html_theme_options = {"description": "Manifold-Aligning GAN for single-cell data"}
html_sidebars = {"**": ["about.html", "localtoc.html", "navigation.html", "searchbox.html"]}

# ---- MyST (the Markdown pages) ---------------------------------------------------------------
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# ---- API reference ---------------------------------------------------------------------------
autodoc_default_options = {"members": True, "member-order": "bysource"}
autodoc_typehints = "signature"
autodoc_class_signature = "mixed"
autosummary_generate = True  # one page per module, from _templates/autosummary/module.rst
autosummary_ignore_module_all = False  # a module's page shows what its __all__ exports
autosummary_imported_members = False
# Documented on the API index under the name users import; the module page links there.
autosummary_context = {"documented_elsewhere": {"magan.transport.Transport": "magan.Transport"}}
napoleon_numpy_docstring = True
napoleon_google_docstring = False
napoleon_use_rtype = False

# ---- the executed tutorial -------------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": ["tutorials"],
    "gallery_dirs": ["generated/tutorials"],
    "filename_pattern": r"/plot_",  # every plot_*.py is executed at build time
    "abort_on_example_error": True,  # a failing tutorial fails the build
    "run_stale_examples": True,  # re-run an unchanged script too: the code under it may change
    "only_warn_on_example_error": False,
    "capture_repr": (),  # what a cell's last expression returns (an Axes) is not printed
}


# ---- the command-line page -------------------------------------------------------------------
def _cli_help_page() -> str:
    """``magan --help`` and every subcommand's ``--help``, as a Markdown page, from the parser
    the ``magan`` command itself builds (so the page cannot drift from the program)."""
    from magan.cli import build_parser

    os.environ["COLUMNS"] = "96"  # argparse wraps to the terminal; fix it for the page
    os.environ["NO_COLOR"] = "1"
    parser = build_parser()
    parts = ["```text", parser.format_help().rstrip(), "```", ""]
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for action in subs:
        for name, sub in action.choices.items():
            parts += [f"## `magan {name}`", "", "```text", sub.format_help().rstrip(), "```",
                      ""]
    return "\n".join(parts)


def _write_if_changed(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


def setup(app) -> None:
    _write_if_changed(DOCS / "generated" / "cli_help.md", _cli_help_page())
