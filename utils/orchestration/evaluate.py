"""Evaluate exported checkpoints on a dataset split: the library behind ``launch/evaluate.py``.

For each checkpoint: rebuild its run config from the sidecar (switching the dataset when asked),
make sure the face-crop cache covers the dataset (:func:`utils.orchestration.stage.prepare_cache`, the trainer's own
path), predict the validation and the evaluated split with the model's own dataset class, list the
videos that produced no frame (no face, unreadable: from the cache's failures), then report. Several
checkpoints form an ensemble combined at the video level, with weights optionally fitted on validation.
"""
from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

import numpy as np
from torch.utils.data import DataLoader

from evaluation.ensemble import align_videos, average_probs, combine, fit_weights, load_weights, save_weights
from evaluation.scoring import evaluate_predictions
from utils.engine.inference import predict_loader
from evaluation.metrics import choose_threshold
from utils.engine.predictions import FramePredictions
from evaluation.report import write_report

logger = logging.getLogger(__name__)


def eval_config(meta: dict, dataset: str, root: str = "", cache: str = "",
                overrides: list[str] | None = None):
    """The run config of an exported checkpoint, pointed at ``dataset`` (root/cache/chunks reset when it
    differs from the training dataset), with ``--set`` overrides applied last."""
    from utils.core.config import Config, build_config, deep_merge, parse_overrides, validate_sections

    raw = validate_sections(meta.get("config") or {}, "checkpoint sidecar") if meta.get("config") else {}
    cfg = build_config(raw) if raw else Config()
    data = cfg.data
    if data.dataset != dataset:
        data = dataclasses.replace(data, dataset=dataset, root="", cache="", methods=[], train_chunks=[],
                                   val_chunks=[], test_chunks=[])
    data = dataclasses.replace(data, root=root or data.root, cache=cache or data.cache)
    cfg = dataclasses.replace(cfg, data=data)
    return build_config(deep_merge(cfg.to_dict(), parse_overrides(overrides or []))) if overrides else cfg


def missing_videos(records: list, preds: FramePredictions, split: str, data_cfg,
                   failures: list[dict]) -> list[dict]:
    """Videos of ``split`` with no prediction row, with the reason the cache recorded (if any).

    The split is chosen as :func:`utils.data.datasets.build_dataset` does (DFDC chunk lists win).
    """
    d = data_cfg
    chunks = {"train": d.train_chunks, "val": d.val_chunks, "test": d.test_chunks}.get(split)
    in_split = [r for r in records if (r.chunk in set(chunks) if d.dataset == "dfdc" and chunks
                                       else r.split == split)]
    seen, why = set(preds.video_ids.tolist()), {f["video_id"]: f.get("reason", "") for f in failures}
    return [{"video_id": r.video_id, "label": r.label, "method": r.method,
             "reason": why.get(r.video_id) or "no frames",
             **({"chunk": str(r.chunk)} if r.chunk is not None else {})}
            for r in in_split if r.video_id not in seen]


def predict_split(model, cache: Path, split: str, cfg, acc, records: list,
                  failures: list[dict]) -> FramePredictions:
    """Frame predictions of ``model`` on one split of a cache, with the frameless videos listed."""
    from utils.data.datasets import build_dataset

    from utils.core.checkpoint import unwrap

    ds = build_dataset(cache, split, unwrap(model).input_spec, cfg.data, train=False)
    bs = cfg.data.eval_batch_size or 2 * cfg.data.batch_size
    loader = acc.prepare(DataLoader(ds, batch_size=bs, shuffle=False, num_workers=cfg.data.num_workers,
                                    pin_memory=acc.device.type == "cuda"))
    preds = predict_loader(model, loader, acc)
    preds.missing = missing_videos(records, preds, split, cfg.data, failures)
    chunk = {r.video_id: r.chunk for r in records if r.chunk is not None}
    if chunk:
        preds.attach("chunk", chunk)
    return preds


