"""Original GenConViT checkpoints (ED, VAE): exact parity after the label permutation, dead weights
dropped by name.

The upstream-layout networks are written in tests/helpers/upstream.py from the published description
(not from the GPL code): ConvNeXt-T on the image and on the reconstruction, the dead Swin "hybrid
embedding" stored twice (shared tensors), index 0 = FAKE. Saved as the released files are (raw state
dict) and as its trainer saves them ({"epoch", "state_dict", "optimizer", "min_loss"}).

Every layer of the references holds variance-preserving random weights (the autoencoders included), so
the logits are of order 1 and depend on the input, and the parity compares the reconstructions as well
as the logits. ``test_a_planted_mapping_mistake_fails_the_parity`` shows that the comparison catches
what a wrong mapping would do: a channel order, a swapped channel, a zeroed block, an unpermuted head.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
from types import SimpleNamespace

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
TOL = 1e-4          # max |logit difference|; the logits are of order 1 (checked)
REC_TOL = 1e-4      # max |reconstruction difference| relative to the reference reconstruction's RMS
CAUGHT = 10         # a planted mistake must miss a tolerance by this factor at least


def _import(argv):
    """The command as its ``__main__`` runs it: errors become one line and an exit status."""
    return cli.run(lambda: import_main(argv))


def _reference(ref, x) -> tuple[torch.Tensor, torch.Tensor]:
    """Upstream's (logits in its (fake, real) order, reconstruction) for [0, 1] images ``x``."""
    with torch.no_grad():
        return ref(up.imagenet_norm(x)), ref.reconstruct(up.imagenet_norm(x))


def _parity(model, meta: dict, expected: tuple, x: torch.Tensor) -> dict:
    """How far the imported model is from upstream: logits (compared by the sidecar's label names) and
    the autoencoder's reconstruction (relative to its RMS)."""
    logits, recon = expected
    with torch.no_grad():
        out = model({"image": x})
    got = out["logits"][:, [meta["label_names"].index(n) for n in meta["source"]["upstream_label_order"]]]
    rec = out["recon_ed" if "recon_ed" in out else "recon_vae"]
    return {"logits": float((got - logits).abs().max()),
            "recon": float((rec - recon).abs().max() / recon.pow(2).mean().sqrt()),
            "argmax": bool(torch.equal(got.argmax(1), logits.argmax(1)))}


def _matches(d: dict) -> bool:
    return d["logits"] <= TOL and d["recon"] <= REC_TOL and d["argmax"]


def _check_reference(expected: tuple) -> None:
    """The references are not degenerate: logits of order 1 that differ between the two inputs, and a
    reconstruction that does too."""
    logits, recon = expected
    assert 0.3 <= float(logits.abs().max()) <= 30, logits
    assert float((logits[0] - logits[1]).abs().max()) >= 0.05, logits
    assert float((recon[0] - recon[1]).abs().max()) >= 0.1 * float(recon.pow(2).mean().sqrt())


def _compare(out, ref, size: int, seed: int = 11):
    loaded = load_exported(out)
    model, meta = loaded.model, loaded.meta
    x = up.dfb_inputs(2, size, seed=seed)
    expected = _reference(ref, x)
    _check_reference(expected)
    # upstream columns are (fake, real); ours (real, fake): compare by the sidecar's label names
    assert meta["source"]["upstream_label_order"] == ["fake", "real"]
    d = _parity(model, meta, expected, x)
    assert _matches(d), d
    return model, meta, d, expected


def _ed_reference():
    torch.manual_seed(0)
    calib = up.imagenet_norm(up.dfb_inputs(2, 224, seed=5))
    return up.randomise_every_layer(up.RefGenConViTED(), calib, seed=4)


@pytest.fixture(scope="module")
def ed(tmp_path_factory):
    """The reference ED, its two file forms, and both imported (what the import printed is kept), so
    every test of this module sees the same files whatever ran before it."""
    ref = _ed_reference()
    d = tmp_path_factory.mktemp("ed")
    raw = up.save_plain(ref.state_dict(), d / "genconvit_ed_inference.pth")
    train = up.save_training_dict(ref, d / "genconvit_ed_train.pth")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert _import(["--format", "genconvit", "--arch", "ed", str(raw), str(d / "ed.safetensors")]) == 0
        assert _import(["--format", "genconvit", "--arch", "genconvit_original_ed", str(train),
                        str(d / "ed_train.safetensors"), "--no-hash"]) == 0
    return SimpleNamespace(ref=ref, raw=raw, train=train, dir=d, printed=printed.getvalue())


