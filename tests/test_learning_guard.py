"""The learning guard: a registered image model trained through the real stage runner on the sample
FF++ separates its held-out test videos, and the same training on shuffled labels does not. A change
that breaks learning (a loss, a sampler, a transform, the optimiser or the checkpoint handoff) fails
here in well under a minute, not in the demo; a change that lets the labels leak past the training
(into the selection, the threshold or the test split) fails the control.

The control permutes the labels of the training and validation videos (each split's class counts
kept): validation chooses the epoch, the learning-rate plateaus and the threshold, so with true
validation labels a model of random features can be selected into a better-than-chance test AUC. Its
test labels stay true. Both runs read the one face-crop cache of the session.

``bench/learnability.py`` runs the same check for every registered model and longer.
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from accelerate.state import AcceleratorState

from utils.core.recipe import load_recipe
from utils.data.index import build_index, data_root
from utils.orchestration.curriculum import resolve_stage
from utils.orchestration.stage import run_stage

RECIPE = str(Path(__file__).resolve().parent / "configs" / "guard.yaml")
MODEL = "cm"
MIN_TEST_VIDEO_AUC = 0.85
MIN_TEST_BALANCED_ACC = 0.75
MAX_CONTROL_AUC = 0.65       # shuffled labels: near chance (test: 8 real, 32 fake videos; null SD ~0.12)
THREADS = 1                  # one intra-op thread: two stall on a busy 2-core machine (OpenMP spin-waits)

pytestmark = pytest.mark.timeout(600)


def shuffled(records: list, seed: int) -> list:
    """``records`` with the labels of the training and validation videos permuted within each split."""
    rng, out = np.random.default_rng(seed), list(records)
    for split in ("train", "val"):
        rows = [i for i, r in enumerate(out) if r.split == split]
        for i, label in zip(rows, rng.permutation([out[i].label for i in rows])):
            out[i] = dataclasses.replace(out[i], label=int(label))
    return out


def guard_run(sample_data: Path, cache_root: Path, out: Path, shuffle: bool, *more: str) -> dict:
    """One stage-1 run of the guard recipe on ``THREADS`` torch threads (``more``: ``--set`` overrides,
    e.g. another ``trainer.seed``); its summary, steps and seconds. A control's permutation follows the
    seed."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DEEPFAKE_SAMPLE_DIR", str(sample_data))
        sets = [f"data.cache_root={cache_root}", "logging.tensorboard=false", "logging.progress_bar=false"]
        cfg = resolve_stage(load_recipe(RECIPE), MODEL, 1, [*sets, *more], recipe=RECIPE)
        records = None
        if shuffle:
            index = build_index(cfg.data, data_root(cfg.data)[0], seed=cfg.trainer.seed)
            records = shuffled(index, seed=cfg.trainer.seed)
        threads = torch.get_num_threads()
        torch.set_num_threads(THREADS)
        AcceleratorState._reset_state(reset_partial_state=True)
        started = time.time()
        try:
            summary = run_stage(cfg, 1, out, recipe=RECIPE, records=records)
        finally:
            torch.set_num_threads(threads)
    state = json.loads((out / MODEL / "stage1" / "trainer_state.json").read_text())
    return {**summary, "steps": state["global_step"], "seconds": time.time() - started}


def _line(name: str, s: dict) -> str:
    return (f"[guard] {MODEL} {name}: {s['steps']} steps, val AUC {s['val_auc']:.3f}, test video AUC "
            f"{s['test_video_auc']:.3f}, balanced acc {s['test_video_balanced_acc']:.3f}, "
            f"{s['seconds']:.0f} s")


@pytest.fixture(scope="module")
def runs(sample_data, stage_cache_root, tmp_path_factory) -> dict:
    out = {name: guard_run(sample_data, stage_cache_root, tmp_path_factory.mktemp(name), shuffle)
           for name, shuffle in (("labels", False), ("shuffled", True))}
    print("\n" + "\n".join(_line(name, s) for name, s in out.items()))
    return out


def test_a_registered_model_learns_to_separate_held_out_videos(runs):
    real = runs["labels"]
    assert not real["collapsed"]
    assert real["test_video_auc"] >= MIN_TEST_VIDEO_AUC, _line("labels", real)
    assert real["test_video_balanced_acc"] >= MIN_TEST_BALANCED_ACC, _line("labels", real)


def test_the_same_training_on_shuffled_labels_stays_near_chance(runs):
    control = runs["shuffled"]
    assert control["test_video_auc"] <= MAX_CONTROL_AUC, _line("shuffled", control)
    assert control["test_video_auc"] < MIN_TEST_VIDEO_AUC - 0.15
