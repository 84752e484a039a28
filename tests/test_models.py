"""Models: every registered variant (forward, loss, backward, DDP-safety, export), GenConViT's repairs, the cue modules."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

import timm
from genconvit.model import SIZES as GENCONVIT_SIZES, GenConViTConfig
from specialists.net import SIZES as SPECIALIST_SIZES
from specialists.bg import face_mask, masked_stats
from specialists.cm import BlockDCT, CompressionCue, dct_basis
from specialists.rr import ResamplingCue
from utils.data.footage import astronaut
from utils.core.checkpoint import export_weights, load_exported
from utils.core.layers import resize
from utils.core.model import InputSpec
from utils.core.registry import create_model, list_models

GENCONVIT = ("genconvit_ed", "genconvit_vae", "genconvit")
SPECIALISTS = {"bg": 44, "av": 48, "cm": 40, "rr": 36, "tm": 52}  # cue-map channels
MODELS = tuple(list_models())   # every registered model gets the generic checks below, new ones included
FAMILIES = GENCONVIT + tuple(SPECIALISTS)   # the figures and input declarations checked per model
LOSS_KEYS = {
    "genconvit_ed": {"loss", "cls", "ae_rec"},
    "genconvit_vae": {"loss", "cls", "vae_rec", "kl"},
    "genconvit": {"loss", "cls", "cls_ed", "cls_vae", "ae_rec", "vae_rec", "kl"},
    **{name: {"loss", "cls"} for name in SPECIALISTS},
}
# parameter counts at full size, in millions (measured: ED 58.0, VAE 58.1, fused 60.7, specialists 19.6-20.2)
FULL_PARAMS_M = {**{name: (50, 70) for name in GENCONVIT}, **{name: (18, 23) for name in SPECIALISTS}}
INPUTS = {  # what each model must ask of the data pipeline: crop, clip?, audio?
    "genconvit_ed": ("face", False, False), "genconvit_vae": ("face", False, False),
    "genconvit": ("face", False, False), "bg": ("context", False, False), "cm": ("native", False, False),
    "rr": ("native", False, False), "tm": ("face", True, False), "av": ("face", True, True),
}

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _tiny(name: str, **kwargs):
    return create_model(name, size="tiny", **kwargs)


def _grad_norm(module: torch.nn.Module) -> float:
    return sum(float(p.grad.abs().sum()) for p in module.parameters() if p.grad is not None)


def test_every_variant_is_registered():
    assert set(GENCONVIT) | set(SPECIALISTS) <= set(MODELS)


@pytest.mark.parametrize("num_classes", [2, 3])
@pytest.mark.parametrize("name", MODELS)
def test_tiny_forward_backward(name, num_classes):
    model = _tiny(name, num_classes=num_classes).train()
    batch = model.dummy_batch(2)
    out = model(batch)
    assert out["logits"].shape == (2, num_classes)
    losses = model.loss(out, batch)
    assert set(losses) == LOSS_KEYS[name] if name in LOSS_KEYS else {"loss", "cls"} <= set(losses)
    assert all(torch.isfinite(v) for v in losses.values())
    losses["loss"].backward()
    head = [p for n, p in model.named_parameters() if n.startswith(model.head_prefixes)]
    assert head and sum(float(p.grad.abs().sum()) for p in head) > 0
    # every part of the model learns (backbones, cue modules, decoders) ...
    parts = [m for m in model.children() if any(True for _ in m.parameters())]
    assert all(_grad_norm(m) > 0 for m in parts)
    # ... and every parameter takes part in every step: DDP needs no find_unused_parameters
    assert [n for n, p in model.named_parameters() if p.grad is None] == []
    # gradients come in their parameter's memory layout: DDP's buckets need no copy (and do not warn
    # "grad strides do not match bucket view strides")
    assert [n for n, p in model.named_parameters() if p.grad.stride() != p.stride()] == []
    head_keys = [k for k in model.state_dict() if k.startswith(("head.", "heads."))]
    assert head_keys and all(k.startswith(model.head_prefixes) for k in head_keys)


@pytest.mark.parametrize("name", MODELS)
def test_export_round_trip(name, tmp_path):
    """Exported weights rebuild the same model from the sidecar alone: same logits, same input spec."""
    model = _tiny(name).eval()
    batch = model.dummy_batch(2)
    path = export_weights(model, tmp_path / "w.safetensors", {"model": name, "model_kwargs": {"size": "tiny"}})
    loaded = load_exported(path)
    assert loaded.input_spec == model.input_spec and loaded.label_names == ["real", "fake"]
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(batch)["logits"], model(batch)["logits"])


@pytest.mark.parametrize("name", FAMILIES)
def test_input_declaration(name):
    model = _tiny(name)
    spec = model.input_spec
    crop, clip, audio = INPUTS[name]
    assert (spec.crop, spec.clip_len > 1, spec.audio) == (crop, clip, audio)
    if clip:
        assert 2 <= spec.clip_len <= 4
    backbone = model.convnext if name in GENCONVIT else model.backbone
    cfg = timm.data.resolve_model_data_config(backbone)
    assert (spec.mean, spec.std) == (tuple(cfg["mean"]), tuple(cfg["std"]))


@pytest.mark.parametrize("name", list(SPECIALISTS))
def test_cue_map_channels(name):
    model = _tiny(name).eval()
    with torch.no_grad():
        cue = model(model.dummy_batch(1))["cue"]
    assert cue.shape == (1, SPECIALISTS[name], 7, 7)


def test_loss_uses_the_trainer_criterion():
    model = _tiny("genconvit")
    model.criterion = lambda logits, labels: logits.sum() * 0 + 7.0
    batch = model.dummy_batch(2)
    losses = model.loss(model(batch), batch)
    assert losses["cls"].item() == 7.0 and losses["cls_ed"].item() == 7.0


@pytest.mark.parametrize("name", FAMILIES)
def test_full_size_parameter_counts(name):
    with torch.device("meta"):  # the real constructors, without allocating or initialising weights
        model = create_model(name)
    n = sum(p.numel() for p in model.parameters()) / 1e6
    low, high = FULL_PARAMS_M[name]
    assert low <= n <= high, f"{name}: {n:.1f} M parameters"
    assert model.input_spec.image_size == 224
    if name in SPECIALISTS:
        assert model.backbone.num_features == 1792  # EfficientNet-B4 pooled features
        assert model.input_spec.clip_len == (8 if INPUTS[name][1] else 1)
    else:
        assert model.convnext.num_features == model.swin.num_features == 768  # ConvNeXt-T, Swin-T


@pytest.mark.parametrize("name", ["genconvit", "tm"])  # both paths; the clip model (8 frames)
def test_full_size_eval_forward(name):
    model = create_model(name).eval()
    if name == "genconvit":
        assert sum(p.numel() for p in model.parameters()) <= 150e6
    with torch.no_grad():
        out = model(model.dummy_batch(1))
    assert out["logits"].shape == (1, 2) and torch.isfinite(out["logits"]).all()


# ---------------------------------------------------------------------------------------------- GenConViT


def _zeroed(module: torch.nn.Module):
    return module.register_forward_hook(lambda m, args, out: torch.zeros_like(out))


@pytest.mark.parametrize("backbone", ["swin", "convnext"])
def test_genconvit_uses_both_backbones(backbone):
    model = _tiny("genconvit").eval()
    batch = model.dummy_batch(2)
    with torch.no_grad():
        reference = model(batch)["logits"]
        handle = _zeroed(getattr(model, backbone))
        zeroed = model(batch)["logits"]
        handle.remove()
    assert not torch.allclose(reference, zeroed)
    model.train()
    model.loss(model(batch), batch)["loss"].backward()
    assert _grad_norm(getattr(model, backbone)) > 0


def test_genconvit_backbones_see_image_and_reconstructions():
    model = _tiny("genconvit").eval()
    batch = model.dummy_batch(2)
    seen = {}
    for name in ("convnext", "swin"):
        getattr(model, name).register_forward_hook(
            lambda m, args, out, name=name: seen.update({name: args[0]}))
    with torch.no_grad():
        out = model(batch)
    inner = resize(model.normalize(batch["image"]), model.cfg.backbone_size)   # tiny: 112 px in, 64 px inside
    assert inner.shape[-1] == 64 < batch["image"].shape[-1]
    for x in seen.values():
        assert x.shape[0] == 6  # image + AE reconstruction + VAE reconstruction, batch 2
        torch.testing.assert_close(x[:2], inner)  # the normalised original, at the backbones' size
        torch.testing.assert_close(x[2:4], model.normalize(out["recon_ed"]))
        torch.testing.assert_close(x[4:], model.normalize(out["recon_vae"]))
    for key in ("recon_ed", "recon_vae"):  # decoder range = target range
        assert out[key].shape == inner.shape and 0 <= out[key].min() and out[key].max() <= 1


def test_genconvit_tiny_detail_stream_reaches_every_head_and_full_has_none():
    """The tiny size's high-pass detail stream feeds both heads (zeroing it changes both paths' logits and
    it gets gradients); the full size, whose weights import from the released code, has no such stream."""
    model = _tiny("genconvit").eval()
    batch = model.dummy_batch(2)
    with torch.no_grad():
        ref = model(batch)
        handle = model.detail.register_forward_hook(lambda m, a, out: torch.zeros_like(out))
        zeroed = model(batch)
        handle.remove()
    for p in ("ed", "vae"):
        assert not torch.allclose(ref[f"logits_{p}"], zeroed[f"logits_{p}"])
    model.train()
    model.loss(model(batch), batch)["loss"].backward()
    assert _grad_norm(model.detail) > 0 and model.feature_scale.grad is not None
    full = GenConViTConfig()
    assert full.detail_width == 0 and full.feature_scale_init == 0 and full.backbone_size == 0


def test_genconvit_eval_is_deterministic_and_train_samples():
    model = _tiny("genconvit_vae")
    batch = model.dummy_batch(2)
    model.eval()
    with torch.no_grad():
        a, b = model(batch), model(batch)
    assert torch.equal(a["logits"], b["logits"]) and torch.equal(a["recon_vae"], b["recon_vae"])
    model.train()
    with torch.no_grad():
        c, d = model(batch), model(batch)
    assert not torch.equal(c["recon_vae"], d["recon_vae"])  # reparameterised sample in training


def test_genconvit_loss_terms_and_kl_gradient():
    model = _tiny("genconvit", ae_weight=0.5, vae_weight=2.0, kl_weight=0.3)
    batch = model.dummy_batch(2)
    losses = model.loss(model(batch), batch)
    expected = losses["cls"] + 0.5 * losses["ae_rec"] + 2.0 * losses["vae_rec"] + 0.3 * losses["kl"]
    torch.testing.assert_close(losses["loss"], expected)
    torch.testing.assert_close(losses["cls"], (losses["cls_ed"] + losses["cls_vae"]) / 2)
    # in eval the latent is the mean, so only the KL term reaches the log-variance layer
    model.eval()
    model.zero_grad()
    model.loss(model(batch), batch)["loss"].backward()
    assert model.vae.logvar.weight.grad is not None and model.vae.logvar.weight.grad.abs().sum() > 0
    # reconstruction targets are the [0, 1] image (at the backbones' size)
    out = model(batch)
    torch.testing.assert_close(model.loss(out, batch)["ae_rec"],
                               F.mse_loss(out["recon_ed"], resize(batch["image"].float() / 255, 64)))


def _timm_tiny_backbones():
    cfg = GENCONVIT_SIZES["tiny"]
    convnext = timm.create_model(cfg.convnext, num_classes=0, **cfg.convnext_args)
    swin = timm.create_model(cfg.swin, num_classes=0, img_size=cfg.backbone_size or cfg.image_size,
                             **cfg.swin_args)
    return convnext, swin


def _assert_same_weights(module: torch.nn.Module, reference: torch.nn.Module):
    ref = reference.state_dict()
    got = module.state_dict()
    assert set(got) == set(ref)
    assert all(torch.equal(got[k], ref[k]) for k in ref)


def test_genconvit_keeps_loaded_backbone_weights(tmp_path):
    torch.manual_seed(123)
    convnext, swin = _timm_tiny_backbones()
    save_file(convnext.state_dict(), str(tmp_path / "convnext.safetensors"))
    torch.save(swin.state_dict(), tmp_path / "swin.pth")
    model = _tiny("genconvit", convnext_path=str(tmp_path / "convnext.safetensors"),
                  swin_path=str(tmp_path / "swin.pth"))
    _assert_same_weights(model.convnext, convnext)
    _assert_same_weights(model.swin, swin)
    # one file with both backbones under their prefixes (an exported GenConViT)
    both = {**{f"convnext.{k}": v for k, v in convnext.state_dict().items()},
            **{f"swin.{k}": v for k, v in swin.state_dict().items()}}
    save_file({k: v.contiguous() for k, v in both.items()}, str(tmp_path / "both.safetensors"))
    model = _tiny("genconvit_ed", pretrained_path=str(tmp_path / "both.safetensors"))
    _assert_same_weights(model.convnext, convnext)
    _assert_same_weights(model.swin, swin)
    with pytest.raises(RuntimeError, match="missing keys"):  # a file for another backbone is refused
        _tiny("genconvit_ed", convnext_path=str(tmp_path / "swin.pth"))


def test_specialist_keeps_loaded_backbone_weights(tmp_path):
    torch.manual_seed(321)
    reference = timm.create_model(SPECIALIST_SIZES["tiny"].backbone, num_classes=0)
    save_file(reference.state_dict(), str(tmp_path / "b0.safetensors"))
    model = _tiny("rr", pretrained_path=str(tmp_path / "b0.safetensors"))
    _assert_same_weights(model.backbone, reference)
    with pytest.raises(FileNotFoundError, match="pretrained_path"):
        _tiny("rr", pretrained_path=str(tmp_path / "missing.safetensors"))


def test_bad_arguments_are_explained():
    with pytest.raises(ValueError, match="tiny"):
        create_model("genconvit", size="huge")
    with pytest.raises(TypeError, match="valid"):
        create_model("tm", size="tiny", clip_length=4)
    with pytest.raises(TypeError, match="clip_len"):
        create_model("cm", size="tiny", clip_len=4)
    model = _tiny("tm")
    with pytest.raises(KeyError, match="clip"):
        model({"image": torch.zeros(1, 3, 64, 64, dtype=torch.uint8)})


# ---------------------------------------------------------------------------------------------- specialists


def test_tm_depends_on_frame_order():
    model = _tiny("tm").eval()
    batch = model.dummy_batch(2)
    with torch.no_grad():
        reference = model(batch)["logits"]
        reversed_ = model({**batch, "clip": batch["clip"].flip(1)})["logits"]
        shuffled = model({**batch, "clip": batch["clip"][:, [1, 0, 3, 2]]})["logits"]
    assert not torch.allclose(reference, reversed_, atol=1e-5)
    assert not torch.allclose(reference, shuffled, atol=1e-5)


def test_av_uses_audio_only_when_present():
    model = _tiny("av").eval()
    batch = model.dummy_batch(2)
    other = {**batch, "audio": torch.randn_like(batch["audio"])}
    with torch.no_grad():
        assert not torch.allclose(model(batch)["logits"], model(other)["logits"], atol=1e-5)
        silent = {**batch, "audio_mask": torch.zeros(2)}
        junk = {**silent, "audio": torch.full_like(batch["audio"], float("nan"))}
        assert torch.equal(model(silent)["logits"], model(junk)["logits"])
        # a mixed batch: the sample without audio ignores its audio, the other one does not
        mixed = {**batch, "audio_mask": torch.tensor([0.0, 1.0])}
        a = model(mixed)["logits"]
        b = model({**mixed, "audio": torch.randn_like(batch["audio"])})["logits"]
    assert torch.equal(a[0], b[0]) and not torch.allclose(a[1], b[1], atol=1e-5)
    # an all-silent training batch still reaches every parameter (DDP-safe)
    model.train()
    model.loss(model(silent), silent)["loss"].backward()
    assert [n for n, p in model.named_parameters() if p.grad is None] == []


def test_block_dct_is_orthonormal():
    basis = dct_basis(8).view(64, 64).double()
    torch.testing.assert_close(basis @ basis.t(), torch.eye(64, dtype=torch.float64), atol=1e-6, rtol=0)
    dct = BlockDCT(8)
    x = torch.rand(2, 1, 32, 48) * 255
    coeffs = dct(x)
    assert coeffs.shape == (2, 64, 4, 6)
    torch.testing.assert_close(dct.inverse(coeffs), x, atol=1e-3, rtol=0)
    torch.testing.assert_close(coeffs.pow(2).sum(), x.pow(2).sum(), rtol=1e-5, atol=0)  # Parseval
    flat = dct(torch.full((1, 1, 8, 8), 3.0))  # a constant block has only a DC term, 8 x value
    torch.testing.assert_close(flat[0, 0], torch.full((1, 1), 24.0))
    assert flat[0, 1:].abs().max() < 1e-5


def test_cm_refuses_crops_off_the_8x8_grid():
    model = create_model("cm", size="tiny").eval()
    with pytest.raises(ValueError, match="multiple of 8"):
        model({"image": torch.zeros(1, 3, 60, 60, dtype=torch.uint8)})


def test_bg_compares_face_with_surroundings():
    mask = face_mask(64, 64, 2.0)
    assert mask.sum() == 32 * 32 and mask[0, 0, 16:48, 16:48].all()
    model = _tiny("bg")
    x = torch.full((1, 3, 64, 64), 0.4)
    x[..., 16:48, 16:48] = 0.6  # a brighter face than its surroundings
    d = model.cue.descriptors(x)
    face, _ = masked_stats(d, mask)
    surround, _ = masked_stats(d, 1 - mask)
    torch.testing.assert_close(face[0, 0] - surround[0, 0], torch.tensor(0.2), atol=1e-5, rtol=0)


@pytest.fixture(scope="module")
def face_crop() -> torch.Tensor:
    """A 128-px crop around the astronaut's face (real photo), 1×3×H×W in [0, 1]."""
    return torch.from_numpy(astronaut()[64:192, 160:288].copy()).permute(2, 0, 1)[None].float() / 255


