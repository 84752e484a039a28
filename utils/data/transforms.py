"""Image augmentations per crop policy (albumentations 2.x), one random draw per clip.

Training recipe after the DFDC winner's: JPEG re-compression (quality 60-100), Gaussian noise,
blur, horizontal flip, isotropic resize (longest side) + pad to a square, brightness/contrast or
HSV, to-gray, and a small shift-scale-rotate (``Affine``). Validation: isotropic resize + pad only.
CLAHE is an option for both (stage 2 of the curriculum turns it on); it is a per-pixel tone map,
so ``native`` crops get it too when asked.

``native`` crops are never resampled: the cm/rr models read compression and resampling traces that
any interpolation would erase, so they get only a horizontal flip and pixel-space noise, and the
frames must already have the model's size (the dataset cuts them grid-aligned).

Frames of a clip are transformed with one set of random parameters (see :class:`ClipTransform`):
a temporal model must see motion, not per-frame augmentation jitter. Normalisation is not
done here: batches carry uint8 and the model normalises.
"""
from __future__ import annotations

import os
import random
from functools import lru_cache
from typing import Callable, Sequence

import cv2
import numpy as np
import torch

from utils.core.model import InputSpec

Frames = list[np.ndarray]


def _albumentations():
    """Import albumentations without its network version check (offline machines, worker start-up)."""
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    import albumentations as A
    return A


def _resize_pad(A, size: int, train: bool) -> list:
    """Isotropic resize (area when shrinking; cubic or linear when enlarging) + pad to a square."""
    if train:
        resize = A.OneOf([
            A.LongestMaxSize(max_size=size, interpolation=cv2.INTER_CUBIC, area_for_downscale="image"),
            A.LongestMaxSize(max_size=size, interpolation=cv2.INTER_LINEAR, area_for_downscale="image"),
            A.LongestMaxSize(max_size=size, interpolation=cv2.INTER_LINEAR),
        ], p=1.0)
    else:
        resize = A.LongestMaxSize(max_size=size, interpolation=cv2.INTER_CUBIC, area_for_downscale="image")
    return [resize, A.PadIfNeeded(min_height=size, min_width=size, border_mode=cv2.BORDER_CONSTANT, fill=0)]


def _clahe(A) -> list:
    # fixed clip limit: a preprocessing step of the curriculum, not a random augmentation
    return [A.CLAHE(clip_limit=(2.0, 2.0), tile_grid_size=(8, 8), p=1.0)]


def _noise(A, p: float) -> object:
    # std 1-3 % of 255 (the winner's variance 10-50); per pixel, no resampled noise map
    return A.GaussNoise(std_range=(0.01, 0.03), per_channel=True, noise_scale_factor=1.0, p=p)


def face_pipeline(A, size: int, train: bool, clahe: bool) -> list:
    """Transforms for ``face`` and ``context`` crops (any input size -> ``size`` x ``size``)."""
    ops = _clahe(A) if clahe else []
    if not train:
        return ops + _resize_pad(A, size, train=False)
    return ops + [
        A.ImageCompression(compression_type="jpeg", quality_range=(60, 100), p=0.5),
        _noise(A, p=0.1),
        A.GaussianBlur(blur_limit=(3, 5), sigma_limit=(0.3, 1.5), p=0.05),
        A.HorizontalFlip(p=0.5),
        *_resize_pad(A, size, train=True),
        # the winner also had FancyPCA: left out, it costs ~16 ms per 224 px image on a CPU worker
        A.OneOf([A.RandomBrightnessContrast(), A.HueSaturationValue()], p=0.7),
        A.ToGray(num_output_channels=3, p=0.2),
        A.Affine(translate_percent=(-0.1, 0.1), scale=(0.8, 1.2), rotate=(-10, 10),
                 border_mode=cv2.BORDER_CONSTANT, fill=0, p=0.5),
    ]


def native_pipeline(A, train: bool, clahe: bool) -> list:
    """Transforms for ``native`` crops: no geometry but a flip, no resampling at all."""
    ops = _clahe(A) if clahe else []
    return ops + ([A.HorizontalFlip(p=0.5), _noise(A, p=0.3)] if train else [])


