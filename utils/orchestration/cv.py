"""Grouped k-fold cross-validation through the stage runner: the library behind ``launch/cv.py``.

One experiment is one (recipe, model, stage) run over the k folds of a dataset:

1. the stage's config is resolved as ``launch/train.py`` would (no hand-over from an earlier stage:
   every fold starts from the same initial weights, random, pretrained or ``--init``);
2. the dataset is indexed; its test split (and any split its official protocol fixes) is set aside
   as the fixed test set, the rest is dealt into k stratified group folds, or the folds are read back
   from their file when an earlier experiment on the same data dealt them (:mod:`utils.data.folds`);
3. each fold runs through :func:`utils.orchestration.stage.run_stage` with its own records: the outer
   fold is the test split, a grouped validation split inside the training part (the recipe's own
   validation share unless given) drives early stopping, the plateau scheduler and the threshold;
   the selected weights predict the outer fold once, the fixed test set and the training part (for
   the train/validation gap). Folds run one after another under any ``accelerate launch`` world size;
   each resumes where it stopped and a finished one is skipped;
4. the folds are aggregated (:mod:`evaluation.crossval`) into ``runs/cv/<experiment>/``: ``cv.json``,
   ``cv.md``, PNGs, the pooled out-of-fold videos (``oof_videos.npz``) and TensorBoard events.

A source hold-out (``hold_out``) sets ``data.train_sources`` to every source but one; evaluation
still sees every source, and the report gives Δ = in-source AUC − held-out AUC.
"""
from __future__ import annotations

import hashlib
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from evaluation.crossval import FoldResult, aggregate_cv, oof_table
from evaluation.crossval_report import make_figures, write_cv_report
from utils.core.config import Config
from utils.core.errors import InputError, UsageError
from utils.core.fileio import atomic_write_json
from utils.core.recipe import resolve
from utils.core.registry import get_dataset
from utils.data.classes import model_classes
from utils.data.folds import (FIXED_TEST, FoldAssignment, fold_records, inner_validation_groups, load_or_create,
                              recipe_val_fraction, split_pool)
from utils.data.index import check_data_root, data_root
from utils.data.records import VideoRecord
from utils.data.sources import hold_out as hold_out_sources, select_sources
from utils.engine.predictions import FramePredictions
from utils.engine.setup import make_accelerator
from utils.orchestration.curriculum import defined_stages, resolve_stage, run_dir, stage_status
from utils.orchestration.data import index_data
from utils.orchestration.stage import run_stage

logger = logging.getLogger(__name__)

DEFAULT_VAL_FRACTION = 0.2
_NOT_FINGERPRINTED = {"logging": None, "data": ("num_workers", "cache_root", "cache", "build_cache", "eval_batch_size")}


@dataclass
class CVPlan:
    """Everything a cross-validation needs, fixed before the first fold runs."""

    experiment: str
    out: Path
    cfg: Config
    stage: int
    folds: FoldAssignment
    pool: list[VideoRecord]
    fixed: list[VideoRecord]
    val_fraction: float
    held_out: str | None
    recipe: str

    def fold_dir(self, fold: int) -> Path:
        return self.out / f"fold{fold}"

    def stage_dir(self, fold: int) -> Path:
        return run_dir(self.fold_dir(fold), self.cfg.model.name, self.stage)


def resolve_cv_config(recipe_raw: dict, model: str, stage: int | None, overrides: list[str],
                      recipe: str = "") -> tuple[Config, int]:
    """(config, stage): the stage's config (first defined stage when None; a recipe without stages is
    stage 1), with no earlier stage to start from."""
    stages = defined_stages(recipe_raw)
    if stages or stage is not None:
        stage = stages[0] if stage is None else stage
        cfg = resolve_stage(recipe_raw, model, stage, overrides, recipe=recipe)
    else:
        stage, cfg = 1, resolve(recipe_raw, overrides)
        cfg.model.name = model
    cfg.stages, cfg.models = {}, {}
    return cfg, stage


def fingerprint(cfg: Config) -> str:
    """Hash of the settings that change what a fold trains (paths, workers and logging left out)."""
    d = cfg.to_dict()
    for section, keys in _NOT_FINGERPRINTED.items():
        if keys is None:
            d.pop(section, None)
        else:
            d[section] = {k: v for k, v in d[section].items() if k not in keys}
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()


