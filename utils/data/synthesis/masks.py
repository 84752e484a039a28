"""Face masks and blending for the image synthesisers.

A mask is a float32 HxW map in [0, 1], exactly 0 outside a finite support, so a blend through it
leaves every pixel outside the support bit-identical to the real crop (the tests check this). Its
shape follows the face: the five landmarks and an outline placed in the face box (moved with the
landmarks when the detector's are known), each point jittered, the hull filled, its edge softened by a
Gaussian of random width with a finite kernel.
"""
from __future__ import annotations

import cv2
import numpy as np

from utils.data.synthesis.base import LANDMARK_TEMPLATE, OUTLINE_TEMPLATE, SynthItem, place


def _outline(item: SynthItem) -> np.ndarray:
    """Outline points of the face in crop pixels, moved by the similarity that takes the landmark
    template onto the item's landmarks (the identity when only the box is known)."""
    outline = place(OUTLINE_TEMPLATE, item.box)
    if item.landmarks is None:
        return outline
    matrix, _ = cv2.estimateAffinePartial2D(place(LANDMARK_TEMPLATE, item.box), item.points())
    return outline if matrix is None else outline @ matrix[:, :2].T + matrix[:, 2]


def face_size(item: SynthItem) -> float:
    """The face's scale in crop pixels (mean of the box sides)."""
    x1, y1, x2, y2 = (float(v) for v in item.box)
    return max(2.0, ((x2 - x1) + (y2 - y1)) / 2)


def hull_mask(item: SynthItem, rng: np.random.Generator, *, jitter: float = 0.05,
              scale: tuple[float, float] = (0.8, 1.05)) -> np.ndarray:
    """A hard 0/1 mask of the face: the hull of its landmarks and outline, every point jittered by
    ``jitter`` x the face size and the whole shape scaled about its centre by a factor from ``scale``."""
    h, w = item.frames[0].shape[:2]
    size = face_size(item)
    points = np.concatenate([item.points(), _outline(item)])
    centre = points.mean(axis=0)
    points = centre + (points - centre) * rng.uniform(*scale)
    points = points + rng.normal(0.0, jitter * size, points.shape)
    mask = np.zeros((h, w), np.uint8)
    hull = cv2.convexHull(np.round(points).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 1)
    return mask.astype(np.float32)


def soften(mask: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian-softened mask with a finite kernel (support grows by at most 3 sigma), in [0, 1]."""
    if sigma < 0.3:
        return mask
    k = 2 * int(np.ceil(3 * sigma)) + 1
    return np.clip(cv2.GaussianBlur(mask, (k, k), sigma, borderType=cv2.BORDER_CONSTANT), 0.0, 1.0)


def face_mask(item: SynthItem, rng: np.random.Generator, **kwargs) -> np.ndarray:
    """The usual soft face mask: a jittered hull (:func:`hull_mask`) softened by 2-8 % of the face size."""
    return soften(hull_mask(item, rng, **kwargs), rng.uniform(0.02, 0.08) * face_size(item))


def blend(real: np.ndarray, layer: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``real`` with ``layer`` mixed in through ``mask`` (HxW); pixels where the mask is 0 keep their
    exact real values (the change is added as a rounded difference, zero where the mask is zero)."""
    diff = (layer.astype(np.float32) - real.astype(np.float32)) * mask[..., None]
    return np.clip(real.astype(np.float32) + np.round(diff), 0, 255).astype(np.uint8)


def shift(image: np.ndarray, dx: float, dy: float, scale: float = 1.0,
          interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """``image`` scaled about its centre and translated by (dx, dy) pixels, edges replicated."""
    h, w = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), 0.0, scale)
    matrix[:, 2] += (dx, dy)
    return cv2.warpAffine(image, matrix, (w, h), flags=interpolation, borderMode=cv2.BORDER_REPLICATE)
