"""Face detection behind a small interface, and the choice of the main face track of a video.

A detector maps a list of RGB frames to the faces found in each (:class:`FaceDetector`); MTCNN from
facenet-pytorch is the default because its weights ship inside the wheel (no download). Detections
on the sampled frames of a video are linked into tracks and one track is kept — the one that is
large, confident and present in most frames — so every stored crop shows the same person; frames
where that face was missed get a box interpolated from its neighbours.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol, Sequence, runtime_checkable

import numpy as np
import torch

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Detection:
    """A face: ``box`` (x1, y1, x2, y2) in source pixels and the detector's ``score`` in [0, 1]."""

    box: tuple[float, float, float, float]
    score: float

    @property
    def area(self) -> float:
        x1, y1, x2, y2 = self.box
        return max(0.0, x2 - x1) * max(0.0, y2 - y1)


@runtime_checkable
class FaceDetector(Protocol):
    """Anything that finds faces in a batch of frames of one video (equal sizes)."""

    def detect(self, frames: list[np.ndarray]) -> list[list[Detection]]:
        """Faces found in each HxWx3 uint8 RGB frame, in the frames' pixel coordinates."""
        ...


class MTCNNDetector:
    """facenet-pytorch's MTCNN over batches of frames.

    Frames whose longer side exceeds ``max_size`` are downscaled for detection (the DFDC winner ran
    MTCNN at half resolution on 1080p) and the boxes scaled back: with the defaults, faces down to
    about 3 % of the frame's longer side (``min_face / max_size``) are found, 60 px in a 1080p frame;
    the detector's cost falls with the square of the scale. The stage thresholds sit between
    facenet's (0.6, 0.7, 0.7) and the DFDC winner's (0.85, 0.95, 0.95). The network is built on
    first use, so the object pickles cheaply into worker processes.

    Args:
        device: ``auto`` (the GPU when one is present: batched MTCNN there), ``cpu``, ``cuda``, ``cuda:1``...
        max_size: longest side, in pixels, seen by the detector (0: never downscale; ``None``: 640 on
            the CPU, 1280 on a GPU, where the cost of the pixels hardly shows).
        batch_size: frames per MTCNN call.
        min_face: smallest face searched for, in detector pixels.
        thresholds: MTCNN's three stage thresholds.
        min_score: detections below this score are dropped.
    """

    def __init__(self, device: str = "auto", max_size: int | None = None, batch_size: int = 16, min_face: int = 20,
                 thresholds: Sequence[float] = (0.7, 0.8, 0.9), min_score: float = 0.9):
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if max_size is None:
            max_size = 640 if device == "cpu" else 1280
        self.device, self.max_size, self.batch_size = device, max_size, batch_size
        self.min_face, self.thresholds, self.min_score = min_face, tuple(thresholds), min_score
        self._net = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_net": None}

    @property
    def net(self):
        if self._net is None:
            from facenet_pytorch import MTCNN
            self._net = MTCNN(keep_all=True, device=self.device, min_face_size=self.min_face,
                              thresholds=list(self.thresholds), post_process=False)
        return self._net

    def detect(self, frames: list[np.ndarray]) -> list[list[Detection]]:
        if not frames:
            return []
        h, w = frames[0].shape[:2]
        scale = min(1.0, self.max_size / max(h, w)) if self.max_size else 1.0
        out: list[list[Detection]] = []
        for start in range(0, len(frames), self.batch_size):
            batch = np.stack(frames[start:start + self.batch_size])
            if scale < 1.0:
                batch = _resize_batch(batch, scale)
            boxes, probs = self.net.detect(batch)
            for b, p in zip(boxes, probs):
                faces = [] if b is None else [Detection(tuple(float(v) / scale for v in bb), float(s))
                                              for bb, s in zip(b, p) if s is not None and s >= self.min_score]
                out.append(faces)
        return out


