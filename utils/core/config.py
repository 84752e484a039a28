"""Typed run configuration: the sections, their types and ranges, and validation of partial mappings.

Every recipe file (:mod:`utils.core.recipe` reads them) is checked against the dataclasses on its
own, so an unknown key, a wrong type or a value outside its choices or range is reported with the key
and the file it came from.

The ``data`` section holds the settings every dataset shares; options that only one dataset adapter
understands (FF++'s compression, DFDC's chunk lists...) are written in the same flat ``data:`` mapping
and kept in ``data.options``, checked against the options the registered adapters declare.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from utils.core.errors import ConfigError
from utils.core.registry import DATASETS

__all__ = ["Config", "ConfigError", "DataConfig", "LoggingConfig", "ModelConfig", "OptimConfig", "SynthesisConfig",
           "TrainerConfig",
           "apply_overrides", "build_config", "check_values", "config_from_dict", "deep_merge", "validate_sections"]


@dataclass
class ModelConfig:
    name: str = ""
    size: Literal["full", "tiny"] = "full"  # same code, smaller numbers
    pretrained: bool = False        # backbone weights through timm's mechanism (needs internet or HF cache)
    pretrained_path: str = ""       # or a local weights file for the backbone(s)
    num_classes: int = 2
    drop_rate: float | None = None  # None: the model's default
    kwargs: dict = field(default_factory=dict)  # extra builder arguments


@dataclass
class SynthesisConfig:
    """Fakes made on the fly from real samples (``utils.data.synthesis``): which kinds, how many."""
    kinds: list[str] = field(default_factory=list)  # registered synthesiser kinds, drawn per fake
    ratio: float = 0.0              # synthetic fakes per real video of a split (1.0: every real gets a twin)
    splits: list[Literal["train", "val", "test"]] = field(default_factory=lambda: ["train"])
    real_only: bool = False         # drop the dataset's own fakes from those splits: train without fake data


@dataclass
class DataConfig:
    dataset: str = ""               # a registered dataset adapter (recipes set it per stage)
    root: str = ""                  # empty: the adapter's environment variable (else see sample)
    sample: bool = False            # no root given: true trains on the bundled sample, false stops
    cache: str = ""                 # face-crop cache; empty: <cache_root>/<dataset>-<hash>
    cache_root: str = "data/cache"
    build_cache: bool = True        # build a missing cache on first use (else stop with the command)
    cache_compress: bool = True     # native tiles as lossless WebP; false: raw (no decode, ~6x their bytes)
    cache_crops: list[Literal["face", "context", "native"]] = field(
        default_factory=lambda: ["face", "context", "native"])  # crop policies stored for spread frames
    cache_clip_crops: list[Literal["face", "context", "native"]] = field(
        default_factory=lambda: ["face"])  # crop policies stored for the frames of clip runs
    cache_size: int = 224           # largest model input the cache serves (face/context stored resized to it)
    native_jitter: int = 16         # native tiles reach this far (px, multiple of 8) beyond the centred window
    cache_quality: int = 95         # JPEG quality of the stored face/context crops
    frames_per_video: int = 32      # frames spread evenly over each video, stored in the face cache
    clips_per_video: int = 4        # runs of consecutive frames stored for clip models
    clip_frames: int = 8            # length of each stored run (>= every model's clip_len)
    margin: float = 0.3             # face-crop margin per side, as a share of the box
    batch_size: int = 32
    eval_batch_size: int = 0        # 0: 2 x batch_size
    num_workers: int = 4
    augment: bool = True
    clahe: bool = False
    balance: Literal["none", "undersample", "oversample"] = "none"  # class-balanced draw per epoch
    max_videos_per_split: int = 0   # 0 = all (quick runs)
    frames_per_video_train: int = 0  # 0 = every cached frame
    frames_per_video_val: int = 0    # the per-epoch validation reads this many frames per video (0 = all);
                                     # the end-of-stage evaluation always reads every cached frame
    train_sources: list[str] = field(default_factory=list)  # sources (record methods) to train/validate on; [] = all
    eval_sources: list[str] = field(default_factory=list)   # sources to test on; [] = all
    classes: list[str] = field(default_factory=lambda: ["real", "fake"])  # label k = classes[k]; 0 = real
    class_map: dict = field(default_factory=dict)  # source / method / folder name -> a name in classes
    normalization: Literal["backbone", "real_train"] = "backbone"  # real_train: mean/std of training reals
    synthesis: SynthesisConfig = field(default_factory=SynthesisConfig)  # cue synthesis (see the class)
    options: dict = field(default_factory=dict)  # the dataset adapter's own options (flat in YAML)


@dataclass
class OptimConfig:
    optimizer: Literal["adamw", "sgd"] = "adamw"
    lr: float = 1e-4
    weight_decay: float = 0.05
    momentum: float = 0.9
    loss: Literal["ce", "weighted_ce", "focal", "class_mean"] = "ce"
    label_smoothing: float = 0.0
    focal_gamma: float = 2.0
    focal_alpha: float | None = None
    grad_clip: float = 1.0          # 0 = off
    plateau_factor: float = 0.5
    plateau_patience: int = 1
    min_lr: float = 1e-7
    warmup_steps: int = 0           # linear warm-up of the learning rate over the first steps


@dataclass
class TrainerConfig:
    epochs: int = 10
    epochs_per_chunk: int = 0       # >0: walk the training partitions (DFDC chunks) one after another
    max_steps_per_epoch: int = 0    # 0 = the whole epoch
    val_max_batches: int = 0        # 0 = the whole validation set
    grad_accum: int = 1
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"
    seed: int = 42
    deterministic: bool = False     # PyTorch's deterministic algorithms (slower on GPU)
    monitor: str = "val/auc"
    monitor_mode: Literal["max", "min"] = "max"
    early_stopping_patience: int = 3
    early_stopping_min_delta: float = 0.0
    checkpoint_every_steps: int = 0  # 0 = only at epoch ends
    keep_last: int = 2
    channels_last: bool = False
    compile: bool = False
    compile_backend: str = "inductor"
    cpu: bool = False


TrackerName = Literal["tensorboard", "wandb", "mlflow", "jsonl", "csv"]   # utils.engine.trackers builds them
TRACKER_NAMES = typing.get_args(TrackerName)


@dataclass
class LoggingConfig:
    tensorboard: bool = True        # false: no TensorBoard, whatever trackers lists (the older switch)
    # experiment trackers, through accelerate (rank 0 only); wandb and mlflow need their package
    trackers: list[TrackerName] = field(default_factory=lambda: ["tensorboard"])
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
        """Plain mapping in recipe form (adapter options flat in ``data``, as a recipe writes them)."""
        d = dataclasses.asdict(self)
        d["data"].update(d["data"].pop("options"))
        return d


SECTIONS = typing.get_type_hints(Config)
_RAW_SECTIONS = ("stages", "models")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against type hint ``tp``; numbers written as strings (YAML's 1e-4) become floats."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        if value in typing.get_args(tp):
            return value
        raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(str, typing.get_args(tp)))}")
    if origin in (typing.Union, types.UnionType):
        return _coerce_union(value, typing.get_args(tp), where)
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
    return _coerce_scalar(value, tp, where)


def _coerce_union(value: Any, args: tuple, where: str) -> Any:
    if value is None and type(None) in args:
        return None
    for arg in args:
        if arg is not type(None):
            try:
                return _coerce(value, arg, where)
            except ConfigError:
                pass
    names = " or ".join("null" if a is type(None) else getattr(a, "__name__", str(a)) for a in args)
    raise ConfigError(f"{where}: expected {names}, got {value!r}")


def _coerce_scalar(value: Any, tp: type, where: str) -> Any:
    if tp is bool and isinstance(value, bool):
        return value
    if tp is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if tp is float and isinstance(value, (int, float, str)) and not isinstance(value, bool):
        try:
            return float(value)
        except ValueError:
            pass
    if tp is str and isinstance(value, str):
        return value
    expected = {bool: "true/false", int: "an integer", float: "a number", str: "a string"}.get(tp, str(tp))
    raise ConfigError(f"{where}: expected {expected}, got {value!r}")


def adapter_options() -> dict[str, tuple[str, Any]]:
    """``{option: (adapter name, type)}`` for every option a registered dataset adapter declares."""
    found: dict[str, tuple[str, Any]] = {}
    for name, adapter in DATASETS.items():
        for key, tp in typing.get_type_hints(adapter.Options).items():
            found.setdefault(key, (name, tp))
    return found


def _validate_data(values: dict, source: str) -> dict:
    """The ``data`` section, flat: shared keys and adapter options side by side (``build_config`` sorts
    them), so that merging recipe layers never has to look inside ``options``."""
    hints = typing.get_type_hints(DataConfig)
    values = {**{k: v for k, v in values.items() if k != "options"}, **(values.get("options") or {})}
    out: dict = {}
    for key, value in values.items():
        if key == "dataset" and value and value not in DATASETS:
            raise ConfigError(f"{source}: 'data.dataset' {value!r} is not a registered dataset "
                              f"({', '.join(DATASETS.names())})")
        if key == "synthesis":
            out[key] = _validate_dataclass(SynthesisConfig, value, f"{source}: 'data.synthesis'")
        elif key in hints:
            out[key] = _coerce(value, hints[key], f"{source}: 'data.{key}'")
        elif key in (options := adapter_options()):
            adapter, tp = options[key]
            out[key] = _coerce(value, tp, f"{source}: 'data.{key}' ({adapter} option)")
        else:
            shared = ", ".join(k for k in hints if k != "options")
            own = "; ".join(f"{n}: {', '.join(typing.get_type_hints(a.Options))}" for n, a in DATASETS.items())
            raise ConfigError(f"{source}: unknown key 'data.{key}' (valid: {shared}; dataset options: {own})")
    return out


def _validate_dataclass(cls: type, values: Any, where: str) -> dict:
    """A nested mapping checked against a dataclass's fields (unknown keys and wrong types refused)."""
    if isinstance(values, cls):
        values = dataclasses.asdict(values)
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a mapping, got {values!r}")
    hints = typing.get_type_hints(cls)
    if unknown := sorted(set(values) - set(hints)):
        raise ConfigError(f"{where}: unknown key(s) {unknown} (valid: {', '.join(hints)})")
    return {k: _coerce(v, hints[k], f"{where}.{k}") for k, v in values.items()}


