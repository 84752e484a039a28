"""Turn frame-level predictions into the full evaluation report (a JSON-able dict).

The report holds, for frames and for videos: every metric at the decision threshold and at 0.5,
95 % bootstrap intervals resampling videos, the confusion matrix, ROC/PR curve points and score
histograms (so plots can be redrawn from the JSON alone), the collapse diagnosis, a per-method /
per-source / per-chunk breakdown, and the count of videos that could not be scored.

The decision threshold is taken, in this order, from ``threshold`` (given), from ``val_preds``
(chosen on the validation split, separately for frames and for videos since aggregation changes
the score distribution), else 0.5. Accuracy on the test split is never tuned on the test split.
"""
from __future__ import annotations

import logging

import numpy as np
from sklearn.metrics import precision_recall_curve, roc_curve

from evaluation.aggregate import VideoPredictions, aggregate
from evaluation.bootstrap import bootstrap_ci
from evaluation.collapse import check_collapse, warn_collapse
from evaluation.metrics import choose_threshold, compute_metrics, confusion_matrix
from evaluation.sources import source_rates
from utils.engine.predictions import FramePredictions

logger = logging.getLogger(__name__)

LEVELS = ("frame", "video")
HIST_BINS = 20
MAX_CURVE_POINTS = 256


def _thin(x: np.ndarray, y: np.ndarray) -> dict[str, list[float]]:
    """At most MAX_CURVE_POINTS points of a curve, first and last kept."""
    if len(x) > MAX_CURVE_POINTS:
        keep = np.unique(np.linspace(0, len(x) - 1, MAX_CURVE_POINTS).round().astype(int))
        x, y = x[keep], y[keep]
    return {"x": [float(v) for v in x], "y": [float(v) for v in y]}


def _curves(probs: np.ndarray, labels: np.ndarray, names: tuple[str, ...]) -> dict:
    """ROC and PR points, one-vs-rest per class (binary: the fake class only)."""
    roc, pr = {}, {}
    classes = [1] if probs.shape[1] == 2 else range(probs.shape[1])
    for c in classes:
        pos = labels == c
        if 0 < pos.sum() < len(labels):
            fpr, tpr, _ = roc_curve(pos, probs[:, c])
            prec, rec, _ = precision_recall_curve(pos, probs[:, c])
            roc[names[c]] = _thin(fpr, tpr)
            pr[names[c]] = {**_thin(rec[::-1], prec[::-1]), "base_rate": float(pos.mean())}
    return {"roc": roc, "pr": pr}


def _histogram(probs: np.ndarray, labels: np.ndarray, names: tuple[str, ...]) -> dict:
    """Score histograms per true class: P(fake) (binary) or P(true class) (k classes)."""
    edges = np.linspace(0.0, 1.0, HIST_BINS + 1)
    binary = probs.shape[1] == 2
    counts = {}
    for c, name in enumerate(names):
        mask = labels == c
        score = probs[mask, 1] if binary else probs[mask, c]
        counts[name] = np.histogram(score, bins=edges)[0].tolist()
    return {"score": "P(fake)" if binary else "P(true class)", "edges": edges.tolist(), "counts": counts}


def _level(probs, labels, groups, threshold, names, *, n_boot, seed, warnings, where) -> dict:
    """Every number of one level (frames or videos)."""
    binary = probs.shape[1] == 2
    w: list[str] = []
    out = {"n": int(len(labels)), "threshold": threshold,
           "metrics": compute_metrics(probs, labels, threshold, warnings=w)}
    if binary:
        out["metrics_at_0.5"] = compute_metrics(probs, labels, 0.5, warnings=[])
    out["ci"] = bootstrap_ci(probs, labels, groups, threshold=threshold, n_boot=n_boot, seed=seed)
    out["confusion"] = confusion_matrix(probs, labels, threshold).tolist()
    out["per_class"] = _per_class(out["metrics"], out["confusion"], names)
    out["curves"] = _curves(probs, labels, names)
    out["histogram"] = _histogram(probs, labels, names)
    out["collapse"] = check_collapse(probs, labels, threshold, names=names)
    warn_collapse(out["collapse"], where)
    warnings.extend(f"{where}: {m}" for m in dict.fromkeys(w))
    return out


def _per_class(metrics: dict, confusion: list[list[int]], names: tuple[str, ...]) -> list[dict]:
    """One row per class: its count, recall, precision, F1 and one-vs-rest AUC (binary: the fake class's)."""
    k = len(confusion)
    rows = []
    for c in range(k):
        auc = metrics.get(f"auc_{c}", metrics.get("auc") if k == 2 else None)
        rows.append({"class": names[c] if c < len(names) else str(c), "n": int(sum(confusion[c])),
                     "predicted": int(sum(row[c] for row in confusion)), "recall": metrics.get(f"recall_{c}"),
                     "precision": metrics.get(f"precision_{c}"), "f1": metrics.get(f"f1_{c}"), "auc": auc})
    return rows


