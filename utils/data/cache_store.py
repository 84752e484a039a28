"""What the face-crop cache stores per frame: each crop policy at what its models read.

* ``native`` (cm, rr: compression and resampling traces): a lossless, never resampled tile on the
  source's 8×8 grid — the centred ``size`` window widened by ``native_jitter`` on each side, the range
  of training's random grid-aligned placement. Nothing else is stored losslessly.
* ``face`` / ``context``: the window the policy cuts, resized exactly as the models' evaluation resize
  would (longest side ``size``, area interpolation, never enlarged), stored lossy (JPEG q95,
  ~45-48 dB): every model resizes these crops anyway, so storing the source pixels only cost disk.
* Clips: the frames of a run are cut around the run's mean box (one window per clip, as the clip
  datasets cut it).

:class:`BuildOptions` says what a build stores; :meth:`BuildOptions.manifest` is recorded in the
cache (``cache.json``) and checked by the datasets (:func:`utils.data.cache_io.check_serves`).
"""
from __future__ import annotations

import json
import zlib
from dataclasses import dataclass

import numpy as np

from utils.core.config import DataConfig
from utils.core.model import InputSpec
from utils.data import cache_io, codecs
from utils.data.crops import GRID, crop_window, cut_window
from utils.data.transforms import stored_size

POLICIES = ("face", "context", "native")
AUDIO_MARGIN_S = 0.08  # audio kept around every stored frame (a log-mel window reaches 16-64 ms past it)


@dataclass(frozen=True)
class BuildOptions:
    """Per-video settings of a cache build; derived from the data config by :meth:`from_data`.

    Attributes:
        frames_per_video: frames spread evenly over each video.
        clips_per_video, clip_frames: runs of consecutive frames for clip models.
        margin: the ``face`` crop margin (fraction of the box per side).
        context_scale: the ``context`` crop (× face box).
        crops: crop policies stored for the spread frames (image models).
        clip_crops: crop policies stored for the frames of runs (clip models).
        size: the largest model input served: ``face`` / ``context`` crops are stored resized to it
            (as the models' resize would), ``native`` tiles are cut for windows of that size.
        native_jitter: ``native`` tiles reach this many pixels (a multiple of 8) beyond the centred
            window on each side: the range of training's random grid-aligned placement.
        quality: JPEG quality of the lossy ``face`` / ``context`` crops.
        compress: lossless WebP for the ``native`` tiles (else raw pixels: no decode, ~6x the bytes).
        audio: store the audio track where the video has one.
        require_audio: a video without audio is a failure (audio-visual training sets).
        backend: video decoder (``auto``, ``decord``, ``pyav``).
    """

    frames_per_video: int = DataConfig.frames_per_video
    clips_per_video: int = DataConfig.clips_per_video
    clip_frames: int = DataConfig.clip_frames
    margin: float = DataConfig.margin
    context_scale: float = InputSpec.context_scale
    crops: tuple[str, ...] = POLICIES
    clip_crops: tuple[str, ...] = ("face",)
    size: int = DataConfig.cache_size
    native_jitter: int = DataConfig.native_jitter
    quality: int = DataConfig.cache_quality
    compress: bool = True
    audio: bool = True
    require_audio: bool = False
    backend: str = "auto"

    def __post_init__(self):
        bad = sorted((set(self.crops) | set(self.clip_crops)) - set(POLICIES))
        if bad:
            raise ValueError(f"unknown crop policies {bad}: choose from {POLICIES}")
        if self.native_jitter < 0 or self.native_jitter % GRID:
            raise ValueError(f"native_jitter {self.native_jitter} must be a non-negative multiple of {GRID}")

    @classmethod
    def from_data(cls, data: DataConfig, **changes) -> "BuildOptions":
        """The build settings a data config asks for (the one place they are read from it)."""
        return cls(frames_per_video=data.frames_per_video, clips_per_video=data.clips_per_video,
                   clip_frames=data.clip_frames, margin=data.margin, crops=tuple(data.cache_crops),
                   clip_crops=tuple(data.cache_clip_crops), size=data.cache_size, native_jitter=data.native_jitter,
                   quality=data.cache_quality, compress=data.cache_compress, **changes)

    def key(self) -> str:
        """What changes the stored content: two settings never share a cache folder."""
        return json.dumps(self.manifest(), sort_keys=True)

    def _served(self, policies: tuple[str, ...]) -> dict:
        held = {"face": {"size": self.size, "margin": self.margin},
                "context": {"size": self.size, "context_scale": self.context_scale},
                "native": {"size": self.size, "jitter": self.native_jitter}}
        return {p: held[p] for p in POLICIES if p in policies}

    def manifest(self) -> dict:
        """What a cache built with these settings holds (``cache.json``)."""
        build = {"frames_per_video": self.frames_per_video, "clips_per_video": self.clips_per_video,
                 "clip_frames": self.clip_frames, "quality": self.quality, "compress": self.compress,
                 "audio": self.audio, "lossless": codecs.LOSSLESS, "lossy": codecs.LOSSY}
        return {"format": cache_io.FORMAT, "build": build,
                "serves": {"frames": self._served(self.crops),
                           "clips": self._served(self.clip_crops) if self.clips_per_video else {}}}


