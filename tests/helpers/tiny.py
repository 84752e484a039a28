"""A tiny model and synthetic dataset for testing the trainer before real models and data exist.

Run as a script (plain python, or under ``accelerate launch``) it trains the tiny model with the real
Trainer; the tests drive it in subprocesses to check DDP, resume after SIGKILL and early stopping.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn as nn
from torch.utils.data import Dataset

from utils.core.model import DeepfakeModel, InputSpec
from utils.core.registry import MODELS, register_model

SPEC = InputSpec(crop="face", image_size=16, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))


class TinyNet(DeepfakeModel):
    """Conv -> pool -> linear; no BatchNorm so 1 and 2 processes give the same gradients."""

    def __init__(self, num_classes: int = 2, width: int = 8, dropout: float = 0.0):
        super().__init__(SPEC, num_classes)
        self.features = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4),
                                      nn.Flatten(), nn.Dropout(dropout))
        self.head = nn.Linear(width * 16, num_classes)

    def forward(self, batch: dict) -> dict:
        return {"logits": self.head(self.features(self.normalize(batch["image"])))}


def register() -> None:
    """Register ``tiny`` (idempotent: tests may call it many times)."""
    if "tiny" not in MODELS:
        register_model("tiny")(lambda size="tiny", pretrained=False, pretrained_path=None, num_classes=2,
                               drop_rate=None, **kw: TinyNet(num_classes, dropout=drop_rate or 0.0, **kw))


class TinyData(Dataset):
    """Noise images; class c carries a faint bright square at a class-specific place (learnable)."""

    def __init__(self, n: int = 64, seed: int = 0, num_classes: int = 2, signal: float = 60.0,
                 label_noise: float = 0.0, delay: float = 0.0, offset: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.labels = (torch.arange(n) % num_classes).tolist()
        flip = torch.rand(n, generator=g) < label_noise
        self.images = torch.randint(60, 196, (n, 3, 16, 16), generator=g).float()
        for i, y in enumerate(self.labels):
            r = 2 + 4 * y
            self.images[i, :, r:r + 4, 4:12] += signal
            if flip[i]:
                self.labels[i] = (y + 1) % num_classes
        self.images = self.images.clamp(0, 255).to(torch.uint8)
        self.delay, self.offset = delay, offset

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        if self.delay:
            time.sleep(self.delay)
        return {"image": self.images[i], "label": self.labels[i], "video_id": f"v{i + self.offset}",
                "method": "tiny", "frame_index": 0}


def main() -> int:
    from accelerate.utils import set_seed

    from utils.core.checkpoint import unwrap
    from utils.orchestration.cli import setup_logging
    from utils.core.recipe import load_config
    from utils.core.registry import create_model
    from evaluation.scoring import validation_metrics
    from utils.engine.trainer import Trainer

    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--config")
    ap.add_argument("--set", nargs="*", default=[])
    ap.add_argument("--resume", default="auto")
    ap.add_argument("--n-train", type=int, default=64)
    ap.add_argument("--n-val", type=int, default=32)
    ap.add_argument("--label-noise", type=float, default=0.0)
    ap.add_argument("--val-noise", type=float, default=0.0)
    ap.add_argument("--delay", type=float, default=0.0)
    args = ap.parse_args()
    setup_logging()
    register()
    cfg = load_config(args.config, ["model.name=tiny", "data.num_workers=0", "logging.progress_bar=false"]
                      + args.set)
    set_seed(cfg.trainer.seed)  # the same initial weights in every process and every run
    model = create_model("tiny", num_classes=cfg.model.num_classes)
    train = TinyData(args.n_train, seed=1, num_classes=cfg.model.num_classes, label_noise=args.label_noise,
                     delay=args.delay)
    val = TinyData(args.n_val, seed=2, num_classes=cfg.model.num_classes, label_noise=args.val_noise,
                   offset=10_000)
    trainer = Trainer(model, cfg, args.out, train, val, export_meta={"model": "tiny", "model_kwargs": {}},
                      validation=validation_metrics)
    resumed = trainer.resume(args.resume)
    out = Path(args.out)
    if resumed and trainer.acc.is_main_process:
        st = trainer.state
        (out / "resumed.json").write_text(json.dumps({
            "epoch": st.epoch, "step_in_epoch": st.step_in_epoch, "global_step": st.global_step,
            "best_metric": st.best_metric, "bad_validations": st.bad_validations,
            "lr": trainer.optimizer.param_groups[0]["lr"]}))
    state = trainer.fit()  # closes the trackers (flushes TensorBoard)
    if trainer.acc.is_main_process:
        final = {k: v.tolist() for k, v in unwrap(trainer.model).state_dict().items()}
        (out / "final.json").write_text(json.dumps({"epoch": state.epoch, "stopped_early": state.stopped_early,
                                                    "best_epoch": state.best_epoch, "weights": final,
                                                    "lr": trainer.optimizer.param_groups[0]["lr"]}))
    # every rank writes its own weights so tests can compare ranks
    rank_w = {k: v.tolist() for k, v in unwrap(trainer.model).state_dict().items()}
    (out / f"rank{trainer.acc.process_index}.json").write_text(json.dumps({"weights": rank_w,
                                                                           "epoch": state.epoch}))
    return 0


if __name__ == "__main__":
    from utils.orchestration.cli import run
    raise SystemExit(run(main))
