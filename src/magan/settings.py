"""Small frozen settings objects that group ``MAGAN``'s related parameters.

Why: an estimator with thirty flat parameters hides which ones belong together. The networks
(:class:`Networks`), the optimiser (:class:`Optimizer`) and the correspondence weights
(:class:`Correspondence`), like the transport (:class:`~magan.transport.Transport`), are each
one value: printed, compared, saved with the model as a dict, and rebuilt from it. This module
imports neither torch nor the rest of magan, so the command line can read the defaults cheaply.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, TypeVar

import numpy as np

from magan.errors import ConfigError

__all__ = ["ACTIVATIONS", "MATCHES", "Correspondence", "Networks", "Optimizer", "Settings",
           "check_fraction", "check_number", "check_positive_int"]

ACTIVATIONS = ("relu", "leaky_relu", "elu")  # magan.nn builds them
MATCHES = ("values", "standardized")  # how a shared feature's "same value" is read

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


@dataclass(frozen=True)
class Networks(Settings):
    """The generators' and discriminators' hidden layers (``MAGAN(networks=...)``).

    Parameters
    ----------
    generator
        Hidden widths of G12 and G21. Default 128-64 (docs/model.md: on CyTOF batches it
        transferred labels and imputed markers better than the original code's 200-100-50,
        at a third of the time per step).
    discriminator
        Hidden widths of D1 and D2. Default 256-128 (the original code's 800-400-200-100-50
        overpowers small generators at this training length).
    activation
        ``"relu"``, ``"leaky_relu"`` or ``"elu"``.
    """

    generator: tuple[int, ...] = (128, 64)
    discriminator: tuple[int, ...] = (256, 128)
    activation: str = "relu"
    parameter = "networks"

    def __post_init__(self) -> None:  # lists (JSON, the CLI) become tuples
        for name in ("generator", "discriminator"):
            value = getattr(self, name)
            if isinstance(value, (list, range)):
                object.__setattr__(self, name, tuple(value))

    @classmethod
    def paper(cls) -> Networks:
        """The original code's widths: G 200-100-50, D 800-400-200-100-50."""
        return cls((200, 100, 50), (800, 400, 200, 100, 50))

    def check(self) -> None:
        for name in ("generator", "discriminator"):
            widths = getattr(self, name)
            if not isinstance(widths, tuple) or not all(
                    isinstance(w, (int, np.integer)) and not isinstance(w, bool) and w >= 1
                    for w in widths):
                raise ConfigError(f"Networks {name} must be a sequence of positive ints. "
                                  f"Got {widths!r} instead.")
        if self.activation not in ACTIVATIONS:
            raise ConfigError(f"Networks activation must be one of {ACTIVATIONS}. "
                              f"Got {self.activation!r} instead.")


@dataclass(frozen=True)
class Optimizer(Settings):
    """Adam for the generators and the discriminators, and the averaged generators that
    become the fitted model (``MAGAN(optimizer=...)``).

    Parameters
    ----------
    generator_lr, discriminator_lr
        Learning rates (1e-3, as in the original code).
    betas
        Adam's betas ((0.5, 0.99), as in the original code).
    ema
        Decay of an exponential moving average of the generators' weights, which becomes the
        fitted model; None keeps the last weights (the paper). Why: the adversarial game
        keeps the weights moving, and their average over the last ~1/(1 - ema) steps is a
        free ensemble (docs/model.md).
    """

    generator_lr: float = 1e-3
    discriminator_lr: float = 1e-3
    betas: tuple[float, float] = (0.5, 0.99)
    ema: float | None = 0.995
    parameter = "optimizer"

    def __post_init__(self) -> None:  # a list (JSON) becomes a tuple
        if isinstance(self.betas, list):
            object.__setattr__(self, "betas", tuple(self.betas))

    def check(self) -> None:
        for name in ("generator_lr", "discriminator_lr"):
            check_number("Optimizer", name, getattr(self, name), strict=True)
        if not (isinstance(self.betas, tuple) and len(self.betas) == 2):
            raise ConfigError(f"Optimizer betas must be two numbers in [0, 1). Got "
                              f"{self.betas!r} instead.")
        for beta in self.betas:
            check_number("Optimizer", "betas", beta)
            if beta >= 1:
                raise ConfigError(f"Optimizer betas must be in [0, 1). Got {self.betas!r}.")
        ema = self.ema
        if ema is not None and (isinstance(ema, bool) or not isinstance(ema, (int, float))
                                or not 0 < ema < 1):
            raise ConfigError("Optimizer ema must be None or a decay in (0, 1), e.g. 0.999. "
                              f"Got {ema!r} instead.")


@dataclass(frozen=True)
class Correspondence(Settings):
    """The weights of the correspondence terms, and how shared values are compared
    (``MAGAN(correspondence=...)``; ``True`` is this default, ``False`` turns every term off).

    Parameters
    ----------
    shared_features, known_pairs, relation
        Weight of each term (1, as in the original code):
        :class:`~magan.correspondence.SharedFeatures`,
        :class:`~magan.correspondence.KnownPairs`, :class:`~magan.correspondence.Relation`.
    shared_features_match
        ``"values"`` (the paper): a shared feature must keep its value in the user's units.
        ``"standardized"``: the same value after each domain's own centring and scaling, for
        batch effects that shift the shared markers themselves.
    """

    shared_features: float = 1.0
    known_pairs: float = 1.0
    relation: float = 1.0
    shared_features_match: str = "values"
    parameter = "correspondence"

    @classmethod
    def of(cls, value: Any) -> Correspondence | None:
        """What ``MAGAN(correspondence=value)`` means: these weights, or None (off)."""
        if isinstance(value, (bool, np.bool_)):
            return cls() if value else None
        return cls.coerce(value)

    def check(self) -> None:
        for name in ("shared_features", "known_pairs", "relation"):
            check_number("Correspondence", name, getattr(self, name))
        if self.shared_features_match not in MATCHES:
            raise ConfigError(f"Correspondence shared_features_match must be one of {MATCHES}. "
                              f"Got {self.shared_features_match!r} instead.")
