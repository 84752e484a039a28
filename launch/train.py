"""Train one model through one curriculum stage.

    accelerate launch launch/train.py --model tm --stage 4
    python launch/train.py --model genconvit --stage 1 --config launch/configs/demo.yaml --set data.batch_size=8

The same command works under plain ``python`` (one process) and ``accelerate launch`` (any number of
processes, CPU or GPU). A finished stage is reported and not retrained; an interrupted one resumes
where it stopped (``--resume auto``). Bad arguments exit with code 2 before anything is written;
unusable data or checkpoints exit with 1.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from utils.core.errors import UsageError
from utils.core.recipe import load_recipe
from utils.core.registry import list_models
from utils.engine.persistence import find
from utils.engine.state import TrainerState
from utils.orchestration import cli
from utils.orchestration.curriculum import resolve_stage, stage_status
from utils.orchestration.stage import run_stage

DEFAULT_RECIPE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "curriculum.yaml")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="a registered model name (see the error for the list)")
    ap.add_argument("--stage", required=True, type=int, help="a stage number defined in the recipe")
    ap.add_argument("--config", default=DEFAULT_RECIPE, help="recipe YAML (default: %(default)s)")
    ap.add_argument("--set", nargs="*", default=[], metavar="SECTION.KEY=VALUE", help="config overrides")
    ap.add_argument("--output-dir", default="runs", help="runs/<model>/stage<k>/ go here")
    ap.add_argument("--resume", default="auto", help="auto (newest state in the run folder), never, or a PATH")
    ap.add_argument("--init", default=None, help="start from these exported weights instead of the previous stage's")
    return ap.parse_args(argv)


def format_status(summary: dict, word: str) -> str:
    """One line per (model, stage): what happened and the numbers that matter."""
    def f(key):
        v = summary.get(key)
        return "n/a" if v is None else f"{v:.3f}"
    val_key = next((k for k in summary if k.startswith("val_")), "val_auc")
    return (f"[{summary.get('model')} stage {summary.get('stage')}] {word}: {val_key}={f(val_key)} "
            f"test_video_auc={f('test_video_auc')} test_video_balanced_acc={f('test_video_balanced_acc')}"
            f"{' COLLAPSED' if summary.get('collapsed') else ''} ({summary.get('wall_s', 'n/a')} s)")


def check_resume_folder(path: str, model: str) -> None:
    """``--resume PATH`` must be a state folder of this model (checked before anything runs)."""
    if not os.path.isdir(path):
        raise UsageError(f"--resume {path}: expected auto, never, or an existing state folder")
    state = find(Path(path), path)
    owner = TrainerState.load(state / "trainer_state.json").model
    if owner and owner != model:
        raise UsageError(f"--resume {path}: that state belongs to model '{owner}', not '{model}'")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cli.setup_logging()
    done = stage_status(args.output_dir, args.model, args.stage) if args.resume == "auto" else None
    if done is not None:   # checked first: re-running a finished curriculum costs seconds, not minutes
        if cli.process_rank() == 0:
            print(format_status(done, "done"))
        return 0
    if args.model not in list_models():
        return cli.fail(f"unknown model '{args.model}'; registered models: {', '.join(list_models())}")
    if args.resume not in ("auto", "never"):
        check_resume_folder(args.resume, args.model)
    cfg = resolve_stage(load_recipe(args.config), args.model, args.stage, args.set, recipe=args.config)
    summary = run_stage(cfg, args.stage, args.output_dir, init=args.init, resume=args.resume, recipe=args.config)
    if cli.process_rank() == 0:
        print(format_status(summary, "trained"))
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
