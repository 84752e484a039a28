"""Video and audio decoding for the face-crop cache.

Frames are read with decord's ``VideoReader.get_batch`` over the wanted indices (one pass, never a
seek per frame: seeking to each frame of an H.264 file is several times slower); when decord is missing
or fails on a file, PyAV decodes the video sequentially and keeps the wanted frames. Audio is read with
PyAV, resampled to mono float32 at the requested rate and shifted so that sample 0 is the time of the
first video frame: frame ``i`` shown at ``times[i]`` seconds lines up with sample
``round(times[i] * sr)``.

The decoders' own logging is silenced (PyAV's and decord's FFmpeg log levels; decord's C++ error lines,
which bypass both, by sending file descriptor 2 elsewhere around its calls): a broken file becomes one
:class:`VideoReadError` naming the file and the reason, which the caller reports once.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from utils.data import frames as stills   # still images and frame lists, read as videos

logger = logging.getLogger(__name__)

BACKENDS = ("auto", "decord", "pyav")


class VideoReadError(RuntimeError):
    """A video that cannot be decoded (missing, corrupt, no video stream, no frames)."""


@dataclass(frozen=True)
class VideoInfo:
    """What the cache planner needs to know before decoding."""

    n_frames: int
    fps: float
    width: int
    height: int
    has_audio: bool


@dataclass
class Frames:
    """Decoded frames: ``images`` N×H×W×3 uint8 RGB for ``indices``, shown at ``times`` (seconds
    from the first frame)."""

    indices: np.ndarray
    images: np.ndarray
    times: np.ndarray


def _decord():
    try:
        import decord
    except ImportError:  # pragma: no cover - decord has x86-64 Linux wheels only
        return None
    decord.logging.set_level(decord.logging.QUIET)   # its FFmpeg's log lines ("moov atom not found")
    return decord


def _av():
    import av
    av.logging.set_level(None)                       # PyAV's FFmpeg log: off (the errors are raised)
    return av


@contextlib.contextmanager
def _native_stderr():
    """File descriptor 2 sent to a temporary file while native decoder code runs: decord's C++ writes
    its error lines (``video_reader.cc: ERROR opening``) straight to it. What it wrote is logged at debug
    level; the caller reports the failure once, in its own words."""
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:          # no standard error to keep clean
        yield
        return
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            text = tmp.read().decode("utf-8", "replace").strip()
            if text:
                logger.debug("decoder output: %s", text)


def _reason(e: Exception) -> str:
    """An FFmpeg error without its errno and repeated file name: ``Invalid data found when processing
    input`` rather than ``[Errno 1094995529] Invalid data found when processing input: '/x.mp4'``."""
    return getattr(e, "strerror", None) or str(e)


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise VideoReadError(f"no such file: {path}")
    if path.stat().st_size == 0:
        raise VideoReadError(f"{path} is empty (0 bytes)")


def _open_av(path: str | Path):
    av = _av()
    try:
        return av.open(str(path))
    except (av.error.FFmpegError, OSError) as e:
        hint = " (not a video, or a truncated file)" if isinstance(e, av.error.InvalidDataError) else ""
        raise VideoReadError(f"cannot open {path}: {_reason(e)}{hint}") from e


def _has_audio(path: str | Path) -> bool:
    try:
        with _open_av(path) as c:
            return len(c.streams.audio) > 0
    except VideoReadError:
        return False


def video_info(path: str | Path, backend: str = "auto") -> VideoInfo:
    """Frame count, frame rate, size and whether an audio stream exists.

    Raises:
        VideoReadError: the file cannot be opened or has no video stream.
    """
    if stills.is_frame_source(path):
        return VideoInfo(*_still(stills.source_info, path))
    path = Path(path)
    _check_file(path)
    decord = _decord() if backend in ("auto", "decord") else None
    if decord is not None:
        try:
            with _native_stderr():
                vr = decord.VideoReader(str(path), num_threads=1)
                h, w = vr[0].shape[:2] if len(vr) else (0, 0)
                fps = float(vr.get_avg_fps())
            return VideoInfo(len(vr), fps, int(w), int(h), _has_audio(path))
        except Exception as e:  # decord raises its own DECORDError and plain RuntimeErrors
            if backend == "decord":
                raise VideoReadError(f"decord cannot read {path}: {e}") from e
            logger.debug("decord failed on %s (%s); using PyAV", path, e)
    av = _av()
    with _open_av(path) as c:
        if not c.streams.video:
            raise VideoReadError(f"{path} has no video stream")
        s = c.streams.video[0]
        try:  # some containers do not store the count: count the packets (no decoding)
            n = s.frames or sum(1 for p in c.demux(s) if p.size)
        except av.error.FFmpegError as e:
            raise VideoReadError(f"cannot read {path}: {_reason(e)}") from e
        fps = float(s.average_rate or s.guessed_rate or 0.0)
        return VideoInfo(int(n), fps, int(s.codec_context.width), int(s.codec_context.height),
                         len(c.streams.audio) > 0)


def _still(read, *args):
    """A reader of :mod:`utils.data.frames`, its errors raised as :class:`VideoReadError`."""
    try:
        return read(*args)
    except stills.FrameReadError as e:
        raise VideoReadError(str(e)) from e


def _read_decord(path: Path, indices: np.ndarray, threads: int) -> Frames:
    decord = _decord()
    with _native_stderr():
        vr = decord.VideoReader(str(path), num_threads=threads)
        if len(vr) == 0:
            raise VideoReadError(f"{path} has zero frames")
        indices = indices[indices < len(vr)]
        images = vr.get_batch(indices.tolist()).asnumpy()
        times = vr.get_frame_timestamp(indices.tolist())[:, 0].astype(np.float64)
        first = float(vr.get_frame_timestamp([0])[0, 0])
    return Frames(indices, images, times - first)


def _read_pyav(path: Path, indices: np.ndarray, threads: int) -> Frames:
    wanted = set(indices.tolist())
    last = int(indices.max()) if len(indices) else -1
    images, kept, times, t0 = [], [], [], None
    av = _av()
    with _open_av(path) as c:
        if not c.streams.video:
            raise VideoReadError(f"{path} has no video stream")
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        s.codec_context.thread_count = threads
        try:
            for i, frame in enumerate(c.decode(s)):
                t = float(frame.time) if frame.time is not None else i / float(s.average_rate or 25)
                t0 = t if t0 is None else t0
                if i in wanted:
                    images.append(frame.to_ndarray(format="rgb24"))
                    kept.append(i)
                    times.append(t - t0)
                if i >= last:
                    break
        except av.error.FFmpegError as e:
            if not images:
                raise VideoReadError(f"cannot decode {path}: {_reason(e)}") from e
            logger.warning("%s: decoding stopped early (%s); keeping %d frames", path, _reason(e),
                           len(images))
    if not images:
        raise VideoReadError(f"{path} has zero decodable frames")
    return Frames(np.asarray(kept, dtype=np.int64), np.stack(images), np.asarray(times))


def read_frames(path: str | Path, indices: Sequence[int], backend: str = "auto",
                threads: int = 1) -> Frames:
    """Decode the frames at ``indices`` (sorted, unique) in one pass.

    Indices past the end of the video are dropped, so ``Frames.indices`` may be shorter than asked.

    Args:
        path: video file.
        indices: wanted frame numbers (0-based, decode order).
        backend: ``auto`` (decord, then PyAV if decord fails), ``decord`` or ``pyav``.
        threads: decoder threads (1 inside worker processes).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend '{backend}' is not one of {BACKENDS}")
    if stills.is_frame_source(path):
        return Frames(*_still(stills.read_source, path, indices))
    path = Path(path)
    _check_file(path)
    idx = np.unique(np.asarray(indices, dtype=np.int64))
    if len(idx) and idx[0] < 0:
        raise ValueError(f"frame indices must be >= 0, got {idx[0]}")
    decord = _decord() if backend in ("auto", "decord") else None
    if decord is not None:
        try:
            return _read_decord(path, idx, threads)
        except Exception as e:  # noqa: BLE001 - any decord failure falls back to PyAV
            if backend == "decord":
                raise VideoReadError(f"decord cannot read {path}: {e}") from e
            logger.debug("decord failed on %s (%s); using PyAV", path, e)
    return _read_pyav(path, idx, threads)


