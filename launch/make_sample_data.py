"""Write the bundled sample datasets (small FF++, Celeb-DF v2 and DFDC trees) from real footage.

    python launch/make_sample_data.py --out data/sample [--seed 0] [--scale small|medium]

Idempotent: a complete tree for the same seed and scale is left as it is.
"""
from __future__ import annotations

import argparse
import logging
import time

from utils.data.sample import SCALES, make_sample_data, read_marker


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="data/sample", help="destination folder (default: data/sample)")
    parser.add_argument("--seed", type=int, default=0, help="everything follows from it (default: 0)")
    parser.add_argument("--scale", default="small", choices=sorted(SCALES),
                        help="how much data (default: small)")
    parser.add_argument("--workers", type=int, default=None,
                        help="processes (default: one per core, at most 8)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    started = time.perf_counter()
    try:
        out = make_sample_data(args.out, seed=args.seed, scale=args.scale, workers=args.workers)
    except ValueError as err:
        parser.error(str(err))
    marker = read_marker(out)
    counts = ", ".join(f"{name} {n}" for name, n in marker["videos"].items())
    print(f"sample data in {out}: {counts} videos ({marker['real']} real, {marker['fake']} fake), "
          f"{marker['bytes'] / 1e6:.1f} MB, seed {marker['seed']}, scale {marker['scale']}, "
          f"{time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
