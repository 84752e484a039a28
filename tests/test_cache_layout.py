"""The cache's layout 2 against what layout 1 served, what a cache holds, and resume over persistent workers.

Layout 1 stored lossless source regions (at least 256 px and twice the face box) and cut every crop
from them, which is the same as cutting from the decoded frame (``tests/test_datasets.py`` checks
that identity); so the reference here is the decoded source frame cut the way layout 1 cut it.
"""
from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from utils.core.config import DataConfig
from utils.core.model import InputSpec
from utils.core.registry import create_model, list_models
from utils.data.cache import BuildOptions, build_cache
from utils.data.cache_io import CacheError
from utils.data.crops import GRID, crop_window, cut_window
from utils.data.datasets import ClipDataset, build_dataset
from utils.data.faces import Detection
from utils.data.footage import carphone_path
from utils.data.records import VideoRecord
from utils.data.transforms import build_transforms
from utils.data.video import read_frames, write_video
from utils.engine.setup import EpochSampler

PSNR_MIN = 40.0  # dB, lossy face / context crops (JPEG q95 of the already resized crop)


class FixedDetector:
    def detect(self, frames):
        return [[Detection((40.0, 30.0, 90.0, 80.0), 0.99)] for _ in frames]


def layout1_bounds(box, frame_hw, scale=2.0, min_size=256):
    """The region layout 1 stored: ``box`` x ``scale``, at least ``min_size`` square, grid-aligned top-left."""
    h, w = frame_hw
    x1, y1, x2, y2 = box
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    hw_, hh = max((x2 - x1) * scale, min_size) / 2, max((y2 - y1) * scale, min_size) / 2
    x0, y0 = max(0, math.floor((cx - hw_) / GRID) * GRID), max(0, math.floor((cy - hh) / GRID) * GRID)
    return x0, y0, min(w, math.ceil(cx + hw_)), min(h, math.ceil(cy + hh))


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a.double() - b.double()) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(255 ** 2 / mse)


