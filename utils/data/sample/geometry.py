"""Small geometry helpers shared by the renderer and the manipulations (affines, landmarks, masks)."""
from __future__ import annotations

import cv2
import numpy as np


def affine3(matrix: np.ndarray) -> np.ndarray:
    """A 2x3 affine as a 3x3 matrix, so affines compose with ``@``."""
    return np.vstack([np.asarray(matrix, np.float64)[:2], [0.0, 0.0, 1.0]])


def invert_rows(matrix: np.ndarray) -> np.ndarray:
    """The top two rows of the inverse of a 3x3 affine."""
    return np.linalg.inv(matrix)[:2]


def forward_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 3x3 (or 2x3) affine to points [N, 2]."""
    return (points @ matrix[:2, :2].T + matrix[:2, 2]).astype(np.float32)


def ping_pong(position: int, length: int) -> int:
    """Frame index that plays a clip of ``length`` frames forwards then backwards, endlessly."""
    if length <= 1:
        return 0
    position %= 2 * length - 2
    return position if position < length else 2 * length - 2 - position


def similarity(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, scale, shift) mapping points ``source`` onto ``target``, 2x3.

    Closed form (Umeyama), so it is deterministic, unlike RANSAC-based estimators.
    """
    mu_s, mu_t = source.mean(0), target.mean(0)
    s, t = source - mu_s, target - mu_t
    u, sig, vt = np.linalg.svd(t.T @ s / len(source))
    d = np.diag([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt)) or 1.0])
    rotation = u @ d @ vt
    scale = float((sig * np.diag(d)).sum() / s.var(0).sum())
    shift = mu_t - scale * rotation @ mu_s
    return np.hstack([scale * rotation, shift[:, None]])


def face_axes(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """The face frame of five landmarks: eye midpoint, unit axes along and across the eyes, eye distance."""
    origin = (landmarks[0] + landmarks[1]) / 2
    along = landmarks[1] - landmarks[0]
    unit = float(np.linalg.norm(along)) or 1.0
    along = along / unit
    return origin, along, np.array([-along[1], along[0]]), unit


def box_slices(box: np.ndarray, shape: tuple[int, int]) -> tuple[slice, slice]:
    """Row and column slices of a face box ``x1 y1 x2 y2`` (inclusive), clipped to a frame of ``shape``."""
    height, width = shape
    x1, y1, x2, y2 = (int(v) for v in box)
    return slice(max(y1, 0), max(min(y2 + 1, height), 1)), slice(max(x1, 0), max(min(x2 + 1, width), 1))


def soft_mask(size: tuple[int, int], origin: np.ndarray, draw, feather: float) -> np.ndarray:
    """A float mask of ``size`` (a face box region) in [0, 1]: ``draw(mask, origin)`` fills a region in
    frame coordinates, which is then blurred by ``feather`` px.

    Masks live in the face-box region only and fade out at its edges, so a manipulation never touches
    pixels outside the ground-truth face box.
    """
    mask = np.zeros(size, np.float32)
    draw(mask, np.asarray(origin, np.float32))
    if feather > 0:
        mask = cv2.GaussianBlur(mask, (0, 0), feather)
    # Fade to zero towards the box edges, so a region drawn past them leaves no seam along the box.
    ramp = max(1.0, 1.5 * feather)
    rows = np.clip(np.minimum(np.arange(size[0]), np.arange(size[0])[::-1]) / ramp, 0, 1)
    cols = np.clip(np.minimum(np.arange(size[1]), np.arange(size[1])[::-1]) / ramp, 0, 1)
    return mask * rows[:, None].astype(np.float32) * cols[None].astype(np.float32)


def ellipse_drawer(centre: np.ndarray, axes: tuple[float, float], angle: float):
    """A ``draw`` callback for :func:`soft_mask` that fills an ellipse (centre in frame pixels)."""
    def draw(roi: np.ndarray, offset: np.ndarray) -> None:
        c = centre - offset
        cv2.ellipse(roi, (int(round(c[0])), int(round(c[1]))), (max(1, int(axes[0])), max(1, int(axes[1]))),
                    angle, 0, 360, 1.0, -1)
    return draw


def polygon_drawer(points: np.ndarray):
    """A ``draw`` callback for :func:`soft_mask` that fills the convex hull of ``points``."""
    def draw(roi: np.ndarray, offset: np.ndarray) -> None:
        hull = cv2.convexHull(np.round(points - offset).astype(np.int32))
        cv2.fillConvexPoly(roi, hull, 1.0)
    return draw
