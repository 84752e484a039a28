"""A run with cue synthesis resumes bitwise after a kill, like any other: ``launch/train.py`` on the
sample FF++ with ``data.synthesis`` (train and validation twins), SIGKILLed right after a mid-run
checkpoint, rerun, and compared with an uninterrupted run: the same best and last weights, bit for bit,
and the same validation history (which the twins are part of)."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from tests.helpers.launch import REPO, run

TRAIN = str(REPO / "launch" / "train.py")
RECIPE = str(REPO / "tests" / "configs" / "e2e.yaml")
SETS = ["data.synthesis.kinds=[recompress,resample]", "data.synthesis.ratio=1.0",
        "data.synthesis.splits=[train,val]", "trainer.epochs=2", "trainer.max_steps_per_epoch=3",
        "trainer.checkpoint_every_steps=2", "logging.tensorboard=false"]


def _cmd(out: Path, cache_root: Path) -> list[str]:
    return [sys.executable, TRAIN, "--model", "cm", "--stage", "1", "--config", RECIPE, "--output-dir", str(out),
            "--set", f"data.cache_root={cache_root}", *SETS]


def test_a_synthesis_run_killed_mid_epoch_resumes_bitwise(sample_data, stage_cache_root, tmp_path):
    env = {"DEEPFAKE_SAMPLE_DIR": str(sample_data)}
    ref, out = tmp_path / "ref", tmp_path / "killed"
    run(_cmd(ref, stage_cache_root), env=env)
    proc = subprocess.Popen(_cmd(out, stage_cache_root), cwd=REPO, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "OMP_NUM_THREADS": "1", **env})
    stage = out / "cm" / "stage1"
    target, deadline = stage / "checkpoints" / "step_00000002" / "trainer_state.json", time.time() + 300
    while not target.exists():   # step 2 is the middle of the first epoch (3 steps each)
        assert proc.poll() is None, "the run ended before the checkpoint it should be killed after"
        assert time.time() < deadline
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    for d in (stage / "checkpoints").glob("step_*"):   # leave what a kill right after step 2 leaves
        if int(d.name.split("_")[1]) > 2:
            shutil.rmtree(d)
    resumed = run(_cmd(out, stage_cache_root), env=env)
    assert "resumed from" in resumed.stderr and "global step 2" in resumed.stderr, resumed.stderr[-2000:]
    for name in ("best.safetensors", "checkpoints/step_00000006/model.safetensors"):
        want, got = load_file(str(ref / "cm" / "stage1" / name)), load_file(str(stage / name))
        assert want.keys() == got.keys()
        assert all(bool((want[k] == got[k]).all()) for k in want), f"{name} differs after the resume"
    history = [json.loads((d / "cm" / "stage1" / "trainer_state.json").read_text())["history"] for d in (ref, out)]
    assert len(history[0]) == len(history[1]) == 2
    for want, got in zip(*history):
        assert got == pytest.approx(want, nan_ok=True)
