"""One configuration object per run: read from YAML, overridden by ``key=value``,
validated once (unknown keys and wrong types fail at once, naming the key), and saved
resolved in the run folder.

Sections mirror the pieces they feed: ``data`` (dataset and split), ``model`` (the
``ModelSpec``), ``train`` (optimiser, schedule, loss), and top-level run settings.
"""
from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from eipnn_calc.errors import EIPNNError


class ConfigError(EIPNNError, ValueError):
    """A configuration key is unknown, has the wrong type, or an invalid value."""


@dataclass
class DataConfig:
    """Which configurations, and how they are split.

    ``path`` None means the built-in si-pbe protocol read from ``si_pbe_dir`` (None: the
    default folder, see ``si_pbe.default_si_pbe_dir``). A ``path`` is an extxyz file or an
    ASE database, split with the same fractions and seed as si-pbe; or a folder of this
    project's DFT data (``data/al-pbe``, ``data/agau-pbe``: a pool and its labelled chunks),
    split by its own protocol (``data.pbe_sets``).
    ``max_train``/``max_val``/``max_test`` keep a random n of a split (drawn with the
    split seed): for quick runs; None keeps all.
    ``extra_pool``: extxyz files (compressed or not) of configurations without DFT labels
    that join the ``unlabeled`` pool, for the strategies' EIP labels only (e.g.
    ``data/si-eip-pool/pool.extxyz.xz``: strained diamond and defects for si-pbe); the DFT
    splits do not change.
    """

    path: Optional[str] = None
    si_pbe_dir: Optional[str] = None
    split_seed: int = 1
    max_train: Optional[int] = None
    max_val: Optional[int] = None
    max_test: Optional[int] = None
    extra_pool: Optional[list] = None


@dataclass
class ModelConfig:
    """The model: ``kind`` is a key of ``models.build.REPRESENTATIONS``.

    ``species`` None takes the species present in the dataset.
    """

    kind: str = "schnet"
    species: Optional[list] = None
    cutoff_angstrom: float = 5.0
    hyperparameters: dict = field(
        default_factory=lambda: {"num_features": 128, "num_interactions": 5, "num_rbf": 128}
    )
    head_hidden: int = 128


# train.force_weight when left null and the data has DFT forces (Å²): a force-component error
# of 1 eV/Å costs as much as a total-energy error of sqrt(10) = 3.2 eV; the best validation
# energies of a 0 / 1 / 10 / 100 sweep on si-pbe (docs/training.md, "Energies and forces").
DEFAULT_FORCE_WEIGHT = 10.0


@dataclass
class TrainConfig:
    """Optimisation (METHOD.md "Baseline training"). ``force_weight`` (Å²) > 0 adds
    ``force_weight * MSE(force components)`` (eV/Å)² to the total-energy MSE (eV²) (beyond
    the paper); 0 = the paper's energy-only loss; None (the default) = energies and forces
    with ``DEFAULT_FORCE_WEIGHT`` when every train, val and test configuration has DFT
    forces, else energies only (resolved once the data is read, and saved resolved).
    ``compile``: run the training steps through ``torch.compile`` (energy-only training;
    the same function, fused kernels: ~1.4x faster SchNet steps on the CPU, after a one-off
    compile of ~20 s per process). ``committee`` > 1 (baseline and MP): train that many
    members, seeds ``seed``, ``seed + 1``, ..., together on the same batches
    (``training.train.ensemble``), exported as one committee model file whose spread the
    calculator returns (``energy_std``, ``forces_std``). ``max_atoms_per_pass``: a batch with
    more atoms runs its step in passes of at most that many (the same gradient, bounded
    memory, a second forward per pass: ``training.train.passes``); None = one pass.
    ``descriptor_cache_mb``: SOAPNet trains on its descriptor (and, with forces, the
    descriptor's Jacobian) computed once per configuration and kept in memory up to this many
    MiB (``training.train.descriptors``; the same function, 3x faster force steps); None = a
    quarter of the memory available, 0 = recompute it every step."""

    epochs: int = 100
    batch_size: int = 32
    lr: float = 1.0e-3
    lr_final: float = 1.0e-5
    schedule: str = "linear"
    loss: str = "mse"
    grad_clip: float = 5.0
    force_weight: Optional[float] = None
    dtype: str = "float32"
    eval_batch_size: int = 64
    compile: bool = False
    committee: int = 1
    max_atoms_per_pass: Optional[int] = None
    descriptor_cache_mb: Optional[float] = None


