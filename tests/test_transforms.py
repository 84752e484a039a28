"""Transforms: sizes, one random draw per clip, untouched native geometry, CLAHE, no deprecations."""
from __future__ import annotations

import warnings

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from utils.data.transforms import build_transforms
from utils.core.model import InputSpec


def face_image(h: int = 150, w: int = 120, seed: int = 0) -> np.ndarray:
    """A structured (not flat) RGB test image: gradients plus a few blobs."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([x * 255 / w, y * 255 / h, (x + y) * 127 / (h + w)], -1)
    for _ in range(5):
        cy, cx, r = rng.integers(0, h), rng.integers(0, w), rng.integers(5, 20)
        img[(y - cy) ** 2 + (x - cx) ** 2 < r * r] = rng.integers(0, 256, 3)
    return img.astype(np.uint8)


@pytest.mark.parametrize("crop", ["face", "context"])
@pytest.mark.parametrize("train", [True, False])
def test_output_sizes(crop, train):
    t = build_transforms(InputSpec(crop=crop, image_size=96), train=train)
    for h, w in [(150, 120), (40, 70), (96, 96), (300, 200)]:
        for n in (1, 5):
            out = t([face_image(h, w)] * n)
            assert len(out) == n
            assert all(o.shape == (96, 96, 3) and o.dtype == np.uint8 for o in out)
    mixed = t([face_image(150, 120), face_image(160, 130)])  # boxes of a clip may differ slightly
    assert [o.shape for o in mixed] == [(96, 96, 3)] * 2


def test_one_random_draw_per_clip():
    torch.manual_seed(0)
    t = build_transforms(InputSpec(image_size=64, clip_len=6), train=True)
    plain = build_transforms(InputSpec(image_size=64), train=False)([face_image()])[0]
    frame = face_image()
    changed = 0
    for _ in range(25):
        clip = t([frame] * 6)
        assert all(np.array_equal(c, clip[0]) for c in clip[1:])  # identical frames stay identical
        changed += not np.array_equal(clip[0], plain)
    assert changed >= 20  # ... and the training augmentations did run
    other = face_image(seed=5)
    for _ in range(10):  # the draw does not advance between frames: a, b, a -> x, y, x
        x, y, z = t([frame, other, frame])
        assert np.array_equal(x, z) and not np.array_equal(x, y)


def test_seeded_by_torch_and_reseeded_per_worker():
    def draws():
        torch.manual_seed(123)
        t = build_transforms(InputSpec(image_size=48), train=True)
        return [t([face_image()])[0] for _ in range(5)]

    assert all(np.array_equal(a, b) for a, b in zip(draws(), draws()))

    class Frames(Dataset):
        def __init__(self):
            self.t = build_transforms(InputSpec(image_size=48), train=True)

        def __len__(self):
            return 12

        def __getitem__(self, i):
            return torch.from_numpy(self.t([face_image()])[0])

    out = list(DataLoader(Frames(), batch_size=None, num_workers=2))
    # worker 0 serves items 0, 2, 4 …, worker 1 items 1, 3, 5 …: a copied random state would repeat
    assert not all(torch.equal(out[i], out[i + 1]) for i in range(0, 12, 2))


def test_native_crops_keep_geometry():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    val = build_transforms(InputSpec(crop="native", image_size=64), train=False)
    assert np.array_equal(val([x])[0], x)
    t = build_transforms(InputSpec(crop="native", image_size=64), train=True)
    flips = noisy = 0
    for _ in range(60):
        out = t([x, x])
        assert np.array_equal(out[0], out[1])
        got = out[0].astype(int)
        ref = x[:, ::-1] if np.abs(got - x[:, ::-1]).mean() < np.abs(got - x).mean() else x
        flips += ref is not x
        diff = got - ref
        if diff.any():  # pixel-space noise only: small, zero-mean, no spatial resampling
            noisy += 1
            assert np.abs(diff).mean() < 10 and abs(diff.mean()) < 1.5
    assert 15 < flips < 45 and 5 < noisy < 40
    with pytest.raises(ValueError, match="never resampled"):
        t([rng.integers(0, 256, (70, 64, 3), dtype=np.uint8)])


def test_clahe_raises_contrast():
    rng = np.random.default_rng(0)
    texture = cv2.GaussianBlur(rng.integers(110, 146, (128, 128)).astype(np.uint8), (5, 5), 1.0)
    dull = np.stack([texture] * 3, -1)  # low local contrast, like a face in flat light
    for crop in ("face", "native"):
        spec = InputSpec(crop=crop, image_size=128)
        without = build_transforms(spec, train=False)([dull])[0]
        with_clahe = build_transforms(spec, train=False, clahe=True)([dull])[0]
        assert with_clahe.std() > 2 * without.std()
        assert build_transforms(spec, train=True, clahe=True)([dull])[0].shape == (128, 128, 3)


def test_no_deprecation_warnings():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for crop in ("face", "context", "native"):
            for train in (True, False):
                t = build_transforms(InputSpec(crop=crop, image_size=64), train=train, clahe=True)
                t([face_image(64, 64)] * 3)
    assert not [w for w in caught if issubclass(w.category, (UserWarning, DeprecationWarning, FutureWarning))]


def test_rejects_bad_frames():
    t = build_transforms(InputSpec(image_size=32), train=False)
    with pytest.raises(ValueError, match="uint8"):
        t([np.zeros((32, 32, 3), np.float32)])
    with pytest.raises(ValueError, match="no frames"):
        t([])
