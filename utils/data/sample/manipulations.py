"""Fake-making techniques, one function per method name, applied to rendered real footage.

Each function takes the target's :class:`Footage` (the real video the fake is made from), a source
footage (whose face or expression is used; ignored by methods that only use the target) and a seeded
generator, and returns the fake frames. Fakes stay pixel-aligned with the target and only change pixels
inside its ground-truth face boxes: the cue sits in the face, never in the frame's size, rate or
background. The techniques follow the real methods they are named after:

- identity swap (Deepfakes, Celeb-DF synthesis): the source face aligned onto the target, its detail lost
  to a low-resolution "autoencoder", blended with a soft elliptical mask and an imperfect colour match;
- graphics swap (FaceSwap): a landmark-hull mask with a hard edge, no colour match;
- region re-synthesis (Face2Face): the mouth and chin re-rendered from the target's own frame whose
  expression matches the source's at that moment;
- self-blending with re-compression (NeuralTextures): a colour- and geometry-perturbed copy of the face,
  JPEG re-compressed at a lower quality than the frame, blended back (as in self-blended images);
- face re-compression (DFDC): only the face region re-compressed.
Temporal inconsistency: the blended region jitters and flickers from frame to frame in most of them.
"""
from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

from utils.data.sample.geometry import (
    box_slices,
    ellipse_drawer,
    face_axes,
    polygon_drawer,
    similarity,
    soft_mask,
)
from utils.data.sample.render import Footage

Manipulation = Callable[[Footage, Footage, np.random.Generator], np.ndarray]


