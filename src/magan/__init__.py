"""magan: the Manifold-Aligning GAN for aligning two single-cell datasets.

``from magan import MAGAN`` is the main entry point; see its docstring.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["MAGAN", "Transport", "__version__", "tl"]


def __getattr__(name: str):  # lazy: `import magan` stays cheap and never imports plots
    if name == "MAGAN":
        from magan.estimator import MAGAN

        return MAGAN
    if name == "Transport":
        from magan.transport import Transport

        return Transport
    if name == "tl":
        import importlib

        return importlib.import_module("magan.tl")
    raise AttributeError(f"module 'magan' has no attribute {name!r}")
