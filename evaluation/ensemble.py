"""Ensembles: a weighted average of the members' probabilities, weights fitted on validation.

Members may use different crop policies or clip lengths, so their frames need not line up; they are
combined at the video level (each member aggregated first, then joined on ``video_id``). Weights live
on the simplex (softmax of free parameters) and minimise the clipped log-loss of the averaged
validation probabilities; they are saved as JSON next to the names of the checkpoints they belong to.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

from evaluation.aggregate import aggregate
from evaluation.metrics import log_loss
from utils.core.errors import InputError, UsageError
from utils.engine.predictions import FramePredictions, as_probs

logger = logging.getLogger(__name__)


def check_members(members: list[tuple[str, list[str]]]) -> None:
    """Refuse an ensemble whose members score different classes (a 2-class and a 3-class checkpoint).

    ``members``: (checkpoint name, its class names in label order, from its sidecar).
    """
    first_name, first = members[0]
    for name, names in members[1:]:
        if list(names) != list(first):
            raise UsageError(f"ensemble members score different classes: {first_name} has {len(first)} "
                             f"({', '.join(first)}) but {name} has {len(names)} ({', '.join(names)}); an "
                             "ensemble averages probabilities class by class, so combine checkpoints trained "
                             "with the same data.classes")


def average_probs(members: list[np.ndarray], weights: np.ndarray | list[float] | None = None) -> np.ndarray:
    """Weighted mean of N×k probability arrays (equal weights by default; weights are renormalised)."""
    probs = [as_probs(m) for m in members]
    if not probs:
        raise ValueError("an ensemble needs at least one member")
    if len({p.shape for p in probs}) != 1:
        raise ValueError(f"ensemble members disagree in shape: {[p.shape for p in probs]}")
    w = np.ones(len(probs)) if weights is None else np.asarray(weights, dtype=np.float64)
    if len(w) != len(probs) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(f"need {len(probs)} non-negative weights with a positive sum, got {list(w)}")
    return np.tensordot(w / w.sum(), np.stack(probs), axes=1)


def fit_weights(members: list[np.ndarray], labels: np.ndarray) -> np.ndarray:
    """Simplex weights minimising the clipped log-loss of the averaged ``members`` on ``labels``."""
    probs = [as_probs(m) for m in members]
    if len(probs) == 1:
        return np.ones(1)

    def objective(theta: np.ndarray) -> float:
        w = np.exp(theta - theta.max())
        return log_loss(average_probs(probs, w), labels, eps=1e-6)

    res = minimize(objective, np.zeros(len(probs)), method="Nelder-Mead",
                   options={"xatol": 1e-4, "fatol": 1e-7, "maxiter": 400 * len(probs)})
    w = np.exp(res.x - res.x.max())
    return w / w.sum()


def align_videos(members: list[FramePredictions],
                 aggregation: str = "mean") -> tuple[list[np.ndarray], FramePredictions]:
    """Aggregate each member to videos and keep the videos every member scored.

    Returns the members' video probabilities (same row order) and a one-row-per-video
    :class:`FramePredictions` template (labels, ids, methods, extra columns) to fill with the average.
    """
    videos = [aggregate(m, aggregation) for m in members]
    common = set(videos[0].video_ids)
    for v in videos[1:]:
        common &= set(v.video_ids)
    dropped = max(len(v) for v in videos) - len(common)
    if dropped:
        logger.warning("ensemble: %d videos are not scored by every member and are left out", dropped)
    ref = videos[0]
    keep = np.flatnonzero(np.isin(ref.video_ids, list(common)))
    order = ref.video_ids[keep]
    probs = []
    for v in videos:
        pos = {vid: i for i, vid in enumerate(v.video_ids)}
        probs.append(v.probs[[pos[vid] for vid in order]])
    template = FramePredictions(ref.probs[keep], ref.labels[keep], order, ref.methods[keep],
                                np.zeros(len(keep), int), {k: c[keep] for k, c in ref.extra.items()},
                                [m for m in members[0].missing], members[0].label_names)
    return probs, template


def combine(members: list[FramePredictions], weights=None, aggregation: str = "mean") -> FramePredictions:
    """Video-level ensemble predictions (one row per video) of several members."""
    probs, template = align_videos(members, aggregation)
    template.probs = average_probs(probs, weights)
    return template


def save_weights(path: str | os.PathLike, weights: np.ndarray, checkpoints: list[str], **info) -> Path:
    """Write ``{"checkpoints": [...], "weights": [...], ...info}`` as JSON."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"checkpoints": [str(c) for c in checkpoints],
                                "weights": [float(w) for w in weights], **info}, indent=1))
    return path


def _key(checkpoint: str | os.PathLike) -> str:
    """The last three path parts (``<model>/stage<k>/best.safetensors``): stable when a run folder moves."""
    return "/".join(Path(checkpoint).resolve().parts[-3:])


def load_weights(path: str | os.PathLike, checkpoints: list[str] | None = None) -> np.ndarray:
    """Read ensemble weights; with ``checkpoints``, reorder them to that list (matched by path tail)."""
    try:
        data = json.loads(Path(path).read_text())
        w = np.asarray(data["weights"], dtype=np.float64)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise InputError(f"{path}: not an ensemble weights file written by launch/evaluate.py --fit-ensemble "
                         f"({type(e).__name__}: {e})") from None
    if checkpoints is None:
        return w
    saved = [_key(c) for c in data["checkpoints"]]
    names = [_key(c) for c in checkpoints]
    if sorted(saved) != sorted(names) or len(set(names)) != len(names):
        raise InputError(f"{path}: weights were fitted for {saved}, but the checkpoints given are {names}")
    return np.asarray([w[saved.index(n)] for n in names])
