"""launch/compare.py on cross-validation results: the fold-wise tests against their formulas, refusal
of other folds, Holm.

The experiments are written by the real aggregation (:func:`evaluation.crossval.aggregate_cv`) from
synthetic fold predictions, so the files compare.py reads are the ones launch/cv.py writes. The
expected statistics are computed here from the per-fold metrics in those files, by the textbook
formulas (the paired t statistic and its Student-t tail by integration; the Wilcoxon signed-rank sum
with its exact null distribution by enumerating every sign pattern, or its tie-corrected normal
approximation), never by the functions the code under test calls.
"""
from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from evaluation.compare import compare, fold_tests, holm, load_experiment
from evaluation.crossval import FoldResult, aggregate_cv, oof_table
from evaluation.crossval_report import write_cv_report
from evaluation.scoring import build_report
from tests.helpers.launch import REPO
from utils.engine.predictions import FramePredictions

K = 5


def fold_preds(fold: int, strength: float, seed: int, n: int = 40, prefix: str = "test") -> FramePredictions:
    rng = np.random.default_rng([seed, fold, len(prefix)])
    labels = np.arange(n) % 2
    p = np.clip(rng.normal(0.5 + strength * (labels - 0.5), 0.2), 0.01, 0.99)
    methods = np.where(labels == 1, np.where(np.arange(n) % 4 == 1, "A", "B"), "real")
    return FramePredictions(np.repeat(p, 2), np.repeat(labels, 2), np.repeat([f"{prefix}{fold}/v{i}" for i in range(n)], 2),
                            np.repeat(methods, 2), np.tile([0, 1], n))


def experiment(tmp_path, name: str, strength: float, seed: int, fold_hash: str = "h" * 64):
    results = []
    for f in range(K):
        test, val = fold_preds(f, strength + 0.05 * f, seed), fold_preds(f, strength, seed + 99, prefix="val")
        results.append(FoldResult(f, build_report(test, val_preds=val, n_boot=0), test, val))
    cv = aggregate_cv(results, meta={"experiment": name, "fold_hash": fold_hash}, n_boot=100, seed=0)
    out = tmp_path / name
    write_cv_report(cv, out)
    oof_table(results).save(out / "oof_videos.npz")
    return out


@pytest.fixture(scope="module")
def exps(tmp_path_factory):
    d = tmp_path_factory.mktemp("cv")
    return {"a": experiment(d, "a", 0.15, 1), "b": experiment(d, "b", 0.35, 2), "c": experiment(d, "c", 0.2, 3),
            "other": experiment(d, "other", 0.35, 2, fold_hash="x" * 64)}


# ------------------------------------------------------------------------------ the formulas, by hand
def t_two_sided(t: float, df: int, steps: int = 200_001) -> float:
    """Two-sided Student-t tail: 1 - 2 * (integral of the density from 0 to |t|), trapezoid rule."""
    x = np.linspace(0.0, abs(t), steps)
    c = math.gamma((df + 1) / 2) / (math.sqrt(df * math.pi) * math.gamma(df / 2))
    f = c * (1 + x ** 2 / df) ** (-(df + 1) / 2)
    return 1.0 - 2.0 * float(np.sum((f[1:] + f[:-1]) / 2) * (x[1] - x[0]))