class ClipTransform:
    """Apply one albumentations pipeline to the frames of a clip with shared random parameters.

    Every frame is transformed with the pipeline's random state reset to the same per-clip seed, so
    all random draws (which transforms fire, their parameters, even the noise map) repeat exactly.
    This is 2-4x faster than albumentations' ``images=`` target, which pushes the stack through
    OpenCV as one many-channel image. The generator is shared by all transforms (albumentations'
    own ``Compose(seed=…)`` gives each transform an identically seeded generator, which makes
    every ``p=0.5`` decision fire together).

    The per-clip seeds come from a generator seeded once per process from torch
    (``worker_info.seed`` in a DataLoader worker, ``torch.initial_seed()`` otherwise): forked
    workers would otherwise all copy one state and repeat each other's augmentations.
    """

    def __init__(self, transforms: list, size: int, native: bool):
        A = _albumentations()
        self.compose = A.Compose(transforms, is_check_shapes=False)
        self.square = A.Compose(_resize_pad(A, size, train=False))
        self.size, self.native = size, native
        self._pid: int | None = None
        self._rng = np.random.default_rng(0)

    def _clip_seed(self) -> int:
        pid = os.getpid()
        if pid != self._pid:
            self._pid = pid
            info = torch.utils.data.get_worker_info()
            self._rng = np.random.default_rng(info.seed if info is not None else torch.initial_seed())
        return int(self._rng.integers(2**63))

    def _check(self, frames: Sequence[np.ndarray]) -> None:
        if not frames:
            raise ValueError("transform got no frames")
        for f in frames:
            if f.dtype != np.uint8 or f.ndim != 3 or f.shape[2] != 3:
                raise ValueError(f"frames must be HxWx3 uint8 RGB, got {f.dtype} {f.shape}")
            if self.native and f.shape[:2] != (self.size, self.size):
                raise ValueError(f"native crops are never resampled: frames must already be "
                                 f"{self.size}x{self.size}, got {f.shape[1]}x{f.shape[0]} (cut them to size "
                                 "in the dataset)")

    def __call__(self, frames: Sequence[np.ndarray], seed: int | None = None) -> Frames:
        """Transform the frames of one clip; ``seed`` (else a per-process draw) fixes every random choice."""
        self._check(frames)
        seed = self._clip_seed() if seed is None else seed
        if len({f.shape for f in frames}) > 1:  # crops of a clip with different box sizes
            frames = [self.square(image=f)["image"] for f in frames]
        out = []
        for f in frames:
            self.compose.set_random_state(np.random.default_rng(seed), random.Random(seed))
            out.append(self.compose(image=f)["image"])
        return out

    def __repr__(self) -> str:
        return f"ClipTransform(size={self.size}, native={self.native}, {self.compose!r})"


def build_transforms(spec: InputSpec, train: bool,
                     clahe: bool = False) -> Callable[[Sequence[np.ndarray]], Frames]:
    """Frames (HxWx3 uint8 RGB, one per image or T per clip) -> as many ``image_size`` squares, uint8.

    Args:
        spec: the model's input declaration (crop policy and image size).
        train: training augmentations, else resize + pad only.
        clahe: contrast-limited histogram equalisation first (train and validation alike).
    """
    A = _albumentations()
    if spec.crop == "native":
        return ClipTransform(native_pipeline(A, train, clahe), spec.image_size, native=True)
    return ClipTransform(face_pipeline(A, spec.image_size, train, clahe), spec.image_size, native=False)


@lru_cache(maxsize=8)
def _eval_resize(size: int):
    A = _albumentations()
    return A.Compose(_resize_pad(A, size, train=False)[:1])


def stored_size(img: np.ndarray, size: int) -> np.ndarray:
    """``img`` as the evaluation resize shrinks it (longest side ``size``, area interpolation); images
    already no larger are returned as they are. What the cache stores for ``face`` / ``context``
    crops, so that evaluation's own resize then leaves them untouched."""
    if max(img.shape[:2]) <= size:
        return img
    return _eval_resize(size)(image=img)["image"]