@dataclass
class PretrainConfig:
    """Multi-task pretraining on EIP energies (METHOD.md "Multi-task pretraining"), used by
    strategies ``mp`` and ``mp+la``: a K-output head on the ``unlabeled`` pool's EIP total
    energies (eV), Adam with the slanted triangular rate from ``lr / lr_ratio`` up to ``lr``
    and back. ``eips``: catalogue names or groups (``si``). ``max_unlabeled`` keeps a random
    n of the pool (quick runs). ``checkpoint_dir`` None = ``<runs_dir>/pretrained``.
    ``force_weight`` (Å²) > 0 also fits every head's forces -dE_k/dx to EIP k's forces:
    ``+ force_weight * MSE`` over the present (atom, component, EIP) entries (beyond the
    paper; 0 = energies only, the paper's pretraining)."""

    eips: list = field(default_factory=lambda: ["si"])
    epochs: int = 100
    batch_size: int = 32
    lr: float = 1.0e-3
    lr_ratio: float = 32.0
    grad_clip: float = 5.0
    max_unlabeled: Optional[int] = None
    label_workers: int = 1
    checkpoint_dir: Optional[str] = None
    force_weight: float = 0.0


@dataclass
class LAConfig:
    """Label augmentation (METHOD.md "Label augmentation"), used by strategy ``la``.

    ``eips``: catalogue names or groups (``si``); ``aligned``: classify and label with
    EIP energies aligned on ``train`` (False = raw); ``threshold_ev_per_atom``: class K
    when the closest EIP is further than this from DFT. The classifier trains
    ``classifier_epochs`` with the slanted triangular rate (``classifier_lr`` peak, /
    ``lr_ratio`` at both ends). ``alpha`` None searches ``alpha_grid`` on validation.
    ``eip_loss``: ``tukey`` or ``mse`` (ablation). ``confidence``: ``all``, ``low``,
    ``medium`` or ``high`` third of the selected. ``select_eips``: keep only configurations
    labelled by these EIPs (names, ``best`` or ``worst`` by train MAE); None keeps all.
    ``max_unlabeled`` keeps a random n of the pool (quick runs). ``classifier_dir``: where
    trained classifiers are kept for reuse (None: ``<runs_dir>/classifiers``).
    ``force_weight`` > 0 also fits the selected rows' forces to their EIP's forces under the
    same robust loss (Tukey on force components, with its own MAD scale), weighted
    ``alpha * N_train / N_added * force_weight`` (beyond the paper; 0 = energies only). Both
    Tukey terms are of residuals divided by their scales, so the weight has no unit: 1 = an
    EIP row's force components (their mean rho) count as much as its energy.
    """

    eips: list = field(default_factory=lambda: ["si"])
    aligned: bool = True
    threshold_ev_per_atom: float = 0.1
    classifier_epochs: int = 100
    classifier_lr: float = 1.0e-3
    lr_ratio: float = 32.0
    alpha: Optional[float] = None
    alpha_grid: list = field(default_factory=lambda: [0.01, 0.05, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0])
    eip_loss: str = "tukey"
    confidence: str = "all"
    select_eips: Optional[list] = None
    max_unlabeled: Optional[int] = None
    label_workers: int = 1
    classifier_dir: Optional[str] = None
    force_weight: float = 0.0


@dataclass
class ValidationConfig:
    """The property card made at the end of every run, in ``<run>/property_card/``, its
    headline numbers in results.json (``eipnn_training.validation``, docs/validation.md).
    ``quick``: coarse grids, small cells and 50 MD steps (seconds; tests); False is the full
    card (minutes). ``element`` None: every species of the model with a structure in the
    references file; others are skipped with a note."""

    enabled: bool = True
    quick: bool = False
    element: Optional[str] = None


