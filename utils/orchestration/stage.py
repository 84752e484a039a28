"""Run one (model, stage) of the curriculum: data, model, trainer, end-of-stage evaluation.

``launch/train.py`` parses arguments and calls :func:`run_stage`; the demo and ``make
train-all-specialists`` go through the same path. Nothing here names a model: what a model needs
from the data comes from its :class:`~utils.core.model.InputSpec`.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

from accelerate import Accelerator

from utils.core.checkpoint import (CheckpointError, atomic_write_json, load_weights, read_sidecar, read_state_dict,
                              sidecar_path)
from utils.core.config import Config, save_config
from utils.orchestration.curriculum import cache_dir, data_root, init_weights, run_dir, sample_dir
from utils.core.registry import create_model
from utils.engine.trainer import Trainer, make_accelerator

logger = logging.getLogger(__name__)


def ensure_sample_data(acc: Accelerator) -> None:
    """Generate the bundled sample datasets on first use (main process; the others wait)."""
    if acc.is_main_process:
        from utils.data.sample import make_sample_data
        make_sample_data(sample_dir())
    acc.wait_for_everyone()


def prepare_cache(cfg: Config, acc: Accelerator) -> tuple[Path, list]:
    """Index the dataset and make sure its face-crop cache covers it; returns (cache dir, records)."""
    from utils.data.adapters import build_index
    from utils.data.cache import build_cache, cache_is_complete

    root, is_sample = data_root(cfg)
    if is_sample:
        ensure_sample_data(acc)
    records = build_index(cfg.data, root, seed=cfg.trainer.seed)
    cache = cache_dir(cfg, root)
    if not cache_is_complete(cache, records):
        if not cfg.data.build_cache:
            raise FileNotFoundError(
                f"the face-crop cache {cache} does not cover {cfg.data.dataset} at {root}. Build it with:\n"
                f"  python launch/extract_faces.py --dataset {cfg.data.dataset} --root {root} --cache {cache}"
                f" --frames {cfg.data.frames_per_video} --clips {cfg.data.clips_per_video}"
                f" --clip-frames {cfg.data.clip_frames}{'' if cfg.data.cache_compress else ' --no-compress'}\n"
                "or set data.build_cache=true")
        logger.info("building the face-crop cache %s (%d videos)", cache, len(records))
        build_cache(records, cache, frames_per_video=cfg.data.frames_per_video,
                    clips_per_video=cfg.data.clips_per_video, clip_frames=cfg.data.clip_frames,
                    margin=cfg.data.margin, workers=max(1, cfg.data.num_workers // acc.num_processes),
                    reuse_original_boxes=cfg.data.dataset == "dfdc", compress=cfg.data.cache_compress,
                    rank=acc.process_index, world_size=acc.num_processes)
        acc.wait_for_everyone()
    return cache, records


def stage_datasets(cfg: Config, spec, cache: Path):
    """(train phases, validation set). DFDC stages get one phase per training chunk, built lazily."""
    from utils.data.datasets import build_dataset

    def train_set(data_cfg):
        return lambda: build_dataset(cache, "train", spec, data_cfg, train=True)

    if cfg.trainer.epochs_per_chunk and cfg.data.train_chunks:
        phases = [(f"chunk {c}", train_set(dataclasses.replace(cfg.data, train_chunks=[c])))
                  for c in cfg.data.train_chunks]
    else:
        phases = [("train", train_set(cfg.data))]
    return phases, build_dataset(cache, "val", spec, cfg.data, train=False)


def build_stage_model(cfg: Config, stage: int, output_dir: str | Path, init: str | None, recipe: str):
    """The model of a stage, starting from ``--init`` or the previous stage's best weights."""
    m = cfg.model
    kwargs = {"size": m.size, "num_classes": m.num_classes, "drop_rate": m.drop_rate, **m.kwargs}
    start = init_weights(cfg, m.name, stage, output_dir, init, recipe)
    pretrained = {"pretrained": m.pretrained, "pretrained_path": m.pretrained_path or None} if start is None else {}
    model = create_model(m.name, **kwargs, **pretrained)
    if start is not None:
        meta = read_sidecar(start)
        if meta.get("model") != m.name:
            raise CheckpointError(f"{start} holds weights of model '{meta.get('model')}', not '{m.name}'")
        load_weights(model, read_state_dict(start), strict=True, source=str(start))
        logger.info("stage %d starts from %s", stage, start)
    return model, {k: v for k, v in kwargs.items() if v is not None}, start


