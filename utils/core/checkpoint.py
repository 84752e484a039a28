"""Exported weights: safetensors + a JSON sidecar, written atomically, loaded with every key checked.

Exported weights are the unwrapped model (no ``module.`` / ``_orig_mod.`` prefixes) so any script can
load them. Loading never unpickles code, reports missing and unexpected keys, refuses a checkpoint
whose classifier head is absent (a silent partial load leaves a head random: ~50 % accuracy and every
prediction in one class) and refuses non-finite weights. :func:`load_exported` returns one typed
:class:`ExportedModel` (model, run config, threshold, label names, input spec) that evaluation,
prediction, ensembles and ``--init`` all use.

The sidecar (``<name>.json`` beside ``<name>.safetensors``) holds ``format_version``, ``model`` (the
registered name), ``model_kwargs``, ``input_spec``, ``num_classes``, ``label_names``, ``config`` (the
resolved run config), ``metrics`` of the exported epoch, ``threshold`` (chosen on validation) and, for
weights the stage runner trained, ``data`` (``{dataset, root, sample}``: ``sample`` is true when they
were trained on the generated sample data, not a real dataset; :func:`trained_on_sample`).
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn
from safetensors.torch import save_file

from utils.core.config import Config, config_from_dict
from utils.core.errors import CheckpointError, ConfigError
from utils.core.fileio import atomic_write, atomic_write_json, read_state_dict
from utils.core.model import LABEL_NAMES, InputSpec
from utils.core.registry import MODELS, create_model

logger = logging.getLogger(__name__)

WRAPPER_PREFIXES = ("module.", "_orig_mod.")   # DDP and torch.compile: always stripped
OPTIONAL_PREFIXES = ("backbone.", "model.")   # foreign checkpoints: stripped only when it makes keys match
FORMAT_VERSION = 1


def sidecar_path(weights: str | os.PathLike) -> Path:
    return Path(weights).with_suffix(".json")


def strip_wrappers(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove DDP / torch.compile prefixes (repeatedly, they can nest)."""
    out = {}
    for k, v in state_dict.items():
        while k.startswith(WRAPPER_PREFIXES):
            k = k.split(".", 1)[1]
        out[k] = v
    return out


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside DDP/DataParallel and torch.compile wrappers."""
    while isinstance(getattr(model, "module", None), nn.Module) or hasattr(model, "_orig_mod"):
        model = getattr(model, "_orig_mod", None) or model.module
    return model


def export_weights(model: nn.Module, path: str | os.PathLike, sidecar: dict) -> Path:
    """Write ``model``'s weights as safetensors plus a JSON sidecar, both atomically.

    ``sidecar`` must hold at least ``model`` (registered name) and ``model_kwargs``; the model's input
    spec and label names are added here so the file alone is enough to predict with.
    """
    path = Path(path)
    raw = unwrap(model)
    state = {k: v.detach().cpu().contiguous().clone() for k, v in strip_wrappers(raw.state_dict()).items()}
    meta = {"format_version": FORMAT_VERSION, "label_names": list(LABEL_NAMES), **sidecar}
    if hasattr(raw, "describe"):
        meta.update(raw.describe())
    atomic_write(path, lambda tmp: save_file(state, str(tmp), metadata={"model": str(meta.get("model"))}))
    atomic_write_json(sidecar_path(path), meta)
    return path


def remap_keys(state_dict: dict[str, torch.Tensor], expected: set[str]) -> dict[str, torch.Tensor]:
    """Strip wrapper prefixes, then an optional prefix only if that makes more keys match (verified)."""
    state = strip_wrappers(state_dict)
    best, best_hits = state, len(expected & state.keys())
    for p in OPTIONAL_PREFIXES:
        cand = {k[len(p):] if k.startswith(p) else k: v for k, v in state.items()}
        hits = len(expected & cand.keys())
        if hits > best_hits:
            best, best_hits = cand, hits
            logger.info("checkpoint keys remapped: stripped prefix '%s' (%d keys now match)", p, hits)
    return best


@dataclass
class LoadReport:
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)


def check_finite(state: dict[str, torch.Tensor], source: str) -> None:
    """Refuse NaN or infinite weights, naming the first tensors that hold them."""
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"{source}: {len(bad)} tensor(s) hold NaN or infinite values, e.g. {bad[:3]}; "
                              "the training run that wrote it diverged")


def load_weights(model: nn.Module, state_dict: dict[str, torch.Tensor], *, strict: bool = True,
                 source: str = "checkpoint") -> LoadReport:
    """Load ``state_dict`` into ``model`` with explicit key checks.

    Missing and unexpected keys are always logged. A missing classifier head (``model.head_prefixes``),
    a shape mismatch or a non-finite tensor is always an error; with ``strict`` any other
    missing/unexpected key is too.
    """
    own = model.state_dict()
    state = remap_keys(state_dict, set(own))
    report = LoadReport(sorted(own.keys() - state.keys()), sorted(state.keys() - own.keys()))
    if report.missing:
        logger.warning("%s: %d missing keys, e.g. %s", source, len(report.missing), report.missing[:5])
    if report.unexpected:
        logger.warning("%s: %d unexpected keys, e.g. %s", source, len(report.unexpected), report.unexpected[:5])
    heads = getattr(model, "head_prefixes", ())
    missing_head = [k for k in report.missing if k.startswith(tuple(heads))]
    if missing_head:
        raise CheckpointError(f"{source}: the classifier head was not loaded; missing keys: {missing_head}. "
                              "Refusing to run with a randomly initialised head.")
    bad_shapes = [f"{k}: {tuple(v.shape)} vs model {tuple(own[k].shape)}"
                  for k, v in state.items() if k in own and v.shape != own[k].shape]
    if bad_shapes:
        raise CheckpointError(f"{source}: shape mismatch: {bad_shapes[:5]}")
    if strict and (report.missing or report.unexpected):
        raise CheckpointError(f"{source}: keys do not match the model (missing {report.missing[:5]}, "
                              f"unexpected {report.unexpected[:5]})")
    check_finite(state, source)
    model.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
    return report


def read_sidecar(weights: str | os.PathLike) -> dict:
    """The JSON sidecar of exported weights; errors name the file and what is wrong with it."""
    weights = Path(weights)
    if not weights.is_file():
        raise CheckpointError(f"checkpoint not found: {weights}")
    path = sidecar_path(weights)
    if not path.is_file():
        raise CheckpointError(f"{weights}: sidecar {path.name} not found; exported weights come in pairs "
                              "(<name>.safetensors + <name>.json) written by the trainer or "
                              "launch/import_weights.py")
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("model"), str):
        raise CheckpointError(f"{path}: not a checkpoint sidecar (no 'model' name)")
    return meta


@dataclass
class ExportedModel:
    """Exported weights loaded for use: the model and everything its sidecar says about it."""

    path: Path
    model: nn.Module
    meta: dict
    config: Config

    @property
    def name(self) -> str:
        return self.meta["model"]

    @property
    def input_spec(self) -> InputSpec:
        return self.model.input_spec

    @property
    def threshold(self) -> float | None:
        """The decision threshold on P(fake) chosen on validation when the weights were exported."""
        t = self.meta.get("threshold")
        return None if t is None else float(t)

    @property
    def label_names(self) -> list[str]:
        return sidecar_label_names(self.meta)

    @property
    def trained_on_sample(self) -> bool:
        return trained_on_sample(self.meta)


def trained_on_sample(meta: dict) -> bool:
    """Whether a sidecar says its weights were trained on the generated sample data (a demonstration,
    not a detector); imported weights and sidecars written before the mark existed say no."""
    return bool((meta.get("data") or {}).get("sample"))


def sidecar_label_names(meta: dict) -> list[str]:
    """Class names in label order: the sidecar's, else real/fake for 2 classes, else the class numbers."""
    names = list(meta.get("label_names") or LABEL_NAMES)
    k = int(meta.get("num_classes") or len(names))
    return names if len(names) == k else [str(i) for i in range(k)]


