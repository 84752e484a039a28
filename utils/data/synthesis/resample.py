"""``resample``: the face region down-sampled, up-sampled back and sharpened, then blended in.

Face-swap pipelines generate the face at a lower resolution than the frame and scale it up, usually
followed by the sharpening that makes the result look crisp. The crop is shrunk by a factor of
0.4-0.8 with a random kernel (area, bilinear, bicubic or nearest), enlarged back with a bilinear or
bicubic kernel, unsharp-masked, and blended in along a soft face mask: the face loses its highest
frequencies and gains the resampling kernel's periodic traces, on the ``native`` pixels the resampling
specialist reads.
"""
from __future__ import annotations

import cv2
import numpy as np

from utils.data.synthesis.base import Synthesiser, SynthItem, register_synthesiser
from utils.data.synthesis.masks import blend, face_mask

DOWN = (cv2.INTER_AREA, cv2.INTER_LINEAR, cv2.INTER_CUBIC, cv2.INTER_NEAREST)
UP = (cv2.INTER_LINEAR, cv2.INTER_CUBIC)


def resample(image: np.ndarray, factor: float, down: int, up: int, sharpen: float) -> np.ndarray:
    """``image`` scaled by ``factor`` and back to its size, then unsharp-masked with ``sharpen``."""
    h, w = image.shape[:2]
    small = cv2.resize(image, (max(2, round(w * factor)), max(2, round(h * factor))), interpolation=down)
    back = cv2.resize(small, (w, h), interpolation=up).astype(np.float32)
    blurred = cv2.GaussianBlur(back, (0, 0), 1.0)
    return np.clip(back + sharpen * (back - blurred), 0, 255).astype(np.uint8)


@register_synthesiser
class Resample(Synthesiser):
    kind = "resample"

    def make(self, item: SynthItem, rng: np.random.Generator) -> SynthItem:
        factor = float(rng.uniform(0.4, 0.8))
        down, up = int(rng.choice(DOWN)), int(rng.choice(UP))
        sharpen = float(rng.uniform(0.0, 1.0))
        mask = face_mask(item, rng, scale=(0.9, 1.1))
        frames = [blend(f, resample(f, factor, down, up, sharpen), mask) for f in item.frames]
        return item.with_frames(frames, mask)
