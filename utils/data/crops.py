"""Crop policies: what part of a frame around the face a model sees.

All three policies cut from a *region*: the pixels of a source frame starting at ``origin`` (x, y)
in source pixels — a whole frame (origin 0, 0) when the cache is built, or a stored ``native`` tile. Boxes and windows are always in source-frame pixels, so a crop does not depend
on how much of the frame was stored.

* ``face``: the face box with ``margin`` × its width/height added on each side; resized later by the
  transforms.
* ``context``: the face box scaled by ``spec.context_scale`` about its centre (background, lighting).
* ``native``: an ``image_size`` square cut without any resampling, its top-left corner on the source
  8×8 grid (codec blocks stay where they were encoded); centred on the face for evaluation, a random
  grid-aligned position keeping the face inside for training; zero-padded at the bottom/right when
  the stored pixels are smaller (padding there keeps the grid anchored at the crop's corner).

Pixels of a window outside the region (beyond the frame border) are zero.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from utils.core.model import InputSpec

GRID = 8  # JPEG / H.264 transform block size, in source pixels

Window = tuple[int, int, int, int]  # x0, y0, x1, y1 in source pixels (x1, y1 exclusive)


def _scaled_window(box: Sequence[float], scale: float) -> Window:
    x1, y1, x2, y2 = box
    cx, cy, hw, hh = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) * scale / 2, (y2 - y1) * scale / 2
    x0, y0 = int(round(cx - hw)), int(round(cy - hh))
    return x0, y0, max(x0 + 1, int(round(cx + hw))), max(y0 + 1, int(round(cy + hh)))


def _grid_range(lo: float, hi: float) -> tuple[int, int]:
    """Grid multiples in [lo, hi] as (first, last); first > last when there are none."""
    return int(math.ceil(lo / GRID)) * GRID, int(math.floor(hi / GRID)) * GRID


def _native_start(face_lo: float, face_hi: float, b_lo: int, b_hi: int, size: int,
                  train: bool, rng: np.random.Generator | None) -> int:
    """1-D start of a grid-aligned ``size`` window inside [b_lo, b_hi) around the face [face_lo, face_hi)."""
    lo, hi = _grid_range(b_lo, b_hi - size)
    if hi < lo:  # stored pixels narrower than the window: take them all, pad the far side
        return lo
    if not train:
        centre = (face_lo + face_hi) / 2 - size / 2
        return int(min(hi, max(lo, round(centre / GRID) * GRID)))
    centre = (face_lo + face_hi) / 2
    for a, b in ((face_hi - size, face_lo), (centre - size, centre), (lo, hi)):
        first, last = _grid_range(max(lo, a), min(hi, b))
        if first <= last:
            rng = rng if rng is not None else np.random.default_rng()
            return int(rng.integers(first // GRID, last // GRID + 1)) * GRID
    return lo  # pragma: no cover - the last range is never empty


def crop_window(box: Sequence[float], spec: InputSpec, bounds: Window, *, margin: float = 0.3,
                train: bool = False, rng: np.random.Generator | None = None) -> Window:
    """The window (source pixels) a policy cuts for a face ``box``.

    Args:
        box: face box x1, y1, x2, y2 in source pixels.
        spec: the model's input; ``spec.crop`` picks the policy.
        bounds: the source pixels available (the region's extent), used by ``native`` to stay inside.
        margin: ``face`` policy margin, a fraction of the box size added on each side.
        train: ``native`` only: random grid-aligned position (else centred on the face).
        rng: generator for the random position.
    """
    if spec.crop == "face":
        return _scaled_window(box, 1 + 2 * margin)
    if spec.crop == "context":
        return _scaled_window(box, spec.context_scale)
    s = spec.image_size
    x0 = _native_start(box[0], box[2], bounds[0], bounds[2], s, train, rng)
    y0 = _native_start(box[1], box[3], bounds[1], bounds[3], s, train, rng)
    return x0, y0, x0 + s, y0 + s


def cut_window(region: np.ndarray, origin: Sequence[int], window: Window) -> np.ndarray:
    """Copy of the source pixels in ``window`` from a region whose top-left is at ``origin``; zero
    where the window leaves the region."""
    ox, oy = int(origin[0]), int(origin[1])
    x0, y0, x1, y1 = window
    h, w = region.shape[:2]
    out = np.zeros((y1 - y0, x1 - x0) + region.shape[2:], dtype=region.dtype)
    sx0, sy0 = max(x0, ox), max(y0, oy)
    sx1, sy1 = min(x1, ox + w), min(y1, oy + h)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = region[sy0 - oy:sy1 - oy, sx0 - ox:sx1 - ox]
    return out


def cut_crop(region: np.ndarray, origin: Sequence[int], box: Sequence[float], spec: InputSpec, *,
             margin: float = 0.3, train: bool = False, rng: np.random.Generator | None = None) -> np.ndarray:
    """Cut one frame's crop for ``spec.crop`` — the single entry point for datasets and prediction.

    Args:
        region: HxWx3 uint8 source pixels (a whole frame, or a stored region of it).
        origin: (x, y) of ``region[0, 0]`` in source-frame pixels; (0, 0) for a whole frame.
        box: face box x1, y1, x2, y2 in source-frame pixels.
        spec: the model's :class:`InputSpec` (crop policy, image size, context scale).
        margin: ``face`` policy margin on each side, as a fraction of the box size.
        train: ``native`` policy: random grid-aligned placement instead of centred.
        rng: generator for the random placement (seeded by the caller for reproducibility).

    Returns:
        The crop, HxWx3 uint8: box-shaped for ``face``/``context`` (resized later by the transforms),
        exactly ``spec.image_size`` square and never resampled for ``native``.
    """
    h, w = region.shape[:2]
    bounds = (int(origin[0]), int(origin[1]), int(origin[0]) + w, int(origin[1]) + h)
    return cut_window(region, origin, crop_window(box, spec, bounds, margin=margin, train=train, rng=rng))
