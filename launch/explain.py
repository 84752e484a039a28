"""Grad-CAM heat maps of one checkpoint on video and image files: what the model looks at.

    python launch/explain.py --checkpoint runs/bg/stage1/best.safetensors video.mp4 photo.jpg --out cam/
    python launch/explain.py --checkpoint runs/tm/stage4/best.safetensors folder/ --out cam/ --per-class 8

Each file goes through the prediction path (face detection, the model's crop policy and transforms);
for image models ``--samples`` frames spread over the file are explained, for clip models the middle
clip with one map per frame. Every cam layer the model names is shown (a specialist: its EfficientNet
backbone and its cue map; GenConViT: ConvNeXt and Swin; any timm backbone: its last stage).
Writes ``<out>/<nnn>_<name>.png`` (crop, heat maps over it, scores) and ``.npz`` (the maps), with
``--per-class N`` a gallery of the N most confident files per predicted class, and ``explain.json``.
Maps come from the ``grad-cam`` package (``--method``: gradcam, gradcam++, hirescam, xgradcam, layercam).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from evaluation.explain import METHODS, TARGETS
from utils.orchestration import cli
from utils.orchestration.explain import Explainer


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("inputs", nargs="+", help="video / image files or folders")
    ap.add_argument("--checkpoint", required=True, help="exported weights (.safetensors + .json sidecar)")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--per-class", type=int, default=0, metavar="N", help="gallery of N files per predicted class")
    ap.add_argument("--samples", type=int, default=4, help="frames explained per file (image models)")
    ap.add_argument("--frames", type=int, default=8, help="frames decoded per video")
    ap.add_argument("--method", choices=list(METHODS), default="gradcam")
    ap.add_argument("--target", choices=TARGETS, default="predicted", help="class the maps explain")
    ap.add_argument("--layers", nargs="*", default=None, help="cam layers to show (default: all the model names)")
    ap.add_argument("--device", default="cpu")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cli.setup_logging()
    if not Path(args.checkpoint).is_file():
        return cli.fail(f"checkpoint not found: {args.checkpoint}", 1)
    if problem := cli.device_problem(args.device):
        return cli.fail(problem)
    if args.per_class < 0 or args.samples < 1:
        return cli.fail("--per-class must be >= 0 and --samples >= 1")
    explainer = Explainer(args.checkpoint, samples=args.samples, method=args.method, target=args.target,
                          layers=args.layers, device=args.device, frames=args.frames)
    layers = set(explainer.members[0].model.cam_layers())
    if unknown := sorted(set(args.layers or []) - layers):
        return cli.fail(f"--layers {' '.join(unknown)}: this model's cam layers are {', '.join(sorted(layers))}")
    index = explainer.explain_files(args.inputs, Path(args.out), per_class=args.per_class)
    failed = 0
    for entry in index:
        res = entry["result"]
        if res["error"]:
            failed += 1
            print(f"{entry['path']}\tERROR\t{res['error']}")
        else:
            print(f"{entry['path']}\tP(fake)={res['p_fake']:.4f}\t{res['label']}\t-> {entry['png']}")
    if failed:
        print(f"{failed} of {len(index)} files could not be explained", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
