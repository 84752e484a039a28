"""The speed switches through a whole stage: train -> export -> restore best -> evaluate -> resume -> the
next stage's init, with ``trainer.compile`` alone and with every CPU switch together.

``trainer.compile_backend=eager`` runs TorchDynamo's graph capture and the ``_orig_mod`` wrapper (what
the checkpoint, export and restore paths have to see through) without inductor's C++ build, which
costs minutes per model on a 2-core CPU; fp16 needs CUDA and is checked on a GPU only.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from accelerate.state import AcceleratorState
from safetensors.torch import load_file

from utils.core.checkpoint import build_from_sidecar, load_weights, read_sidecar
from utils.core.recipe import load_recipe
from utils.orchestration.curriculum import resolve_stage
from utils.orchestration.stage import build_stage_model, run_stage

RECIPE = str(Path(__file__).resolve().parent / "configs" / "e2e.yaml")
MODEL = "tm"
COMPILE = ["trainer.compile=true", "trainer.compile_backend=eager"]
ALL_CPU = COMPILE + ["trainer.mixed_precision=bf16", "trainer.channels_last=true"]

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def env(sample_data, tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("DEEPFAKE_SAMPLE_DIR", str(sample_data))
    yield tmp_path_factory.mktemp("switch-cache")
    mp.undo()


def config(stage: int, cache: Path, switches: list[str]):
    more = switches + [f"data.cache_root={cache}", "logging.tensorboard=false", "data.batch_size=2"]
    return resolve_stage(load_recipe(RECIPE), MODEL, stage, more, recipe=RECIPE)


def check_stage(out: Path, summary: dict) -> None:
    """Exported (no wrapper prefixes, loads strictly), restored, evaluated."""
    rd = out / MODEL / "stage1"
    for weights in [rd / "best.safetensors", *sorted((rd / "checkpoints").glob("step_*/model.safetensors"))]:
        keys = load_file(str(weights)).keys()
        assert keys and not any(k.startswith(("_orig_mod.", "module.")) for k in keys), weights
    meta = read_sidecar(rd / "best.safetensors")
    load_weights(build_from_sidecar(meta, "test"), load_file(str(rd / "best.safetensors")), strict=True)
    assert meta["model"] == MODEL and meta["threshold"] is not None
    assert json.loads((rd / "eval" / "report.json").read_text())["video"]["metrics"]
    assert summary["test_video_auc"] is not None or summary["test_frame_auc"] is not None


def stage(out: Path, cache: Path, switches: list[str]) -> dict:
    """One run of stage 1 in this process (accelerate keeps one state per process: reset it first)."""
    AcceleratorState._reset_state(reset_partial_state=True)
    summary = run_stage(config(1, cache, switches), 1, out, recipe=RECIPE)
    check_stage(out, summary)
    return json.loads((out / MODEL / "stage1" / "trainer_state.json").read_text())


def interrupt_after_step_2(rd: Path) -> Path:
    """Leave what a kill right after the checkpoint of step 2 leaves; returns the removed step's folder."""
    last = sorted((rd / "checkpoints").glob("step_*"))
    assert [p.name for p in last] == ["step_00000002", "step_00000003"]  # 6 clips in batches of 2, ckpt every 2
    shutil.rmtree(last[-1])
    for name in ("trainer_state.json", "summary.json", "best.safetensors", "best.json"):
        (rd / name).unlink()
    shutil.rmtree(rd / "eval")
    return last[-1]


def test_stage_with_speed_switches_exports_restores_evaluates_resumes(env, tmp_path):
    """compile, then all CPU switches together: export, restore of the best weights, evaluation, resume
    from a mid-stage checkpoint (across the switches: state and weights carry plain keys) and the next
    stage's init. Resuming a compiled run without compile replays it exactly (eager backend: the
    same arithmetic)."""
    out, rd = tmp_path / "runs", tmp_path / "runs" / MODEL / "stage1"
    stage(out, env, COMPILE)
    step3 = rd / "checkpoints" / "step_00000003"
    compiled = load_file(str(step3 / "model.safetensors"))
    interrupt_after_step_2(rd)
    stage(out, env, [])
    plain = load_file(str(step3 / "model.safetensors"))
    assert plain.keys() == compiled.keys()
    assert max(float((plain[k].float() - compiled[k].float()).abs().max()) for k in plain) < 1e-6
    interrupt_after_step_2(rd)
    state = stage(out, env, ALL_CPU)
    assert state["global_step"] == 3 and state["finished"] and len(state["history"]) == 1
    AcceleratorState._reset_state(reset_partial_state=True)
    model, _, start = build_stage_model(config(2, env, ALL_CPU), 2, out, None, RECIPE)  # the next stage
    assert start == rd / "best.safetensors"
    best = load_file(str(start))
    assert all(torch.equal(v, best[k]) for k, v in model.state_dict().items() if k in best)


@pytest.mark.gpu
def test_fp16_bf16_channels_last_compile_on_cuda(env, tmp_path):
    for precision in ("fp16", "bf16"):
        out = tmp_path / precision
        stage(out, env, ["trainer.compile=true", f"trainer.mixed_precision={precision}",
                         "trainer.channels_last=true", "data.num_workers=2"])
