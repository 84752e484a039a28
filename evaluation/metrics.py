"""Classification metrics for binary and k-class detectors, robust to degenerate inputs.

``probs`` is always N×k softmax probabilities (binary: column 1 = P(fake), label 0 = real, 1 = fake).
A metric that is undefined for the input (one class only, e.g. a validation shard of fakes) is
``NaN``, never an exception; the reason goes to the optional ``warnings`` list, or to the log.

Log-loss clips the probability of the true class to ``[eps, 1 - eps]`` with ``eps = 1e-2`` by
default, as the DFDC challenge scored submissions: one confident mistake then costs at most
``-log(0.01) ≈ 4.6`` instead of infinity.
"""
from __future__ import annotations

import logging
import math

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from utils.engine.predictions import as_probs

logger = logging.getLogger(__name__)

LOG_LOSS_EPS = 1e-2
THRESHOLD_RULES = ("balanced_acc", "eer")
NAN = float("nan")


def _check(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = as_probs(probs)
    y = np.asarray(labels).astype(np.int64).reshape(-1)
    if len(y) != len(p):
        raise ValueError(f"{len(p)} probability rows but {len(y)} labels")
    if len(y) and (y.min() < 0 or y.max() >= p.shape[1]):
        raise ValueError(f"labels must lie in [0, {p.shape[1] - 1}], got [{y.min()}, {y.max()}]")
    return p, y


def _warn(msg: str, warnings: list[str] | None) -> None:
    """Collect ``msg`` in ``warnings`` when the caller keeps a list (it reports them), else log it."""
    if warnings is None:
        logger.warning(msg)
    else:
        warnings.append(msg)


def apply_threshold(probs: np.ndarray, threshold: float | None = None) -> np.ndarray:
    """Hard predictions.

    Binary: fake when P(fake) >= threshold (default 0.5). k > 2 with a threshold: one-vs-rest on the
    real class -- real when P(fake) = 1 - P(real) < threshold, else the most probable fake class (for
    k = 2 this is the binary rule); without a threshold: the argmax.
    """
    p = as_probs(probs)
    if p.shape[1] == 2:
        return (p[:, 1] >= (0.5 if threshold is None else threshold)).astype(np.int64)
    if threshold is None:
        return p.argmax(axis=1)
    fake = 1.0 + p[:, 1:].argmax(axis=1)
    return np.where(1.0 - p[:, 0] >= threshold, fake, 0).astype(np.int64)


def per_class(y: np.ndarray, pred: np.ndarray, k: int) -> dict[str, float]:
    """Recall, precision and F1 of every class (``recall_<c>`` ...) and their macro-F1 (classes present)."""
    out: dict[str, float] = {}
    f1s = []
    for c in range(k):
        tp = float(np.sum((y == c) & (pred == c)))
        n_true, n_pred = float(np.sum(y == c)), float(np.sum(pred == c))
        recall = tp / n_true if n_true else NAN
        precision = tp / n_pred if n_pred else (NAN if not n_true else 0.0)
        f1 = 2 * tp / (n_true + n_pred) if n_true + n_pred else NAN
        out.update({f"recall_{c}": recall, f"precision_{c}": precision, f"f1_{c}": f1})
        if n_true:
            f1s.append(f1)
    out["macro_f1"] = float(np.mean(f1s)) if f1s else NAN
    return out


def equal_error_rate(scores: np.ndarray, labels: np.ndarray) -> float:
    """EER: the rate where false positives equal false negatives, linearly interpolated on the ROC."""
    y = np.asarray(labels).astype(np.int64)
    if len(np.unique(y)) < 2:
        return NAN
    fpr, tpr, _ = roc_curve(y, scores)
    fnr = 1.0 - tpr
    d = fpr - fnr  # increasing from -1 to +1 along the curve
    i = int(np.searchsorted(d, 0.0))  # first point with fpr >= fnr
    if i == 0 or d[i] == 0:
        return float(fpr[i])
    t = d[i - 1] / (d[i - 1] - d[i])
    return float(fpr[i - 1] + t * (fpr[i] - fpr[i - 1]))


def log_loss(probs: np.ndarray, labels: np.ndarray, eps: float = LOG_LOSS_EPS) -> float:
    """Mean negative log probability of the true class, clipped to ``[eps, 1 - eps]``."""
    p, y = _check(probs, labels)
    if not len(y):
        return NAN
    p_true = np.clip(p[np.arange(len(y)), y], eps, 1.0 - eps)
    return float(-np.log(p_true).mean())


def _balanced_accuracy(y: np.ndarray, pred: np.ndarray, classes: np.ndarray) -> float:
    recalls = [np.mean(pred[y == c] == c) for c in classes]
    return float(np.mean(recalls)) if recalls else NAN


def _binary_metrics(p: np.ndarray, y: np.ndarray, threshold: float, warnings: list[str] | None) -> dict:
    score = p[:, 1]
    pred = (score >= threshold).astype(np.int64)
    n_fake = int(y.sum())
    out = {"threshold": float(threshold), "n": len(y), "n_real": len(y) - n_fake, "n_fake": n_fake}
    both = 0 < n_fake < len(y)
    if not both and len(y):
        _warn(f"only one class among {len(y)} labels (fake={n_fake}): AUC, AP, EER and balanced "
              "accuracy are undefined (NaN)", warnings)
    out["auc"] = float(roc_auc_score(y, score)) if both else NAN
    out["ap"] = float(average_precision_score(y, score)) if both else NAN
    out["eer"] = equal_error_rate(score, y) if both else NAN
    out["acc"] = float(np.mean(pred == y)) if len(y) else NAN
    out["balanced_acc"] = _balanced_accuracy(y, pred, np.array([0, 1])) if both else NAN
    out["tpr"] = float(np.mean(pred[y == 1] == 1)) if n_fake else NAN    # fakes caught
    out["tnr"] = float(np.mean(pred[y == 0] == 0)) if n_fake < len(y) else NAN  # reals passed
    out["log_loss"] = log_loss(p, y)
    out.update(per_class(y, pred, 2))
    out["pred_fake_rate"] = float(pred.mean()) if len(y) else NAN
    out["label_fake_rate"] = n_fake / len(y) if len(y) else NAN
    out["mean_p_fake"] = float(score.mean()) if len(y) else NAN
    return out


def _multiclass_metrics(p: np.ndarray, y: np.ndarray, threshold: float | None,
                        warnings: list[str] | None) -> dict:
    k = p.shape[1]
    pred = apply_threshold(p, threshold)
    present = np.unique(y)
    out: dict = {"n": len(y), "threshold": NAN if threshold is None else float(threshold)}
    aucs, aps = [], []
    for c in range(k):
        pos = y == c
        out[f"auc_{c}"] = NAN
        if 0 < pos.sum() < len(y):
            out[f"auc_{c}"] = float(roc_auc_score(pos, p[:, c]))
            aucs.append(out[f"auc_{c}"])
            aps.append(average_precision_score(pos, p[:, c]))
    if len(aucs) < k and len(y):
        _warn(f"{k - len(aucs)} of {k} classes are absent (or the only one present) among {len(y)} "
              "labels: macro AUC/AP average over the others (NaN when none)", warnings)
    out["auc"] = float(np.mean(aucs)) if aucs else NAN
    out["ap"] = float(np.mean(aps)) if aps else NAN
    out["acc"] = float(np.mean(pred == y)) if len(y) else NAN
    out["balanced_acc"] = _balanced_accuracy(y, pred, present) if len(present) > 1 else NAN
    out["log_loss"] = log_loss(p, y)
    out.update(per_class(y, pred, k))
    real = y == 0   # any fake vs real, at the one-vs-rest threshold: the verdict predict gives
    both = 0 < real.sum() < len(y)
    out["auc_fake"] = float(roc_auc_score(~real, 1.0 - p[:, 0])) if both else NAN
    out["tpr"] = float(np.mean(pred[~real] > 0)) if (~real).any() else NAN
    out["tnr"] = float(np.mean(pred[real] == 0)) if real.any() else NAN
    for c in range(k):
        out[f"n_{c}"] = int(np.sum(y == c))
        out[f"pred_share_{c}"] = float(np.mean(pred == c)) if len(y) else NAN
        out[f"label_share_{c}"] = float(np.mean(y == c)) if len(y) else NAN
    return out


def compute_metrics(probs: np.ndarray, labels: np.ndarray, threshold: float | None = None,
                    warnings: list[str] | None = None) -> dict[str, float]:
    """Every scalar metric of a prediction set.

    Args:
        probs: N×k softmax probabilities (binary: column 1 = P(fake)); 1-D is read as P(fake).
        labels: N integer labels (0 = real, 1 = fake for binary models).
        threshold: decision threshold on P(fake) (binary: fake when P(fake) >= threshold, default
            0.5; k > 2: one-vs-rest on the real class, the argmax when None; see :func:`apply_threshold`).
        warnings: if given, the reasons for undefined (NaN) metrics are appended to it (and not
            logged); otherwise they are logged as warnings.

    Returns:
        Binary: ``auc ap eer acc balanced_acc tpr tnr log_loss macro_f1 pred_fake_rate label_fake_rate
        mean_p_fake threshold n n_real n_fake``. k-class: ``auc ap`` (macro one-vs-rest) ``acc
        balanced_acc log_loss macro_f1 auc_fake tpr tnr threshold n``. Both, per class: ``recall_<c>
        precision_<c> f1_<c>``; k-class also ``auc_<c>`` (one-vs-rest) ``n_<c> pred_share_<c>
        label_share_<c>``.
    """
    p, y = _check(probs, labels)
    if not len(y):
        _warn("no predictions to score: every metric is NaN", warnings)
    if p.shape[1] == 2:
        return _binary_metrics(p, y, 0.5 if threshold is None else float(threshold), warnings)
    return _multiclass_metrics(p, y, None if threshold is None else float(threshold), warnings)


def confusion_matrix(probs: np.ndarray, labels: np.ndarray, threshold: float | None = None) -> np.ndarray:
    """k×k counts, rows = true class, columns = predicted class."""
    p, y = _check(probs, labels)
    pred = apply_threshold(p, threshold)
    k = p.shape[1]
    return np.bincount(y * k + pred, minlength=k * k).reshape(k, k)


def choose_threshold(probs: np.ndarray, labels: np.ndarray, rule: str = "balanced_acc") -> float:
    """Pick the decision threshold on P(fake) from validation predictions (k > 2: real vs the rest).

    ``balanced_acc`` maximises (TPR + TNR) / 2; ``eer`` makes false-positive and false-negative rates
    as equal as possible. The threshold returned sits midway between the two neighbouring validation
    scores (same decisions on validation, more margin on new data); ties go to the one nearest 0.5.
    With one class only there is nothing to choose from: 0.5 is returned and a warning logged.
    """
    if rule not in THRESHOLD_RULES:
        raise ValueError(f"unknown threshold rule '{rule}'; choose one of {THRESHOLD_RULES}")
    p, y = _check(probs, labels)
    if p.shape[1] > 2:   # one-vs-rest on the real class: any fake vs real
        p, y = np.stack([p[:, 0], 1.0 - p[:, 0]], axis=1), (y > 0).astype(np.int64)
    if len(np.unique(y)) < 2:
        logger.warning("choose_threshold: validation labels hold one class only; keeping 0.5")
        return 0.5
    fpr, tpr, thr = roc_curve(y, p[:, 1], drop_intermediate=False)
    # point i predicts fake iff score >= thr[i]; every threshold in (thr[i+1], thr[i]] does the same
    lower = np.append(thr[1:], 0.0)
    upper = np.where(np.isfinite(thr), thr, np.maximum(thr[1] if len(thr) > 1 else 1.0, 1.0) + 1e-6)
    cand = np.where(np.isfinite(thr), (thr + lower) / 2.0, upper)
    if rule == "balanced_acc":
        gain = (tpr + 1.0 - fpr) / 2.0
    else:
        gain = -np.abs(fpr - (1.0 - tpr))
    best = np.flatnonzero(np.isclose(gain, gain.max(), rtol=0, atol=1e-12))
    pick = best[np.argmin(np.abs(cand[best] - 0.5))]
    return float(cand[pick])


def finite(metrics: dict) -> dict[str, float]:
    """The entries of ``metrics`` that are finite numbers (what TensorBoard can plot)."""
    return {k: float(v) for k, v in metrics.items()
            if isinstance(v, (int, float, np.floating, np.integer)) and not isinstance(v, bool)
            and math.isfinite(float(v))}
