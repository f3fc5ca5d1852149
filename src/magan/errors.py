"""The one family of exceptions magan raises on purpose.

Every error a user can cause (bad input, a wrong file, a model used before ``fit``) is a
:class:`MaganError`, so callers and the CLI can catch one type and print a message instead of a
traceback. Each subclass also derives from the builtin a Python user would expect
(``ValueError``, ``FileNotFoundError`` ...), as scikit-learn's ``NotFittedError`` does.
"""

from __future__ import annotations

__all__ = [
    "AlignmentFailedError",
    "ConfigError",
    "DataError",
    "DivergenceError",
    "FileFormatError",
    "MaganError",
    "ModelFileError",
    "NotFittedError",
    "OutputExistsError",
]


class MaganError(Exception):
    """Base class: every error magan raises deliberately."""


class DataError(MaganError, ValueError):
    """The input data cannot be used as given (NaN, wrong shape, unknown feature, bad pair...)."""


class ConfigError(MaganError, ValueError):
    """A hyperparameter or option has an invalid value."""


class NotFittedError(MaganError, AttributeError):
    """The model was used before ``fit`` (or ``load``)."""


class FileFormatError(MaganError, ValueError):
    """A file could not be read: unknown extension, corrupt or truncated content."""


class ModelFileError(MaganError, ValueError):
    """A saved model directory is missing, from another version, or was tampered with."""


class DivergenceError(MaganError, RuntimeError):
    """Training produced non-finite losses; the message names the step."""


class OutputExistsError(MaganError, FileExistsError):
    """An output path exists and ``overwrite`` was not asked for; magan never clobbers files."""


class AlignmentFailedError(MaganError, RuntimeError):
    """``magan align --strict``: the outputs were written, but the self-diagnosis
    (:mod:`magan.diagnostics`) judged the alignment "failed"; the CLI exits with status 3."""
