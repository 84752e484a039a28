"""The trainer under real multi-process runs (accelerate launch, gloo on CPU) and real SIGKILLs."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.launch import ACCELERATE_2PROC, REPO, run

TINY = str(REPO / "tests" / "helpers" / "tiny.py")
BASE = ["trainer.early_stopping_patience=0", "optim.lr=0.01", "optim.weight_decay=0.0",
        "trainer.monitor=val/loss", "trainer.monitor_mode=min", "logging.log_every_steps=1"]


def _weights(path: Path) -> dict:
    return json.loads(path.read_text())["weights"]


def _max_diff(a: dict, b: dict) -> float:
    import numpy as np
    assert a.keys() == b.keys()
    return max(float(np.abs(np.asarray(a[k]) - np.asarray(b[k])).max()) for k in a)


@pytest.fixture(scope="module")
def one_proc(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("one")
    run([sys.executable, TINY, "--out", str(out), "--label-noise", "0.2", "--set", *BASE,
         "trainer.epochs=3", "data.batch_size=8"])
    return out


@pytest.mark.timeout(300)
def test_two_processes_match_one_process(one_proc, tmp_path):
    run(ACCELERATE_2PROC + [TINY, "--out", str(tmp_path), "--label-noise", "0.2", "--set", *BASE,
                            "trainer.epochs=3", "data.batch_size=4"])
    r0, r1 = _weights(tmp_path / "rank0.json"), _weights(tmp_path / "rank1.json")
    assert _max_diff(r0, r1) == 0.0, "ranks ended with different weights"
    assert _max_diff(r0, _weights(one_proc / "final.json")) < 1e-5
    # the runs trained for real: every step was taken, and the weights moved away from the initial weights
    # tiny.py builds (the default seed, 42, set before the model is built)
    state = json.loads((tmp_path / "trainer_state.json").read_text())
    assert state["global_step"] == 3 * 64 // 8 and state["finished"]
    assert _max_diff(r0, _initial_tiny_weights(42)) > 0.01, "the weights did not move from their init"


def _initial_tiny_weights(seed: int) -> dict:
    """The weights tests/helpers/tiny.py starts from: ``set_seed(trainer.seed)``, then the model."""
    from accelerate.utils import set_seed

    from tests.helpers.tiny import TinyNet
    set_seed(seed)
    return {k: v.tolist() for k, v in TinyNet().state_dict().items()}


@pytest.mark.timeout(300)
def test_early_stopping_same_epoch_on_every_rank(tmp_path):
    # validation labels are noise: the monitored AUC stops improving, each rank holds a different shard
    run(ACCELERATE_2PROC + [TINY, "--out", str(tmp_path), "--val-noise", "0.5", "--set", "optim.lr=0.01",
                            "trainer.epochs=12", "trainer.early_stopping_patience=2", "data.batch_size=8"])
    e0 = json.loads((tmp_path / "rank0.json").read_text())["epoch"]
    e1 = json.loads((tmp_path / "rank1.json").read_text())["epoch"]
    final = json.loads((tmp_path / "final.json").read_text())
    assert e0 == e1 < 12 and final["stopped_early"]


def test_tensorboard_events_hold_train_and_val_scalars(one_proc):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    event_dirs = {p.parent for p in (one_proc / "tensorboard").rglob("events.out.tfevents.*")}
    tags: set[str] = set()
    for d in event_dirs:
        acc = EventAccumulator(str(d))
        acc.Reload()
        tags |= set(acc.Tags()["scalars"])
    assert {"train/loss", "train/cls", "train/lr", "train/grad_norm", "train/samples_per_s", "val/auc",
            "val/balanced_acc"} <= tags
    images = set().union(*(EventAccumulator(str(d), size_guidance={"images": 0}).Reload().Tags()["images"]
                           for d in event_dirs))
    assert "train/batch" in images
    tensors = set().union(*(EventAccumulator(str(d)).Reload().Tags()["tensors"] for d in event_dirs))
    assert "val/pr_curve" in tensors
    lines = [json.loads(ln) for ln in (one_proc / "metrics.jsonl").read_text().splitlines()]
    assert any("val/auc" in ln for ln in lines) and any("train/loss" in ln for ln in lines)


def _wait_for_mid_epoch_checkpoint(out: Path, proc: subprocess.Popen, steps_per_epoch: int, min_step: int):
    deadline = time.time() + 240
    while time.time() < deadline:
        assert proc.poll() is None, "the run finished before it could be killed; slow it down"
        for d in (out / "checkpoints").glob("step_*"):
            step = int(d.name.split("_")[1])
            if step >= min_step and step % steps_per_epoch and (d / "trainer_state.json").exists():
                return step
        time.sleep(0.02)
    raise TimeoutError("no mid-epoch checkpoint appeared")


@pytest.mark.timeout(400)
def test_sigkill_mid_epoch_then_resume_matches_uninterrupted(tmp_path):
    # 64 samples / batch 8 = 8 steps per epoch; a checkpoint every 3 steps; plateau halves the LR on
    # every validation without improvement (val labels are noise), so LR and counters carry state.
    args = ["--label-noise", "0.1", "--val-noise", "0.5", "--set", "optim.lr=0.01", "trainer.epochs=4",
            "data.batch_size=8", "trainer.checkpoint_every_steps=3", "optim.plateau_patience=0",
            "trainer.early_stopping_patience=10", "logging.log_every_steps=1", "trainer.keep_last=3"]
    ref, out = tmp_path / "ref", tmp_path / "killed"
    run([sys.executable, TINY, "--out", str(ref), *args])
    proc = subprocess.Popen([sys.executable, TINY, "--out", str(out), "--delay", "0.03", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO,
                            start_new_session=True)
    try:
        step = _wait_for_mid_epoch_checkpoint(out, proc, steps_per_epoch=8, min_step=17)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert not (out / "final.json").exists()
    run([sys.executable, TINY, "--out", str(out), *args])

    resumed = json.loads((out / "resumed.json").read_text())
    assert resumed["global_step"] >= step and resumed["step_in_epoch"] > 0, "did not resume mid-epoch"
    ref_state = json.loads((ref / "trainer_state.json").read_text())
    ref_log = [json.loads(ln) for ln in (ref / "metrics.jsonl").read_text().splitlines()]
    ref_lr = {ln["step"]: ln["train/lr"] for ln in ref_log if "train/lr" in ln}
    assert resumed["lr"] == pytest.approx(ref_lr[resumed["global_step"]])
    assert resumed["lr"] < 0.01, "the test should resume after a plateau reduction"
    done = ref_state["history"][: resumed["epoch"]]
    aucs = [h["val/auc"] for h in done]
    best_i = max(range(len(aucs)), key=lambda i: aucs[i])
    assert resumed["best_metric"] == pytest.approx(aucs[best_i])
    assert resumed["bad_validations"] == len(aucs) - 1 - best_i
    assert _max_diff(_weights(out / "final.json"), _weights(ref / "final.json")) < 1e-6   # restored best
    # and the last step's weights, before the best ones were restored: the resumed epochs replayed
    from safetensors.torch import load_file
    last = [sorted((d / "checkpoints").glob("step_*"))[-1] / "model.safetensors" for d in (ref, out)]
    a, b = (load_file(str(p)) for p in last)
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-6