def paired_t(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    d = b - a
    t = d.mean() / (d.std(ddof=1) / math.sqrt(len(d)))
    return float(t), t_two_sided(t, len(d) - 1)


def midranks(v: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing the mean of their positions."""
    return np.array([np.sum(v < x) + (np.sum(v == x) + 1) / 2 for x in v])


def signed_rank(d: np.ndarray, method: str) -> tuple[float, float]:
    """(min(W+, W-), two-sided p) of the Wilcoxon signed-rank test, zeros dropped."""
    d = d[d != 0]
    r = midranks(np.abs(d))
    w_plus = r[d > 0].sum()
    stat = min(w_plus, r.sum() - w_plus)
    n = len(d)
    if method == "exact":          # every one of the 2^n sign patterns is equally likely under H0
        sums = [sum(rk for rk, s in zip(r, signs) if s) for signs in itertools.product((0, 1), repeat=n)]
        return float(stat), min(1.0, 2 * float(np.mean(np.asarray(sums) <= stat)))
    _, counts = np.unique(np.abs(d), return_counts=True)
    var = n * (n + 1) * (2 * n + 1) / 24 - np.sum(counts ** 3 - counts) / 48
    z = (w_plus - n * (n + 1) / 4) / math.sqrt(var)
    return float(stat), math.erfc(abs(z) / math.sqrt(2))


def documented_method(d: np.ndarray) -> str:
    """The rule compare.py documents: exact when the differences have no zeros and no ties."""
    return "exact" if np.all(d != 0) and len(set(np.abs(d).tolist())) == len(d) else "approx"


def raw_fold_metrics(folder, metric: str) -> np.ndarray:
    """The per-fold video-level metric as cv.json holds it (what the fold-wise tests pair)."""
    return np.asarray([f["video"][metric] for f in json.loads((folder / "cv.json").read_text())["folds"]])


def test_per_fold_auc_in_cv_json_is_the_auc_of_the_fold_predictions(exps):
    for f, auc in enumerate(raw_fold_metrics(exps["a"], "auc")):
        test = fold_preds(f, 0.15 + 0.05 * f, 1)
        one = slice(None, None, 2)                     # two identical frames per video: one of them
        assert auc == pytest.approx(roc_auc_score(test.labels[one], test.probs[one, 1]), abs=1e-12)


def test_fold_statistics_equal_the_formulas(exps):
    res = compare([load_experiment(exps["a"]), load_experiment(exps["b"])], n_boot=200)
    methods = set()
    for m in ("auc", "balanced_acc", "eer", "log_loss"):
        row = res["pairs"][0]["metrics"][m]
        va, vb = raw_fold_metrics(exps["a"], m), raw_fold_metrics(exps["b"], m)
        d = vb - va
        t, p = paired_t(va, vb)
        assert row["t_test"]["statistic"] == pytest.approx(t, rel=1e-9), (m, row["t_test"], t)
        assert row["t_test"]["p"] == pytest.approx(p, abs=1e-7) and row["t_test"]["df"] == K - 1, (m, p)
        method = documented_method(d)
        assert row["wilcoxon"]["method"] == method, (m, d)
        w, wp = signed_rank(d, method)
        assert row["wilcoxon"]["statistic"] == pytest.approx(w), (m, row["wilcoxon"], w)
        assert row["wilcoxon"]["p"] == pytest.approx(wp), (m, row["wilcoxon"], wp)
        assert row["mean_diff"]["mean"] == pytest.approx(d.mean())
        methods.add(method)
    assert methods == {"exact", "approx"}                 # both branches are checked (ties in balanced_acc)
    auc = res["pairs"][0]["metrics"]["auc"]
    assert auc["wilcoxon"]["method"] == "exact" and auc["wilcoxon"]["p"] >= 0.0625   # 5 folds: never < 0.05
    assert any("can never reach p < 0.05" in w for w in res["warnings"])
    assert auc["bootstrap"]["n_videos"] == K * 40 and auc["bootstrap"]["lo"] < auc["bootstrap"]["diff"]
    assert auc["delong"]["diff"] == pytest.approx(auc["bootstrap"]["diff"])   # both: pooled AUC(b) - AUC(a)
    assert auc["bootstrap"]["diff"] > 0 and auc["delong"]["p"] < 0.05     # b is clearly the stronger model


@pytest.mark.parametrize("d,method", [
    ([3, -1, 2, 5, 4], "exact"),          # distinct, non-zero: the exact distribution
    ([4, 1, 2, 5, 3], "exact"),           # all positive: p = 2 / 2^5, the floor
    ([3, -1, 3, 5, 4], "approx"),         # a tie in |d|
    ([2, -2, 1, 5, 4], "approx"),         # a tie across signs
    ([3, 0, 2, -5, 4], "approx"),         # a zero difference (dropped)
])
def test_wilcoxon_method_follows_the_documented_rule_and_its_p_the_formula(d, method):
    d = np.asarray(d) / 64                        # dyadic fractions: b - a is exact, ties stay ties
    a = np.array([0.5, 0.625, 0.75, 0.5625, 0.6875])
    row = fold_tests(a, a + d)
    assert documented_method(d) == method and row["wilcoxon"]["method"] == method, row["wilcoxon"]
    w, p = signed_rank(d, method)
    assert row["wilcoxon"]["statistic"] == pytest.approx(w), (row["wilcoxon"], w)
    assert row["wilcoxon"]["p"] == pytest.approx(p), (row["wilcoxon"], p)
    assert row["wilcoxon"]["min_exact_p"] == pytest.approx(2 / 2 ** 5)
    if method == "exact" and np.all(d > 0):
        assert row["wilcoxon"]["p"] == pytest.approx(0.0625)
    t, tp = paired_t(a, a + d)
    assert row["t_test"]["statistic"] == pytest.approx(t), (row["t_test"], t)
    assert row["t_test"]["p"] == pytest.approx(tp, abs=1e-7), (row["t_test"], tp)


def test_three_experiments_are_holm_adjusted(exps):
    res = compare([load_experiment(exps[k]) for k in ("a", "b", "c")], n_boot=100)
    assert res["holm"] and len(res["pairs"]) == 3
    raw = [p["metrics"]["auc"]["t_test"]["p"] for p in res["pairs"]]
    adjusted = [p["metrics"]["auc"]["t_test"]["p_holm"] for p in res["pairs"]]
    order = np.argsort(raw)
    manual = np.maximum.accumulate([min(1.0, (3 - i) * raw[j]) for i, j in enumerate(order)])
    assert np.allclose(np.asarray(adjusted)[order], manual)
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


def test_cli_writes_table_and_forest_and_refuses_other_folds(exps, tmp_path):
    import logging
    from launch.compare import main
    out, handlers = tmp_path / "cmp", logging.getLogger().handlers[:]
    assert main([str(exps["a"]), str(exps["b"]), "--out", str(out), "--n-boot", "100"]) == 0
    logging.getLogger().handlers[:] = handlers
    assert (out / "forest.png").stat().st_size > 0 and "| a | b | auc |" in (out / "compare.md").read_text()
    assert json.loads((out / "compare.json").read_text())["pairs"][0]["b"] == "b"
    bad = subprocess.run([sys.executable, "launch/compare.py", str(exps["a"]), str(exps["other"])], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert "error: these experiments were not run on the same folds" in bad.stderr
    assert "hhhhhhhh" in bad.stderr and "xxxxxxxx" in bad.stderr
