"""Train one model through one curriculum stage.

    accelerate launch launch/train.py --model tm --stage 4
    python launch/train.py --model genconvit --stage 1 --config launch/configs/demo.yaml --set data.batch_size=8

The same command works under plain ``python`` (one process) and ``accelerate launch`` (any number of
processes, CPU or GPU). A finished stage is reported and not retrained; an interrupted one resumes
where it stopped (``--resume auto``). Bad arguments exit with code 2 before anything is written.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

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


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("accelerate").setLevel(logging.WARNING)
    from utils.core.config import ConfigError, load_config
    from utils.orchestration.curriculum import StageError, resolve_stage, stage_status

    done = stage_status(args.output_dir, args.model, args.stage) if args.resume == "auto" else None
    if done is not None:   # checked first: re-running a finished curriculum costs seconds, not minutes
        if int(os.environ.get("RANK", "0")) == 0:
            print(format_status(done, "done"))
        return 0
    from utils.core.registry import list_models
    if args.model not in list_models():
        return _fail(f"unknown model '{args.model}'; registered models: {', '.join(list_models())}")

    if args.resume not in ("auto", "never") and not os.path.isdir(args.resume):
        return _fail(f"--resume {args.resume}: expected auto, never, or an existing state folder")
    try:
        cfg = resolve_stage(load_config(args.config), args.model, args.stage, args.set, recipe=args.config)
    except (ConfigError, StageError) as e:
        return _fail(str(e))

    from utils.core.checkpoint import CheckpointError
    from utils.orchestration.stage import run_stage
    from utils.data.adapters import DatasetLayoutError
    from utils.data.leakage import LeakageError
    try:
        summary = run_stage(cfg, args.stage, args.output_dir, init=args.init, resume=args.resume, recipe=args.config)
    except StageError as e:
        return _fail(str(e))
    except (CheckpointError, DatasetLayoutError, LeakageError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if int(os.environ.get("RANK", "0")) == 0:
        print(format_status(summary, "trained"))
    return 0


def format_status(summary: dict, word: str) -> str:
    """One line per (model, stage): what happened and the numbers that matter."""
    def f(key):
        v = summary.get(key)
        return "n/a" if v is None else f"{v:.3f}"
    val_key = next((k for k in summary if k.startswith("val_")), "val_auc")
    return (f"[{summary.get('model')} stage {summary.get('stage')}] {word}: {val_key}={f(val_key)} "
            f"test_video_auc={f('test_video_auc')} test_video_balanced_acc={f('test_video_balanced_acc')}"
            f"{' COLLAPSED' if summary.get('collapsed') else ''} ({summary.get('wall_s', 'n/a')} s)")


if __name__ == "__main__":
    sys.exit(main())
