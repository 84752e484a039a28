"""Datasets over the cache: crop policies (native = grid-aligned, unresampled), clips of consecutive
frames of one track, audio windows aligned with their clip, the batch contract."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from utils.core.config import DataConfig
from utils.data.cache import BuildOptions, build_cache, load_index
from utils.data.crops import cut_crop
from utils.data.datasets import ClipDataset, FrameDataset, build_dataset
from utils.data.faces import Detection, box_iou
from utils.data.footage import carphone_path
from utils.data.records import VideoRecord
from utils.data.video import read_frames, write_video
from utils.core.model import InputSpec

FPS, SR, N = 25, 16000, 80
TONES = (12, 50)  # frames during which a 1 kHz tone sounds; runs of 8 start at 9, 27, 45, 63


def identity(frames, seed=None):
    return [np.array(f) for f in frames]


def read_code(img: np.ndarray) -> int:
    return int((img[48, 16:16 + 7 * 16:16].mean(-1) > 128).dot(1 << np.arange(7)))


class FixedDetector:
    def detect(self, frames):
        return [[Detection((40.0, 30.0, 90.0, 80.0), 0.99)] for _ in frames]


@pytest.fixture(scope="module")
def coded_cache(tmp_path_factory):
    """A generated video whose frames carry their number and whose audio sounds at TONES."""
    root = tmp_path_factory.mktemp("coded")
    frames = np.full((N, 96, 128, 3), 60, np.uint8)
    for i in range(N):
        for b in range(7):
            frames[i, 40:56, 8 + 16 * b:24 + 16 * b] = 255 if (i >> b) & 1 else 0
    audio = np.zeros(int(N / FPS * SR), np.float32)
    for f in TONES:
        k = int(f / FPS * SR)
        audio[k:k + SR // FPS] = 0.5 * np.sin(2 * np.pi * 1000 * np.arange(SR // FPS) / SR)
    path = write_video(root / "coded.mp4", frames, FPS, audio, SR)
    records = [VideoRecord(v, str(path), label, "dfdc", "x", v, "train", chunk)
               for v, label, chunk in (("a", 0, 0), ("b", 1, 1))]
    build_cache(records, root / "cache", BuildOptions(clip_crops=("face", "native")), face_detector=FixedDetector())
    return root / "cache"


@pytest.fixture(scope="module")
def carphone_cache(tmp_path_factory):
    torch.set_num_threads(1)
    cache = tmp_path_factory.mktemp("carphone")
    build_cache([VideoRecord("carphone", str(carphone_path()), 0, "test", "original", "g", "train")], cache)
    return cache


def rows(cache, **match):
    return [r for r in load_index(cache) if all(r[k] == v for k, v in match.items())]


def test_clips_are_consecutive_frames(coded_cache):
    spec = InputSpec(crop="native", image_size=128, clip_len=4)
    for train in (False, True):
        ds = ClipDataset(rows(coded_cache, video_id="a"), coded_cache, spec, identity, train=train)
        assert len(ds) == 4 and ds.labels == [0] * 4
        for i in range(len(ds)):
            s = ds[i]
            assert s["clip"].shape == (4, 3, 128, 128) and s["clip"].dtype == torch.uint8
            codes = [read_code(f.permute(1, 2, 0).numpy()) for f in s["clip"]]
            assert codes == list(range(s["frame_index"], s["frame_index"] + 4))
    # a run with a frame missing is not a clip: it is left out
    holed = [r for r in rows(coded_cache, video_id="a") if not (r["run"] == 1 and r["frame_index"] == 30)]
    ds = ClipDataset(holed, coded_cache, spec, identity)
    assert len(ds) == 3 and {ds[i]["frame_index"] for i in range(3)} == {9 + 2, 45 + 2, 63 + 2}  # middles


def test_clips_follow_one_track_on_real_footage(carphone_cache):
    spec = InputSpec(crop="face", image_size=64, clip_len=8)
    run_rows = rows(carphone_cache, run=2)
    ds = ClipDataset(run_rows, carphone_cache, spec, identity)
    assert len(ds) == 1
    frames = sorted(r["frame_index"] for r in run_rows)
    assert frames == list(range(frames[0], frames[0] + 8))
    run_rows.sort(key=lambda r: r["frame_index"])
    boxes = [np.array([r["x1"], r["y1"], r["x2"], r["y2"]]) for r in run_rows]
    assert all(box_iou(a, b) > 0.7 for a, b in zip(boxes, boxes[1:]))
    clip = ds[0]["clip"]  # one window for the clip: every frame cut to the same size
    assert clip.shape[0] == 8 and len({tuple(f.shape) for f in clip}) == 1


def _check_tone(mel: torch.Tensor, frame_index: int, mel_per_frame: int = 4) -> bool:
    """Energy sits on the columns of the toned frames (± the STFT window's reach); True if heard."""
    energy = mel.exp().sum(0).numpy()
    cols = np.arange(-2, len(energy) + 2)  # a 512-sample window reaches 2 columns (of 160) either side
    toned = np.zeros(len(cols), bool)
    for f in TONES:
        toned |= (cols >= (f - frame_index) * mel_per_frame) & (cols < (f - frame_index + 1) * mel_per_frame)
    near = (np.convolve(toned, np.ones(5), mode="same") > 0)[2:-2]
    toned = toned[2:-2]
    silence = energy[~near].max(initial=0)
    if toned.sum() == mel_per_frame:  # the whole toned frame is in the window
        assert toned[int(np.argmax(energy))]
        assert energy[toned].min() > 1000 * silence
        return True
    assert silence < 1e-3  # log(1e-6) floor: 64 mels x 1e-6
    return False


def test_audio_windows_line_up_with_their_clip(coded_cache):
    spec = InputSpec(crop="native", image_size=128, clip_len=8, audio=True, mel_per_frame=4)
    ds = ClipDataset(rows(coded_cache, video_id="a"), coded_cache, spec, identity)
    heard = []
    for i in range(len(ds)):
        s = ds[i]
        assert s["audio"].shape == (spec.n_mels, 32) and s["audio_mask"] == 1.0
        heard.append(_check_tone(s["audio"], s["frame_index"]))
    assert heard == [True, False, True, False]  # runs 9-16 and 45-52 hold the toned frames 12 and 50
    # a shorter random stretch of the run: the window moves with the clip
    spec4 = InputSpec(crop="native", image_size=128, clip_len=4, audio=True)
    short = ClipDataset(rows(coded_cache, video_id="a"), coded_cache, spec4, identity, train=True)
    starts = set()
    for epoch in range(16):
        short.set_epoch(epoch)   # the random stretch is re-drawn each epoch
        s = short[0]  # run 0: frames 9..16
        starts.add(s["frame_index"])
        assert _check_tone(s["audio"], s["frame_index"]) == (s["frame_index"] <= 12 < s["frame_index"] + 4)
    assert len(starts) > 2


def test_video_without_audio_gets_a_zero_mask(carphone_cache):
    spec = InputSpec(crop="face", image_size=64, clip_len=4, audio=True)
    s = ClipDataset(rows(carphone_cache), carphone_cache, spec, identity)[0]
    assert s["audio_mask"] == 0.0 and s["audio"].shape == (64, 16) and not s["audio"].any()


def _offsets(frame: np.ndarray, crop: np.ndarray) -> list[tuple[int, int]]:
    """Every (x, y) where ``crop`` equals the frame's pixels exactly."""
    h, w = crop.shape[:2]
    ys, xs = np.nonzero((frame[: frame.shape[0] - h + 1, : frame.shape[1] - w + 1] == crop[0, 0]).all(-1))
    return [(int(x), int(y)) for y, x in zip(ys, xs) if np.array_equal(frame[y:y + h, x:x + w], crop)]


def test_native_crops_are_grid_aligned_source_pixels(carphone_cache):
    from utils.data.transforms import build_transforms

    spec = InputSpec(crop="native", image_size=64)
    frame_rows = rows(carphone_cache, run=-1)[::8]
    source = read_frames(carphone_path(), [r["frame_index"] for r in frame_rows])
    for train, transform in ((False, build_transforms(spec, train=False)), (True, identity)):
        ds = FrameDataset(frame_rows, carphone_cache, spec, transform, train=train)
        seen = set()
        for i in range(len(ds)):
            for epoch in range(4 if train else 1):
                ds.set_epoch(epoch)   # random placement is re-drawn each epoch
                crop = ds[i]["image"].permute(1, 2, 0).numpy()
                hits = _offsets(source.images[i], crop)
                assert len(hits) == 1, hits  # the crop is the source's pixels, found at one place
                (x, y), r = hits[0], ds.rows[i]
                assert x % 8 == 0 and y % 8 == 0
                assert x <= r["x1"] + 8 and x + 64 >= r["x2"] - 8  # around the face
                seen.add((i, x, y))
        if train:
            assert len(seen) > len(ds)  # random placement moves the window


def test_native_crop_pads_and_face_context_geometry():
    frame = np.random.default_rng(0).integers(0, 255, (144, 176, 3), dtype=np.uint8)
    box = (61.0, 37.0, 111.0, 97.0)
    big = cut_crop(frame, (0, 0), box, InputSpec(crop="native", image_size=192))
    assert big.shape == (192, 192, 3)
    np.testing.assert_array_equal(big[:144, :176], frame)  # padded at the bottom/right only
    assert not big[144:].any() and not big[:, 176:].any()
    face = cut_crop(frame, (0, 0), box, InputSpec(crop="face"), margin=0.3)
    context = cut_crop(frame, (0, 0), box, InputSpec(crop="context", context_scale=2.0))
    assert face.shape == (96, 80, 3) and context.shape == (120, 100, 3)
    np.testing.assert_array_equal(face, frame[19:115, 46:126])
    # cutting from a stored region gives the same pixels as cutting from the whole frame
    region = frame[16:136, 32:168]
    np.testing.assert_array_equal(cut_crop(region, (32, 16), box, InputSpec(crop="face")), face)


def test_build_dataset_follows_the_spec_and_the_batch_contract(coded_cache):
    cfg = DataConfig(dataset="dfdc", frames_per_video_train=4)
    records = [VideoRecord(v, "coded.mp4", label, "dfdc", "x", v, "train", chunk)
               for v, label, chunk in (("a", 0, 0), ("b", 1, 1))]
    frames = build_dataset(coded_cache, records, InputSpec(image_size=64), cfg, train=True)
    assert isinstance(frames, FrameDataset) and len(frames) == 2 * 4 and sorted(set(frames.labels)) == [0, 1]
    clip_spec = InputSpec(image_size=64, clip_len=4, audio=True)
    clips = build_dataset(coded_cache, records, clip_spec, cfg, train=False)
    assert isinstance(clips, ClipDataset) and len(clips) == 2 * 4
    val = build_dataset(coded_cache, records[1:], InputSpec(image_size=64), cfg, train=False)
    assert {r["video_id"] for r in val.rows} == {"b"}  # the records given pick the videos
    every = len(val)   # evaluation reads every cached frame; the per-epoch validation may read fewer
    assert every > 2 and len(build_dataset(coded_cache, records[1:], InputSpec(image_size=64), cfg, train=False,
                                           max_frames=2)) == 2
    relabelled = [VideoRecord("a", "coded.mp4", 1, "dfdc", "y", "a", "val", 0)]
    again = build_dataset(coded_cache, relabelled, InputSpec(image_size=64), cfg, train=False)
    assert set(again.labels) == {1} and again[0]["method"] == "y"  # labels come from the records, not the cache
    with pytest.raises(ValueError, match="has no frames"):
        build_dataset(coded_cache, [], InputSpec(), DataConfig(), train=False)
    with pytest.raises(ValueError, match="clip_frames >= 16"):
        build_dataset(coded_cache, records, InputSpec(clip_len=16), cfg, train=True)
    clips = pickle.loads(pickle.dumps(clips))  # DataLoader workers get a copy
    loader = DataLoader(clips, batch_size=4, num_workers=2, shuffle=True)
    batch = next(iter(loader))
    assert batch["clip"].shape == (4, 4, 3, 64, 64) and batch["clip"].dtype == torch.uint8
    assert batch["audio"].shape == (4, 64, 16) and batch["audio_mask"].tolist() == [1.0] * 4
    assert batch["label"].dtype == torch.long and len(batch["video_id"]) == 4 and len(batch["method"]) == 4
    assert batch["frame_index"].dtype == torch.long
    image = frames[0]
    assert image["image"].shape == (3, 64, 64) and image["image"].dtype == torch.uint8
    assert "audio" not in image


def test_augmentation_is_a_function_of_seed_epoch_and_index(carphone_cache):
    """What makes a mid-epoch resume exact: item i of epoch e is the same in any process, any order."""
    from utils.data.transforms import build_transforms
    spec = InputSpec(crop="face", image_size=64)
    transform = build_transforms(spec, train=True)
    frames = [r for r in rows(carphone_cache) if r["run"] == -1]
    a = FrameDataset(frames, carphone_cache, spec, transform, margin=0.3, train=True)
    b = FrameDataset(frames, carphone_cache, spec, transform, margin=0.3, train=True)
    a.set_epoch(3, seed=7)
    b.set_epoch(3, seed=7)
    _ = [b[i] for i in range(len(b) - 1, 0, -1)]         # b's history differs from a's
    assert all(torch.equal(a[i]["image"], b[i]["image"]) for i in range(min(4, len(a))))
    b.set_epoch(4, seed=7)
    assert any(not torch.equal(a[i]["image"], b[i]["image"]) for i in range(min(4, len(a))))
