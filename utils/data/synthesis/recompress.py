"""``recompress``: the face region re-encoded as JPEG at another quality, or on a shifted 8x8 grid.

Spliced faces are usually encoded twice: once in the pipeline that made them and once with the frame.
The region inside a hard-edged face mask is replaced by a JPEG round trip of the crop at quality
25-70, its block grid either on the crop's own grid or shifted by 1-7 pixels (the crop is shifted
before encoding and shifted back after), so the face's quantisation and block boundaries differ from
the rest of the frame. No colour or geometry is changed on purpose; meant for the ``native`` crops the
compression specialist reads, where the pixels are the source's own.
"""
from __future__ import annotations

import cv2
import numpy as np

from utils.data.synthesis.base import Synthesiser, SynthItem, register_synthesiser
from utils.data.synthesis.masks import blend, hull_mask, soften


def jpeg_round_trip(image: np.ndarray, quality: int, dx: int = 0, dy: int = 0) -> np.ndarray:
    """``image`` through JPEG at ``quality`` with its 8x8 grid moved by (dx, dy) pixels (0-7)."""
    padded = np.pad(image, ((dy, 8), (dx, 8), (0, 0)), mode="edge")
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(padded, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - OpenCV always encodes a uint8 image
        raise RuntimeError("JPEG encoding failed")
    decoded = cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    h, w = image.shape[:2]
    return decoded[dy:dy + h, dx:dx + w]


@register_synthesiser
class Recompress(Synthesiser):
    kind = "recompress"

    def make(self, item: SynthItem, rng: np.random.Generator) -> SynthItem:
        quality = int(rng.integers(25, 71))
        dx, dy = (int(v) for v in rng.integers(1, 8, 2)) if rng.random() < 0.5 else (0, 0)
        mask = soften(hull_mask(item, rng, scale=(0.9, 1.1)), float(rng.uniform(0.0, 1.0)))
        frames = [blend(f, jpeg_round_trip(f, quality, dx, dy), mask) for f in item.frames]
        return item.with_frames(frames, mask)
