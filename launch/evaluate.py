"""Evaluate exported weights on a dataset split: frame and video metrics, intervals, plots.

    python launch/evaluate.py --checkpoint runs/bg/stage1/best.safetensors --dataset celebdf --split test
    python launch/evaluate.py --checkpoint a.safetensors --checkpoint b.safetensors --dataset dfdc \\
        --fit-ensemble --out runs/ensemble/dfdc        # ensemble, weights fitted on validation and saved
    accelerate launch launch/evaluate.py ...         # several processes share the prediction work
    python launch/evaluate.py --checkpoint runs/cm/stage1/best.safetensors --dataset ffpp celebdf dfdc \
        --out runs/cm/stage1/cross                     # the cross-dataset table (cross_dataset.json, .md)

The decision threshold is chosen on the validation split (``--val-split none``: the sidecar's, else
0.5); metrics at 0.5 are reported too. Writes ``report.json``, ``report.md``, ``roc.png``, ``pr.png``,
``confusion.png``, ``histogram.png`` and the frame predictions (``predictions_<split>.npz``) to ``--out``;
``--explain N`` adds Grad-CAM galleries (``gallery/<source>_<TP|FN|TN|FP>.png``).
Exits with status 3 when the model looks collapsed (constant or one-class predictions).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from evaluation.aggregate import AGGREGATIONS, NO_FACE_RULES
from evaluation.explain import METHODS
from evaluation.metrics import THRESHOLD_RULES
from utils.core.registry import list_datasets
from utils.orchestration import cli
from utils.orchestration.evaluate import cross_dataset, evaluate_checkpoints


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", action="append", required=True,
                    help="exported weights (.safetensors + .json sidecar); repeat for an ensemble")
    ap.add_argument("--dataset", required=True, nargs="+", choices=list_datasets(),
                    help="one dataset, or several for the cross-dataset table (one checkpoint)")
    ap.add_argument("--split", default="test", choices=("train", "val", "test"))
    ap.add_argument("--val-split", default="val", help="split the threshold is chosen on, or 'none'")
    ap.add_argument("--out", help="report folder (default: <checkpoint folder>/eval_<dataset>_<split>)")
    ap.add_argument("--root", default="",
                    help="dataset root (default: the checkpoint's, else $FFPP_ROOT/...; "
                         "--set data.sample=true: the generated sample data)")
    ap.add_argument("--cache", default="", help="face-crop cache folder (default: derived from the root)")
    ap.add_argument("--aggregation", choices=AGGREGATIONS, default="mean", help="frame -> video score")
    ap.add_argument("--threshold-rule", choices=THRESHOLD_RULES, default="balanced_acc")
    ap.add_argument("--no-face", choices=NO_FACE_RULES, default="exclude",
                    help="videos without a face: left out and counted, or scored with the validation prior")
    ap.add_argument("--n-boot", type=int, default=1000, help="bootstrap replicates (0 = no intervals)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ensemble-weights", help="weights JSON for several checkpoints")
    ap.add_argument("--fit-ensemble", action="store_true",
                    help="fit ensemble weights on the validation split (log-loss) and save them to --out")
    ap.add_argument("--explain", type=int, default=0, metavar="N",
                    help="Grad-CAM galleries of N videos per (source, TP/FN/TN/FP) cell in <out>/gallery/")
    ap.add_argument("--explain-method", choices=list(METHODS), default="gradcam")
    ap.add_argument("--set", nargs="*", default=[], metavar="SECTION.KEY=VALUE",
                    help="config overrides, e.g. data.test_chunks=[40,41] data.num_workers=2")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cli.setup_logging()
    for ck in args.checkpoint:
        if not Path(ck).is_file():
            return cli.fail(f"checkpoint not found: {ck}")
    val_split = None if args.val_split.lower() == "none" else args.val_split
    if len(args.dataset) > 1:
        return cross_table(args, val_split)
    suffix = "_ensemble" if len(args.checkpoint) > 1 else ""
    dataset = args.dataset[0]
    out = Path(args.out or Path(args.checkpoint[0]).parent / f"eval_{dataset}_{args.split}{suffix}")
    report = evaluate_checkpoints(
        args.checkpoint, dataset, args.split, out, val_split=val_split, aggregation=args.aggregation,
        root=args.root, cache=args.cache, overrides=args.set, n_boot=args.n_boot, seed=args.seed,
        threshold_rule=args.threshold_rule, no_face=args.no_face, ensemble_weights=args.ensemble_weights,
        fit_ensemble=args.fit_ensemble, explain=args.explain, explain_method=args.explain_method)
    v, t = report["video"]["metrics"], report["threshold"]
    at = "argmax" if t["video"] is None else f"{t['video']:.3f}"   # k > 2 without a threshold
    print(f"{report['title']}: video AUC {v.get('auc', float('nan')):.4f}, "
          f"balanced acc {v.get('balanced_acc', float('nan')):.4f} @ {at} ({t['source']}), "
          f"log-loss {v.get('log_loss', float('nan')):.4f}; {report['video']['n']} videos, "
          f"{report['no_face']['count']} without a face -> {out}")
    if report["collapsed"]:
        print("MODEL COLLAPSE SUSPECTED: " + "; ".join(report["collapse_reasons"]), file=sys.stderr)
        return 3
    return 0


def cross_table(args: argparse.Namespace, val_split: str | None) -> int:
    """One checkpoint on several datasets: each one's report and the cross-dataset table."""
    if len(args.checkpoint) > 1:
        return cli.fail("the cross-dataset table takes one --checkpoint (give one dataset for an ensemble)")
    if args.root or args.cache:
        return cli.fail("--root/--cache name one dataset's data; with several datasets use their environment "
                        "variables or --set data.sample=true")
    out = Path(args.out or Path(args.checkpoint[0]).parent / f"cross_dataset_{args.split}")
    rows = cross_dataset(args.checkpoint[0], args.dataset, args.split, out, val_split=val_split,
                         aggregation=args.aggregation, overrides=args.set, n_boot=args.n_boot, seed=args.seed,
                         threshold_rule=args.threshold_rule, no_face=args.no_face)
    print(f"{'test dataset':<14} {'frame AUC':>9} {'video AUC':>9} {'videos':>7}")
    for r in rows:
        print(f"{r['dataset']:<14} {r['frame_auc']:>9.3f} {r['video_auc']:>9.3f} {r['n_videos']:>7}"
              f"{'  COLLAPSED' if r['collapsed'] else ''}")
    print(f"-> {out / 'cross_dataset.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
