"""Classification losses for k >= 2 classes; the stage recipe picks one by name.

Losses are plain callables ``loss(logits, labels) -> scalar`` rather than modules, so nothing they hold
(class weights) ever lands in a model's state dict. Logits are cast to fp32: under fp16/bf16 autocast
the log-softmax of a confident model otherwise underflows.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def balanced_class_weights(labels: Sequence[int], num_classes: int) -> torch.Tensor:
    """``n / (k * count_c)`` per class, as sklearn's ``compute_class_weight("balanced")``.

    Raises:
        ValueError: a label outside [0, k), or a class with no sample (its weight would be infinite):
            the training index is missing a class, e.g. a DFDC chunk list or ``max_videos_per_split``
            that left no reals.
    """
    y = np.asarray(labels, dtype=np.int64).reshape(-1)
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        bad = sorted(set(y.tolist()) - set(range(num_classes)))
        raise ValueError(f"labels must lie in [0, {num_classes}), got values {bad}")
    counts = np.bincount(y, minlength=num_classes)
    empty = [c for c in range(num_classes) if counts[c] == 0]
    if empty:
        raise ValueError(f"class(es) {empty} have no training samples (counts per class: {counts.tolist()}); "
                         "balanced class weights need every class present in the training index")
    return torch.tensor(counts.sum() / (num_classes * counts), dtype=torch.float32)


class CrossEntropy:
    """Cross-entropy with optional class weights and label smoothing."""

    def __init__(self, weight: torch.Tensor | None = None, label_smoothing: float = 0.0):
        self.weight = weight
        self.label_smoothing = label_smoothing

    def __call__(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        w = None if self.weight is None else self.weight.to(logits.device)
        return F.cross_entropy(logits.float(), labels, weight=w, label_smoothing=self.label_smoothing)


class FocalLoss:
    """Multi-class focal loss: mean of -alpha_y (1 - p_y)^gamma log p_y (Lin et al., 2017).

    ``alpha`` is a per-class weight vector (or None). For binary problems a scalar ``alpha`` weights
    class 1 (fake) by alpha and class 0 by 1 - alpha, as torchvision's ``sigmoid_focal_loss`` does.
    """

    def __init__(self, gamma: float = 2.0, alpha: float | torch.Tensor | None = None, num_classes: int = 2):
        self.gamma = gamma
        if isinstance(alpha, (int, float)):
            if num_classes != 2:
                raise ValueError("a scalar focal alpha is only defined for 2 classes; give one weight per class")
            alpha = torch.tensor([1.0 - alpha, float(alpha)])
        self.alpha = alpha

    def __call__(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        logp = F.log_softmax(logits.float(), dim=-1).gather(1, labels[:, None]).squeeze(1)
        loss = -((1.0 - logp.exp()).clamp(min=0) ** self.gamma) * logp
        if self.alpha is not None:
            loss = loss * self.alpha.to(logits.device)[labels]
        return loss.mean()


class ClassMeanLoss:
    """Mean over the classes present in the batch of each class's mean cross-entropy.

    The DFDC winner's "balanced batch" loss: an imbalanced batch cannot be won by predicting the
    majority class, whatever the sampler did.
    """

    def __init__(self, label_smoothing: float = 0.0):
        self.label_smoothing = label_smoothing

    def __call__(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        per = F.cross_entropy(logits.float(), labels, reduction="none", label_smoothing=self.label_smoothing)
        k = logits.shape[-1]
        counts = torch.bincount(labels, minlength=k).float()
        sums = torch.zeros(k, device=logits.device, dtype=per.dtype).index_add_(0, labels, per)
        present = counts > 0
        return (sums[present] / counts[present]).mean()


def build_loss(name: str, num_classes: int = 2, labels: Sequence[int] | None = None, *,
               label_smoothing: float = 0.0, focal_gamma: float = 2.0,
               focal_alpha: float | None = None) -> Loss:
    """Build the classification loss ``name`` (ce | weighted_ce | focal | class_mean).

    ``labels`` (the training labels) are needed by ``weighted_ce`` for the "balanced" class weights.
    """
    if name == "ce":
        return CrossEntropy(label_smoothing=label_smoothing)
    if name == "weighted_ce":
        if labels is None:
            raise ValueError("loss 'weighted_ce' needs the training labels to compute class weights")
        return CrossEntropy(balanced_class_weights(labels, num_classes), label_smoothing)
    if name == "focal":
        return FocalLoss(focal_gamma, focal_alpha, num_classes)
    if name == "class_mean":
        return ClassMeanLoss(label_smoothing)
    raise ValueError(f"unknown loss '{name}'; valid: ce, weighted_ce, focal, class_mean")
