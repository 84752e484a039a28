"""Score video and image files with one exported checkpoint or an ensemble of them.

Each file goes through exactly the code that built the training data, so prediction sees what the
model was trained on: :func:`utils.data.cache.process_video` decodes the wanted frames in one pass,
detects faces in batches, keeps the main face track and stores lossless regions around it in a
scratch cache; the model's own dataset class (:mod:`utils.data.datasets`) then cuts crops with the
model's crop policy, applies the evaluation transforms and clip/audio windows, and the model scores
the frames in batches. Frame probabilities are aggregated per file (mean, or the "confident" rule)
and, for ensembles, averaged across members (optionally with fitted weights).

A file that cannot be read or shows no face gives a result with ``error`` set; callers go on.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader

from evaluation.aggregate import aggregate
from evaluation.ensemble import average_probs, check_members, load_weights
from evaluation.metrics import apply_threshold
from utils.core.checkpoint import ExportedModel, load_exported, read_sidecar, sidecar_label_names
from utils.core.errors import UsageError
from utils.core.onnx_io import load_onnx
from utils.core.registry import DATASETS, get_dataset
from utils.data.cache import BuildOptions, VideoSkipped, process_video
from utils.data.video import VideoReadError, video_info
from utils.data.datasets import ClipDataset, FrameDataset
from utils.data.faces import MTCNNDetector
from utils.data.records import VideoRecord
from utils.data.transforms import build_transforms
from utils.engine.inference import predict_loader
from utils.engine.predictions import FramePredictions

logger = logging.getLogger(__name__)

VIDEO_EXTENSIONS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".ts"}
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def check_image(path: Path) -> None:
    """Decode a still image fully; a truncated or corrupt file is :class:`VideoSkipped` "unreadable"
    (decoders otherwise fill the missing part with grey and carry on)."""
    try:
        with Image.open(path) as img:
            img.load()
    except (OSError, SyntaxError, ValueError) as e:
        raise VideoSkipped(f"unreadable: {e}") from None


def expand_paths(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Files as given; folders replaced by the videos and images under them (sorted, recursive)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file()
                           and f.suffix.lower() in VIDEO_EXTENSIONS | IMAGE_EXTENSIONS)
            if not found:
                logger.warning("%s: no video or image files inside", p)
            out += found
        else:
            out.append(p)
    return out


@dataclass
class Member:
    """One loaded checkpoint and the transform its data pipeline needs."""

    exported: ExportedModel
    transform: object

    @property
    def model(self) -> torch.nn.Module:
        return self.exported.model

    @property
    def spec(self):
        return self.exported.input_spec

    @property
    def margin(self) -> float:
        return self.exported.config.data.margin

    @property
    def name(self) -> str:
        return f"{self.exported.name}:{self.exported.path.name}"


@dataclass
class FileResult:
    """The verdict on one file (``error`` set when it could not be scored)."""

    path: str
    p_fake: float | None = None
    label: str | None = None
    threshold: float | None = None   # on P(fake); None: the most probable class (k > 2)
    n_frames: int = 0
    n_detected: int = 0
    members: dict[str, float] = field(default_factory=dict)
    probs: list[float] | None = None
    classes: dict[str, float] | None = None   # one probability per class, named as the sidecar names them
    seconds: float = 0.0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def line(self) -> str:
        """One human-readable line."""
        if self.error:
            return f"{self.path}\tERROR\t{self.error}"
        per_class = "" if not self.classes or len(self.classes) <= 2 else \
            "\t" + " ".join(f"P({name})={p:.4f}" for name, p in self.classes.items())
        rule = "argmax" if self.threshold is None else f"threshold {self.threshold:.3f}"
        return (f"{self.path}\tP(fake)={self.p_fake:.4f}\t{self.label}{per_class}\t({rule}, "
                f"{self.n_frames} frames, face found on {self.n_detected})")

    def to_json(self) -> str:
        return json.dumps(asdict(self))


def load_member(path: str | os.PathLike, device: str | torch.device = "cpu") -> Member:
    """Load an exported checkpoint (safetensors + sidecar, or an ONNX export + sidecar) for prediction."""
    onnx = Path(path).suffix.lower() == ".onnx"   # runs on onnxruntime, through the same data pipeline
    exported = load_onnx(path, device) if onnx else load_exported(path, map_location=device)
    if exported.trained_on_sample:
        logger.warning("%s was trained on the generated sample data, not a real dataset: its verdicts "
                       "demonstrate the toolkit, they do not detect deepfakes", path)
    transform = build_transforms(exported.input_spec, train=False, clahe=exported.config.data.clahe)
    return Member(exported, transform)


def training_detector(members: list[Member]):
    """The face detector the members' training data used when every one says its images were face
    crops (the whole image is the face); None otherwise (MTCNN finds the face)."""
    found = []
    for m in members:
        data = m.exported.config.data
        adapter = get_dataset(data.dataset) if data.dataset in DATASETS else None
        found.append(adapter.face_detector(adapter.options(data), m.margin) if adapter else None)
    return found[0] if found and all(d is not None for d in found) else None


class Predictor:
    """Score files with one checkpoint or an ensemble.

    Args:
        checkpoints: exported ``.safetensors`` files or ONNX exports (``.onnx``), each with its ``.json``
            sidecar; an ONNX member runs on onnxruntime.
        device: where the face detector and the models run (``cpu``, ``cuda``, ``cuda:1``).
        frames: frames spread evenly over each video (the cache's ``frames_per_video``).
        batch_size: frames (or clips) per model call.
        weights: ensemble weights (list, or a JSON file written by :func:`evaluation.ensemble.save_weights`).
        threshold: decision threshold; default: the sidecar's (one checkpoint), the weights file's
            (ensemble), else 0.5.
        aggregation: ``mean`` or ``confident`` (frame -> file score).
        face_detector: a :class:`utils.data.faces.FaceDetector` (default MTCNN on ``device``).
        min_face_share: a file whose face is found on fewer of its sampled frames than this share is
            reported "no reliable face" instead of scored.
    """

    def __init__(self, checkpoints: list[str | os.PathLike], *, device: str = "cpu", frames: int = 32,
                 batch_size: int = 32, weights: list[float] | str | os.PathLike | None = None,
                 threshold: float | None = None, aggregation: str = "mean", face_detector=None,
                 min_face_share: float = 0.5):
        if not checkpoints:
            raise UsageError("give at least one --checkpoint")
        self.device = torch.device(device)
        check_members([(str(c), sidecar_label_names(read_sidecar(c))) for c in checkpoints])   # first
        self.members = [load_member(c, self.device) for c in checkpoints]
        self.weights, file_threshold = self._weights(weights, checkpoints)
        if threshold is None:
            threshold = self.members[0].exported.threshold if len(self.members) == 1 else file_threshold
        binary = self.members[0].model.num_classes == 2   # k > 2 without a threshold: the argmax
        self.threshold = float(threshold) if threshold is not None else 0.5 if binary else None
        self.frames, self.batch_size, self.aggregation = frames, batch_size, aggregation
        self.min_face_share = min_face_share
        self.face_detector = face_detector if face_detector is not None else \
            training_detector(self.members) or MTCNNDetector(device=str(self.device))
        self.num_classes = {m.model.num_classes for m in self.members}
        self.label_names = self.members[0].exported.label_names

    @staticmethod
    def _weights(weights, checkpoints) -> tuple[np.ndarray | None, float | None]:
        if weights is None:
            return None, None
        if isinstance(weights, (str, os.PathLike)):
            w = load_weights(weights, [str(c) for c in checkpoints])   # checks the file
            return w, json.loads(Path(weights).read_text()).get("threshold")
        w = np.asarray(weights, dtype=np.float64)
        if len(w) != len(checkpoints):
            raise UsageError(f"{len(w)} ensemble weights for {len(checkpoints)} checkpoints")
        return w, None

    def _build_options(self) -> BuildOptions:
        """What to store per file: enough for every member (the widest crop, the longest clip)."""
        specs, configs = [m.spec for m in self.members], [m.exported.config.data for m in self.members]
        clip_len = max(s.clip_len for s in specs)
        return BuildOptions(
            frames_per_video=self.frames,
            clips_per_video=max(d.clips_per_video for d in configs) if clip_len > 1 else 0,
            clip_frames=max([clip_len] + [d.clip_frames for d in configs]) if clip_len > 1 else 0,
            margin=max(m.margin for m in self.members),
            context_scale=max(s.context_scale for s in specs),
            crops=tuple({s.crop for s in specs if s.clip_len == 1}),
            clip_crops=tuple({s.crop for s in specs if s.clip_len > 1}), size=max(s.image_size for s in specs),
            audio=any(s.audio for s in specs))

    @staticmethod
    def member_dataset(member: Member, rows: list[dict], cache_dir: Path):
        """The samples ``member`` scores for one stored file: its frames, or its clips."""
        spec = member.spec
        if spec.clip_len > 1 and not any(r["run"] >= 0 for r in rows):
            n = len({r["slot"] for r in rows})
            raise ValueError(f"{member.name} scores clips of {spec.clip_len} consecutive frames; this file "
                             f"has {n} frame(s) (a still image or a very short video)")
        if spec.clip_len > 1:
            ds = ClipDataset(rows, cache_dir, spec, member.transform, margin=member.margin)
        else:
            ds = FrameDataset([r for r in rows if r["run"] == -1], cache_dir, spec, member.transform,
                              margin=member.margin)
        if len(ds) == 0:
            raise ValueError(f"{member.name}: nothing to score (needs clips of {spec.clip_len} frames)")
        return ds

    def frame_predictions(self, member: Member, rows: list[dict], cache_dir: Path) -> FramePredictions:
        """``member``'s predictions on every frame (or clip) of one decoded file (rows of :meth:`decode`)."""
        loader = DataLoader(self.member_dataset(member, rows, cache_dir), batch_size=self.batch_size,
                            shuffle=False, num_workers=0)
        return predict_loader(member.model, loader, device=self.device)

    def _score_member(self, member: Member, rows: list[dict], cache_dir: Path) -> np.ndarray:
        return aggregate(self.frame_predictions(member, rows, cache_dir), self.aggregation).probs[0]

    def decode(self, path: Path, scratch: Path, res: FileResult) -> list[dict]:
        """Decode, detect and store one file; refuse what cannot be scored honestly (the reason is the
        :class:`VideoSkipped` message): unreadable files, and files where the face is found on too few
        of the sampled frames (a false detection on one frame must not become a verdict)."""
        if not path.is_file():
            raise VideoSkipped("no such file")
        if path.suffix.lower() in IMAGE_EXTENSIONS:
            check_image(path)
        record = VideoRecord(video_id=str(path), path=str(path), label=0, dataset="predict", method="unknown",
                             group=str(path), split="test")
        opts = self._build_options()
        try:
            wanted = min(opts.frames_per_video, video_info(path).n_frames)
        except VideoReadError as e:
            raise VideoSkipped(f"unreadable: {e}") from None
        rows = process_video(record, scratch, opts, self.face_detector)
        res.n_frames = len({r["slot"] for r in rows})
        res.n_detected = len({r["slot"] for r in rows if r["detected"]})
        # the face detector looks at every spread frame (frames inside clip runs are interpolated)
        spread = {r["slot"]: r["detected"] for r in rows if r["run"] == -1}
        found = int(sum(spread.values()))
        if len(spread) < 0.9 * wanted:
            raise VideoSkipped(f"unreadable: {len(spread)} of the {wanted} sampled frames decode (truncated or "
                               "corrupt file)")
        if found < self.min_face_share * len(spread):
            raise VideoSkipped(f"no reliable face ({found} of {len(spread)} frames)")
        return rows

    def _fill(self, res: FileResult, probs: list[np.ndarray]) -> None:
        """The verdict from each member's file probabilities."""
        avg = average_probs([p[None] for p in probs], self.weights)[0]
        res.probs = [float(v) for v in avg]
        res.classes = dict(zip(self.label_names, res.probs))
        res.p_fake = float(1.0 - avg[0])
        res.threshold = self.threshold
        res.label = self.label_names[int(apply_threshold(avg[None], self.threshold)[0])].upper()
        res.members = {m.name: float(1.0 - p[0]) for m, p in zip(self.members, probs)}

    def predict_file(self, path: str | os.PathLike, scratch: Path) -> FileResult:
        """Score one file; failures come back as a result with ``error`` set."""
        start = time.perf_counter()
        res = FileResult(str(path))
        try:
            rows = self.decode(Path(path), scratch, res)
            probs = [self._score_member(m, rows, scratch) for m in self.members]
        except VideoSkipped as e:
            res.error = str(e).replace("corrupt:", "unreadable:", 1)
        except Exception as e:  # noqa: BLE001 - one bad file must not stop a batch of files
            logger.debug("prediction failed on %s", path, exc_info=True)
            res.error = f"{type(e).__name__}: {e}"
        else:
            self._fill(res, probs)
        finally:
            shutil.rmtree(scratch / "videos", ignore_errors=True)
        res.seconds = round(time.perf_counter() - start, 3)
        return res

    def predict(self, paths: Iterable[str | os.PathLike]) -> Iterator[FileResult]:
        """Results for every file under ``paths`` (folders expanded), in order."""
        with tempfile.TemporaryDirectory(prefix="predict-") as tmp:
            for path in expand_paths(paths):
                yield self.predict_file(path, Path(tmp))