class _Region:
    """The face box of one target frame: where every manipulation works (and the only pixels it changes)."""

    def __init__(self, footage: Footage, t: int):
        self.frame, self.box, self.points = footage.frames[t], footage.boxes[t], footage.landmarks[t]
        self.rows, self.cols = box_slices(self.box, self.frame.shape[:2])
        self.origin = np.array([self.cols.start, self.rows.start], np.float32)
        self.pixels = self.frame[self.rows, self.cols]
        self.size = self.pixels.shape[:2]
        self.height = float(self.box[3] - self.box[1])

    def warp(self, image: np.ndarray, matrix: np.ndarray) -> np.ndarray:
        """``image`` warped by the 2x3 frame-coordinate ``matrix``, cut to this region."""
        shifted = matrix.copy()
        shifted[:, 2] -= self.origin
        return cv2.warpAffine(image, shifted, (self.size[1], self.size[0]), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REFLECT)

    def paste(self, layer: np.ndarray, mask: np.ndarray, gain: float = 1.0) -> np.ndarray:
        """The whole frame with ``layer`` blended into the region through ``mask``."""
        m = mask[..., None]
        mixed = self.pixels.astype(np.float32) * (1 - m) + layer.astype(np.float32) * (gain * m)
        out = self.frame.copy()
        out[self.rows, self.cols] = np.clip(mixed + 0.5, 0, 255).astype(np.uint8)
        return out

    def face_ellipse(self, scale: float, feather: float, shift: np.ndarray | None = None) -> np.ndarray:
        """Soft ellipse over the inner face (brows to chin), inscribed in the box so it never leaves it."""
        w, h = self.box[2] - self.box[0], self.box[3] - self.box[1]
        centre = np.array([(self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2 + 0.04 * h])
        if shift is not None:
            centre = centre + shift
        axes = (max(2.0, 0.5 * w * scale - 2 * feather), max(2.0, 0.5 * h * scale - 2 * feather))
        return soft_mask(self.size, self.origin, ellipse_drawer(centre, axes, _angle(self.points)), feather)

    def mouth_ellipse(self, points: np.ndarray, feather: float) -> np.ndarray:
        """Soft ellipse over mouth and chin, the region an expression transfer re-renders."""
        _, _, across, unit = face_axes(points)
        centre = (points[3] + points[4]) / 2 + 0.25 * unit * across
        axes = (1.1 * unit - feather, 0.75 * unit - feather)
        return soft_mask(self.size, self.origin, ellipse_drawer(centre, axes, _angle(points)), feather)


def _signed(rng: np.random.Generator, low: float, high: float) -> float:
    """A perturbation of random sign whose size is at least ``low``: big enough to leave a trace."""
    return float(rng.choice([-1.0, 1.0]) * rng.uniform(low, high))


def _angle(points: np.ndarray) -> float:
    _, along, _, _ = face_axes(points)
    return float(np.degrees(np.arctan2(along[1], along[0])))


def _hull_points(landmarks: np.ndarray) -> np.ndarray:
    """A face outline extrapolated from five landmarks: brows, temples, cheeks, jaw and chin."""
    origin, along, across, unit = face_axes(landmarks)
    offsets = [(-0.75, -0.35), (0.75, -0.35), (-0.95, 0.3), (0.95, 0.3), (-0.8, 1.05), (0.8, 1.05),
               (-0.4, 1.55), (0.4, 1.55), (0.0, 1.65), (0.0, -0.45)]
    return np.array([origin + unit * (u * along + v * across) for u, v in offsets], np.float32)


def _match_colour(patch: np.ndarray, reference: np.ndarray, mask: np.ndarray, strength: float) -> np.ndarray:
    """Move the patch's Lab mean and spread inside ``mask`` towards the reference's by ``strength``."""
    weight = mask > 0.5
    if strength <= 0 or weight.sum() < 16:
        return patch
    lab_p = cv2.cvtColor(patch, cv2.COLOR_RGB2LAB).astype(np.float32)
    lab_r = cv2.cvtColor(reference, cv2.COLOR_RGB2LAB).astype(np.float32)
    mp, sp = lab_p[weight].mean(0), lab_p[weight].std(0) + 1e-3
    mr, sr = lab_r[weight].mean(0), lab_r[weight].std(0) + 1e-3
    out = lab_p + strength * ((lab_p - mp) * (sr / sp) + mr - lab_p)
    return cv2.cvtColor(np.clip(out, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)


def _degrade(image: np.ndarray, factor: float) -> np.ndarray:
    """Lose detail as a low-resolution generator does: down-sample by ``factor`` and back up."""
    if factor <= 1:
        return image
    h, w = image.shape[:2]
    small = cv2.resize(image, (max(4, int(w / factor)), max(4, int(h / factor))),
                       interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """JPEG round trip at ``quality`` (the face region gets a quality the rest of the frame does not)."""
    ok, data = cv2.imencode(".jpg", np.ascontiguousarray(image), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    return cv2.imdecode(data, cv2.IMREAD_UNCHANGED).reshape(image.shape)


def _swap(target: Footage, source: Footage, rng: np.random.Generator, *, colour: float, resolution: float,
          scale: float, feather: float, flicker: float, tint: float) -> np.ndarray:
    """Identity swap: align the source face to the target's landmarks, degrade, colour-match, blend."""
    out = np.empty_like(target.frames)
    offset = rng.normal(0.0, tint, 3).astype(np.float32)
    for t in range(len(target.frames)):
        s, region = t % len(source.frames), _Region(target, t)
        jitter = rng.normal(0.0, flicker, 4)
        matrix = similarity(source.landmarks[s], region.points + jitter[:2] * region.height * 0.5)
        face = _degrade(region.warp(source.frames[s], matrix), resolution)
        mask = region.face_ellipse(scale * (1 + jitter[2]), feather * region.height)
        face = _match_colour(face, region.pixels, mask, colour)
        out[t] = region.paste(np.clip(face.astype(np.float32) + offset, 0, 255), mask, gain=1 + jitter[3])
    return out


def deepfakes(target: Footage, source: Footage, rng: np.random.Generator) -> np.ndarray:
    """FF++ Deepfakes: autoencoder-like swap, soft mask, partial colour match, flickering blend."""
    return _swap(target, source, rng, colour=rng.uniform(0.3, 0.6), resolution=rng.uniform(2.2, 3.0),
                 scale=0.95, feather=0.06, flicker=0.025, tint=3.0)


def faceswap(target: Footage, source: Footage, rng: np.random.Generator) -> np.ndarray:
    """FF++ FaceSwap: graphics-style swap, landmark-hull mask with a hard jittering edge, no colour match."""
    out = np.empty_like(target.frames)
    blur = rng.uniform(0.7, 1.1)
    for t in range(len(target.frames)):
        s, region = t % len(source.frames), _Region(target, t)
        h = region.height
        face = cv2.GaussianBlur(region.warp(source.frames[s], similarity(source.landmarks[s], region.points)),
                                (0, 0), blur)
        hull = _hull_points(region.points) + rng.normal(0.0, 0.015 * h, (10, 2)).astype(np.float32)
        hull = np.clip(hull, region.box[:2] + 0.06 * h, region.box[2:] - 0.06 * h)
        out[t] = region.paste(face, soft_mask(region.size, region.origin, polygon_drawer(hull), 0.015 * h))
    return out


def face2face(target: Footage, source: Footage, rng: np.random.Generator) -> np.ndarray:
    """FF++ Face2Face: the mouth region re-rendered with the source's expression (the target's own face).

    At each frame the target frame whose mouth opening best matches the source's is aligned to the
    current pose, blurred as a re-rendering would be, and blended over mouth and chin.
    """
    out = np.empty_like(target.frames)
    resolution, gain = rng.uniform(2.2, 3.0), 1 + _signed(rng, 0.04, 0.08)
    frames = np.arange(len(target.frames))
    for t in range(len(target.frames)):
        region = _Region(target, t)
        wanted = source.mouth[t % len(source.mouth)]
        k = int(np.argmin(np.abs(target.mouth - wanted) + 0.004 * np.abs(frames - t)))
        matrix = similarity(target.landmarks[k], region.points)
        mouth = _degrade(region.warp(target.frames[k], matrix), resolution)
        points = region.points + rng.normal(0.0, 0.01 * region.height, (5, 2)).astype(np.float32)
        out[t] = region.paste(mouth, region.mouth_ellipse(points, 0.07 * region.height),
                              gain=gain + rng.normal(0.0, 0.015))
    return out


def neural_textures(target: Footage, source: Footage, rng: np.random.Generator) -> np.ndarray:
    """FF++ NeuralTextures: a perturbed, re-compressed copy of the face blended back (self-blending)."""
    out = np.empty_like(target.frames)
    scale, hue, sat = rng.uniform(1.03, 1.07), _signed(rng, 3.0, 8.0), 1 + _signed(rng, 0.1, 0.2)
    value, quality, blur = 1 + _signed(rng, 0.06, 0.12), rng.uniform(12, 25), rng.uniform(0.5, 1.0)
    for t in range(len(target.frames)):
        region = _Region(target, t)
        box = region.box
        centre = (float((box[0] + box[2]) / 2), float((box[1] + box[3]) / 2))
        angle, zoom = float(rng.normal(0.0, 0.5)), float(scale + rng.normal(0.0, 0.005))
        matrix = cv2.getRotationMatrix2D(centre, angle, zoom)
        matrix[:, 2] += rng.normal(0.0, 0.01 * region.height, 2)
        hsv = cv2.cvtColor(region.warp(region.frame, matrix), cv2.COLOR_RGB2HSV).astype(np.float32)
        hsv[..., 0] = (hsv[..., 0] + hue / 2) % 180
        hsv[..., 1:] *= np.array([sat, value], np.float32)
        copy = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2RGB)
        copy = cv2.GaussianBlur(copy, (0, 0), blur)
        copy = _jpeg(copy, int(quality + rng.integers(-4, 5)))
        out[t] = region.paste(copy, region.face_ellipse(0.88, 0.06 * region.height))
    return out


def face_recompress(target: Footage, source: Footage, rng: np.random.Generator) -> np.ndarray:
    """Only the face region re-compressed, at a much lower quality than the rest of the frame."""
    out = np.empty_like(target.frames)
    quality = rng.uniform(8, 20)
    for t in range(len(target.frames)):
        region = _Region(target, t)
        mask = region.face_ellipse(0.92, 0.05 * region.height)
        out[t] = region.paste(_jpeg(region.pixels, int(quality)), mask)
    return out


def celebdf_synthesis(target: Footage, source: Footage, rng: np.random.Generator) -> np.ndarray:
    """Celeb-DF v2 synthesis: a higher-quality swap (better resolution and colour match, wide feather)."""
    return _swap(target, source, rng, colour=rng.uniform(0.85, 1.0), resolution=rng.uniform(1.4, 1.8),
                 scale=0.92, feather=0.09, flicker=0.008, tint=1.0)


FFPP_METHODS: dict[str, Manipulation] = {
    "Deepfakes": deepfakes, "Face2Face": face2face, "FaceSwap": faceswap, "NeuralTextures": neural_textures,
}
# DFDC mixes techniques under one FAKE label; the weights say how often each is drawn.
DFDC_METHODS: dict[str, tuple[Manipulation, float]] = {
    "swap": (deepfakes, 0.3), "swap_hq": (celebdf_synthesis, 0.25), "graphics_swap": (faceswap, 0.1),
    "reenact": (face2face, 0.1), "self_blend": (neural_textures, 0.15), "recompress": (face_recompress, 0.1),
}
METHODS: dict[str, Manipulation] = {
    **FFPP_METHODS, "synthesis": celebdf_synthesis, **{name: fn for name, (fn, _) in DFDC_METHODS.items()},
}
