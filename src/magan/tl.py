"""Results into AnnData, scanpy style: ``tl.align``, ``tl.translate``, ``tl.combine``.

A cytometry or single-cell user keeps everything in AnnData objects, so a fitted :class:`MAGAN`
writes its translations where scanpy users look for results (``.obsm``) and what produced them
(parameters, loss history, metrics) into ``.uns``, in a form ``write_h5ad`` can save.

Keys (``base`` is ``key_added``, default ``"magan"``; ``<other>`` is ``domain1`` or ``domain2``,
the domain the cells are translated *into*):

- ``.obsm["X_<base>_<other>"]``: ndarray (n_obs, n_features of the other domain), every feature
  of the other domain for these cells, in that domain's units and feature order. Domain-1 cells
  get ``X_magan_domain2``; domain-2 cells ``X_magan_domain1``.
- ``.obsm["<base>_imputed_<other>"]``: DataFrame (n_obs, n_unshared) with named columns: the
  other domain's features *not* measured in this one (the imputed markers); with an
  :class:`magan.uncertainty.Ensemble`, also ``..._lower`` and ``..._upper`` (interval bounds).
- ``.uns["<base>"]``: see :func:`translate`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from magan.errors import ConfigError, DataError, NotFittedError

if TYPE_CHECKING:
    from anndata import AnnData

    from magan.estimator import MAGAN
    from magan.uncertainty import Ensemble

__all__ = [
    "align",
    "check_model",
    "combine",
    "domain_matrix",
    "history_summary",
    "imputed_key",
    "model_params",
    "translate",
    "translated_key",
    "uns_record",
]

# Steps averaged for the "tail mean" of each loss: GAN losses are noisy step to step.
_TAIL_FRACTION = 0.1


def _domain_label(domain: int) -> str:
    return f"domain{domain}"


def _check_domain(domain: Any) -> int:
    if isinstance(domain, bool) or domain not in (1, 2):
        raise ConfigError(f"The 'domain' parameter must be 1 or 2. Got {domain!r} instead.")
    return int(domain)


def translated_key(domain: int = 1, key_added: str | None = None) -> str:
    """The ``.obsm`` key :func:`translate` writes for cells of ``domain``: ``X_magan_domain2``
    for domain-1 cells."""
    base = key_added or "magan"
    return f"X_{base}_{_domain_label(3 - _check_domain(domain))}"


def imputed_key(domain: int = 1, key_added: str | None = None) -> str:
    """The ``.obsm`` key of the named imputed (unshared) features for cells of ``domain``."""
    base = key_added or "magan"
    return f"{base}_imputed_{_domain_label(3 - _check_domain(domain))}"


def check_model(model: Any) -> MAGAN:
    """``model`` if it is a fitted MAGAN; else a clear error naming what to run first."""
    from magan.estimator import MAGAN

    if not isinstance(model, MAGAN):
        raise ConfigError(f"model must be a fitted magan.MAGAN, got {type(model).__name__}")
    if not hasattr(model, "module_"):
        raise NotFittedError("This MAGAN is not fitted yet; run magan.tl.align(adata1, adata2) "
                             "or MAGAN.fit / MAGAN.load first.")
    return model


def _check_anndata(adata: Any, name: str = "adata") -> None:
    if not (hasattr(adata, "obs_names") and hasattr(adata, "var_names") and hasattr(adata, "obsm")):
        raise DataError(f"{name} must be an AnnData, got {type(adata).__name__}")
    if getattr(adata, "is_view", False):
        raise DataError(f"{name} is a view of another AnnData; call .copy() on it first so "
                        "results are not written into a temporary view")


# --------------------------------------------------------------------------- .uns record


def _jsonable(value: Any) -> Any:
    """Plain Python/numpy values that both ``json.dumps`` and ``write_h5ad`` accept."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if value is None or isinstance(value, (str, int, float)):
        return value
    if hasattr(value, "to_dict"):  # a magan.Transport
        return _jsonable(value.to_dict())
    if hasattr(value, "get_state"):  # a magan.preprocessing.Transform
        try:
            return _jsonable(value.get_state())
        except NotImplementedError:
            pass
    return repr(value)