def evaluate_stage(trainer: Trainer, cfg: Config, cache: Path, records: list, out_dir: Path) -> dict:
    """Evaluate the restored best weights on the test split, threshold chosen on validation.

    Videos the cache could not use (no face, unreadable) are listed in the report, not dropped.
    """
    from evaluation.scoring import evaluate_predictions, summary_scalars
    from utils.orchestration.evaluate import predict_split
    from evaluation.report import make_figures, write_report
    from utils.data.cache_io import load_failures

    acc, failures = trainer.acc, load_failures(cache)
    val_preds, test_preds = (predict_split(trainer.model, cache, split, cfg, acc, records, failures)
                             for split in ("val", "test"))
    report = evaluate_predictions(test_preds, val_preds=val_preds, title=f"{cfg.model.name} {out_dir.parent.name}",
                                  n_boot=300, seed=cfg.trainer.seed)
    if acc.is_main_process:
        write_report(report, out_dir)
        if cfg.logging.tensorboard:
            writer = acc.get_tracker("tensorboard", unwrap=True)
            for key, fig in make_figures(report).items():
                writer.add_figure(f"test/{key}", fig, global_step=trainer.state.global_step)
            for k, v in summary_scalars(report, "test/").items():
                writer.add_scalar(k, v, trainer.state.global_step)
    return report


def run_stage(cfg: Config, stage: int, output_dir: str | Path, *, init: str | None = None,
              resume: str = "auto", recipe: str = "") -> dict:
    """Train and evaluate one (model, stage); returns the stage summary (also in ``summary.json``)."""
    start_time = time.time()
    rd = run_dir(output_dir, cfg.model.name, stage)
    model, model_kwargs, start = build_stage_model(cfg, stage, output_dir, init, recipe)  # fails before writing
    acc = make_accelerator(cfg, rd)
    cache, records = prepare_cache(cfg, acc)
    phases, val_set = stage_datasets(cfg, model.input_spec, cache)
    meta = {"model": cfg.model.name, "model_kwargs": model_kwargs, "stage": stage,
            "init": str(start) if start else None}
    trainer = Trainer(model, cfg, rd, phases, val_set, export_meta=meta, accelerator=acc)
    trainer.resume(resume)
    if acc.is_main_process:
        save_config(cfg, rd / "config.yaml")
    state = trainer.fit(close=False)
    report = evaluate_stage(trainer, cfg, cache, records, rd / "eval")
    if acc.is_main_process and trainer.best_path.is_file():   # predict.py reads the threshold from here
        meta = read_sidecar(trainer.best_path)
        meta["threshold"] = report["threshold"].get("video")
        meta["threshold_source"] = report["threshold"].get("source")
        atomic_write_json(sidecar_path(trainer.best_path), meta)
    summary = {"model": cfg.model.name, "stage": stage, "dataset": cfg.data.dataset,
               "best_epoch": state.best_epoch + 1, "val_" + cfg.trainer.monitor.split("/")[-1]: state.best_metric,
               "test_video_auc": report["video"]["metrics"].get("auc"),
               "test_video_balanced_acc": report["video"]["metrics"].get("balanced_acc"),
               "test_frame_auc": report["frame"]["metrics"].get("auc"),
               "collapsed": report["collapsed"], "threshold": report["threshold"].get("video"),
               "wall_s": round(time.time() - start_time, 1), "run_dir": str(rd)}
    if acc.is_main_process:
        atomic_write_json(rd / "summary.json", summary)
    trainer.close()
    return summary
