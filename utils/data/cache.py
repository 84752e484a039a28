"""Face-crop cache builder: decode each video once, detect, keep the main face, store each crop policy.

Per video: the wanted frames (``frames_per_video`` spread evenly plus ``clips_per_video`` runs of
``clip_frames`` consecutive frames) are decoded in one pass, faces detected in batches, the main
track chosen (:func:`utils.data.faces.select_track`), and every wanted frame is stored as the crops
its models read (:mod:`utils.data.cache_store`): lossless un-resampled tiles for ``native`` crops,
``face`` / ``context`` crops already resized to the model size, lossy; with the face boxes and the
source size (layout: :mod:`utils.data.cache_io`). Audio, where present, is stored mono at 16 kHz with
sample 0 at the first frame.

The build is resumable (a video's file is written atomically; finished videos are skipped),
parallel across videos in worker processes, and sharded by rank under ``torchrun``/``accelerate
launch``. Every unusable video lands in ``failures.csv`` with its reason; the run goes on.
"""
from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import signal
import time
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_all_start_methods, get_context
from pathlib import Path
from typing import Iterator

import numpy as np

from utils.data import cache_io
from utils.data.cache_store import BuildOptions, index_boxes, sparse_audio, store_crops
from utils.data.cache_io import (FAILURE_FIELDS, INDEX_FIELDS, cache_is_complete, load_failures,
                                 load_index, part_name, video_file)
from utils.data.faces import FaceDetector, MTCNNDetector, select_track
from utils.data.records import VideoRecord
from utils.data.video import Frames, VideoReadError, read_audio, read_frames, video_info
from utils.core.config import DataConfig
from utils.core.signals import SIGNALS, StopRequest, Stopped

logger = logging.getLogger(__name__)

__all__ = ["BuildOptions", "VideoSkipped", "build_cache", "cache_location", "cache_is_complete", "load_failures", "load_index",
           "plan_frames", "process_video"]

SAMPLE_RATE = 16000


class VideoSkipped(Exception):
    """A video the cache cannot use; the message is the reason written to ``failures.csv``."""


def plan_frames(n_frames: int, frames_per_video: int, clips_per_video: int,
                clip_frames: int) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Frames to decode and what each is for.

    Returns:
        The sorted unique frame numbers, and (frame, run) pairs: run -1 for the evenly spread frames,
        run k for the frames of the k-th run of ``clip_frames`` consecutive frames (runs are spread
        over the video; a video shorter than one run gets none). A frame may serve both.
    """
    members: list[tuple[int, int]] = []
    if frames_per_video > 0 and n_frames > 0:
        spread = np.linspace(0, n_frames - 1, min(frames_per_video, n_frames))
        spread = np.unique(np.round(spread).astype(int))
        members += [(int(f), -1) for f in spread]
    if clip_frames > 0 and n_frames >= clip_frames:
        for k in range(clips_per_video):
            start = int((n_frames - clip_frames) * (k + 0.5) / clips_per_video)
            members += [(start + j, k) for j in range(clip_frames)]
    frames = np.unique(np.array([f for f, _ in members], dtype=np.int64))
    return frames, members


def _interp_boxes(src: np.ndarray, boxes: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Boxes known at frames ``src``, linearly interpolated (held at the ends) to frames ``dst``."""
    return np.stack([np.interp(dst, src, boxes[:, k]) for k in range(4)], axis=1).astype(np.float32)


