"""Write H.264 mp4 files (optionally with an AAC audio track) with PyAV.

Every video of a dataset goes through the same encoder settings, so real and fake files never differ in
resolution, frame rate, duration, codec or rate control: only the pixels do.
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import Interpolation

from utils.data.sample.audio import SAMPLE_RATE

CRF = 23   # FF++ "c23": x264 constant rate factor 23
_BITEXACT = Interpolation.BILINEAR | Interpolation.ACCURATE_RND | Interpolation.BITEXACT


def _yuv420(frame: av.VideoFrame) -> av.VideoFrame:
    """Convert to yuv420p deterministically: single-threaded, bit-exact, with zeroed row padding.

    swscale's default threaded conversion, and row padding left uninitialised, are both ways for the same
    frames to reach the encoder differently from run to run.
    """
    frame = frame.reformat(format="yuv420p", threads=1, interpolation=_BITEXACT)
    for plane in frame.planes:
        rows = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)
        rows[:, plane.width:] = 0
    return frame


def write_mp4(path: str | Path, frames: np.ndarray, fps: float, audio: np.ndarray | None = None,
              sample_rate: int = SAMPLE_RATE, crf: int = CRF) -> None:
    """Encode RGB ``frames`` [T, H, W, 3] uint8 as H.264 (yuv420p) and ``audio`` [N] float as mono AAC.

    The output is deterministic (the same bytes for the same frames): x264 runs single-threaded and with
    ``cpu-independent`` (without it, its CPU-specific code paths gave different bytes from run to run).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frames.shape[1:3]
    if width % 2 or height % 2:
        raise ValueError(f"frame size {width}x{height} must be even for yuv420p H.264")
    with av.open(str(path), "w", format="mp4") as container:
        video = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.codec_context.thread_count = 1
        video.options = {"crf": str(crf), "preset": "veryfast", "x264-params": "threads=1:cpu-independent=1"}
        sound = None
        if audio is not None:
            sound = container.add_stream("aac", rate=sample_rate, layout="mono")
        for index, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame = _yuv420(frame)
            frame.pts = index
            container.mux(video.encode(frame))
        container.mux(video.encode())
        if sound is not None:
            chunk = sound.codec_context.frame_size or 1024
            for start in range(0, len(audio), chunk):
                samples = np.ascontiguousarray(audio[None, start:start + chunk], dtype=np.float32)
                frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
                frame.sample_rate, frame.pts = sample_rate, start
                container.mux(sound.encode(frame))
            container.mux(sound.encode())
