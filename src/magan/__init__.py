"""magan: the Manifold-Aligning GAN for aligning two single-cell datasets.

``from magan import MAGAN`` is the main entry point; see its docstring. Its grouped settings
(``Correspondence``, ``Transport``, ``Networks``, ``Optimizer``) are importable from here too.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

__all__ = ["MAGAN", "Correspondence", "Networks", "Optimizer", "Transport", "__version__", "pl",
           "pp", "tl"]

# name -> module holding it; imported on first use, so `import magan` stays cheap and never
# imports plots
_LAZY = {"MAGAN": "magan.estimator", "Correspondence": "magan.settings",
         "Networks": "magan.settings", "Optimizer": "magan.settings",
         "Transport": "magan.transport"}


_NAMESPACES = {"pp": "magan.preprocessing", "tl": "magan.tl", "pl": "magan.plots"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _NAMESPACES:  # scanpy-style: magan.pp (prepare), magan.tl (compute), magan.pl
        return importlib.import_module(_NAMESPACES[name])
    raise AttributeError(f"module 'magan' has no attribute {name!r}")
