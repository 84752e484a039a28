"""The staged curriculum: stages keyed by number, handoff of best weights, data roots and run folders.

A recipe's ``stages`` maps a stage number (a name, not a position) to the sections it changes; the
``models`` mapping holds per-model changes (batch size for a heavy model...). Resolution order:
recipe defaults < stage < model < ``--set``. Stage k starts from the best exported weights of the
nearest lower defined stage.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from utils.core.config import Config, apply_overrides, build_config, deep_merge, parse_overrides

ROOT_ENV = {"ffpp": "FFPP_ROOT", "celebdf": "CELEBDF_ROOT", "dfdc": "DFDC_ROOT"}
SAMPLE_DIR_ENV = "DEEPFAKE_SAMPLE_DIR"
DEFAULT_SAMPLE_DIR = "data/sample"


class StageError(ValueError):
    """A stage that is not defined, or whose prerequisites are missing."""


def defined_stages(cfg: Config) -> list[int]:
    return sorted(int(k) for k in cfg.stages)


def _add_stage_hint(recipe: str) -> str:
    return ("To add one, write a recipe that extends this one and defines it, e.g. my_recipe.yaml:\n"
            f"  extends: {os.path.relpath(recipe) if recipe else 'launch/configs/curriculum.yaml'}\n"
            "  stages:\n"
            "    3:\n"
            "      data: {dataset: celebdf, root: /path/to/another/dataset}\n"
            "      optim: {lr: 3.0e-5, loss: focal}\n"
            "      trainer: {epochs: 3}\n"
            "then pass --config my_recipe.yaml")


def resolve_stage(cfg: Config, model: str, stage: int, overrides: list[str] | None = None,
                  recipe: str = "") -> Config:
    """The config of one (model, stage): recipe < stage < per-model section < ``--set``."""
    stages = {int(k): v for k, v in cfg.stages.items()}
    if stage not in stages:
        listed = ", ".join(map(str, sorted(stages))) or "(none)"
        raise StageError(f"stage {stage} is not defined in {recipe or 'the recipe'}; defined stages: {listed}.\n"
                         + _add_stage_hint(recipe))
    out = apply_overrides(cfg, stages[stage], f"{recipe} [stages.{stage}]")
    if model in cfg.models:
        out = apply_overrides(out, cfg.models[model], f"{recipe} [models.{model}]")
    out = build_config(deep_merge(out.to_dict(), parse_overrides(overrides or [])))
    out.model.name = model
    return out


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


def sample_dir() -> Path:
    return Path(os.environ.get(SAMPLE_DIR_ENV, DEFAULT_SAMPLE_DIR))


def data_root(cfg: Config) -> tuple[Path, bool]:
    """(root, is_sample): environment variable > recipe ``data.root`` > the generated sample data."""
    ds = cfg.data.dataset
    env = os.environ.get(ROOT_ENV.get(ds, ""), "")
    if env:
        return Path(env), False
    if cfg.data.root:
        return Path(cfg.data.root), False
    return sample_dir() / ds, True


def cache_dir(cfg: Config, root: Path) -> Path:
    """``data.cache``, else ``<cache_root>/<dataset>-<hash>`` of the root and the build settings, so two
    roots, or two frame budgets, never share a cache."""
    if cfg.data.cache:
        return Path(cfg.data.cache)
    d = cfg.data
    # the seed is in the key because Celeb-DF's validation identities are drawn with it at index time
    what = (f"{root.resolve()}|{d.compression}|{','.join(d.methods)}|{d.frames_per_video}|{d.clips_per_video}|"
            f"{d.clip_frames}|{d.margin}|{d.val_fraction}|{cfg.trainer.seed}")
    key = hashlib.sha1(what.encode()).hexdigest()[:8]
    return Path(cfg.data.cache_root) / f"{cfg.data.dataset}-{key}"