def build_from_sidecar(meta: dict, source: str) -> nn.Module:
    """The (untrained) model a sidecar describes."""
    name = meta["model"]
    if name not in MODELS:
        raise CheckpointError(f"{source}: the sidecar names model '{name}', which is not registered "
                              f"(registered: {', '.join(MODELS.names())})")
    try:
        return create_model(name, **meta.get("model_kwargs", {}))
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{source}: cannot build '{name}' from the sidecar's model_kwargs: {e}") from None


def load_exported(path: str | os.PathLike, map_location: str | torch.device = "cpu",
                  expect_model: str | None = None) -> ExportedModel:
    """Rebuild the model named in the sidecar and load its weights strictly."""
    path = Path(path)
    meta = read_sidecar(path)
    if expect_model is not None and meta["model"] != expect_model:
        raise CheckpointError(f"{path} holds weights of model '{meta['model']}', not '{expect_model}'")
    model = build_from_sidecar(meta, str(sidecar_path(path)))
    load_weights(model, read_state_dict(path), strict=True, source=str(path))
    if (meta.get("normalization") or {}).get("mean") is not None:   # statistics of the training data
        model.set_normalization(meta["normalization"]["mean"], meta["normalization"]["std"])
    try:
        cfg = config_from_dict(meta.get("config") or {}, f"{sidecar_path(path)} [config]")
    except ConfigError as e:
        raise CheckpointError(str(e)) from None
    return ExportedModel(path, model.to(map_location).eval(), meta, cfg)