def index_boxes(boxes: np.ndarray) -> np.ndarray:
    """Boxes as the datasets will see them: rounded as the index writes them, read back as float32."""
    return np.array([[round(float(v), 2) for v in b] for b in boxes], np.float32).reshape(-1, 4)


def _crop_blob(frame: np.ndarray, box: np.ndarray, policy: str, opts: BuildOptions) -> tuple[bytes, tuple]:
    """One stored crop and, for ``native``, its tile's (x0, y0, h, w) in source pixels.

    ``face`` / ``context``: the window the policy cuts, resized as the models' resize would to at most
    ``opts.size`` (never enlarged), JPEG. ``native``: the centred ``opts.size`` window (on the 8-pixel
    grid, as evaluation cuts it) widened by ``native_jitter`` on each side, clipped to the frame,
    never resampled, lossless.
    """
    h, w = frame.shape[:2]
    if policy != "native":
        spec = InputSpec(crop=policy, image_size=opts.size, context_scale=opts.context_scale)
        window = crop_window(box, spec, (0, 0, w, h), margin=opts.margin)
        return codecs.encode_lossy(stored_size(cut_window(frame, (0, 0), window), opts.size), opts.quality), ()
    x0, y0, _, _ = crop_window(box, InputSpec(crop="native", image_size=opts.size), (0, 0, w, h))
    j, s = opts.native_jitter, opts.size
    tx0, ty0, tx1, ty1 = max(0, x0 - j), max(0, y0 - j), min(w, x0 + s + j), min(h, y0 + s + j)
    return codecs.encode_lossless(frame[ty0:ty1, tx0:tx1], opts.compress), (tx0, ty0, ty1 - ty0, tx1 - tx0)


def store_crops(images: np.ndarray, boxes: np.ndarray, kept: list[tuple[int, int]],
                opts: BuildOptions) -> tuple[dict, dict]:
    """Encoded crops of every stored frame for the policies its membership needs.

    Spread frames (run -1) get ``opts.crops`` around their own box, named ``<policy>:<slot>``; the
    frames of run k get ``opts.clip_crops`` around the run's mean box — one window for the clip, as
    the clip datasets cut it — named ``<policy>:r<k>:<slot>``. Returns (blobs, arrays of the native
    tiles' origins and sizes).
    """
    blobs: dict[str, bytes] = {}
    tiles: dict[str, list] = {}
    runs: dict[int, list[int]] = {}
    for slot, run in kept:
        runs.setdefault(run, []).append(slot)
    for run, slots in sorted(runs.items()):
        policies = opts.crops if run < 0 else opts.clip_crops
        for slot in slots:
            box = boxes[slot] if run < 0 else boxes[slots].mean(axis=0)
            for policy in policies:
                name = f"{policy}:{slot}" if run < 0 else f"{policy}:r{run}:{slot}"
                blobs[name], tile = _crop_blob(images[slot], box, policy, opts)
                if tile:
                    tiles[name] = list(tile)
    names = sorted(tiles)
    arrays = {"tile_names": np.array(names if names else [""]),
              "tiles": np.array([tiles[n] for n in names], np.int32).reshape(-1, 4)}
    return blobs, arrays


def sparse_audio(audio: np.ndarray, times: np.ndarray, fps: float, sr: int) -> bytes:
    """int16 audio, zero except within ``AUDIO_MARGIN_S`` of a stored frame, zlib-compressed (the
    silence costs next to nothing; every log-mel window a dataset reads lies inside what is kept)."""
    keep = np.zeros(len(audio), bool)
    step = 1.0 / fps if fps > 0 else 0.04
    for t in times:
        keep[max(0, int((t - AUDIO_MARGIN_S) * sr)):max(0, int((t + step + AUDIO_MARGIN_S) * sr) + 1)] = True
    pcm = np.where(keep, np.round(np.clip(audio, -1, 1) * 32767), 0).astype("<i2")
    return zlib.compress(pcm.tobytes(), 1)