def test_ed_released_file_and_training_dict_match_upstream(ed):
    ref, d, printed = ed.ref, ed.dir, ed.printed
    assert "training dict" in printed and "swin_embedder" in printed and "index 0 = FAKE" in printed
    model, meta, diff, expected = _compare(d / "ed.safetensors", ref, 224)
    print(f"parity genconvit/ed: max |logit diff| = {diff['logits']:.3g} (logits up to "
          f"{float(expected[0].abs().max()):.2f}), reconstruction {diff['recon']:.3g} of its RMS")
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
    ref, d = ed.ref, ed.dir
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
    sidecar = read_sidecar(d / "ed.safetensors")
    assert {x["rule"] for x in sidecar["import"]["dropped"]} == {"swin_embedder", "swin_patch_embed"}


def _vae(size: int, seed: int = 0):
    torch.manual_seed(seed)
    calib = up.imagenet_norm(up.dfb_inputs(2, size, seed=5))
    return up.randomise_every_layer(up.RefGenConViTVAE(size), calib, seed=6)


@pytest.fixture(scope="module")
def vae(tmp_path_factory):
    """The reference VAE at 64 px (the released one is 224 px, see the full-size test; the layout scales
    with the size), saved as a training dict and imported."""
    ref = _vae(64)
    d = tmp_path_factory.mktemp("vae")
    train = up.save_training_dict(ref, d / "genconvit_vae_train.pth")
    out = d / "vae.safetensors"
    assert _import(["--format", "genconvit", "--arch", "vae", str(train), str(out), "-q"]) == 0
    return SimpleNamespace(ref=ref, dir=d)


def test_vae_is_deterministic_and_matches_upstream_with_z_equal_mu(vae):
    ref = vae.ref
    model, meta, diff, expected = _compare(vae.dir / "vae.safetensors", ref, 64)
    print(f"parity genconvit/vae (64 px): max |logit diff| = {diff['logits']:.3g} (logits up to "
          f"{float(expected[0].abs().max()):.2f}), reconstruction {diff['recon']:.3g} of its RMS")
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
    state = ed.ref.state_dict()

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
    d = ed.dir
    meta = read_sidecar(d / "ed.safetensors")
    tiny = create_model("genconvit_original_ed", size="tiny")
    assert tiny.state_dict().keys() == load_file(str(d / "ed.safetensors")).keys()
    with pytest.raises(ConfigError, match=r"224-px face inputs.*size=tiny.*64-px.*model.size=full"):
        check_init_spec(tiny, meta, d / "ed.safetensors", "tiny")
    check_init_spec(create_model("genconvit_original_ed"), meta, d / "ed.safetensors", "full")


# ------------------------------------------------------------------------- planted mapping mistakes
def _swap(t: torch.Tensor, dim: int, i: int = 0, j: int = 1) -> torch.Tensor:
    idx = list(range(t.shape[dim]))
    idx[i], idx[j] = j, i
    return t.index_select(dim, torch.tensor(idx))


def _zero(*keys):
    return lambda s: s.update({k: torch.zeros_like(s[k]) for k in keys})


def _flip_input(key: str):
    """RGB read as BGR: the input channels of the first convolution reversed."""
    return lambda s: s.update({key: s[key].flip(1)})