def default_experiment(model: str, stage: int, recipe: str, held_out: str | None) -> str:
    name = f"{model}-stage{stage}-{Path(recipe).stem if recipe else 'defaults'}"
    return name + (f"-holdout-{held_out}" if held_out else "")


def plan_cv(recipe_raw: dict, model: str, *, k: int = 5, stage: int | None = None, seed: int = 42,
            output_dir: str | Path = "runs/cv", overrides: list[str] | None = None, experiment: str = "",
            held_out: str | None = None, val_fraction: float | None = None, folds_dir: str | Path | None = None,
            recipe: str = "", acc=None) -> CVPlan:
    """Resolve the config, index the data, deal (or read) the folds; nothing is trained yet."""
    cfg, stage = resolve_cv_config(recipe_raw, model, stage, list(overrides or []), recipe)
    check_data_root(cfg.data)   # no root and no data.sample: refused before anything is built
    if k < 2:
        raise UsageError(f"--folds must be at least 2, got {k}")
    if val_fraction is not None and not 0 < val_fraction < 1:
        raise UsageError(f"--val-fraction must lie in (0, 1), got {val_fraction}")
    if held_out and cfg.data.train_sources:
        raise UsageError("give either --hold-out-source or data.train_sources, not both")
    if (n := model_classes(cfg.data, cfg.model.num_classes)) > 2:
        raise UsageError(f"cross-validation pools real-vs-fake scores over folds and takes 2 classes; data.classes "
                         f"has {n} ({', '.join(cfg.data.classes)}): train and evaluate k classes with "
                         "launch/train.py and launch/evaluate.py")
    acc = acc or make_accelerator(cfg, Path(output_dir))
    records = index_data(cfg, acc)
    pool, fixed = split_pool(records, get_dataset(cfg.data.dataset).fixed_splits)
    if held_out:
        cfg.data.train_sources = hold_out_sources(pool, held_out)
    select_sources(records, cfg.data.train_sources, cfg.data.eval_sources)   # unknown names: refused now
    root = str(data_root(cfg.data)[0])
    folder = Path(folds_dir) if folds_dir else Path(output_dir) / "folds"
    if acc.is_main_process:
        load_or_create(folder, cfg.data.dataset, root, pool, seed, k)
    acc.wait_for_everyone()
    folds = load_or_create(folder, cfg.data.dataset, root, pool, seed, k, write=False)
    share = val_fraction or recipe_val_fraction(pool) or DEFAULT_VAL_FRACTION
    name = experiment or default_experiment(model, stage, recipe, held_out)
    return CVPlan(name, Path(output_dir) / name, cfg, stage, folds, pool, fixed, share, held_out, recipe)


def experiment_record(plan: CVPlan) -> dict:
    return {"experiment": plan.experiment, "model": plan.cfg.model.name, "stage": plan.stage,
            "dataset": plan.cfg.data.dataset, "recipe": plan.recipe, "config_fingerprint": fingerprint(plan.cfg),
            "folds": plan.folds.summary(), "val_fraction": plan.val_fraction, "held_out": plan.held_out,
            "train_sources": plan.cfg.data.train_sources, "eval_sources": plan.cfg.data.eval_sources,
            "n_pool": len(plan.pool), "n_fixed_test": len(plan.fixed), "command": sys.argv}


def check_experiment(plan: CVPlan, acc) -> None:
    """A rerun of an experiment must have its config and folds; the first run writes the record."""
    path, mine = plan.out / "experiment.json", experiment_record(plan)
    if path.is_file():
        old = json.loads(path.read_text())
        for key, what in (("config_fingerprint", "config"), (("folds", "hash"), "folds")):
            a = old.get(key[0], {}).get(key[1]) if isinstance(key, tuple) else old.get(key)
            b = mine[key[0]][key[1]] if isinstance(key, tuple) else mine[key]
            if a != b:
                raise UsageError(f"experiment '{plan.experiment}' in {plan.out} was started with other {what} "
                                 f"({str(a)[:12]} vs {str(b)[:12]} now); give it another --experiment name, "
                                 "or move the old folder away")
    elif acc.is_main_process:
        atomic_write_json(path, {**mine, "started": time.strftime("%Y-%m-%d %H:%M:%S")})
    acc.wait_for_everyone()


def fold_split_records(plan: CVPlan, fold: int) -> list[VideoRecord]:
    folds = plan.folds.folds
    part = [r for r in plan.pool if folds[r.group] != fold]
    val = inner_validation_groups(part, plan.val_fraction, plan.folds.seed, fold)
    return fold_records(plan.pool, plan.fixed, folds, fold, val)


