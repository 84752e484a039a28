"""Grad-CAM pictures of a checkpoint: on files (``launch/explain.py``) and as evaluation galleries.

Files go through the prediction path (:class:`utils.orchestration.predict.Predictor`: decode, detect,
store, the model's own dataset class), so the heat maps are of exactly the crops the model scores.
Galleries (``launch/evaluate.py --explain N``) take, for each source and each cell of the confusion
matrix (TP, FN, TN, FP at the report's threshold), the N most confident videos of an evaluated split
and show one frame of each (the middle stored frame, the middle frame of the middle clip) from the
face-crop cache: the crop, each cam layer's heat map over it, and the scores.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Iterable

import numpy as np
from torch.utils.data import default_collate

from evaluation.aggregate import aggregate
from evaluation.explain import Explanation, explain_batch, explanation_figure, select_gallery
from utils.core.checkpoint import ExportedModel
from utils.core.config import Config
from utils.core.fileio import atomic_write_json
from utils.data.cache import BuildOptions, VideoSkipped, cache_location
from utils.data.cache_io import safe_id
from utils.data.datasets import build_dataset
from utils.data.index import data_root
from utils.data.records import VideoRecord
from utils.engine.predictions import FramePredictions
from utils.orchestration.predict import FileResult, Predictor, expand_paths

logger = logging.getLogger(__name__)


def spread(n: int, k: int) -> list[int]:
    """``k`` indices spread evenly over ``range(n)``."""
    return sorted(set(np.linspace(0, n - 1, min(n, k)).round().astype(int).tolist())) if n else []


def explanation_rows(exp: Explanation, captions: list[str], frames: str = "middle") -> list[dict]:
    """Figure rows: one per sample (its middle frame), or one per frame of the first sample (``all``)."""
    t = exp.images.shape[1]
    if frames == "all":
        return [{"image": exp.images[0, j], "maps": {k: v[0, j] for k, v in exp.maps.items()},
                 "caption": f"{captions[0]}\nframe {j + 1}/{t}"} for j in range(t)]
    return [{"image": exp.images[i, t // 2], "maps": {k: v[i, t // 2] for k, v in exp.maps.items()},
             "caption": captions[i]} for i in range(len(exp.images))]


class Explainer(Predictor):
    """A :class:`Predictor` of one checkpoint that also explains each file (see module doc).

    Args:
        checkpoint: exported weights.
        samples: frames (image models) spread over each file that are explained; clip models explain
            their middle clip, one map per frame.
        method, target, layers: see :func:`evaluation.explain.explain_batch`.
        **kwargs: :class:`Predictor` options (device, frames, threshold...).
    """

    def __init__(self, checkpoint: str | os.PathLike, *, samples: int = 4, method: str = "gradcam",
                 target: str = "predicted", layers: list[str] | None = None, **kwargs):
        super().__init__([checkpoint], **kwargs)
        self.samples, self.method, self.target, self.layers = samples, method, target, layers

    def explain_file(self, path: str | os.PathLike, scratch: Path) -> tuple[FileResult, Explanation | None]:
        """The verdict on one file and the heat maps of its samples (None when it could not be scored)."""
        start, res, exp = time.perf_counter(), FileResult(str(path)), None
        member = self.members[0]
        try:
            rows = self.decode(Path(path), scratch, res)
            ds = self.member_dataset(member, rows, scratch)
            picks = [len(ds) // 2] if member.spec.clip_len > 1 else spread(len(ds), self.samples)
            exp = explain_batch(member.model, default_collate([ds[i] for i in picks]), method=self.method,
                                target=self.target, layers=self.layers)
            self._fill(res, [self._score_member(member, rows, scratch)])
        except VideoSkipped as e:
            res.error = str(e)
        except ValueError as e:      # a clip model on a still image, nothing to score
            res.error = str(e)
        finally:
            shutil.rmtree(scratch / "videos", ignore_errors=True)
        res.seconds = round(time.perf_counter() - start, 3)
        return res, exp

    def explain_files(self, paths: Iterable[str | os.PathLike], out: Path, per_class: int = 0) -> list[dict]:
        """Explain every file under ``paths``: ``<out>/<name>.png`` and ``.npz`` per file, a gallery per
        predicted class (``per_class`` files each, most confident first), ``explain.json``."""
        out.mkdir(parents=True, exist_ok=True)
        index, best = [], {}
        with tempfile.TemporaryDirectory(prefix="explain-") as tmp:
            for i, path in enumerate(expand_paths(paths)):
                res, exp = self.explain_file(path, Path(tmp))
                entry = {"path": str(path), "result": json.loads(res.to_json())}
                if exp is not None:
                    entry.update(self._write_file(exp, res, out / f"{i:03d}_{Path(path).stem}"))
                    best.setdefault(res.label, []).append((res.p_fake, exp, res))
                index.append(entry)
        for label, items in best.items():
            if per_class:
                entry_rows = []
                for p, exp, res in sorted(items, key=lambda x: -x[0] if label == "FAKE" else x[0])[:per_class]:
                    entry_rows += explanation_rows(exp, [f"{Path(res.path).name}\nP(fake) {p:.3f}"] * len(exp.images))[:1]
                explanation_figure(entry_rows, f"predicted {label}").savefig(out / f"gallery_{label.lower()}.png",
                                                                             dpi=100)
        atomic_write_json(out / "explain.json", {"checkpoint": str(self.members[0].exported.path),
                                                 "method": self.method, "target": self.target, "files": index})
        return index

    def _write_file(self, exp: Explanation, res: FileResult, stem: Path) -> dict:
        clip = exp.images.shape[1] > 1
        captions = [f"{Path(res.path).name}\nP(fake) {p:.3f}" for p in exp.probs[:, 1]]
        rows = explanation_rows(exp, captions, "all" if clip else "middle")
        explanation_figure(rows, f"{Path(res.path).name}: {res.label} (file P(fake) {res.p_fake:.3f}), "
                                 f"{exp.method}").savefig(stem.with_suffix(".png"), dpi=100)
        np.savez_compressed(stem.with_suffix(".npz"), frames=exp.images, probs=exp.probs, target=exp.target,
                            **{f"map_{k}": v for k, v in exp.maps.items()})
        return {"png": str(stem.with_suffix(".png")), "npz": str(stem.with_suffix(".npz")),
                "layers": list(exp.maps)}


def _middle_items(ds, video_ids: list[str]) -> list[int]:
    """The index of each video's middle sample in ``ds`` (its stored frames or clips)."""
    by_video: dict[str, list[int]] = {}
    for i, v in enumerate(ds.video_ids):
        by_video.setdefault(v, []).append(i)
    return [by_video[v][len(by_video[v]) // 2] for v in video_ids if v in by_video]


def write_galleries(exported: ExportedModel, cfg: Config, preds: FramePredictions, threshold: float,
                    out: str | os.PathLike, per_cell: int, *, method: str = "gradcam",
                    target: str = "predicted") -> dict:
    """Galleries of one evaluated split (see module doc): ``<out>/<source>_<cell>.png`` and ``index.json``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cache = cache_location(cfg.data, data_root(cfg.data)[0], BuildOptions.from_data(cfg.data))
    videos = aggregate(preds, "mean")
    score = dict(zip(videos.video_ids.tolist(), videos.probs[:, 1].tolist()))
    label = dict(zip(videos.video_ids.tolist(), videos.labels.tolist()))
    index = {}
    for (source, cell), ids in select_gallery(videos, threshold, per_cell).items():
        recs = [VideoRecord(v, "", int(label[v]), cfg.data.dataset, source, v, "test") for v in ids]
        ds = build_dataset(cache, recs, exported.input_spec, cfg.data, train=False)
        items = _middle_items(ds, ids)
        batch = default_collate([ds[i] for i in items])
        exp = explain_batch(exported.model, batch, method=method, target=target)
        captions = [f"{v[-18:]}\nvideo {score[v]:.2f} frame {p:.2f}" for v, p in zip(batch["video_id"], exp.probs[:, 1])]
        name = f"{safe_id(source)}_{cell}.png"
        explanation_figure(explanation_rows(exp, captions), f"{source}: {cell} at threshold {threshold:.3f} "
                                                            f"({method})").savefig(out / name, dpi=100)
        index[f"{source}/{cell}"] = {"png": name, "videos": list(batch["video_id"])}
    atomic_write_json(out / "index.json", {"threshold": threshold, "per_cell": per_cell, "method": method,
                                           "target": target, "cells": index})
    logger.info("Grad-CAM galleries (%d cells) written to %s", len(index), out)
    return index