def read_audio(path: str | Path, sample_rate: int = 16000) -> np.ndarray | None:
    """Mono float32 audio at ``sample_rate``, sample 0 at the first video frame's time.

    Encoders delay or lead audio (AAC priming, container edit lists): the stream start times of the
    audio and the video are compared and the difference padded with silence or cut, so frame times
    from :func:`read_frames` index the samples directly. Returns ``None`` when there is no audio.
    """
    av = _av()
    with _open_av(path) as c:
        if not c.streams.audio:
            return None
        a = c.streams.audio[0]
        v0 = _stream_start(c.streams.video[0]) if c.streams.video else 0.0
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        chunks, a0 = [], None
        try:
            for frame in c.decode(a):
                if a0 is None and frame.time is not None:
                    a0 = float(frame.time)
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
        except av.error.FFmpegError as e:
            logger.warning("%s: audio decoding stopped early (%s)", path, e)
    if not chunks:
        return None
    samples = np.concatenate(chunks).astype(np.float32, copy=False)
    shift = int(round(((a0 if a0 is not None else v0) - v0) * sample_rate))
    if shift > 0:  # audio starts after the first frame: pad the gap with silence
        samples = np.concatenate([np.zeros(shift, np.float32), samples])
    elif shift < 0:  # audio starts before it (encoder priming): drop the lead-in
        samples = samples[-shift:]
    return samples


