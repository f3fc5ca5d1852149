"""Small frozen settings objects that group ``MAGAN``'s related parameters.

Why: an estimator with thirty flat parameters hides which ones belong together. The networks
(:class:`~magan.nn.Networks`), the optimiser (:class:`~magan.training.Optimizer`), the
correspondence weights (:class:`~magan.correspondence.Correspondence`) and the transport
(:class:`~magan.transport.Transport`) are each one value: printed, compared, saved with the
model as a dict, and rebuilt from it.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any, TypeVar

import numpy as np

from magan.errors import ConfigError

__all__ = ["Settings", "check_fraction", "check_number", "check_positive_int"]

S = TypeVar("S", bound="Settings")


class Settings:
    """Mixin for a frozen dataclass of settings: ``coerce`` from itself or a dict, ``to_dict``
    for JSON. Subclasses set ``parameter`` (the MAGAN parameter it fills) and ``check``."""

    parameter = "settings"

    @classmethod
    def coerce(cls: type[S], value: Any) -> S:
        """This setting from an instance of it or a dict of its fields (a saved model's)."""
        if isinstance(value, cls):
            return value
        if isinstance(value, dict):
            names = {f.name for f in fields(cls)}
            unknown = sorted(set(value) - names)
            if unknown:
                raise ConfigError(f"The {cls.parameter!r} parameter of MAGAN has no field "
                                  f"{unknown[0]!r}; fields: {sorted(names)}.")
            return cls(**value)
        raise ConfigError(f"The {cls.parameter!r} parameter of MAGAN must be a magan."
                          f"{cls.__name__} or a dict of its fields. Got {value!r} instead.")

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain JSON values (tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def check(self) -> None:
        """Refuse values that cannot be meant, naming the field."""


def _name(owner: str, field: str) -> str:
    return f"{owner} {field}"


def check_number(owner: str, field: str, value: Any, *, low: float = 0.0,
                 strict: bool = False, none: bool = False) -> None:
    """A finite real number >= ``low`` (> with ``strict``), or None where ``none``."""
    if none and value is None:
        return
    bad = isinstance(value, bool) or not isinstance(value, (int, float, np.floating))
    if bad or not np.isfinite(value) or value < low or (strict and value == low):
        sign = ">" if strict else ">="
        also = "None or " if none else ""
        raise ConfigError(f"{_name(owner, field)} must be {also}a finite number {sign} {low:g}. "
                          f"Got {value!r} instead.")


def check_fraction(owner: str, field: str, value: Any) -> None:
    """A number in [0, 1]."""
    check_number(owner, field, value)
    if value > 1:
        raise ConfigError(f"{_name(owner, field)} is a fraction in [0, 1]. Got {value!r}.")


def check_positive_int(owner: str, field: str, value: Any, low: int = 1) -> None:
    """An int >= ``low`` (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ConfigError(f"{_name(owner, field)} must be an int >= {low}. Got {value!r} "
                          "instead.")
