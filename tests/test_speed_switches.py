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
from safetensors.torch import load_file

from utils.core.checkpoint import build_from_sidecar, load_weights, read_sidecar
from utils.core.config import load_recipe
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
    more = switches + [f"data.cache_root={cache}", "logging.tensorboard=false"]
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


@pytest.mark.parametrize("switches, resume_with", [(COMPILE, []), (ALL_CPU, ALL_CPU)],
                         ids=["compile, resumed without", "compile+bf16+channels_last"])
def test_stage_with_speed_switches_exports_restores_evaluates_resumes(env, tmp_path, switches, resume_with):
    """Resumable state, exported weights and --init carry plain keys: a compiled run resumes without
    compile (eager backend: the same arithmetic), and the all-switch run resumes as itself."""
    out = tmp_path / "runs"
    cfg = config(1, env, switches)
    check_stage(out, run_stage(cfg, 1, out, recipe=RECIPE))
    rd = out / MODEL / "stage1"
    last = sorted((rd / "checkpoints").glob("step_*"))
    assert len(last) == 2, last   # steps 2 and 3 (checkpoint every 2 steps, 3 steps)
    first_run = load_file(str(last[-1] / "model.safetensors"))
    # interrupted after step 2: its checkpoint is the newest, nothing after it was written
    shutil.rmtree(last[-1])
    for name in ("trainer_state.json", "summary.json", "best.safetensors", "best.json"):
        (rd / name).unlink()
    shutil.rmtree(rd / "eval")
    check_stage(out, run_stage(config(1, env, resume_with), 1, out, recipe=RECIPE))
    resumed = load_file(str(last[-1] / "model.safetensors"))
    assert resumed.keys() == first_run.keys()
    assert max(float((resumed[k].float() - first_run[k].float()).abs().max()) for k in resumed) < 1e-6
    # the next stage starts from these weights (strict load into a fresh model)
    model, _, start = build_stage_model(config(2, env, switches), 2, out, None, RECIPE)
    assert start == rd / "best.safetensors"
    best = load_file(str(start))
    assert all(torch.equal(v, best[k]) for k, v in model.state_dict().items() if k in best)


@pytest.mark.gpu
def test_fp16_bf16_channels_last_compile_on_cuda(env, tmp_path):
    for precision in ("fp16", "bf16"):
        out = tmp_path / precision
        cfg = config(1, env, ["trainer.compile=true", f"trainer.mixed_precision={precision}",
                              "trainer.channels_last=true", "data.num_workers=2"])
        check_stage(out, run_stage(cfg, 1, out, recipe=RECIPE))