def _transposed_latent(s: dict) -> None:
    """The latent read as (C, W, H) instead of (C, H, W): the rows of ``mu`` in the other grid order."""
    w, b = s["encoder.mu.weight"], s["encoder.mu.bias"]
    side = int((w.shape[0] // 256) ** 0.5)
    order = torch.arange(w.shape[0]).view(256, side, side).transpose(1, 2).reshape(-1)
    s["encoder.mu.weight"], s["encoder.mu.bias"] = w[order], b[order]


# what a wrong rule in a mapping would do to the imported state dict (this toolkit's key names)
MISTAKES = {
    "ed": {
        "encoder_reads_bgr": _flip_input("encoder.features.0.weight"),
        "encoder_channel_swapped": lambda s: s.update({k: _swap(s[k], 0) for k in (
            "encoder.features.6.weight", "encoder.features.6.bias")}),
        "encoder_block_zeroed": _zero("encoder.features.9.weight", "encoder.features.9.bias"),
        "encoder_zeroed": lambda s: _zero(*[k for k in s if k.startswith("encoder.")])(s),
        "decoder_channel_swapped": lambda s: s.update({k: _swap(s[k], dim) for k, dim in (
            ("decoder.features.4.weight", 1), ("decoder.features.4.bias", 0))}),
        "convnext_reads_bgr": _flip_input("backbone.stem.0.weight"),
        "head_rows_not_permuted": lambda s: s.update({k: s[k].flip(0) for k in ("head.fc2.weight",
                                                                                "head.fc2.bias")}),
    },
    "vae": {
        "encoder_reads_bgr": _flip_input("encoder.features.0.weight"),
        "batchnorm_statistics_swapped": lambda s: s.update({k: _swap(s[k], 0) for k in (
            "encoder.features.4.running_mean", "encoder.features.4.running_var")}),
        "latent_grid_transposed": _transposed_latent,
        "encoder_block_zeroed": _zero("encoder.features.6.weight", "encoder.features.6.bias"),
        "decoder_channel_swapped": lambda s: s.update({k: _swap(s[k], dim) for k, dim in (
            ("decoder.features.2.weight", 1), ("decoder.features.2.bias", 0))}),
    },
}


@pytest.fixture(scope="module")
def imported(ed, vae):
    """Per architecture: the imported model, its sidecar, its input size, upstream's outputs."""
    out = {}
    for arch, ns, size in (("ed", ed, 224), ("vae", vae, 64)):
        loaded = load_exported(ns.dir / f"{arch}.safetensors")
        x = up.dfb_inputs(2, size, seed=11)
        out[arch] = (loaded.model, loaded.meta, x, _reference(ns.ref, x))
        assert _matches(_parity(loaded.model, loaded.meta, out[arch][3], x)), arch   # the correct import
    return out


@pytest.mark.parametrize("arch,mistake", [(a, m) for a, ms in MISTAKES.items() for m in ms])
def test_a_planted_mapping_mistake_fails_the_parity(imported, arch, mistake):
    """Each mistake, applied to the correctly imported weights, makes the comparison the parity tests
    use fail, by a wide margin (logits or reconstruction off by ``CAUGHT`` x the tolerance)."""
    model, meta, x, expected = imported[arch]
    good = {k: v.clone() for k, v in model.state_dict().items()}
    bad = {k: v.clone() for k, v in good.items()}
    MISTAKES[arch][mistake](bad)
    model.load_state_dict(bad, strict=True)
    try:
        d = _parity(model, meta, expected, x)
    finally:
        model.load_state_dict(good, strict=True)
    print(f"{arch} {mistake}: |logit diff| {d['logits']:.3g}, reconstruction {d['recon']:.3g} of its RMS")
    assert not _matches(d)
    assert d["logits"] >= CAUGHT * TOL or d["recon"] >= CAUGHT * REC_TOL, d


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("INTEROP_FULL_VAE"),
                    reason="full-size VAE (2.7 GB checkpoint, ~70 s, ~8 GB RAM): set INTEROP_FULL_VAE=1")
def test_full_size_vae_matches_upstream(tmp_path):
    ref = _vae(224)
    raw = up.save_plain(ref.state_dict(), tmp_path / "genconvit_vae_inference.pth")
    assert _import(["--format", "genconvit", "--arch", "vae", str(raw), str(tmp_path / "vae.safetensors"),
                    "--no-hash", "-q"]) == 0
    _, meta, diff, _ = _compare(tmp_path / "vae.safetensors", ref, 224)
    print(f"parity genconvit/vae (224 px, released size): max |logit diff| = {diff['logits']:.3g}, "
          f"reconstruction {diff['recon']:.3g} of its RMS")
    assert meta["model_kwargs"] == {}
