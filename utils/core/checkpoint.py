"""Checkpoints: exported weights (safetensors + JSON sidecar) and resumable-state folders.

Exported weights are the unwrapped model (no ``module.`` / ``_orig_mod.`` prefixes) so any script can
load them; loading never unpickles code, reports missing and unexpected keys, and refuses a checkpoint
whose classifier head is absent (the predecessors' silent ``strict=False`` left heads random).
Resumable state is accelerate's ``save_state`` folder plus ``trainer_state.json``.
"""
from __future__ import annotations

import json
import logging
import os
import pickle
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file

from utils.core.registry import create_model

logger = logging.getLogger(__name__)

WRAPPER_PREFIXES = ("module.", "_orig_mod.")   # DDP and torch.compile: always stripped
OPTIONAL_PREFIXES = ("backbone.", "model.")   # foreign checkpoints: stripped only when it makes keys match
FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used as asked (wrong model, head missing, unsafe file...)."""


def sidecar_path(weights: str | os.PathLike) -> Path:
    return Path(weights).with_suffix(".json")


def atomic_write_bytes(path: Path, write) -> None:
    """Call ``write(tmp_path)`` then rename over ``path``: readers never see a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_json(path: str | os.PathLike, obj) -> None:
    def write(tmp):
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2, default=str)
    atomic_write_bytes(Path(path), write)


def strip_wrappers(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove DDP / torch.compile prefixes (repeatedly, they can nest)."""
    out = {}
    for k, v in state_dict.items():
        changed = True
        while changed:
            changed = False
            for p in WRAPPER_PREFIXES:
                if k.startswith(p):
                    k, changed = k[len(p):], True
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
    meta = {"format_version": FORMAT_VERSION, "label_names": ["real", "fake"], **sidecar}
    if hasattr(raw, "describe"):
        meta.update(raw.describe())
    atomic_write_bytes(path, lambda tmp: save_file(state, str(tmp), metadata={"model": str(meta.get("model"))}))
    atomic_write_json(sidecar_path(path), meta)
    return path


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read weights without executing code: safetensors, or ``torch.load(weights_only=True)``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        return load_file(str(path))
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(f"{path} is not a plain weights file (refused to unpickle code): {e}") from None
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path} does not hold a state dict of tensors")
    return obj


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


def load_weights(model: nn.Module, state_dict: dict[str, torch.Tensor], *, strict: bool = True,
                 source: str = "checkpoint") -> LoadReport:
    """Load ``state_dict`` into ``model`` with explicit key checks.

    Missing and unexpected keys are always logged. A missing classifier head (``model.head_prefixes``)
    or a shape mismatch is always an error; with ``strict`` any other missing/unexpected key is too.
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
    model.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
    return report


def read_sidecar(weights: str | os.PathLike) -> dict:
    path = sidecar_path(weights)
    if not path.is_file():
        raise CheckpointError(f"{weights}: sidecar {path.name} not found; exported weights come in pairs "
                              "(<name>.safetensors + <name>.json) written by the trainer")
    with open(path) as f:
        return json.load(f)


def load_exported(path: str | os.PathLike, map_location: str | torch.device = "cpu",
                  expect_model: str | None = None) -> tuple[nn.Module, dict]:
    """Rebuild the model named in the sidecar and load its weights strictly; returns (model, sidecar)."""
    meta = read_sidecar(path)
    name = meta.get("model")
    if expect_model is not None and name != expect_model:
        raise CheckpointError(f"{path} holds weights of model '{name}', not '{expect_model}'")
    model = create_model(name, **meta.get("model_kwargs", {}))
    load_weights(model, read_state_dict(path), strict=True, source=str(path))
    return model.to(map_location).eval(), meta


# ---------------------------------------------------------------- resumable state folders
_STEP_DIR = re.compile(r"^step_(\d+)$")


def list_state_dirs(ckpt_root: str | os.PathLike) -> list[Path]:
    """Complete resumable-state folders under ``ckpt_root``, oldest first."""
    root = Path(ckpt_root)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir()
             if (m := _STEP_DIR.match(p.name)) and (p / "trainer_state.json").is_file()]
    return [p for _, p in sorted(found)]


def prune_state_dirs(ckpt_root: str | os.PathLike, keep_last: int) -> None:
    """Delete all but the newest ``keep_last`` state folders and any leftover temporary folders."""
    root = Path(ckpt_root)
    for p in list_state_dirs(root)[:-keep_last] if keep_last > 0 else []:
        shutil.rmtree(p, ignore_errors=True)
    for p in root.glob(".tmp_step_*") if root.is_dir() else []:
        shutil.rmtree(p, ignore_errors=True)
