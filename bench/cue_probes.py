"""Cue probes and the cue matrix: does each specialist read the cue its name promises? (``make bench``)

For every cue, the specialist is trained at ``size=tiny`` through the real stage runner on a *probe*:
the real videos of a sample dataset and the synthetic fakes of that cue made from them
(:mod:`utils.data.synthesis`; held-out identities, fakes paired to their reals, no real fakes). On the
probe's test split it reports, per seed: the specialist's video AUC [95 % CI]; a **frame baseline**
(another registered model trained the same way: it cannot read the cue, so a high score means the
fakes leak their label through another channel); and the specialist with its **cue destroyed** at test
time (:mod:`utils.data.ablations`). The **cue matrix** scores every specialist (seed 0, trained on its
own cue) on every cue's probe: a specialist that does its job is strong on its own column.

    python bench/cue_probes.py --seeds 0 1 2 --json bench/results/cue_probes.json --heatmap docs/cue_matrix.png
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import matplotlib

from utils.core.fileio import atomic_write_json
from utils.orchestration import cli
from utils.orchestration.curriculum import short_stage
from utils.orchestration.probes import probe_overrides, probe_score
from utils.orchestration.stage import run_stage

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

RECIPE = Path(__file__).resolve().parents[1] / "launch" / "configs" / "demo.yaml"
STAGE_OF = {"ffpp": 1, "dfdc": 4}
# cue (synthesiser kind): specialist, sample dataset, frame baseline, test-time ablations (first = headline)
CUES = {
    "flicker": ("tm", "ffpp", "cm", ("one_frame", "shuffled")),
    "av_offset": ("av", "dfdc", "tm", ("no_audio",)),
    "recompress": ("cm", "ffpp", "rr", ("resized",)),
    "resample": ("rr", "ffpp", "cm", ("resized",)),
    "lighting": ("bg", "ffpp", "cm", ("flat_surround",)),
}


def train(model: str, cue: str, seed: int, steps: int, out: Path, extra: list[str]) -> tuple[Path, int, float]:
    """Train ``model`` on the ``cue`` probe; (best checkpoint, steps taken, wall seconds)."""
    stage = STAGE_OF[CUES[cue][1]]
    cfg = short_stage(RECIPE, model, stage, steps, 6, probe_overrides(cue) + [f"trainer.seed={seed}", *extra])
    started = time.time()
    summary = run_stage(cfg, stage, out / f"{cue}-{model}-seed{seed}", resume="never")
    run_dir = Path(summary["run_dir"])
    steps_taken = json.loads((run_dir / "trainer_state.json").read_text())["global_step"]
    return run_dir / "best.safetensors", steps_taken, time.time() - started


def one_seed(cue: str, seed: int, steps: int, out: Path, extra: list[str]) -> dict:
    """Specialist, frame baseline and ablations of one cue at one seed."""
    model, dataset, baseline, ablations = CUES[cue]
    ck, steps_taken, wall = train(model, cue, seed, steps, out, extra)
    base_ck, _, base_wall = train(baseline, cue, seed, steps, out, extra)
    row = {"seed": seed, "checkpoint": str(ck), "steps": steps_taken, "wall_s": round(wall + base_wall, 1),
           "specialist": probe_score(ck, dataset, cue), "baseline": probe_score(base_ck, dataset, cue),
           "ablated": {a: probe_score(ck, dataset, cue, ablation=a) for a in ablations}}
    abl = "  ".join(f"{a} {r['auc']:.3f}" for a, r in row["ablated"].items())
    s = row["specialist"]
    print(f"  {cue:<10} {model:<3} seed {seed}: specialist {s['auc']:.3f} [{s['lo']:.3f}, {s['hi']:.3f}]  "
          f"baseline ({baseline}) {row['baseline']['auc']:.3f}  destroyed: {abl}  ({wall:.0f} s)", flush=True)
    return row


def summarise(cue: str, runs: list[dict]) -> dict:
    """The probe object: worst and median specialist AUC, highest baseline and ablated AUC over seeds."""
    model, _, baseline, ablations = CUES[cue]
    spec = [r["specialist"]["auc"] for r in runs]
    worst = min(runs, key=lambda r: r["specialist"]["auc"])["specialist"]
    out = {"cue": cue, "model": model, "seeds": [r["seed"] for r in runs], "specialist_auc": min(spec),
           "specialist_auc_median": statistics.median(spec), "specialist_auc_per_seed": spec,
           "specialist_auc_ci_worst": [worst["lo"], worst["hi"]], "baseline_model": baseline,
           "baseline_auc": max(r["baseline"]["auc"] for r in runs),
           "baseline_auc_per_seed": [r["baseline"]["auc"] for r in runs],
           "ablation": ablations[0], "ablated_auc": max(r["ablated"][ablations[0]]["auc"] for r in runs),
           "steps": runs[0]["steps"], "wall_s": round(sum(r["wall_s"] for r in runs), 1)}
    for a in ablations:
        out[f"ablated_auc_{a}"] = max(r["ablated"][a]["auc"] for r in runs)
        out[f"ablated_auc_{a}_per_seed"] = [r["ablated"][a]["auc"] for r in runs]
    return out


def matrix(checkpoints: dict[str, str]) -> list[dict]:
    """Every specialist (its seed-0 weights on its own cue) on every cue's probe."""
    cells = []
    for cue, ck in checkpoints.items():
        for other, (_, dataset, _, _) in CUES.items():
            if other in checkpoints:
                cells.append({"model": CUES[cue][0], "trained_on": cue, "cue": other,
                              "auc": probe_score(ck, dataset, other)["auc"]})
    return cells