def _boxes_from_original(path: Path, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boxes of a stored original at ``frames`` (pixel-aligned DFDC fakes reuse them)."""
    with cache_io.VideoFile(path) as v:
        src, boxes, det = v["frame_index"], v["boxes"], v["detected"]
    return _interp_boxes(src, boxes, frames), np.isin(frames, src[det])


def detection_frames(members: list[tuple[int, int]]) -> np.ndarray:
    """Frames the face detector looks at: every spread frame, and the first and last frame of each run
    (boxes inside a run are interpolated: its frames are a fraction of a second apart)."""
    runs: dict[int, list[int]] = {}
    for f, r in members:
        runs.setdefault(r, []).append(f)
    ends = [f for r, fs in runs.items() if r >= 0 for f in (min(fs), max(fs))]
    return np.unique(np.array(runs.get(-1, []) + ends, dtype=np.int64))


def _track(face_detector: FaceDetector, frames: Frames,
           members: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Main-face boxes and detected flags for every decoded frame."""
    pos = np.nonzero(np.isin(frames.indices, detection_frames(members)))[0]
    track = select_track(face_detector.detect([frames.images[i] for i in pos]), frames.indices[pos])
    if track is None:
        raise VideoSkipped("no face")
    detected = np.zeros(len(frames.indices), bool)
    detected[pos] = track.detected
    return _interp_boxes(frames.indices[pos], track.boxes, frames.indices), detected


def _decode(record: VideoRecord, opts: BuildOptions) -> tuple:
    """(video info, audio or None, wanted memberships, decoded frames) of one video."""
    try:
        info = video_info(record.path, opts.backend)
    except VideoReadError as e:
        raise VideoSkipped(f"unreadable: {e}") from e
    if info.n_frames <= 0:
        raise VideoSkipped("zero frames")
    audio = None
    if opts.audio and info.has_audio:
        audio = read_audio(record.path, SAMPLE_RATE)
    if opts.require_audio and audio is None:
        raise VideoSkipped("no audio")
    wanted, members = plan_frames(info.n_frames, opts.frames_per_video, opts.clips_per_video,
                                  opts.clip_frames)
    try:
        frames = read_frames(record.path, wanted, opts.backend)
    except VideoReadError as e:
        raise VideoSkipped(f"corrupt: {e}") from e
    return info, audio, members, frames


def process_video(record: VideoRecord, cache_dir: Path, opts: BuildOptions, face_detector: FaceDetector,
                  original: Path | None = None, timings: dict | None = None) -> list[dict]:
    """Decode, detect and store one video; return its index rows.

    ``timings``, when given, gets the seconds spent in ``decode``, ``detect``, ``encode`` (crop,
    resize, compress) and ``write`` (and the CPU seconds, ``<name>_cpu``), added to what it holds.

    Raises:
        VideoSkipped: the video cannot be used (the reason is its message).
    """
    clock = _Clock(timings)
    info, audio, members, frames = _decode(record, opts)
    clock("decode")
    if original is not None and original.is_file():
        boxes, detected = _boxes_from_original(original, frames.indices)
    else:
        boxes, detected = _track(face_detector, frames, members)
    clock("detect")
    slot = {int(f): i for i, f in enumerate(frames.indices)}
    kept = [(slot[f], r) for f, r in members if f in slot]  # frames past a short read are dropped
    blobs, arrays = store_crops(frames.images, index_boxes(boxes), kept, opts)
    if audio is not None:
        blobs["audio"] = sparse_audio(audio, frames.times, info.fps, SAMPLE_RATE)
    h, w = frames.images.shape[1:3]
    arrays.update(
        frame_index=frames.indices, times=frames.times, boxes=boxes, detected=detected,
        frame_hw=np.array([h, w], np.int32), fps=np.array(info.fps), n_frames=np.array(info.n_frames),
        member_slot=np.array([s for s, _ in kept], np.int32), member_run=np.array([r for _, r in kept], np.int32),
        lossless_raw=np.array(not opts.compress), has_audio=np.array(audio is not None), sample_rate=np.array(SAMPLE_RATE),
        audio_len=np.array(0 if audio is None else len(audio)))
    clock("encode")
    path = video_file(cache_dir, record.video_id)
    cache_io.save_video_atomic(path, arrays, blobs)
    clock("write")
    return cache_io.rows_for_video(arrays, record, path.relative_to(cache_dir).as_posix())


class _Clock:
    """Adds the wall seconds since the last call to ``timings[name]`` and this process's CPU seconds to
    ``timings[name + "_cpu"]`` (does nothing without a dict)."""

    def __init__(self, timings: dict | None):
        self.timings, self.last, self.last_cpu = timings, time.perf_counter(), time.process_time()

    def __call__(self, name: str) -> None:
        if self.timings is not None:
            now, cpu = time.perf_counter(), time.process_time()
            self.timings[name] = self.timings.get(name, 0.0) + now - self.last
            self.timings[f"{name}_cpu"] = self.timings.get(f"{name}_cpu", 0.0) + cpu - self.last_cpu
            self.last, self.last_cpu = now, cpu


# ---- worker processes -------------------------------------------------------------------------

_WORKER: dict = {}


def _init_worker(face_detector: FaceDetector | None, single_thread: bool = True) -> None:
    """Runs once per worker: one thread each (workers are the parallelism), one face detector each.

    Worker processes ignore stop signals: the parent decides when to stop (between videos), and a
    scheduler that signals every process of the job must not kill a worker in the middle of a video.
    """
    if single_thread:
        import cv2
        import torch
        torch.set_num_threads(1)
        cv2.setNumThreads(1)
        for s in SIGNALS:
            signal.signal(s, signal.SIG_IGN)
    _WORKER["face_detector"] = face_detector if face_detector is not None else MTCNNDetector()


def _run_job(job: tuple) -> tuple[str, list[dict], str | None, dict]:
    record, cache_dir, opts, original = job
    timings: dict = {}
    try:
        rows = process_video(record, cache_dir, opts, _WORKER["face_detector"], original, timings)
        return record.video_id, rows, None, timings
    except VideoSkipped as e:
        return record.video_id, [], str(e), timings
    except Exception as e:  # noqa: BLE001 - one bad video must not stop a day-long build
        logger.exception("%s failed", record.path)
        return record.video_id, [], f"error: {type(e).__name__}: {e}", timings


def _mp_context():
    """Workers come from a fork server that has imported this module once: they start at once (no
    torch import each) and inherit none of the caller's threads — a plain fork after OpenCV, decoder
    or OpenMP threads have run can deadlock the child. Spawn where there is no fork server."""
    if "forkserver" not in get_all_start_methods():
        return get_context("spawn")
    ctx = get_context("forkserver")
    preload = [__name__] + (["facenet_pytorch"] if importlib.util.find_spec("facenet_pytorch") else [])
    ctx.set_forkserver_preload(preload)  # imported once in the server, not once per worker
    return ctx


def _run_jobs(jobs: list[tuple], workers: int, face_detector: FaceDetector | None) -> Iterator[tuple]:
    if not jobs:
        return
    if workers <= 1:
        _init_worker(face_detector, single_thread=False)
        yield from map(_run_job, jobs)
        return
    pool = ProcessPoolExecutor(min(workers, len(jobs)), mp_context=_mp_context(), initializer=_init_worker,
                               initargs=(face_detector,))
    try:
        yield from pool.map(_run_job, jobs, chunksize=1)
    finally:   # also when the caller stops early: drop the videos not started, finish the running ones
        pool.shutdown(wait=True, cancel_futures=True)


# ---- the build ----------------------------------------------------------------------------------

def _rank_world(rank: int | None, world_size: int | None) -> tuple[int, int]:
    rank = int(os.environ.get("RANK", 0)) if rank is None else rank
    world = int(os.environ.get("WORLD_SIZE", 1)) if world_size is None else world_size
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} is not in [0, {world}): check RANK / WORLD_SIZE")
    return rank, world


