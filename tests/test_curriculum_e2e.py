"""The curriculum end to end on the bundled sample data, through the commands users type.

One tiny real model (``cm``) goes 1 -> 2 -> 4; stage 1 runs as 2 processes through accelerate launch.
Stages 2 and 4 of the chain run with lr = 0 so that their parameters must equal the weights they
were handed: a stage that silently started from a random init would fail.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from tests.helpers.launch import ACCELERATE_2PROC, REPO, run

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
TRAIN = str(REPO / "launch" / "train.py")
EVALUATE = str(REPO / "launch" / "evaluate.py")
RECIPE = str(REPO / "tests" / "configs" / "e2e.yaml")
MODEL = "cm"


@pytest.fixture(scope="module")
def env(sample_data, stage_cache_root) -> dict:
    return {"DEEPFAKE_SAMPLE_DIR": str(sample_data), "CACHE": str(stage_cache_root)}


def train(env: dict, out: Path, stage: int, *extra: str, launcher: list[str] | None = None, check=True):
    cmd = (launcher or [sys.executable]) + [TRAIN, "--model", MODEL, "--stage", str(stage), "--config", RECIPE,
                                            "--output-dir", str(out), *extra]
    cmd += ["--set", f"data.cache_root={env['CACHE']}"] if "--set" not in extra else []
    return run(cmd, env={"DEEPFAKE_SAMPLE_DIR": env["DEEPFAKE_SAMPLE_DIR"]}, check=check)


def cache_set(env: dict, *more: str) -> list[str]:
    return ["--set", f"data.cache_root={env['CACHE']}", *more]


def parameters(path: Path) -> dict[str, torch.Tensor]:
    """Trainable parameters only (BatchNorm running statistics move even at lr = 0)."""
    from utils.core.registry import create_model
    names = {n for n, _ in create_model(MODEL, size="tiny").named_parameters()}
    return {k: v for k, v in load_file(str(path)).items() if k in names}


@pytest.fixture(scope="module")
def chain(env, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs")
    train(env, out, 1, launcher=ACCELERATE_2PROC)
    train(env, out, 2, *cache_set(env, "optim.lr=0"))
    train(env, out, 4, *cache_set(env, "optim.lr=0"))
    return out


def initial_parameters(env: dict, out: Path) -> dict[str, torch.Tensor]:
    """The weights stage 1 starts from: its model built the way the stage runner builds it (the recipe's
    seed set first), for a run folder with no earlier stage."""
    from utils.core.recipe import load_recipe
    from utils.orchestration.curriculum import resolve_stage
    from utils.orchestration.stage import build_stage_model
    cfg = resolve_stage(load_recipe(RECIPE), MODEL, 1, [f"data.cache_root={env['CACHE']}"], recipe=RECIPE)
    model, _, start = build_stage_model(cfg, 1, out, None, RECIPE)
    assert start is None
    return {k: v.detach() for k, v in model.named_parameters()}


def test_chain_hands_each_stage_the_previous_best_weights(chain, env, tmp_path):
    s1, s2, s4 = (parameters(chain / MODEL / f"stage{k}" / "best.safetensors") for k in (1, 2, 4))
    initial = initial_parameters(env, tmp_path)
    assert initial.keys() == s1.keys()
    moved = max(float((s1[k] - initial[k]).abs().max()) for k in s1)
    assert moved > 1e-4, "stage 1 did not train: its best weights are its initial weights"
    for later in (s2, s4):
        assert later.keys() == s1.keys()
        for k in s1:
            assert torch.equal(later[k], s1[k]), f"{k} was not handed over"
    for k in (1, 2, 4):
        run_dir = chain / MODEL / f"stage{k}"
        meta = json.loads((run_dir / "best.json").read_text())
        assert meta["stage"] == k and 0.0 <= meta["threshold"] <= 1.0
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["dataset"] == {1: "ffpp", 2: "celebdf", 4: "dfdc"}[k]
        assert (run_dir / "eval" / "report.json").is_file() and (run_dir / "config.yaml").is_file()
    assert json.loads((chain / MODEL / "stage2" / "best.json").read_text())["init"].endswith("stage1/best.safetensors")
    state4 = json.loads((chain / MODEL / "stage4" / "trainer_state.json").read_text())
    assert state4["epoch"] == 3, "stage 4 walks chunks 0, 1, 2 with one epoch each"


def test_finished_stage_is_reported_and_not_retrained(chain, env):
    before = sorted(p.name for p in (chain / MODEL / "stage4" / "checkpoints").iterdir())
    proc = train(env, chain, 4)
    assert re.search(r"\[cm stage 4\] done", proc.stdout)
    assert sorted(p.name for p in (chain / MODEL / "stage4" / "checkpoints").iterdir()) == before


def test_make_train_all_specialists_skips_finished_stages(chain, env):
    args = f"--output-dir {chain} --set data.cache_root={env['CACHE']}"
    proc = run(["make", "-s", "train-all-specialists", "MODELS=cm", "NPROC=1", f"RECIPE={RECIPE}", f"ARGS={args}"],
               env={"DEEPFAKE_SAMPLE_DIR": env["DEEPFAKE_SAMPLE_DIR"]})
    for k in (1, 2, 4):
        assert f"[cm stage {k}] done" in proc.stdout
    assert "trained" not in proc.stdout


def test_recipe_defining_stage_3_trains_it_from_stage_2(chain, env, tmp_path):
    recipe = tmp_path / "with_stage3.yaml"
    recipe.write_text(f"extends: {RECIPE}\nstages:\n  3:\n    data: {{dataset: celebdf}}\n"
                      "    optim: {lr: 1.0e-3, loss: class_mean}\n    trainer: {epochs: 1}\n")
    proc = run([sys.executable, TRAIN, "--model", MODEL, "--stage", "3", "--config", str(recipe),
                "--output-dir", str(chain), *cache_set(env)], env={"DEEPFAKE_SAMPLE_DIR": env["DEEPFAKE_SAMPLE_DIR"]})
    assert "[cm stage 3] trained" in proc.stdout
    meta = json.loads((chain / MODEL / "stage3" / "best.json").read_text())
    assert meta["init"].endswith("stage2/best.safetensors") and meta["config"]["optim"]["loss"] == "class_mean"


def test_cross_dataset_table_of_the_stage1_weights(chain, env, tmp_path):
    """``evaluate.py --dataset ffpp celebdf dfdc``: the FF++-trained stage-1 weights on the test split of every
    dataset, one row each in cross_dataset.json (and .md); the FF++ row is the stage's own test figure."""
    out = tmp_path / "cross"
    proc = run([sys.executable, EVALUATE, "--checkpoint", str(chain / MODEL / "stage1" / "best.safetensors"),
                "--dataset", "ffpp", "celebdf", "dfdc", "--split", "test", "--out", str(out),
                *cache_set(env, "data.train_chunks=[0,1,2]", "data.val_chunks=[10]", "data.test_chunks=[11]")],
               env={"DEEPFAKE_SAMPLE_DIR": env["DEEPFAKE_SAMPLE_DIR"]}, check=False)
    assert proc.returncode in (0, 3), proc.stderr[-3000:]      # 3: a cell whose predictions look collapsed
    rows = json.loads((out / "cross_dataset.json").read_text())
    assert [r["dataset"] for r in rows] == ["ffpp", "celebdf", "dfdc"]
    for r in rows:
        report = json.loads((out / r["dataset"] / "report.json").read_text())
        assert r["n_videos"] == report["video"]["n"] > 0
        assert r["video_auc"] == report["video"]["metrics"]["auc"] and 0.0 <= r["frame_auc"] <= 1.0
    own = json.loads((chain / MODEL / "stage1" / "eval" / "report.json").read_text())
    assert rows[0]["n_videos"] == own["video"]["n"]
    assert rows[0]["video_auc"] == pytest.approx(own["video"]["metrics"]["auc"], abs=1e-6)
    for split, chunk in (("test", 11), ("val", 10)):   # DFDC split by the chunk lists given, not the defaults
        assert set(np.load(out / "dfdc" / f"predictions_{split}.npz")["extra_chunk"].tolist()) == {str(chunk)}
    table = (out / "cross_dataset.md").read_text()
    assert all(f"| {d} |" in table for d in ("ffpp", "celebdf", "dfdc"))


