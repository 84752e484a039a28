"""Still images and lists of frames, read as videos: a still image is a video of one frame.

Every adapter hands the face-crop cache one path per record. A video file is decoded by
:mod:`utils.data.video`; a still image (``.jpg``, ``.png``, ``.webp``, ...) is read here as a video of
one frame, and a *frame list* -- the frames of one video kept as separate image files, the way
DeepfakeBench's preprocessed data stores them -- as a video of those frames in the listed order. A
frame list travels as one string in brace form, ``/data/ff/frames/000_003/{000.png,001.png}``, made by
:func:`frame_list_path`. A listed file that is missing or unreadable makes the whole list unreadable:
one failure for that video (in the cache's ``failures.csv``), with the file named.

Frame lists have no timing (the frames were sampled from a video whose rate is not recorded) and no
audio: their frames are given nominal times one second apart.

:class:`WholeFrame` is the face detector for images that are already face crops: it reports the
whole frame as the face (less the margin the ``face`` crop policy adds back), so such images are
stored like detected faces and every crop policy serves them.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from utils.data.faces import Detection

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
FRAME_LIST_FPS = 1.0   # nominal rate of a frame list (its real timing is not recorded)


class FrameReadError(RuntimeError):
    """A still image or a listed frame that is missing or cannot be decoded."""


def is_image(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a still image (by its extension)."""
    return str(path).lower().endswith(IMAGE_EXTENSIONS)


def frame_list_path(files: Sequence[str | os.PathLike]) -> str:
    """One string for the frames of a video: ``<folder>/{a.png,b.png}`` (the folder they share).

    Raises:
        ValueError: no files, or a file name holding ``,``, ``{`` or ``}`` (the brace form's separators).
    """
    paths = [os.fspath(f) for f in files]
    if not paths:
        raise ValueError("a frame list needs at least one frame")
    folder = os.path.dirname(paths[0]) if len(paths) == 1 else os.path.commonpath(paths)
    names = [os.path.relpath(p, folder) for p in paths]
    bad = [n for n in names if any(c in n for c in ",{}")]
    if bad:
        raise ValueError(f"frame file names may not contain ',', '{{' or '}}': {bad[:3]}")
    return os.path.join(folder, "{" + ",".join(names) + "}")


def frame_list_files(path: str | os.PathLike) -> list[str] | None:
    """The files of a frame list made by :func:`frame_list_path`, or None when ``path`` is not one."""
    text = os.fspath(path)
    folder, brace, rest = text.rpartition(os.sep + "{")
    if not brace or not rest.endswith("}"):
        return None
    return [os.path.join(folder, name) for name in rest[:-1].split(",") if name]


def is_frame_source(path: str | os.PathLike) -> bool:
    """Whether this module reads ``path``: a still image or a frame list."""
    return is_image(path) or frame_list_files(path) is not None


def _files(path: str | os.PathLike) -> list[str]:
    listed = frame_list_files(path)
    return listed if listed is not None else [os.fspath(path)]


def read_image(path: str | os.PathLike) -> np.ndarray:
    """An image file as HxWx3 uint8 RGB (grey and alpha converted, EXIF orientation applied).

    Raises:
        FrameReadError: the file is missing or not a decodable image.
    """
    if not os.path.isfile(path):
        raise FrameReadError(f"no such file: {path}")
    data = np.fromfile(path, np.uint8)   # not cv2.imread: it cannot open non-ASCII paths on every OS
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise FrameReadError(f"not a decodable image: {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def source_info(path: str | os.PathLike) -> tuple[int, float, int, int, bool]:
    """(frames, fps, width, height, has_audio) of a still image or frame list.

    Every listed file must exist; the size is read from the first one.

    Raises:
        FrameReadError: a listed file is missing, or the first one cannot be decoded.
    """
    files = _files(path)
    missing = [f for f in files if not os.path.isfile(f)]
    if missing:
        raise FrameReadError(f"{len(missing)} of {len(files)} frame file(s) missing, e.g. {missing[0]}")
    h, w = read_image(files[0]).shape[:2]
    return len(files), FRAME_LIST_FPS, int(w), int(h), False


def read_source(path: str | os.PathLike,
                indices: Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(indices, images N×H×W×3 RGB, times) of the wanted frames of a still image or frame list.

    Indices past the last frame are dropped, as for videos.

    Raises:
        FrameReadError: a wanted file is missing or unreadable, or the frames differ in size.
    """
    files = _files(path)
    idx = np.unique(np.asarray(indices, dtype=np.int64))
    idx = idx[(idx >= 0) & (idx < len(files))]
    if not len(idx):
        raise FrameReadError(f"{path}: none of the wanted frames exist ({len(files)} frame(s))")
    images = [read_image(files[i]) for i in idx]
    if len({im.shape for im in images}) > 1:
        sizes = sorted({f"{im.shape[1]}x{im.shape[0]}" for im in images})
        raise FrameReadError(f"the frames of {Path(files[0]).parent} differ in size ({', '.join(sizes)})")
    return idx, np.stack(images), idx.astype(np.float64) / FRAME_LIST_FPS


class WholeFrame:
    """Face detector for images that are already face crops: the face is the whole frame.

    The box is the frame shrunk by ``margin`` on each side, so that the ``face`` crop policy (box plus
    ``margin`` per side) cuts exactly the image, ``native`` crops are centred on it and ``context``
    crops see the image with a zero border.
    """

    def __init__(self, margin: float = 0.3):
        self.margin = float(margin)

    def detect(self, frames: list[np.ndarray]) -> list[list[Detection]]:
        out = []
        for frame in frames:
            h, w = frame.shape[:2]
            half_w, half_h = w / (2 * (1 + 2 * self.margin)), h / (2 * (1 + 2 * self.margin))
            box = (w / 2 - half_w, h / 2 - half_h, w / 2 + half_w, h / 2 + half_h)
            out.append([Detection(tuple(float(v) for v in box), 1.0)])
        return out
