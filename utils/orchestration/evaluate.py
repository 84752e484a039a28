"""Evaluate exported checkpoints on a dataset split: the library behind ``launch/evaluate.py``.

For each checkpoint: take its run config from the sidecar (switching the dataset when asked), make
sure the face-crop cache covers the dataset (:func:`utils.orchestration.data.prepare_data`, the
trainer's own path), predict the validation and the evaluated split with the model's own dataset
class, list the videos that produced no frame (no face, unreadable: from the cache's failures), then
report. Several checkpoints form an ensemble combined at the video level, with weights optionally
fitted on validation.
"""
from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

import numpy as np
from accelerate import Accelerator

from evaluation.cross_dataset import cross_dataset_row, write_cross_dataset
from evaluation.ensemble import (align_videos, average_probs, check_members, combine, fit_weights,
                                 load_weights, save_weights)
from evaluation.metrics import choose_threshold
from evaluation.report import write_report
from evaluation.scoring import build_report
from utils.core.checkpoint import ExportedModel, load_exported, read_sidecar, sidecar_label_names
from utils.core.config import Config, SynthesisConfig
from utils.core.recipe import resolve
from utils.core.errors import UsageError
from utils.core.registry import get_dataset
from utils.data.cache_io import load_failures
from utils.data.index import data_source
from utils.engine.predictions import FramePredictions
from utils.orchestration.data import index_data, predict_split, prepare_data
from utils.orchestration.explain import write_galleries

logger = logging.getLogger(__name__)


def eval_config(trained: Config, dataset: str, root: str = "", cache: str = "",
                overrides: list[str] | None = None) -> Config:
    """The run config of a checkpoint pointed at ``dataset``: root, cache and dataset options are reset
    when it differs from the training dataset, and the training's synthetic fakes are switched off (a
    checkpoint is evaluated on the data as it is); then ``--root``/``--cache``, the environment, ``--set``
    (which may switch synthesis back on, as the cue probes do)."""
    raw = trained.to_dict()
    if raw["data"]["dataset"] != dataset:
        shared = set(Config().data.__dataclass_fields__) - {"options"}
        raw["data"] = {k: v for k, v in raw["data"].items() if k in shared}
        raw["data"].update(dataset=dataset, root="", cache="", train_sources=[], eval_sources=[])
    raw["stages"], raw["models"] = {}, {}
    raw["data"]["synthesis"] = dataclasses.asdict(SynthesisConfig())  # the data as it is: no synthetic twins
    given = [f"data.root={root}"] * bool(root) + [f"data.cache={cache}"] * bool(cache)
    return resolve(raw, given + list(overrides or []))


def predict_checkpoint(path: str | os.PathLike, dataset: str, splits: list[str], acc: Accelerator, *,
                       root: str = "", cache: str = "", overrides: list[str] | None = None
                       ) -> tuple[ExportedModel, dict[str, FramePredictions]]:
    """(the loaded checkpoint, {split: predictions}) of one exported checkpoint."""
    exported = load_exported(path, map_location=acc.device)
    cfg = eval_config(exported.config, dataset, root, cache, overrides)
    records = index_data(cfg, acc)
    get_dataset(cfg.data.dataset).check_input(exported.input_spec, records)   # clip models on still images
    present = {r.split for r in records}
    if absent := [s for s in splits if s not in present]:
        raise UsageError(f"{dataset} has no {'/'.join(absent)} split here (splits: {', '.join(sorted(present))})")
    cache_dir, records = prepare_data(cfg, acc, records)
    failures = load_failures(cache_dir)
    logger.info("%s on %s (cache %s)", path, dataset, cache_dir)
    return exported, {s: predict_split(exported.model, cache_dir, s, cfg, acc, records, failures) for s in splits}


