"""Every user error is a message, not a traceback: one ``error:`` line naming the key or the file, the
exit status of its kind (2 for usage and config errors, 1 for unusable inputs), and nothing written.

The commands run in-process through the same entry point (``utils.orchestration.cli.run``) their
``__main__`` uses, on fixtures each case builds itself.
"""
from __future__ import annotations

import importlib
import json
import os
import re
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from utils.core.checkpoint import export_weights
from utils.core.registry import create_model
from utils.data.footage import carphone_path
from utils.orchestration import cli

class _Evil:
    def __init__(self, target: str):
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


COMMANDS = {name: f"launch.{mod}" for name, mod in (("train", "train"), ("predict", "predict"),
                                                     ("evaluate", "evaluate"), ("extract", "extract_faces"),
                                                     ("cv", "cv"), ("compare", "compare"), ("explain", "explain"))}


@pytest.fixture(scope="module")
def files(tmp_path_factory, sample_data) -> dict[str, Path]:
    """Every broken input the cases need, built once."""
    d = tmp_path_factory.mktemp("inputs")
    torch.manual_seed(0)
    config = {"data": {"dataset": "ffpp", "num_workers": 0, "batch_size": 4}}
    good = export_weights(create_model("cm", size="tiny"), d / "good.safetensors",
                          {"model": "cm", "model_kwargs": {"size": "tiny"}, "config": config})
    raw, sidecar = good.read_bytes(), good.with_suffix(".json").read_text()

    def weights(name: str, data: bytes, meta: str = sidecar) -> Path:
        (d / f"{name}.safetensors").write_bytes(data)
        (d / f"{name}.json").write_text(meta)
        return d / f"{name}.safetensors"

    headless = {k: v for k, v in load_file(str(good)).items() if not k.startswith("head.")}
    save_file(headless, str(d / "headless.safetensors"))
    (d / "headless.json").write_text(sidecar)
    torch.save({"w": _Evil(str(d / "pwned"))}, d / "evil.pth")   # a pickle whose loading would run code
    (d / "evil.json").write_text(sidecar)
    meta = json.loads(sidecar)
    state = d / "bg_state"
    state.mkdir()
    (state / "trainer_state.json").write_text(json.dumps({"model": "bg", "global_step": 3}))
    dfdc = d / "dfdc" / "dfdc_train_part_0"
    dfdc.mkdir(parents=True)
    (dfdc / "a.mp4").write_bytes(b"")
    (dfdc / "metadata.json").write_text('{\n  "a.mp4": {"label": "MAYBE", "split": "train"}\n}\n')
    recipes = {"syntax": "data:\n  batch_size: [8\n", "stagekey": "stages:\n  one: {}\n",
               "duplicate": "optim:\n  lr: 0.1\n  lr: 0.2\n"}
    for name, text in recipes.items():
        (d / f"{name}.yaml").write_text(text)
    return {"good": good, "zero": weights("zero", b""), "truncated": weights("truncated", raw[: len(raw) // 2]),
            "random": weights("random", os.urandom(4096)), "headless": d / "headless.safetensors",
            "evil": d / "evil.pth", "unknown": weights("unknown", raw, json.dumps({**meta, "model": "nosuch"})),
            "badjson": weights("badjson", raw, "{not json"), "missing": d / "nosuch.safetensors",
            "bg_state": state, "dfdc": d / "dfdc", "video": carphone_path(), "ffpp": sample_data / "ffpp",
            **{f"recipe_{k}": d / f"{k}.yaml" for k in recipes}}


def cv(*extra: str) -> list[str]:
    return ["--model", "cm", "--config", "tests/configs/cv.yaml", "--output-dir", "{out}", *extra]


def train(*extra: str) -> list[str]:
    return ["--model", "cm", "--stage", "1", "--config", "tests/configs/e2e.yaml", "--output-dir", "{out}", *extra]


# (case id, command, arguments with {placeholders}, exit status, what the error line must name)
CASES = [
    ("loss", "train", train("--set", "optim.loss=nosuch"), 2, r"optim\.loss.*not one of"),
    ("monitor", "train", train("--set", "trainer.monitor=val/nosuch"), 2, r"trainer\.monitor.*val/auc"),
    ("size", "train", train("--set", "model.size=huge"), 2, r"model\.size.*full, tiny"),
    ("precision", "train", train("--set", "trainer.mixed_precision=fp8"), 2, r"mixed_precision"),
    ("optimizer", "train", train("--set", "optim.optimizer=adam"), 2, r"optim\.optimizer.*adamw, sgd"),
    ("balance", "train", train("--set", "data.balance=foo"), 2, r"data\.balance"),
    ("dataset", "train", train("--set", "data.dataset=imagenet"), 2, r"data\.dataset.*celebdf"),
    ("list", "train", train("--set", "data.train_chunks=[1,2"), 2, r"data\.train_chunks.*not valid YAML"),
    ("frames", "train", train("--set", "data.frames_per_video=0"), 2, r"data\.frames_per_video.*>= 1"),
    ("fp16-cpu", "train", train("--set", "trainer.mixed_precision=fp16"), 2, r"fp16 needs a CUDA"),
    ("syntax", "train", ["--model", "cm", "--stage", "1", "--config", "{recipe_syntax}", "--output-dir", "{out}"],
     2, r"syntax\.yaml:\d+: not valid YAML"),
    ("stagekey", "train", ["--model", "cm", "--stage", "1", "--config", "{recipe_stagekey}",
                           "--output-dir", "{out}"], 2, r"stagekey\.yaml.*stage keys must be numbers"),
    ("duplicate", "train", ["--model", "cm", "--stage", "1", "--config", "{recipe_duplicate}",
                            "--output-dir", "{out}"], 2, r"duplicate\.yaml:3: key 'lr' is written twice"),
    ("unknown-model", "train", ["--model", "nosuch", "--stage", "1", "--output-dir", "{out}"], 2, r"tm"),
    ("init-zero", "train", train("--init", "{zero}"), 1, r"zero\.safetensors is empty"),
    ("init-truncated", "train", train("--init", "{truncated}"), 1, r"truncated\.safetensors.*not a readable"),
    ("init-random", "train", train("--init", "{random}"), 1, r"random\.safetensors.*not a readable"),
    ("resume-other", "train", train("--resume", "{bg_state}"), 2, r"belongs to model 'bg', not 'cm'"),
    ("resume-stages", "train", train("--stage", "1", "2", "--resume", "{bg_state}"), 2,
     r"--resume PATH names one stage's state"),
    ("stage-list", "train", train("--stage", "1", "3"), 2, r"stage 3 is not defined"),
    ("dfdc-metadata", "train", train("--set", "data.dataset=dfdc", "data.root={dfdc}", "data.train_chunks=[0]"),
     2, r"metadata\.json:2: a\.mp4: expected \"label\""),
    ("predict-missing", "predict", ["{video}", "--checkpoint", "{missing}"], 1, r"checkpoint not found.*nosuch"),
    ("predict-zero", "predict", ["{video}", "--checkpoint", "{zero}"], 1, r"zero\.safetensors is empty"),
    ("predict-truncated", "predict", ["{video}", "--checkpoint", "{truncated}"], 1, r"truncated\.safetensors"),
    ("predict-random", "predict", ["{video}", "--checkpoint", "{random}"], 1, r"random\.safetensors"),
    ("predict-headless", "predict", ["{video}", "--checkpoint", "{headless}"], 1, r"classifier head"),
    ("predict-pickle", "predict", ["{video}", "--checkpoint", "{evil}"], 1, r"evil\.pth.*refused to unpickle"),
    ("predict-sidecar-model", "predict", ["{video}", "--checkpoint", "{unknown}"], 1, r"unknown\.json.*'nosuch'"),
    ("predict-sidecar-json", "predict", ["{video}", "--checkpoint", "{badjson}"], 1, r"badjson\.json: not valid"),
    ("predict-cuda", "predict", ["{video}", "--checkpoint", "{good}", "--device", "cuda"], 2, r"no CUDA device"),
    ("predict-threshold", "predict", ["{video}", "--checkpoint", "{good}", "--threshold", "2"], 2, r"\[0, 1\]"),
    ("predict-frames", "predict", ["{video}", "--checkpoint", "{good}", "--frames", "0"], 2, r"--frames"),
    ("evaluate-zero", "evaluate", ["--checkpoint", "{zero}", "--dataset", "ffpp", "--out", "{out}"], 1,
     r"zero\.safetensors is empty"),
    ("evaluate-random", "evaluate", ["--checkpoint", "{random}", "--dataset", "ffpp", "--out", "{out}"], 1,
     r"random\.safetensors"),
    ("evaluate-val-split", "evaluate", ["--checkpoint", "{good}", "--dataset", "ffpp", "--root", "{ffpp}",
                                        "--val-split", "nosuch", "--out", "{out}"], 2, r"no nosuch split"),
    ("train-sources", "train", train("--set", "data.root={ffpp}", "data.train_sources=[Nope]"), 2,
     r"data\.train_sources: unknown source.*Deepfakes"),
    ("cv-model", "cv", ["--model", "nosuch", "--output-dir", "{out}"], 2, r"registered models.*tm"),
    ("cv-folds", "cv", cv("--folds", "1"), 2, r"--folds must be at least 2"),
    ("cv-val-fraction", "cv", cv("--val-fraction", "1.5"), 2, r"--val-fraction must lie in \(0, 1\)"),
    ("cv-hold-out", "cv", cv("--hold-out-source", "Nope", "--set", "data.root={ffpp}"), 2,
     r"--hold-out-source Nope: not a source here.*FaceSwap"),
    ("cv-eval-sources", "cv", cv("--set", "data.root={ffpp}", "data.eval_sources=[Nope]"), 2,
     r"data\.eval_sources: unknown source"),
    ("compare-one", "compare", ["{out}"], 2, r"at least two experiments"),
    ("compare-missing", "compare", ["{missing}", "{out}"], 1, r"not found.*nosuch"),
    ("explain-missing", "explain", ["{video}", "--checkpoint", "{missing}", "--out", "{out}"], 1,
     r"checkpoint not found"),
    ("explain-layer", "explain", ["{video}", "--checkpoint", "{good}", "--out", "{out}", "--layers", "nosuch"], 2,
     r"--layers nosuch.*backbone, cue"),
    ("explain-truncated", "explain", ["{video}", "--checkpoint", "{truncated}", "--out", "{out}"], 1,
     r"truncated\.safetensors"),
    ("extract-frames", "extract", ["--dataset", "ffpp", "--root", "{ffpp}", "--cache", "{out}", "--frames", "0"],
     2, r"data\.frames_per_video.*>= 1"),
    ("extract-root", "extract", ["--dataset", "dfdc", "--root", "{missing}", "--cache", "{out}"], 2, r"nosuch"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_user_error_is_one_line_with_its_exit_status_and_writes_nothing(case, files, tmp_path, capsys,
                                                                        monkeypatch):
    _, command, args, code, named = case
    out = tmp_path / "out"
    values = {**{k: str(v) for k, v in files.items()}, "out": str(out)}
    argv = [a.format(**values) for a in args]
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    main = importlib.import_module(COMMANDS[command]).main
    status = cli.run(lambda: main(argv))
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err
    assert status == code, err
    assert re.search(named, errors[0]), errors[0]
    assert not out.exists(), f"{command} wrote {sorted(p.name for p in out.rglob('*'))} before refusing"
    assert not (files["evil"].parent / "pwned").exists()
    shutil.rmtree(tmp_path, ignore_errors=True)