@dataclass
class RunConfig:
    name: str = "run"
    strategy: str = "baseline"
    seed: int = 0
    device: str = "cpu"
    runs_dir: str = "runs"
    export_dtype: str = "float64"
    num_threads: Optional[int] = None
    progress: bool = True
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    la: LAConfig = field(default_factory=LAConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def run_dir(self) -> Path:
        return Path(self.runs_dir) / self.name


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", str(annotation)).replace("typing.", "")


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """``value`` checked against ``annotation`` (ints pass as floats; bools are not ints)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        inner = [a for a in options if a is not type(None)]
        return _coerce(value, inner[0], key)
    expected = origin or annotation
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is float and isinstance(value, str):
        # PyYAML reads "1e-3" (no dot) as a string: accept any float literal.
        try:
            return float(value)
        except ValueError:
            pass
    if expected is int and isinstance(value, bool):
        raise ConfigError(f"config key '{key}' must be an int, got a bool ({value!r})")
    if not isinstance(value, expected):
        raise ConfigError(
            f"config key '{key}' must be {_type_name(expected)}, got "
            f"{type(value).__name__} ({value!r})"
        )
    return value


def _build(cls: type, values: dict[str, Any], prefix: str = "") -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"config key '{prefix.rstrip('.')}' must be a mapping, got {values!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    for key in values:
        if key not in known:
            raise ConfigError(
                f"unknown config key '{prefix}{key}'; known keys here: {', '.join(sorted(known))}"
            )
    kwargs = {}
    for key, value in values.items():
        annotation = hints[key]
        if dataclasses.is_dataclass(annotation):
            kwargs[key] = _build(annotation, value, f"{prefix}{key}.")
        else:
            kwargs[key] = _coerce(value, annotation, prefix + key)
    return cls(**kwargs)


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = tree
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override '{dotted}': '{part}' is not a section")
    node[leaf] = value


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``["train.epochs=3", "data.split_seed=2"]`` -> nested dict; values parsed as YAML."""
    tree: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"override '{pair}' must look like key=value (e.g. train.epochs=3)")
        key, raw = pair.split("=", 1)
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as err:
            raise ConfigError(f"override '{pair}': the value is not valid YAML "
                              f"({_yaml_problem(err)})") from err
        _set_dotted(tree, key.strip(), value)
    return tree


