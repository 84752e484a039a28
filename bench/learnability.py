"""Does every registered model learn? Train each at ``size=tiny`` through the real stage runner on the
bundled sample data and report held-out figures (not a test: ``make bench``).

One row per model: optimizer steps, wall seconds, best validation AUC, test frame and video AUC with
95 % bootstrap intervals (over videos), video balanced accuracy at the validation threshold, and the
collapse flag. The audio-visual model trains on DFDC, the only sample dataset with audio.

    python bench/learnability.py                                   # every registered model
    python bench/learnability.py --models tm cm --steps 120 --json bench/results/learnability.json
    python bench/learnability.py --seeds 0 1 2 --json bench/results/learnability.json

With ``--seeds`` each model trains once per seed (``trainer.seed``); the table gains one summary line
per model (worst and median test video AUC over the seeds) and ``--json`` writes one object per model:
``model``, ``dataset``, ``seeds``, ``test_video_auc_worst``, ``test_video_auc_median``, ``wall_s`` (all
seeds) and ``runs`` (the per-seed rows).
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from utils.core.fileio import atomic_write_json
from utils.core.registry import create_model, list_models
from utils.orchestration import cli
from utils.orchestration.curriculum import short_stage
from utils.orchestration.stage import run_stage

RECIPE = Path(__file__).resolve().parents[1] / "launch" / "configs" / "demo.yaml"
STAGE_OF = {"ffpp": 1, "celebdf": 2, "dfdc": 4}   # the demo recipe's stage for each sample dataset
AUDIO_DATASET = "dfdc"


def stage_config(model: str, dataset: str, steps: int, steps_per_epoch: int, extra: list[str]):
    """The demo recipe's stage for ``dataset``, run as a first stage (no handoff), for ``steps`` steps."""
    stage = STAGE_OF[dataset]
    return short_stage(RECIPE, model, stage, steps, steps_per_epoch, extra), stage


def row(model: str, dataset: str, summary: dict) -> dict:
    """The figures of one trained model; ``steps`` are the optimizer steps it took (early stopping and
    short epochs can make them fewer than asked for)."""
    report = json.loads((Path(summary["run_dir"]) / "eval" / "report.json").read_text())
    steps = json.loads((Path(summary["run_dir"]) / "trainer_state.json").read_text())["global_step"]
    ci = {lv: report[lv]["ci"].get("auc", {}) for lv in ("frame", "video")}
    return {"model": model, "dataset": dataset, "steps": steps, "wall_s": summary["wall_s"],
            "val_auc": summary.get("val_auc"), "test_frame_auc": summary["test_frame_auc"],
            "test_frame_auc_ci": [ci["frame"].get("lo"), ci["frame"].get("hi")],
            "test_video_auc": summary["test_video_auc"],
            "test_video_auc_ci": [ci["video"].get("lo"), ci["video"].get("hi")],
            "test_video_balanced_acc": summary["test_video_balanced_acc"], "collapsed": summary["collapsed"]}


def fmt(r: dict) -> str:
    def f(v):
        return "  n/a" if v is None else f"{v:.3f}"
    ci = r["test_video_auc_ci"]
    return (f"{r['model']:<14} {r['dataset']:<8} {r['steps']:>5} {r['wall_s']:>7.0f} {f(r['val_auc']):>7} "
            f"{f(r['test_frame_auc']):>9} {f(r['test_video_auc']):>9} [{f(ci[0])}, {f(ci[1])}] "
            f"{f(r['test_video_balanced_acc']):>8}{'  COLLAPSED' if r['collapsed'] else ''}")


HEADER = (f"{'model':<14} {'dataset':<8} {'steps':>5} {'wall s':>7} {'val AUC':>7} {'frame AUC':>9} "
          f"{'video AUC':>9} {'[95 % CI]':<16} {'bal. acc':>8}")


def summarise(model: str, runs: list[dict]) -> dict:
    """One model's runs over the seeds: worst and median test video AUC, total wall time."""
    aucs = [r["test_video_auc"] for r in runs]
    return {"model": model, "dataset": runs[0]["dataset"], "seeds": [r["seed"] for r in runs],
            "test_video_auc_worst": min(aucs), "test_video_auc_median": statistics.median(aucs),
            "test_video_balanced_acc_worst": min(r["test_video_balanced_acc"] for r in runs),
            "collapsed_runs": sum(r["collapsed"] for r in runs),
            "wall_s": sum(r["wall_s"] for r in runs), "runs": runs}


def fmt_summary(s: dict) -> str:
    return (f"{s['model']:<14} {s['dataset']:<8} seeds {','.join(map(str, s['seeds']))}: test video AUC worst "
            f"{s['test_video_auc_worst']:.3f}, median {s['test_video_auc_median']:.3f}; balanced accuracy worst "
            f"{s['test_video_balanced_acc_worst']:.3f}; {s['collapsed_runs']} collapsed; {s['wall_s']:.0f} s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=None, help="default: every registered model")
    ap.add_argument("--dataset", default="ffpp", choices=sorted(STAGE_OF),
                    help="sample dataset (audio models always use dfdc)")
    ap.add_argument("--steps", type=int, default=160, help="optimizer steps per model")
    ap.add_argument("--steps-per-epoch", type=int, default=6,
                    help="steps between validations (at most: a balanced sample epoch can be shorter)")
    ap.add_argument("--set", nargs="*", default=[], metavar="SECTION.KEY=VALUE", help="config overrides")
    ap.add_argument("--seeds", nargs="+", type=int, default=None,
                    help="train each model once per seed (trainer.seed) and summarise worst/median")
    ap.add_argument("--output-dir", default=None, help="run folders (default: a temporary folder)")
    ap.add_argument("--json", default=None, help="write the rows here as a JSON list")
    args = ap.parse_args()
    cli.setup_logging(verbose=False)
    rows, summaries = [], []
    with tempfile.TemporaryDirectory(prefix="learnability-") as tmp:
        out = Path(args.output_dir or tmp)
        print(HEADER, flush=True)
        for model in args.models or list_models():
            spec = create_model(model, size="tiny").input_spec
            # the face cache stores crops up to data.cache_size (224): a larger model needs its own
            extra = args.set + ([f"data.cache_size={spec.image_size}"] if spec.image_size > 224 else [])
            dataset = AUDIO_DATASET if spec.audio else args.dataset   # audio exists only in DFDC
            runs = []
            for seed in args.seeds or [None]:
                sets = extra + ([f"trainer.seed={seed}"] if seed is not None else [])
                cfg, stage = stage_config(model, dataset, args.steps, args.steps_per_epoch, sets)
                started = time.time()
                where = out / f"seed{seed}" if seed is not None else out
                summary = run_stage(cfg, stage, where, resume="never")
                summary["wall_s"] = time.time() - started
                runs.append({**row(model, cfg.data.dataset, summary), "seed": cfg.trainer.seed})
                print(fmt(runs[-1]) + (f"  seed {seed}" if seed is not None else ""), flush=True)
            rows += runs
            if args.seeds:
                summaries.append(summarise(model, runs))
                print(fmt_summary(summaries[-1]), flush=True)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(args.json, summaries if args.seeds else rows)
    return 0



if __name__ == "__main__":
    raise SystemExit(cli.run(main))
