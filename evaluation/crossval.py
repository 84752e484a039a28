"""Cross-validation across folds: every metric as mean ± std with a 95 % interval, pooled curves.

Each fold contributes the full evaluation report of its held-out fold (:func:`build_report`, frame and
video level, predicted once by the weights selected on the fold's inner validation split) and its
predictions. Across folds:

* per metric and level, the fold values, their mean ± std (ddof = 1) and the Student-t interval of
  the mean over folds (k − 1 degrees of freedom);
* the pooled out-of-fold videos (every video of the pool, scored by the one model that never saw it):
  AUC, AP, EER and log-loss with a bootstrap interval over videos; accuracy and balanced accuracy from
  each video's decision at its own fold's threshold (scores shifted by that threshold, so a bootstrap
  over videos keeps the per-fold decisions); pooled ROC and PR curves;
* per source: pooled detection / false-alarm rates and pairwise AUCs (:mod:`evaluation.sources`),
  and the fold mean ± std of every per-method AUC and rate of the fold reports;
* the train/validation gap of each fold (train part and inner validation split, scored by the same
  weights at the fold's threshold), and a fixed test set's metrics over folds when the dataset has one;
* for a source hold-out, Δ = in-source AUC − held-out AUC (:func:`evaluation.sources.holdout_delta`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import precision_recall_curve, roc_curve

from evaluation.aggregate import VideoPredictions, aggregate
from evaluation.bootstrap import bootstrap_ci
from evaluation.metrics import compute_metrics
from evaluation.sources import holdout_delta, source_rates, t_interval
from utils.engine.predictions import FramePredictions

LEVELS = ("video", "frame")
POOLED_RANKING = ("auc", "ap", "eer", "log_loss")
POOLED_DECISION = ("acc", "balanced_acc")
GAP_METRICS = ("auc", "balanced_acc", "log_loss")
CURVE_POINTS = 200


@dataclass
class FoldResult:
    """What one finished fold hands to the aggregation."""

    fold: int
    report: dict                             # build_report of the outer fold
    test: FramePredictions                   # outer-fold predictions
    val: FramePredictions | None = None      # inner validation split
    train: FramePredictions | None = None    # training part (for the gap)
    fixed: dict | None = None                # report of the fixed test set
    summary: dict | None = None              # the stage runner's summary (best epoch, wall time)


def numeric(metrics: dict) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items()
            if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)}


def summarize(rows: list[dict], level: float = 0.95) -> dict[str, dict]:
    """``{metric: t_interval + values}`` over a list of per-fold metric dicts."""
    names = sorted({k for r in rows for k in r})
    return {k: {**t_interval([r.get(k, np.nan) for r in rows], level), "values": [r.get(k) for r in rows]}
            for k in names}


def fold_videos(result: FoldResult) -> VideoPredictions:
    """The outer fold's video predictions, aggregated as its report was."""
    meta = result.report["meta"]
    return aggregate(result.test, meta["aggregation"], **meta.get("aggregation_kwargs", {}))


def pool(results: list[FoldResult]) -> tuple[VideoPredictions, np.ndarray, np.ndarray]:
    """(pooled out-of-fold videos, fold of each, the video threshold of its fold)."""
    parts = [fold_videos(r) for r in results]
    videos = VideoPredictions(np.concatenate([p.probs for p in parts]), np.concatenate([p.labels for p in parts]),
                              np.concatenate([p.video_ids for p in parts]), np.concatenate([p.methods for p in parts]),
                              np.concatenate([p.n_frames for p in parts]))
    folds = np.concatenate([np.full(len(p), r.fold) for p, r in zip(parts, results)])
    thr = np.concatenate([np.full(len(p), r.report["threshold"]["video"]) for p, r in zip(parts, results)])
    return videos, folds, thr


def _thin(x: np.ndarray, y: np.ndarray) -> dict:
    keep = np.unique(np.linspace(0, len(x) - 1, min(len(x), CURVE_POINTS)).round().astype(int))
    return {"x": x[keep].tolist(), "y": y[keep].tolist()}


def curves(score: np.ndarray, labels: np.ndarray) -> dict:
    """ROC and PR points of one binary score (empty when a class is absent)."""
    if len(set(labels.tolist())) < 2:
        return {}
    fpr, tpr, _ = roc_curve(labels, score)
    prec, rec, _ = precision_recall_curve(labels, score)
    return {"roc": _thin(fpr, tpr), "pr": {**_thin(rec[::-1], prec[::-1]), "base_rate": float(labels.mean())}}


