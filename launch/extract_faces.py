"""Build the face-crop cache of a dataset: decode each video once, detect, store lossless face regions.

    python launch/extract_faces.py --dataset ffpp --root /data/FaceForensics++
    python launch/extract_faces.py --dataset dfdc --root /data/dfdc --set "data.train_chunks=[0,1,2]" --workers 8
    torchrun --nproc_per_node 4 launch/extract_faces.py --dataset celebdf --root /data/Celeb-DF-v2 \\
        --device cuda

The cache goes where training looks for it (``data.cache``, else a folder named after the root and
the build settings), with the settings of ``--config`` / ``--set``, so a cache built ahead of time is
the one training uses. Finished videos are skipped, so an interrupted run is resumed by running the
same command; SIGTERM, SIGUSR1 or Ctrl-C stops it cleanly between videos (exit status 128 + the
signal). Under ``torchrun`` / ``accelerate launch`` each rank takes its share of the videos (by
group) and the last rank to finish merges the index. Unusable videos are listed in
``<cache>/failures.csv``. Exit codes: 0 done, 1 a dataset layout or leakage error, 2 bad arguments.
"""
from __future__ import annotations

import argparse
import os
import sys

from utils.core.recipe import load_config
from utils.core.registry import get_dataset, list_datasets
from utils.core.signals import StopRequest
from utils.data.cache import BuildOptions, build_cache, cache_location
from utils.data.faces import MTCNNDetector
from utils.data.index import build_index, data_root
from utils.orchestration import cli


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", required=True, choices=list_datasets())
    ap.add_argument("--root", default="", help="dataset root (default: data.root, then the adapter's "
                    "environment variable such as $FFPP_ROOT)")
    ap.add_argument("--cache", default="", help="cache folder (default: where training looks for it)")
    ap.add_argument("--config", default=None, help="recipe YAML whose data section to use")
    ap.add_argument("--set", nargs="*", default=[], metavar="SECTION.KEY=VALUE",
                    help="config overrides, e.g. data.frames_per_video=16 data.compression=c40")
    ap.add_argument("--frames", type=int, help="frames spread over each video (data.frames_per_video)")
    ap.add_argument("--clips", type=int, help="runs of consecutive frames per video (data.clips_per_video)")
    ap.add_argument("--clip-frames", type=int, help="frames per run (data.clip_frames)")
    ap.add_argument("--margin", type=float, help="face margin per side (data.margin)")
    ap.add_argument("--workers", type=int, default=1, help="processes per rank")
    ap.add_argument("--no-audio", action="store_true", help="do not store audio")
    ap.add_argument("--require-audio", action="store_true", help="a video without audio is a failure")
    ap.add_argument("--retry-failed", action="store_true", help="redo videos listed in failures.csv")
    ap.add_argument("--device", default="cpu", help="face detector device: cpu, cuda (one GPU per rank), cuda:N")
    ap.add_argument("--detect-size", type=int, default=640, help="longest frame side seen by the face detector")
    ap.add_argument("--decoder", default="auto", choices=("auto", "decord", "pyav"))
    ap.add_argument("--no-compress", action="store_true",
                    help="store native tiles raw instead of lossless WebP: no decode per sample, ~6x their bytes")
    return ap.parse_args(argv)


def _device(name: str) -> str:
    return f"cuda:{os.environ.get('LOCAL_RANK', 0)}" if name == "cuda" else name


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cli.setup_logging()
    if args.workers < 1:
        return cli.fail(f"--workers {args.workers}: give at least 1")
    flags = {"dataset": args.dataset, "root": args.root or None, "cache": args.cache or None,
             "frames_per_video": args.frames, "clips_per_video": args.clips, "clip_frames": args.clip_frames,
             "margin": args.margin, "cache_compress": False if args.no_compress else None}
    given = [f"data.{k}={v}" for k, v in flags.items() if v is not None]
    cfg = load_config(args.config, args.set + given)
    root, _ = data_root(cfg.data)
    if not root.is_dir():
        return cli.fail(f"{args.dataset} root {root} is not a folder: pass --root DIR (the folder holding "
                        "the dataset as downloaded)")
    records = build_index(cfg.data, root, seed=cfg.trainer.seed)   # the seed training indexes with
    opts = BuildOptions.from_data(cfg.data, audio=not args.no_audio, require_audio=args.require_audio,
                                  backend=args.decoder)
    cache = cache_location(cfg.data, root, opts)
    adapter = get_dataset(args.dataset)   # images that are face crops already need no detector
    detector = adapter.face_detector(adapter.options(cfg.data), cfg.data.margin) or \
        MTCNNDetector(device=_device(args.device), max_size=args.detect_size)
    with StopRequest() as stop:   # SIGTERM / Ctrl-C: finish the videos in progress, keep them, exit 128 + signal
        summary = build_cache(records, cache, opts, reuse_original_boxes=adapter.reuse_original_boxes,
                              workers=args.workers, retry_failed=args.retry_failed, stop=stop,
                              face_detector=detector)
    failed = summary["failed"] + summary["failed_before"]
    print(f"{cache}: done {summary['done']} / skipped {summary['skipped']} / failed {failed}"
          + (f" (see {cache / 'failures.csv'})" if failed else ""))
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
