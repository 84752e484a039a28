"""DeLong's AUC variance and paired test (DeLong, DeLong and Clarke-Pearson, Biometrics 1988).

The AUC is the Mann-Whitney statistic; its variance comes from the structural components (each
positive's share of negatives it outranks, each negative's share of positives that outrank it). Two
scores on the same videos (two models, paired) have correlated AUCs; the test of their difference
uses the covariance of their components. Ranks follow Sun and Xu's fast algorithm (IEEE SPL 2014):
midranks, O(n log n). Ties count one half.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.stats import norm, rankdata


def _components(pos: np.ndarray, neg: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """(AUC, V10 per positive, V01 per negative) of one score."""
    m, n = len(pos), len(neg)
    all_ranks = rankdata(np.r_[pos, neg])
    pos_ranks, neg_ranks = rankdata(pos), rankdata(neg)
    auc = (all_ranks[:m].sum() - m * (m + 1) / 2) / (m * n)
    v10 = (all_ranks[:m] - pos_ranks) / n
    v01 = 1.0 - (all_ranks[m:] - neg_ranks) / m
    return float(auc), v10, v01


def auc_variance(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(AUC, DeLong variance) of ``scores`` for binary ``labels`` (NaN when one class is absent)."""
    s, y = np.asarray(scores, dtype=np.float64), np.asarray(labels).astype(bool)
    pos, neg = s[y], s[~y]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan"), float("nan")
    auc, v10, v01 = _components(pos, neg)
    var = (v10.var(ddof=1) / len(pos) if len(pos) > 1 else 0.0) + (v01.var(ddof=1) / len(neg) if len(neg) > 1 else 0.0)
    return auc, float(var)


def auc_interval(scores: np.ndarray, labels: np.ndarray, level: float = 0.95) -> dict:
    """AUC with its DeLong normal interval, clipped to [0, 1]."""
    auc, var = auc_variance(scores, labels)
    half = norm.ppf(0.5 + level / 2) * math.sqrt(var) if np.isfinite(var) else float("nan")
    return {"auc": auc, "lo": max(0.0, auc - half) if np.isfinite(half) else float("nan"),
            "hi": min(1.0, auc + half) if np.isfinite(half) else float("nan"), "se": math.sqrt(var)
            if np.isfinite(var) else float("nan"), "method": "delong"}


def delong_paired(scores_a: np.ndarray, scores_b: np.ndarray, labels: np.ndarray) -> dict:
    """DeLong's test of AUC(b) - AUC(a) for two scores of the same videos: z and two-sided p."""
    a, b = np.asarray(scores_a, dtype=np.float64), np.asarray(scores_b, dtype=np.float64)
    y = np.asarray(labels).astype(bool)
    m, n = int(y.sum()), int((~y).sum())
    if m < 2 or n < 2:
        return {"auc_a": float("nan"), "auc_b": float("nan"), "diff": float("nan"), "se": float("nan"),
                "z": float("nan"), "p": float("nan")}
    auc_a, v10_a, v01_a = _components(a[y], a[~y])
    auc_b, v10_b, v01_b = _components(b[y], b[~y])
    s10, s01 = np.cov(np.stack([v10_a, v10_b])), np.cov(np.stack([v01_a, v01_b]))
    cov = s10 / m + s01 / n
    var = cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]
    diff = auc_b - auc_a
    se = math.sqrt(max(var, 0.0))
    z = diff / se if se > 0 else (0.0 if diff == 0 else math.copysign(math.inf, diff))
    return {"auc_a": auc_a, "auc_b": auc_b, "diff": diff, "se": se, "z": float(z),
            "p": float(2 * norm.sf(abs(z)))}


def auc_score(scores: np.ndarray, labels: np.ndarray) -> float:
    """The AUC (Mann-Whitney, ties one half); NaN when one class is absent."""
    s, y = np.asarray(scores, dtype=np.float64), np.asarray(labels).astype(bool)
    m, n = int(y.sum()), int((~y).sum())
    if m == 0 or n == 0:
        return float("nan")
    return float((rankdata(s)[y].sum() - m * (m + 1) / 2) / (m * n))
