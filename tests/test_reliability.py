"""Reliability: reproducible runs, stopping on SIGTERM, a full disk, --resume never, multi-node.

Runs are real: ``launch/train.py`` on the bundled sample data, the tiny trainer script under plain
python and under ``accelerate launch`` (2 gloo processes, and 2 "machines" of one process each on
loopback), real signals, a real small filesystem where the test may mount one.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.helpers.launch import ACCELERATE_2PROC, BIN, REPO, run
from tests.helpers.tiny import TinyData, TinyNet, register

pytestmark = pytest.mark.timeout(600)
TRAIN = str(REPO / "launch" / "train.py")
TINY = str(REPO / "tests" / "helpers" / "tiny.py")
RECIPE = str(REPO / "tests" / "configs" / "e2e.yaml")
BASE = ["trainer.early_stopping_patience=0", "optim.lr=0.01", "optim.weight_decay=0.0", "trainer.monitor=val/loss",
        "trainer.monitor_mode=min", "logging.log_every_steps=1", "logging.tensorboard=false"]


def _train(sample_data, cache_root: Path, out: Path, *sets: str, extra=()):
    return run([sys.executable, TRAIN, "--model", "cm", "--stage", "1", "--config", RECIPE, "--output-dir",
                str(out), *extra, "--set", f"data.cache_root={cache_root}", *sets],
               env={"DEEPFAKE_SAMPLE_DIR": str(sample_data)})


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


# ------------------------------------------------------------------------------------ reproducibility

@pytest.fixture(scope="module")
def three_runs(sample_data, stage_cache_root, tmp_path_factory):
    cache, out = stage_cache_root, tmp_path_factory.mktemp("repro")
    for name, seed in (("a", 42), ("b", 42), ("c", 7)):
        _train(sample_data, cache, out / name, f"trainer.seed={seed}")
    return out, cache


def test_same_command_and_seed_give_bitwise_identical_weights(three_runs):
    out, _ = three_runs
    a, b, c = (_tensors(out / n / "cm" / "stage1" / "best.safetensors") for n in "abc")
    assert a.keys() == b.keys() == c.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "identical commands gave different weights"
    assert any(not torch.equal(a[k], c[k]) for k in a), "another seed gave the same weights"
    info = json.loads((out / "a" / "cm" / "stage1" / "run_info.json").read_text())
    assert info["seed"] == 42 and info["torch"] == torch.__version__ and info["world_size"] == 1


def test_resume_never_sets_the_old_run_aside_and_reports_only_its_own(three_runs, sample_data):
    out, cache = three_runs
    rd = out / "a" / "cm" / "stage1"
    old = _tensors(rd / "best.safetensors")
    proc = _train(sample_data, cache, out / "a", "trainer.seed=42", "trainer.max_steps_per_epoch=1",
                  "optim.lr=0.5", extra=("--resume", "never"))
    assert "trained" in proc.stdout
    aside = [p for p in rd.parent.iterdir() if p.name.startswith("stage1.previous-")]
    assert len(aside) == 1 and (aside[0] / "best.safetensors").is_file()   # nothing is lost
    new = _tensors(rd / "best.safetensors")
    assert any(not torch.equal(old[k], new[k]) for k in old)
    state = json.loads((rd / "trainer_state.json").read_text())
    assert state["global_step"] == 1 and state["finished"]
    metrics = [json.loads(line) for line in (rd / "metrics.jsonl").read_text().splitlines()]
    assert max(m["step"] for m in metrics) == 1   # the log holds this run's steps only


# ------------------------------------------------------------------------------------------ SIGTERM

def _wait_for_step(out: Path, proc: subprocess.Popen, step: int) -> None:
    log, deadline = out / "metrics.jsonl", time.time() + 300
    while True:
        assert proc.poll() is None, "the run ended before the signal could be sent"
        assert time.time() < deadline
        if log.is_file() and any(json.loads(ln).get("step", 0) >= step for ln in log.read_text().splitlines()):
            return
        time.sleep(0.02)


def _popen(cmd: list[str]) -> subprocess.Popen:
    return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"})


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("ref")
    run([sys.executable, TINY, "--out", str(out), "--set", *BASE, "trainer.epochs=3", "data.batch_size=8"])
    return json.loads((out / "final.json").read_text())["weights"]


def _max_diff(a: dict, b: dict) -> float:
    import numpy as np
    return max(float(np.abs(np.asarray(a[k]) - np.asarray(b[k])).max()) for k in a)


@pytest.mark.parametrize("procs", [1, 2])
def test_sigterm_saves_state_exits_and_the_rerun_matches(procs, uninterrupted, tmp_path):
    launcher = [sys.executable] if procs == 1 else ACCELERATE_2PROC
    args = [TINY, "--out", str(tmp_path), "--set", *BASE, "trainer.epochs=3", f"data.batch_size={8 // procs}"]
    proc = _popen(launcher + args + ["--delay", "0.05"])
    _wait_for_step(tmp_path, proc, 11)                     # in the middle of the second epoch (8 steps each)
    proc.send_signal(signal.SIGTERM)                        # accelerate launch forwards it to its workers
    _, err = proc.communicate(timeout=120)
    assert err.count("stopped by SIGTERM") == 1, err[-3000:]   # one line, from the main process
    if procs == 1:
        assert proc.returncode == 128 + signal.SIGTERM and "Traceback" not in err
    states = sorted((tmp_path / "checkpoints").glob("step_*"))
    stopped = json.loads((states[-1] / "trainer_state.json").read_text())
    assert 11 <= stopped["global_step"] < 16 and stopped["step_in_epoch"] > 0 and not stopped["finished"]
    assert not list((tmp_path / "checkpoints").glob(".*tmp*"))
    run(launcher + args)                                    # the same command resumes and finishes
    final = json.loads((tmp_path / "final.json").read_text())
    assert final["epoch"] == 3 and _max_diff(final["weights"], uninterrupted) < 1e-5


# ---------------------------------------------------------------------------------------- full disk

@pytest.fixture
def small_disk(tmp_path):
    """A real 2 MB tmpfs; the test is skipped, saying why, where none can be mounted."""
    where = tmp_path / "small"
    where.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a 2 MB tmpfs needs root and mount(8); the free-space pre-check is also "
                    "driven through launch/train.py by test_train_refuses_a_state_the_disk_cannot_hold")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(where)], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        pytest.skip(f"could not mount a 2 MB tmpfs: {proc.stderr.strip() or proc.returncode}")
    yield where
    subprocess.run(["umount", "-l", str(where)], capture_output=True)


def _tiny_trainer(run_dir: Path):
    from evaluation.scoring import validation_metrics
    from utils.core.recipe import load_config
    from utils.engine.trainer import Trainer
    register()
    cfg = load_config(None, ["model.name=tiny", "data.num_workers=0", "logging.progress_bar=false",
                             "trainer.epochs=1", *BASE])
    return Trainer(TinyNet(), cfg, run_dir, TinyData(16), TinyData(8, seed=3),
                   export_meta={"model": "tiny", "model_kwargs": {}}, validation=validation_metrics)


def _fill(folder: Path, leave: int) -> Path:
    junk = folder / "junk.bin"
    free = shutil.disk_usage(folder).free
    with open(junk, "wb") as f:
        f.write(b"\0" * max(0, free - leave))
    return junk


def test_full_disk_names_the_path_keeps_the_previous_state_and_resumes(small_disk, monkeypatch):
    from utils.core.errors import WriteError
    from utils.engine import persistence
    from utils.engine.state import list_state_dirs
    trainer = _tiny_trainer(small_disk / "run")
    trainer.fit()
    first = list_state_dirs(trainer.ckpt_root)
    assert len(first) == 1
    trainer.state.global_step += 1
    junk = _fill(small_disk, 8_000)
    with pytest.raises(WriteError, match=r"no space left on device: need ~.* MB in .*checkpoints"):
        trainer.save_state()                               # refused before writing: too little space
    monkeypatch.setattr(persistence, "space_problem", lambda root: None)
    with pytest.raises(WriteError, match=r"no space left on device writing .*step_"):
        trainer.save_state()                               # the write itself fails on the full disk
    assert list_state_dirs(trainer.ckpt_root) == first       # the previous state is still there, whole
    assert not list(trainer.ckpt_root.glob(".*tmp*"))          # and no partial folder is left
    junk.unlink()
    monkeypatch.undo()
    trainer.save_state()                                       # space freed: saving works again
    again = _tiny_trainer(small_disk / "run")
    assert again.resume("auto") and again.state.global_step == trainer.state.global_step
    trainer.close()


# what the launched process sees: shutil.disk_usage reports FAKE_FREE_BYTES free under FAKE_FULL_DIR
FAKE_DISK = """import os, shutil
_real = shutil.disk_usage
def _disk_usage(path):
    usage = _real(path)
    if os.path.abspath(str(path)).startswith(os.environ["FAKE_FULL_DIR"]):
        free = int(os.environ["FAKE_FREE_BYTES"])
        return type(usage)(usage.total, usage.total - free, free)
    return usage
