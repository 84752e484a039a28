"""``blend``: the face blended with a perturbed copy of itself (self-blended images).

After Shiohara & Yamasaki, "Detecting Deepfakes with Self-Blended Images", CVPR 2022: a real face is
mixed with a colour-, detail- (blur, sharpening or a lower resolution, one drawn) and geometry-perturbed
copy of itself along a face mask. The fake carries the traces every face-swap pipeline leaves (a blending boundary, a colour and sharpness
mismatch, a slight misregistration) and nothing else: identity, expression and background are the
real's own, so a model cannot learn "this face was never a real". One set of parameters for all the
frames of a clip.
"""
from __future__ import annotations

import cv2
import numpy as np

from utils.data.synthesis.base import Synthesiser, SynthItem, register_synthesiser
from utils.data.synthesis.masks import blend, face_mask, face_size, shift

BLEND_RATIOS = (0.25, 0.5, 0.75, 1.0, 1.0, 1.0)  # the paper's choice: mostly a full blend, sometimes weak


def perturb_colour(image: np.ndarray, gain: np.ndarray, offset: np.ndarray, contrast: float) -> np.ndarray:
    """Per-channel gain and offset, then contrast about the mean, in float (clipped back to uint8)."""
    x = image.astype(np.float32) * gain + offset
    x = (x - x.mean()) * contrast + x.mean()
    return np.clip(x, 0, 255).astype(np.uint8)


def perturb_sharpness(image: np.ndarray, amount: float) -> np.ndarray:
    """``amount`` < 0 blurs (Gaussian sigma -amount), > 0 sharpens (unsharp mask of that strength)."""
    if abs(amount) < 0.05:
        return image
    blurred = cv2.GaussianBlur(image, (0, 0), max(0.3, abs(amount)) if amount < 0 else 1.0)
    if amount < 0:
        return blurred
    sharp = image.astype(np.float32) * (1 + amount) - blurred.astype(np.float32) * amount
    return np.clip(sharp, 0, 255).astype(np.uint8)


def perturb_resolution(image: np.ndarray, factor: float) -> np.ndarray:
    """Detail lost to a lower resolution: shrunk by ``factor`` (area) and enlarged back (bicubic)."""
    if factor >= 0.98:
        return image
    h, w = image.shape[:2]
    small = cv2.resize(image, (max(2, round(w * factor)), max(2, round(h * factor))),
                       interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


@register_synthesiser
class Blend(Synthesiser):
    kind = "blend"

    def make(self, item: SynthItem, rng: np.random.Generator) -> SynthItem:
        size = face_size(item)
        gain = rng.uniform(0.9, 1.1, 3).astype(np.float32)
        offset = rng.uniform(-14, 14, 3).astype(np.float32)
        contrast = float(rng.uniform(0.9, 1.1))
        detail = int(rng.integers(4))   # as in the paper: blur, sharpen, lower resolution, or none
        sharpness = (float(rng.uniform(-1.4, -0.4)), float(rng.uniform(0.3, 0.9)), 0.0, 0.0)[detail]
        resolution = float(rng.uniform(0.5, 0.9)) if detail == 2 else 1.0
        scale = float(rng.uniform(0.96, 1.04))
        dx, dy = rng.uniform(-0.03, 0.03, 2) * size
        mask = face_mask(item, rng) * float(rng.choice(BLEND_RATIOS))
        frames = []
        for frame in item.frames:
            layer = perturb_colour(frame, gain, offset, contrast)
            layer = perturb_resolution(perturb_sharpness(layer, sharpness), resolution)
            frames.append(blend(frame, shift(layer, dx, dy, scale), mask))
        return item.with_frames(frames, mask)
