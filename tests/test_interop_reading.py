"""The importer's building blocks: reading foreign files safely, the rule semantics, head finding."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from utils.core.errors import CheckpointError, UnknownNameError
from utils.core.interop.inspect import find_heads, guess_family, key_groups
from utils.core.interop.mapping import KeyMapping, drop, fit, get_mapping, list_mappings, rename, swap_rows
from utils.core.interop.reading import read_foreign

STATE = {"backbone.conv.weight": torch.ones(4, 3, 3, 3), "backbone.fc.weight": torch.ones(2, 4),
         "backbone.fc.bias": torch.zeros(2)}


@pytest.mark.parametrize("wrap,container,wrappers", [
    (lambda s: s, "plain state dict", []),
    (lambda s: {f"module.{k}": v for k, v in s.items()}, "plain state dict", ["module."]),
    (lambda s: {f"module._orig_mod.module.{k}": v for k, v in s.items()}, "plain state dict",
     ["module.", "_orig_mod.", "module."]),
    (lambda s: {"epoch": 3, "state_dict": s, "optimizer": {"state": {}, "param_groups": []}, "min_loss": 0.5},
     "GenConViT training dict", []),
    (lambda s: {"model": s, "epoch": 1}, "training dict, weights under 'model'", []),
])
def test_containers_and_wrappers(tmp_path, wrap, container, wrappers):
    p = tmp_path / "ck.pth"
    torch.save(wrap(STATE), p)
    ck = read_foreign(p)
    assert ck.container.startswith(container) and ck.wrappers == wrappers
    assert list(ck.state) == list(STATE) and ck.file_format == "torch zip"
    if "epoch" in ck.extra:
        assert ck.extra["epoch"] in (1, 3)


def test_legacy_format_safetensors_and_bad_files(tmp_path):
    p = tmp_path / "legacy.pth"
    torch.save(STATE, p, _use_new_zipfile_serialization=False)
    assert read_foreign(p).file_format == "torch legacy"
    s = tmp_path / "w.safetensors"
    save_file(STATE, str(s))
    assert read_foreign(s).file_format == "safetensors" and set(read_foreign(s).state) == set(STATE)
    partial = {"module.a": torch.zeros(1), "b": torch.zeros(1)}   # a prefix on some keys is not a wrapper
    torch.save(partial, p)
    assert read_foreign(p).wrappers == [] and set(read_foreign(p).state) == set(partial)
    torch.save([torch.zeros(1)], p)
    with pytest.raises(CheckpointError, match="does not hold a state dict"):
        read_foreign(p)
    torch.save({"config": {"lr": 1}, "weights": [1, 2]}, p)
    with pytest.raises(CheckpointError, match="without a state dict"):
        read_foreign(p)
    torch.save(torch.nn.Linear(1, 1), p)
    with pytest.raises(CheckpointError, match="refused to unpickle code"):
        read_foreign(p)
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        read_foreign(tmp_path / "junk.pth")
    with pytest.raises(CheckpointError, match="not found"):
        read_foreign(tmp_path / "none.pth")


def test_rules_first_match_wins_drops_need_a_reason_and_collisions_are_caught():
    with pytest.raises(ValueError, match="must say why"):
        drop(r"x", "x", "")
    m = KeyMapping("f", "a", rules=(
        drop(r"backbone\.fc\.bias", "fc_bias", "not used"),
        rename(r"backbone\.fc\.(weight|bias)", r"head.\1", "head", transform=swap_rows((1, 0))),
        rename(r"backbone\.(.+)", r"net.\1", "rest"),
    ), head=(r"backbone\.fc\.weight",))
    state = {**STATE, "backbone.fc.weight": torch.tensor([[1.0, 1, 1, 1], [2, 2, 2, 2]]),
             "other.x": torch.ones(1)}
    r = m.apply(state)
    assert r.origin == {"head.weight": "backbone.fc.weight", "net.conv.weight": "backbone.conv.weight"}
    assert r.dropped["fc_bias"].keys == ["backbone.fc.bias"] and r.unmapped == ["other.x"]
    assert r.mapped["head.weight"][0, 0] == 2          # rows permuted
    clash = KeyMapping("f", "b", rules=(rename(r"backbone\.fc\.(weight|bias)", "head.weight", "h"),), head=())
    assert clash.apply(STATE).collisions == [("head.weight", "backbone.fc.weight", "backbone.fc.bias")]
    f = fit({"a": torch.zeros(2), "b": torch.zeros(3)}, {"a": (2,), "b": (4,), "c": (1,)})
    assert f.missing == ["c"] and f.shape_mismatch == [("b", (3,), (4,))] and not f.ok
    with pytest.raises(ValueError, match="2 output rows"):
        swap_rows((1, 0))(torch.zeros(3, 4), "w")


def test_head_finder_ignores_layers_inside_blocks_and_embeddings():
    z = torch.zeros
    s = {"encoder.layers.3.mlp.fc2.weight": z(8, 32), "token_type_embeddings.weight": z(2, 8),
         "embeddings.position_embedding.weight": z(5, 8), "fc.weight": z(500, 2000), "fc2.weight": z(2, 500),
         "fc2.bias": z(2), "backbone.head.fc.weight": z(1000, 8), "heads.ed.1.weight": z(64, 16),
         "heads.ed.4.weight": z(2, 64)}
    heads = {h.weight: h.kind for h in find_heads(s)}
    assert heads == {"fc2.weight": "detector", "backbone.head.fc.weight": "imagenet",
                     "heads.ed.4.weight": "detector"}
    assert key_groups(["a.b.c", "a.b.d", "a.e"]) == (2, [("a.b", 2), ("a.e", 1)])
    assert guess_family(["x.block12.rep.0.pointwise.weight"]).startswith("an Xception")
    assert guess_family(["foo"]) is None


def test_mappings_are_found_through_the_model_entry_points_and_unknown_names_list_the_valid_ones():
    names = {(m.format, m.arch) for m in list_mappings()}
    assert {("deepfakebench", "xception"), ("deepfakebench", "f3net"), ("deepfakebench", "efficientnetb4"),
            ("genconvit", "genconvit_original_ed"), ("genconvit", "genconvit_original_vae")} <= names
    assert get_mapping("genconvit", "ed") is get_mapping("genconvit", "genconvit_original_ed")   # alias
    with pytest.raises(UnknownNameError, match="import formats: deepfakebench, genconvit"):
        get_mapping("nosuch", "xception")
    with pytest.raises(UnknownNameError, match=r"choose one of: .*ed \(or ed, genconvit_ed\)"):
        get_mapping("genconvit", "resnet")
