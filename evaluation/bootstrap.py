"""Bootstrap confidence intervals that resample videos, not frames.

Frames of one video are strongly correlated; resampling frames would pretend there are 32x more
independent samples than there are and give intervals that are far too narrow. Each replicate draws
the videos with replacement (seeded) and keeps all the frames of every drawn video.

Metrics are computed from per-row weights (how many times the row's video was drawn) over scores
sorted once, so 1000 replicates of a few thousand frames take well under a second; a k-class model's
macro one-vs-rest AUC and AP come from one such binary computation per class.
"""
from __future__ import annotations

import numpy as np

from evaluation.metrics import LOG_LOSS_EPS, apply_threshold
from utils.engine.predictions import as_probs

BOOT_METRICS = ("auc", "ap", "eer", "acc", "balanced_acc", "log_loss")
NAN = float("nan")


class _WeightedBinary:
    """Binary metrics of one fixed prediction set under arbitrary non-negative row weights."""

    def __init__(self, score: np.ndarray, labels: np.ndarray, threshold: float, eps: float = LOG_LOSS_EPS):
        self.order = np.argsort(-score, kind="mergesort")
        s = score[self.order]
        self.y = labels[self.order].astype(np.float64)
        self.starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]]) if len(s) else np.zeros(0, int)
        self.correct = ((s >= threshold) == (self.y == 1)).astype(np.float64)
        self.pred = (s >= threshold).astype(np.float64)
        p_true = np.where(self.y == 1, s, 1.0 - s)
        self.nll = -np.log(np.clip(p_true, eps, 1.0 - eps))

    def __call__(self, row_weights: np.ndarray) -> dict[str, float]:
        w = row_weights[self.order]
        wp, wn = w * self.y, w * (1.0 - self.y)
        pos, neg, tot = wp.sum(), wn.sum(), w.sum()
        out = {"acc": float((w * self.correct).sum() / tot) if tot else NAN,
               "log_loss": float((w * self.nll).sum() / tot) if tot else NAN}
        if pos == 0 or neg == 0:
            return {**out, "auc": NAN, "ap": NAN, "eer": NAN, "balanced_acc": NAN}
        gp, gn = np.add.reduceat(wp, self.starts), np.add.reduceat(wn, self.starts)  # tie groups, high->low
        tp, fp = np.cumsum(gp), np.cumsum(gn)
        out["auc"] = float((gp * ((neg - fp) + 0.5 * gn)).sum() / (pos * neg))
        prec = np.divide(tp, tp + fp, out=np.zeros_like(tp), where=(tp + fp) > 0)
        out["ap"] = float((gp / pos * prec).sum())
        fpr, fnr = np.r_[0.0, fp / neg], 1.0 - np.r_[0.0, tp / pos]
        d = fpr - fnr
        i = int(np.searchsorted(d, 0.0))
        out["eer"] = float(fpr[i]) if i == 0 or d[i] == 0 else \
            float(fpr[i - 1] + d[i - 1] / (d[i - 1] - d[i]) * (fpr[i] - fpr[i - 1]))
        tpr_t, tnr_t = (wp * self.pred).sum() / pos, (wn * (1.0 - self.pred)).sum() / neg
        out["balanced_acc"] = float((tpr_t + tnr_t) / 2.0)
        return out


class _WeightedMulticlass:
    """k-class metrics (macro one-vs-rest AUC/AP, accuracy, balanced accuracy, log-loss) under row weights,
    as :func:`evaluation.metrics.compute_metrics` defines them for k > 2."""

    def __init__(self, probs: np.ndarray, labels: np.ndarray, threshold: float | None,
                 eps: float = LOG_LOSS_EPS):
        k = probs.shape[1]
        self.per_class = [_WeightedBinary(probs[:, c], (labels == c).astype(np.int64), 0.5, eps)
                          for c in range(k)]
        pred = apply_threshold(probs, threshold)
        self.truth = [(labels == c).astype(np.float64) for c in range(k)]
        self.hits = [((labels == c) & (pred == c)).astype(np.float64) for c in range(k)]
        self.correct = (pred == labels).astype(np.float64)
        self.nll = -np.log(np.clip(probs[np.arange(len(labels)), labels], eps, 1.0 - eps))

    def __call__(self, w: np.ndarray) -> dict[str, float]:
        tot = w.sum()
        out = {"acc": float((w * self.correct).sum() / tot) if tot else NAN,
               "log_loss": float((w * self.nll).sum() / tot) if tot else NAN, "eer": NAN}
        scores = [b(w) for b in self.per_class]
        aucs = [r["auc"] for r in scores if np.isfinite(r["auc"])]
        out["auc"] = float(np.mean(aucs)) if aucs else NAN
        out["ap"] = float(np.mean([r["ap"] for r in scores if np.isfinite(r["auc"])])) if aucs else NAN
        n = [(w * t).sum() for t in self.truth]
        recalls = [(w * h).sum() / m for h, m in zip(self.hits, n) if m > 0]
        out["balanced_acc"] = float(np.mean(recalls)) if len(recalls) > 1 else NAN
        return out


def _interval(values: np.ndarray, level: float) -> dict[str, float]:
    v = values[np.isfinite(values)]
    if not len(v):
        return {"lo": NAN, "hi": NAN, "std": NAN, "n_valid": 0}
    a = (1.0 - level) / 2.0 * 100.0
    lo, hi = np.percentile(v, [a, 100.0 - a])
    return {"lo": float(lo), "hi": float(hi), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
            "n_valid": int(len(v))}


def bootstrap_ci(probs: np.ndarray, labels: np.ndarray, groups: np.ndarray | None = None, *,
                 threshold: float | None = None, n_boot: int = 1000, seed: int = 0,
                 level: float = 0.95, metrics: tuple[str, ...] = BOOT_METRICS) -> dict[str, dict[str, float]]:
    """Percentile bootstrap intervals of ``metrics``, resampling the units in ``groups``.

    Args:
        probs: N×k probabilities (1-D: P(fake)); labels: N ints.
        groups: N unit ids (video ids for frame rows); None: every row is its own unit (video rows).
        threshold: decision threshold on P(fake) for ``acc``/``balanced_acc`` (binary: default 0.5;
            k > 2: one-vs-rest on the real class, the argmax when None).
        n_boot: replicates; seed: RNG seed (the same seed gives the same intervals).
        level: coverage of the interval (0.95 -> 2.5th and 97.5th percentiles).

    Returns:
        ``{metric: {"lo", "hi", "std", "n_valid"}}``; replicates where a metric is undefined (one
        class drawn) are skipped and ``n_valid`` says how many remained.
    """
    p, y = as_probs(probs), np.asarray(labels, dtype=np.int64)
    if groups is None:
        inv = np.arange(len(y))
    else:
        _, inv = np.unique(np.asarray(groups), return_inverse=True)
    n_units = int(inv.max()) + 1 if len(inv) else 0
    if n_boot <= 0 or n_units == 0:
        return {m: _interval(np.zeros(0), level) for m in metrics}
    rng = np.random.default_rng(seed)
    thr = 0.5 if threshold is None else float(threshold)
    values = {m: np.full(n_boot, NAN) for m in metrics}
    fast = _WeightedBinary(p[:, 1], y, thr) if p.shape[1] == 2 else _WeightedMulticlass(p, y, threshold)
    for b in range(n_boot):
        counts = np.bincount(rng.integers(0, n_units, n_units), minlength=n_units).astype(np.float64)
        res = fast(counts[inv])
        for m in metrics:
            values[m][b] = res.get(m, NAN)
    return {m: _interval(values[m], level) for m in metrics}
