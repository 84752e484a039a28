"""launch/compare.py on cross-validation results: scipy's statistics, refusal of other folds, Holm.

The experiments are written by the real aggregation (:func:`evaluation.crossval.aggregate_cv`) from
synthetic fold predictions, so the files compare.py reads are the ones launch/cv.py writes.
"""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from scipy.stats import ttest_rel, wilcoxon

from evaluation.compare import compare, holm, load_experiment
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


def test_fold_statistics_equal_scipy(exps):
    a, b = load_experiment(exps["a"]), load_experiment(exps["b"])
    res = compare([a, b], n_boot=200)
    for m in ("auc", "balanced_acc", "eer", "log_loss"):
        row = res["pairs"][0]["metrics"][m]
        va, vb = a.fold_values(m), b.fold_values(m)
        t = ttest_rel(vb, va)
        assert row["t_test"]["statistic"] == pytest.approx(t.statistic) and row["t_test"]["p"] == pytest.approx(t.pvalue)
        w = wilcoxon(vb, va, method=row["wilcoxon"]["method"])
        assert row["wilcoxon"]["statistic"] == pytest.approx(w.statistic)
        assert row["wilcoxon"]["p"] == pytest.approx(w.pvalue)
        assert row["mean_diff"]["mean"] == pytest.approx(np.mean(vb - va))
    auc = res["pairs"][0]["metrics"]["auc"]
    assert auc["wilcoxon"]["method"] == "exact" and auc["wilcoxon"]["p"] >= 0.0625   # 5 folds: never < 0.05
    assert any("can never reach p < 0.05" in w for w in res["warnings"])
    assert auc["bootstrap"]["n_videos"] == K * 40 and auc["bootstrap"]["lo"] < auc["bootstrap"]["diff"]
    assert auc["delong"]["diff"] == pytest.approx(auc["bootstrap"]["diff"])   # both: pooled AUC(b) - AUC(a)
    assert auc["bootstrap"]["diff"] > 0 and auc["delong"]["p"] < 0.05     # b is clearly the stronger model


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
