"""The trainer's own resumable state, its state folders and its model-selection rules (early stopping).

Resumable state lives in ``<run>/checkpoints/step_<global step>/``: accelerate's ``save_state``
(model, optimizer, scaler, RNG states) plus ``trainer_state.json``. A folder is complete once it has
that file; the trainer writes it under a temporary name and renames it into place.
"""
from __future__ import annotations

import json
import math
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from utils.core.errors import InputError
from utils.core.fileio import TMP_MARK, atomic_write_json


@dataclass
class TrainerState:
    """Everything besides model/optimizer/RNG that a resumed run needs to continue exactly.

    ``epoch`` counts epochs across the whole stage; with chunked data (DFDC) the chunk being trained is
    ``epoch // epochs_per_chunk``. ``step_in_epoch`` counts batches already consumed in ``epoch``.
    """

    model: str = ""                # registered name of the model the state belongs to
    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    best_metric: float | None = None
    best_epoch: int = -1
    bad_validations: int = 0
    stopped_early: bool = False
    finished: bool = False
    plateau: dict = field(default_factory=dict)   # ReduceLROnPlateau.state_dict()
    history: list = field(default_factory=list)   # one dict of validation metrics per epoch

    def save(self, path: str | Path) -> None:
        atomic_write_json(path, asdict(self))

    @classmethod
    def load(cls, path: str | Path) -> "TrainerState":
        try:
            raw = json.loads(Path(path).read_text())
        except (OSError, ValueError) as e:
            raise InputError(f"{path}: not a readable trainer state ({e})") from None
        if not isinstance(raw, dict):
            raise InputError(f"{path}: not a trainer state")
        known = {k: v for k, v in raw.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def improved(value: float, best: float | None, mode: str, min_delta: float) -> bool:
    """Whether ``value`` beats ``best`` by more than ``min_delta`` (NaN never improves)."""
    if value is None or math.isnan(value):
        return False
    if best is None:
        return True
    return value > best + min_delta if mode == "max" else value < best - min_delta


def update_early_stopping(state: TrainerState, value: float, mode: str, min_delta: float,
                          patience: int) -> tuple[bool, bool]:
    """Record one validation; returns (is_new_best, should_stop)."""
    if improved(value, state.best_metric, mode, min_delta):
        state.best_metric, state.best_epoch, state.bad_validations = float(value), state.epoch, 0
        return True, False
    state.bad_validations += 1
    return False, patience > 0 and state.bad_validations >= patience


_STEP_DIR = re.compile(r"^step_(\d+)$")


def list_state_dirs(ckpt_root: str | Path) -> list[Path]:
    """Complete resumable-state folders under ``ckpt_root``, oldest first."""
    root = Path(ckpt_root)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir()
             if (m := _STEP_DIR.match(p.name)) and (p / "trainer_state.json").is_file()]
    return [p for _, p in sorted(found)]


def state_dir_tmp(ckpt_root: Path, step: int) -> Path:
    """The temporary name a state folder is written under before it is renamed into place."""
    return ckpt_root / f".step_{step:08d}{TMP_MARK}state"


def prune_state_dirs(ckpt_root: str | Path, keep_last: int) -> None:
    """Delete all but the newest ``keep_last`` state folders and any leftover temporary folders."""
    root = Path(ckpt_root)
    for p in list_state_dirs(root)[:-keep_last] if keep_last > 0 else []:
        shutil.rmtree(p, ignore_errors=True)
    for p in root.glob(f".step_*{TMP_MARK}*") if root.is_dir() else []:
        shutil.rmtree(p, ignore_errors=True)
