"""Import another codebase's checkpoint as this toolkit's exported weights (.safetensors + .json sidecar).

    python launch/import_weights.py --format deepfakebench --arch xception xception_best.pth x.safetensors
    python launch/import_weights.py --format deepfakebench --arch f3net f3net_best.pth f3net.safetensors
    python launch/import_weights.py --format genconvit --arch ed genconvit_ed_inference.pth ed.safetensors

The file is read with ``torch.load(weights_only=True)`` (never unpickling code); a plain state dict, the
DDP ``module.`` form and GenConViT's training dict ({"epoch", "state_dict", "optimizer", "min_loss"})
are accepted. Every key is mapped, dropped by a named rule (listed with its reason), or an error;
the result loads strictly into the registered model, and the sidecar records where it came from.
Afterwards predict.py, evaluate.py (ensembles too), diagnose.py and ``train.py --init`` take the output
like any checkpoint. ``--arch auto`` picks the architecture whose rules fit every key.

Exit status: 0 imported, 1 the checkpoint cannot be used as that architecture (no head, another
architecture, a required part missing, code inside the pickle), 2 usage errors.
"""
from __future__ import annotations

import argparse
import sys

from utils.core.interop.importer import import_checkpoint
from utils.orchestration import cli


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--format", required=True,
                    help="the codebase that wrote the file: deepfakebench or genconvit")
    ap.add_argument("--arch", required=True,
                    help="deepfakebench: xception, f3net, efficientnetb4; genconvit: ed, vae; or auto")
    ap.add_argument("input", help="the foreign checkpoint (.pth/.pt/.bin/.ckpt or .safetensors)")
    ap.add_argument("output",
                    help="where to write the exported weights (.safetensors; the sidecar goes next to it)")
    ap.add_argument("--no-hash", action="store_true",
                    help="do not record the input file's SHA-256 (large files)")
    ap.add_argument("-q", "--quiet", action="store_true", help="print only errors")
    return ap.parse_args(argv)


def format_import(sidecar: dict, src: str, out: str) -> str:
    """What was imported, what was dropped and why, and the mapping's notes."""
    imp, source = sidecar["import"], sidecar["source"]
    removed = f", removed {' '.join(source['wrappers_removed'])}" if source["wrappers_removed"] else ""
    lines = [f"imported {src} ({source['container']}{removed}) as {sidecar['model']} -> {out}",
             f"  {imp['n_source_keys']} keys: {imp['n_mapped']} mapped, {imp['n_dropped']} dropped by rule"]
    lines += [f"  dropped {d['count']} ({d['rule']}, e.g. {d['keys'][0]}): {d['reason']}"
              for d in imp["dropped"]]
    lines += [f"  note: {note}" for note in sidecar.get("notes", [])]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cli.setup_logging(verbose=False)
    sidecar = import_checkpoint(args.input, args.format, args.arch, args.output, sha256=not args.no_hash)
    if not args.quiet:
        print(format_import(sidecar, args.input, args.output))
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
