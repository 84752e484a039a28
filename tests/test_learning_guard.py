"""The learning guard: a registered image model trained through the real stage runner on the sample
FF++ separates its held-out test videos. A change that breaks learning (a loss, a sampler, a transform,
the optimiser or the checkpoint handoff) fails here in about a minute, not in the demo.

``bench/learnability.py`` runs the same check for every registered model and longer.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch
from accelerate.state import AcceleratorState

from utils.core.recipe import load_recipe
from utils.orchestration.curriculum import resolve_stage
from utils.orchestration.stage import run_stage

RECIPE = str(Path(__file__).resolve().parent / "configs" / "guard.yaml")
MODEL = "cm"
MIN_TEST_VIDEO_AUC = 0.85

pytestmark = pytest.mark.timeout(600)


def test_a_registered_model_learns_to_separate_held_out_videos(sample_data, stage_cache_root, tmp_path,
                                                             monkeypatch):
    monkeypatch.setenv("DEEPFAKE_SAMPLE_DIR", str(sample_data))
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    AcceleratorState._reset_state(reset_partial_state=True)
    sets = [f"data.cache_root={stage_cache_root}", "logging.tensorboard=false", "logging.progress_bar=false"]
    cfg = resolve_stage(load_recipe(RECIPE), MODEL, 1, sets, recipe=RECIPE)
    started = time.time()
    try:
        summary = run_stage(cfg, 1, tmp_path, recipe=RECIPE)
    finally:
        torch.set_num_threads(threads)
    state = json.loads((tmp_path / MODEL / "stage1" / "trainer_state.json").read_text())
    print(f"\n[guard] {MODEL}: {state['global_step']} steps, val AUC {summary['val_auc']:.3f}, test video AUC "
          f"{summary['test_video_auc']:.3f}, balanced acc {summary['test_video_balanced_acc']:.3f}, "
          f"{time.time() - started:.0f} s")
    assert not summary["collapsed"]
    assert summary["test_video_auc"] >= MIN_TEST_VIDEO_AUC, summary