def _stream_start(stream) -> float:
    """Time of the first decoded frame of a stream (its packets' earliest pts)."""
    if stream.start_time is not None and stream.time_base is not None:
        return float(stream.start_time * stream.time_base)
    return 0.0


def _yuv420_bitexact(av, frame):
    """Convert to yuv420p deterministically: single-threaded, bit-exact, with zeroed row padding
    (swscale's threaded conversion and uninitialised padding both vary from run to run)."""
    from av.video.reformatter import Interpolation
    flags = Interpolation.BILINEAR | Interpolation.ACCURATE_RND | Interpolation.BITEXACT
    frame = frame.reformat(format="yuv420p", threads=1, interpolation=flags)
    for plane in frame.planes:
        rows = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)
        rows[:, plane.width:] = 0
    return frame


def _mux_audio(av, container, stream, audio: np.ndarray, sample_rate: int) -> None:
    chunk = stream.codec_context.frame_size or 1024
    pcm = np.asarray(audio, dtype=np.float32).reshape(-1)
    for start in range(0, len(pcm), chunk):
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm[None, start:start + chunk]), format="fltp",
                                           layout="mono")
        frame.sample_rate, frame.pts = sample_rate, start
        container.mux(stream.encode(frame))
    container.mux(stream.encode())


def write_video(path: str | Path, frames: Sequence[np.ndarray] | np.ndarray, fps: float = 25.0,
                audio: np.ndarray | None = None, sample_rate: int = 16000, crf: int = 18,
                gop: int | None = None, deterministic: bool = False) -> Path:
    """Write RGB uint8 frames (and optional mono float audio in [-1, 1]) as an H.264/AAC mp4.

    Args:
        crf: x264 constant rate factor (FF++'s "c23" is 23).
        gop: keyframe interval (x264's default of 250 is what long-GOP datasets look like).
        deterministic: the same bytes for the same input, on any machine: single-threaded x264 with
            its CPU-independent code paths and a bit-exact colour conversion (the sample datasets).
            Frames must then have even sizes; otherwise an odd last row/column is dropped.
    """
    from fractions import Fraction

    av = _av()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = np.asarray(frames)
    h, w = frames.shape[1:3]
    if deterministic and (w % 2 or h % 2):
        raise ValueError(f"frame size {w}x{h} must be even for yuv420p H.264")
    with av.open(str(path), "w", format="mp4") as c:
        v = c.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        v.width, v.height, v.pix_fmt = w - w % 2, h - h % 2, "yuv420p"
        v.options = {"crf": str(crf), **({"g": str(gop)} if gop else {})}
        if deterministic:
            v.codec_context.thread_count = 1
            v.options = {**v.options, "preset": "veryfast", "x264-params": "threads=1:cpu-independent=1"}
        a = c.add_stream("aac", rate=sample_rate, layout="mono") if audio is not None else None
        for index, img in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img[: v.height, : v.width]), format="rgb24")
            if deterministic:
                frame = _yuv420_bitexact(av, frame)
                frame.pts = index
            c.mux(v.encode(frame))
        c.mux(v.encode())
        if a is not None:
            _mux_audio(av, c, a, audio, sample_rate)
    return path
