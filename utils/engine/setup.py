"""What the trainer is built from: the Accelerator, seeding, the optimizer, samplers and loaders.

Kept apart from the loop in :mod:`utils.engine.trainer` so each piece reads on its own.
"""
from __future__ import annotations

import logging
import os
import random
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs
from torch.utils.data import DataLoader, Dataset

from utils.core.config import Config
from utils.data.samplers import BalancedSampler
from utils.data.workers import loader_workers
from utils.engine.trackers import build_trackers

logger = logging.getLogger(__name__)


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch (all devices) before anything random is built.

    Same command, same seed, same machine and software: bitwise the same weights on CPU. On CUDA,
    cuDNN autotuning and atomic adds make runs differ in the last bits unless ``deterministic`` is
    set, which also selects deterministic algorithms (slower; an op without one raises).
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


def make_accelerator(cfg: Config, run_dir: Path) -> Accelerator:
    """The Accelerator for a run: mixed precision, accumulation and experiment trackers from the config."""
    return Accelerator(
        mixed_precision=cfg.trainer.mixed_precision,
        gradient_accumulation_steps=cfg.trainer.grad_accum,
        # accelerate only forms a gloo process group (MULTI_CPU) when told cpu=True: without a GPU,
        # say so, so that `accelerate launch --num_processes N` is a real N-process run on CPU too.
        cpu=cfg.trainer.cpu or not torch.cuda.is_available(),
        log_with=build_trackers(cfg, run_dir) or None,   # logging.trackers; a missing package is refused here
        project_dir=str(run_dir),
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=False)],
    )


def build_optimizer(model: torch.nn.Module, cfg: Config) -> torch.optim.Optimizer:
    """AdamW or Nesterov SGD; no weight decay on biases and normalisation parameters."""
    o = cfg.optim
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(p)
    groups = [{"params": decay, "weight_decay": o.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if o.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum, nesterov=True)
    return torch.optim.AdamW(groups, lr=o.lr)


def build_plateau(optimizer: torch.optim.Optimizer, cfg: Config) -> torch.optim.lr_scheduler.ReduceLROnPlateau:
    """ReduceLROnPlateau on the monitored metric (not prepared: a prepared one steps once per process)."""
    return torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode=cfg.trainer.monitor_mode, factor=cfg.optim.plateau_factor,
        patience=cfg.optim.plateau_patience, min_lr=cfg.optim.min_lr)


class EpochSampler(torch.utils.data.Sampler):
    """A permutation that depends only on (seed, epoch): a resumed run sees the same order."""

    def __init__(self, n: int, seed: int, shuffle: bool = True):
        self.n, self.seed, self.shuffle, self.epoch = n, seed, shuffle, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        if not self.shuffle:
            return iter(range(self.n))
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.randperm(self.n, generator=g).tolist())

    def __len__(self) -> int:
        return self.n


def make_loader(dataset: Dataset, cfg: Config, world_size: int, train: bool, cuda: bool) -> DataLoader:
    """The DataLoader of a training or validation set (before ``accelerator.prepare``); its workers are
    ``data.num_workers`` capped at the cores this process can use (:func:`utils.data.workers.loader_workers`)."""
    d = cfg.data
    workers = loader_workers(d.num_workers)
    bs = d.batch_size if train else (d.eval_batch_size or 2 * d.batch_size)
    if train and d.balance != "none":
        sampler = BalancedSampler(dataset.labels, seed=cfg.trainer.seed, mode=d.balance)
    else:
        sampler = EpochSampler(len(dataset), cfg.trainer.seed, shuffle=train)
    # on CUDA: pinned host memory, and workers kept across epochs (datasets read the epoch from shared memory)
    return DataLoader(dataset, batch_size=bs, sampler=sampler, num_workers=workers, pin_memory=cuda,
                      persistent_workers=cuda and workers > 0,
                      drop_last=train and len(sampler) >= 2 * bs * world_size)
