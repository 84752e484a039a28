"""Frame -> video aggregation, grouped by the dataset's unique ``video_id``.

Strategies:

* ``mean`` (default): the mean of the frame probabilities.
* ``confident``: the rule of the DFDC winning solution (Seferbekov, 2020). If many frames are confidently fake
  (P(fake) > ``fake_t`` for more than 1/2.5 of the frames and more than ``min_fake_frames`` frames)
  the video score is the mean of those frames; else if almost all frames (> 90 %) are confidently
  real (P(fake) < ``real_t``) it is the mean of those; else the plain mean. One confidently faked
  stretch is then not diluted by the untouched frames around it. Binary models only. With the
  winner's 32 frames per video ``min_fake_frames=11``; lower it when sampling fewer frames.

Videos without any scored frame (``FramePredictions.missing``: no face found, unreadable) follow the
``no_face`` rule: ``exclude`` (default) leaves them out of the metrics and the report counts them;
``prior`` scores them with P(fake) = ``prior`` (the validation fake share when known). They are never
silently scored 0.5 and labelled fake.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from utils.engine.predictions import FramePredictions

logger = logging.getLogger(__name__)

AGGREGATIONS = ("mean", "confident")
NO_FACE_RULES = ("exclude", "prior")


@dataclass
class VideoPredictions:
    """One row per video: aggregated probabilities plus the bookkeeping of its frames."""

    probs: np.ndarray
    labels: np.ndarray
    video_ids: np.ndarray
    methods: np.ndarray
    n_frames: np.ndarray
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    imputed: np.ndarray | None = None   # True where the video had no frame and was scored by `prior`

    def __len__(self) -> int:
        return len(self.labels)

    def as_frames(self) -> FramePredictions:
        """The videos as one-row-per-video predictions (for code written for frames)."""
        return FramePredictions(self.probs, self.labels, self.video_ids, self.methods,
                                np.zeros(len(self), int), dict(self.extra))


def confident_score(p_fake: np.ndarray, fake_t: float = 0.8, real_t: float = 0.2,
                    min_fake_frames: int = 11) -> float:
    """The DFDC winner's video score from one video's frame P(fake) values (see module doc)."""
    p = np.asarray(p_fake, dtype=np.float64)
    fake = p > fake_t
    if fake.sum() > len(p) / 2.5 and fake.sum() > min_fake_frames:
        return float(p[fake].mean())
    real = p < real_t
    if real.sum() > 0.9 * len(p):
        return float(p[real].mean())
    return float(p.mean())


def _group(video_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(unique ids in first-seen order, row -> video index, first row of each video)."""
    uniq, first, inverse = np.unique(video_ids, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")   # keep the order the videos came in
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return uniq[order], rank[inverse], first[order]


def _check_consistent(name: str, values: np.ndarray, inv: np.ndarray, first: np.ndarray,
                      ids: np.ndarray) -> None:
    bad = values != values[first][inv]
    if bad.any():
        vid = ids[inv[np.flatnonzero(bad)[0]]]
        raise ValueError(f"video '{vid}' has rows with different {name}: video ids are not unique. Use "
                         "the dataset's VideoRecord.video_id (which includes the method), not a file or "
                         "folder name")


def aggregate(frames: FramePredictions, strategy: str = "mean", *, no_face: str = "exclude",
              prior: float | None = None, **confident_kwargs) -> VideoPredictions:
    """Video-level predictions from frame-level ones (see module doc for strategies and rules)."""
    if strategy not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation '{strategy}'; choose one of {AGGREGATIONS}")
    if no_face not in NO_FACE_RULES:
        raise ValueError(f"unknown no-face rule '{no_face}'; choose one of {NO_FACE_RULES}")
    if strategy == "confident" and frames.num_classes != 2:
        raise ValueError("the 'confident' aggregation is defined for binary models; use 'mean'")
    ids, inv, first = _group(frames.video_ids)
    _check_consistent("labels", frames.labels, inv, first, ids)
    _check_consistent("methods", frames.methods, inv, first, ids)
    k, v = frames.num_classes, len(ids)
    counts = np.bincount(inv, minlength=v)
    if strategy == "mean":
        probs = np.zeros((v, k))
        np.add.at(probs, inv, frames.probs)
        probs /= np.maximum(counts, 1)[:, None]
    else:
        order = np.argsort(inv, kind="stable")
        splits = np.split(frames.probs[order, 1], np.cumsum(counts)[:-1])
        score = np.array([confident_score(s, **confident_kwargs) for s in splits]) if v else np.zeros(0)
        probs = np.stack([1.0 - score, score], axis=1)
    out = VideoPredictions(probs, frames.labels[first], ids, frames.methods[first], counts,
                           {key: col[first] for key, col in frames.extra.items()}, np.zeros(v, bool))
    if no_face == "prior" and frames.missing:
        out = _impute(out, frames, 0.5 if prior is None else prior)
    return out


def _impute(videos: VideoPredictions, frames: FramePredictions, prior: float) -> VideoPredictions:
    """Append the frameless videos scored P(fake) = ``prior`` (binary) / uniform (k classes)."""
    miss = [m for m in frames.missing if m["video_id"] not in set(videos.video_ids)]
    if not miss:
        return videos
    k = frames.num_classes
    row = np.array([1.0 - prior, prior]) if k == 2 else np.full(k, 1.0 / k)
    logger.info("%d videos without frames scored with the prior P(fake)=%.3f", len(miss), prior)
    return VideoPredictions(
        np.concatenate([videos.probs, np.tile(row, (len(miss), 1))]),
        np.concatenate([videos.labels, [int(m["label"]) for m in miss]]),
        np.concatenate([videos.video_ids, np.asarray([m["video_id"] for m in miss], dtype=object)]),
        np.concatenate([videos.methods,
                        np.asarray([m.get("method", "unknown") for m in miss], dtype=object)]),
        np.concatenate([videos.n_frames, np.zeros(len(miss), int)]),
        {key: np.concatenate([col, np.asarray([str(m.get(key, "")) for m in miss], dtype=object)])
         for key, col in videos.extra.items()},
        np.concatenate([videos.imputed, np.ones(len(miss), bool)]))
