"""The image sample datasets, written lazily beside the video ones: one folder per image dataset.

:func:`make_image_sample` writes ``<out>/<dataset>`` the first time it is asked for (the run's sample
root), in a temporary sibling folder renamed into place with a completion marker, so an interrupted
run never leaves a set that looks whole. ``make demo`` never asks, so it never pays for them.

* ``imagefolder``: the 3-class image folder (:func:`utils.data.sample.images.write_three_class`);
* ``manifest``: the multi-source image set and its ``manifest.csv``
  (:func:`~utils.data.sample.images.write_multi_source`);
* ``deepfakebench``: a DeepfakeBench-style JSON index over face frames cut from the sample FF++
  videos (:func:`write_deepfakebench`; generates the video samples first when they are missing).
"""
from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from utils.data.sample.generate import make_sample_data
from utils.data.sample.images import IMAGE_SETS, write_multi_source, write_three_class
from utils.data.video import read_frames

logger = logging.getLogger(__name__)

MARKER = ".sample_complete.json"
VERSION = 2                  # 2: the imagefolder sample has a held-out test split
DFB_DATASET = "FaceForensics++"
DFB_LABELS = {"original": "FF-real", "Deepfakes": "FF-DF", "Face2Face": "FF-F2F", "FaceSwap": "FF-FS",
              "NeuralTextures": "FF-NT"}
DFB_FRAMES, DFB_SIZE, DFB_SCALE = 6, 96, 1.3    # frames per video, crop size, crop = 1.3 x the face box
DFB_PREFIX = ("..", "datasets", "rgb")          # leading parts of the published paths that do not exist here


def _crop(frame: np.ndarray, box, size: int = DFB_SIZE, scale: float = DFB_SCALE) -> np.ndarray:
    """A square face crop around ``box`` (``scale`` x its longer side), zero-padded at the edges, resized."""
    x1, y1, x2, y2 = (float(v) for v in box)
    half = max(x2 - x1, y2 - y1) * scale / 2
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    m = np.array([[size / (2 * half), 0, size / 2 - cx * size / (2 * half)],
                  [0, size / (2 * half), size / 2 - cy * size / (2 * half)]], np.float32)
    return cv2.warpAffine(frame, m, (size, size), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_CONSTANT)


def _video_entries(sample: Path) -> list[tuple[str, str, str, str]]:
    """``(video path relative to the sample, method, split, video name)`` of every sample FF++ video."""
    manifest = json.loads((sample / "manifest.json").read_text())
    split_of = {}
    for split in ("train", "val", "test"):
        for a, b in json.loads((sample / "ffpp" / "splits" / f"{split}.json").read_text()):
            split_of.update({a: split, b: split})
    out = []
    for rel, info in sorted(manifest.items()):
        if rel.startswith("ffpp/"):
            method = "original" if info["label"] == 0 else info["method"]
            name = Path(rel).stem
            out.append((rel, method, split_of[name.split("_")[0]], name))
    return out


def write_deepfakebench(root: Path, seed: int, sample: Path) -> dict:
    """``dataset_json/FaceForensics++.json`` and ``FaceForensics++/.../frames/<video>/NNN.png``."""
    boxes = json.loads((sample / "boxes.json").read_text())
    index: dict = {label: {} for label in DFB_LABELS.values()}
    count = 0
    for rel, method, split, name in _video_entries(sample):
        part = ("original_sequences", "youtube") if method == "original" else \
            ("manipulated_sequences", method)
        folder = Path(DFB_DATASET, *part, "c23", "frames", name)
        n = len(boxes[rel])
        wanted = np.unique(np.linspace(0, n - 1, DFB_FRAMES).round().astype(int))
        frames = read_frames(sample / rel, wanted)
        paths = []
        for i, image in zip(frames.indices.tolist(), frames.images):
            (root / folder).mkdir(parents=True, exist_ok=True)
            crop = _crop(image, boxes[rel][i])
            frame = f"{i:03d}.png"
            cv2.imwrite(str(root / folder / frame), crop[..., ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 6])
            paths.append("\\".join(DFB_PREFIX + folder.parts + (frame,)))   # Windows paths, as published
        label = DFB_LABELS[method]
        index[label].setdefault(split, {"c23": {}})["c23"][name] = {"label": label, "frames": paths}
        count += len(paths)
    (root / "dataset_json").mkdir(parents=True, exist_ok=True)
    (root / "dataset_json" / f"{DFB_DATASET}.json").write_text(json.dumps({DFB_DATASET: index}, indent=1))
    return {"frames": count}


def _writers(out: Path, seed: int) -> dict:
    return {"imagefolder": lambda root: write_three_class(root, seed),
            "manifest": lambda root: write_multi_source(root, seed),
            "deepfakebench": lambda root: write_deepfakebench(root, seed, make_sample_data(out, seed))}


def is_complete(root: Path, seed: int) -> bool:
    try:
        marker = json.loads((root / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return marker.get("version") == VERSION and marker.get("seed") == seed


def make_image_sample(out: str | Path, dataset: str, seed: int = 0) -> Path:
    """Write the sample of image dataset ``dataset`` to ``<out>/<dataset>`` unless it is there; return it."""
    if dataset not in IMAGE_SETS:
        raise ValueError(f"no image sample named {dataset!r}; choose one of {IMAGE_SETS}")
    out = Path(out)
    root = out / dataset
    if is_complete(root, seed):
        return root
    writer = _writers(out, seed)[dataset]       # (deepfakebench writes the video samples first)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix=f".{dataset}.", suffix=".partial", dir=out))
    try:
        info = writer(tmp)
        files = [f for f in tmp.rglob("*") if f.is_file()]
        marker = {"version": VERSION, "seed": seed, "files": len(files),
                  "bytes": sum(f.stat().st_size for f in files),
                  "seconds": round(time.perf_counter() - started, 1), "written": len(info)}
        (tmp / MARKER).write_text(json.dumps(marker, indent=1))
        if not is_complete(root, seed):          # another process may have finished it first
            shutil.rmtree(root, ignore_errors=True)
            tmp.rename(root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("wrote the %s sample (%d files, %.1f MB) to %s in %.1f s", dataset, marker["files"],
                marker["bytes"] / 1e6, root, marker["seconds"])
    return root
