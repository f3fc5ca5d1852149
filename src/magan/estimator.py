"""``MAGAN``: the user-facing estimator (fit, transform, inverse_transform, impute, save, load).

It owns the data side — validation, feature names, preprocessing, persistence — and hands the
networks (``magan.nn``), losses (``magan.correspondence``) and loop (``magan.training``) plain
tensors. ``__init__`` only stores hyperparameters, scikit-learn style; what ``fit`` learns ends
in ``_``.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import json
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from magan import __version__
from magan.correspondence import (
    KnownPairs,
    LandmarkPairs,
    Relation,
    SharedFeatures,
    TransportPairs,
    same_value_map,
)
from magan.data import (
    HostPairSampler,
    Matrix,
    PairSampler,
    as_matrix,
    constant_features,
    drop_nonfinite_rows,
    host_matrix,
    is_out_of_core,
    iter_chunks,
    release_rows,
    resolve_known_pairs,
    resolve_shared_features,
    take_rows,
)
from magan.distributed import (
    broadcast_from_main,
    init_from_env,
    is_main_process,
    local_device,
    rank,
    shard,
    world_size,
)
from magan.errors import (
    ConfigError,
    DataError,
    DivergenceError,
    ModelFileError,
    NotFittedError,
)
from magan.io import write_dir_atomic
from magan.nn import MAGANModule, NetworkConfig, SharedSkip, apply_in_blocks
from magan.preprocessing import Standardizer, Transform, transform_from_state
from magan.training import PRECISIONS, LossWeights, Trainer, resolve_device
from magan.transport import (
    Transport,
    anchor_rank,
    choose_landmarks,
    landmark_plan,
    neighbour_spread,
)

__all__ = ["MAGAN"]

FORMAT_VERSION = 2  # 2: one ``transport`` setting; format 1's four transport_* are converted
_CONFIG = "config.json"
_WEIGHTS = "weights.pt"
_HISTORY = "history.csv"
AUTO_PASSES = 100  # n_steps="auto": passes over the larger domain's cells ...
AUTO_STEPS = (1000, 3000)  # ... clipped to this range of steps


class MAGAN:
    """Manifold-Aligning GAN (Amodio & Krishnaswamy, ICML 2018) between two domains.

    G12 maps domain 1 (x1: cells × d1 features) into domain 2, G21 the reverse; D1 and D2 tell
    real cells of each domain from translated ones. The generators minimise adversarial + cycle
    + correspondence losses; correspondence (shared features, known pairs, a relation) is what
    makes a cell land on its *matching* cell rather than anywhere on the other manifold.

    Parameters
    ----------
    correspondence
        False turns every correspondence term off: the plain GAN/CycleGAN ablation, same code.
    shared_features_weight, known_pairs_weight, relation_weight
        Weight of each correspondence term (1, as in the original code).
    shared_features_match
        ``"values"`` (the paper): shared features must be equal in the user's units.
        ``"standardized"``: equal after each domain's own centring/scaling, for batch effects
        that shift the shared markers themselves.
    start_from_identity
        With shared features, each generator adds its shared inputs to its output (the same
        value, as ``shared_features_match`` defines it) and its last layer starts at zero, so
        training starts from "doing nothing" and learns only the departure from it
        (:class:`~magan.nn.Generator`). Why: small bottleneck generators cannot carry hundreds
        of shared genes through 64 units, and lost the within-population detail that doing
        nothing keeps (docs/model.md). ``False``: plain MLP generators (the paper).
    transport
        magan's addition to the paper: soft pseudo-pairs from an optimal-transport plan,
        regressed onto like known pairs (a :class:`~magan.transport.Transport`, or a kind:
        ``"auto"``, ``"landmark"``, ``"minibatch"``, ``"none"``). ``"auto"``: with shared
        features, each step's minibatch plan on them; otherwise a plan computed once between
        up to 2,000 landmark cells per domain from each domain's kNN-graph geometry
        (Gromov–Wasserstein, anchored by the known pairs). What it resolved to, and why, is
        in ``transport_``; the rule and its measurements are in :mod:`magan.transport` and
        docs/model.md.
    adversarial_weight
        Weight of the adversarial terms. ``"auto"`` (default): 1, as in the original code,
        except with a landmark plan, 0: the plan's pseudo-pairs then say where every
        landmark goes, and the adversarial game, which only matches distributions, pulled
        the generators off their plan (PBMC RNA vs ATAC: translations collapsed to 0.1% of
        the real cells' variance, label transfer 0.24 against the plan's 0.88; docs/model.md).
        The weight used is in ``adversarial_weight_``.
    cycle_weight
        Weight of the cycle terms (1, as in the original code).
    manifold_augmentation
        Discriminators also score cycle reconstructions as real (the paper's augmentation).
    generator_widths, discriminator_widths, activation
        Hidden layer widths. The original code's (G 200-100-50, D 800-400-200-100-50) are in
        :meth:`paper`; the default (G 128-64, D 256-128, ReLU) is our measurement: on the
        bundled CyTOF batches (``research/compare_widths.py``, 2 seeds, 3,000 steps) it
        reached CD8 label transfer 0.94-0.95 and imputed-marker r 0.74-0.77, against 0.74 and
        0.12-0.21 with the original widths, whose large discriminators overpower the
        generators at this training length, and costs about a third of the time per step.
    n_steps, batch_size
        Training steps (one generator + one discriminator update each) and cells per domain per
        step. ``"auto"`` (default): about ``AUTO_PASSES`` (100) passes over the larger domain's
        cells, at least 1,000 and at most 3,000 steps (``AUTO_STEPS``; 3,000 was the fixed
        default before). Why: a fixed count meant 3,000 steps, ~400 passes, for two 1,000-cell
        FCS files; they align as well after 1,000 (docs/model.md), in a third of the time.
        The steps used are in ``n_steps_``. The original code used batch 100 for ~100,000.
    generator_lr, discriminator_lr, adam_betas
        Adam settings (original code: 1e-3, 1e-3, (0.5, 0.99)).
    generator_ema
        Decay of an exponential moving average of the generators' weights (the update of
        torch's ``AveragedModel`` EMA, without its per-step GPU sync), which becomes the
        fitted model; ``None`` keeps the last weights (as
        the paper). Why: the adversarial game keeps the weights moving; their average over the
        last ~1/(1 - decay) steps is a free ensemble. Measured on the same panels task with
        transport pairs: 0.615 → 0.638 (0.99) / 0.639 (0.995).
    preprocess1, preprocess2
        Transforms applied before standardisation, inverted on output, stored with the model.
        ``"auto"`` (default): arcsinh for FCS input (cofactor 5 mass, 150 flow; scatter
        linear), nothing for other input, with a warning when values look untransformed
        (:mod:`magan.cytometry`); a :mod:`magan.preprocessing` transform (e.g. ``Arcsinh(5)``);
        or None.
    standardize
        ``True`` (or ``"features"``): centre each feature per domain and scale it to unit
        variance before training (inverted on output). The original code did not; unscaled
        cytometry intensities make the GAN unstable. ``"global"``: centre each feature and
        divide all of a domain's features by one common scale, keeping their relative spreads:
        for embeddings such as PCA components, whose low-variance tail per-feature scaling would
        blow up to the weight of the leading components (digits, 50 PCs: every translated
        image called the same digit with ``True``). ``False``: the user's units as given.
    device
        ``"auto"`` (CUDA if present, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    precision
        ``"float32"`` (default) or ``"bfloat16"``: mixed precision, training's forward passes
        and losses under ``torch.autocast`` in bfloat16 while weights, gradients, optimizer
        state, transport plans and ``transform`` stay float32 (bfloat16 keeps float32's
        range, so no loss scaling). Meant for GPUs with bfloat16 tensor cores (A100, H100;
        not yet measured there); on a CPU the gain depends on its bfloat16 support (this
        project's 2-core AMD EPYC: 21 vs 23 ms per step, BENCHMARKS.md). Training only:
        ``transform`` runs in float32.
    seed
        Seeds weight initialisation and minibatch sampling: same data, seed and device give the
        same model.
    progress
        Show a tqdm progress bar with the current losses.
    log_every
        Steps between host copies of the losses (progress bar, divergence check).
    """

    def __init__(
        self,
        *,
        correspondence: bool = True,
        shared_features_weight: float = 1.0,
        known_pairs_weight: float = 1.0,
        relation_weight: float = 1.0,
        shared_features_match: str = "values",
        start_from_identity: bool = True,
        transport: Transport | str = "auto",
        adversarial_weight: float | str = "auto",
        cycle_weight: float = 1.0,
        manifold_augmentation: bool = True,
        generator_widths: Sequence[int] = (128, 64),
        discriminator_widths: Sequence[int] = (256, 128),
        activation: str = "relu",
        n_steps: int | str = "auto",
        batch_size: int = 128,
        generator_lr: float = 1e-3,
        discriminator_lr: float = 1e-3,
        adam_betas: tuple[float, float] = (0.5, 0.99),
        generator_ema: float | None = 0.995,
        preprocess1: Transform | str | None = "auto",
        preprocess2: Transform | str | None = "auto",
        standardize: bool | str = "global",
        device: str = "auto",
        precision: str = "float32",
        seed: int = 0,
        progress: bool = True,
        log_every: int = 50,
    ) -> None:
        self.correspondence = correspondence
        self.shared_features_weight = shared_features_weight
        self.known_pairs_weight = known_pairs_weight
        self.relation_weight = relation_weight
        self.shared_features_match = shared_features_match
        self.start_from_identity = start_from_identity
        self.transport = transport
        self.adversarial_weight = adversarial_weight
        self.cycle_weight = cycle_weight
        self.manifold_augmentation = manifold_augmentation
        self.generator_widths = generator_widths
        self.discriminator_widths = discriminator_widths
        self.activation = activation
        self.n_steps = n_steps
        self.batch_size = batch_size
        self.generator_lr = generator_lr
        self.discriminator_lr = discriminator_lr
        self.adam_betas = adam_betas
        self.generator_ema = generator_ema
        self.preprocess1 = preprocess1
        self.preprocess2 = preprocess2
        self.standardize = standardize
        self.device = device
        self.precision = precision
        self.seed = seed
        self.progress = progress
        self.log_every = log_every

    # ---- presets -----------------------------------------------------------------------
    @classmethod
    def paper(cls, **overrides: Any) -> MAGAN:
        """The published recipe as in the original code: its widths, batch 100, ~100,000 steps,
        no input scaling (pass ``n_steps`` to shorten it)."""
        params = {"generator_widths": (200, 100, 50),
                  "discriminator_widths": (800, 400, 200, 100, 50),
                  "batch_size": 100, "n_steps": 100_000, "standardize": False,
                  "transport": "none", "generator_ema": None,
                  "start_from_identity": False}
        return cls(**{**params, **overrides})

    @classmethod
    def plain_gan(cls, **overrides: Any) -> MAGAN:
        """The ablation: same networks and training, no correspondence (a CycleGAN)."""
        return cls(**{"correspondence": False, **overrides})

    # ---- sklearn-style parameter access -------------------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> MAGAN:
        for key, value in params.items():
            if key not in self._param_names():
                raise ConfigError(f"MAGAN has no parameter {key!r}")
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        signature = inspect.signature(type(self).__init__)
        defaults = {k: v.default for k, v in signature.parameters.items()}
        changed = [f"{k}={v!r}" for k, v in self.get_params().items() if defaults.get(k) != v]
        return f"MAGAN({', '.join(changed)})"

    def _check_params(self) -> None:
        def positive_int(name: str) -> None:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ConfigError(f"The {name!r} parameter of MAGAN must be an int >= 1. "
                                  f"Got {value!r} instead.")

        for name in ("batch_size", "log_every") + (() if self.n_steps == "auto" else ("n_steps",)):
            positive_int(name)
        weights = ("shared_features_weight", "known_pairs_weight", "relation_weight",
                   "cycle_weight") + (() if self.adversarial_weight == "auto"
                                      else ("adversarial_weight",))
        for name in weights:
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not np.isfinite(value) or value < 0:
                raise ConfigError(f"The {name!r} parameter of MAGAN must be a finite number "
                                  f">= 0. Got {value!r} instead.")
        for name in ("generator_lr", "discriminator_lr"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not value > 0 or not np.isfinite(value):
                raise ConfigError(f"The {name!r} parameter of MAGAN must be > 0. "
                                  f"Got {value!r} instead.")
        for name in ("generator_widths", "discriminator_widths"):
            widths = getattr(self, name)
            if not all(isinstance(w, (int, np.integer)) and w >= 1 for w in widths):
                raise ConfigError(f"The {name!r} parameter of MAGAN must be a sequence of "
                                  f"positive ints. Got {widths!r} instead.")
        if self.standardize not in (True, False, "features", "global"):
            raise ConfigError("The 'standardize' parameter of MAGAN must be True/'features' "
                              "(each feature to unit variance), 'global' (one common scale) "
                              f"or False. Got {self.standardize!r} instead.")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"The 'precision' parameter of MAGAN must be one of {PRECISIONS}. "
                              f"Got {self.precision!r} instead.")
        if not isinstance(self.start_from_identity, (bool, np.bool_)):
            raise ConfigError("The 'start_from_identity' parameter of MAGAN must be True or "
                              f"False. Got {self.start_from_identity!r} instead.")
        if self.shared_features_match not in {"values", "standardized"}:
            raise ConfigError("The 'shared_features_match' parameter of MAGAN must be 'values' "
                              f"or 'standardized'. Got {self.shared_features_match!r} instead.")
        ema = self.generator_ema
        if ema is not None and (isinstance(ema, bool) or not isinstance(ema, (int, float))
                                or not 0 < ema < 1):
            raise ConfigError("The 'generator_ema' parameter of MAGAN must be None or a decay "
                              f"in (0, 1), e.g. 0.999. Got {ema!r} instead.")
        Transport.coerce(self.transport).check()
        if self.activation not in {"relu", "leaky_relu", "elu"}:
            raise ConfigError("The 'activation' parameter of MAGAN must be 'relu', 'leaky_relu' "
                              f"or 'elu'. Got {self.activation!r} instead.")
        for name in ("preprocess1", "preprocess2"):
            value = getattr(self, name)
            if value is not None and value != "auto" and not isinstance(value, Transform):
                raise ConfigError(f"The {name!r} parameter of MAGAN must be 'auto', a "
                                  f"magan.preprocessing.Transform or None. Got {value!r}.")

    # ---- fitting -----------------------------------------------------------------------
    def fit(
        self,
        x1: Any,
        x2: Any,
        *,
        shared_features: Any = None,
        known_pairs: Any = None,
        relation: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        layer1: str | None = None,
        layer2: str | None = None,
        checkpoint_dir: str | os.PathLike | None = None,
        checkpoint_every: int = 1000,
        resume: bool = False,
        drop_nonfinite: bool = False,
        in_memory: bool | None = None,
        diagnose: bool | str = True,
        channels: str | Sequence[str] = "auto",
    ) -> MAGAN:
        """Train on domain 1 (``x1``) and domain 2 (``x2``); returns ``self``.

        x1, x2
            ndarray, DataFrame or AnnData (``.X``, or ``layer1``/``layer2``), cells × features.
        shared_features
            ``"auto"`` (features with identical names) or a list of pairs ``(f1, f2)``, each a
            name or a column index, e.g. ``[("CD3", "CD3"), (4, 7)]``.
        known_pairs
            Pairs ``(i, j)``: row i of x1 is the same cell/state as row j of x2 (indices, or
            cell names for DataFrame/AnnData input).
        relation
            Differentiable ``fn(x1, g12_x1) -> scalar loss`` on minibatches in the user's units,
            e.g. ``magan.correspondence.correlated(0, 3, sign=-1)``.
        checkpoint_dir, checkpoint_every, resume
            Write a resumable checkpoint every ``checkpoint_every`` steps; with ``resume=True``
            continue from the one in ``checkpoint_dir`` (same data and parameters) and reach the
            same weights as an uninterrupted run.
        drop_nonfinite
            Drop cells (rows) holding NaN/inf instead of refusing them, with a warning saying
            how many; known pairs naming a dropped cell are dropped too. Off by default:
            missing values usually mean a problem upstream worth knowing about.
        in_memory
            ``None`` (default): on-disk inputs (``np.memmap``, AnnData read with
            ``backed="r"``, h5py datasets) train out-of-core, others in memory. ``False``
            forces out-of-core: preprocessing is fitted in chunks, the raw data stays where it
            is and each step reads and preprocesses only its minibatch, so memory does not
            grow with the number of cells. Out-of-core runs are reproducible from the seed but
            draw different minibatches than in-memory ones (indices come from a CPU generator).
            A ``preprocess1``/``preprocess2`` whose ``fit`` depends on the data (e.g.
            ``NormalizeTotal()`` without ``target_sum``) is fitted on a seeded subsample of
            at most 131,072 cells.
        diagnose
            ``True`` (default): after training, judge the alignment without ground truth
            (:mod:`magan.diagnostics`: shared-feature agreement, structure, mixing, cycle,
            against doing nothing) on at most 5,000 cells per domain, into ``diagnostics_``
            (a :class:`~magan.diagnostics.Diagnostics`: ``verdict`` "good", "check" or
            "failed", and its ``reasons``). ``"holdout"`` also fits a copy without a quarter
            of the known pairs (at least 4) and scores them (one more fit; this model still
            trains on all pairs). ``False``: ``diagnostics_`` is None.
        channels
            Which features are aligned (:func:`magan.cytometry.choose_channels`): ``"auto"``
            (default) the markers and scatter of an FCS file read by :func:`magan.io.read`
            (not Time, beads, DNA, barcodes...: ``.var["role"]``), every feature of other
            input; ``"all"``; or a list of names. Recorded in ``channels_``.
        """
        self._check_params()
        if diagnose not in (True, False, "holdout"):
            raise ConfigError("The 'diagnose' parameter of fit must be True, False or "
                              f"'holdout'. Got {diagnose!r} instead.")
        every = checkpoint_every
        if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 1:
            raise ConfigError("The 'checkpoint_every' parameter of fit must be an int >= 1. "
                              f"Got {checkpoint_every!r} instead.")
        if resume and checkpoint_dir is None:
            raise ConfigError("resume=True needs checkpoint_dir (where the interrupted run "
                              "wrote its checkpoints)")
        x1, x2, pre1, pre2 = self._choose_channels(x1, x2, channels)
        ooc = (in_memory is False or (in_memory is None and (
            is_out_of_core(x1, layer1) or is_out_of_core(x2, layer2))))
        if ooc and drop_nonfinite:
            raise ConfigError("drop_nonfinite=True needs the data in memory (in_memory=True)")
        if ooc:  # no copies: validated shape/dtype now, values chunk by chunk below
            m1, m2 = (host_matrix(x, name=f"x{i}", layer=layer, cell_names=known_pairs is not None)
                      if is_out_of_core(x, layer) else as_matrix(x, name=f"x{i}", layer=layer)
                      for i, x, layer in ((1, x1, layer1), (2, x2, layer2)))
        else:
            m1 = as_matrix(x1, name="x1", layer=layer1, allow_nonfinite=drop_nonfinite)
            m2 = as_matrix(x2, name="x2", layer=layer2, allow_nonfinite=drop_nonfinite)
        pairs = resolve_shared_features(shared_features, m1, m2)
        known = resolve_known_pairs(known_pairs, m1, m2)
        if drop_nonfinite:
            m1, m2, known, note = drop_nonfinite_rows(m1, m2, known)
            if note:
                warnings.warn(f"drop_nonfinite: {note}", stacklevel=2)
        for m, name in ((m1, "x1"), (m2, "x2")) if not ooc else ():  # out-of-core: see below
            constant = constant_features(m)
            if constant:
                warnings.warn(f"{name}: features {constant[:10]} are constant (zero variance); "
                              "they carry no information for the alignment (translations keep "
                              "them near their constant value)", stacklevel=2)
        if not self.correspondence and (pairs or len(known) or relation is not None):
            warnings.warn("correspondence=False: shared_features, known_pairs and relation are "
                          "ignored (plain GAN ablation)", stacklevel=2)
            pairs, known, relation = [], np.zeros((0, 2), dtype=np.int64), None
        if self.correspondence and not pairs and not len(known) and relation is None:
            warnings.warn("no shared_features, known_pairs or relation given: cells are matched "
                          "by each domain's geometry alone (a landmark Gromov-Wasserstein plan, "
                          "unless transport='none': a plain GAN), which can match a symmetric "
                          "shape mirrored; a few known pairs fix that", stacklevel=2)

        init_from_env(self.device)  # joins torchrun's process group when launched by it
        device = local_device(resolve_device(self.device))
        self.device_ = device
        self.feature_names1_ = m1.feature_names or [str(i) for i in range(m1.X.shape[1])]
        self.feature_names2_ = m2.feature_names or [str(j) for j in range(m2.X.shape[1])]
        self.has_names1_ = m1.feature_names is not None
        self.has_names2_ = m2.feature_names is not None
        self.shared_features_ = [(self.feature_names1_[i], self.feature_names2_[j])
                                 for i, j in pairs]
        self.n_known_pairs_ = len(known)

        if ooc:
            self.preprocessing1_ = self._fit_preprocessing_chunked(pre1, m1.X, "x1")
            self.preprocessing2_ = self._fit_preprocessing_chunked(pre2, m2.X, "x2")
            z1, z2 = m1.X, m2.X  # raw, on the host: the sampler preprocesses each minibatch
        else:
            self.preprocessing1_ = self._fit_preprocessing(pre1, m1.X, "x1")
            self.preprocessing2_ = self._fit_preprocessing(pre2, m2.X, "x2")
            z1 = self._forward_preprocess(self.preprocessing1_, m1.X)
            z2 = self._forward_preprocess(self.preprocessing2_, m2.X)
        scaler1, scaler2 = self.preprocessing1_[-1], self.preprocessing2_[-1]
        scales = {}
        if self.standardize:
            scales = {"mean1": scaler1.mean_, "scale1": scaler1.scale_,
                      "mean2": scaler2.mean_, "scale2": scaler2.scale_}

        tied = self._informative_pairs(pairs, scaler1, scaler2)  # trained on; pairs as declared
        skips = (self._shared_skips(tied, scaler1, scaler2)
                 if self.start_from_identity and tied else (None, None))
        config = NetworkConfig(
            m1.X.shape[1], m2.X.shape[1], tuple(self.generator_widths),
            tuple(self.discriminator_widths), self.activation, *skips,
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            module = MAGANModule(config)
        module.to(device)

        terms = []
        shared_term = None
        if tied:
            shared_term = SharedFeatures(tied, match=self.shared_features_match, **scales)
            terms.append(shared_term)
        if len(known):
            terms.append(KnownPairs())
        if relation is not None:
            terms.append(Relation(relation, **scales))
        setting = Transport.coerce(self.transport).resolve(
            correspondence=self.correspondence, shared=shared_term is not None,
            known_pairs=len(known), relation=relation is not None)
        self.transport_ = setting.to_dict()  # what "auto" resolved to, and why
        self.adversarial_weight_ = (float(self.adversarial_weight)
                                    if self.adversarial_weight != "auto"
                                    else 0.0 if setting.kind == "landmark" else 1.0)
        if setting.kind == "minibatch":
            terms.append(TransportPairs(setting.epsilon, setting.cost, shared=shared_term))
        elif setting.kind == "landmark":
            terms.append(self._landmark_pairs(setting, m1.X, m2.X, known, device))
        # Distributed: every rank fits preprocessing on all cells (identical scaling), trains on
        # its own shard with its own sampling seed, and uses every known pair.
        n1, n2 = z1.shape[0], z2.shape[0]
        if world_size() > n1 or world_size() > n2:
            raise DataError(f"too few cells ({n1}, {n2}) for {world_size()} processes")
        known_rows = None
        seed = self.seed + 1 + 1000 * rank()
        if ooc:
            pre1, pre2 = self.preprocessing1_, self.preprocessing2_
            if len(known):
                known_rows = tuple(
                    torch.as_tensor(self._forward_preprocess(pre, take_rows(z, known[:, c])),
                                    device=device)
                    for pre, z, c in ((pre1, z1, 0), (pre2, z2, 1)))
            sharded = world_size() > 1
            sampler = HostPairSampler(
                z1, z2, self.batch_size, seed,
                preprocess1=lambda a: self._forward_preprocess(pre1, a),
                preprocess2=lambda a: self._forward_preprocess(pre2, a), device=device,
                rows1=shard(n1) if sharded else None, rows2=shard(n2) if sharded else None,
                pairs=known_rows)
        else:
            rows1, rows2 = shard(n1), shard(n2)
            t1 = torch.as_tensor(z1[rows1], device=device)
            t2 = torch.as_tensor(z2[rows2], device=device)
            if len(known):
                known_rows = (torch.as_tensor(z1[known[:, 0]], device=device),
                              torch.as_tensor(z2[known[:, 1]], device=device))
            sampler = PairSampler(t1, t2, self.batch_size, seed=seed, pairs=known_rows)
        self.n_steps_ = self._steps_for(z1.shape[0], z2.shape[0])
        weights = LossWeights(
            self.adversarial_weight_, self.cycle_weight,
            {"shared_features": self.shared_features_weight,
             "known_pairs": self.known_pairs_weight, "relation": self.relation_weight,
             "transport_pairs": setting.weight},
            # a plan built from the translations alone ramps in (see Transport.warmup)
            warmup={"transport_pairs": round(setting.warmup * self.n_steps_)}
            if setting.kind == "minibatch" and setting.cost == "translation" else None,
        )
        trainer = Trainer(
            module, sampler, [t.to(device) for t in terms], weights,
            manifold_augmentation=self.manifold_augmentation,
            generator_lr=self.generator_lr, discriminator_lr=self.discriminator_lr,
            adam_betas=tuple(self.adam_betas), generator_ema=self.generator_ema,
            precision=self.precision,
        )
        callback = None
        if checkpoint_dir is not None:
            from magan.checkpoint import Checkpointer

            ckpt = Checkpointer(checkpoint_dir, every=checkpoint_every,
                                fingerprint=self._fingerprint(z1, z2, pairs, known, ooc))
            if resume:
                ckpt.restore(trainer)
            callback = ckpt
        self.history_ = trainer.run(self.n_steps_, log_every=self.log_every,
                                    progress=self.progress, callback=callback)
        if not all(torch.isfinite(p).all() for p in module.parameters()):
            # The last optimizer step can overflow after the last finite loss was recorded.
            raise DivergenceError(f"training diverged: weights became non-finite by step "
                                  f"{trainer.step_count}; lower the learning rates or check the "
                                  "input scaling")
        if checkpoint_dir is not None:
            callback.save(trainer)
        trainer.use_average()  # after the checkpoint, which keeps the live weights to resume
        self.module_ = module.eval()
        self.network_config_ = config
        self.n_steps_trained_ = trainer.step_count
        self.diagnostics_ = None  # no ground truth needed; see magan.diagnostics
        self.shared_residual_ = 1.0
        if diagnose:
            self._diagnose(m1.X, m2.X, diagnose, relation, known, pairs, ooc)
        return self

    def _diagnose(self, x1: Any, x2: Any, diagnose: bool | str, relation: Any,
                  known: np.ndarray, pairs: list, ooc: bool) -> None:
        """Self-diagnosis (``diagnostics_``), and never worse than doing nothing: with shared
        features and ``start_from_identity``, while the translation loses to doing nothing
        (the ``vs_identity`` check), the learnt departure on the shared features is halved,
        then dropped (``shared_residual_`` 1, 0.5 or 0; 0 = the shared features as measured,
        the unshared ones still translated). Chosen by the diagnostics alone, never by ground
        truth; rank 0 decides for every rank."""
        from magan import diagnostics

        factor = 1.0
        if is_main_process():
            try:  # a judgement on the fit must never cost the fit itself
                found = diagnostics.diagnose_fitted(self, x1, x2,
                                                    has_relation=relation is not None)
                first = found["vs_identity"]
                if self.start_from_identity and pairs:
                    for factor in (1.0, 0.5, 0.0):
                        self._scale_shared_residual(factor)
                        if factor < 1.0:
                            found = diagnostics.diagnose_fitted(
                                self, x1, x2, has_relation=relation is not None)
                        if found["vs_identity"].status == "pass":
                            break
                    found = found.with_checks(diagnostics.residual_check(factor, first))
                if diagnose == "holdout" and world_size() == 1:  # the copy trains on 1 process
                    held = diagnostics.holdout_known_pairs(
                        self, x1, x2, known_pairs=known if len(known) else None,
                        shared_features=pairs or None, relation=relation, in_memory=not ooc)
                    found = found.with_checks(held)
                self.diagnostics_ = found
            except Exception as exc:  # reported, and the trained model is kept
                warnings.warn(f"the self-diagnosis could not run ({type(exc).__name__}: {exc});"
                              " diagnostics_ is None", stacklevel=3)
        self._scale_shared_residual(float(broadcast_from_main(factor)))

    def _scale_shared_residual(self, factor: float) -> None:
        self.shared_residual_ = factor
        for net in (self.module_.g12, self.module_.g21):
            net.scale_shared_residual(factor)

    def _informative_pairs(self, pairs: list[tuple[int, int]], scaler1: Standardizer,
                           scaler2: Standardizer) -> list[tuple[int, int]]:
        """The shared pairs the loss and the generators' pass-through use: those with a
        feature constant in either domain are left out, with a warning. Why: a gene with no
        counts in one batch (common in sparse scRNA) has a standardiser scale of ``min_scale``
        (1e-6), so "the same value" in that domain's units is a millionfold copy: one such
        gene made G12 explode (cycle error 1,000 times the variance, an scRNA batch pair).
        ``shared_features_`` still lists every declared pair."""
        if not pairs:
            return []
        flat1 = np.asarray(scaler1.scale_) <= scaler1.min_scale
        flat2 = np.asarray(scaler2.scale_) <= scaler2.min_scale
        kept = [p for p in pairs if not (flat1[p[0]] or flat2[p[1]])]
        if len(kept) < len(pairs):
            names = [f"{self.feature_names1_[i]}/{self.feature_names2_[j]}"
                     for i, j in pairs if flat1[i] or flat2[j]]
            warnings.warn(f"{len(names)} of {len(pairs)} shared feature pairs are constant in "
                          f"one domain ({', '.join(names[:5])}{' ...' if len(names) > 5 else ''})"
                          ": they are left out of the shared-feature loss", stacklevel=3)
        return kept

    def _shared_skips(self, pairs: list[tuple[int, int]], scaler1: Standardizer,
                      scaler2: Standardizer) -> tuple[dict, dict]:
        """The generators' pass-through of the shared features (:class:`~magan.nn.SharedSkip`)
        in standardised units: the identity in the user's units (``"values"``) or after each
        domain's own scaling (``"standardized"``). A feature paired twice is passed once."""
        out = []
        for (a, sa), (b, sb) in (((0, scaler1), (1, scaler2)), ((1, scaler2), (0, scaler1))):
            seen: dict[int, int] = {}
            for p in pairs:
                seen.setdefault(int(p[b]), int(p[a]))  # output column -> its input column
            dst, src = list(seen), list(seen.values())
            scale, shift = same_value_map(src, dst, sa.mean_, sa.scale_, sb.mean_, sb.scale_,
                                          self.shared_features_match)
            out.append(SharedSkip(src, dst, scale.tolist(), shift.tolist()).to_dict())
        return out[0], out[1]

    def _fingerprint(self, z1: Any, z2: Any, pairs: list, known: np.ndarray,
                     ooc: bool = False) -> str:
        """Hash of data and parameters: a checkpoint may only resume the run that wrote it.

        Out-of-core, the data enter through their shapes, fitted scaling and first and last
        1,024 rows rather than every value (hashing 10^7 cells would cost a full read)."""
        h = hashlib.sha256()
        arrays = [z1, z2]
        if ooc:
            arrays = []
            for z, steps in ((z1, self.preprocessing1_), (z2, self.preprocessing2_)):
                n = z.shape[0]
                head = np.arange(min(n, 1024))
                tail = np.arange(max(0, n - 1024), n)
                arrays += [np.asarray(z.shape), steps[-1].mean_, steps[-1].scale_,
                           take_rows(z, head), take_rows(z, tail)]
        for arr in (*arrays, np.asarray(pairs, dtype=np.int64), known):
            h.update(np.ascontiguousarray(arr).tobytes())
        # n_steps may grow on resume; progress, device and log_every do not change the result.
        ignored = {"progress", "device", "n_steps", "log_every"}
        params = {k: v for k, v in self._params_json().items() if k not in ignored}
        if params.get("precision") == "float32":  # as before the option existed: old
            del params["precision"]  # float32 checkpoints still resume
        h.update(json.dumps(params, sort_keys=True).encode())
        return h.hexdigest()

    def _steps_for(self, n1: int, n2: int) -> int:
        """``n_steps``, or for "auto" ~``AUTO_PASSES`` passes over the larger domain."""
        if self.n_steps != "auto":
            return int(self.n_steps)
        lo, hi = AUTO_STEPS
        return int(np.clip(np.ceil(AUTO_PASSES * max(n1, n2) / self.batch_size), lo, hi))

    def _choose_channels(self, x1: Any, x2: Any, channels: Any) -> tuple[Any, Any, Any, Any]:
        """The aligned channels of each domain and their transforms (:mod:`magan.cytometry`),
        into ``channels_`` and ``input_transforms_``."""
        from magan.cytometry import choose_both, input_transform

        x1, x2, self.channels_ = choose_both(x1, x2, channels)
        pre1, why1 = input_transform(self.preprocess1, x1, name="x1")
        pre2, why2 = input_transform(self.preprocess2, x2, name="x2")
        self.input_transforms_ = [why1, why2]
        return x1, x2, pre1, pre2

    def _fit_preprocessing(
        self, user: Transform | None, X: np.ndarray, name: str
    ) -> list[Transform]:
        steps: list[Transform] = []
        Z = X
        if user is not None:
            step = copy.deepcopy(user)
            Z = step.fit_transform(X)
            if not np.isfinite(Z).all():
                raise DataError(f"{name}: preprocessing {type(user).__name__} produced NaN/inf "
                                "(e.g. log of negative values)")
            steps.append(step)
        steps.append(self._scaler(Z.shape[1]).fit(Z))
        return steps

    def _landmark_pairs(self, setting: Transport, x1: Any, x2: Any, known: np.ndarray,
                        device: torch.device) -> LandmarkPairs:
        """The landmark plan's pseudo-pairs (:mod:`magan.transport`): seeded landmarks
        (holding the known pairs' cells), their geometry in the user's units after any
        preprocessing, their targets in the standardised units training uses. Recorded in
        ``transport_`` (landmarks, GW rounds, seconds)."""
        import time

        start = time.perf_counter()
        rows = [choose_landmarks(x.shape[0], setting.landmarks, known[:, c], self.seed + c)
                for c, x in enumerate((x1, x2))]
        raw = [take_rows(x, r) for x, r in zip((x1, x2), rows)]
        steps = (self.preprocessing1_, self.preprocessing2_)
        geometry = [self._forward_preprocess(pre[:-1], a) for pre, a in zip(steps, raw)]
        inputs = [torch.as_tensor(self._forward_preprocess(pre[-1:], g), device=device)
                  for pre, g in zip(steps, geometry)]  # then the model's own scaling
        anchors = tuple(np.searchsorted(r, known[:, c]) for c, r in enumerate(rows))
        plan, rounds = landmark_plan(*geometry, setting, anchors=anchors, device=device)
        spreads = [neighbour_spread(t) for t in inputs]
        rank = anchor_rank(plan, anchors)
        self.transport_.update({"landmarks": [len(rows[0]), len(rows[1])], "rounds": rounds,
                                "anchor_rank": None if rank is None else round(rank, 4),
                                "seconds": round(time.perf_counter() - start, 2)})
        return LandmarkPairs(inputs[0], inputs[1], plan, *spreads, self.batch_size, self.seed)

    def _scaler(self, d: int) -> Standardizer:
        """The model's own last preprocessing step, as ``standardize`` asks."""
        if not self.standardize:
            return _Identity(d)
        return Standardizer(per_feature=self.standardize != "global")

    def _fit_preprocessing_chunked(
        self, user: Transform | None, X: Any, name: str, chunk: int = 1 << 16
    ) -> list[Transform]:
        """``_fit_preprocessing`` for on-disk data: one pass over chunks, O(chunk) memory.

        The standardizer's mean and variance are merged chunk by chunk in float64 (Chan et
        al.'s parallel update), so they match a full-array fit to rounding; the pass also
        checks every value is finite and warns about constant features."""
        steps: list[Transform] = []
        n, d = X.shape
        if user is not None:
            step = copy.deepcopy(user)
            rng = np.random.default_rng(self.seed)
            rows = np.arange(n) if n <= 131_072 else np.sort(
                rng.choice(n, 131_072, replace=False))
            step.fit(take_rows(X, rows))
            steps.append(step)
        count, mean, m2 = 0, np.zeros(d), np.zeros(d)
        for start, block in iter_chunks(X, chunk):
            Z = steps[0].transform(block) if steps else block
            bad = ~np.isfinite(Z)
            if bad.any():
                rows = (start + np.flatnonzero(bad.any(axis=1))[:5]).tolist()
                what = (f"preprocessing {type(user).__name__} produced NaN/inf"
                        if steps and np.isfinite(block).all() else "NaN/inf values")
                raise DataError(f"{name}: {what} in rows {rows} (out-of-core input is "
                                "checked chunk by chunk; clean the file first)")
            Z = np.asarray(Z, dtype=np.float64)
            k = len(Z)
            bmean = Z.mean(axis=0)
            bm2 = ((Z - bmean) ** 2).sum(axis=0)
            delta = bmean - mean
            total = count + k
            mean = mean + delta * (k / total)
            m2 = m2 + bm2 + delta ** 2 * (count * k / total)
            count = total
        std = np.sqrt(m2 / count)
        constant = np.flatnonzero(std == 0)
        if len(constant):
            warnings.warn(f"{name}: features {constant[:10].tolist()} are constant (zero "
                          "variance); they carry no information for the alignment",
                          stacklevel=3)
        steps.append(self._scaler(d).set_moments(mean, std))
        return steps

    @staticmethod
    def _forward_preprocess(steps: list[Transform], X: np.ndarray) -> np.ndarray:
        for step in steps:
            X = step.transform(X)
        return np.asarray(X, dtype=np.float32)

    @staticmethod
    def _inverse_preprocess(steps: list[Transform], X: np.ndarray) -> np.ndarray:
        for step in reversed(steps):
            X = step.inverse_transform(X)
        return np.asarray(X, dtype=np.float32)

    # ---- using a fitted model -----------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "module_"):
            raise NotFittedError("This MAGAN is not fitted yet; call fit(x1, x2, ...) or "
                                 "MAGAN.load(path) first.")

    def embed(self, x: Any, *, domain: int = 2, layer: str | None = None) -> np.ndarray:
        """Cells of ``domain`` (its measured features) in the space the networks work in:
        transformed and standardised. Why: distances there are what the model aligned, so it
        is the space for neighbours, clustering and UMAP of translated and measured cells."""
        m = self.check_input(x, domain=domain, layer=layer)
        steps = self.preprocessing1_ if domain == 1 else self.preprocessing2_
        return self._forward_preprocess(steps, m.X)

    def check_input(self, x: Any, *, domain: int = 1, layer: str | None = None,
                    allow_nonfinite: bool = False) -> Matrix:
        """Validate cells of ``domain`` for this fitted model and put their features in its order.

        Features are matched by name when both the model and ``x`` have names (so a panel
        with its columns in another order works), else by position. Raises DataError naming
        missing features or a wrong feature count; NaN/inf too unless ``allow_nonfinite``.
        """
        self._check_fitted()
        if domain not in (1, 2):
            raise ConfigError(f"domain must be 1 or 2, got {domain!r}")
        names = self.feature_names1_ if domain == 1 else self.feature_names2_
        has_names = self.has_names1_ if domain == 1 else self.has_names2_
        if is_out_of_core(x, layer):  # shape and names only; values are checked as translated
            m = host_matrix(x, name=f"x{domain}", layer=layer, cell_names=True)
        else:
            m = as_matrix(x, name=f"x{domain}", layer=layer, min_rows=1,
                          allow_nonfinite=allow_nonfinite)
        if m.feature_names is not None and has_names and m.feature_names != names:
            missing = [f for f in names if f not in m.feature_names]
            if missing:
                raise DataError(f"x{domain} lacks features the model was trained on: "
                                f"{missing[:5]}{' ...' if len(missing) > 5 else ''}")
            order = [m.feature_names.index(f) for f in names]
            m = Matrix(m.X[:, order], names, m.cell_names)
        if m.X.shape[1] != len(names):
            raise DataError(f"x{domain} has {m.X.shape[1]} features, but this MAGAN was "
                            f"trained with {len(names)} in domain {domain}")
        return m

    def _translate(self, X: Any, src: int, chunk: int = 65536,
                   out: np.ndarray | None = None) -> np.ndarray:
        """Preprocess, translate and un-preprocess ``chunk`` rows at a time into ``out`` (a
        preallocated (n, d_out) float32 array, e.g. an ``np.memmap``; allocated if None), so
        memory beyond ``out`` is O(chunk) and ``X`` may live on disk."""
        pre_in = self.preprocessing1_ if src == 1 else self.preprocessing2_
        pre_out = self.preprocessing2_ if src == 1 else self.preprocessing1_
        net = self.module_.g12 if src == 1 else self.module_.g21
        n, d_out = X.shape[0], len(pre_out[-1].mean_)
        if out is None:
            out = np.empty((n, d_out), dtype=np.float32)
        elif out.shape != (n, d_out):
            raise DataError(f"out has shape {out.shape}; expected ({n}, {d_out})")
        device = next(net.parameters()).device
        rows = 8192 if device.type == "cpu" else chunk  # a GPU wants the whole chunk at once
        n_bad, first_bad = 0, []
        with torch.inference_mode():
            for start, block in iter_chunks(X, chunk):
                Z = self._forward_preprocess(pre_in, block)
                Y = apply_in_blocks(net, torch.as_tensor(Z, device=device), rows)
                Y = Y.float().cpu().numpy()
                with np.errstate(over="ignore", invalid="ignore"):
                    Y = self._inverse_preprocess(pre_out, Y)
                bad = ~np.isfinite(Y).all(axis=1)
                if bad.any():
                    n_bad += int(bad.sum())
                    first_bad += (start + np.flatnonzero(bad)[:5 - len(first_bad)]).tolist()
                out[start:start + len(Y)] = Y
                if getattr(out, "mode", None) in ("r+", "w+"):  # shared map: data is in the
                    release_rows(out, start, start + len(Y))  # page cache; unmap from RSS
        if n_bad:  # never hand NaN/inf on to an output file
            raise DataError(f"x{src}: the translation of {n_bad} cells "
                            f"(first rows {first_bad[:5]}) is not "
                            "finite; these inputs lie far outside the range the model was "
                            "trained on")
        return out

    def transform(self, x1: Any, *, layer: str | None = None,
                  out: np.ndarray | None = None) -> np.ndarray:
        """Translate domain-1 cells into domain 2 (G12): (n1, d1) → (n1, d2), in x2's units.

        Works in chunks; ``x1`` may be on disk (memmap, backed AnnData) and ``out`` a
        preallocated (n1, d2) float32 array or memmap to write into (returned)."""
        self._check_fitted()
        return self._translate(self.check_input(x1, domain=1, layer=layer).X, 1, out=out)

    def inverse_transform(self, x2: Any, *, layer: str | None = None,
                          out: np.ndarray | None = None) -> np.ndarray:
        """Translate domain-2 cells into domain 1 (G21): (n2, d2) → (n2, d1), in x1's units;
        chunked like :meth:`transform`."""
        self._check_fitted()
        return self._translate(self.check_input(x2, domain=2, layer=layer).X, 2, out=out)

    def impute(
        self, x: Any, *, domain: int = 1, features: Sequence[str] | str | None = "unshared",
        layer: str | None = None,
    ) -> pd.DataFrame:
        """The other domain's features for cells of ``domain``, as a named DataFrame.

        ``features="unshared"`` (default) keeps the features not measured in ``x``'s domain
        (e.g. the other panel's markers), ``None`` all of them, or a list of names.
        """
        self._check_fitted()
        if domain not in (1, 2):
            raise ConfigError(f"domain must be 1 or 2, got {domain!r}")
        columns = self.output_features(domain, features)  # bad names fail before the work
        m = self.check_input(x, domain=domain, layer=layer)
        values = self._translate(m.X, domain)
        names = self.feature_names2_ if domain == 1 else self.feature_names1_
        return pd.DataFrame(values, columns=names, index=m.cell_names)[columns]

    def output_features(self, domain: int, features: Sequence[str] | str | None = "unshared"
                        ) -> list[str]:
        """Names of the features that translating cells of ``domain`` yields, as selected by
        :meth:`impute`'s ``features`` (``"unshared"``, ``None`` for all, or names)."""
        self._check_fitted()
        names = self.feature_names2_ if domain == 1 else self.feature_names1_
        if features is None:
            return list(names)
        if isinstance(features, str) and features == "unshared":
            shared = {p[1] if domain == 1 else p[0] for p in self.shared_features_}
            return [n for n in names if n not in shared]
        if isinstance(features, str):
            features = [features]
        unknown = [f for f in features if f not in names]
        if unknown:
            raise DataError(f"unknown features {unknown}; domain {3 - domain} has {names[:8]} ...")
        return list(features)

    # ---- persistence -------------------------------------------------------------------
    def _params_json(self) -> dict[str, Any]:
        params = self.get_params()
        for name in ("preprocess1", "preprocess2"):  # a fitted one is stored as state
            params[name] = "auto" if params[name] == "auto" else None
        params["generator_widths"] = list(params["generator_widths"])
        params["discriminator_widths"] = list(params["discriminator_widths"])
        params["adam_betas"] = list(params["adam_betas"])
        params["transport"] = Transport.coerce(params["transport"]).to_dict()
        return params

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write the model to directory ``path``: config.json, weights.pt, history.csv.

        Written into a temporary sibling directory first and renamed into place, so a crash never
        leaves a half-written model. Refuses an existing ``path`` unless ``overwrite``.
        """
        self._check_fitted()
        return write_dir_atomic(path, self._write_files, overwrite=overwrite)

    def _write_files(self, folder: Path) -> None:
        state = {k: v.detach().cpu() for k, v in self.module_.state_dict().items()}
        torch.save(state, folder / _WEIGHTS)
        digest = hashlib.sha256((folder / _WEIGHTS).read_bytes()).hexdigest()
        config = {
            "magan_version": __version__,
            "format_version": FORMAT_VERSION,
            "params": self._params_json(),
            "network": self.network_config_.to_dict(),
            "feature_names1": self.feature_names1_,
            "feature_names2": self.feature_names2_,
            "has_names": [self.has_names1_, self.has_names2_],
            "shared_features": self.shared_features_,
            "n_known_pairs": self.n_known_pairs_,
            "transport": self.transport_,
            "adversarial_weight": self.adversarial_weight_,
            "n_steps_trained": self.n_steps_trained_,
            "shared_residual": getattr(self, "shared_residual_", 1.0),
            "channels": getattr(self, "channels_", None),
            "input_transforms": getattr(self, "input_transforms_", None),
            "preprocessing1": [s.get_state() for s in self.preprocessing1_],
            "preprocessing2": [s.get_state() for s in self.preprocessing2_],
            "weights_sha256": digest,
            "diagnostics": (None if getattr(self, "diagnostics_", None) is None
                            else self.diagnostics_.to_dict()),
        }
        (folder / _CONFIG).write_text(json.dumps(config, indent=2))
        self.history_.to_csv(folder / _HISTORY)

    @classmethod
    def load(cls, path: str | os.PathLike, *, device: str = "auto") -> MAGAN:
        """Rebuild a saved model; never executes code from the files (weights_only loading)."""
        path = Path(path)
        if not (path / _CONFIG).is_file() or not (path / _WEIGHTS).is_file():
            raise ModelFileError(f"{path} is not a saved MAGAN model (needs {_CONFIG} and "
                                 f"{_WEIGHTS})")
        try:
            config = json.loads((path / _CONFIG).read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ModelFileError(f"{path / _CONFIG} is corrupt: {exc}") from exc
        if not isinstance(config, dict):
            raise ModelFileError(f"{path / _CONFIG} is not a MAGAN config (a JSON object)")
        if config.get("format_version") == 1:
            config = _from_format_1(config)
        if config.get("format_version") != FORMAT_VERSION:
            raise ModelFileError(f"{path} was written by magan {config.get('magan_version')} in "
                                 f"format {config.get('format_version')}; this magan "
                                 f"({__version__}) reads format {FORMAT_VERSION}")
        blob = (path / _WEIGHTS).read_bytes()
        if hashlib.sha256(blob).hexdigest() != config.get("weights_sha256"):
            raise ModelFileError(f"{path / _WEIGHTS} does not match its checksum in {_CONFIG}: "
                                 "the file was modified or truncated")
        try:
            params = config["params"]
            params.setdefault("start_from_identity", False)  # older files: plain generators
            params["transport"] = Transport.coerce(params.get("transport", "auto"))
            model = cls(**params)
            model.device = device
            net = NetworkConfig(**config["network"])
            dev = resolve_device(device)
            with torch.random.fork_rng(devices=[]):
                module = MAGANModule(net)
            try:  # weights_only: tensors and plain containers; a pickled object is refused
                state = torch.load(path / _WEIGHTS, map_location="cpu", weights_only=True)
            except Exception as exc:  # pickle.UnpicklingError, zip errors, EOFError...
                raise ModelFileError(f"{path / _WEIGHTS} is not a plain tensor file (refused "
                                     f"to unpickle it): {type(exc).__name__}: {exc}") from exc
            module.load_state_dict(state)
            model.module_ = module.to(dev).eval()
            model.device_ = dev
            model.network_config_ = net
            model.feature_names1_ = list(config["feature_names1"])
            model.feature_names2_ = list(config["feature_names2"])
            model.has_names1_, model.has_names2_ = config["has_names"]
            model.shared_features_ = [tuple(p) for p in config["shared_features"]]
            model.n_known_pairs_ = int(config["n_known_pairs"])
            model.transport_ = config.get("transport")
            model.adversarial_weight_ = float(config.get(
                "adversarial_weight", 1.0 if model.adversarial_weight == "auto"
                else model.adversarial_weight))
            model.n_steps_trained_ = int(config["n_steps_trained"])
            model.n_steps_ = model.n_steps_trained_
            model.shared_residual_ = float(config.get("shared_residual", 1.0))
            model.channels_ = config.get("channels")  # absent before channel roles existed
            model.input_transforms_ = config.get("input_transforms")
            model.diagnostics_ = None  # absent before magan diagnosed its fits
            if config.get("diagnostics") is not None:
                from magan.diagnostics import Diagnostics

                model.diagnostics_ = Diagnostics.from_dict(config["diagnostics"])
            model.preprocessing1_ = [transform_from_state(s) for s in config["preprocessing1"]]
            model.preprocessing2_ = [transform_from_state(s) for s in config["preprocessing2"]]
            for names, steps, d in ((model.feature_names1_, model.preprocessing1_,
                                     net.n_features1),
                                    (model.feature_names2_, model.preprocessing2_,
                                     net.n_features2)):
                scaler = steps[-1]
                if len(names) != d or len(scaler.mean_) != d:
                    raise ModelFileError(f"{path / _CONFIG}: feature names, scaling and "
                                         f"network disagree on the number of features ({d})")
        except ModelFileError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, IndexError,
                RuntimeError) as exc:
            raise ModelFileError(f"{path} could not be loaded: {type(exc).__name__}: "
                                 f"{exc}") from exc
        history = path / _HISTORY
        try:
            model.history_ = (pd.read_csv(history, index_col="step") if history.is_file()
                              else pd.DataFrame())
        except Exception as exc:  # the loss log only informs; still refuse a damaged folder
            raise ModelFileError(f"{history} is corrupt: {type(exc).__name__}: {exc}") from exc
        return model


class _Identity(Standardizer):
    """Standardizer with mean 0 and scale 1: the ``standardize=False`` path, same interface."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.mean_ = np.zeros(d)
        self.scale_ = np.ones(d)

    def fit(self, X: np.ndarray) -> _Identity:
        return self

    def set_moments(self, mean: np.ndarray, std: np.ndarray) -> _Identity:
        return self


def _from_format_1(config: dict[str, Any]) -> dict[str, Any]:
    """A format-1 config (four ``transport_*`` parameters, minibatch plans only) in format 2:
    the same training, written as one :class:`~magan.transport.Transport`."""
    config = dict(config)
    params = dict(config.get("params", {}))
    weight = float(params.pop("transport_pairs_weight", 2.0))
    declared = params.pop("transport_cost", "auto")
    used = config.pop("transport_cost", None)  # what its "auto" resolved to
    setting = Transport(kind="minibatch" if weight > 0 else "none", weight=weight,
                        epsilon=params.pop("transport_epsilon", 0.02),
                        cost=used or declared, warmup=params.pop("transport_warmup", 0.3))
    params["transport"] = setting.to_dict()
    config["params"] = params
    config.pop("known_partner_rank", None)
    config["transport"] = (None if used is None else
                           {**setting.to_dict(), "cost": used, "reason": "format 1"})
    config["format_version"] = 2
    return config
