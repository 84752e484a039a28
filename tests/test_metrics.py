"""Metrics agree with scikit-learn, EER on hand-computed cases, degenerate inputs, thresholds."""
import math

import numpy as np
import pytest
from sklearn import metrics as skm

from evaluation.metrics import (choose_threshold, compute_metrics, confusion_matrix, equal_error_rate,
                                log_loss)


def _binary(n=300, seed=0, signal=1.0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p = 1 / (1 + np.exp(-(signal * (2 * y - 1) + rng.standard_normal(n))))
    return np.stack([1 - p, p], 1), y


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_binary_metrics_match_sklearn(seed):
    probs, y = _binary(seed=seed)
    thr = 0.3 + 0.2 * seed
    m = compute_metrics(probs, y, threshold=thr)
    pred = (probs[:, 1] >= thr).astype(int)
    assert m["auc"] == pytest.approx(skm.roc_auc_score(y, probs[:, 1]))
    assert m["ap"] == pytest.approx(skm.average_precision_score(y, probs[:, 1]))
    assert m["acc"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["balanced_acc"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, np.clip(probs, 0.01, 0.99)))
    assert m["pred_fake_rate"] == pytest.approx(pred.mean())
    assert m["threshold"] == thr
    # EER: fpr == fnr at the crossing, checked against sklearn's curve
    fpr, tpr, _ = skm.roc_curve(y, probs[:, 1])
    i = np.argmin(np.abs(fpr - (1 - tpr)))
    assert abs(m["eer"] - (fpr[i] + 1 - tpr[i]) / 2) < 0.02


def test_multiclass_metrics_match_sklearn():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 400)
    logits = rng.standard_normal((400, 3)) + 1.5 * np.eye(3)[y]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    m = compute_metrics(probs, y)
    assert m["auc"] == pytest.approx(skm.roc_auc_score(y, probs, multi_class="ovr", average="macro"))
    assert m["acc"] == pytest.approx(skm.accuracy_score(y, probs.argmax(1)))
    assert m["balanced_acc"] == pytest.approx(skm.balanced_accuracy_score(y, probs.argmax(1)))
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, probs))  # nothing below 0.01 here: no clipping
    assert sum(m[f"pred_share_{c}"] for c in range(3)) == pytest.approx(1.0)
    cm = confusion_matrix(probs, y)
    assert (cm == skm.confusion_matrix(y, probs.argmax(1))).all()


def test_eer_hand_computed():
    # scores high->low: 0.8 F, 0.4 R, 0.35 F, 0.1 R. At threshold 0.35: fpr = 1/2, fnr = 0; at 0.4:
    # fpr = 1/2, fnr = 1/2 -> EER exactly 0.5
    assert equal_error_rate(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])) == pytest.approx(0.5)
    # 0.9 F, 0.7 R, 0.6 R, 0.5 F, 0.1 R: fnr stays 1/2 while fpr goes 1/3 -> 2/3; they meet at 0.5
    s = np.array([0.1, 0.6, 0.7, 0.5, 0.9])
    assert equal_error_rate(s, np.array([0, 0, 0, 1, 1])) == pytest.approx(0.5)
    # one real above one of four fakes: 0.9 F 0.8 F 0.7 F 0.6 R 0.5 F ...: fpr = fnr = 1/4
    s = np.array([0.1, 0.2, 0.3, 0.6, 0.5, 0.7, 0.8, 0.9])
    assert equal_error_rate(s, np.array([0, 0, 0, 0, 1, 1, 1, 1])) == pytest.approx(0.25)
    assert equal_error_rate(np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 1])) == 0.0


def test_one_class_gives_nan_and_a_warning_not_a_crash():
    probs, _ = _binary(50)
    warnings = []
    m = compute_metrics(probs, np.ones(50, int), warnings=warnings)
    assert math.isnan(m["auc"]) and math.isnan(m["eer"]) and math.isnan(m["balanced_acc"])
    assert 0 <= m["acc"] <= 1 and math.isfinite(m["log_loss"])
    assert warnings and "one class" in warnings[0]
    m3 = compute_metrics(np.full((10, 3), 1 / 3), np.zeros(10, int), warnings=warnings)
    assert math.isnan(m3["auc"]) and m3["acc"] == 1.0
    empty = compute_metrics(np.zeros((0, 2)), np.zeros(0, int), warnings=[])
    assert math.isnan(empty["acc"])


def test_log_loss_is_clipped_like_dfdc():
    assert log_loss(np.array([[0.0, 1.0]]), np.array([0])) == pytest.approx(-math.log(0.01))
    assert log_loss(np.array([[1.0, 0.0]]), np.array([0])) == pytest.approx(-math.log(0.99))


def test_bad_input_is_explained():
    with pytest.raises(ValueError, match="labels"):
        compute_metrics(np.full((3, 2), 0.5), np.array([0, 1]))
    with pytest.raises(ValueError, match="NaN"):
        compute_metrics(np.array([[np.nan, 1.0]]), np.array([1]))
    with pytest.raises(ValueError, match="rule"):
        choose_threshold(np.full((3, 2), 0.5), np.array([0, 1, 1]), rule="f1")


def test_threshold_chosen_on_validation_differs_from_half():
    # a model whose scores are all shifted low: reals ~0.1, fakes ~0.3 (perfectly separable at 0.2)
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 50)
    p = np.where(y == 1, 0.3, 0.1) + 0.03 * rng.standard_normal(100)
    thr = choose_threshold(p, y)
    assert 0.12 < thr < 0.28, thr
    assert compute_metrics(p, y, thr)["balanced_acc"] == 1.0
    assert compute_metrics(p, y, 0.5)["balanced_acc"] == 0.5
    thr_eer = choose_threshold(p, y, rule="eer")
    assert compute_metrics(p, y, thr_eer)["acc"] == 1.0
    # one class only: nothing to choose, 0.5 is kept
    assert choose_threshold(p[:50], y[:50]) == 0.5
