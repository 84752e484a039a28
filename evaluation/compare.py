"""Paired comparison of cross-validation experiments that share one fold assignment.

Experiments are comparable only when their folds are identical: every result carries the hash of its
fold table, and experiments whose hashes differ are refused. For each pair (B against A, difference
B − A) and each metric:

* fold-wise: the mean difference over folds with its Student-t interval, the paired t-test
  (``scipy.stats.ttest_rel``) and the Wilcoxon signed-rank test (``scipy.stats.wilcoxon``; the exact
  small-sample distribution when the differences have no zeros or ties, else the normal
  approximation, and the method is named). With k folds the smallest two-sided exact Wilcoxon p is
  2 / 2^k: 0.0625 for 5 folds, so 5 folds can never reach p < 0.05 with it, and the report says so;
* pooled: a paired bootstrap over the out-of-fold videos both experiments scored (the same draw of
  videos for both; decisions at each video's own fold threshold), with its interval and a two-sided
  p-value; for AUC also DeLong's paired test on the pooled videos.

With more than two experiments every pair is compared and the p-values of each test and metric are
Holm-adjusted over the pairs.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import numpy as np
from scipy.stats import ttest_rel, wilcoxon

from evaluation.bootstrap import _WeightedBinary
from evaluation.delong import delong_paired
from evaluation.sources import t_interval
from utils.core.errors import InputError
from utils.engine.predictions import FramePredictions

METRICS = ("auc", "balanced_acc", "eer", "ap", "log_loss")
LOWER_IS_BETTER = ("eer", "log_loss")
TESTS = ("t_test", "wilcoxon", "bootstrap", "delong")


@dataclass
class Experiment:
    name: str
    path: Path
    cv: dict
    oof: FramePredictions           # one row per out-of-fold video; extra columns fold, threshold

    @property
    def fold_hash(self) -> str:
        return str(self.cv["meta"].get("fold_hash"))

    def fold_values(self, metric: str, level: str = "video") -> np.ndarray:
        return np.asarray([np.nan if r[level].get(metric) is None else r[level][metric] for r in self.cv["folds"]],
                          dtype=np.float64)


def load_experiment(path: str | Path) -> Experiment:
    """A finished cross-validation (``cv.json`` + ``oof_videos.npz``) from its folder."""
    path = Path(path)
    try:
        cv = json.loads((path / "cv.json").read_text())
        oof = FramePredictions.load(path / "oof_videos.npz")
    except (OSError, ValueError, KeyError) as e:
        raise InputError(f"{path} is not a finished cross-validation (cv.json, oof_videos.npz): {e}") from None
    return Experiment(cv["meta"].get("experiment") or path.name, path, cv, oof)


def check_same_folds(experiments: list[Experiment]) -> None:
    """Refuse experiments whose fold assignments differ (paired tests would pair unrelated folds)."""
    hashes = {e.fold_hash for e in experiments}
    if len(hashes) > 1 or len({len(e.cv["folds"]) for e in experiments}) > 1:
        listed = "; ".join(f"{e.name}: fold hash {e.fold_hash[:16]} ({len(e.cv['folds'])} folds, "
                           f"{e.cv['meta'].get('folds', {}).get('file', '?')})" for e in experiments)
        raise InputError("these experiments were not run on the same folds, so their folds cannot be paired: "
                         f"{listed}. Run every experiment on the same data with the same --seed and --folds "
                         "(they then read the same fold file)")


def wilcoxon_method(d: np.ndarray) -> str:
    """``exact`` when the differences have no zeros and no ties, else ``approx``."""
    nz = d[d != 0]
    return "exact" if len(nz) == len(d) and len(np.unique(np.abs(nz))) == len(nz) else "approx"


def fold_tests(a: np.ndarray, b: np.ndarray, level: float = 0.95) -> dict:
    """Fold-wise paired statistics of B − A."""
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    d = b - a
    out = {"n_folds": int(len(d)), "a": a.tolist(), "b": b.tolist(), "diff": d.tolist(),
           "mean_diff": t_interval(d, level)}
    if len(d) < 2 or np.all(d == 0):
        return {**out, "t_test": {"statistic": float("nan"), "p": float("nan")},
                "wilcoxon": {"statistic": float("nan"), "p": float("nan"), "method": "none"}}
    t = ttest_rel(b, a)
    method = wilcoxon_method(d)
    w = wilcoxon(b, a, method=method)
    out["t_test"] = {"statistic": float(t.statistic), "p": float(t.pvalue), "df": int(len(d) - 1)}
    out["wilcoxon"] = {"statistic": float(w.statistic), "p": float(w.pvalue), "method": method,
                       "min_exact_p": 2.0 / 2 ** len(d)}
    return out


def align(a: FramePredictions, b: FramePredictions) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of the videos both tables hold, in one order."""
    common = np.intersect1d(a.video_ids, b.video_ids)
    if not len(common):
        raise InputError("the experiments scored no video in common: nothing to pair")
    ia, ib = (np.argsort(x.video_ids)[np.searchsorted(np.sort(x.video_ids), common)] for x in (a, b))
    return ia, ib


