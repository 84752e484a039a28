"""The speed switches through a whole stage: train -> export -> restore best -> evaluate -> resume -> the
next stage's init, with ``trainer.compile`` alone, with no switch, and with every CPU switch together.

Each run is watched (:class:`SwitchProbe`): TorchDynamo's frame counter says whether the model was
compiled, and a forward hook on every convolution and linear layer records the dtype it computes in,
whether autocast is on, and the memory format of its weight and input. Every run asserts the state of
every switch, on or off, so a switch that stops taking effect (or one that leaks into a run without
it) fails here.

``trainer.compile_backend=eager`` runs TorchDynamo's graph capture (what the checkpoint, export and
restore paths have to see through) without inductor's C++ build, which costs minutes per model on a
2-core CPU; fp16 needs CUDA and is checked on a GPU only.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from accelerate.state import AcceleratorState
from torch._dynamo.utils import counters
from safetensors.torch import load_file

from utils.core.checkpoint import build_from_sidecar, load_weights, read_sidecar
from utils.core.recipe import load_recipe
from utils.engine.trainer import Trainer
from utils.orchestration.curriculum import resolve_stage
from utils.orchestration.stage import build_stage_model, run_stage

RECIPE = str(Path(__file__).resolve().parent / "configs" / "e2e.yaml")
MODEL = "tm"
COMPILE = ["trainer.compile=true", "trainer.compile_backend=eager"]
ALL_CPU = COMPILE + ["trainer.mixed_precision=bf16", "trainer.channels_last=true"]

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def env(sample_data, stage_cache_root):
    mp = pytest.MonkeyPatch()
    mp.setenv("DEEPFAKE_SAMPLE_DIR", str(sample_data))
    yield stage_cache_root        # the shared FF++ cache of the end-to-end settings, built once per session
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


def _unambiguous(x: torch.Tensor) -> bool:
    """A 4-D tensor whose two memory formats differ (more than one channel and one position)."""
    return x.dim() == 4 and x.shape[1] > 1 and x.shape[2] * x.shape[3] > 1


def _channels_last(x: torch.Tensor) -> bool:
    return x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


class SwitchProbe:
    """What the switches did during one run: compiled frames, and per convolution / linear call of a
    training step the output dtype, autocast's state and the memory format of the weight and the input
    (the face detector that builds the cache is not the model, so only training steps are watched)."""

    def __enter__(self):
        torch._dynamo.reset()                   # a fresh model always compiles anew
        counters.clear()
        self.calls: list[dict] = []
        self.in_step = False
        self.train_step = Trainer.train_step

        def train_step(trainer, batch):
            self.in_step = True
            try:
                return self.train_step(trainer, batch)
            finally:
                self.in_step = False

        @torch._dynamo.disable                  # runs eagerly, on the real tensors, inside a compiled model
        def hook(module, args, output):
            if self.in_step and isinstance(module, (nn.Conv2d, nn.Linear)) and torch.is_tensor(output):
                x, device = args[0], output.device.type
                self.calls.append({
                    "conv": isinstance(module, nn.Conv2d), "dtype": output.dtype,
                    "autocast": torch.is_autocast_enabled(device) and torch.get_autocast_dtype(device),
                    "weight_cl": _channels_last(module.weight) if _unambiguous(module.weight) else None,
                    "input_cl": _channels_last(x) if _unambiguous(x) else None})

        self.handle = nn.modules.module.register_module_forward_hook(hook)
        Trainer.train_step = train_step
        return self

    def __exit__(self, *exc):
        Trainer.train_step = self.train_step
        self.handle.remove()
        self.compiled_frames = int(counters["frames"]["ok"])

    def check(self, compiled: bool, autocast: torch.dtype | None, channels_last: bool) -> None:
        """Assert the state of every switch, on or off (``autocast``: the mixed-precision dtype or None)."""
        assert self.calls, "no convolution or linear layer ran"
        assert (self.compiled_frames > 0) == compiled, self.compiled_frames
        dtypes = {c["dtype"] for c in self.calls}
        assert dtypes == {autocast or torch.float32}, dtypes
        assert {c["autocast"] for c in self.calls} == {autocast or False}
        weights = [c["weight_cl"] for c in self.calls if c["weight_cl"] is not None]
        inputs = [c["input_cl"] for c in self.calls if c["conv"] and c["input_cl"] is not None]
        assert weights and inputs
        assert all(weights) if channels_last else not any(weights), weights
        # the images enter as NCHW; the convolutions hand channels-last activations on
        assert (sum(inputs) >= len(inputs) // 2) if channels_last else not any(inputs), inputs


def stage(out: Path, cache: Path, switches: list[str]) -> tuple[dict, SwitchProbe]:
    """One run of stage 1 in this process (accelerate keeps one state per process: reset it first)."""
    AcceleratorState._reset_state(reset_partial_state=True)
    with SwitchProbe() as probe:
        summary = run_stage(config(1, cache, switches), 1, out, recipe=RECIPE)
    check_stage(out, summary)
    return json.loads((out / MODEL / "stage1" / "trainer_state.json").read_text()), probe


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
    _, probe = stage(out, env, COMPILE)
    probe.check(compiled=True, autocast=None, channels_last=False)
    step3 = rd / "checkpoints" / "step_00000003"
    compiled = load_file(str(step3 / "model.safetensors"))
    interrupt_after_step_2(rd)
    _, probe = stage(out, env, [])
    probe.check(compiled=False, autocast=None, channels_last=False)
    plain = load_file(str(step3 / "model.safetensors"))
    assert plain.keys() == compiled.keys()
    assert max(float((plain[k].float() - compiled[k].float()).abs().max()) for k in plain) < 1e-6
    interrupt_after_step_2(rd)
    state, probe = stage(out, env, ALL_CPU)
    probe.check(compiled=True, autocast=torch.bfloat16, channels_last=True)
    assert state["global_step"] == 3 and state["finished"] and len(state["history"]) == 1
    AcceleratorState._reset_state(reset_partial_state=True)
    model, _, start = build_stage_model(config(2, env, ALL_CPU), 2, out, None, RECIPE)  # the next stage
    assert start == rd / "best.safetensors"
    best = load_file(str(start))
    assert all(torch.equal(v, best[k]) for k, v in model.state_dict().items() if k in best)


@pytest.mark.gpu
def test_fp16_bf16_channels_last_compile_on_cuda(env, tmp_path):
    for precision, dtype in (("fp16", torch.float16), ("bf16", torch.bfloat16)):
        out = tmp_path / precision
        _, probe = stage(out, env, ["trainer.compile=true", f"trainer.mixed_precision={precision}",
                                    "trainer.channels_last=true", "data.num_workers=2"])
        probe.check(compiled=True, autocast=dtype, channels_last=True)
