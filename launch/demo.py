"""The whole pipeline on the bundled sample data: what `make demo` runs.

Generates the sample FF++ / Celeb-DF v2 / DFDC trees (first run only), then trains one tiny specialist
and a tiny GenConViT through the curriculum 1 -> 2 -> 4 with N processes through `accelerate launch`
(face caches are built on first use), evaluates each stage's best weights on its test split and
prints a table. Re-running skips finished stages; an interrupted stage resumes.

    python launch/demo.py [--nproc 2] [--seed 0] [--models tm genconvit] [--output-dir runs/demo]

``--seed k`` trains with ``trainer.seed=k`` into ``runs/demo`` (seed 0) or ``runs/demo-seed<k>``.
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
from utils.core.checkpoint import read_sidecar
from utils.data.footage import grace_hopper_path
from utils.data.frames import IMAGE_EXTENSIONS
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


def held_out_files(config: str, stage: int, sample_dir: str, seed: int) -> list[tuple[str, str]]:
    """(path, what it truly is) for three files no model trained on: matplotlib's Grace Hopper portrait
    (a real photograph; every sample identity is made from two other real faces), and a real and a
    visually manipulated fake from the test split of the last stage's dataset (identities never trained on)."""
    os.environ["DEEPFAKE_SAMPLE_DIR"] = sample_dir
    cfg = resolve_stage(load_recipe(config), "demo", stage, [f"trainer.seed={seed}"], recipe=config)
    methods = {k: v["method"] for k, v in json.loads((Path(sample_dir) / "manifest.json").read_text()).items()}
    test = [r for r in build_index(cfg.data, seed=seed) if r.split == "test"]

    def method(r):
        return methods.get(str(Path(r.path).resolve().relative_to(Path(sample_dir).resolve())), "")
    real = next(r for r in test if r.label == 0)
    fake = next(r for r in test if r.label == 1 and not method(r).startswith("audio"))   # a visual fake
    return [(str(grace_hopper_path()), "real photograph, a person no sample identity comes from"),
            (real.path, f"real, {cfg.data.dataset} test split (held-out identity)"),
            (fake.path, f"fake ({method(fake)}), {cfg.data.dataset} test split (held-out identities)")]


def score_held_out(args, env: dict) -> None:
    """``launch/predict.py`` on files no model trained on, with each model's last checkpoint."""
    files = held_out_files(args.config, args.stages[-1], args.sample_dir, args.seed)
    print("\n[demo] scoring files no model has seen (truth in brackets)")
    for model in args.models:
        ck = Path(args.output_dir) / model / f"stage{args.stages[-1]}" / "best.safetensors"
        clips = (read_sidecar(ck).get("input_spec") or {}).get("clip_len", 1) > 1
        still = [p for p, _ in files if clips and Path(p).suffix.lower() in IMAGE_EXTENSIONS]
        truth = {p: t for p, t in files if p not in still}
        proc = subprocess.run([sys.executable, str(HERE / "predict.py"), *truth, "--checkpoint", str(ck),
                               "--device", "cpu"], env=env, capture_output=True, text=True)
        for line in proc.stdout.splitlines():
            path, *rest = line.split("\t")
            print(f"  {model:<10} {Path(path).name:<18} " + "  ".join(rest) + f"  [{truth.get(path, '?')}]")
        for p in still:
            print(f"  {model:<10} {Path(p).name:<18} not scored: {model} reads clips of consecutive frames")
        if proc.returncode:
            print(proc.stderr.strip()[-2000:], file=sys.stderr)


def cross_dataset_tables(args, env: dict) -> None:
    """Each model's stage-1 weights (trained on FF++ only) on the test split of every sample dataset:
    the cross-dataset table (``<output>/<model>/cross_dataset/cross_dataset.{json,md}``)."""
    first = args.stages[0]
    stage_data = [resolve_stage(load_recipe(args.config), "demo", s, recipe=args.config).data for s in args.stages]
    datasets = [d.dataset for d in stage_data]
    # each dataset split as its stage splits it (DFDC's chunk lists, Celeb-DF's validation carve)
    options = [f"data.{k}={json.dumps(v)}" for d in stage_data for k, v in d.options.items()]
    print(f"\n[demo] cross-dataset: stage-{first} weights on the test split of {', '.join(datasets)}")
    for model in args.models:
        ck = Path(args.output_dir) / model / f"stage{first}" / "best.safetensors"
        out = Path(args.output_dir) / model / "cross_dataset"
        proc = subprocess.run([sys.executable, str(HERE / "evaluate.py"), "--checkpoint", str(ck),
                               "--dataset", *datasets, "--split", "test", "--out", str(out),
                               "--set", *options],
                              env=env, capture_output=True, text=True)
        if (out / "cross_dataset.md").is_file() and proc.returncode in (0, 3):   # 3: a collapsed cell
            print(f"{model} (stage {first}, trained on {datasets[0]} only):")
            print((out / "cross_dataset.md").read_text().split("\n", 2)[2].rstrip())
        else:
            print(f"  {model}: cross-dataset evaluation failed (exit {proc.returncode})\n"
                  + proc.stderr.strip()[-2000:], file=sys.stderr)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--models", nargs="+", default=["tm", "genconvit"])
    ap.add_argument("--stages", nargs="+", type=int, default=[1, 2, 4])
    ap.add_argument("--config", default=str(HERE / "configs" / "demo.yaml"))
    ap.add_argument("--seed", type=int, default=0, help="trainer.seed of every stage (default 0)")
    ap.add_argument("--output-dir", default=None, help="default: runs/demo, or runs/demo-seed<k> for --seed k")
    ap.add_argument("--sample-dir", default="data/sample")
    args = ap.parse_args()
    args.output_dir = args.output_dir or ("runs/demo" if args.seed == 0 else f"runs/demo-seed{args.seed}")
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
                                        "--config", args.config, "--output-dir", args.output_dir,
                                        "--set", f"trainer.seed={args.seed}"]
        proc = subprocess.run(cmd, env=env)
        if proc.returncode != 0:
            print(f"[demo] {model} failed (exit {proc.returncode}); re-run `make demo` "
                  "to resume where it stopped", file=sys.stderr)
            return proc.returncode
        rows += [json.loads((Path(args.output_dir) / model / f"stage{s}" / "summary.json").read_text())
                 for s in args.stages]
    print("\n" + table(rows))
    cross_dataset_tables(args, env)
    score_held_out(args, env)
    print(f"\n[demo] done in {time.time() - start:.0f} s. Reports: {args.output_dir}/<model>/stage<k>/eval/report.md")
    print(f"[demo] TensorBoard: .venv/bin/tensorboard --logdir {args.output_dir}   (or `make tensorboard`)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
