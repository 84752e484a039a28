"""What does this checkpoint hold, and can this toolkit use it? Nothing is built or run.

    python launch/inspect_checkpoint.py downloaded/f3net_best.pth
    python launch/inspect_checkpoint.py runs/bg/stage1/best.safetensors --json

Prints the container format, wrapper prefixes, tensor count and size, the first and last keys, the
classifier head it finds (keys, shapes, number of classes) and any extra heads, what the file looks
like, and a dry run of every registered import mapping (how many keys map, drop, or fail, and whether
the result would load strictly), ending with the ``launch/import_weights.py`` arguments that fit.

Exit status: 0 inspected (whatever it holds), 1 unreadable (code inside the pickle, not a state dict),
2 usage errors (file not found).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from utils.core.interop.inspect import format_report, inspect_file
from utils.orchestration import cli


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("file", help="a checkpoint: .pth/.pt/.bin/.ckpt or .safetensors")
    ap.add_argument("--json", action="store_true", help="print the report as JSON")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cli.setup_logging(verbose=False)
    if not Path(args.file).is_file():
        return cli.fail(f"file not found: {args.file}")
    info = inspect_file(args.file)
    print(json.dumps(info, indent=1, default=str) if args.json else format_report(info))
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
