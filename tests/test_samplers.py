"""Class weights against sklearn; the balanced sampler under 2 ranks."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from sklearn.utils.class_weight import compute_class_weight
from torch.utils.data import DataLoader

from utils.data.samplers import BalancedSampler
from utils.core.losses import balanced_class_weights as class_weights


@pytest.mark.parametrize("counts", [(30, 100), (5, 9, 12), (1, 1)])
def test_class_weights_match_sklearn(counts):
    labels = np.repeat(np.arange(len(counts)), counts)
    np.random.default_rng(0).shuffle(labels)
    expected = compute_class_weight("balanced", classes=np.arange(len(counts)), y=labels)
    got = class_weights(labels.tolist(), num_classes=len(counts))
    assert got.dtype == torch.float32
    assert torch.allclose(got, torch.tensor(expected, dtype=torch.float32))


def test_class_weights_errors():
    with pytest.raises(ValueError, match=r"class\(es\) \[1\] have no training samples"):
        class_weights([0, 0, 0], num_classes=2)
    with pytest.raises(ValueError, match="must lie in"):
        class_weights([0, 1, 2], num_classes=2)


def shards(labels, seed, epoch, world=2, **kw):
    out = []
    for rank in range(world):
        s = BalancedSampler(labels, seed=seed, num_replicas=world, rank=rank, **kw)
        s.set_epoch(epoch)
        out.append(list(s))
        assert len(s) == len(out[-1])
    return out


def test_two_ranks_disjoint_equal_balanced():
    labels = [0] * 30 + [1] * 100
    a, b = shards(labels, seed=7, epoch=0)
    assert len(a) == len(b) == 30
    assert not set(a) & set(b)                                   # disjoint shards
    both = a + b
    assert len(set(both)) == 60
    assert Counter(labels[i] for i in both) == {0: 30, 1: 30}      # majority down-sampled to the minority
    assert shards(labels, seed=7, epoch=0) == [a, b]              # same seed + epoch: same shards
    a1, b1 = shards(labels, seed=7, epoch=1)
    assert a1 != a and set(a1 + b1) != set(both)                  # fakes re-drawn each epoch
    assert shards(labels, seed=8, epoch=0) != [a, b]
    seen = set()
    for epoch in range(6):
        seen |= set(sum(shards(labels, seed=7, epoch=epoch), []))
    assert len(seen) > 90                                         # over epochs most fakes are used


def test_padding_three_classes_and_single_replica():
    labels = [0] * 5 + [1] * 9 + [2] * 12                         # 3 x 5 = 15 items over 2 ranks
    a, b = shards(labels, seed=0, epoch=3)
    assert len(a) == len(b) == 8                                  # padded by wrapping
    assert set(a) | set(b) == set(a + b) and len(set(a + b)) == 15
    assert Counter(labels[i] for i in set(a + b)) == {0: 5, 1: 5, 2: 5}
    whole = BalancedSampler(labels, seed=0)
    whole.set_epoch(3)
    full = list(whole)
    assert len(full) == len(whole) == 15 and full[0::2] == a and full[1::2] == b[:7]


def test_oversample_and_dataloader():
    labels = [0] * 4 + [1] * 10
    s = BalancedSampler(labels, seed=1, mode="oversample")
    drawn = list(s)
    assert Counter(labels[i] for i in drawn) == {0: 10, 1: 10} and set(range(14)) <= set(drawn)
    batches = list(DataLoader(torch.arange(14), batch_size=4, sampler=BalancedSampler(labels, seed=1)))
    assert sum(len(b) for b in batches) == 8
    with pytest.raises(ValueError, match="at least 2 classes"):
        BalancedSampler([1, 1, 1])
    with pytest.raises(ValueError, match="rank 2"):
        BalancedSampler(labels, num_replicas=2, rank=2)
