"""Per-source rates and the source hold-out gap: does a detector see the forgery, or the source?

A source is a video's method (FF++ method or ``original``, Celeb-DF folder, an image generator). For
every report, at video level and at the decision threshold chosen on validation:

* per fake source, the detection rate (TPR: share of its fakes called fake), per real source the
  false-alarm rate (FPR: share of its reals called fake), each with a 95 % Wilson score interval;
* the pairwise AUC of each fake source against all real videos (with DeLong's interval), and the
  spread of those AUCs (variance, range): a detector that only knows some generators shows it here.

Source hold-out (:func:`holdout_delta`): a model trained without source S is scored on the sources it
saw and on S; Δ = in-source AUC − held-out AUC. Δ above 0.05 (flagged) says the model learned the
sources it was shown, not the forgery. For a fake S, in-source AUC ranks the other fakes against all
reals and held-out AUC ranks S's fakes against all reals; for a real S the roles of the classes swap.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.stats import norm, t as student_t

from evaluation.aggregate import VideoPredictions
from evaluation.delong import auc_interval, auc_score

FLAG_DELTA = 0.05


def wilson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion k / n."""
    if n == 0:
        return float("nan"), float("nan")
    z = norm.ppf(0.5 + level / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _rate(called_fake: np.ndarray, level: float) -> dict:
    k, n = int(called_fake.sum()), int(len(called_fake))
    lo, hi = wilson(k, n, level)
    return {"n": n, "called_fake": k, "rate": k / n if n else float("nan"), "lo": lo, "hi": hi}


def spread(values: list[float]) -> dict:
    """Variance (between sources, ddof = 1), std, min, max and range of finite values."""
    v = np.asarray([x for x in values if np.isfinite(x)], dtype=np.float64)
    if not len(v):
        return {"n": 0, "var": float("nan"), "std": float("nan"), "min": float("nan"), "max": float("nan"),
                "range": float("nan")}
    var = float(v.var(ddof=1)) if len(v) > 1 else 0.0
    return {"n": int(len(v)), "var": var, "std": math.sqrt(var), "min": float(v.min()), "max": float(v.max()),
            "range": float(v.max() - v.min())}


def source_rates(videos: VideoPredictions, threshold: float | np.ndarray, level: float = 0.95) -> dict | None:
    """Per-source TPR / FPR at ``threshold`` (one value, or one per video), pairwise AUCs and their
    spread (see module doc); None for a k-class model or no videos."""
    if videos.probs.shape[1] != 2 or not len(videos):
        return None
    score, y, src = videos.probs[:, 1], videos.labels, videos.methods
    called = score >= np.asarray(threshold, dtype=np.float64)
    fake = {s: _rate(called[(src == s) & (y == 1)], level) for s in sorted(set(src[y == 1]))}
    real = {s: _rate(called[(src == s) & (y == 0)], level) for s in sorted(set(src[y == 0]))}
    reals = y == 0
    pairwise = {s: auc_interval(score[((src == s) & (y == 1)) | reals], y[((src == s) & (y == 1)) | reals], level)
                for s in fake} if reals.any() else {}
    return {"level": level, "unit": "video",
            "threshold": float(threshold) if np.ndim(threshold) == 0 else "per fold",
            "fake": {s: {**r, "tpr": r["rate"]} for s, r in fake.items()},
            "real": {s: {**r, "fpr": r["rate"]} for s, r in real.items()},
            "pairwise_auc": pairwise, "auc_spread": spread([p["auc"] for p in pairwise.values()])}


def _masks(videos: VideoPredictions, held_out: str) -> tuple[np.ndarray, np.ndarray]:
    """(in-source rows, held-out rows) for the two AUCs of the hold-out gap."""
    src, y = videos.methods, videos.labels
    own = src == held_out
    if not own.any():
        raise ValueError(f"the held-out source '{held_out}' has no scored video here")
    label = int(y[own][0])
    other = y != label
    return other | ((y == label) & ~own), other | own


def _delta(score: np.ndarray, y: np.ndarray, inside: np.ndarray, outside: np.ndarray) -> tuple[float, float, float]:
    a_in, a_out = auc_score(score[inside], y[inside]), auc_score(score[outside], y[outside])
    return a_in, a_out, a_in - a_out


def t_interval(values, level: float = 0.95) -> dict:
    """Mean, std (ddof = 1) and the Student-t interval of the mean over finite ``values`` (e.g. folds)."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=np.float64)
    n = len(v)
    if n == 0:
        return {"n": 0, "mean": float("nan"), "std": float("nan"), "lo": float("nan"), "hi": float("nan")}
    mean = float(v.mean())
    if n == 1:
        return {"n": 1, "mean": mean, "std": float("nan"), "lo": float("nan"), "hi": float("nan")}
    std = float(v.std(ddof=1))
    half = float(student_t.ppf(0.5 + level / 2, n - 1) * std / math.sqrt(n))
    return {"n": n, "mean": mean, "std": std, "lo": mean - half, "hi": mean + half}


def holdout_delta(videos: VideoPredictions, held_out: str, folds: np.ndarray | None = None, *,
                  n_boot: int = 1000, seed: int = 0, level: float = 0.95, flag_at: float = FLAG_DELTA) -> dict:
    """Δ = in-source AUC − held-out AUC (see module doc): per fold (``folds``: the fold of each video)
    with the t-interval of its mean, and on the pooled videos with a bootstrap interval over videos."""
    inside, outside = _masks(videos, held_out)
    score, y = videos.probs[:, 1], videos.labels
    a_in, a_out, d = _delta(score, y, inside, outside)
    rng = np.random.default_rng(seed)
    draws = (rng.integers(0, len(y), len(y)) for _ in range(n_boot))
    b = np.asarray([x for x in (_delta(score[i], y[i], inside[i], outside[i])[2] for i in draws) if np.isfinite(x)])
    a = (1 - level) / 2 * 100
    pooled = {"in_auc": a_in, "held_out_auc": a_out, "delta": d,
              "lo": float(np.percentile(b, a)) if len(b) else float("nan"),
              "hi": float(np.percentile(b, 100 - a)) if len(b) else float("nan"), "n_boot": int(len(b))}
    out = {"held_out": held_out, "flag_at": flag_at, "pooled": pooled, "per_fold": []}
    if folds is not None:
        for f in sorted(set(folds.tolist())):
            m = folds == f
            fi, fo, fd = _delta(score, y, inside & m, outside & m)
            out["per_fold"].append({"fold": int(f), "in_auc": fi, "held_out_auc": fo, "delta": fd})
        out["fold_mean"] = t_interval([r["delta"] for r in out["per_fold"]], level)
    point = out["fold_mean"]["mean"] if out.get("fold_mean", {}).get("n") else d
    out["delta"], out["flagged"] = point, bool(np.isfinite(point) and point > flag_at)
    return out


def _fmt(v) -> str:
    return "n/a" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{v:.3f}"


def sources_markdown(section: dict | None) -> list[str]:
    """Markdown lines of :func:`source_rates`' section (empty for None)."""
    if not section:
        return []
    thr = section["threshold"]
    lines = ["", f"## Per source (video level, threshold {_fmt(thr) if not isinstance(thr, str) else thr}, "
             "95 % Wilson intervals)", "",
             "| source | class | videos | rate | [95 % CI] | AUC vs all reals [95 % CI] |", "|---|---|---|---|---|---|"]
    for kind, name in (("fake", "TPR"), ("real", "FPR")):
        for s, r in section[kind].items():
            p = section["pairwise_auc"].get(s) if kind == "fake" else None
            auc = f"{_fmt(p['auc'])} [{_fmt(p['lo'])}, {_fmt(p['hi'])}]" if p else ""
            lines.append(f"| {s} | {kind} | {r['n']} | {name} {_fmt(r['rate'])} | "
                         f"[{_fmt(r['lo'])}, {_fmt(r['hi'])}] | {auc} |")
    sp = section["auc_spread"]
    if sp["n"] > 1:
        lines += ["", f"Spread of the fake sources' AUCs: variance {sp['var']:.4f}, range {_fmt(sp['min'])} – "
                  f"{_fmt(sp['max'])} ({sp['n']} sources)."]
    return lines