def evaluate_checkpoints(checkpoints: list[str], dataset: str, split: str, out_dir: str | os.PathLike, *,
                         val_split: str | None = "val", aggregation: str = "mean", root: str = "",
                         cache: str = "", overrides: list[str] | None = None, n_boot: int = 1000,
                         seed: int = 0, threshold_rule: str = "balanced_acc", no_face: str = "exclude",
                         ensemble_weights: str | None = None, fit_ensemble: bool = False,
                         accelerator=None, explain: int = 0, explain_method: str = "gradcam") -> dict:
    """Evaluate one checkpoint (or an ensemble) on ``dataset``/``split``; write the report to ``out_dir``.

    The decision threshold is chosen on ``val_split`` (None: the sidecar's threshold, else 0.5).
    ``explain`` > 0 adds Grad-CAM galleries of that many videos per (source, TP/FN/TN/FP) cell
    (``gallery/``, one folder per member of an ensemble).
    Returns the report dict (on every rank; files are written by the main process).
    """
    check_members([(str(ck), sidecar_label_names(read_sidecar(ck))) for ck in checkpoints])
    acc = accelerator or Accelerator()
    splits = [split] + ([val_split] if val_split and val_split != split else [])
    members, preds = [], []
    for ck in checkpoints:
        exported, p = predict_checkpoint(ck, dataset, splits, acc, root=root, cache=cache, overrides=overrides)
        members.append(exported)
        preds.append(p)
    out = Path(out_dir)
    threshold = None if val_split else (members[0].threshold if len(checkpoints) == 1 else None)
    if len(checkpoints) == 1:
        test, val = preds[0][split], preds[0].get(val_split) if val_split else None
    else:
        weights = _ensemble_weights(checkpoints, preds, val_split, aggregation, ensemble_weights,
                                    fit_ensemble, out, acc)
        test = combine([p[split] for p in preds], weights, aggregation)
        val = combine([p[val_split] for p in preds], weights, aggregation) if val_split else None
    title = f"{', '.join(m.name for m in members)} on {dataset}/{split}"
    report = build_report(test, threshold=threshold, val_preds=val, aggregation=aggregation, n_boot=n_boot,
                          seed=seed, threshold_rule=threshold_rule, no_face=no_face, title=title,
                          threshold_source="checkpoint")
    report["checkpoints"] = [str(c) for c in checkpoints]
    report["data"] = data_source(eval_config(members[0].config, dataset, root, cache, overrides).data)
    if acc.is_main_process:
        for s in splits:
            for i, p in enumerate(preds):
                p[s].save(out / f"predictions_{s}{'' if len(preds) == 1 else f'_{i}'}.npz")
        write_report(report, out)
        logger.info("report written to %s", out)
        for i, (m, p) in enumerate(zip(members, preds) if explain else ()):
            write_galleries(m, eval_config(m.config, dataset, root, cache, overrides), p[split],
                            report["threshold"]["video"], out / ("gallery" if len(preds) == 1 else f"gallery_{i}"),
                            explain, method=explain_method)
    return report


def cross_dataset(checkpoint: str | os.PathLike, datasets: list[str], split: str, out_dir: str | os.PathLike,
                  **kwargs) -> list[dict]:
    """One checkpoint on the ``split`` of each of ``datasets`` (its report in ``out_dir/<dataset>``), and the
    cross-dataset table of their frame and video AUC (``out_dir/cross_dataset.{json,md}``); ``kwargs`` go to
    :func:`evaluate_checkpoints`. Returns the table's rows."""
    out = Path(out_dir)
    rows = [cross_dataset_row(d, evaluate_checkpoints([str(checkpoint)], d, split, out / d, **kwargs))
            for d in datasets]
    acc = kwargs.get("accelerator")
    if acc is None or acc.is_main_process:
        write_cross_dataset(rows, out, f"{Path(checkpoint).parent.name} of {read_sidecar(checkpoint)['model']}: "
                                       f"{split} split of each dataset")
    return rows


def _ensemble_weights(checkpoints, preds, val_split, aggregation, weights_file, fit, out: Path, acc):
    """Weights from a file, fitted on validation (and saved), or equal."""
    if weights_file:
        return load_weights(weights_file, checkpoints)
    if not fit:
        return None
    if not val_split:
        raise UsageError("--fit-ensemble needs a validation split to fit on (drop --val-split none)")
    probs, template = align_videos([p[val_split] for p in preds], aggregation)
    w = fit_weights(probs, template.labels)
    avg = average_probs(probs, w)
    threshold = choose_threshold(avg, template.labels) if avg.shape[1] == 2 else None
    if acc.is_main_process:
        path = save_weights(out / "ensemble_weights.json", w, checkpoints, threshold=threshold,
                            aggregation=aggregation, fitted_on=val_split, n_videos=len(template))
        logger.info("ensemble weights %s saved to %s", np.round(w, 3).tolist(), path)
    return w
