"""The staged curriculum: stages keyed by number, handoff of best weights, run folders.

A recipe's ``stages`` maps a stage number (a name, not a position) to the sections it changes; the
``models`` mapping holds per-model changes (batch size for a heavy model...). Resolution order:
recipe defaults < stage < model < the dataset's root environment variable < ``--set``. Stage k starts
from the best exported weights of the nearest lower defined stage.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from utils.core.config import Config, deep_merge, validate_sections
from utils.core.recipe import load_recipe, resolve
from utils.core.errors import UsageError


class StageError(UsageError):
    """A stage that is not defined, or whose prerequisites are missing."""


def defined_stages(cfg: Config | dict) -> list[int]:
    stages = cfg.stages if isinstance(cfg, Config) else cfg.get("stages", {})
    return sorted(int(k) for k in stages)


def _add_stage_hint(recipe: str) -> str:
    return ("To add one, write a recipe that extends this one and defines it, e.g. my_recipe.yaml:\n"
            f"  extends: {os.path.relpath(recipe) if recipe else 'launch/configs/curriculum.yaml'}\n"
            "  stages:\n"
            "    3:\n"
            "      data: {dataset: celebdf, root: /path/to/another/dataset}\n"
            "      optim: {lr: 3.0e-5, loss: focal}\n"
            "      trainer: {epochs: 3}\n"
            "then pass --config my_recipe.yaml")


def resolve_stage(recipe_raw: dict, model: str, stage: int, overrides: list[str] | None = None,
                  recipe: str = "") -> Config:
    """The config of one (model, stage) from a loaded recipe (:func:`utils.core.config.load_recipe`):
    recipe < stage < per-model section < the model's own ``stages.<k>`` < environment < ``--set``."""
    stages = {int(k): v for k, v in recipe_raw.get("stages", {}).items()}
    if stage not in stages:
        listed = ", ".join(map(str, sorted(stages))) or "(none)"
        raise StageError(f"stage {stage} is not defined in {recipe or 'the recipe'}; defined stages: {listed}.\n"
                         + _add_stage_hint(recipe))
    raw = deep_merge(recipe_raw, validate_sections(stages[stage], f"{recipe} [stages.{stage}]"))
    if model in recipe_raw.get("models", {}):
        section = dict(recipe_raw["models"][model] or {})
        per_stage = {int(k): v for k, v in (section.pop("stages", None) or {}).items()}
        raw = deep_merge(raw, validate_sections(section, f"{recipe} [models.{model}]"))
        if stage in per_stage:   # one model's settings for one stage (e.g. its learning rate there)
            raw = deep_merge(raw, validate_sections(per_stage[stage], f"{recipe} [models.{model}.stages.{stage}]"))
    cfg = resolve(raw, overrides)
    cfg.model.name = model
    return cfg


def short_stage(recipe: str | Path, model: str, stage: int, steps: int, steps_per_epoch: int,
                overrides: list[str] | None = None) -> Config:
    """One stage of a recipe run on its own (no handoff from the stage before) for about ``steps``
    optimizer steps, validating every ``steps_per_epoch`` steps, without early stopping or TensorBoard:
    what the benchmarks and the cue probes train."""
    raw = load_recipe(recipe)
    raw["stages"] = {k: v for k, v in raw.get("stages", {}).items() if int(k) == stage}  # no handoff
    epochs = max(1, -(-steps // steps_per_epoch))
    sets = [f"trainer.max_steps_per_epoch={steps_per_epoch}", f"trainer.epochs={epochs}",
            "trainer.epochs_per_chunk=0", "trainer.early_stopping_patience=0", "logging.tensorboard=false",
            "logging.progress_bar=false", *(overrides or [])]
    return resolve_stage(raw, model, stage, sets, recipe=str(recipe))


def previous_stage(cfg: Config, stage: int) -> int | None:
    """The nearest lower defined stage, or None for the first one."""
    lower = [s for s in defined_stages(cfg) if s < stage]
    return max(lower) if lower else None


def run_dir(output_dir: str | Path, model: str, stage: int) -> Path:
    return Path(output_dir) / model / f"stage{stage}"


def init_weights(cfg: Config, model: str, stage: int, output_dir: str | Path, init: str | None,
                 recipe: str = "") -> Path | None:
    """Where stage ``stage`` starts from: ``--init``, else the previous stage's best weights."""
    if init:
        if not Path(init).is_file():
            raise StageError(f"--init {init}: file not found")
        return Path(init)
    prev = previous_stage(cfg, stage)
    if prev is None:
        return None
    path = run_dir(output_dir, model, prev) / "best.safetensors"
    if not path.is_file():
        cfg_arg = f" --config {recipe}" if recipe else ""
        raise StageError(f"stage {stage} starts from the best weights of stage {prev}, but {path} does not exist.\n"
                         f"Run stage {prev} first:\n  accelerate launch launch/train.py --model {model} "
                         f"--stage {prev}{cfg_arg}\nor give weights with --init PATH.")
    return path


def stage_status(output_dir: str | Path, model: str, stage: int) -> dict | None:
    """The summary of a finished (trained and evaluated) stage, or None. Cheap: reads two JSON files."""
    rd = run_dir(output_dir, model, stage)
    state, summary = rd / "trainer_state.json", rd / "summary.json"
    if state.is_file() and summary.is_file() and json.loads(state.read_text()).get("finished"):
        return json.loads(summary.read_text())
    return None   # not trained, or trained but not yet evaluated: run_stage finishes the job
