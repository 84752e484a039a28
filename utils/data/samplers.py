"""Class balancing: "balanced" class weights and a DDP-aware class-balanced sampler.

``WeightedRandomSampler`` is not DDP-aware: every rank would draw its own list. Here the balanced
list is drawn from ``(seed, epoch)`` alone, identical on every rank, and then sharded, so the
ranks see disjoint parts of one epoch. Determinism is also what makes mid-epoch resume work: the
trainer re-creates the same epoch and skips the batches already done.
"""
from __future__ import annotations

import math
from typing import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler

MODES = ("undersample", "oversample")


class BalancedSampler(Sampler[int]):
    """Each epoch a seeded, class-balanced draw of indices, shuffled, then sharded by rank.

    Args:
        labels: the label of every dataset item (k >= 2 classes present).
        seed: with the epoch, the only source of randomness: all ranks draw the same list.
        num_replicas: number of shards (the world size); 1 when a launcher shards the loader itself.
        rank: which shard this sampler yields.
        mode: ``undersample``: every class down to the smallest class's count, re-drawn each epoch
            (the DFDC winner's recipe); ``oversample``: every class up to the largest, with repeats.

    The list is padded by wrapping around so every shard has the same length (ranks must run the
    same number of steps); :meth:`set_epoch` selects the draw.
    """

    def __init__(self, labels: Sequence[int], seed: int = 0, num_replicas: int = 1, rank: int = 0,
                 mode: str = "undersample"):
        if mode not in MODES:
            raise ValueError(f"mode '{mode}' is not one of {MODES}")
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is not in [0, num_replicas={num_replicas})")
        y = np.asarray(labels, dtype=np.int64).reshape(-1)
        classes = np.unique(y)
        if len(classes) < 2:
            raise ValueError(f"a balanced sampler needs at least 2 classes, got {classes.tolist()} "
                             f"over {len(y)} items")
        self.by_class = [np.flatnonzero(y == c) for c in classes]
        sizes = [len(ix) for ix in self.by_class]
        self.per_class = min(sizes) if mode == "undersample" else max(sizes)
        self.seed, self.num_replicas, self.rank, self.mode = seed, num_replicas, rank, mode
        self.epoch = 0
        self.total = len(classes) * self.per_class
        self.shard_len = math.ceil(self.total / num_replicas)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def epoch_indices(self) -> np.ndarray:
        """The full, unsharded, unpadded balanced list of this epoch (the same on every rank)."""
        rng = np.random.default_rng([self.seed, self.epoch])
        parts = []
        for ix in self.by_class:
            if self.per_class <= len(ix):
                parts.append(rng.choice(ix, self.per_class, replace=False))
            else:  # oversample: every item once, the rest drawn with repeats
                parts.append(np.concatenate([ix, rng.choice(ix, self.per_class - len(ix), replace=True)]))
        return rng.permutation(np.concatenate(parts))

    def __iter__(self) -> Iterator[int]:
        indices = self.epoch_indices()
        padded = np.resize(indices, self.shard_len * self.num_replicas)  # wraps around
        return iter(padded[self.rank::self.num_replicas].tolist())

    def __len__(self) -> int:
        return self.shard_len
