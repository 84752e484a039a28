"""Write the sample datasets: plan, render and encode in parallel, then install the tree atomically."""
from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shutil
import tempfile
import time
import zlib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np

from utils.data.sample import audio
from utils.data.sample.images import IMAGE_SETS
from utils.data.sample.layouts import PLANNERS, SCALES, Job, Output
from utils.data.sample.manipulations import METHODS
from utils.data.sample.render import Footage, render
from utils.data.sample.splits import one_class_splits, planned_split_counts
from utils.data.video import write_video

CRF = 23   # FF++ "c23": x264 constant rate factor 23, for every video of every dataset

logger = logging.getLogger(__name__)

MARKER = ".sample_complete.json"   # written last: its presence means the tree is whole
VERSION = 4                        # bump when the generator's output changes
_OWN_ENTRIES = {"ffpp", "celebdf", "dfdc", "boxes.json", "manifest.json", MARKER, *IMAGE_SETS}  # + images


def read_marker(out: str | Path) -> dict | None:
    """The completion marker of a sample tree, or None when the tree is missing or incomplete."""
    try:
        return json.loads((Path(out) / MARKER).read_text())
    except (OSError, ValueError):
        return None


def is_complete(out: str | Path, seed: int, scale: str) -> bool:
    """Whether ``out`` already holds a whole tree generated for ``seed`` and ``scale`` by this version."""
    marker = read_marker(out)
    wanted = {"seed": seed, "scale": scale, "version": VERSION}
    return bool(marker) and all(marker.get(key) == value for key, value in wanted.items())