def model_params(model: MAGAN) -> dict[str, Any]:
    """The model's hyperparameters as JSON-able values; preprocessing as its fitted state."""
    params = _jsonable(model.get_params())
    for name, steps in (("preprocess1", "preprocessing1_"), ("preprocess2", "preprocessing2_")):
        fitted = getattr(model, steps, None)
        # The last step is always the model's own standardizer; what precedes is the user's.
        if fitted and len(fitted) > 1:
            params[name] = _jsonable(fitted[0].get_state())
    return params


def history_summary(history: pd.DataFrame) -> dict[str, Any]:
    """Loss history for ``.uns``: per-step arrays and final values per term.

    ``steps``: int array; ``terms``: {term: float32 array per step}; ``final``: {term: value at the
    last step}; ``tail_mean``: {term: mean over the last 10% of steps (at least one)}, which is
    steadier than the last value of a GAN loss.
    """
    if history is None or len(history) == 0:
        return {"steps": np.zeros(0, dtype=np.int64), "terms": {}, "final": {}, "tail_mean": {}}
    tail = max(1, int(np.ceil(len(history) * _TAIL_FRACTION)))
    values = history.astype(np.float32)
    return {
        "steps": np.asarray(history.index, dtype=np.int64),
        "terms": {str(c): values[c].to_numpy() for c in values.columns},
        "final": {str(c): float(values[c].iloc[-1]) for c in values.columns},
        "tail_mean": {str(c): float(values[c].iloc[-tail:].mean()) for c in values.columns},
    }


def _metrics_record(metrics: Mapping[str, Any] | None) -> dict[str, Any]:
    if metrics is None:
        return {}
    if not isinstance(metrics, Mapping):
        raise DataError(f"metrics must be a dict of name -> value, got {type(metrics).__name__}")
    return _jsonable(dict(metrics))


def uns_record(model: MAGAN, *, domain: int, metrics: Mapping[str, Any] | None = None,
               obsm_keys: Sequence[str] = ()) -> dict[str, Any]:
    """What :func:`translate` stores in ``.uns[key]``; also used by the report."""
    from magan import __version__

    f1 = [p[0] for p in model.shared_features_]
    f2 = [p[1] for p in model.shared_features_]
    return {
        "magan_version": __version__,
        "domain": int(domain),
        "params": model_params(model),
        "feature_names1": list(model.feature_names1_),
        "feature_names2": list(model.feature_names2_),
        "shared_features": {"domain1": f1, "domain2": f2},
        "n_known_pairs": int(getattr(model, "n_known_pairs_", 0)),
        "transport": _jsonable(getattr(model, "transport_", None)),
        "n_steps_trained": int(getattr(model, "n_steps_trained_", 0)),
        "history": history_summary(getattr(model, "history_", None)),
        "metrics": _metrics_record(metrics),
        "obsm_keys": list(obsm_keys),
    }


# --------------------------------------------------------------------------- public tools


def translate(
    model: MAGAN | Ensemble,
    adata: AnnData,
    *,
    domain: int = 1,
    layer: str | None = None,
    metrics: Mapping[str, Any] | None = None,
    key_added: str | None = None,
    copy: bool = False,
    level: float = 0.9,
) -> AnnData | None:
    """Write what a fitted MAGAN predicts for these cells in the other domain.

    The other panel's markers are what the user came for, so they land next to the cells they
    describe. ``adata`` holds cells of ``domain`` (1 or 2) with the features the model was
    trained on (matched by name when both have names, else by position; ``layer`` instead of
    ``.X`` if given).

    Writes (``base = key_added or "magan"``, ``other`` = ``domain2`` for domain-1 cells and
    ``domain1`` for domain-2 cells):

    ``.obsm["X_<base>_<other>"]``
        ndarray (n_obs, d_other), float32: all features of the other domain, in its units and
        in the order of ``.uns[base]["feature_names<other>"]``.
    ``.obsm["<base>_imputed_<other>"]``
        DataFrame (n_obs, n_unshared), columns named: the other domain's features that are not
        shared with this one (omitted when every feature is shared).
    ``.uns[base]``
        dict: ``magan_version``, ``domain`` (of these cells), ``params`` (hyperparameters,
        JSON-able), ``feature_names1``, ``feature_names2``, ``shared_features`` ({"domain1":
        [...], "domain2": [...]}, pairwise), ``n_known_pairs``, ``n_steps_trained``,
        ``history`` (``steps``, ``terms`` {term: per-step array}, ``final`` and ``tail_mean``
        {term: value}), ``metrics`` (what was passed) and ``obsm_keys`` (the keys above).

    With a :class:`magan.uncertainty.Ensemble` as ``model``: the translations are the members'
    mean, ``.obsm["<base>_imputed_<other>_lower"]`` / ``"_upper"`` hold the ``level`` interval
    of each imputed feature (same columns), and ``.uns[base]["ensemble"]`` records
    ``n_members`` and ``level`` (``params`` etc. are member 0's).

    Returns None, or the modified copy if ``copy=True``.
    """
    from magan.uncertainty import Ensemble

    ensemble = model if isinstance(model, Ensemble) else None
    if ensemble is not None:
        ensemble._check_fitted()
        model = ensemble.members_[0]
    model = check_model(model)
    domain = _check_domain(domain)
    _check_anndata(adata)
    if copy:
        adata = adata.copy()
    frame, bounds = _predictions(model, ensemble, adata, domain, layer, level)
    keys = _store_obsm(adata, model, frame, bounds, domain, key_added)
    record = uns_record(model, domain=domain, metrics=metrics, obsm_keys=keys)
    if ensemble is not None:
        record["ensemble"] = {"n_members": len(ensemble.members_), "level": float(level)}
    adata.uns[key_added or "magan"] = record
    return adata if copy else None