def shard(records: list[VideoRecord], rank: int, world_size: int) -> list[VideoRecord]:
    """This rank's records; split by group so a DFDC fake stays with its original."""
    return [r for r in records if zlib.crc32(r.group.encode()) % world_size == rank]


def _phases(records: list[VideoRecord], reuse_original_boxes: bool) -> list[list[VideoRecord]]:
    """Originals (and everything else) first; with box reuse, fakes of a listed original after them."""
    if not reuse_original_boxes:
        return [records]
    ids = {r.video_id for r in records}
    later = [r for r in records if r.original and r.original in ids]
    return [[r for r in records if not (r.original and r.original in ids)], later]


@dataclass
class _Tally:
    """What a build has found so far: index rows, failures and counts."""

    rows: list[dict] = field(default_factory=list)
    failures: list[dict] = field(default_factory=list)
    counts: dict = field(default_factory=lambda: dict(done=0, skipped=0, failed=0, failed_before=0, frames=0))


def _pending(phase: list[VideoRecord], cache_dir: Path, opts: BuildOptions, known_failures: dict,
             reuse_original_boxes: bool, tally: _Tally) -> list[tuple]:
    """Jobs for the videos of ``phase`` not yet cached (cached ones are re-indexed, known failures kept)."""
    jobs = []
    for rec in phase:
        path = video_file(cache_dir, rec.video_id)
        if path.is_file():
            tally.rows += cache_io.rows_for_video(cache_io.read_small(path), rec,
                                                  path.relative_to(cache_dir).as_posix())
            tally.counts["skipped"] += 1
        elif rec.video_id in known_failures:
            tally.failures.append(known_failures[rec.video_id])
            tally.counts["failed_before"] += 1
        else:
            original = video_file(cache_dir, rec.original) if reuse_original_boxes and rec.original else None
            jobs.append((rec, cache_dir, opts, original))
    return jobs


def _collect(results: Iterator[tuple], by_id: dict[str, VideoRecord], total: int, tally: _Tally,
             stop: StopRequest | None = None) -> None:
    for n, (video_id, rows, reason, timings) in enumerate(results, 1):
        for k, v in timings.items():
            tally.counts[f"{k}_s"] = tally.counts.get(f"{k}_s", 0.0) + v
        if reason is None:
            tally.rows += rows
            tally.counts["done"] += 1
            tally.counts["frames"] += len({r["slot"] for r in rows})
        else:
            tally.failures.append({"video_id": video_id, "path": by_id[video_id].path, "reason": reason})
            tally.counts["failed"] += 1
            logger.warning("skipping %s: %s", by_id[video_id].path, reason)
        if n % 50 == 0 or n == total:
            logger.info("%d / %d videos processed", n, total)
        if stop:
            results.close()
            return