def _resize_batch(batch: np.ndarray, scale: float) -> np.ndarray:
    import cv2
    h, w = batch.shape[1:3]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in batch])


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two x1y1x2y2 boxes."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _linked(a: np.ndarray, b: np.ndarray, iou_threshold: float) -> float:
    """Link strength of two boxes on nearby sampled frames: IoU, or a centre-distance fallback
    (frames sampled seconds apart may not overlap for a moving head); 0 = not the same face."""
    iou = box_iou(a, b)
    if iou >= iou_threshold:
        return iou
    size = max(a[2] - a[0], a[3] - a[1], b[2] - b[0], b[3] - b[1])
    dist = np.hypot((a[0] + a[2] - b[0] - b[2]) / 2, (a[1] + a[3] - b[1] - b[3]) / 2)
    ratio = np.sqrt(max(1e-6, (a[2] - a[0]) * (a[3] - a[1])) / max(1e-6, (b[2] - b[0]) * (b[3] - b[1])))
    return 1e-3 if dist < 0.5 * size and 0.5 < ratio < 2.0 else 0.0


@dataclass
class Track:
    """The main face of a video on its sampled frames: ``boxes`` N×4 (interpolated where the face
    was missed), ``detected`` N bool, ``scores`` N (0 where missed)."""

    boxes: np.ndarray
    detected: np.ndarray
    scores: np.ndarray


def _link_tracks(detections: list[list[Detection]], iou_threshold: float) -> list[dict[int, Detection]]:
    tracks: list[dict[int, Detection]] = []
    for i, faces in enumerate(detections):
        # greedy matching, strongest links first; each track and face is used once per frame
        pairs = sorted(((_linked(np.array(t[max(t)].box), np.array(f.box), iou_threshold), ti, fi)
                        for ti, t in enumerate(tracks) for fi, f in enumerate(faces)), reverse=True)
        used_t, used_f = set(), set()
        for strength, ti, fi in pairs:
            if strength <= 0 or ti in used_t or fi in used_f:
                continue
            tracks[ti][i] = faces[fi]
            used_t.add(ti)
            used_f.add(fi)
        tracks.extend({i: f} for fi, f in enumerate(faces) if fi not in used_f)
    return tracks


def select_track(detections: list[list[Detection]], frame_indices: Sequence[int] | None = None,
                 iou_threshold: float = 0.3) -> Track | None:
    """Link detections across frames into tracks and keep the main one.

    Tracks are scored by the sum over their frames of ``score * sqrt(area)``: a face that is large,
    confident and present on many frames wins over a brief or small one (a passer-by, a poster, a
    false positive). Missed frames get boxes interpolated linearly in ``frame_indices`` (held
    constant beyond the first/last detection).

    Args:
        detections: per sampled frame, the faces found (frames in increasing time order).
        frame_indices: the frames' numbers in the video (default 0..N-1); used for interpolation.
        iou_threshold: boxes on consecutive sampled frames with at least this IoU are the same face.

    Returns:
        The main :class:`Track`, or ``None`` if no frame has a face.
    """
    n = len(detections)
    x = np.arange(n, dtype=np.float64) if frame_indices is None else np.asarray(frame_indices, np.float64)
    if len(x) != n:
        raise ValueError(f"{n} detection lists but {len(x)} frame indices")
    tracks = _link_tracks(detections, iou_threshold)
    if not tracks:
        return None
    best = max(tracks, key=lambda t: sum(d.score * np.sqrt(d.area) for d in t.values()))
    have = np.array(sorted(best))
    known = np.array([best[i].box for i in have], dtype=np.float64)
    boxes = np.stack([np.interp(x, x[have], known[:, k]) for k in range(4)], axis=1)
    detected = np.zeros(n, bool)
    detected[have] = True
    scores = np.zeros(n, np.float32)
    scores[have] = [best[i].score for i in have]
    return Track(boxes.astype(np.float32), detected, scores)