def _predictions(model: MAGAN, ensemble: Ensemble | None, adata: AnnData, domain: int,
                 layer: str | None,
                 level: float) -> tuple[pd.DataFrame, dict[str, pd.DataFrame] | None]:
    """The other domain's features for these cells, and with an ensemble the interval bounds
    as frames of the same shape, so that one writer stores a model's and an ensemble's alike."""
    if ensemble is None:
        return model.impute(adata, domain=domain, features=None, layer=layer), None
    iv = ensemble.interval(adata, domain=domain, level=level, layer=layer)
    names = model.output_features(domain, None)
    frame = pd.DataFrame(iv.mean, columns=names, index=adata.obs_names.copy())
    bounds = {"lower": pd.DataFrame(iv.lower, columns=names, index=frame.index),
              "upper": pd.DataFrame(iv.upper, columns=names, index=frame.index)}
    return frame, bounds


def _store_obsm(adata: AnnData, model: MAGAN, frame: pd.DataFrame,
                bounds: dict[str, pd.DataFrame] | None, domain: int,
                key_added: str | None) -> list[str]:
    """Writing and deleting ``translate``'s ``.obsm`` keys in one place keeps exactly this
    result's keys there; returns them, for ``.uns``."""
    other = 3 - domain
    shared_other = {p[other - 1] for p in model.shared_features_}
    unshared = [c for c in frame.columns if c not in shared_other]

    key_x = translated_key(domain, key_added)
    adata.obsm[key_x] = frame.to_numpy(dtype=np.float32)
    keys = [key_x]
    key_imp = imputed_key(domain, key_added)
    if unshared:
        imputed = frame[unshared].astype(np.float32)
        imputed.index = adata.obs_names.copy()
        adata.obsm[key_imp] = imputed
        keys.append(key_imp)
    for side in ("lower", "upper"):  # interval bounds (an Ensemble); else stale: removed
        key = f"{key_imp}_{side}"
        if bounds is not None and unshared:
            adata.obsm[key] = bounds[side][unshared].astype(np.float32)
            keys.append(key)
        elif key in adata.obsm:
            del adata.obsm[key]
    if not unshared and key_imp in adata.obsm:  # a stale result of an earlier model would mislead
        del adata.obsm[key_imp]
    return keys