def cache_location(data: DataConfig, root: Path, opts: BuildOptions | None = None) -> Path:
    """``data.cache``, else ``<cache_root>/<dataset>-<hash>`` of the root and the build settings, so two
    roots, or two frame budgets, never share a cache. (What a split holds is not part of the key:
    datasets select their videos from the index of the current run.)"""
    if data.cache:
        return Path(data.cache)
    opts = opts or BuildOptions.from_data(data)
    key = hashlib.sha1(f"{root.resolve()}|{opts.key()}".encode()).hexdigest()[:8]
    return Path(data.cache_root) / f"{data.dataset}-{key}"


def build_cache(records: list[VideoRecord], cache_dir: str | os.PathLike, opts: BuildOptions | None = None, *,
                reuse_original_boxes: bool = False, workers: int = 1, face_detector: FaceDetector | None = None,
                rank: int | None = None, world_size: int | None = None, retry_failed: bool = False,
                stop: StopRequest | None = None) -> dict:
    """Build (or complete) the face-crop cache for ``records``.

    Args:
        records: videos from an adapter.
        cache_dir: output folder (created).
        opts: per-video settings (default: :class:`BuildOptions` defaults).
        reuse_original_boxes: fakes whose ``original`` is among ``records`` take its boxes instead of
            running the face detector (the dataset adapter says when fakes are pixel-aligned).
        workers: processes; each runs its own face detector with one torch thread.
        face_detector: a :class:`FaceDetector` (default: MTCNN on the CPU).
        rank, world_size: this process's shard (default: ``RANK`` / ``WORLD_SIZE`` env, else 0 / 1).
        retry_failed: also redo videos listed in ``failures.csv`` by an earlier run.
        stop: a :class:`~utils.core.signals.StopRequest`; when it fires, the videos in progress are
            finished, the index of what is done written, and :class:`Stopped` raised.

    Returns:
        Summary counts ``done``, ``skipped`` (already cached), ``failed`` (this run, plus
        ``failed_before`` not retried), ``frames`` stored this run and ``seconds``.
    """
    start = time.perf_counter()
    cache_dir = Path(cache_dir)
    (cache_dir / "videos").mkdir(parents=True, exist_ok=True)
    rank, world = _rank_world(rank, world_size)
    mine = shard(records, rank, world)
    if world > 1:  # a part left by an earlier run must not be merged as if it were this run's
        for kind in ("index", "failures"):
            (cache_dir / part_name(kind, rank, world)).unlink(missing_ok=True)
    opts = opts or BuildOptions()
    cache_io.write_manifest(cache_dir, opts.manifest())
    known_failures = {} if retry_failed else {f["video_id"]: f for f in load_failures(cache_dir)}
    by_id = {r.video_id: r for r in mine}
    tally = _Tally()
    for phase in _phases(mine, reuse_original_boxes):
        if stop:
            break
        jobs = _pending(phase, cache_dir, opts, known_failures, reuse_original_boxes, tally)
        _collect(_run_jobs(jobs, workers, face_detector), by_id, len(jobs), tally, stop)
    _write_index(cache_dir, tally.rows, tally.failures, rank, world)
    if stop:
        raise Stopped(f"stopped by {stop.name} after {tally.counts['done']} new video(s); the cache in "
                      f"{cache_dir} keeps them: run the same command to continue", stop.signum)
    return _summary(tally, start, rank, world)


def _summary(tally: _Tally, start: float, rank: int, world: int) -> dict:
    counts = {**{k: round(v, 3) if isinstance(v, float) else v for k, v in tally.counts.items()},
              "seconds": round(time.perf_counter() - start, 2)}
    logger.info("rank %d/%d: done %d / skipped %d / failed %d (%d failed in earlier runs, not retried)",
                rank, world, counts["done"], counts["skipped"], counts["failed"] + counts["failed_before"],
                counts["failed_before"])
    return counts


def _write_index(cache_dir: Path, rows: list[dict], failures: list[dict], rank: int, world: int) -> None:
    """Write this rank's part; the rank that completes the set of parts merges them (alone: at once)."""
    cache_io.write_csv_atomic(cache_dir / part_name("index", rank, world), INDEX_FIELDS, rows)
    cache_io.write_csv_atomic(cache_dir / part_name("failures", rank, world), FAILURE_FIELDS, failures)
    if cache_io.parts_complete(cache_dir, world):
        cache_io.merge_parts(cache_dir, world)
        if world == 1:  # nothing to merge later
            for kind in ("index", "failures"):
                (cache_dir / part_name(kind, 0, 1)).unlink(missing_ok=True)
