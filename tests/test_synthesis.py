"""Cue synthesisers: deterministic per seed, and each changes only what it promises.

Image kinds change pixels inside the face mask they report and no pixel outside it; ``av_offset`` keeps
every pixel of its real clip and changes its audio; ``flicker`` keeps each frame's statistics close to
its real's while the change over time is large. Twins in a dataset read their real item's exact crop
and augmentation draws, carry ``method = synth:<kind>`` and label 1, and repeat across processes.
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from utils.core.config import DataConfig, SynthesisConfig
from utils.core.errors import ConfigError
from utils.core.model import InputSpec
from utils.data.cache import BuildOptions, build_cache
from utils.data.datasets import build_dataset
from utils.data.faces import Detection
from utils.data.footage import carphone_path
from utils.data.records import VideoRecord
from utils.data.synthesis import (
    SYNTHESISERS, SynthItem, Synthesiser, get_synthesiser, list_synthesisers, register_synthesiser,
)
from utils.data.video import read_frames, write_video

pytestmark = pytest.mark.usefixtures("one_thread")
IMAGE_KINDS = ("blend", "lighting", "recompress", "resample")
BOX = np.array([40.0, 36.0, 136.0, 132.0], np.float32)


@pytest.fixture(scope="module")
def clip() -> list[np.ndarray]:
    """Eight consecutive 176x144 frames of real footage (the carphone clip) with its face near BOX."""
    frames = read_frames(carphone_path(), list(range(40, 48))).images
    return [np.ascontiguousarray(f) for f in frames]


def _item(frames, **kw) -> SynthItem:
    return SynthItem([f.copy() for f in frames], BOX.copy(), **kw)


def test_every_kind_is_registered_and_unknown_kinds_are_named():
    assert set(IMAGE_KINDS) | {"flicker", "av_offset"} <= set(list_synthesisers())
    with pytest.raises(Exception, match="registered synthesisers: .*blend"):
        get_synthesiser("nope")


@pytest.mark.parametrize("kind", IMAGE_KINDS + ("flicker",))
def test_deterministic_per_seed_and_only_inside_the_mask(kind, clip):
    frames = clip if kind == "flicker" else clip[:1]
    synth = get_synthesiser(kind)
    a = synth(_item(frames), np.random.default_rng(7))
    b = synth(_item(frames), np.random.default_rng(7))
    c = synth(_item(frames), np.random.default_rng(8))
    assert all(np.array_equal(x, y) for x, y in zip(a.frames, b.frames)), "same seed, other fake"
    assert any(not np.array_equal(x, y) for x, y in zip(a.frames, c.frames)), "the seed changes nothing"
    outside = a.mask == 0
    assert outside.any() and (~outside).any()
    for real, fake in zip(frames, a.frames):
        assert np.array_equal(real[outside], fake[outside]), "a pixel outside the mask changed"
        assert (real != fake).any(axis=-1).sum() > 0.05 * (~outside).sum(), "hardly anything changed"
    ys, xs = np.nonzero(~outside)   # the mask stays on the face: inside the box widened by a quarter
    pad = 0.25 * (BOX[2] - BOX[0])
    assert xs.min() >= BOX[0] - pad and xs.max() <= BOX[2] + pad and ys.min() >= BOX[1] - pad
    assert ys.max() <= BOX[3] + pad


def _stats(img: np.ndarray) -> np.ndarray:
    """Mean, standard deviation, high-frequency energy (Laplacian) and 8x8 blockiness of the luminance:
    block-boundary over interior gradient energy, the trace JPEG quantisation leaves."""
    y = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32)
    grad = np.abs(np.diff(y, axis=1))
    boundary = grad[:, 7::8].mean()
    interior = np.delete(grad, np.s_[7::8], axis=1).mean()
    return np.array([y.mean(), y.std(), np.abs(cv2.Laplacian(y, cv2.CV_32F)).mean(), boundary / interior])


def test_flicker_keeps_each_frame_close_to_its_real_and_changes_over_time(clip):
    fake = get_synthesiser("flicker")(_item(clip), np.random.default_rng(3)).frames
    for real, f in zip(clip, fake):
        s_real, s_fake = _stats(real), _stats(f)
        assert np.all(np.abs(s_fake - s_real) <= np.array([1.5, 1.5, 0.06 * s_real[2], 0.05])), (s_real, s_fake)
    motion = lambda fr: np.mean([np.abs(fr[t + 1].astype(float) - fr[t]).mean() for t in range(len(fr) - 1)])
    assert motion(fake) > motion(clip) * 1.05, "the flicker adds no change over time"


def test_a_single_flicker_frame_and_av_offset_without_audio(clip):
    """Flicker on one image is one weak frame of such a clip (inside its mask only); av_offset for a model
    without audio returns its real pixel for pixel (the chance-level control of the probes)."""
    one = get_synthesiser("flicker")(_item(clip[:1]), np.random.default_rng(0))
    assert not np.array_equal(one.frames[0], clip[0])
    assert np.array_equal(one.frames[0][one.mask == 0], clip[0][one.mask == 0])
    same = get_synthesiser("av_offset")(_item(clip[:2]), np.random.default_rng(0))
    assert all(np.array_equal(a, b) for a, b in zip(same.frames, clip[:2])) and same.audio is None


# ------------------------------------------------------------------------------------ in the datasets

class FixedDetector:
    def detect(self, frames):
        return [[Detection((40.0, 30.0, 100.0, 90.0), 0.99)] for _ in frames]


@pytest.fixture(scope="module")
def talking(tmp_path_factory):
    """Three real videos with (distinct) audio and one fake, cached with face and native clip crops."""
    root = tmp_path_factory.mktemp("talking")
    rng = np.random.default_rng(0)
    records = []
    for k, label in enumerate((0, 0, 0, 1)):
        frames = rng.integers(0, 255, (60, 120, 160, 3), dtype=np.uint8)
        frames = np.stack([cv2.GaussianBlur(f, (0, 0), 2) for f in frames])
        audio = (0.3 * np.sin(2 * np.pi * (200 + 150 * k) * np.arange(60 * 640) / 16000)).astype(np.float32)
        audio *= (np.arange(len(audio)) // 3200 % 2)  # a syllable rhythm: voiced 0.2 s, silent 0.2 s
        path = write_video(root / f"v{k}.mp4", frames, 25, audio, 16000)
        records.append(VideoRecord(f"v{k}", str(path), label, "t", "fake" if label else "real", f"g{k}", "train"))
    build_cache(records, root / "cache", BuildOptions(frames_per_video=4, clips_per_video=3, clip_frames=8,
                                                        clip_crops=("face", "native"), size=64),
                face_detector=FixedDetector())
    return root / "cache", records


def _data(kinds, ratio=1.0, **kw) -> DataConfig:
    return DataConfig(cache_size=64, frames_per_video=4, clips_per_video=3, clip_frames=8,
                      synthesis=SynthesisConfig(kinds=list(kinds), ratio=ratio, **kw))


def test_av_offset_keeps_the_pixels_and_changes_the_audio(talking):
    cache, records = talking
    spec = InputSpec(crop="face", image_size=64, clip_len=4, audio=True)
    ds = build_dataset(cache, records, spec, _data(["av_offset"]), train=True)
    n = ds.twins.n_base
    assert len(ds) == n + sum(1 for lab in ds.labels[:n] if lab == 0)
    for k in range(n, len(ds)):
        fake, real = ds[k], ds[int(ds.twins.plan.base[k - n])]
        assert fake["method"] == "synth:av_offset" and int(fake["label"]) == 1 and int(real["label"]) == 0
        assert torch.equal(fake["clip"], real["clip"]), "av_offset changed a pixel"
        assert not torch.allclose(fake["audio"], real["audio"]), "av_offset left the audio as it was"


@pytest.mark.parametrize("crop", ["face", "native"])
def test_twins_read_their_real_item_and_repeat_in_a_fresh_dataset(talking, crop):
    cache, records = talking
    spec = InputSpec(crop=crop, image_size=64)
    cfg = _data(IMAGE_KINDS, ratio=0.5)
    ds = build_dataset(cache, records, spec, cfg, train=True)
    ds.set_epoch(3, seed=11)
    n, twins = ds.twins.n_base, ds.twins
    assert len(twins) == 2 * 4  # round(0.5 x 3 real videos) = 2 videos x 4 frames
    again = build_dataset(cache, records, spec, cfg, train=True)
    again.set_epoch(3, seed=11)
    for k in range(n, len(ds)):
        a, b = ds[k], again[k]
        assert torch.equal(a["image"], b["image"]) and a["method"] == b["method"]
        assert a["method"].startswith("synth:") and a["video_id"].endswith("#synth")
    assert len({ds[k]["method"] for k in range(n, len(ds))}) > 1, "training draws one kind only"


class _ClipOnly(Synthesiser):
    kind, clip_only = "clip_only_probe", True

    def make(self, item, rng):
        return item


def test_real_only_drops_the_fakes_and_configuration_errors_name_the_key(talking):
    cache, records = talking
    spec = InputSpec(crop="face", image_size=64)
    ds = build_dataset(cache, records, spec, _data(["blend"], real_only=True), train=True)
    assert not any(v.startswith("v3") for v in ds.video_ids)
    assert ds.labels.count(0) == ds.labels.count(1)
    register_synthesiser(_ClipOnly)
    try:
        with pytest.raises(ConfigError, match="clip_only_probe.*single images"):
            build_dataset(cache, records, spec, _data(["clip_only_probe"]), train=True)
    finally:
        SYNTHESISERS.unregister("clip_only_probe")
    with pytest.raises(ConfigError, match="data.synthesis.kinds.*nope"):
        build_dataset(cache, records, spec, _data(["nope"]), train=True)
    untouched = build_dataset(cache, records, spec, _data(["blend"], splits=["val"]), train=True)
    assert len(untouched) == untouched.twins.n_base  # a split the recipe does not name gets no twins


def test_synthesisers_share_no_code_with_the_sample_generator():
    """Models trained on synthetic fakes are tested on the generator's fakes: no shared code or masks."""
    import ast
    from pathlib import Path
    import utils.data.synthesis as pkg
    for path in Path(pkg.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(n.startswith("utils.data.sample") for n in names), f"{path.name} imports {names}"
