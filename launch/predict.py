"""Is this video (or image) fake? Score files with an exported checkpoint or an ensemble.

    python launch/predict.py clip.mp4 photos/ --checkpoint runs/bg/stage3/best.safetensors
    python launch/predict.py videos/ --checkpoint a.safetensors --checkpoint b.safetensors \\
        --ensemble-weights runs/ensemble/weights.json --json --device cuda
    python launch/predict.py clip.mp4 --checkpoint model.onnx     # an ONNX export, on onnxruntime

Prints one line per file: ``path  P(fake)=0.9731  FAKE  (threshold ..., frames ...)`` or
``path  ERROR  reason`` (unreadable file, no face found); with ``--json`` one JSON object per file.
A checkpoint with more than two classes adds one probability per class, named as its sidecar names
them (``P(real)=… P(fake)=… P(generated)=…``), and the label is a class name. A checkpoint trained on
face crops (``data.face_crops``, DeepfakeBench frames) scores the whole image: no face detection.
The run carries on after a failed file and exits with status 1 if any file failed.
"""
from __future__ import annotations

import argparse
import sys

import torch

from evaluation.aggregate import AGGREGATIONS
from utils.orchestration import cli
from utils.orchestration.predict import Predictor


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("paths", nargs="+", help="video or image files, or folders of them")
    ap.add_argument("--checkpoint", action="append", required=True,
                    help="exported weights (.safetensors with its .json sidecar) or an ONNX export (.onnx with "
                         "its sidecar, run on onnxruntime: launch/export_onnx.py); repeat for an ensemble")
    ap.add_argument("--ensemble-weights",
                    help="JSON of fitted ensemble weights (launch/evaluate.py --fit-ensemble)")
    ap.add_argument("--threshold", type=float,
                    help="decision threshold (default: from the sidecar, else 0.5)")
    ap.add_argument("--frames", type=int, default=32, help="frames spread over each video (default 32)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--aggregation", choices=AGGREGATIONS, default="mean")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                    help="cpu, cuda or cuda:N (default: cuda when available)")
    ap.add_argument("--min-face-share", type=float, default=0.5,
                    help="score a file only if the face is found on at least this share of its frames")
    ap.add_argument("--json", action="store_true", help="one JSON object per file")
    ap.add_argument("-v", "--verbose", action="store_true")
    return ap.parse_args(argv)


def check_args(args: argparse.Namespace) -> str | None:
    """What is wrong with the arguments, before any model is loaded."""
    if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
        return f"--threshold {args.threshold}: a threshold on P(fake) lies in [0, 1]"
    if not 0.0 <= args.min_face_share <= 1.0:
        return f"--min-face-share {args.min_face_share}: give a share in [0, 1]"
    if args.frames < 1 or args.batch_size < 1:
        return "--frames and --batch-size must be at least 1"
    return cli.device_problem(args.device)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cli.setup_logging(verbose=args.verbose)
    problem = check_args(args)
    if problem:
        return cli.fail(problem)
    predictor = Predictor(args.checkpoint, device=args.device, frames=args.frames,
                          batch_size=args.batch_size, weights=args.ensemble_weights,
                          threshold=args.threshold, aggregation=args.aggregation,
                          min_face_share=args.min_face_share)
    failed = total = 0
    for res in predictor.predict(args.paths):
        total += 1
        failed += not res.ok
        print(res.to_json() if args.json else res.line(), flush=True)
    if failed:
        print(f"{failed} of {total} files could not be scored", file=sys.stderr)
    if total == 0:
        print("no files to score", file=sys.stderr)
    return 1 if failed or total == 0 else 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