def test_rr_exposes_upsampling(face_crop):
    full = torch.from_numpy(astronaut()).permute(2, 0, 1)[None].float() / 255
    half = F.interpolate(full, scale_factor=0.5, mode="bilinear", antialias=True)
    upsampled = F.interpolate(half, scale_factor=2, mode="bilinear")[..., 64:192, 160:288]
    upsampled = (upsampled * 255).round() / 255  # stored as 8-bit, like a decoded frame
    cue = ResamplingCue(36, 8, 8, InputSpec(crop="native", image_size=128))
    (_, _, original), (_, _, resampled) = cue.features(face_crop), cue.features(upsampled)
    # interpolation empties the upper half of the residual spectrum; the low end stays
    assert resampled[0, :, 16:].mean() < 0.5 * original[0, :, 16:].mean()
    assert resampled[0, :, :4].mean() > 0.7 * original[0, :, :4].mean()


def _jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    rgb = (x[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    decoded = cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return torch.from_numpy(np.ascontiguousarray(decoded)).permute(2, 0, 1)[None].float() / 255


def test_cm_exposes_jpeg_compression(face_crop):
    cue = CompressionCue(40, 8, 8, InputSpec(crop="native", image_size=128))
    summary = []
    for x in (face_crop, _jpeg(face_crop, 90), _jpeg(face_crop, 50)):
        maps, stats = cue.features(x)
        zero_share, lattice = stats[0, :64].mean(), stats[0, 64:].view(-1, 64)[:, 1:].mean()
        summary.append((float(zero_share), float(lattice), float(maps[0, -2:].mean())))  # last 2: blockiness
    (z0, l0, b0), (z90, l90, b90), (z50, l50, b50) = summary
    assert z0 < z90 < z50 and l0 < l90 < l50  # more zeros, coefficients nearer the quantisation lattice
    assert b0 < b90 < b50  # stronger jumps across 8x8 block boundaries


@pytest.mark.parametrize("name", MODELS)
def test_bf16_autocast_channels_last_forward(name):
    model = _tiny(name).eval().to(memory_format=torch.channels_last)  # every weight must allow it
    batch = model.dummy_batch(2)
    with torch.no_grad():
        reference = model(batch)["logits"]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = model(batch)["logits"]
    assert torch.isfinite(logits.float()).all()
    torch.testing.assert_close(logits.float(), reference, atol=0.1, rtol=0.1)


@pytest.mark.gpu
@pytest.mark.parametrize("name", MODELS)
def test_cuda_bf16_channels_last_train_step(name):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    model = _tiny(name).cuda().to(memory_format=torch.channels_last).train()
    batch = {k: v.cuda() if torch.is_tensor(v) else v for k, v in model.dummy_batch(4).items()}
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = model(batch)
        losses = model.loss(out, batch)
    losses["loss"].backward()
    assert torch.isfinite(losses["loss"]) and out["logits"].shape == (4, 2)