def _kill_after(out: Path, proc: subprocess.Popen, step: int) -> None:
    target = out / MODEL / "stage4" / "checkpoints" / f"step_{step:08d}" / "trainer_state.json"
    deadline = time.time() + 600
    while not target.exists():
        assert proc.poll() is None, "stage 4 ended before the checkpoint it should be killed after"
        assert time.time() < deadline
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def test_stage4_killed_mid_chunk_resumes_in_that_chunk(chain, env, tmp_path):
    init = str(chain / MODEL / "stage2" / "best.safetensors")
    ref, out = tmp_path / "ref", tmp_path / "killed"
    train(env, ref, 4, "--init", init)
    # each chunk trains 3 steps (tests/configs/e2e.yaml); a checkpoint every 2 steps: step 4 is the
    # middle of chunk 1 (the second)
    cmd = [sys.executable, TRAIN, "--model", MODEL, "--stage", "4", "--config", RECIPE, "--output-dir", str(out),
           "--init", init, *cache_set(env)]
    proc = subprocess.Popen(cmd, cwd=REPO, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1",
                                                            "DEEPFAKE_SAMPLE_DIR": env["DEEPFAKE_SAMPLE_DIR"]})
    _kill_after(out, proc, 4)
    # the kill may land a little after step 4: leave exactly what a kill right after it leaves
    for d in (out / MODEL / "stage4" / "checkpoints").glob("step_*"):
        if int(d.name.split("_")[1]) > 4:
            shutil.rmtree(d)
    proc = train(env, out, 4, "--init", init)
    assert re.search(r"resumed from .*step_00000004: epoch 1, step 1 in epoch, global step 4", proc.stderr), \
        proc.stderr[-3000:]
    for name in ("best.safetensors", "checkpoints/step_00000009/model.safetensors"):   # best and last
        ref_w = load_file(str(ref / MODEL / "stage4" / name))
        got_w = load_file(str(out / MODEL / "stage4" / name))
        assert ref_w.keys() == got_w.keys()
        assert max(float((ref_w[k].float() - got_w[k].float()).abs().max()) for k in ref_w) < 1e-6, name
    ref_state = json.loads((ref / MODEL / "stage4" / "trainer_state.json").read_text())
    got_state = json.loads((out / MODEL / "stage4" / "trainer_state.json").read_text())
    assert got_state["global_step"] == ref_state["global_step"] == 9
    assert len(got_state["history"]) == len(ref_state["history"]) == 3
    for got, want in zip(got_state["history"], ref_state["history"]):
        assert got == pytest.approx(want, nan_ok=True)
