"""Build the face-crop cache of a dataset: decode each video once, detect, store lossless face regions.

    python launch/extract_faces.py --dataset ffpp --root /data/FaceForensics++ --cache data/cache/ffpp
    python launch/extract_faces.py --dataset dfdc --root /data/dfdc --chunks 0 1 2 --workers 8 \
        --reuse-original-boxes
    torchrun --nproc_per_node 4 launch/extract_faces.py --dataset celebdf --root /data/Celeb-DF-v2 \
        --device cuda

Finished videos are skipped, so an interrupted run is resumed by running the same command. Under
``torchrun`` / ``accelerate launch`` each rank takes its share of the videos (by group) and the last
rank to finish merges the index. Unusable videos are listed in ``<cache>/failures.csv``. Exit codes:
0 done, 1 a dataset layout or leakage error, 2 bad arguments (e.g. a missing root).
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from pathlib import Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", required=True, choices=("ffpp", "celebdf", "dfdc"))
    ap.add_argument("--root", default="", help="dataset root (default: data.root, then $FFPP_ROOT / …)")
    ap.add_argument("--cache", default="", help="cache folder (default: where training looks: data.cache, "
                    "else <data.cache_root>/<dataset>-<hash of root and frame settings>)")
    ap.add_argument("--config", default=None, help="recipe YAML whose data section to use")
    ap.add_argument("--set", nargs="*", default=[], metavar="SECTION.KEY=VALUE", help="config overrides")
    ap.add_argument("--frames", type=int, default=None, help="frames spread over each video (default 32)")
    ap.add_argument("--clips", type=int, default=None, help="runs of consecutive frames a video (default 4)")
    ap.add_argument("--clip-frames", type=int, default=None, help="frames per run (default 8)")
    ap.add_argument("--margin", type=float, default=None, help="face margin per side (default 0.3)")
    ap.add_argument("--workers", type=int, default=1, help="processes per rank")
    ap.add_argument("--chunks", type=int, nargs="*", default=None, help="DFDC: only these chunk numbers")
    ap.add_argument("--compression", default=None, help="FF++: c23 (default), c40 or raw")
    ap.add_argument("--methods", nargs="*", default=None, help="FF++: manipulation methods")
    ap.add_argument("--no-audio", action="store_true", help="do not store audio")
    ap.add_argument("--require-audio", action="store_true", help="a video without audio is a failure")
    ap.add_argument("--reuse-original-boxes", action="store_true",
                    help="DFDC: fakes take their original's boxes")
    ap.add_argument("--retry-failed", action="store_true", help="redo videos listed in failures.csv")
    ap.add_argument("--device", default="cpu", help="face detector device: cpu, cuda (one GPU per rank), cuda:N")
    ap.add_argument("--detect-size", type=int, default=640, help="longest frame side seen by the face detector")
    ap.add_argument("--decoder", default="auto", choices=("auto", "decord", "pyav"))
    ap.add_argument("--no-compress", action="store_true",
                    help="store regions without zlib: ~2x the disk, ~1.7x faster data loading")
    return ap.parse_args(argv)


def load(args: argparse.Namespace):
    """The config with its data section from: defaults < recipe < --set < explicit flags."""
    from utils.core.config import load_config

    full = load_config(args.config, args.set)
    cfg = full.data
    flags = {"dataset": args.dataset, "root": args.root, "frames_per_video": args.frames,
             "clips_per_video": args.clips, "clip_frames": args.clip_frames, "margin": args.margin,
             "compression": args.compression, "methods": args.methods}
    cfg = dataclasses.replace(cfg, **{k: v for k, v in flags.items() if v is not None})
    if args.chunks and not (cfg.train_chunks or cfg.val_chunks or cfg.test_chunks):
        # the stored split does not bind training: datasets follow the chunk lists of the training config
        cfg = dataclasses.replace(cfg, train_chunks=list(args.chunks))
    return dataclasses.replace(full, data=cfg)


def _device(name: str) -> str:
    return f"cuda:{os.environ.get('LOCAL_RANK', 0)}" if name == "cuda" else name


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from utils.core.config import ConfigError

    try:
        full = load(args)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from utils.orchestration.curriculum import data_root

    cfg = full.data
    # --root, else where training looks: $FFPP_ROOT/$CELEBDF_ROOT/$DFDC_ROOT, the recipe, the sample data
    root = args.root or str(data_root(full)[0])
    if not Path(root).is_dir():
        print(f"error: {cfg.dataset} root {root or '(none given)'} is not a folder: pass --root DIR "
              f"(the folder holding the dataset as downloaded)", file=sys.stderr)
        return 2
    from utils.orchestration.curriculum import cache_dir
    from utils.data.adapters import DatasetLayoutError, build_index
    from utils.data.cache import build_cache
    from utils.data.faces import MTCNNDetector
    from utils.data.leakage import LeakageError

    try:
        records = build_index(cfg, root, seed=full.trainer.seed)   # the seed training indexes with
    except (DatasetLayoutError, LeakageError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if args.chunks:
        records = [r for r in records if r.chunk in set(args.chunks)]
    cache = Path(args.cache) if args.cache else cache_dir(full, Path(root))  # where training looks for it
    summary = build_cache(
        records, cache, frames_per_video=cfg.frames_per_video, clips_per_video=cfg.clips_per_video,
        clip_frames=cfg.clip_frames, margin=cfg.margin, audio=not args.no_audio,
        require_audio=args.require_audio,
        reuse_original_boxes=args.reuse_original_boxes, workers=args.workers, retry_failed=args.retry_failed,
        face_detector=MTCNNDetector(device=_device(args.device), max_size=args.detect_size), backend=args.decoder,
        compress=not args.no_compress)
    failed = summary["failed"] + summary["failed_before"]
    print(f"{cache}: done {summary['done']} / skipped {summary['skipped']} / failed {failed}"
          + (f" (see {cache / 'failures.csv'})" if failed else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
