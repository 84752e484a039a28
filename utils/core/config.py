"""Typed run configuration: defaults < YAML recipe (with ``extends:``) < ``--set section.key=value``.

Every recipe file is checked against the dataclasses on its own, so an unknown key or a wrong type
is reported with the key and the file it came from. The resolved config is saved beside each run.
"""
from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A recipe or override that does not fit the schema."""


@dataclass
class ModelConfig:
    name: str = ""
    size: str = "full"              # full | tiny (same code, smaller numbers)
    pretrained: bool = False        # backbone weights through timm's mechanism (needs internet or HF cache)
    pretrained_path: str = ""       # or a local weights file for the backbone(s)
    num_classes: int = 2
    drop_rate: float | None = None  # None: the model's default
    kwargs: dict = field(default_factory=dict)  # extra builder arguments


@dataclass
class DataConfig:
    dataset: str = "ffpp"           # ffpp | celebdf | dfdc
    root: str = ""                  # empty: $FFPP_ROOT / $CELEBDF_ROOT / $DFDC_ROOT, else the sample data
    cache: str = ""                 # face-crop cache; empty: <cache_root>/<dataset>
    cache_root: str = "data/cache"
    build_cache: bool = True        # build a missing cache on first use (else stop with the command)
    cache_compress: bool = True     # false: ~1.7x faster loading for ~2x the disk (both lossless)
    compression: str = "c23"        # FF++ quality
    methods: list[str] = field(default_factory=list)  # FF++ methods; empty = the defaults present
    val_fraction: float = 0.15      # Celeb-DF: share of training identities held out for validation
    train_chunks: list[int] = field(default_factory=list)  # DFDC chunk numbers
    val_chunks: list[int] = field(default_factory=list)
    test_chunks: list[int] = field(default_factory=list)
    frames_per_video: int = 32      # frames spread evenly over each video, stored in the face cache
    clips_per_video: int = 4        # runs of consecutive frames stored for clip models
    clip_frames: int = 8            # length of each stored run (>= every model's clip_len)
    margin: float = 0.3
    batch_size: int = 32
    eval_batch_size: int = 0        # 0: 2 x batch_size
    num_workers: int = 4
    augment: bool = True
    clahe: bool = False
    balance: str = "none"           # none | undersample (balanced draw per epoch, DDP-aware)
    max_videos_per_split: int = 0   # 0 = all (quick runs)
    frames_per_video_train: int = 0  # 0 = every cached frame


@dataclass
class OptimConfig:
    optimizer: str = "adamw"        # adamw | sgd
    lr: float = 1e-4
    weight_decay: float = 0.05
    momentum: float = 0.9
    loss: str = "ce"                # ce | weighted_ce | focal | class_mean
    label_smoothing: float = 0.0
    focal_gamma: float = 2.0
    focal_alpha: float | None = None
    grad_clip: float = 1.0          # 0 = off
    plateau_factor: float = 0.5
    plateau_patience: int = 1
    min_lr: float = 1e-7


@dataclass
class TrainerConfig:
    epochs: int = 10
    epochs_per_chunk: int = 0       # >0: walk data.train_chunks one after another (DFDC)
    max_steps_per_epoch: int = 0    # 0 = the whole epoch
    val_max_batches: int = 0        # 0 = the whole validation set
    grad_accum: int = 1
    mixed_precision: str = "no"     # no | fp16 | bf16
    seed: int = 42
    monitor: str = "val/auc"
    monitor_mode: str = "max"       # max | min
    early_stopping_patience: int = 3
    early_stopping_min_delta: float = 0.0
    checkpoint_every_steps: int = 0  # 0 = only at epoch ends
    keep_last: int = 2
    channels_last: bool = False
    compile: bool = False
    cpu: bool = False


@dataclass
class LoggingConfig:
    tensorboard: bool = True
    log_every_steps: int = 10
    progress_bar: bool = True
    image_grid: bool = True


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    # curriculum: stage number -> partial {section: {key: value}}; per-model overrides likewise
    stages: dict = field(default_factory=dict)
    models: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


SECTIONS = typing.get_type_hints(Config)
_RAW_SECTIONS = ("stages", "models")


def _section_types(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against type hint ``tp``; numbers written as strings (YAML's 1e-4) become floats."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError:
                pass
        raise ConfigError(f"{where}: expected {tp}, got {value!r}")
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (item_tp,) = typing.get_args(tp) or (Any,)
        return [_coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
    if tp is Any:
        return value
    if tp is dict or origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    raise ConfigError(f"{where}: unsupported type {tp}")  # pragma: no cover


def validate_sections(raw: dict, source: str) -> dict:
    """Check a partial ``{section: {key: value}}`` mapping; return it with values coerced."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: a recipe must be a mapping of sections, got {type(raw).__name__}")
    out: dict = {}
    for section, values in raw.items():
        if section not in SECTIONS:
            raise ConfigError(f"{source}: unknown section '{section}' (valid: {', '.join(SECTIONS)})")
        if section in _RAW_SECTIONS:
            if not isinstance(values, dict):
                raise ConfigError(f"{source}: '{section}' must be a mapping")
            out[section] = {k: validate_sections(v or {}, f"{source} [{section}.{k}]") for k, v in values.items()}
            continue
        if values is None:
            continue
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: section '{section}' must be a mapping, got {values!r}")
        hints = _section_types(SECTIONS[section])
        out[section] = {}
        for key, value in values.items():
            if key not in hints:
                raise ConfigError(f"{source}: unknown key '{section}.{key}' (valid: {', '.join(hints)})")
            out[section][key] = _coerce(value, hints[key], f"{source}: '{section}.{key}'")
    return out