def _thresholds(threshold, val_preds, aggregation, rule, agg_kwargs, k: int = 2) -> tuple[dict, str]:
    """Thresholds on P(fake): given, chosen on validation (k > 2: real vs the rest), else 0.5 for a
    binary model and none (the argmax) for k > 2."""
    if threshold is not None:
        t = threshold if isinstance(threshold, dict) else {lv: float(threshold) for lv in LEVELS}
        return {lv: float(t[lv]) for lv in LEVELS}, "given"
    if val_preds is not None and len(val_preds):
        val_videos = aggregate(val_preds, aggregation, **agg_kwargs)
        return {"frame": choose_threshold(val_preds.probs, val_preds.labels, rule),
                "video": choose_threshold(val_videos.probs, val_videos.labels, rule)}, "validation"
    return {lv: 0.5 if k == 2 else None for lv in LEVELS}, "default"


def _breakdown_subsets(methods: np.ndarray, labels: np.ndarray, binary: bool):
    """(name, mask, compared_with) per method: fakes of one method vs all reals, and vice versa."""
    for m in sorted(set(methods)):
        own = methods == m
        kinds = set(labels[own].tolist())
        if binary and kinds == {1}:
            yield m, own | (labels == 0), "all real videos"
        elif binary and kinds == {0} and len(set(methods[labels == 0])) > 1:
            yield m, own | (labels == 1), "all fake videos"
        else:
            yield m, own, "itself"


def _breakdown(videos: VideoPredictions, frames: FramePredictions, thresholds: dict, *, n_boot: int,
               seed: int) -> dict:
    """Per-method (and per extra column, e.g. chunk) metrics at video and frame level."""
    binary = frames.num_classes == 2
    out: dict = {}
    for key in ["method", *sorted(videos.extra)]:
        col_v = videos.methods if key == "method" else videos.extra[key]
        col_f = frames.methods if key == "method" else frames.extra[key]
        table = {}
        for name, vmask, vs in _breakdown_subsets(col_v, videos.labels, binary):
            fmask = np.isin(frames.video_ids, videos.video_ids[vmask])
            vp, vy, tv = videos.probs[vmask], videos.labels[vmask], thresholds["video"]
            table[name] = {
                "compared_with": vs, "n_videos": int((col_v[vmask] == name).sum()),
                "n_frames": int((col_f[fmask] == name).sum()),
                "video": compute_metrics(vp, vy, tv, warnings=[]),
                "video_ci": bootstrap_ci(vp, vy, threshold=tv, n_boot=n_boot, seed=seed,
                                         metrics=("auc", "acc")),
                "frame": compute_metrics(frames.probs[fmask], frames.labels[fmask], thresholds["frame"],
                                         warnings=[]),
            }
        if len(table) > 1 or key == "method":
            out[key] = table
    return out


def _no_face_summary(frames: FramePredictions, rule: str) -> dict:
    miss, names = frames.missing, frames.label_names
    by_label: dict[str, int] = {}
    for m in miss:
        name = names[int(m["label"])] if 0 <= int(m["label"]) < len(names) else str(m["label"])
        by_label[name] = by_label.get(name, 0) + 1
    reasons: dict[str, int] = {}
    for m in miss:
        reasons[m.get("reason", "unknown")] = reasons.get(m.get("reason", "unknown"), 0) + 1
    return {"rule": rule, "count": len(miss), "by_label": by_label, "by_reason": reasons,
            "video_ids": [m["video_id"] for m in miss]}


def _header(frame_preds: FramePredictions, thresholds: dict, source: str, *, aggregation: str, agg_kwargs: dict,
            n_boot: int, seed: int, threshold_rule: str, no_face: str, title: str) -> dict:
    return {
        "title": title,
        "meta": {"num_classes": frame_preds.num_classes, "label_names": list(frame_preds.label_names),
                 "aggregation": aggregation, "aggregation_kwargs": agg_kwargs, "n_boot": n_boot,
                 "seed": seed, "ci_level": 0.95, "ci_unit": "video", "log_loss_clip": [0.01, 0.99]},
        "threshold": {**thresholds, "source": source,
                      "rule": threshold_rule if source == "validation" else None},
        "no_face": _no_face_summary(frame_preds, no_face),
        "warnings": [],
    }


def _warn_no_face(report: dict, no_face: str, prior: float | None) -> None:
    count = report["no_face"]["count"]
    if count:
        msg = (f"{count} videos have no scored frame (no face / unreadable): "
               + ("excluded from the video metrics" if no_face == "exclude" else
                  f"scored with the prior P(fake)={0.5 if prior is None else prior:.3f}"))
        logger.warning(msg)
        report["warnings"].append(msg)


