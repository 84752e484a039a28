"""Normalisation from the training data: mean and std of the training split's real images.

``data.normalization: backbone`` (the default) normalises with the backbone's own statistics (timm's
data config, ImageNet's for most). ``real_train`` measures them instead on the pixels the model is
trained on -- its crops of the training split's *real* records (fakes would pull the statistics
towards their artefacts), with the evaluation transforms (no augmentation) -- per channel, in [0, 1]
units, accumulated in float64. The run's records decide what "the training split" is, so a
cross-validation fold gets the statistics of its own training part. The values go into the
checkpoint's sidecar (``normalization``) and every later load (evaluation, prediction) uses them.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from utils.core.config import DataConfig
from utils.core.errors import InputError
from utils.core.model import InputSpec
from utils.data.datasets import build_dataset
from utils.data.records import VideoRecord
from utils.data.workers import loader_workers

logger = logging.getLogger(__name__)


def pixel_stats(batches) -> tuple[list[float], list[float], int]:
    """Per-channel mean and (population) std of uint8 images ``…×3×H×W`` from an iterable, in [0, 1]."""
    total = np.zeros(3)
    squares = np.zeros(3)
    count, images = 0, 0
    for x in batches:
        x = x.reshape(-1, 3, *x.shape[-2:]).to(torch.float64) / 255.0
        total += x.sum(dim=(0, 2, 3)).numpy()
        squares += (x * x).sum(dim=(0, 2, 3)).numpy()
        count += x.shape[0] * x.shape[2] * x.shape[3]
        images += x.shape[0]
    if not count:
        raise InputError("no pixels to measure")
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean * mean, 0.0))
    return mean.tolist(), std.tolist(), images


def real_train_stats(cache_dir: str | Path, records: list[VideoRecord], spec: InputSpec,
                     data: DataConfig) -> dict:
    """``{"source": "real_train", "mean", "std", "n_images"}`` over the training reals of ``records``.

    Raises:
        InputError: the training split holds no real record with a stored frame.
    """
    reals = [r for r in records if r.split == "train" and r.label == 0]
    if not reals:
        raise InputError("data.normalization=real_train: the training split has no real videos or images")
    ds = build_dataset(cache_dir, reals, spec, data, train=False, synthesize=False)
    loader = DataLoader(ds, batch_size=data.eval_batch_size or 2 * data.batch_size, shuffle=False,
                        num_workers=loader_workers(data.num_workers))
    key = "clip" if spec.clip_len > 1 else "image"
    mean, std, n = pixel_stats(batch[key] for batch in loader)
    logger.info("normalisation from %d training real image(s): mean %s, std %s", n,
                [round(v, 4) for v in mean], [round(v, 4) for v in std])
    return {"source": "real_train", "mean": mean, "std": std, "n_images": n}