def print_matrix(cells: list[dict], heatmap: str | None) -> None:
    models = list(dict.fromkeys(c["model"] for c in cells))
    cues = list(dict.fromkeys(c["cue"] for c in cells))
    grid = [[next(c["auc"] for c in cells if c["model"] == m and c["cue"] == q) for q in cues] for m in models]
    print(f"\n{'model':<6}" + "".join(f"{q:>12}" for q in cues))
    for m, values in zip(models, grid):
        print(f"{m:<6}" + "".join(f"{v:>12.3f}" for v in values))
    if heatmap:
        fig, ax = plt.subplots(figsize=(1.3 * len(cues) + 1.5, 0.7 * len(models) + 1.2))
        ax.imshow(grid, cmap="RdYlGn", vmin=0.3, vmax=1.0)
        ax.set_xticks(range(len(cues)), cues, rotation=30)
        ax.set_yticks(range(len(models)), models)
        for i, values in enumerate(grid):
            for j, v in enumerate(values):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=9)
        ax.set_xlabel("probe (synthetic fakes of one cue)")
        ax.set_ylabel("specialist")
        ax.set_title("Cue matrix: test video AUC")
        fig.tight_layout()
        Path(heatmap).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(heatmap, dpi=110)
        plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cues", nargs="+", default=list(CUES), choices=list(CUES))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=160, help="optimizer steps per training")
    ap.add_argument("--set", nargs="*", default=[], metavar="SECTION.KEY=VALUE", help="config overrides")
    ap.add_argument("--output-dir", default=None, help="run folders (default: a temporary folder)")
    ap.add_argument("--heatmap", default=None, help="write the cue matrix as a PNG here")
    ap.add_argument("--json", default=None, help="write {'probes': [...], 'matrix': [...]} here")
    args = ap.parse_args()
    cli.setup_logging(verbose=False)
    probes, first = [], {}
    with tempfile.TemporaryDirectory(prefix="cue-probes-") as tmp:
        out = Path(args.output_dir or tmp)
        for cue in args.cues:
            runs = [one_seed(cue, seed, args.steps, out, args.set) for seed in args.seeds]
            first[cue] = runs[0]["checkpoint"]
            probes.append(summarise(cue, runs))
        cells = matrix(first)
    print(f"\n{'cue':<11} {'model':<6} {'worst':>6} {'median':>6} {'baseline':>9} {'destroyed':>10}")
    for p in probes:
        print(f"{p['cue']:<11} {p['model']:<6} {p['specialist_auc']:>6.3f} {p['specialist_auc_median']:>6.3f} "
              f"{p['baseline_auc']:>9.3f} {p['ablated_auc']:>10.3f}  ({p['baseline_model']}; {p['ablation']})")
    print_matrix(cells, args.heatmap)
    if args.json:
        atomic_write_json(args.json, {"probes": probes, "matrix": cells})
    return 0


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