shutil.disk_usage = _disk_usage
"""


def test_train_refuses_a_state_the_disk_cannot_hold(sample_data, stage_cache_root, tmp_path):
    """``launch/train.py`` with a disk that reports 1 MB free under the run folder: the first state is
    written (nothing to size it by), the next is refused before anything of it is written, with the
    size it needs, and the command exits 1 with one error line."""
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(FAKE_DISK)
    out = tmp_path / "runs"
    proc = run([sys.executable, TRAIN, "--model", "cm", "--stage", "1", "--config", RECIPE, "--output-dir", str(out),
                "--set", f"data.cache_root={stage_cache_root}", "logging.tensorboard=false"], check=False,
               env={"DEEPFAKE_SAMPLE_DIR": str(sample_data), "PYTHONPATH": os.pathsep.join(
                   p for p in (str(tmp_path / "site"), os.environ.get("PYTHONPATH")) if p),
                    "FAKE_FULL_DIR": str(out), "FAKE_FREE_BYTES": str(10**6)})
    ckpt = out / "cm" / "stage1" / "checkpoints"
    states = sorted(p.name for p in ckpt.iterdir())
    assert states == ["step_00000002"], (states, proc.stderr[-3000:])   # the first state only, no partial one
    need = sum(f.stat().st_size for f in (ckpt / "step_00000002").rglob("*") if f.is_file()) * 1.2 / 1e6
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert errors == [f"error: no space left on device: need ~{need:.0f} MB in {ckpt} for the next resumable "
                      "state, 1 MB free; free some space and run the same command to resume"], errors
    assert need > 1 and not (out / "cm" / "stage1" / "summary.json").exists()


# --------------------------------------------------------------------------------------- multi-node

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_machines_on_loopback_match_one_machine(uninterrupted, tmp_path):
    """``--num_machines 2`` with one process each (a shared run folder, as on a cluster's filesystem)."""
    port = str(_free_port())
    procs = []
    for rank in (0, 1):
        cmd = [str(BIN / "accelerate"), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "2",
               "--machine_rank", str(rank), "--main_process_ip", "127.0.0.1", "--main_process_port", port,
               "--mixed_precision", "no", "--dynamo_backend", "no",
               TINY, "--out", str(tmp_path), "--set", *BASE, "trainer.epochs=3", "data.batch_size=4"]
        procs.append(_popen(cmd))
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text())["weights"] for r in (0, 1))
    assert _max_diff(r0, r1) == 0.0
    assert _max_diff(r0, uninterrupted) < 1e-5            # what one machine with 2 processes (= 1 x 8) gives


def test_extract_faces_stops_between_videos_on_sigterm_and_the_rerun_completes(sample_data, tmp_path):
    cache = tmp_path / "cache"
    cmd = [sys.executable, str(REPO / "launch" / "extract_faces.py"), "--dataset", "ffpp", "--root",
           str(sample_data / "ffpp"), "--cache", str(cache), "--frames", "3", "--clips", "0", "--workers", "2",
           "--set", "data.max_videos_per_split=10"]
    proc = _popen(cmd)
    deadline = time.time() + 300
    while len(list((cache / "videos").glob("*.dfc"))) < 2:
        assert proc.poll() is None and time.time() < deadline, "the build ended before it could be stopped"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM and "stopped by SIGTERM" in err and "Traceback" not in err
    stored = len(list((cache / "videos").glob("*.dfc")))
    assert 2 <= stored < 30 and not list((cache / "videos").glob(".*tmp*"))   # whole files only
    out = run(cmd).stdout
    done, skipped = (int(x) for x in re.search(r"done (\d+) / skipped (\d+)", out).groups())
    assert skipped == stored and done + skipped == 30