def validate_sections(raw: dict, source: str) -> dict:
    """Check a partial ``{section: {key: value}}`` mapping; return it with values coerced."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: a recipe must be a mapping of sections, got {type(raw).__name__}")
    out: dict = {}
    for section, values in raw.items():
        if section not in SECTIONS:
            raise ConfigError(f"{source}: unknown section '{section}' (valid: {', '.join(SECTIONS)})")
        if section in _RAW_SECTIONS:
            out[section] = _validate_nested(section, values, source)
            continue
        if values is None:
            continue
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: section '{section}' must be a mapping, got {values!r}")
        if section == "data":
            out[section] = _validate_data(values, source)
            continue
        hints = typing.get_type_hints(SECTIONS[section])
        out[section] = {}
        for key, value in values.items():
            if key not in hints:
                raise ConfigError(f"{source}: unknown key '{section}.{key}' (valid: {', '.join(hints)})")
            out[section][key] = _coerce(value, hints[key], f"{source}: '{section}.{key}'")
    return out


def _validate_nested(section: str, values: Any, source: str) -> dict:
    """``stages`` (keys: stage numbers) and ``models`` (keys: model names), each a partial recipe."""
    if not isinstance(values, dict):
        raise ConfigError(f"{source}: '{section}' must be a mapping")
    if section == "stages":   # JSON (a sidecar's config) turns the numbers into strings: take them back
        values = {int(k) if isinstance(k, str) and k.isdigit() else k: v for k, v in values.items()}
        bad = [k for k in values if not (isinstance(k, int) and not isinstance(k, bool))]
        if bad:
            raise ConfigError(f"{source}: stage keys must be numbers (stages: {{1: …, 2: …}}), got {bad[0]!r}")
    return {k: validate_sections(v or {}, f"{source} [{section}.{k}]") for k, v in values.items()}


def deep_merge(base: dict, over: dict) -> dict:
    """Recursive dict merge; lists and scalars in ``over`` replace those in ``base``."""
    merged = dict(base)
    for k, v in over.items():
        merged[k] = deep_merge(merged[k], v) if isinstance(v, dict) and isinstance(merged.get(k), dict) else v
    return merged


def build_config(raw: dict) -> Config:
    """Turn a validated (merged) mapping into a :class:`Config`."""
    kwargs = {}
    for section, cls in SECTIONS.items():
        values = dict(raw.get(section, {}))
        if section == "data":
            shared = typing.get_type_hints(DataConfig)
            values = {**{k: v for k, v in values.items() if k in shared},
                      "options": {k: v for k, v in values.items() if k not in shared}}
            if isinstance(values.get("synthesis"), dict):
                values["synthesis"] = SynthesisConfig(**values["synthesis"])
        kwargs[section] = values if section in _RAW_SECTIONS else cls(**values)
    return Config(**kwargs)


# (section.key, predicate, what it must be): values a type check cannot catch
_RANGES = (
    ("model.num_classes", lambda v: v >= 2, ">= 2"),
    ("data.frames_per_video", lambda v: v >= 1, ">= 1"),
    ("data.clips_per_video", lambda v: v >= 0, ">= 0"),
    ("data.clip_frames", lambda v: v >= 0, ">= 0"),
    ("data.margin", lambda v: 0 <= v <= 2, "in [0, 2]"),
    ("data.batch_size", lambda v: v >= 1, ">= 1"),
    ("data.eval_batch_size", lambda v: v >= 0, ">= 0 (0: twice the batch size)"),
    ("data.num_workers", lambda v: v >= 0, ">= 0"),
    ("data.max_videos_per_split", lambda v: v >= 0, ">= 0 (0: all)"),
    ("data.frames_per_video_train", lambda v: v >= 0, ">= 0 (0: all)"),
    ("data.frames_per_video_val", lambda v: v >= 0, ">= 0 (0: all)"),
    ("data.synthesis", lambda v: v.ratio >= 0 and (v.ratio == 0 or v.kinds), "a ratio >= 0, with kinds when > 0"),
    ("optim.lr", lambda v: v >= 0, ">= 0 (0 keeps the weights: a handoff check, an evaluation-only stage)"),
    ("optim.weight_decay", lambda v: v >= 0, ">= 0"),
    ("optim.label_smoothing", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("optim.focal_gamma", lambda v: v >= 0, ">= 0"),
    ("optim.focal_alpha", lambda v: v is None or 0 <= v <= 1, "in [0, 1] or null"),
    ("optim.grad_clip", lambda v: v >= 0, ">= 0 (0: off)"),
    ("optim.plateau_factor", lambda v: 0 < v < 1, "in (0, 1)"),
    ("optim.plateau_patience", lambda v: v >= 0, ">= 0"),
    ("optim.warmup_steps", lambda v: v >= 0, ">= 0"),
    ("trainer.epochs", lambda v: v >= 1, ">= 1"),
    ("trainer.epochs_per_chunk", lambda v: v >= 0, ">= 0"),
    ("trainer.max_steps_per_epoch", lambda v: v >= 0, ">= 0 (0: whole epochs)"),
    ("trainer.val_max_batches", lambda v: v >= 0, ">= 0 (0: all)"),
    ("trainer.grad_accum", lambda v: v >= 1, ">= 1"),
    ("trainer.early_stopping_patience", lambda v: v >= 0, ">= 0 (0: off)"),
    ("trainer.checkpoint_every_steps", lambda v: v >= 0, ">= 0 (0: epoch ends only)"),
    ("trainer.keep_last", lambda v: v >= 1, ">= 1"),
    ("logging.log_every_steps", lambda v: v >= 1, ">= 1"),
    ("logging.trackers", lambda v: len(set(v)) == len(v), "a list without repeats"),
)


def check_values(cfg: Config, source: str) -> Config:
    """Refuse values outside their range (``data.frames_per_video=0``...), naming the key."""
    for key, ok, must in _RANGES:
        section, name = key.split(".")
        value = getattr(getattr(cfg, section), name)
        if not ok(value):
            raise ConfigError(f"{source}: '{key}' is {value!r}; it must be {must}")
    return cfg


def config_from_dict(raw: dict, source: str) -> Config:
    """A :class:`Config` from a plain mapping (a saved config, a checkpoint sidecar), validated."""
    return check_values(build_config(validate_sections(raw, source)), source)


def apply_overrides(cfg: Config, partial: dict, source: str) -> Config:
    """Return ``cfg`` with a partial section mapping (a stage or a model override) merged in."""
    checked = validate_sections(partial, source)
    return config_from_dict(deep_merge(cfg.to_dict(), checked), source)
