"""Does every registered model learn? Train each at ``size=tiny`` through the real stage runner on the
bundled sample data and report held-out figures (not a test: ``make bench``).

One row per model: optimizer steps, wall seconds, best validation AUC, test frame and video AUC with
95 % bootstrap intervals (over videos), video balanced accuracy at the validation threshold, and the
collapse flag. The audio-visual model trains on DFDC, the only sample dataset with audio.

    python bench/learnability.py                                   # every registered model
    python bench/learnability.py --models tm cm --steps 120 --json bench/results/learnability.json
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=None, help="default: every registered model")
    ap.add_argument("--dataset", default="ffpp", choices=sorted(STAGE_OF),
                    help="sample dataset (audio models always use dfdc)")
    ap.add_argument("--steps", type=int, default=160, help="optimizer steps per model")
    ap.add_argument("--steps-per-epoch", type=int, default=6,
                    help="steps between validations (at most: a balanced sample epoch can be shorter)")
    ap.add_argument("--set", nargs="*", default=[], metavar="SECTION.KEY=VALUE", help="config overrides")
    ap.add_argument("--output-dir", default=None, help="run folders (default: a temporary folder)")
    ap.add_argument("--json", default=None, help="write the rows here as a JSON list")
    args = ap.parse_args()
    cli.setup_logging(verbose=False)
    rows = []
    with tempfile.TemporaryDirectory(prefix="learnability-") as tmp:
        out = Path(args.output_dir or tmp)
        print(HEADER, flush=True)
        for model in args.models or list_models():
            spec = create_model(model, size="tiny").input_spec
            # the face cache stores crops up to data.cache_size (224): a larger model needs its own
            extra = args.set + ([f"data.cache_size={spec.image_size}"] if spec.image_size > 224 else [])
            dataset = AUDIO_DATASET if spec.audio else args.dataset   # audio exists only in DFDC
            cfg, stage = stage_config(model, dataset, args.steps, args.steps_per_epoch, extra)
            started = time.time()
            summary = run_stage(cfg, stage, out, resume="never")
            summary["wall_s"] = time.time() - started
            rows.append(row(model, cfg.data.dataset, summary))
            print(fmt(rows[-1]), flush=True)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0



if __name__ == "__main__":
    raise SystemExit(cli.run(main))
