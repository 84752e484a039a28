"""DeepfakeBench checkpoints (Xception, F3Net, EfficientNet-B4): exact parity, the networks' facts, refusals.

The upstream networks are the real ones where a permissive PyPI package has them (Cadene's Xception
from ``pretrainedmodels``, ``efficientnet_pytorch``'s B4), put in DeepfakeBench's detector layout with
seeded weights and measured-then-perturbed BatchNorm statistics; checkpoints are saved the way its
trainer does (plain state dict, and the DDP ``module.`` form), imported with the command, loaded with
the toolkit's standard loader and compared on the same [0, 1] images at 256 px.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from baselines.f3net import band_edges, dct_matrix
from launch.import_weights import main as import_main
from tests.helpers import upstream as up
from utils.core.checkpoint import load_exported
from utils.core.interop.importer import (ArchitectureMismatch, HeadlessCheckpoint, MissingRequiredKeys,
                                         plan_import)
from utils.core.interop.inspect import expected_shapes
from utils.core.interop.mapping import get_mapping
from utils.core.interop.reading import ForeignCheckpoint, read_foreign
from utils.core.registry import create_model
from utils.orchestration import cli

pytestmark = [pytest.mark.timeout(300), pytest.mark.usefixtures("one_thread")]
TOL = 1e-4
ARCHS = ("xception", "f3net", "efficientnetb4")


def _need(module: str):
    return pytest.importorskip(module, reason=f"{module} (test extra) is the parity reference")


def _reference(arch: str) -> torch.nn.Module:
    torch.manual_seed({"xception": 0, "f3net": 1, "efficientnetb4": 2}[arch])
    if arch == "efficientnetb4":
        _need("efficientnet_pytorch")
        ref = up.DFBEfficientNetB4()
    else:
        if up.cadene_xception_module() is None:
            pytest.skip("pretrainedmodels (test extra) is the parity reference")
        ref = up.DFBXceptionDetector(fad=arch == "f3net")
    calib = up.dfb_inputs(4, 256 if arch == "f3net" else 128, seed=5)
    return up.randomise(ref, (calib - 0.5) / 0.5, seed=3)


@pytest.fixture(scope="module")
def refs(tmp_path_factory):
    """{arch: (reference model, plain .pth, DDP .pth, reference logits on IMAGES)}, built lazily."""
    d = tmp_path_factory.mktemp("dfb")
    cache = {}

    def get(arch):
        if arch not in cache:
            ref = _reference(arch)
            state = ref.state_dict()
            with torch.no_grad():
                logits = ref((IMAGES - 0.5) / 0.5)
            cache[arch] = (ref, up.save_plain(state, d / f"{arch}.pth"),
                           up.save_ddp(state, d / f"{arch}_ddp.pth"), logits)
        return cache[arch]
    get.dir = d
    return get


IMAGES = up.dfb_inputs(2, 256, seed=11)


def _import(argv):
    """The command as its ``__main__`` runs it: errors become one line and an exit status."""
    return cli.run(lambda: import_main(argv))


@pytest.mark.parametrize("arch", ARCHS)
def test_import_matches_upstream_logits_plain_and_ddp(refs, arch, capsys):
    ref, plain, ddp, expected = refs(arch)
    out = refs.dir / f"{arch}.safetensors"
    assert _import(["--format", "deepfakebench", "--arch", arch, str(plain), str(out), "--no-hash"]) == 0
    printed = capsys.readouterr().out
    assert "dropped" in printed or arch == "efficientnetb4"
    loaded = load_exported(out)
    model, meta = loaded.model, loaded.meta
    assert meta["model"] == arch and meta["label_names"] == ["real", "fake"]
    assert meta["input_spec"]["image_size"] == 256 and meta["input_spec"]["mean"] == [0.5, 0.5, 0.5]
    with torch.no_grad():
        got = model({"image": IMAGES})["logits"]
    cols = [meta["label_names"].index(n) for n in meta["source"]["upstream_label_order"]]
    diff = float((got[:, cols] - expected).abs().max())
    print(f"parity deepfakebench/{arch}: max |logit diff| = {diff:.3g} "
          f"(logits up to {float(expected.abs().max()):.3g})")
    assert diff <= TOL
    assert torch.equal(got[:, cols].argmax(1), expected.argmax(1))
    assert float((expected[0] - expected[1]).abs().max()) > 1e-3   # the output depends on the input
    # the DDP form reads as the very same state dict (the rest of the path is shared), and says so
    a, b = read_foreign(plain), read_foreign(ddp)
    assert b.wrappers == ["module."] and b.raw_keys[0].startswith("module.backbone.")
    assert list(a.state) == list(b.state) and all(torch.equal(a.state[k], b.state[k]) for k in a.state)
    assert load_file(str(out)).keys() == set(model.state_dict())


@pytest.mark.parametrize("arch", ARCHS)
def test_every_key_is_mapped_or_dropped_by_a_named_rule_and_head_rows_keep_their_order(refs, arch):
    ref, *_ = refs(arch)
    state = ref.state_dict()
    res = get_mapping("deepfakebench", arch).apply(state)
    assert not res.unmapped and not res.collisions and not res.missing_required
    assert len(res.mapped) + res.n_dropped == len(state)
    dropped = {d["rule"]: d for d in res.dropped_list()}
    if arch != "efficientnetb4":
        assert set(dropped) == {"adjust_channel"} and dropped["adjust_channel"]["count"] == 7
        assert all(k.startswith("backbone.adjust_channel.") for k in dropped["adjust_channel"]["keys"])
    else:
        assert not dropped
    head = {"xception": "backbone.last_linear.weight", "f3net": "backbone.last_linear.1.weight",
            "efficientnetb4": "backbone.last_layer.weight"}[arch]
    assert res.origin["head.weight"] == head
    assert torch.equal(res.mapped["head.weight"], state[head])   # label 1 = fake upstream too: no permutation
    own = expected_shapes(arch, **get_mapping("deepfakebench", arch).kwargs_for(state))
    assert set(res.mapped) == set(own)


def test_fad_band_masks_and_dct_follow_the_definition():
    assert band_edges(256) == [(0, 90.0), (90.0, 128), (128, 512), (0, 512)]
    fad = create_model("f3net").fad
    i, j = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    s = i + j
    for f, (lo, hi) in zip(fad.filters, [(0, 90), (90, 128), (128, 512), (0, 512)]):
        np.testing.assert_array_equal(f.base.numpy(), ((s > lo) & (s <= hi)).astype(np.float32))
    low = fad.filters[0].base
    assert low[0, 0] == 0 and low[0, 1] == 1 and low[45, 45] == 1 and low[45, 46] == 0   # (0, 90]
    assert fad.filters[3].base.sum() == 256 * 256 - 1                                     # all but DC
    d = dct_matrix(256)
    np.testing.assert_allclose(d.numpy(), up.dct_ortho(256), atol=1e-6)
    torch.testing.assert_close(d @ d.t(), torch.eye(256), atol=1e-5, rtol=0)
    assert torch.equal(fad.dct_t, fad.dct.t())
    assert fad(torch.rand(1, 3, 256, 256)).shape == (1, 12, 256, 256)
    with pytest.raises(ValueError, match="only at 256x256"):
        fad(torch.zeros(1, 3, 224, 224))
    with pytest.raises(ValueError, match="only at 256 px"):
        create_model("f3net", image_size=224)


def test_efficientnet_padding_surgery_gives_deepfakebench_geometry():
    model = create_model("efficientnetb4").eval()
    pads = model.depthwise_pads
    assert [pads[i] for i in (2, 6, 10, 22)] == [(0, 1, 0, 1), (2, 2, 2, 2), (0, 1, 0, 1), (1, 2, 1, 2)]
    assert model.backbone.conv_stem.padding == (0, 0) and model.backbone.conv_stem.stride == (2, 2)
    assert model.backbone.bn1.eps == 1e-3
    sizes = []
    hooks = [model.backbone.conv_stem.register_forward_hook(lambda m, i, o: sizes.append(o.shape[-1]))]
    # each stage's last projection conv (the forward runs blocks as functions, so hook a module inside them)
    last = [getattr(stage[-1], "conv_pwl", None) or stage[-1].conv_pw for stage in model.backbone.blocks]
    hooks += [m.register_forward_hook(lambda m, i, o: sizes.append(o.shape[-1])) for m in last]
    with torch.no_grad():
        model({"image": torch.rand(1, 3, 256, 256)})
    for h in hooks:
        h.remove()
    assert sizes == [127, 127, 63, 32, 16, 16, 8, 8]
    assert sorted(set(sizes), reverse=True) == [127, 63, 32, 16, 8]
    ep = pytest.importorskip("efficientnet_pytorch")
    ref = ep.EfficientNet.from_name("efficientnet-b4")
    pad_modules = [b._depthwise_conv.static_padding for b in ref._blocks]
    upstream = [tuple(p.padding) if hasattr(p, "padding") else (0, 0, 0, 0) for p in pad_modules]
    assert pads == upstream


# --------------------------------------------------------------------------------------------- refusals
def _plan(state, fmt, arch, path="ck.pth"):
    ck = ForeignCheckpoint(path, state, list(state), "plain state dict")
    return plan_import(ck, get_mapping(fmt, arch))


def test_checkpoint_without_head_is_refused_and_says_what_it_holds(refs):
    state = {k: v for k, v in refs("xception")[0].state_dict().items() if "last_linear" not in k}
    with pytest.raises(HeadlessCheckpoint) as e:
        _plan(state, "deepfakebench", "xception")
    msg = str(e.value)
    assert "no classifier head" in msg and "an Xception" in msg and "keys under backbone.*" in msg
    assert "backbone.last_linear.weight [2, 2048]" in msg and "What you can do" in msg


def test_f3net_without_fad_head_is_refused(refs):
    state = {k: v for k, v in refs("f3net")[0].state_dict().items() if not k.startswith("FAD_head.")}
    with pytest.raises(MissingRequiredKeys, match=r"f3net needs its FAD head \(FAD_head._DCT_all"):
        _plan(state, "deepfakebench", "f3net")


def test_one_architecture_given_as_another_names_the_mismatch_and_the_lookalike(refs):
    f3 = refs("f3net")[0].state_dict()
    with pytest.raises(ArchitectureMismatch) as e:
        _plan(f3, "deepfakebench", "xception")
    msg = str(e.value)
    assert "backbone.conv1.weight: checkpoint [32, 12, 3, 3] vs model [32, 3, 3, 3]" in msg
    assert "FAD_head" in msg and "--arch f3net" in msg
    x = refs("xception")[0].state_dict()
    with pytest.raises(MissingRequiredKeys, match="--arch xception"):
        _plan(x, "deepfakebench", "f3net")
    with pytest.raises(ArchitectureMismatch, match=r"last_linear.weight \[2, 2048\].*--arch xception"):
        _plan(x, "deepfakebench", "efficientnetb4")
    with pytest.raises(ArchitectureMismatch, match="head"):
        _plan(x, "genconvit", "ed")


def test_cli_exit_codes_and_code_in_pickle(refs, tmp_path, capsys):
    _, plain, _, _ = refs("xception")
    out = str(tmp_path / "o.safetensors")
    assert _import(["--format", "deepfakebench", "--arch", "resnet", str(plain), out]) == 2
    assert "choose one of: efficientnetb4" in capsys.readouterr().err
    missing = str(tmp_path / "missing.pth")
    assert _import(["--format", "deepfakebench", "--arch", "xception", missing, out]) == 2
    assert _import(["--format", "deepfakebench", "--arch", "xception", str(plain), out[:-12] + ".pt"]) == 2
    evil = tmp_path / "evil.pth"
    torch.save(torch.nn.Linear(2, 2), evil)   # a pickled module: loading it would run code
    assert _import(["--format", "deepfakebench", "--arch", "xception", str(evil), out]) == 1
    assert "refused to unpickle code" in capsys.readouterr().err
    headless = tmp_path / "headless.pth"
    torch.save({k: v for k, v in torch.load(plain).items() if "last_linear" not in k}, headless)
    assert _import(["--format", "deepfakebench", "--arch", "xception", str(headless), out]) == 1
    err = capsys.readouterr().err
    assert "no classifier head" in err and "Traceback" not in err
    assert not (tmp_path / "o.safetensors").exists()
    # --arch auto picks the architecture whose rules fit every key
    auto = str(tmp_path / "a.safetensors")
    assert _import(["--format", "deepfakebench", "--arch", "auto", str(plain), auto, "--no-hash", "-q"]) == 0
    assert load_exported(tmp_path / "a.safetensors").name == "xception"