def pooled_section(results: list[FoldResult], *, n_boot: int, seed: int, level: float) -> dict:
    """Pooled out-of-fold metrics with bootstrap intervals over videos, and pooled curves."""
    videos, folds, thr = pool(results)
    score, y = videos.probs[:, 1], videos.labels
    shifted = np.clip(score - thr + 0.5, 0.0, 1.0)          # decision at 0.5 = decision at its fold's threshold
    ranking = compute_metrics(videos.probs, y, 0.5, warnings=[])
    decision = compute_metrics(shifted, y, 0.5, warnings=[])
    metrics = {**{k: ranking[k] for k in POOLED_RANKING}, **{k: decision[k] for k in POOLED_DECISION}}
    ci = {**bootstrap_ci(videos.probs, y, n_boot=n_boot, seed=seed, level=level, metrics=POOLED_RANKING),
          **bootstrap_ci(shifted, y, threshold=0.5, n_boot=n_boot, seed=seed, level=level, metrics=POOLED_DECISION)}
    per_fold = {int(f): curves(score[folds == f], y[folds == f]) for f in sorted(set(folds.tolist()))}
    return {"n_videos": int(len(y)), "n_real": int((y == 0).sum()), "n_fake": int((y == 1).sum()),
            "metrics": metrics, "ci": ci, "ci_method": "percentile bootstrap over out-of-fold videos",
            "curves": curves(score, y), "fold_curves": per_fold}


def _video_metrics(preds: FramePredictions | None, threshold: float) -> dict:
    if preds is None or not len(preds):
        return {}
    v = aggregate(preds, "mean")
    return compute_metrics(v.probs, v.labels, threshold, warnings=[])


def gap_section(results: list[FoldResult], level: float) -> dict | None:
    """Per fold: train part and inner validation split at the fold's threshold, and train − val."""
    rows = []
    for r in results:
        if r.train is None or r.val is None:
            continue
        thr = r.report["threshold"]["video"]
        tr, va = _video_metrics(r.train, thr), _video_metrics(r.val, thr)
        row = {"fold": r.fold}
        for m in GAP_METRICS:
            row[f"train_{m}"], row[f"val_{m}"] = tr.get(m, np.nan), va.get(m, np.nan)
            row[f"gap_{m}"] = row[f"train_{m}"] - row[f"val_{m}"]
        rows.append(row)
    if not rows:
        return None
    return {"per_fold": rows, "summary": summarize([{k: v for k, v in r.items() if k != "fold"} for r in rows], level),
            "note": "gap = train − val (video level, fold threshold); for log_loss a negative gap is overfitting"}


def per_method_section(results: list[FoldResult], level: float) -> dict:
    """Fold mean ± std of each per-method row (AUC, accuracy) and per-source rate of the fold reports."""
    per_fold = []
    for r in results:
        row: dict[str, dict] = {}
        for name, b in r.report.get("breakdown", {}).get("method", {}).items():
            row.setdefault(name, {}).update(auc=b["video"].get("auc", np.nan), acc=b["video"].get("acc", np.nan))
        src = r.report.get("sources") or {}
        for kind, key in (("fake", "tpr"), ("real", "fpr")):
            for name, rate in src.get(kind, {}).items():
                row.setdefault(name, {})[key] = rate["rate"]
        per_fold.append(row)
    names = sorted({n for row in per_fold for n in row})
    return {n: summarize([row.get(n, {}) for row in per_fold], level) for n in names}


def fold_rows(results: list[FoldResult]) -> list[dict]:
    out = []
    for r in results:
        rep = r.report
        out.append({"fold": r.fold, "n_videos": rep["video"]["n"], "n_frames": rep["frame"]["n"],
                    "threshold": rep["threshold"]["video"], "collapsed": rep.get("collapsed", False),
                    "best_epoch": (r.summary or {}).get("best_epoch"), "wall_s": (r.summary or {}).get("wall_s"),
                    **{lv: numeric(rep[lv]["metrics"]) for lv in LEVELS}})
    return out


def aggregate_cv(results: list[FoldResult], *, meta: dict | None = None, held_out: str | None = None,
                 n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """The cross-validation report (see module doc); JSON-serialisable."""
    results = sorted(results, key=lambda r: r.fold)
    rows = fold_rows(results)
    out = {"meta": {**(meta or {}), "k": len(results), "level": level, "n_boot": n_boot, "seed": seed,
                    "interval_over_folds": "Student t, k - 1 degrees of freedom"},
           "folds": rows,
           "summary": {lv: summarize([r[lv] for r in rows], level) for lv in LEVELS},
           "pooled": pooled_section(results, n_boot=n_boot, seed=seed, level=level),
           "per_method": per_method_section(results, level), "gap": gap_section(results, level),
           "warnings": [f"fold {r['fold']}: model collapse suspected" for r in rows if r["collapsed"]]}
    videos, folds, thr = pool(results)
    out["sources"] = source_rates(videos, thr, level)
    fixed = [numeric(r.fixed["video"]["metrics"]) for r in results if r.fixed]
    out["fixed_test"] = {"n_videos": results[0].fixed["video"]["n"], "summary": summarize(fixed, level)} \
        if fixed else None
    out["holdout"] = holdout_delta(videos, held_out, folds, n_boot=n_boot, seed=seed, level=level) \
        if held_out else None
    return out


def oof_table(results: list[FoldResult]) -> FramePredictions:
    """The pooled out-of-fold videos as one-row-per-video predictions, with their fold and threshold."""
    videos, folds, thr = pool(sorted(results, key=lambda r: r.fold))
    return FramePredictions(videos.probs, videos.labels, videos.video_ids, videos.methods,
                            np.zeros(len(videos), int), {"fold": folds.astype(str), "threshold": thr.astype(str)})
