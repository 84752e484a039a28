"""Losses for k >= 2 classes agree with their definitions and with scikit-learn's class weights."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.utils.class_weight import compute_class_weight

from utils.core.losses import build_loss

torch.manual_seed(0)


@pytest.mark.parametrize("k", [2, 3])
def test_weighted_ce_uses_sklearn_balanced_weights(k):
    labels = [0] * 10 + [1] * 30 + ([2] * 5 if k == 3 else [])
    expected = compute_class_weight("balanced", classes=np.arange(k), y=np.array(labels))
    loss = build_loss("weighted_ce", k, labels)
    assert torch.allclose(loss.weight, torch.tensor(expected, dtype=torch.float32))
    logits, y = torch.randn(16, k), torch.randint(0, k, (16,))
    assert torch.isclose(loss(logits, y), F.cross_entropy(logits, y, weight=loss.weight))


def test_weighted_ce_needs_every_class():
    with pytest.raises(ValueError, match=r"class\(es\) \[1\]"):
        build_loss("weighted_ce", 2, [0, 0, 0])


@pytest.mark.parametrize("k", [2, 3])
def test_focal_reduces_to_ce_at_gamma_zero_and_downweights_easy_samples(k):
    logits, y = torch.randn(32, k), torch.randint(0, k, (32,))
    assert torch.isclose(build_loss("focal", k, focal_gamma=0.0)(logits, y), F.cross_entropy(logits, y))
    easy = torch.zeros(1, k)
    easy[0, 0] = 8.0
    hard = torch.zeros(1, k)
    target = torch.tensor([0])
    ratio_easy = build_loss("focal", k)(easy, target) / F.cross_entropy(easy, target)
    ratio_hard = build_loss("focal", k)(hard, target) / F.cross_entropy(hard, target)
    assert ratio_easy < 1e-3 < ratio_hard


def test_class_mean_loss_is_the_mean_of_class_means():
    logits, y = torch.randn(10, 3), torch.tensor([0, 0, 0, 0, 0, 0, 0, 1, 1, 2])
    per = F.cross_entropy(logits, y, reduction="none")
    expected = (per[y == 0].mean() + per[y == 1].mean() + per[y == 2].mean()) / 3
    assert torch.isclose(build_loss("class_mean", 3)(logits, y), expected)


def test_label_smoothing_and_unknown_loss():
    logits, y = torch.randn(8, 2), torch.randint(0, 2, (8,))
    assert torch.isclose(build_loss("ce", label_smoothing=0.1)(logits, y),
                         F.cross_entropy(logits, y, label_smoothing=0.1))
    with pytest.raises(ValueError, match="valid: ce, weighted_ce, focal, class_mean"):
        build_loss("hinge")