def predict_checkpoint(path: str | os.PathLike, dataset: str, splits: list[str], acc, *, root: str = "",
                       cache: str = "", overrides: list[str] | None = None
                       ) -> tuple[dict, dict[str, FramePredictions]]:
    """(sidecar, {split: predictions}) of one exported checkpoint."""
    from utils.core.checkpoint import load_exported
    from utils.data.cache_io import load_failures
    from utils.orchestration.stage import prepare_cache

    model, meta = load_exported(path, map_location=acc.device)
    cfg = eval_config(meta, dataset, root, cache, overrides)
    cache_dir, records = prepare_cache(cfg, acc)
    failures = load_failures(cache_dir)
    logger.info("%s on %s (cache %s)", path, dataset, cache_dir)
    return meta, {s: predict_split(model, cache_dir, s, cfg, acc, records, failures) for s in splits}


def evaluate_checkpoints(checkpoints: list[str], dataset: str, split: str, out_dir: str | os.PathLike, *,
                         val_split: str | None = "val", aggregation: str = "mean", root: str = "",
                         cache: str = "", overrides: list[str] | None = None, n_boot: int = 1000,
                         seed: int = 0, threshold_rule: str = "balanced_acc", no_face: str = "exclude",
                         ensemble_weights: str | None = None, fit_ensemble: bool = False,
                         accelerator=None) -> dict:
    """Evaluate one checkpoint (or an ensemble) on ``dataset``/``split``; write the report to ``out_dir``.

    The decision threshold is chosen on ``val_split`` (None: the sidecar's threshold, else 0.5).
    Returns the report dict (on every rank; files are written by the main process).
    """
    from accelerate import Accelerator

    acc = accelerator or Accelerator()
    splits = [split] + ([val_split] if val_split and val_split != split else [])
    metas, preds = [], []
    for ck in checkpoints:
        meta, p = predict_checkpoint(ck, dataset, splits, acc, root=root, cache=cache, overrides=overrides)
        metas.append(meta)
        preds.append(p)
    out = Path(out_dir)
    threshold = None if val_split else (metas[0].get("threshold") if len(checkpoints) == 1 else None)
    if len(checkpoints) == 1:
        test, val = preds[0][split], preds[0].get(val_split) if val_split else None
    else:
        weights = _ensemble_weights(checkpoints, preds, val_split, aggregation, ensemble_weights,
                                    fit_ensemble, out, acc)
        test = combine([p[split] for p in preds], weights, aggregation)
        val = combine([p[val_split] for p in preds], weights, aggregation) if val_split else None
    title = f"{', '.join(m.get('model', '?') for m in metas)} on {dataset}/{split}"
    report = evaluate_predictions(test, threshold=threshold, val_preds=val, aggregation=aggregation,
                                  n_boot=n_boot, seed=seed, threshold_rule=threshold_rule, no_face=no_face,
                                  title=title)
    report["checkpoints"] = [str(c) for c in checkpoints]
    if acc.is_main_process:
        for s in splits:
            for i, p in enumerate(preds):
                p[s].save(out / f"predictions_{s}{'' if len(preds) == 1 else f'_{i}'}.npz")
        write_report(report, out)
        logger.info("report written to %s", out)
    return report


def _ensemble_weights(checkpoints, preds, val_split, aggregation, weights_file, fit, out: Path, acc):
    """Weights from a file, fitted on validation (and saved), or equal."""
    if weights_file:
        return load_weights(weights_file, checkpoints)
    if not fit:
        return None
    if not val_split:
        raise ValueError("--fit-ensemble needs a validation split to fit on (drop --val-split none)")
    probs, template = align_videos([p[val_split] for p in preds], aggregation)
    w = fit_weights(probs, template.labels)
    avg = average_probs(probs, w)
    threshold = choose_threshold(avg, template.labels) if avg.shape[1] == 2 else None
    if acc.is_main_process:
        path = save_weights(out / "ensemble_weights.json", w, checkpoints, threshold=threshold,
                            aggregation=aggregation, fitted_on=val_split, n_videos=len(template))
        logger.info("ensemble weights %s saved to %s", np.round(w, 3).tolist(), path)
    return w
