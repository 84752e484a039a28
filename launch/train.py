"""Train one model through one curriculum stage, or several in order.

    accelerate launch launch/train.py --model tm --stage 4
    accelerate launch launch/train.py --model tm --stage 1 2 4     # stages in order, one launch
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
from utils.data.index import SAMPLE_NOTE, check_data_root
from utils.engine.persistence import find
from utils.engine.trackers import check_trackers
from utils.engine.state import TrainerState
from utils.orchestration import cli
from utils.orchestration.curriculum import resolve_stage, stage_status
from utils.orchestration.stage import run_stage

DEFAULT_RECIPE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "curriculum.yaml")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="a registered model name (see the error for the list)")
    ap.add_argument("--stage", required=True, type=int, nargs="+",
                    help="stage numbers defined in the recipe; several run in the order given in one launch, "
                         "each starting from the previous one's best weights (finished ones are skipped)")
    ap.add_argument("--config", default=DEFAULT_RECIPE, help="recipe YAML (default: %(default)s)")
    ap.add_argument("--set", nargs="*", default=[], metavar="SECTION.KEY=VALUE", help="config overrides")
    ap.add_argument("--output-dir", default="runs", help="runs/<model>/stage<k>/ go here")
    ap.add_argument("--resume", default="auto", help="auto (newest state in the run folder), never, or a PATH")
    ap.add_argument("--init", default=None, help="start (the first stage given) from these exported weights instead of the previous stage's")
    ap.add_argument("--check", action="store_true",
                    help="check the arguments, the recipe and the data roots of every stage given, then "
                         "exit (nothing is built or written; `make train-all-specialists` runs it first)")
    return ap.parse_args(argv)


def format_status(summary: dict, word: str) -> str:
    """One line per (model, stage): what happened and the numbers that matter."""
    def f(key):
        v = summary.get(key)
        return "n/a" if v is None else f"{v:.3f}"
    val_key = next((k for k in summary if k.startswith("val_")), "val_auc")
    sample = f" data: {SAMPLE_NOTE}" if (summary.get("data") or {}).get("sample") else ""
    return (f"[{summary.get('model')} stage {summary.get('stage')}] {word}: {val_key}={f(val_key)} "
            f"test_video_auc={f('test_video_auc')} test_video_balanced_acc={f('test_video_balanced_acc')}"
            f"{' COLLAPSED' if summary.get('collapsed') else ''} ({summary.get('wall_s', 'n/a')} s){sample}")


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
    if args.model not in list_models():
        return cli.fail(f"unknown model '{args.model}'; registered models: {', '.join(list_models())}")
    if args.resume not in ("auto", "never"):
        if len(args.stage) > 1:
            raise UsageError("--resume PATH names one stage's state; give one --stage with it")
        check_resume_folder(args.resume, args.model)
    raw = load_recipe(args.config)
    # every stage's config is checked before the first one trains; one process start (torch, timm,
    # accelerate imports, the process group) costs more than a short stage on a small machine
    cfgs = [resolve_stage(raw, args.model, stage, args.set, recipe=args.config) for stage in args.stage]
    for cfg in cfgs:   # no dataset root, no data.sample, a tracker not installed: stop before anything is written
        check_data_root(cfg.data)
        check_trackers(cfg.logging)
    if args.check:
        return 0
    init = args.init
    for i, (stage, cfg) in enumerate(zip(args.stage, cfgs)):
        train_stage(args, stage, cfg, init, last=i == len(cfgs) - 1)
        init = None
    return 0


def train_stage(args: argparse.Namespace, stage: int, cfg, init: str | None, last: bool) -> None:
    """One stage: reported and skipped when finished (``--resume auto``), otherwise trained and evaluated."""
    done = stage_status(args.output_dir, args.model, stage) if args.resume == "auto" else None
    if done is not None:   # checked first: re-running a finished curriculum costs seconds, not minutes
        if cli.process_rank() == 0:
            print(format_status(done, "done"))
        return
    summary = run_stage(cfg, stage, args.output_dir, init=init, resume=args.resume, recipe=args.config,
                        keep_process_group=not last)
    if cli.process_rank() == 0:
        print(format_status(summary, "trained"), flush=True)


if __name__ == "__main__":
    sys.exit(cli.run(main))