def build_report(frame_preds: FramePredictions, *, threshold: float | dict | None = None,
                 val_preds: FramePredictions | None = None, aggregation: str = "mean",
                 n_boot: int = 1000, seed: int = 0, threshold_rule: str = "balanced_acc",
                 no_face: str = "exclude", breakdown: bool = True, title: str = "",
                 agg_kwargs: dict | None = None, threshold_source: str = "given") -> dict:
    """The evaluation report of one prediction set (see module doc); JSON-serialisable.

    Args:
        frame_preds: test (or validation) predictions, one row per frame or clip.
        threshold: decision threshold (float for both levels, or ``{"frame", "video"}``); overrides
            ``val_preds``; ``threshold_source`` says where it came from (e.g. ``validation`` for the
            threshold a checkpoint recorded when it was exported).
        val_preds: validation predictions; the thresholds are chosen on them with ``threshold_rule``.
        aggregation: ``mean`` or ``confident`` (frame -> video).
        n_boot, seed: bootstrap replicates (0 = no intervals) and seed; units are videos.
        no_face: ``exclude`` or ``prior`` for videos without frames (see :mod:`evaluation.aggregate`).
        breakdown: add per-method / per-source / per-chunk tables.
        agg_kwargs: extra arguments of the ``confident`` rule (``fake_t``, ``real_t``, ``min_fake_frames``).
    """
    agg_kwargs = dict(agg_kwargs or {})
    thresholds, source = _thresholds(threshold, val_preds, aggregation, threshold_rule, agg_kwargs,
                                     frame_preds.num_classes)
    source = threshold_source if source == "given" else source
    prior = float(aggregate(val_preds, "mean").labels.mean()) if val_preds is not None and len(val_preds) else None
    videos = aggregate(frame_preds, aggregation, no_face=no_face, prior=prior, **agg_kwargs)
    report = _header(frame_preds, thresholds, source, aggregation=aggregation, agg_kwargs=agg_kwargs,
                     n_boot=n_boot, seed=seed, threshold_rule=threshold_rule, no_face=no_face, title=title)
    _warn_no_face(report, no_face, prior)
    names, warnings = frame_preds.label_names, report["warnings"]
    report["frame"] = _level(frame_preds.probs, frame_preds.labels, frame_preds.video_ids,
                             thresholds["frame"], names, n_boot=n_boot, seed=seed, warnings=warnings,
                             where="frame level")
    report["video"] = _level(videos.probs, videos.labels, None, thresholds["video"], names,
                             n_boot=n_boot, seed=seed, warnings=warnings, where="video level")
    n = videos.n_frames
    report["video"]["n_frames_per_video"] = {"min": int(n.min()) if len(videos) else 0,
                                             "mean": float(n.mean()) if len(videos) else 0.0,
                                             "max": int(n.max()) if len(videos) else 0}
    report["collapsed"] = any(report[lv]["collapse"]["collapsed"] for lv in LEVELS)
    report["collapse_reasons"] = [f"{lv}: {r}" for lv in LEVELS for r in report[lv]["collapse"]["reasons"]]
    if breakdown:
        report["breakdown"] = _breakdown(videos, frame_preds, thresholds, n_boot=min(n_boot, 500), seed=seed)
    report["sources"] = source_rates(videos, thresholds["video"])   # per-source TPR / FPR, pairwise AUCs
    return report


def validation_metrics(preds: FramePredictions, rule: str = "balanced_acc") -> dict[str, float]:
    """What the trainer monitors: frame-level metrics (``val/auc``, ``val/balanced_acc`` …), ``val/loss``
    (mean negative log-likelihood), and the decision thresholds chosen on these predictions
    (``val/threshold`` at video level, ``val/threshold_frame``) that the exported weights record."""
    metrics = {f"val/{k}": v for k, v in compute_metrics(preds.probs, preds.labels, warnings=[]).items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)}
    p_true = np.clip(preds.probs[np.arange(len(preds)), preds.labels], 1e-7, 1.0)
    metrics["val/loss"] = float(-np.log(p_true).mean()) if len(preds) else float("nan")
    if len(preds):
        thresholds, _ = _thresholds(None, preds, "mean", rule, {})
        metrics["val/threshold"], metrics["val/threshold_frame"] = thresholds["video"], thresholds["frame"]
    return metrics


def validation_metric_names(num_classes: int = 2) -> list[str]:
    """The names :func:`validation_metrics` produces for a k-class model (what ``trainer.monitor`` may be)."""
    rng = np.random.default_rng(0)
    labels = np.arange(4 * num_classes) % num_classes
    probs = rng.dirichlet(np.ones(num_classes), len(labels))
    preds = FramePredictions(probs, labels, [f"v{i}" for i in range(len(labels))], ["m"] * len(labels),
                             np.zeros(len(labels), int))
    return sorted(validation_metrics(preds))


def summary_scalars(report: dict, prefix: str = "") -> dict[str, float]:
    """Flat finite scalars of a report (``video/auc``, ``frame/acc@0.5``, ...) for TensorBoard."""
    out = {}
    for lv in LEVELS:
        for key, val in report[lv]["metrics"].items():
            out[f"{prefix}{lv}/{key}"] = val
        for key, val in report[lv].get("metrics_at_0.5", {}).items():
            if key in ("acc", "balanced_acc", "pred_fake_rate"):
                out[f"{prefix}{lv}/{key}@0.5"] = val
    out[f"{prefix}collapsed"] = float(report["collapsed"])
    return {k: float(v) for k, v in out.items() if isinstance(v, (int, float)) and np.isfinite(v)}
