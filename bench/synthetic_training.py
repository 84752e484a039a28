"""Detectors trained without any fake data: real sample FF++ videos + synthetic fakes made from them,
tested on the sample's *real* fakes of FF++, Celeb-DF and DFDC (not a test: ``make bench``).

Each (model, seed) trains at ``size=tiny`` through the real stage runner on the demo's FF++ stage with
``data.synthesis`` as in ``launch/configs/synthetic.yaml`` (the reals of train and val, each paired with
a synthetic fake; the epoch chosen on validation pairs), then its best checkpoint is evaluated on the
test split of every sample dataset as it is: face swaps, re-enactments and re-compressions made by the
sample generator, which the model never saw. One row per (model, test dataset): worst and median test
video AUC over the seeds, the per-seed figures, steps and wall time.

    python bench/synthetic_training.py --models genconvit cm --seeds 0 1 2 --json bench/results/synthetic.json
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from learnability import stage_config

from utils.core.registry import create_model
from utils.core.fileio import atomic_write_json
from utils.orchestration import cli
from utils.orchestration.evaluate import evaluate_checkpoints
from utils.orchestration.stage import run_stage

DATASETS = ("ffpp", "celebdf", "dfdc")


def synthesis_sets(kinds: list[str]) -> list[str]:
    return [f"data.synthesis.kinds=[{','.join(kinds)}]", "data.synthesis.ratio=1.0",
            "data.synthesis.splits=[train,val]", "data.synthesis.real_only=true"]


def train_and_test(model: str, seed: int, kinds: list[str], steps: int, out: Path, extra: list[str]) -> list[dict]:
    """Train one (model, seed) on FF++ reals + synthetic fakes; its test figures on every dataset."""
    sets = synthesis_sets(kinds) + [f"trainer.seed={seed}", *extra]
    cfg, stage = stage_config(model, "ffpp", steps, 6, sets)
    started = time.time()
    summary = run_stage(cfg, stage, out / f"{model}-seed{seed}", resume="never")
    wall = time.time() - started
    run_dir = Path(summary["run_dir"])
    steps_taken = json.loads((run_dir / "trainer_state.json").read_text())["global_step"]
    rows = []
    for dataset in DATASETS:
        report = evaluate_checkpoints([str(run_dir / "best.safetensors")], dataset, "test",
                                      run_dir / f"cross-{dataset}", n_boot=200, seed=seed)
        rows.append({"model": model, "seed": seed, "train_dataset": "ffpp (reals + synthetic)",
                     "test_dataset": dataset, "test_video_auc": report["video"]["metrics"]["auc"],
                     "test_frame_auc": report["frame"]["metrics"]["auc"], "steps": steps_taken,
                     "val_auc": summary.get("val_auc"), "wall_s": round(wall, 1)})
        print(f"  {model:<10} seed {seed}  {dataset:<8} video AUC {rows[-1]['test_video_auc']:.3f}  "
              f"frame AUC {rows[-1]['test_frame_auc']:.3f}  ({steps_taken} steps, {wall:.0f} s)", flush=True)
    return rows


def summarise(rows: list[dict]) -> list[dict]:
    """One object per (model, test dataset): worst and median over the seeds."""
    out = []
    for key in dict.fromkeys((r["model"], r["test_dataset"]) for r in rows):
        mine = [r for r in rows if (r["model"], r["test_dataset"]) == key]
        aucs = [r["test_video_auc"] for r in mine]
        out.append({"model": key[0], "train_dataset": mine[0]["train_dataset"], "test_dataset": key[1],
                    "seeds": [r["seed"] for r in mine], "test_video_auc": min(aucs),
                    "test_video_auc_worst": min(aucs), "test_video_auc_median": statistics.median(aucs),
                    "test_video_auc_per_seed": aucs,
                    "test_frame_auc_median": statistics.median(r["test_frame_auc"] for r in mine),
                    "steps": mine[0]["steps"], "wall_s": sum(r["wall_s"] for r in mine)})
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["genconvit", "cm"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--kinds", nargs="+", default=["blend"], help="synthesiser kinds to train with")
    ap.add_argument("--steps", type=int, default=160, help="optimizer steps per run")
    ap.add_argument("--set", nargs="*", default=[], metavar="SECTION.KEY=VALUE", help="config overrides")
    ap.add_argument("--output-dir", default=None, help="run folders (default: a temporary folder)")
    ap.add_argument("--json", default=None, help="write one object per (model, test dataset) here")
    args = ap.parse_args()
    cli.setup_logging(verbose=False)
    for m in args.models:
        create_model(m, size="tiny")   # an unknown name stops here, before anything trains
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="synthetic-") as tmp:
        out = Path(args.output_dir or tmp)
        for model in args.models:
            for seed in args.seeds:
                rows += train_and_test(model, seed, args.kinds, args.steps, out, args.set)
    table = summarise(rows)
    print(f"\n{'model':<10} {'test on':<8} {'worst':>6} {'median':>6}  per seed (video AUC)")
    for r in table:
        print(f"{r['model']:<10} {r['test_dataset']:<8} {r['test_video_auc_worst']:>6.3f} "
              f"{r['test_video_auc_median']:>6.3f}  {' '.join(f'{a:.3f}' for a in r['test_video_auc_per_seed'])}")
    if args.json:
        atomic_write_json(args.json, table)
    return 0


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