def _yaml_problem(err: yaml.YAMLError) -> str:
    """What PyYAML found wrong, with the line and column (1-based) where it has them."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err)
    context = getattr(err, "context", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return where + problem + (f" ({context})" if context else "")


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and key != "hyperparameters":
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def config_from_dict(values: dict[str, Any]) -> RunConfig:
    config = _build(RunConfig, values)
    validate(config)
    return config


def load_config(path: str | os.PathLike | None, overrides: list[str] | None = None) -> RunConfig:
    """Read ``path`` (YAML), apply ``key=value`` overrides, validate."""
    values: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.exists():
            raise ConfigError(f"config file not found: '{path}'")
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"config file '{path}' is not valid YAML: {_yaml_problem(err)}") from err
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"cannot read config file '{path}': {err}") from err
        if not isinstance(values, dict):
            raise ConfigError(f"config file '{path}' must hold a YAML mapping at the top")
    return config_from_dict(_merge(values, parse_overrides(overrides or [])))


def validate(config: RunConfig) -> None:
    """Value checks that types alone cannot make."""
    t = config.train
    positive = {
        "train.epochs": t.epochs, "train.batch_size": t.batch_size, "train.lr": t.lr,
        "train.lr_final": t.lr_final, "train.grad_clip": t.grad_clip,
        "train.eval_batch_size": t.eval_batch_size,
        "model.cutoff_angstrom": config.model.cutoff_angstrom,
        "pretrain.epochs": config.pretrain.epochs, "pretrain.batch_size": config.pretrain.batch_size,
        "pretrain.lr": config.pretrain.lr, "pretrain.grad_clip": config.pretrain.grad_clip,
        "pretrain.label_workers": config.pretrain.label_workers,
    }
    for key, value in positive.items():
        if not value > 0:
            raise ConfigError(f"config key '{key}' must be > 0, got {value}")
    for key, value in (("train.force_weight", t.force_weight), ("pretrain.force_weight", config.pretrain.force_weight),
                       ("la.force_weight", config.la.force_weight)):
        if value is not None and value < 0:
            raise ConfigError(f"config key '{key}' must be >= 0, got {value}")
    if t.compile and (t.force_weight is None or t.force_weight > 0 or config.pretrain.force_weight > 0
                      or config.la.force_weight > 0):
        raise ConfigError("config key 'train.compile' needs train.force_weight 0 (and pretrain/la.force_weight "
                          "0): torch.compile cannot differentiate the forces a second time for their loss; "
                          "set train.force_weight=0 for energy-only training")
    if t.committee < 1:
        raise ConfigError(f"config key 'train.committee' must be >= 1, got {t.committee}")
    if t.committee > 1 and config.strategy not in ("baseline", "mp"):
        raise ConfigError(f"config key 'train.committee' > 1 is for the baseline and mp strategies, "
                          f"not '{config.strategy}' (its alpha search already trains an ensemble)")
    if t.committee > 1 and t.compile:
        raise ConfigError("config key 'train.committee' > 1 trains in eager mode: set train.compile=false")
    if t.max_atoms_per_pass is not None and (isinstance(t.max_atoms_per_pass, bool)
                                             or not isinstance(t.max_atoms_per_pass, int) or t.max_atoms_per_pass < 1):
        raise ConfigError(f"config key 'train.max_atoms_per_pass' must be a whole number >= 1 or null, "
                          f"got {t.max_atoms_per_pass!r}")
    if t.descriptor_cache_mb is not None and (isinstance(t.descriptor_cache_mb, bool)
                                              or not isinstance(t.descriptor_cache_mb, (int, float))
                                              or t.descriptor_cache_mb < 0):
        raise ConfigError(f"config key 'train.descriptor_cache_mb' must be a number >= 0 or null, "
                          f"got {t.descriptor_cache_mb!r}")
    if config.pretrain.lr_ratio < 1:
        raise ConfigError(f"config key 'pretrain.lr_ratio' must be >= 1, got {config.pretrain.lr_ratio}")
    if config.pretrain.max_unlabeled is not None and config.pretrain.max_unlabeled < 1:
        raise ConfigError(
            f"config key 'pretrain.max_unlabeled' must be >= 1 or null, got {config.pretrain.max_unlabeled}"
        )
    extra_pool = config.data.extra_pool
    if extra_pool is not None and not all(isinstance(p, str) and p for p in extra_pool):
        raise ConfigError(f"config key 'data.extra_pool' must be a list of file paths, got {extra_pool!r}")
    for key in ("max_train", "max_val", "max_test"):
        value = getattr(config.data, key)
        if value is not None and value < 1:
            raise ConfigError(f"config key 'data.{key}' must be >= 1 or null, got {value}")
    for key, value, allowed in (
        ("train.dtype", t.dtype, ("float32", "float64")),
        ("export_dtype", config.export_dtype, ("float32", "float64")),
    ):
        if value not in allowed:
            raise ConfigError(f"config key '{key}' must be one of {allowed}, got '{value}'")
    _validate_la(config.la)
    if not config.name or "/" in config.name:
        raise ConfigError(f"config key 'name' must be a non-empty folder name, got '{config.name}'")


LA_CONFIDENCE = ("all", "low", "medium", "high")
LA_EIP_LOSSES = ("tukey", "mse")


def _validate_la(la: LAConfig) -> None:
    for key in ("threshold_ev_per_atom", "classifier_epochs", "classifier_lr", "label_workers"):
        if not getattr(la, key) > 0:
            raise ConfigError(f"config key 'la.{key}' must be > 0, got {getattr(la, key)}")
    if la.lr_ratio < 1:
        raise ConfigError(f"config key 'la.lr_ratio' must be >= 1, got {la.lr_ratio}")
    grid = [la.alpha] if la.alpha is not None else la.alpha_grid
    if not grid or not all(isinstance(a, (int, float)) and not isinstance(a, bool) and a > 0 for a in grid):
        raise ConfigError(f"config keys 'la.alpha' / 'la.alpha_grid' need numbers > 0, got {grid}")
    for key, value, allowed in (("la.eip_loss", la.eip_loss, LA_EIP_LOSSES),
                                ("la.confidence", la.confidence, LA_CONFIDENCE)):
        if value not in allowed:
            raise ConfigError(f"config key '{key}' must be one of {allowed}, got '{value}'")
    if la.max_unlabeled is not None and la.max_unlabeled < 1:
        raise ConfigError(f"config key 'la.max_unlabeled' must be >= 1 or null, got {la.max_unlabeled}")
    if la.select_eips is not None and not la.select_eips:
        raise ConfigError("config key 'la.select_eips' must name at least one EIP, or be null for all")


def save_config(config: RunConfig, path: str | os.PathLike) -> None:
    Path(path).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