@pytest.fixture(scope="module")
def carphone2x(tmp_path_factory):
    """Carphone at 352x288 (a ~110x140 px face: native 224 windows fit inside the frame), MTCNN boxes."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("layout")
    src = read_frames(carphone_path(), range(48)).images
    path = write_video(root / "carphone2x.mp4", np.stack([cv2.resize(f, (352, 288), interpolation=cv2.INTER_CUBIC)
                                                          for f in src]), fps=25)
    records = [VideoRecord("car", str(path), 0, "test", "original", "car", "train")]
    size = max(s.image_size for s in registered_specs())   # stored for the largest input any model takes
    build_cache(records, root / "cache", BuildOptions(frames_per_video=6, clips_per_video=2, clip_frames=8,
                                                      size=size))
    return root / "cache", records, path


def registered_specs() -> list[InputSpec]:
    """Every registered model's input: the tiny variant's, and the same at full size (224 px, clips of 8)."""
    specs = []
    for name in list_models():
        spec = create_model(name, size="tiny").input_spec
        specs += [spec, dataclasses.replace(spec, image_size=224, clip_len=8 if spec.clip_len > 1 else 1)]
    return list(dict.fromkeys(specs))


def layout1_sample(spec, frames: dict, boxes: np.ndarray, frame_indices: list[int], margin: float) -> torch.Tensor:
    """What layout 1 served at evaluation: one window (around the mean box) cut from the lossless regions."""
    box = boxes.mean(axis=0)
    first = frames[frame_indices[0]]
    window = crop_window(box, spec, layout1_bounds(box, first.shape[:2]), margin=margin)
    crops = [cut_window(frames[f], (0, 0), window) for f in frame_indices]
    out = build_transforms(spec, train=False)(crops)
    return torch.stack([torch.from_numpy(o).permute(2, 0, 1) for o in out])


def test_layout2_serves_every_registered_model_as_layout1_did(carphone2x):
    """Native crops bit for bit; face / context crops within PSNR_MIN (the lossy codec only)."""
    cache, records, path = carphone2x
    cfg = DataConfig()
    decoded = read_frames(path, range(48))
    frames = dict(zip(decoded.indices.tolist(), decoded.images))
    worst = {}
    for spec in registered_specs():
        ds = build_dataset(cache, records, spec, cfg, train=False)
        for i in range(len(ds)):
            sample = ds[i]
            if isinstance(ds, ClipDataset):
                first, length = ds.items[i]
                start = first + (length - spec.clip_len) // 2
                span = range(start, start + spec.clip_len)
                new = sample["clip"]
            else:
                span, new = [i], sample["image"][None]
            fidx = [ds.rows[k]["frame_index"] for k in span]
            old = layout1_sample(spec, frames, ds.rows.boxes[list(span)], fidx, cfg.margin)
            assert new.shape == old.shape, (spec, new.shape, old.shape)
            if spec.crop == "native":
                assert torch.equal(new, old), f"{spec.crop} {spec.image_size}: native pixels differ"
            else:
                key = (spec.crop, spec.image_size, spec.clip_len)
                worst[key] = min(worst.get(key, math.inf), psnr(new, old))
    assert worst and min(worst.values()) >= PSNR_MIN, worst
    assert {k[0] for k in worst} == {"face", "context"}


def test_a_policy_the_cache_does_not_hold_fails_with_the_message(tmp_path):
    frames = np.random.default_rng(0).integers(0, 255, (12, 96, 128, 3), dtype=np.uint8)
    path = write_video(tmp_path / "v.mp4", frames)
    records = [VideoRecord("v", str(path), 0, "test", "original", "v", "train")]
    cache = tmp_path / "image-only"
    build_cache(records, cache, BuildOptions(frames_per_video=4, clips_per_video=1, clip_frames=4,
                                             crops=("face", "context")), face_detector=FixedDetector())
    cfg = DataConfig()
    assert len(build_dataset(cache, records, InputSpec(crop="context", image_size=64), cfg, train=False)) == 4
    with pytest.raises(CacheError, match=r"holds no native \(un-resampled, grid-aligned\) pixels for frames.*"
                                         r"\['context', 'face'\].*data.cache_crops"):
        build_dataset(cache, records, InputSpec(crop="native", image_size=64), cfg, train=True)
    with pytest.raises(CacheError, match="holds no 'context' crops for clips.*data.cache_clip_crops"):
        build_dataset(cache, records, InputSpec(crop="context", image_size=64, clip_len=4), cfg, train=True)
    with pytest.raises(CacheError, match="up to 224 px, the model asks for 320.*data.cache_size=320"):
        build_dataset(cache, records, InputSpec(crop="face", image_size=320), cfg, train=True)
    with pytest.raises(CacheError, match="margin 0.3, the run asks for 0.2"):
        build_dataset(cache, records, InputSpec(crop="face", image_size=64), DataConfig(margin=0.2), train=True)
    with pytest.raises(CacheError, match="no cache.json"):
        build_dataset(tmp_path / "elsewhere", records, InputSpec(), cfg, train=True)
    with pytest.raises(CacheError, match="other settings"):  # one folder never mixes two settings
        build_cache(records, cache, BuildOptions(frames_per_video=4, clips_per_video=1, clip_frames=4),
                    face_detector=FixedDetector())


def _epoch_batches(ds, epoch: int, skip: int = 0, loader=None) -> list[torch.Tensor]:
    ds.set_epoch(epoch, seed=11)
    loader.sampler.set_epoch(epoch)
    return [b["image"] for k, b in enumerate(loader) if k >= skip]


def test_resume_replays_the_same_augmented_samples_with_persistent_workers(carphone2x):
    """A run resumed mid-epoch draws what the uninterrupted run drew, with workers kept across epochs."""
    cache, records, _ = carphone2x
    spec, cfg = InputSpec(crop="native", image_size=64), DataConfig()

    def loader_of(ds):
        return DataLoader(ds, batch_size=2, sampler=EpochSampler(len(ds), seed=3), num_workers=2,
                          persistent_workers=True)

    ds = build_dataset(cache, records, spec, cfg, train=True)
    loader = loader_of(ds)
    run = [_epoch_batches(ds, e, loader=loader) for e in (0, 1)]  # the same two workers serve both epochs
    assert any(not torch.equal(a, b) for a, b in zip(*run)), "epoch 1 must re-draw the augmentations"
    resumed_ds = build_dataset(cache, records, spec, cfg, train=True)
    resumed = _epoch_batches(resumed_ds, 1, skip=1, loader=loader_of(resumed_ds))
    assert len(resumed) == len(run[1]) - 1
    assert all(torch.equal(a, b) for a, b in zip(resumed, run[1][1:]))
