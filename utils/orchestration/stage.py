"""Run one (model, stage) of the curriculum: data, model, trainer, end-of-stage evaluation.

``launch/train.py`` parses arguments and calls :func:`run_stage`; the demo and ``make
train-all-specialists`` go through the same path. Nothing here names a model or a dataset: what a
model needs from the data comes from its :class:`~utils.core.model.InputSpec`, what a dataset needs
from its adapter.
"""
from __future__ import annotations

import json
import logging
import platform
import sys
import time
from pathlib import Path

import accelerate
import timm
import torch

from evaluation.model_card import write_model_card
from evaluation.report import make_figures, write_report
from evaluation.scoring import build_report, summary_scalars, validation_metric_names, validation_metrics
from utils.core.checkpoint import CheckpointError, load_weights, read_sidecar
from utils.core.config import Config, ConfigError
from utils.core.fileio import atomic_write_json, read_state_dict
from utils.core.recipe import save_config
from utils.core.registry import create_model
from utils.data.cache_io import load_failures
from utils.data.classes import model_classes
from utils.data.index import check_data_root, data_source
from utils.data.normalization import real_train_stats
from utils.engine.setup import make_accelerator, seed_everything
from utils.engine.trackers import log_figures, takes
from utils.engine.trainer import Trainer
from utils.orchestration.curriculum import init_weights, run_dir
from utils.orchestration.data import predict_split, prepare_data, stage_datasets

logger = logging.getLogger(__name__)


def check_stage(cfg: Config) -> None:
    """What can only be checked against the model, the metrics and the data root: refused before anything
    is written (a run with no dataset root that does not ask for the sample data stops here)."""
    check_data_root(cfg.data)
    names = validation_metric_names(cfg.model.num_classes)
    if cfg.trainer.monitor not in names:
        raise ConfigError(f"trainer.monitor '{cfg.trainer.monitor}' is not a validation metric; choose one of "
                          f"{', '.join(names)}")
    if cfg.trainer.mixed_precision == "fp16" and not torch.cuda.is_available():
        raise ConfigError("trainer.mixed_precision=fp16 needs a CUDA device; on CPU use bf16 or no")


INIT_GEOMETRY = ("crop", "image_size", "clip_len")   # normalisation may differ (data.normalization=real_train)


def check_init_spec(model, meta: dict, start: Path, size: str) -> None:
    """Refuse starting weights exported for another input than the model built here takes (same weights,
    another size: e.g. an imported 224-px checkpoint into a model built at ``model.size=tiny``)."""
    theirs, ours = meta.get("input_spec") or {}, json.loads(json.dumps(model.input_spec.to_dict()))
    if any(theirs[k] != ours[k] for k in INIT_GEOMETRY if k in theirs and k in ours):
        raise ConfigError(
            f"{start} was exported for {theirs.get('image_size')}-px {theirs.get('crop')} inputs, but "
            f"'{meta.get('model')}' built from these model.* settings (size={size}) takes "
            f"{ours['image_size']}-px {ours['crop']} inputs: set the model's size to the one the weights "
            f"were made for (e.g. --set model.size=full)")


def build_stage_model(cfg: Config, stage: int, output_dir: str | Path, init: str | None, recipe: str):
    """The model of a stage, starting from ``--init`` or the previous stage's best weights.

    The seed is set first, so the same command builds the same initial weights every time.
    """
    seed_everything(cfg.trainer.seed, cfg.trainer.deterministic)
    m = cfg.model
    kwargs = {"size": m.size, "num_classes": model_classes(cfg.data, m.num_classes), "drop_rate": m.drop_rate,
              **m.kwargs}
    start = init_weights(cfg, m.name, stage, output_dir, init, recipe)
    pretrained = {"pretrained": m.pretrained, "pretrained_path": m.pretrained_path or None} if start is None else {}
    try:
        model = create_model(m.name, **kwargs, **pretrained)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"model '{m.name}' cannot be built from model.* settings: {e}") from None
    if start is not None:
        meta = read_sidecar(start)
        if meta.get("model") != m.name:
            raise CheckpointError(f"{start} holds weights of model '{meta.get('model')}', not '{m.name}'")
        check_init_spec(model, meta, start, m.size)
        load_weights(model, read_state_dict(start), strict=True, source=str(start))
        logger.info("stage %d starts from %s", stage, start)
    return model, {k: v for k, v in kwargs.items() if v is not None}, start


def _stage_threshold(trainer: Trainer) -> dict | None:
    """The thresholds the exported best weights record (chosen on validation when they were exported)."""
    if not trainer.best_path.is_file():
        return None
    meta = read_sidecar(trainer.best_path)
    if meta.get("threshold") is None:
        return None
    return {"video": meta["threshold"], "frame": meta.get("threshold_frame", meta["threshold"])}


