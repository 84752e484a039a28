"""Original GenConViT checkpoints (ED, VAE): exact parity after the label permutation, dead weights
dropped by name.

The upstream-layout networks are written in tests/helpers/upstream.py from the published description
(not from the GPL code): ConvNeXt-T on the image and on the reconstruction, the dead Swin "hybrid
embedding" stored twice (shared tensors), index 0 = FAKE. Saved as the released files are (raw state
dict) and as its trainer saves them ({"epoch", "state_dict", "optimizer", "min_loss"}).
"""
from __future__ import annotations

import json
import os

import pytest
import torch
from safetensors.torch import load_file

from launch.import_weights import main as import_main
from tests.helpers import upstream as up
from utils.core.checkpoint import load_exported, read_sidecar
from utils.core.errors import ConfigError
from utils.core.interop.importer import ArchitectureMismatch, HeadlessCheckpoint, plan_import
from utils.core.interop.mapping import get_mapping
from utils.core.interop.reading import ForeignCheckpoint
from utils.core.registry import create_model
from utils.orchestration import cli
from utils.orchestration.stage import check_init_spec

pytestmark = [pytest.mark.timeout(300), pytest.mark.usefixtures("one_thread")]
TOL = 1e-4


def _import(argv):
    """The command as its ``__main__`` runs it: errors become one line and an exit status."""
    return cli.run(lambda: import_main(argv))


def _compare(out, ref, size: int, seed: int = 11):
    loaded = load_exported(out)
    model, meta = loaded.model, loaded.meta
    x = up.dfb_inputs(2, size, seed=seed)
    with torch.no_grad():
        expected = ref(up.imagenet_norm(x))
        got = model({"image": x})["logits"]
    # upstream columns are (fake, real); ours (real, fake): compare by the sidecar's label names
    assert meta["source"]["upstream_label_order"] == ["fake", "real"]
    cols = [meta["label_names"].index(n) for n in meta["source"]["upstream_label_order"]]
    diff = float((got[:, cols] - expected).abs().max())
    assert diff <= TOL and torch.equal(got[:, cols].argmax(1), expected.argmax(1))
    return model, meta, diff, expected


@pytest.fixture(scope="module")
def ed(tmp_path_factory):
    torch.manual_seed(0)
    ref = up.randomise(up.RefGenConViTED(), up.imagenet_norm(up.dfb_inputs(2, 224, seed=5)), seed=4)
    d = tmp_path_factory.mktemp("ed")
    return ref, up.save_plain(ref.state_dict(), d / "genconvit_ed_inference.pth"), \
        up.save_training_dict(ref, d / "genconvit_ed_train.pth"), d


