"""launch/cv.py end to end on the bundled sample data: 5 folds of a tiny ``cm``, killed mid-fold and
resumed; a source hold-out on the same folds as 2 processes; launch/compare.py on the two.

FF++ sample with two fake methods: 9 groups (2 reals + 4 fakes each) are dealt into 5 folds, its
3 test groups stay out as the fixed test set. Each fold trains 2 epochs of 3 steps (the hold-out 1).
"""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.helpers.launch import ACCELERATE_2PROC, REPO, run
from utils.data.sample import SCALES
from utils.engine.predictions import FramePredictions

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
RECIPE = str(REPO / "tests" / "configs" / "cv.yaml")
CV = str(REPO / "launch" / "cv.py")
# the sample FF++ with two fake methods: 6 videos per pair (2 originals, 2 fakes of each method); the
# train and val pairs are the folds' pool, the test pairs the fixed test set
_TRAIN, _VAL, _TEST = SCALES["test"].ffpp_pairs
POOLED, FIXED = 6 * (_TRAIN + _VAL), 6 * _TEST


def command(out: Path, cache: Path, *extra: str) -> list[str]:
    return [sys.executable, CV, "--config", RECIPE, "--model", "cm", "--folds", "5", "--output-dir", str(out),
            "--n-boot", "200", *extra, "--set", f"data.cache_root={cache}"]


def kill_during_fold(cmd: list[str], env: dict, fold_dir: Path, timeout: float = 600) -> None:
    """Start ``cmd``; SIGKILL it once ``fold_dir`` has a saved state but has not finished."""
    proc = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, **env, "OMP_NUM_THREADS": "1"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    try:
        while time.time() < deadline and proc.poll() is None:
            if list((fold_dir / "checkpoints").glob("step_*")) and not (fold_dir / "trainer_state.json").exists():
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.02)
    finally:
        if proc.poll() is None and time.time() >= deadline:
            proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"not killed mid-fold (exit {proc.returncode})"


@pytest.fixture(scope="module")
def runs(sample_data, stage_cache_root, tmp_path_factory):
    out, env = tmp_path_factory.mktemp("cv"), {"DEEPFAKE_SAMPLE_DIR": str(sample_data)}
    base = out / "cm-stage1-cv"
    started = time.time()
    kill_during_fold(command(out, stage_cache_root), env, base / "fold1" / "cm" / "stage1")
    fold0 = base / "fold0" / "cm" / "stage1" / "summary.json"
    assert fold0.is_file() and not (base / "fold1" / "cm" / "stage1" / "summary.json").exists()
    stamp = fold0.stat().st_mtime_ns
    resumed = run(command(out, stage_cache_root), env=env)
    wall = time.time() - started
    # the hold-out experiment runs as 2 processes (accelerate launch), lighter (1 epoch, no gap, no
    # TensorBoard): a config of its own, the same folds
    held_cmd = command(out, stage_cache_root, "--hold-out-source", "FaceSwap", "--no-train-gap")
    held = run(ACCELERATE_2PROC + held_cmd[1:] + ["trainer.epochs=1", "logging.tensorboard=false"], env=env)
    return {"out": out, "base": base, "held": out / "cm-stage1-cv-holdout-FaceSwap", "stamp": stamp,
            "fold0": fold0, "resumed": resumed, "held_proc": held, "wall": wall}


def test_killed_fold_resumes_and_finished_folds_are_skipped(runs):
    log = runs["resumed"].stderr
    assert "fold 1/5 is finished; skipped" in log
    assert "resumed from" in log and "fold 2/5" in log
    assert runs["fold0"].stat().st_mtime_ns == runs["stamp"]
    print(f"5-fold CV with one kill and resume: {runs['wall']:.0f} s wall")


def test_aggregate_has_mean_std_intervals_and_pooled_roc(runs):
    base = runs["base"]
    cv = json.loads((base / "cv.json").read_text())
    assert len(cv["folds"]) == 5 and sum(r["n_videos"] for r in cv["folds"]) == POOLED
    for m in ("auc", "balanced_acc", "eer"):
        s = cv["summary"]["video"][m]
        assert s["n"] == 5 and all(math.isfinite(s[k]) for k in ("mean", "std", "lo", "hi"))
        assert s["lo"] < s["mean"] < s["hi"] and len(s["values"]) == 5
        ci = cv["pooled"]["ci"][m]
        assert ci["lo"] <= cv["pooled"]["metrics"][m] <= ci["hi"]
    roc = cv["pooled"]["curves"]["roc"]
    assert roc["x"][0] == 0 and roc["x"][-1] == 1 and len(cv["pooled"]["fold_curves"]) == 5
    assert cv["fixed_test"]["n_videos"] == FIXED and cv["fixed_test"]["summary"]["auc"]["n"] == 5
    assert len(cv["gap"]["per_fold"]) == 5 and set(cv["sources"]["fake"]) == {"Deepfakes", "FaceSwap"}
    folds = json.loads(Path(cv["meta"]["folds"]["file"]).read_text())
    assert cv["meta"]["fold_hash"] == folds["hash"]
    md = (base / "cv.md").read_text()
    assert "| auc |" in md and "± " in md and "95 % t-interval" in md
    assert all((base / f"{k}.png").stat().st_size > 0 for k in ("roc", "pr", "folds"))
    assert list((base / "tb").glob("events.out.tfevents.*"))
    oof = FramePredictions.load(base / "oof_videos.npz")
    assert len(oof) == POOLED and len(set(oof.video_ids)) == POOLED     # every pooled video scored once


