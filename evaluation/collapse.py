"""Collapse guard: say loudly when a model predicts (nearly) one thing for every input.

A detector whose head was never loaded, or whose training collapsed onto the majority class, still
produces plausible-looking accuracies on skewed data (DFDC is ≈84 % fake). Two symptoms are checked:

* near-constant scores: the spread of the probabilities is below ``std_tol``;
* one class takes at least ``share`` of the hard predictions while the labels are not that skewed
  (that class's label share is below ``share``);
* a class the labels hold (at least ``min_count`` items) is almost never predicted: its recall is
  below ``min_recall``. On a 3 : 3 : 1 split a model can ignore the minority class without any class
  taking 95 % of the predictions; this is the symptom that catches it.
"""
from __future__ import annotations

import logging

import numpy as np

from evaluation.metrics import apply_threshold
from utils.engine.predictions import as_probs

logger = logging.getLogger(__name__)

BANNER = "!" * 78


MIN_RECALL = 0.05


def check_collapse(probs: np.ndarray, labels: np.ndarray, threshold: float | None = None, *,
                   share: float = 0.95, std_tol: float = 1e-3, min_recall: float = MIN_RECALL,
                   min_count: int = 5, names: tuple[str, ...] | list[str] | None = None) -> dict:
    """Diagnose a collapsed prediction set (``names``: class names for the messages).

    Returns:
        ``{"collapsed": bool, "reasons": [str], "score_std": float, "pred_share": [per class],
        "label_share": [per class], "recall": [per class, NaN where absent]}``.
    """
    p = as_probs(probs)
    y = np.asarray(labels, dtype=np.int64)
    k, n = p.shape[1], len(y)
    out = {"collapsed": False, "reasons": [], "score_std": float("nan"), "pred_share": [], "label_share": [],
           "recall": []}
    if n < 2:
        return out
    std = float(p.std(axis=0).max())
    pred = apply_threshold(p, threshold)
    pred_share = np.bincount(pred, minlength=k) / n
    label_share = np.bincount(y, minlength=k) / n
    counts = np.bincount(y, minlength=k)
    hits = np.bincount(y[pred == y], minlength=k)
    recall = np.where(counts > 0, hits / np.maximum(counts, 1), np.nan)
    out.update(score_std=std, pred_share=pred_share.tolist(), label_share=label_share.tolist(),
               recall=recall.tolist())
    if std < std_tol:
        out["reasons"].append(f"near-constant scores: probability spread (std) {std:.2e} < {std_tol:g}")
    c = int(pred_share.argmax())
    if pred_share[c] >= share and label_share[c] < share:
        out["reasons"].append(f"class {c} takes {pred_share[c]:.1%} of the predictions but only "
                              f"{label_share[c]:.1%} of the labels")
    name = (lambda j: f"class {j} ({names[j]})") if names and len(names) == k else (lambda j: f"class {j}")
    for j in range(k):
        if counts[j] >= min_count and recall[j] < min_recall:
            out["reasons"].append(f"{name(j)} is almost never predicted: recall {recall[j]:.1%} of its "
                                  f"{counts[j]} labels ({label_share[j]:.1%} of all)")
    out["collapsed"] = bool(out["reasons"])
    return out


def warn_collapse(diagnosis: dict, where: str) -> None:
    """Log a collapse diagnosis with a banner nobody can miss (no-op when not collapsed)."""
    if not diagnosis.get("collapsed"):
        return
    lines = [BANNER, f"!! MODEL COLLAPSE SUSPECTED ({where})"]
    lines += [f"!!   - {r}" for r in diagnosis["reasons"]]
    lines += ["!! The metrics below describe a model that does not discriminate: check that the head was",
              "!! loaded, the learning rate, the class balance and the labels.", BANNER]
    logger.warning("\n".join(lines))