def test_ed_released_file_and_training_dict_match_upstream(ed, capsys):
    ref, raw, train, d = ed
    assert _import(["--format", "genconvit", "--arch", "ed", str(raw), str(d / "ed.safetensors")]) == 0
    assert _import(["--format", "genconvit", "--arch", "genconvit_original_ed", str(train),
                    str(d / "ed_train.safetensors"), "--no-hash"]) == 0
    printed = capsys.readouterr().out
    assert "training dict" in printed and "swin_embedder" in printed and "index 0 = FAKE" in printed
    model, meta, diff, expected = _compare(d / "ed.safetensors", ref, 224)
    print(f"parity genconvit/ed: max |logit diff| = {diff:.3g}")
    assert meta["model"] == "genconvit_original_ed" and meta["input_spec"]["image_size"] == 224
    assert meta["input_spec"]["mean"] == [0.485, 0.456, 0.406]
    # the training dict gives the same weights (compared tensor by tensor), and records its epoch and loss
    a, b = load_file(str(d / "ed.safetensors")), load_file(str(d / "ed_train.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    t_meta = json.loads((d / "ed_train.json").read_text())
    assert "epoch=7" in t_meta["source"]["container"]
    assert t_meta["source"]["training_dict"]["min_loss"] == 0.1234
    # the head is permuted, not flipped at prediction: row 0 of ours is upstream's row 1 (REAL)
    state = ref.state_dict()
    torch.testing.assert_close(model.head.fc2.weight, state["fc2.weight"][[1, 0]], rtol=0, atol=0)
    torch.testing.assert_close(model.head.fc2.bias, state["fc2.bias"][[1, 0]], rtol=0, atol=0)
    torch.testing.assert_close(model.head.fc.weight, state["fc.weight"], rtol=0, atol=0)


def test_ed_dead_swin_is_dropped_by_name_with_reasons(ed):
    ref, _, _, d = ed
    state = ref.state_dict()
    # the released layout really stores the embedder twice, sharing storage
    assert state["embedder.patch_embed.proj.weight"].data_ptr() == \
        state["backbone.patch_embed.backbone.patch_embed.proj.weight"].data_ptr()
    res = get_mapping("genconvit", "ed").apply(state)
    assert not res.unmapped and not res.collisions
    dropped = {x["rule"]: x for x in res.dropped_list()}
    assert set(dropped) == {"swin_embedder", "swin_patch_embed"}
    assert all(k.startswith("embedder.") for k in dropped["swin_embedder"]["keys"])
    assert all(k.startswith("backbone.patch_embed.") for k in dropped["swin_patch_embed"]["keys"])
    assert "never runs" in dropped["swin_embedder"]["reason"]
    assert "safetensors" in dropped["swin_patch_embed"]["reason"]
    assert len(res.mapped) + res.n_dropped == len(state)
    sidecar = read_sidecar(d / "ed.safetensors") if (d / "ed.safetensors").exists() else None
    if sidecar:
        assert {x["rule"] for x in sidecar["import"]["dropped"]} == {"swin_embedder", "swin_patch_embed"}


def _vae(size: int, seed: int = 0):
    torch.manual_seed(seed)
    return up.randomise(up.RefGenConViTVAE(size), up.imagenet_norm(up.dfb_inputs(2, size, seed=5)), seed=6)


def test_vae_is_deterministic_and_matches_upstream_with_z_equal_mu(tmp_path):
    ref = _vae(64)   # the released VAE is 224 px (see the full-size test); the layout scales with the size
    train = up.save_training_dict(ref, tmp_path / "genconvit_vae_train.pth")
    assert _import(["--format", "genconvit", "--arch", "vae", str(train), str(tmp_path / "vae.safetensors"),
                    "-q"]) == 0
    model, meta, diff, expected = _compare(tmp_path / "vae.safetensors", ref, 64)
    print(f"parity genconvit/vae (64 px): max |logit diff| = {diff:.3g}")
    assert meta["model_kwargs"] == {"image_size": 64} and meta["input_spec"]["image_size"] == 64
    assert any("z = mu" in n for n in meta["notes"])
    rules = {x["rule"]: x["count"] for x in meta["import"]["dropped"]}
    assert rules.keys() == {"latent_var", "encoder_fc", "swin_embedder", "swin_patch_embed", "fc3"}
    assert rules["encoder_fc"] == 4 and rules["fc3"] == 2 and rules["latent_var"] == 2
    x = up.dfb_inputs(2, 64, seed=11)
    with torch.no_grad():
        again = model({"image": x})["logits"]
        sampled = [ref(up.imagenet_norm(x), sample=True) for _ in range(2)]
    assert torch.equal(again, model({"image": x})["logits"])      # deterministic
    assert not torch.equal(sampled[0], sampled[1])                 # upstream's eval-mode sampling is not
    assert len(meta["source"]["sha256"]) == 64


def test_genconvit_refusals(ed, tmp_path, capsys):
    ref, raw, _, _ = ed
    state = ref.state_dict()

    def plan(s, arch):
        ck = ForeignCheckpoint("x.pth", s, list(s), "plain state dict")
        return plan_import(ck, get_mapping("genconvit", arch))

    with pytest.raises(ArchitectureMismatch, match="looks like the original GenConViT ED"):
        plan(state, "vae")
    headless = {k: v for k, v in state.items() if not k.startswith(("fc.", "fc2."))}
    with pytest.raises(HeadlessCheckpoint) as e:
        plan(headless, "ed")
    msg = str(e.value)
    assert "no classifier head" in msg and "original GenConViT ED" in msg
    assert "backbone.head.fc.weight [1000, 768]" in msg and "(imagenet)" in msg   # not a real/fake head
    p = tmp_path / "headless.pth"
    torch.save(headless, p)
    assert _import(["--format", "genconvit", "--arch", "ed", str(p), str(tmp_path / "o.safetensors")]) == 1
    assert "no classifier head" in capsys.readouterr().err


def test_released_size_weights_do_not_start_a_tiny_stage(ed):
    """The ED's weights fit its 64-px tiny build too (convolutions only): ``--init`` would silently train
    the 224-px release at 64 px, so the stage refuses weights exported for another input."""
    *_, d = ed
    if not (d / "ed.safetensors").exists():
        assert _import(["--format", "genconvit", "--arch", "ed", str(ed[1]), str(d / "ed.safetensors"),
                        "-q", "--no-hash"]) == 0
    meta = read_sidecar(d / "ed.safetensors")
    tiny = create_model("genconvit_original_ed", size="tiny")
    assert tiny.state_dict().keys() == load_file(str(d / "ed.safetensors")).keys()
    with pytest.raises(ConfigError, match=r"224-px face inputs.*size=tiny.*64-px.*model.size=full"):
        check_init_spec(tiny, meta, d / "ed.safetensors", "tiny")
    check_init_spec(create_model("genconvit_original_ed"), meta, d / "ed.safetensors", "full")


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("INTEROP_FULL_VAE"),
                    reason="full-size VAE (2.7 GB checkpoint, ~70 s, ~8 GB RAM): set INTEROP_FULL_VAE=1")
def test_full_size_vae_matches_upstream(tmp_path):
    ref = _vae(224)
    raw = up.save_plain(ref.state_dict(), tmp_path / "genconvit_vae_inference.pth")
    assert _import(["--format", "genconvit", "--arch", "vae", str(raw), str(tmp_path / "vae.safetensors"),
                    "--no-hash", "-q"]) == 0
    _, meta, diff, _ = _compare(tmp_path / "vae.safetensors", ref, 224)
    print(f"parity genconvit/vae (224 px, released size): max |logit diff| = {diff:.3g}")
    assert meta["model_kwargs"] == {}
