"""Checkpoint safety: no unpickling of code, head presence enforced, prefixes stripped explicitly."""
from __future__ import annotations

import os

import pytest
import torch
from safetensors.torch import load_file

from tests.helpers.tiny import TinyNet, register
from utils.core.checkpoint import CheckpointError, export_weights, load_exported, load_weights, read_state_dict


class _Evil:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_pickle_with_code_is_refused(tmp_path):
    target = tmp_path / "pwned.txt"
    path = tmp_path / "evil.pt"
    torch.save({"weight": _Evil(str(target))}, path)
    with pytest.raises(CheckpointError, match="refused to unpickle"):
        read_state_dict(path)
    assert not target.exists()


def test_missing_head_names_the_keys(tmp_path):
    model = TinyNet()
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("head.")}
    with pytest.raises(CheckpointError, match=r"head\.weight.*|head\.bias"):
        load_weights(TinyNet(), state, strict=False)


def test_wrapper_prefixes_are_stripped_and_exports_are_clean(tmp_path):
    register()
    model = torch.nn.DataParallel(TinyNet())         # keys gain "module."
    wrapped = {f"_orig_mod.{k}": v for k, v in model.state_dict().items()}
    fresh = TinyNet()
    load_weights(fresh, wrapped)                     # module. and _orig_mod. both stripped
    for k, v in fresh.state_dict().items():
        assert torch.equal(v, model.module.state_dict()[k])
    path = export_weights(model, tmp_path / "best.safetensors", {"model": "tiny", "model_kwargs": {}})
    keys = load_file(str(path)).keys()
    assert keys and not any(k.startswith(("module.", "_orig_mod.")) for k in keys)
    meta = load_exported(path).meta
    assert meta["input_spec"]["image_size"] == 16 and meta["label_names"] == ["real", "fake"]
    assert not list(tmp_path.glob(".*tmp*")), "temporary files left behind"


def test_foreign_backbone_prefix_is_remapped_only_when_it_matches(tmp_path):
    model = TinyNet()
    foreign = {f"backbone.{k}": v.clone() for k, v in model.state_dict().items()}
    fresh = TinyNet()
    load_weights(fresh, foreign)
    assert torch.equal(fresh.head.weight, model.head.weight)


def test_checkpoint_for_another_model_is_refused(tmp_path):
    register()
    path = export_weights(TinyNet(), tmp_path / "w.safetensors", {"model": "tiny", "model_kwargs": {}})
    with pytest.raises(CheckpointError, match="model 'tiny', not 'tm'"):
        load_exported(path, expect_model="tm")
    os.remove(path.with_suffix(".json"))
    with pytest.raises(CheckpointError, match="sidecar"):
        load_exported(path)