def make_sample_data(out: str | Path, seed: int = 0, scale: str | None = None, *,
                     workers: int | None = None) -> Path:
    """Write small FF++, Celeb-DF v2 and DFDC datasets in their real layouts under ``out``; return ``out``.

    Also writes ``boxes.json`` (per-frame ground-truth face boxes of every video, keyed by path relative
    to ``out``) and ``manifest.json`` (label, method, source of every video). Idempotent: a complete tree
    for the same seed and scale is returned at once. Atomic: the tree is built in a temporary sibling
    folder and renamed into place, so an interrupted run never leaves a tree that looks complete.

    Args:
        out: destination folder (created; an existing sample tree for another seed/scale is replaced).
        seed: everything (identities, shots, fakes, file names) follows from it.
        scale: ``small`` (the default and the demo's, ~12 MB), ``test`` (the test suite's), ``medium``
            (a longer demo) or ``tiny`` (generator tests). None: a complete tree of this seed already in
            ``out`` is used at whatever scale it was written (a run that generates on first use, inside
            a tree the test suite or ``--scale`` wrote), else ``small`` is written.
        workers: processes to use; default one per available core, at most 8.

    Raises:
        ValueError: an unknown scale, a scale whose splits would come out one-class (see
            :func:`plan_scale`), or an ``out`` that holds other files.
    """
    out = Path(out)
    if scale is None:
        found = (read_marker(out) or {}).get("scale")
        scale = found if found in SCALES and is_complete(out, seed, found) else "small"
    if scale not in SCALES:
        raise ValueError(f"unknown sample scale {scale!r}; choose one of {sorted(SCALES)}")
    if is_complete(out, seed, scale):
        logger.info("sample data in %s is complete (seed %d, scale %s)", out, seed, scale)
        return out
    plans = plan_scale(seed, scale)    # checked before anything is rendered or replaced
    _check_replaceable(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        marker = _write_tree(tmp, seed, scale, plans, workers)
        if not is_complete(out, seed, scale):      # another process may have finished the same tree first
            _install(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("wrote %s videos (%.1f MB) to %s in %.1f s", marker["videos"], marker["bytes"] / 1e6, out,
                time.perf_counter() - started)
    return out


def plan_scale(seed: int, scale: str) -> dict:
    """The plans of the three datasets, refused when any split would come out one-class.

    The adapters index the planned tree (file names only, see :mod:`utils.data.sample.splits`): FF++'s
    pair splits, Celeb-DF's identity-grouped validation carve (for the default training seed and a sweep
    of others), DFDC's chunk lists as the curriculum sets them, and every DFDC training chunk alone (the
    curriculum trains chunk by chunk). A split without reals or without fakes makes a one-class training
    run or a validation/test AUC that does not exist, so such a scale is an error, not a warning.

    Raises:
        ValueError: a split of some dataset would hold one class only (the message lists them).
    """
    plans = {name: planner(seed, SCALES[scale]) for name, planner in PLANNERS.items()}
    bad = one_class_splits(planned_split_counts(plans, len(SCALES[scale].dfdc_reals)))
    if bad:
        shown = "; ".join(bad[:6]) + (f"; … ({len(bad)} in all)" if len(bad) > 6 else "")
        raise ValueError(f"sample scale {scale!r} (seed {seed}) would give one-class splits after the "
                         f"adapters' grouping rules: {shown}. Give that dataset more identities, videos or "
                         "fakes in layouts.SCALES")
    return plans


def _write_tree(root: Path, seed: int, scale: str, plans: dict, workers: int | None) -> dict:
    """Write every video, index file and sidecar under ``root``, the marker last; return the marker."""
    videos = _run(root, [job for plan in plans.values() for job in plan.jobs], seed, workers)
    for plan in plans.values():
        for path, text in plan.files.items():
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_text(text)
    boxes = {path: info.pop("boxes") for path, info in sorted(videos.items())}
    (root / "boxes.json").write_text(json.dumps(boxes, separators=(",", ":")))
    (root / "manifest.json").write_text(json.dumps(dict(sorted(videos.items())), indent=1))
    marker = {"version": VERSION, "seed": seed, "scale": scale,
              "videos": {name: sum(p.startswith(name + "/") for p in videos) for name in plans},
              "real": sum(1 - v["label"] for v in videos.values()),
              "fake": sum(v["label"] for v in videos.values()),
              "bytes": sum(f.stat().st_size for f in root.rglob("*") if f.is_file())}
    (root / MARKER).write_text(json.dumps(marker, indent=1))
    return marker


def _check_replaceable(out: Path) -> None:
    """Refuse to overwrite a folder that is not a sample tree (a user's data must never be deleted)."""
    if out.is_file():
        raise ValueError(f"{out} is a file; give make_sample_data a folder path")
    foreign = sorted(set(os.listdir(out)) - _OWN_ENTRIES) if out.is_dir() else []
    if foreign:
        raise ValueError(f"{out} holds other files ({', '.join(foreign[:5])}); sample data is only written "
                         "to a new or empty folder, or over an older sample tree: choose another --out")


def _install(tmp: Path, out: Path) -> None:
    """Move the finished tree into place, replacing an older sample tree only once the new one is whole."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
    try:
        os.replace(tmp, out)
    except OSError:
        if old is not None and not out.exists():
            os.replace(old, out)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _run(root: Path, jobs: list[Job], seed: int, workers: int | None) -> dict[str, dict]:
    """Write every job's videos, in parallel processes when there is more than one core."""
    jobs = sorted(jobs, key=lambda j: -len(j.outputs) * j.shots[0][1].frames)   # longest first
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    workers = workers or min(cores, 8)
    videos: dict[str, dict] = {}
    if workers <= 1 or len(jobs) <= 1:
        _init_worker()
        for job in jobs:
            videos.update(write_job(str(root), job, seed))
        return videos
    # spawn, not fork: the caller may hold threads (torch, a test runner) that a fork would copy half-alive.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker) as pool:
        for result in pool.map(write_job, [str(root)] * len(jobs), jobs, [seed] * len(jobs)):
            videos.update(result)
    return videos


def _init_worker() -> None:
    import cv2
    cv2.setNumThreads(1)   # processes already use every core; threads inside them would only contend


def write_job(root: str, job: Job, seed: int) -> dict[str, dict]:
    """Render the job's shots once and write each of its videos; return their manifest entries."""
    shots = dict(job.shots)
    footage: dict[str, Footage] = {}
    voices: dict[str, np.ndarray] = {}

    def get(key: str) -> Footage:
        if key not in footage:
            footage[key] = render(shots[key])
        return footage[key]

    def voice(key: str) -> np.ndarray:
        if key not in voices:
            rng = np.random.default_rng([shots[key].seed, 1])
            voices[key] = audio.speech(get(key).mouth, shots[key].fps, shots[key].identity.voice, rng)
        return voices[key]

    entries = {}
    for out in job.outputs:
        target = get(out.target)
        frames = target.frames
        if out.manipulation:
            rng = np.random.default_rng([seed, zlib.crc32(out.path.encode())])
            frames = METHODS[out.manipulation](target, get(out.source), rng)
        sound = _soundtrack(out, voice)
        path = Path(root) / out.path
        write_video(path, frames, target.fps, sound, audio.SAMPLE_RATE, crf=CRF, deterministic=True)
        entries[out.path] = {
            "label": out.label, "method": out.method, "original": out.original or None,
            "source": shots[out.source].identity.name if out.source else None,
            "identity": shots[out.target].identity.name, "frames": len(frames), "fps": target.fps,
            "size": [frames.shape[2], frames.shape[1]], "audio": sound is not None,
            "bytes": path.stat().st_size, "boxes": target.boxes.tolist(),
        }
    return entries


def _soundtrack(out: Output, voice: Callable[[str], np.ndarray]) -> np.ndarray | None:
    """The audio of ``out``: none, its person's own voice, or an audio-only manipulation of that voice."""
    if out.audio == "none":
        return None
    own = voice(out.target)
    if out.audio == "shift":
        return audio.shift(own, out.audio_shift)
    if out.audio == "swap":
        return audio.swap(own, voice(out.audio_source))
    return own
