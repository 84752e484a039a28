"""Read another codebase's checkpoint without running its code, and take off the wrappers.

* The file is read by :func:`utils.core.fileio.read_weights_file` (safetensors, or
  ``torch.load(weights_only=True)``: tensors and plain containers only, never pickled code), memory-
  mapped so that a multi-GB file (GenConViT's VAE is 2.9 GB) is paged in lazily rather than copied.
* Containers: a plain state dict; a training dict such as GenConViT's
  ``{"epoch", "state_dict", "optimizer", "min_loss"}`` (the optimizer state is left unread); the
  common ``{"model": …}`` / ``{"model_state_dict": …}`` / ``{"net": …}`` wrappers.
* Wrapper prefixes that cover *every* key (``module.`` from DDP / DataParallel, ``_orig_mod.`` from
  ``torch.compile``) are removed, repeatedly, and recorded. Partial prefixes are left for the
  architecture's rules to judge (``backbone.`` is part of DeepfakeBench's layout, not a wrapper).
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from utils.core.errors import CheckpointError
from utils.core.fileio import read_weights_file

WRAPPERS = {"module.": "DDP/DataParallel", "_orig_mod.": "torch.compile"}
STATE_KEYS = ("state_dict", "model_state_dict", "model", "net", "module")
TRAINING_KEYS = {"epoch", "optimizer", "min_loss", "best_loss", "best_acc", "scheduler", "step",
                 "global_step", "lr", "config", "args", "best_metric", "amp", "scaler"}
GENCONVIT_TRAINING_KEYS = {"epoch", "state_dict", "optimizer", "min_loss"}


@dataclass
class ForeignCheckpoint:
    """A state dict read from a file, with what was peeled off to get it."""

    path: str
    state: dict[str, torch.Tensor]          # keys after the wrappers were removed
    raw_keys: list[str]                     # keys as stored (with the wrappers)
    container: str                          # human description of what held the state dict
    wrappers: list[str] = field(default_factory=list)
    extra: dict = field(default_factory=dict)   # scalar entries of a training dict (epoch, min_loss...)
    file_format: str = ""                   # "safetensors", "torch zip", "torch legacy"
    size_bytes: int = 0

    @property
    def n_values(self) -> int:
        return sum(t.numel() for t in self.state.values())

    @property
    def n_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.state.values())

    def dtypes(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.state.values():
            name = str(t.dtype).replace("torch.", "")
            out[name] = out.get(name, 0) + 1
        return out

    def source_record(self, sha256: bool = True) -> dict:
        """What a sidecar says about where imported weights came from."""
        rec = {"path": str(Path(self.path).resolve()), "file_format": self.file_format,
               "container": self.container, "wrappers_removed": self.wrappers, "size_bytes": self.size_bytes,
               "n_tensors": len(self.state)}
        if self.extra:
            rec["training_dict"] = self.extra
        if sha256:
            rec["sha256"] = file_sha256(self.path)
        return rec


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _is_state_dict(obj) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                       for k, v in obj.items())


def _scalar_extras(obj: dict, skip: str) -> dict:
    out = {}
    for k, v in obj.items():
        if k == skip:
            continue
        if isinstance(v, (int, float, str, bool)) or v is None:
            out[k] = v
        elif isinstance(v, torch.Tensor) and v.numel() == 1:
            out[k] = v.item()
        else:
            out[k] = f"<{type(v).__name__} not read>"
    return out


def open_container(obj, path: Path) -> tuple[dict, str, dict]:
    """(state dict, description of the container, scalar extras of a training dict)."""
    if _is_state_dict(obj):
        return obj, "plain state dict", {}
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} does not hold a state dict of tensors (found {type(obj).__name__})")
    inner = next((k for k in STATE_KEYS if _is_state_dict(obj.get(k))), None)
    if inner is None:
        kinds = ", ".join(f"{k}: {type(v).__name__}" for k, v in list(obj.items())[:8])
        raise CheckpointError(f"{path} holds a dict without a state dict of tensors ({kinds})")
    extra = _scalar_extras(obj, inner)
    others = set(obj) - {inner}
    if GENCONVIT_TRAINING_KEYS <= set(obj):
        container = (f"GenConViT training dict (state_dict; epoch={extra.get('epoch')}, "
                     f"min_loss={extra.get('min_loss')}; optimizer state not read)")
    elif others and others <= TRAINING_KEYS | set(STATE_KEYS):
        container = f"training dict, weights under '{inner}' (also {', '.join(sorted(others))})"
    else:
        container = f"dict, weights under '{inner}'"
    return obj[inner], container, extra


def strip_full_prefixes(state: dict) -> tuple[dict, list[str]]:
    """Remove wrapper prefixes that every key carries, repeatedly; returns (state, prefixes removed)."""
    wrappers: list[str] = []
    changed = True
    while changed:
        changed = False
        for prefix in WRAPPERS:
            if all(k.startswith(prefix) for k in state):
                state = {k[len(prefix):]: v for k, v in state.items()}
                wrappers.append(prefix)
                changed = True
    return state, wrappers


def read_foreign(path: str | os.PathLike) -> ForeignCheckpoint:
    """Read a checkpoint file written by another codebase (or this one) into a :class:`ForeignCheckpoint`.

    Raises:
        CheckpointError: the file is missing, needs code to unpickle, or holds no state dict of tensors.
    """
    path = Path(path)
    obj, file_format = read_weights_file(path, mmap=True)
    state, container, extra = open_container(obj, path)
    raw_keys = list(state)
    state, wrappers = strip_full_prefixes(dict(state))
    return ForeignCheckpoint(str(path), state, raw_keys, container, wrappers, extra, file_format,
                             path.stat().st_size)
