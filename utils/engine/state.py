"""The trainer's own resumable state and its model-selection rules (early stopping)."""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class TrainerState:
    """Everything besides model/optimizer/RNG that a resumed run needs to continue exactly.

    ``epoch`` counts epochs across the whole stage; with chunked data (DFDC) the chunk being trained is
    ``epoch // epochs_per_chunk``. ``step_in_epoch`` counts batches already consumed in ``epoch``.
    """

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
        from utils.core.checkpoint import atomic_write_json
        atomic_write_json(path, asdict(self))

    @classmethod
    def load(cls, path: str | Path) -> "TrainerState":
        with open(path) as f:
            raw = json.load(f)
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
