"""The interchange type of evaluation: one row per scored frame (or clip), plus the unscored videos.

Rows carry the dataset's unique ``video_id`` (never a folder or file name: the FF++ methods share file
names), so video-level aggregation groups correctly. Videos that produced no row at all (no face
detected, unreadable) are listed in ``missing`` so that evaluation can count them and score them by
an explicit rule instead of dropping them silently.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np



def as_probs(probs: np.ndarray) -> np.ndarray:
    """N×k float64 probabilities; a 1-D array is read as P(fake) of a binary model."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim == 1:
        p = np.stack([1.0 - p, p], axis=1)
    if p.ndim != 2 or p.shape[1] < 2:
        raise ValueError(f"probs must be N×k with k >= 2 (or 1-D P(fake)), got shape {p.shape}")
    if not np.all(np.isfinite(p)):
        raise ValueError("probs contain NaN or inf: check the model outputs (diverged training?)")
    return p


def _strings(values, n: int, what: str) -> np.ndarray:
    arr = np.asarray([str(v) for v in values], dtype=object)
    if len(arr) != n:
        raise ValueError(f"FramePredictions: {what} has {len(arr)} entries for {n} rows")
    return arr


@dataclass
class FramePredictions:
    """Frame-level predictions of one model on one split.

    Attributes:
        probs: N×k softmax probabilities (binary: column 1 = P(fake)).
        labels: N integer labels (0 = real, 1 = fake for binary models).
        video_ids: N unique-per-video ids (the dataset's ``VideoRecord.video_id``).
        methods: N method / source names (FF++ method or "original", Celeb-DF folder, ...).
        frame_index: N frame numbers (clip models: the first frame of the clip).
        extra: optional per-row columns (e.g. ``chunk`` for DFDC) used for breakdowns.
        missing: videos without any row, each ``{"video_id", "label", "method", "reason"}``.
        label_names: class names, index = label.
    """

    probs: np.ndarray
    labels: np.ndarray
    video_ids: np.ndarray
    methods: np.ndarray | None = None
    frame_index: np.ndarray | None = None
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    missing: list[dict] = field(default_factory=list)
    label_names: tuple[str, ...] = ("real", "fake")

    def __post_init__(self):
        if len(np.asarray(self.probs)):
            self.probs = as_probs(self.probs)
        else:
            self.probs = np.zeros((0, len(self.label_names)))
        n = len(self.probs)
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        if len(self.labels) != n:
            raise ValueError(f"FramePredictions: {n} probability rows but {len(self.labels)} labels")
        self.video_ids = _strings(self.video_ids, n, "video_ids")
        self.methods = _strings(["unknown"] * n if self.methods is None else self.methods, n, "methods")
        fi = np.arange(n) if self.frame_index is None else self.frame_index
        self.frame_index = np.asarray(fi, dtype=np.int64).reshape(-1)
        if len(self.frame_index) != n:
            raise ValueError(f"FramePredictions: frame_index has {len(self.frame_index)} entries "
                             f"for {n} rows")
        self.extra = {k: _strings(v, n, f"extra['{k}']") for k, v in self.extra.items()}
        self.label_names = tuple(self.label_names)
        if self.probs.shape[1] != len(self.label_names):
            self.label_names = tuple(self.label_names[:2]) if self.probs.shape[1] == 2 else \
                tuple(str(i) for i in range(self.probs.shape[1]))

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return self.probs.shape[1]

    @property
    def p_fake(self) -> np.ndarray:
        """P(fake) of a binary model (1 - P(real) for k classes: any manipulation)."""
        return 1.0 - self.probs[:, 0]

    def subset(self, mask: np.ndarray) -> "FramePredictions":
        """Rows where ``mask`` holds (the ``missing`` list is kept whole)."""
        return FramePredictions(self.probs[mask], self.labels[mask], self.video_ids[mask], self.methods[mask],
                                self.frame_index[mask], {k: v[mask] for k, v in self.extra.items()},
                                list(self.missing), self.label_names)

    @classmethod
    def concat(cls, parts: list["FramePredictions"]) -> "FramePredictions":
        """Rows of every part in order (e.g. the batches of a loader, or several shards)."""
        if not parts:
            raise ValueError("FramePredictions.concat needs at least one part")
        keys = set.intersection(*(set(p.extra) for p in parts))
        return cls(np.concatenate([p.probs for p in parts]), np.concatenate([p.labels for p in parts]),
                   np.concatenate([p.video_ids for p in parts]), np.concatenate([p.methods for p in parts]),
                   np.concatenate([p.frame_index for p in parts]),
                   {k: np.concatenate([p.extra[k] for p in parts]) for k in sorted(keys)},
                   [m for p in parts for m in p.missing], parts[0].label_names)

    def attach(self, column: str, mapping: dict[str, object], default: str = "") -> "FramePredictions":
        """Add an ``extra`` column looked up by video id (e.g. DFDC chunk from the cache index)."""
        self.extra[column] = np.asarray([str(mapping.get(v, default)) for v in self.video_ids], dtype=object)
        for m in self.missing:
            m.setdefault(column, str(mapping.get(m["video_id"], default)))
        return self

    def save(self, path: str | os.PathLike) -> Path:
        """Write an ``.npz`` (arrays) that :meth:`load` reads back without pickles."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {"probs": self.probs, "labels": self.labels, "video_ids": self.video_ids.astype(str),
                  "methods": self.methods.astype(str), "frame_index": self.frame_index,
                  "meta": np.asarray(json.dumps({"missing": self.missing, "label_names": self.label_names,
                                                 "extra": sorted(self.extra)}))}
        arrays.update({f"extra_{k}": v.astype(str) for k, v in self.extra.items()})
        np.savez_compressed(path, **arrays)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "FramePredictions":
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            return cls(z["probs"], z["labels"], z["video_ids"], z["methods"], z["frame_index"],
                       {k: z[f"extra_{k}"] for k in meta["extra"]}, meta["missing"],
                       tuple(meta["label_names"]))