def evaluate_stage(trainer: Trainer, cfg: Config, cache: Path, records: list, out_dir: Path,
                   extra_splits: tuple[str, ...] = ()) -> dict:
    """Evaluate the restored best weights on the test split at the threshold their sidecar records;
    the predictions are kept (``predictions_<split>.npz``), and each of ``extra_splits`` gets its own
    report (JSON and Markdown) in ``out_dir/<split>/``.

    Videos the cache could not use (no face, unreadable) are listed in the report, not dropped. A
    dataset without a test split (an image set laid out as train/ and val/) is reported on its
    validation split, and the report says so.
    """
    acc, failures = trainer.acc, load_failures(cache)
    split = "test" if any(r.split == "test" for r in records) else "val"
    preds = {s: predict_split(trainer.model, cache, s, cfg, acc, records, failures)
             for s in dict.fromkeys(("val", split, *extra_splits))}
    title = f"{cfg.model.name} {out_dir.parent.name}"
    reports = {s: build_report(preds[s], threshold=_stage_threshold(trainer), val_preds=preds["val"],
                               title=title + (f" {s}" if s != "test" else ""), n_boot=300,
                               seed=cfg.trainer.seed, threshold_source="validation")
               for s in dict.fromkeys((split, *extra_splits))}
    for r in reports.values():
        r["data"] = data_source(cfg.data)   # the report says when it measured the generated sample
    report = reports[split]
    if split == "val":
        report["warnings"].append("no test split: this report is on the validation split, which also chose "
                                  "the best epoch and the threshold (optimistic)")
    if acc.is_main_process:
        write_report(report, out_dir)
        for split, p in preds.items():
            p.save(out_dir / f"predictions_{split}.npz")
        for split in extra_splits:
            write_report(reports[split], out_dir / split, figures=False)
        if takes(acc, "figure"):   # every tracker of logging.trackers that takes figures
            log_figures(acc, make_figures(report), trainer.state.global_step, prefix="test/")
        acc.log(summary_scalars(report, "test/"), step=trainer.state.global_step)
    return report


def stage_summary(cfg: Config, stage: int, state, report: dict, rd: Path, start_time: float) -> dict:
    """The one-line-per-stage record (``summary.json``) the demo and ``make`` targets read."""
    return {"model": cfg.model.name, "stage": stage, "dataset": cfg.data.dataset,
            "best_epoch": state.best_epoch + 1, "val_" + cfg.trainer.monitor.split("/")[-1]: state.best_metric,
            "test_video_auc": report["video"]["metrics"].get("auc"),
            "test_video_balanced_acc": report["video"]["metrics"].get("balanced_acc"),
            "test_frame_auc": report["frame"]["metrics"].get("auc"),
            "collapsed": report["collapsed"], "threshold": report["threshold"].get("video"),
            "wall_s": round(time.time() - start_time, 1), "run_dir": str(rd), "data": data_source(cfg.data)}


def set_aside(rd: Path) -> Path | None:
    """``--resume never``: move an earlier run's folder aside (nothing is deleted), so that no file of it
    — best weights, summary, report, metrics — can be taken for this run's."""
    if not rd.exists():
        return None
    aside = rd.with_name(f"{rd.name}.previous-{time.strftime('%Y%m%d-%H%M%S')}")
    rd.rename(aside)
    logger.info("--resume never: the earlier run in %s was moved to %s", rd, aside)
    return aside


def run_info(cfg: Config, acc) -> dict:
    """What a run needs to be reproduced: seed, versions, devices, command."""
    return {"seed": cfg.trainer.seed, "deterministic": cfg.trainer.deterministic, "command": sys.argv,
            "python": platform.python_version(), "torch": torch.__version__, "timm": timm.__version__,
            "accelerate": accelerate.__version__, "platform": platform.platform(), "device": str(acc.device),
            "cuda": torch.version.cuda, "world_size": acc.num_processes, "started": time.strftime("%Y-%m-%d %H:%M:%S")}


def run_stage(cfg: Config, stage: int, output_dir: str | Path, *, init: str | None = None,
              resume: str = "auto", recipe: str = "", records: list | None = None,
              extra_splits: tuple[str, ...] = (), keep_process_group: bool = False) -> dict:
    """Train and evaluate one (model, stage); returns the stage summary (also in ``summary.json``).

    ``records`` replaces the dataset's index (a cross-validation fold brings its own splits);
    ``extra_splits`` are predicted and reported after the test split (see :func:`evaluate_stage`);
    ``keep_process_group`` leaves the distributed process group up for another stage in this process.
    """
    start_time = time.time()
    rd = run_dir(output_dir, cfg.model.name, stage)
    check_stage(cfg)
    model, model_kwargs, start = build_stage_model(cfg, stage, output_dir, init, recipe)  # before any write
    acc = make_accelerator(cfg, rd)
    if resume == "never" and acc.is_main_process:
        set_aside(rd)
    acc.wait_for_everyone()
    cache, records = prepare_data(cfg, acc, records, spec=model.input_spec)
    norm = real_train_stats(cache, records, model.input_spec, cfg.data) \
        if cfg.data.normalization == "real_train" else None
    if norm:
        model.set_normalization(norm["mean"], norm["std"])
    phases, val_set = stage_datasets(cfg, model.input_spec, cache, records)
    meta = {"model": cfg.model.name, "model_kwargs": model_kwargs, "stage": stage,
            "init": str(start) if start else None, "label_names": list(cfg.data.classes),
            "normalization": norm, "data": data_source(cfg.data)}
    trainer = Trainer(model, cfg, rd, phases, val_set, export_meta=meta, accelerator=acc,
                      validation=validation_metrics)
    trainer.resume(resume)
    if acc.is_main_process:
        save_config(cfg, rd / "config.yaml")
        atomic_write_json(rd / "run_info.json", run_info(cfg, acc))
    state = trainer.fit(close=False)
    report = evaluate_stage(trainer, cfg, cache, records, rd / "eval", extra_splits)
    summary = stage_summary(cfg, stage, state, report, rd, start_time)
    if acc.is_main_process:
        atomic_write_json(rd / "summary.json", summary)
        write_model_card(trainer.best_path, report)   # README.md beside best.safetensors
    trainer.close(keep_process_group)
    return summary