def _scores(p: FramePredictions, rows: np.ndarray, metric: str) -> np.ndarray:
    """The score under which ``metric`` is computed at 0.5: decisions at each video's fold threshold."""
    score = p.probs[rows, 1]
    if metric in ("acc", "balanced_acc"):
        return np.clip(score - p.extra["threshold"][rows].astype(np.float64) + 0.5, 0.0, 1.0)
    return score


def paired_bootstrap(a: FramePredictions, b: FramePredictions, metric: str, *, n_boot: int = 2000,
                     seed: int = 0, level: float = 0.95) -> dict:
    """B − A of ``metric`` on the pooled out-of-fold videos, resampling videos (the same draw for both)."""
    ia, ib = align(a, b)
    y = a.labels[ia]
    if not np.array_equal(y, b.labels[ib]):
        raise InputError("the experiments disagree on the labels of the same videos")
    fa, fb = (_WeightedBinary(_scores(p, rows, metric), y, 0.5) for p, rows in ((a, ia), (b, ib)))
    ones = np.ones(len(y))
    diff = fb(ones)[metric] - fa(ones)[metric]
    rng = np.random.default_rng(seed)
    reps = []
    for _ in range(n_boot):
        w = np.bincount(rng.integers(0, len(y), len(y)), minlength=len(y)).astype(np.float64)
        reps.append(fb(w)[metric] - fa(w)[metric])
    r = np.asarray([x for x in reps if np.isfinite(x)])
    tail = (1 - level) / 2 * 100
    p = min(1.0, 2 * min((r <= 0).mean(), (r >= 0).mean())) if len(r) else float("nan")
    return {"diff": float(diff), "lo": float(np.percentile(r, tail)) if len(r) else float("nan"),
            "hi": float(np.percentile(r, 100 - tail)) if len(r) else float("nan"), "p": float(p),
            "n_videos": int(len(y)), "n_boot": int(len(r))}


def pooled_delong(a: FramePredictions, b: FramePredictions) -> dict:
    ia, ib = align(a, b)
    return delong_paired(a.probs[ia, 1], b.probs[ib, 1], a.labels[ia])


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (NaN stays NaN)."""
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(len(p), np.nan)
    idx = np.flatnonzero(np.isfinite(p))
    order = idx[np.argsort(p[idx], kind="stable")]
    m, running = len(order), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out.tolist()


def compare_pair(a: Experiment, b: Experiment, metrics: tuple[str, ...], *, n_boot: int, seed: int,
                 level: float) -> dict:
    rows = {}
    for m in metrics:
        row = fold_tests(a.fold_values(m), b.fold_values(m), level)
        row["bootstrap"] = paired_bootstrap(a.oof, b.oof, m, n_boot=n_boot, seed=seed, level=level)
        if m == "auc":
            row["delong"] = pooled_delong(a.oof, b.oof)
        row["lower_is_better"] = m in LOWER_IS_BETTER
        rows[m] = row
    return {"a": a.name, "b": b.name, "metrics": rows}


def _adjust(pairs: list[dict], metrics: tuple[str, ...]) -> None:
    """Holm over the pairs, per metric and test (only when more than one pair is compared)."""
    for m in metrics:
        for test in TESTS:
            cells = [p["metrics"][m].get(test) for p in pairs]
            if all(c is not None for c in cells):
                for c, adj in zip(cells, holm([c["p"] for c in cells])):
                    c["p_holm"] = adj


def compare(experiments: list[Experiment], metrics: tuple[str, ...] = METRICS, *, n_boot: int = 2000,
            seed: int = 0, level: float = 0.95) -> dict:
    """Every pair of ``experiments`` (B − A for A listed first), on the video-level fold metrics."""
    if len(experiments) < 2:
        raise InputError("compare needs at least two experiments")
    check_same_folds(experiments)
    pairs = [compare_pair(a, b, metrics, n_boot=n_boot, seed=seed, level=level)
             for a, b in combinations(experiments, 2)]
    if len(experiments) > 2:
        _adjust(pairs, metrics)
    k = len(experiments[0].cv["folds"])
    warnings = []
    if 2.0 / 2 ** k >= 0.05:
        warnings.append(f"with {k} folds the exact two-sided Wilcoxon signed-rank p-value cannot fall below "
                        f"{2.0 / 2 ** k:.4g}: it can never reach p < 0.05 (where ties force the normal "
                        "approximation, its p is unreliable at this size); read the paired t-test and the "
                        "pooled bootstrap / DeLong tests, or use more folds")
    return {"experiments": [{"name": e.name, "path": str(e.path)} for e in experiments],
            "fold_hash": experiments[0].fold_hash, "k": k, "level": level, "n_boot": n_boot,
            "direction": "B − A (A listed first)", "holm": len(experiments) > 2,
            "pooled_auc_test": "DeLong (paired) and paired bootstrap over out-of-fold videos",
            "pairs": pairs, "warnings": warnings}


def fmt(v, digits: int = 3) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{v:.{digits}f}"
