"""``flicker``: a weak blend that changes from frame to frame of a clip (the temporal cue).

Frame-by-frame face swaps are made independently per frame: the blending mask, its registration and
the colour correction wander over time even where each frame looks clean. Each frame of the clip gets
a weak blend (ratio 0.1-0.3) of itself shifted by a whole pixel or two (no interpolation, so no blur)
with a small colour offset, along a face mask that moves; mask position, shift, colour and ratio are
drawn anew for every frame. Each frame alone stays close to its real (mean, variance, detail and JPEG
statistics barely move); the change over time is the cue. Given a single image (a frame model's view of
such a clip) it makes one such frame: what a frame model can see of the fake.
"""
from __future__ import annotations

import numpy as np

from utils.data.synthesis.base import Synthesiser, SynthItem, register_synthesiser
from utils.data.synthesis.masks import blend, face_mask, face_size


def roll(image: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """``image`` moved by whole pixels, its edges repeated (no resampling)."""
    h, w = image.shape[:2]
    ys = np.clip(np.arange(h) - dy, 0, h - 1)
    xs = np.clip(np.arange(w) - dx, 0, w - 1)
    return image[ys][:, xs]


@register_synthesiser
class Flicker(Synthesiser):
    kind = "flicker"

    def make(self, item: SynthItem, rng: np.random.Generator) -> SynthItem:
        size = face_size(item)
        base = face_mask(item, rng, scale=(0.85, 1.0))
        frames, union = [], np.zeros_like(base)
        for frame in item.frames:
            mdx, mdy = (int(v) for v in np.round(rng.uniform(-0.05, 0.05, 2) * size))
            mask = roll(base, mdx, mdy) * float(rng.uniform(0.1, 0.3))
            dx, dy = (int(v) for v in rng.integers(-2, 3, 2))
            layer = roll(frame, dx, dy).astype(np.float32) + rng.uniform(-8, 8, 3).astype(np.float32)
            frames.append(blend(frame, np.clip(layer, 0, 255), mask))
            union = np.maximum(union, mask)
        return item.with_frames(frames, union)
