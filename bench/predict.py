"""Benchmark: end-to-end prediction speed (decode + detect + model, 32 frames per video) on CPU.

Compares, in the same run and on the same videos, the toolkit's pipeline (:class:`utils.orchestration.predict.
Predictor`: one decoding pass per video, batched MTCNN at <= 960 px, model batches) with the naive
pipeline of typical detection scripts: seek to each sampled frame with OpenCV, one full-resolution face detector
call per frame, one model call per face.

    python bench/predict.py                       # 2 DFDC-like 1920x1080 clips of 300 frames
    python bench/predict.py --width 640 --height 360 --length 150 --videos 3 --model bg

Footage: the astronaut photo's face moving over a textured 1080p background, H.264 with x264's
default long GOP (like the datasets), generated once into ``--workdir``.
"""
from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
import torch


def make_footage(path: Path, width: int, height: int, length: int, fps: float = 30.0) -> Path:
    """A talking-head-sized face drifting over a noisy background (encoded once, reused)."""
    import cv2

    from utils.data.footage import astronaut
    from utils.data.video import write_video

    if path.is_file():
        return path
    rng = np.random.default_rng(0)
    face = cv2.resize(astronaut()[20:260, 130:330], None, fx=height / 1080 * 1.6, fy=height / 1080 * 1.6)
    bg = cv2.GaussianBlur(rng.integers(0, 255, (height, width, 3), dtype=np.uint8), (0, 0), 8)
    fh, fw = face.shape[:2]
    frames = []
    for i in range(length):
        img = bg.copy()
        x = int((width - fw) * (0.3 + 0.2 * np.sin(i / 40)))
        y = int((height - fh) * (0.4 + 0.1 * np.cos(i / 50)))
        img[y:y + fh, x:x + fw] = face
        frames.append(img)
    return write_video(path, np.stack(frames), fps=fps)


class NaivePipeline:
    """Per-frame seeking, one full-resolution MTCNN call per frame, one model call per face."""

    def __init__(self, member, frames: int):
        from facenet_pytorch import MTCNN

        self.member, self.frames = member, frames
        self.mtcnn = MTCNN(keep_all=True, device="cpu", post_process=False)
        self.times = {"decode": 0.0, "detect": 0.0, "model": 0.0}

    def __call__(self, path: Path) -> float:
        import cv2

        from utils.data.crops import cut_crop

        cap = cv2.VideoCapture(str(path))
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        scores = []
        for idx in np.linspace(0, n - 1, self.frames).round().astype(int):
            t0 = time.perf_counter()
            cap.set(cv2.CAP_PROP_POS_FRAMES, int(idx))
            ok, bgr = cap.read()
            t1 = time.perf_counter()
            self.times["decode"] += t1 - t0
            if not ok:
                continue
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            boxes, probs = self.mtcnn.detect(rgb)
            t2 = time.perf_counter()
            self.times["detect"] += t2 - t1
            if boxes is None:
                continue
            box = boxes[int(np.argmax(probs))]
            crop = cut_crop(rgb, (0, 0), box, self.member.spec, margin=self.member.margin)
            (img,) = self.member.transform([crop])
            with torch.no_grad():
                logits = self.member.model({"image": torch.from_numpy(img).permute(2, 0, 1)[None]})["logits"]
            scores.append(float(torch.softmax(logits.float(), -1)[0, 1]))
            self.times["model"] += time.perf_counter() - t2
        cap.release()
        return float(np.mean(scores)) if scores else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=2)
    ap.add_argument("--width", type=int, default=1920)
    ap.add_argument("--height", type=int, default=1080)
    ap.add_argument("--length", type=int, default=300, help="frames per generated video")
    ap.add_argument("--frames", type=int, default=32, help="frames scored per video")
    ap.add_argument("--model", default="genconvit_ed")
    ap.add_argument("--size", default="tiny")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workdir", default="/tmp/bench_predict")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)

    from utils.orchestration.predict import Predictor
    from utils.core.checkpoint import export_weights
    from utils.core.registry import create_model

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    size = f"{args.width}x{args.height}"
    videos = [make_footage(work / f"clip{i}_{size}_{args.length}.mp4", args.width, args.height, args.length)
              for i in range(args.videos)]
    print(f"footage: {args.videos} x {size}, {args.length} frames ({time.perf_counter() - t:.1f} s)")
    ck = export_weights(create_model(args.model, size=args.size),
                        work / f"{args.model}_{args.size}.safetensors",
                        {"model": args.model, "model_kwargs": {"size": args.size}})
    predictor = Predictor([ck], device="cpu", frames=args.frames)
    naive = NaivePipeline(predictor.members[0], args.frames)

    list(predictor.predict(videos[:1]))  # warm-up: model and MTCNN weights, allocator
    t = time.perf_counter()
    ours = list(predictor.predict(videos))
    t_ours = time.perf_counter() - t
    assert all(r.ok for r in ours), [r.error for r in ours]
    t = time.perf_counter()
    naive_scores = [naive(v) for v in videos]
    t_naive = time.perf_counter() - t

    n = len(videos)
    print(f"toolkit pipeline: {n / t_ours:.3f} videos/s ({t_ours / n:.2f} s/video; "
          f"P(fake) {[round(r.p_fake, 3) for r in ours]})")
    print(f"naive pipeline:   {n / t_naive:.3f} videos/s ({t_naive / n:.2f} s/video; "
          f"decode {naive.times['decode'] / n:.2f} s, detect {naive.times['detect'] / n:.2f} s, "
          f"model {naive.times['model'] / n:.2f} s per video; P(fake) {[round(s, 3) for s in naive_scores]})")
    print(f"speed-up: {t_naive / t_ours:.1f}x  (target >= 5x; {args.threads} torch threads, "
          f"{args.frames} frames/video)")


if __name__ == "__main__":
    main()