def align(
    adata1: AnnData,
    adata2: AnnData,
    *,
    shared_features: Any = "auto",
    known_pairs: Any = None,
    layer1: str | None = None,
    layer2: str | None = None,
    metrics: Mapping[str, Any] | None = None,
    key_added: str | None = None,
    **magan_params: Any,
) -> MAGAN:
    """Fit a MAGAN between two AnnData objects and write results into both; returns the model.

    The one-call path for AnnData users. ``shared_features="auto"`` pairs ``var_names`` present
    in both (or give pairs of names, e.g. ``[("CD3", "cd3")]``; ``None`` for none);
    ``known_pairs`` are (obs name or row in ``adata1``, obs name or row in ``adata2``).
    ``magan_params`` go to :class:`magan.MAGAN` (``n_steps``, ``seed``, ``preprocess1`` ...).

    Writes, in place, what :func:`translate` writes: ``adata1.obsm["X_magan_domain2"]`` (+
    ``magan_imputed_domain2``), ``adata2.obsm["X_magan_domain1"]`` (+ ``magan_imputed_domain1``)
    and ``.uns["magan"]`` in both (``key_added`` renames them).
    """
    from magan.estimator import MAGAN

    _check_anndata(adata1, "adata1")
    _check_anndata(adata2, "adata2")
    model = MAGAN(**magan_params)
    model.fit(adata1, adata2, shared_features=shared_features, known_pairs=known_pairs,
              layer1=layer1, layer2=layer2)
    translate(model, adata1, domain=1, layer=layer1, metrics=metrics, key_added=key_added)
    translate(model, adata2, domain=2, layer=layer2, metrics=metrics, key_added=key_added)
    return model


def combine(
    model: MAGAN,
    adata1: AnnData,
    adata2: AnnData,
    *,
    space: int = 2,
    layer1: str | None = None,
    layer2: str | None = None,
    obs_keys: Sequence[str] | None = None,
) -> AnnData:
    """Both domains' cells in one feature space, as a new AnnData, for joint embeddings and plots.

    With ``space=2`` (default): domain 2's features; rows are domain-1 cells translated by G12
    followed by the measured domain-2 cells. ``space=1`` is the mirror image (G21).

    Returns an AnnData with ``.X`` (n1 + n2, d_space) float32, ``var_names`` the feature names
    of that space, ``obs_names`` ``"<cell>-domain1"`` / ``"<cell>-domain2"`` (always unique),
    ``obs["domain"]`` (categorical ``"domain1"``/``"domain2"``: where the cell came from),
    ``obs["translated"]`` (bool: values predicted by the model rather than measured) and the
    ``obs`` columns named in ``obs_keys`` (default: those present in both inputs, e.g. cell
    type labels).
    """
    import anndata as ad

    model = check_model(model)
    space = _check_domain(space)
    _check_anndata(adata1, "adata1")
    _check_anndata(adata2, "adata2")
    if space == 2:
        moved_from, kept_from = adata1, adata2
        moved = model.transform(adata1, layer=layer1)
        kept = domain_matrix(model, adata2, domain=2, layer=layer2)
    else:
        moved_from, kept_from = adata2, adata1
        moved = model.inverse_transform(adata2, layer=layer2)
        kept = domain_matrix(model, adata1, domain=1, layer=layer1)
    names = model.feature_names2_ if space == 2 else model.feature_names1_
    if obs_keys is None:
        obs_keys = [k for k in adata1.obs.columns if k in adata2.obs.columns]
    missing = [k for k in obs_keys if k not in adata1.obs or k not in adata2.obs]
    if missing:
        raise DataError(f"obs_keys {missing} are not columns of both adata1.obs and adata2.obs")

    parts = []
    for cells, values, dom in ((moved_from, moved, 3 - space), (kept_from, kept, space)):
        obs = pd.DataFrame({k: cells.obs[k].to_numpy() for k in obs_keys},
                           index=[f"{c}-{_domain_label(dom)}" for c in cells.obs_names])
        obs["domain"] = _domain_label(dom)
        obs["translated"] = dom != space
        parts.append((values, obs))
    obs = pd.concat([p[1] for p in parts])
    for k in obs_keys:  # keep categories (cell types) categorical, as scanpy expects
        if isinstance(adata1.obs[k].dtype, pd.CategoricalDtype) or obs[k].dtype == object:
            obs[k] = obs[k].astype("category")
    obs["domain"] = pd.Categorical(obs["domain"], categories=["domain1", "domain2"])
    X = np.vstack([p[0] for p in parts]).astype(np.float32)
    return ad.AnnData(X=X, obs=obs, var=pd.DataFrame(index=pd.Index(names, dtype=str)))


def domain_matrix(model: MAGAN, x: Any, *, domain: int, layer: str | None = None) -> np.ndarray:
    """``x``'s measured values as (n, d) float32 in the model's feature order for ``domain``.

    Features are matched by name when both the model and ``x`` have names, else by position.
    """
    model = check_model(model)
    return model.check_input(x, domain=_check_domain(domain), layer=layer).X
