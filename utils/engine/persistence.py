"""Saving and loading resumable state safely on one process or many.

A state folder is written under a temporary name and renamed when every rank has written its part,
so a kill at any moment leaves the previous state intact. Before writing, the free space is checked
against the size of the previous state; a failed write on any rank (a full disk, no permission)
is agreed on by all ranks, the partial folder is removed and a :class:`WriteError` names the path and
the cause — nobody is left waiting at a barrier.
"""
from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import torch
from accelerate import Accelerator

from utils.core.errors import UsageError, WriteError
from utils.core.fileio import remove_stale_temporaries, write_failure
from utils.engine.state import TrainerState, list_state_dirs, prune_state_dirs, state_dir_tmp

logger = logging.getLogger(__name__)

SPACE_MARGIN = 1.2   # a new state needs the size of the last one, plus this share


def any_rank(acc: Accelerator, flag: bool) -> bool:
    """Whether ``flag`` is true on any rank (every rank gets the same answer)."""
    if acc.num_processes == 1:
        return flag
    t = torch.tensor([float(flag)], device=acc.device)
    return bool(acc.reduce(t, reduction="sum").item() > 0)


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def space_problem(ckpt_root: Path) -> str | None:
    """Why the next state would not fit on the disk, or None."""
    previous = list_state_dirs(ckpt_root)
    if not previous:
        return None
    need = int(folder_bytes(previous[-1]) * SPACE_MARGIN)
    free = shutil.disk_usage(ckpt_root).free
    if free >= need:
        return None
    return (f"no space left on device: need ~{need / 1e6:.0f} MB in {ckpt_root} for the next resumable "
            f"state, {free / 1e6:.0f} MB free; free some space and run the same command to resume")


def save(acc: Accelerator, ckpt_root: Path, state: TrainerState, keep_last: int) -> Path:
    """accelerate state + ``trainer_state.json`` into ``step_<global step>/``, atomically on every rank."""
    final, tmp = ckpt_root / f"step_{state.global_step:08d}", state_dir_tmp(ckpt_root, state.global_step)
    problem = None
    if acc.is_main_process:
        ckpt_root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        problem = space_problem(ckpt_root)
    if any_rank(acc, problem is not None):
        raise WriteError(problem or f"another process found too little space to save a state in {ckpt_root}")
    error = None
    try:
        acc.save_state(str(tmp))
        if acc.is_main_process:
            state.save(tmp / "trainer_state.json")
    except (OSError, RuntimeError) as e:
        error = e
    if any_rank(acc, error is not None):
        if acc.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
        raise write_failure(tmp, error) if error else WriteError(f"another process failed to write {tmp}")
    acc.wait_for_everyone()
    if acc.is_main_process:
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        prune_state_dirs(ckpt_root, keep_last)
    acc.wait_for_everyone()
    return final


def find(ckpt_root: Path, resume: str) -> Path | None:
    """The state folder to resume from: ``auto`` = the newest complete one, ``never``, or a folder."""
    if resume == "never":
        return None
    if resume == "auto":
        dirs = list_state_dirs(ckpt_root)
        return dirs[-1] if dirs else None
    path = Path(resume)
    if not (path / "trainer_state.json").is_file():
        raise UsageError(f"--resume {resume}: not a state folder (no trainer_state.json)")
    return path


def load(acc: Accelerator, path: Path, model_name: str) -> TrainerState:
    """Load a state folder into the prepared objects; refuse another model's state."""
    state = TrainerState.load(path / "trainer_state.json")
    if state.model and model_name and state.model != model_name:
        raise UsageError(f"--resume {path}: that state belongs to model '{state.model}', not '{model_name}'")
    acc.load_state(str(path))
    return state


def clean_leftovers(run_dir: Path, ckpt_root: Path) -> None:
    """Temporary files and folders a killed run left behind (main process only)."""
    removed = remove_stale_temporaries(run_dir) + remove_stale_temporaries(ckpt_root)
    if removed:
        logger.info("removed %d temporary file(s) left by an interrupted run", removed)