def run_fold(plan: CVPlan, fold: int, *, init: str | None = None, train_gap: bool = True) -> dict:
    """Train and evaluate one fold (resuming it, or returning its summary when it is finished)."""
    done = stage_status(plan.fold_dir(fold), plan.cfg.model.name, plan.stage)
    if done is not None:
        logger.info("fold %d/%d is finished; skipped", fold + 1, plan.folds.k)
        return done
    extra = ((FIXED_TEST,) if plan.fixed else ()) + (("train",) if train_gap else ())
    logger.info("fold %d/%d", fold + 1, plan.folds.k)
    return run_stage(plan.cfg, plan.stage, plan.fold_dir(fold), init=init, resume="auto", recipe=plan.recipe,
                     records=fold_split_records(plan, fold), extra_splits=extra, keep_process_group=True)


def _maybe(path: Path) -> FramePredictions | None:
    return FramePredictions.load(path) if path.is_file() else None


def load_fold(plan: CVPlan, fold: int) -> FoldResult:
    """A finished fold's report and predictions, read back from its run folder."""
    ev = plan.stage_dir(fold) / "eval"
    try:
        report = json.loads((ev / "report.json").read_text())
        fixed = json.loads((ev / FIXED_TEST / "report.json").read_text()) if plan.fixed else None
        summary = json.loads((plan.stage_dir(fold) / "summary.json").read_text())
    except (OSError, ValueError) as e:
        raise InputError(f"fold {fold} of {plan.out} is incomplete ({e}); run the same command again") from None
    return FoldResult(fold, report, FramePredictions.load(ev / "predictions_test.npz"), _maybe(ev / "predictions_val.npz"),
                      _maybe(ev / "predictions_train.npz"), fixed, summary)


def aggregate_plan(plan: CVPlan, *, n_boot: int = 1000) -> tuple[dict, list[FoldResult]]:
    """The cross-validation report of a plan whose folds are all finished, and the fold results."""
    meta = {**experiment_record(plan), "fold_hash": plan.folds.hash, "fold_key": plan.folds.key,
            "fold_seed": plan.folds.seed}
    results = [load_fold(plan, f) for f in range(plan.folds.k)]
    cv = aggregate_cv(results, meta=meta, held_out=plan.held_out, n_boot=n_boot, seed=plan.folds.seed)
    return cv, results


def write_outputs(plan: CVPlan, cv: dict, results: list[FoldResult], tensorboard: bool = True) -> None:
    figures = make_figures(cv)
    write_cv_report(cv, plan.out, figures)
    oof_table(results).save(plan.out / "oof_videos.npz")
    if tensorboard:
        from torch.utils.tensorboard import SummaryWriter   # lazy: tensorboard is only needed here
        with SummaryWriter(str(plan.out / "tb")) as writer:
            for row in cv["folds"]:
                for lv in ("video", "frame"):
                    for key in ("auc", "balanced_acc", "eer", "ap", "log_loss"):
                        if row[lv].get(key) is not None:
                            writer.add_scalar(f"cv_fold/{lv}_{key}", row[lv][key], row["fold"])
            for key, s in cv["summary"]["video"].items():
                if key in ("auc", "balanced_acc", "eer") and s["n"]:
                    writer.add_scalar(f"cv/video_{key}_mean", s["mean"], 0)
                    writer.add_scalar(f"cv/video_{key}_std", s["std"] if s["n"] > 1 else 0.0, 0)
            for key, fig in figures.items():
                writer.add_figure(f"cv/{key}", fig, 0)


def run_cv(plan: CVPlan, *, init: str | None = None, train_gap: bool = True, n_boot: int = 1000,
           acc=None) -> dict:
    """Every fold of ``plan`` in turn, then the aggregate report (written by the main process)."""
    acc = acc or make_accelerator(plan.cfg, plan.out)
    check_experiment(plan, acc)
    for fold in range(plan.folds.k):
        acc.wait_for_everyone()
        run_fold(plan, fold, init=init, train_gap=train_gap)
    acc.wait_for_everyone()
    cv, results = aggregate_plan(plan, n_boot=n_boot)
    if acc.is_main_process:
        write_outputs(plan, cv, results, plan.cfg.logging.tensorboard)
        logger.info("cross-validation written to %s", plan.out)
    acc.end_training()      # the folds kept the process group up; it ends here
    return cv
