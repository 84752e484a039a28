"""Trainer overhead: the project's Trainer vs a bare PyTorch loop, same model, data, steps (CPU).

Both loops do the same algorithm (AdamW, gradient clipping at 1.0, zero_grad(set_to_none)); the
Trainer adds accelerate's accumulate/autocast contexts, per-step seeding, logging and the progress
bar. Reported: seconds per step for each and their ratio (target <= 1.05).

    python bench/trainer_overhead.py [--steps 40] [--batch 32] [--size 96]
"""
from __future__ import annotations

import argparse
import logging
import tempfile
import time

import timm
import torch
from torch.utils.data import DataLoader, Dataset

from evaluation.scoring import validation_metrics
from utils.core.recipe import load_config
from utils.core.model import DeepfakeModel, InputSpec
from utils.engine.trainer import Trainer


class Net(DeepfakeModel):
    def __init__(self, size: int):
        super().__init__(InputSpec(image_size=size))
        self.body = timm.create_model("resnet10t", pretrained=False, num_classes=0)
        self.head = torch.nn.Linear(self.body.num_features, 2)

    def forward(self, batch):
        return {"logits": self.head(self.body(self.normalize(batch["image"])))}


class Data(Dataset):
    def __init__(self, n: int, size: int):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)
        self.labels = (torch.arange(n) % 2).tolist()

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {"image": self.x[i], "label": self.labels[i]}


def bare_loop(model, loader, steps: int) -> float:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()
    it, start = iter(loader), None
    for i in range(steps + 3):
        if i == 3:
            start = time.perf_counter()   # the first steps warm up allocators and kernels
        batch = next(it)
        loss = model.loss(model(batch), batch)["loss"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    return (time.perf_counter() - start) / steps


def trainer_loop(model, data, steps: int, batch: int) -> float:
    with tempfile.TemporaryDirectory() as run_dir:
        cfg = load_config(None, [f"data.batch_size={batch}", "data.num_workers=0", "logging.progress_bar=false",
                                 "logging.log_every_steps=10", f"trainer.max_steps_per_epoch={steps + 3}",
                                 "logging.tensorboard=true"])
        trainer = Trainer(model, cfg, run_dir, data, data, export_meta={"model": "bench", "model_kwargs": {}},
                          validation=validation_metrics)
        trainer.acc.init_trackers("tensorboard")
        trainer._phase_loader(0)
        step_times = []
        orig = trainer.train_step

        def timed(b):
            t0 = time.perf_counter()
            out = orig(b)
            step_times.append(time.perf_counter() - t0)
            return out
        trainer.train_step = timed
        start = time.perf_counter()
        trainer.train_one_epoch()
        total = time.perf_counter() - start
        trainer.close()
    # whole-epoch time per step (includes data loading, logging, bar) minus the warm-up steps' own time
    return (total - sum(step_times[:3])) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    data = Data(args.batch * (args.steps + 3), args.size)
    bare, ours = [], []
    for _ in range(args.repeats):   # interleaved, best of N: robust to a noisy shared machine
        torch.manual_seed(0)
        model = Net(args.size)
        loader = DataLoader(data, batch_size=args.batch, shuffle=True, num_workers=0, drop_last=True)
        bare.append(bare_loop(model, loader, args.steps))
        torch.manual_seed(0)
        ours.append(trainer_loop(Net(args.size), data, args.steps, args.batch))
    b, t = min(bare), min(ours)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, resnet10t {args.size}px, "
          f"batch {args.batch}, {args.steps} steps")
    print(f"bare PyTorch loop : {b * 1000:8.1f} ms/step")
    print(f"Trainer           : {t * 1000:8.1f} ms/step")
    print(f"ratio Trainer/bare: {t / b:8.3f}  (target <= 1.05)")


if __name__ == "__main__":
    main()