def test_source_hold_out_trains_without_the_source_and_reports_delta(runs):
    held = runs["held"]
    cv = json.loads((held / "cv.json").read_text())
    h = cv["holdout"]
    assert h["held_out"] == "FaceSwap" and len(h["per_fold"]) == 5 and math.isfinite(h["delta"])
    assert math.isfinite(h["pooled"]["lo"]) and isinstance(h["flagged"], bool)
    assert "FaceSwap" in cv["sources"]["fake"] and "FaceSwap" in cv["per_method"]
    assert json.loads((held / "fold0" / "cm" / "stage1" / "run_info.json").read_text())["world_size"] == 2
    ev = held / "fold0" / "cm" / "stage1" / "eval"
    for split, present in (("val", False), ("test", True)):
        assert ("FaceSwap" in set(FramePredictions.load(ev / f"predictions_{split}.npz").methods)) == present
    assert cv["meta"]["fold_hash"] == json.loads((runs["base"] / "cv.json").read_text())["meta"]["fold_hash"]
    assert "hold-out FaceSwap: Δ = " in runs["held_proc"].stdout
    print(f"hold-out FaceSwap: Δ = {h['delta']:.3f} (pooled {h['pooled']['delta']:.3f} "
          f"[{h['pooled']['lo']:.3f}, {h['pooled']['hi']:.3f}]), flagged {h['flagged']}")


def test_compare_pairs_the_two_experiments(runs, tmp_path):
    import logging
    from launch.compare import main
    handlers = logging.getLogger().handlers[:]
    assert main([str(runs["base"]), str(runs["held"]), "--out", str(tmp_path), "--n-boot", "200"]) == 0
    logging.getLogger().handlers[:] = handlers
    res = json.loads((tmp_path / "compare.json").read_text())
    assert res["pairs"][0]["metrics"]["auc"]["bootstrap"]["n_videos"] == POOLED


def test_folds_are_shared_across_recipes_and_differ_by_seed(runs, sample_data, monkeypatch, tmp_path):
    from utils.core.recipe import load_recipe
    from utils.orchestration.cv import plan_cv
    monkeypatch.setenv("DEEPFAKE_SAMPLE_DIR", str(sample_data))
    base = json.loads((runs["base"] / "cv.json").read_text())["meta"]["fold_hash"]
    other = plan_cv(load_recipe(RECIPE), "bg", output_dir=runs["out"], recipe=RECIPE,
                    overrides=["optim.lr=0.01", "data.augment=false"])
    assert other.folds.hash == base
    seeded = plan_cv(load_recipe(RECIPE), "cm", seed=7, output_dir=tmp_path, recipe=RECIPE)
    assert seeded.folds.hash != base


def test_evaluation_galleries_of_a_fold_checkpoint(runs, sample_data, monkeypatch, tmp_path):
    import logging
    from launch.evaluate import main
    monkeypatch.setenv("DEEPFAKE_SAMPLE_DIR", str(sample_data))
    handlers, threads = logging.getLogger().handlers[:], torch.get_num_threads()
    torch.set_num_threads(1)          # two threads contend on a shared 2-core machine
    ck = runs["base"] / "fold0" / "cm" / "stage1" / "best.safetensors"
    try:
        main(["--checkpoint", str(ck), "--dataset", "ffpp", "--split", "test", "--out", str(tmp_path),
              "--n-boot", "0", "--explain", "2"])
    finally:
        logging.getLogger().handlers[:] = handlers
        torch.set_num_threads(threads)
    index = json.loads((tmp_path / "gallery" / "index.json").read_text())
    cells = index["cells"]
    assert cells and {k.split("/")[0] for k in cells} == {"Deepfakes", "FaceSwap", "original"}
    assert all(k.split("/")[1] in ("TP", "FN", "TN", "FP") and 1 <= len(v["videos"]) <= 2 for k, v in cells.items())
    assert all((tmp_path / "gallery" / v["png"]).stat().st_size > 0 for v in cells.values())