def deep_merge(base: dict, over: dict) -> dict:
    """Recursive dict merge; lists and scalars in ``over`` replace those in ``base``."""
    merged = dict(base)
    for k, v in over.items():
        merged[k] = deep_merge(merged[k], v) if isinstance(v, dict) and isinstance(merged.get(k), dict) else v
    return merged


def load_recipe(path: str | os.PathLike, _seen: tuple = ()) -> dict:
    """Read a YAML recipe, following ``extends:`` (a path relative to the file), validated per file."""
    path = Path(path).resolve()
    if path in _seen:
        raise ConfigError(f"{path}: 'extends' loops back to itself ({' -> '.join(map(str, _seen))})")
    if not path.is_file():
        raise ConfigError(f"recipe not found: {path}")
    with open(path) as f:
        raw = yaml.safe_load(f) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a recipe must be a mapping of sections")
    parent = raw.pop("extends", None)
    base = load_recipe(path.parent / parent, _seen + (path,)) if parent else {}
    return deep_merge(base, validate_sections(raw, str(path)))


def parse_overrides(items: list[str]) -> dict:
    """``["optim.lr=3e-4", "stages.4.trainer.epochs_per_chunk=1"]`` -> nested dict, validated."""
    nested: dict = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected section.key=value")
        dotted, text = item.split("=", 1)
        keys = dotted.strip().split(".")
        if len(keys) < 2:
            raise ConfigError(f"--set {item!r}: expected section.key=value")
        node = nested
        for k in keys[:-1]:
            node = node.setdefault(int(k) if k.isdigit() else k, {})
        node[keys[-1]] = yaml.safe_load(text)
    return validate_sections(nested, "--set")


def build_config(raw: dict) -> Config:
    """Turn a validated (merged) mapping into a :class:`Config`."""
    kwargs = {}
    for section, cls in SECTIONS.items():
        values = raw.get(section, {})
        kwargs[section] = values if section in _RAW_SECTIONS else cls(**values)
    return Config(**kwargs)


def load_config(recipe: str | os.PathLike | None = None, overrides: list[str] | None = None) -> Config:
    """Defaults < recipe (with its ``extends`` chain) < ``--set`` overrides."""
    raw = load_recipe(recipe) if recipe else {}
    return build_config(deep_merge(raw, parse_overrides(overrides or [])))


def apply_overrides(cfg: Config, partial: dict, source: str) -> Config:
    """Return ``cfg`` with a partial section mapping (a stage or a model override) merged in."""
    checked = validate_sections(partial, source)
    return build_config(deep_merge(cfg.to_dict(), checked))


def save_config(cfg: Config, path: str | os.PathLike) -> None:
    """Write the resolved config as YAML, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        yaml.safe_dump(cfg.to_dict(), f, sort_keys=False)
    os.replace(tmp, path)
