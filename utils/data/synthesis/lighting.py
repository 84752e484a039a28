"""``lighting``: the face relit against its unchanged surroundings (the background/lighting cue).

A multiplicative light field on the face region: an overall gain, a colour-temperature tilt (red and
blue moved in opposite directions) and a linear gradient across the face at a random angle, as if the
face had been filmed under another light than the scene around it. The change fades out over a soft
face mask; the background, hair and neck keep their real pixels.
"""
from __future__ import annotations

import numpy as np

from utils.data.synthesis.base import Synthesiser, SynthItem, register_synthesiser
from utils.data.synthesis.masks import blend, face_mask, face_size


def _signed(rng: np.random.Generator, low: float, high: float) -> float:
    """A magnitude in [low, high] with a random sign: never a near-identity change."""
    return float(rng.uniform(low, high) * rng.choice((-1.0, 1.0)))


def light_field(shape: tuple[int, int], centre: np.ndarray, size: float, rng: np.random.Generator) -> np.ndarray:
    """HxWx3 multiplicative field: gain x temperature x (1 + gradient along a random direction)."""
    h, w = shape
    gain = 1.0 + _signed(rng, 0.12, 0.3)
    tilt = _signed(rng, 0.06, 0.18)
    temperature = np.array([1 + tilt, 1.0, 1 - tilt], np.float32)
    angle, amplitude = rng.uniform(0, 2 * np.pi), rng.uniform(0.15, 0.4)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    along = ((xs - centre[0]) * np.cos(angle) + (ys - centre[1]) * np.sin(angle)) / size
    ramp = 1.0 + amplitude * np.clip(along, -1.0, 1.0)
    return (gain * ramp)[..., None] * temperature


@register_synthesiser
class Lighting(Synthesiser):
    kind = "lighting"

    def make(self, item: SynthItem, rng: np.random.Generator) -> SynthItem:
        size = face_size(item)
        centre = np.array([(item.box[0] + item.box[2]) / 2, (item.box[1] + item.box[3]) / 2], np.float32)
        field = light_field(item.frames[0].shape[:2], centre, size, rng)
        mask = face_mask(item, rng, scale=(0.9, 1.1))
        frames = [blend(f, np.clip(f.astype(np.float32) * field, 0, 255), mask) for f in item.frames]
        return item.with_frames(frames, mask)
