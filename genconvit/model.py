"""GenConViT, repaired: ConvNeXt + Swin on the image and on its reconstructions (ED and/or VAE path).

GenConViT (Wodajo, Atnafu and Akhtar, "Deepfake Video Detection Using Generative Convolutional
Vision Transformer", 2023) classifies a face from ConvNeXt (Liu et al., "A ConvNet for the 2020s",
CVPR 2022) and Swin Transformer (Liu et al., ICCV 2021) features of the image and of its
autoencoder (ED) and variational-autoencoder (VAE, Kingma and Welling, 2014) reconstructions.
This implementation keeps that design and differs from the released code where the code did not do
what the paper describes:

* both backbones run on every forward and both feed every classifier (Swin never ran in the original);
* pooled features (``num_classes=0``), not 1000-class ImageNet logits;
* the normalised original image reaches the backbones, and so do the reconstructions (normalised the
  same way); reconstruction targets are the image in [0, 1], the range of the Sigmoid decoders;
* the loss holds the AE reconstruction, the VAE reconstruction and the KL term, with weights; the
  reconstructions are computed once, inside ``forward`` (no second pass outside the DDP wrapper);
* eval is deterministic (the VAE decodes its mean); no custom initialisation touches timm modules;
* small convolutional VAE latent: the fused model has 60.7 M parameters, not ~700 M (VAE alone).

The ``tiny`` size (64-px backbones, for CPU demos and tests, trained from random weights) adds two things
the paper's model does not have, both off at ``full`` (whose weights import from the released code):
a *detail stream* — the 112-px input's fixed 3×3 high-pass residual through a small stride-8 conv net,
pooled and concatenated into every head — and a learned scale on the backbone features entering the
heads, starting at ``feature_scale_init``. Trained from random weights for a few hundred steps on
identities it can memorise, the tiny GenConViT otherwise learns who is in the picture (training loss
0.25, validation AUC ~0.69 on the sample FF++) rather than how the face was made; blending and
re-sampling leave their trace in the high frequencies a 64-px crop resamples away. This is the same
remedy the temporal specialist uses (its detail stream), applied to one frame.

Fusion rule. For an image ``x`` let ``f(x) = [convnext(x), swin(x)]`` (pooled features concatenated).
A path with reconstruction ``r`` classifies ``[f(x), f(r)]`` with its own MLP head: concatenation keeps
each backbone's evidence separate (the head learns how much to trust each, and zeroing either one
changes the output), and seeing image and reconstruction side by side lets the head use their
discrepancy, the premise of GenConViT (fakes reconstruct differently from reals). The fused
``genconvit`` shares one ConvNeXt and one Swin between both paths (the image features are computed once)
and returns the mean of the two paths' logits; both heads are trained, each with the classification
criterion on its own logits, so either path is also usable alone.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from utils.core.model import CamLayer, DeepfakeModel, InputSpec
from utils.core.registry import register_model

from .autoencoders import ConvAutoencoder, ConvVAE, kl_divergence
from utils.core.backbone import create_backbone, data_config
from utils.core.layers import conv_bn_act, highpass, resize, stride8_stem

logger = logging.getLogger(__name__)

PATHS = ("ed", "vae")
DETAIL_GRID = 4       # the detail stream's map reaches the heads as DETAIL_GRID × DETAIL_GRID cells


@dataclass(frozen=True)
class GenConViTConfig:
    """The numbers that distinguish one GenConViT size from another (``**kwargs`` override them)."""

    image_size: int = 224
    convnext: str = "convnext_tiny"
    convnext_args: dict = field(default_factory=dict)   # timm architecture arguments (e.g. ls_init_value)
    swin: str = "swin_tiny_patch4_window7_224"
    swin_args: dict = field(default_factory=dict)   # timm architecture arguments (tiny Swin)
    ae_channels: tuple = (16, 32, 64, 128, 256)     # five max-pool stages: 224 -> 7
    vae_channels: tuple = (32, 64, 128, 256)        # four stride-2 stages: 224 -> 14
    latent_channels: int = 16                       # VAE latent 16x14x14
    hidden: int = 512                               # head MLP width
    drop_rate: float = 0.2                          # head dropout
    drop_path_rate: float = 0.1                     # stochastic depth inside the backbones
    ae_weight: float = 1.0                          # weight of the AE reconstruction (MSE, per pixel)
    vae_weight: float = 1.0                         # weight of the VAE reconstruction (MSE, per pixel)
    kl_weight: float = 0.01                         # weight of the KL term (per latent element)
    backbone_size: int = 0                          # backbones, AE and VAE see the input resized to this (0: as is)
    detail_width: int = 0                           # >0: high-pass detail stream of this width (0: off)
    feature_scale_init: float = 0.0                 # >0: learned scale on backbone features, starting here


SIZES = {
    "full": GenConViTConfig(),
    "tiny": GenConViTConfig(
        # BatchNorm, full-strength layer scale and convolutional MLPs in the ConvNeXt: trained from random
        # weights for a few hundred steps, the LayerNorm/1e-6-layer-scale default barely moves (demo at chance)
        image_size=112, backbone_size=64, detail_width=32, feature_scale_init=0.01, convnext="convnext_atto",
        convnext_args=dict(ls_init_value=1.0, norm_layer="batchnorm2d", conv_mlp=True),
        swin_args=dict(embed_dim=32, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8), window_size=4),
        ae_channels=(8, 16, 32), vae_channels=(8, 16, 32), latent_channels=4, hidden=64, drop_path_rate=0.0),
}


def _head(in_features: int, hidden: int, num_classes: int, drop: float) -> nn.Sequential:
    return nn.Sequential(nn.Dropout(drop), nn.Linear(in_features, hidden), nn.GELU(), nn.Dropout(drop),
                         nn.Linear(hidden, num_classes))


class GenConViT(DeepfakeModel):
    """GenConViT with the ED path, the VAE path, or both (``paths``); see the module docstring."""

    def __init__(self, cfg: GenConViTConfig, paths: tuple[str, ...] = PATHS, num_classes: int = 2,
                 pretrained: bool = False, convnext_weights: str | None = None,
                 swin_weights: str | None = None,
                 convnext_prefix: str = "", swin_prefix: str = ""):
        if not paths or any(p not in PATHS for p in paths):
            raise ValueError(f"paths must be a non-empty subset of {PATHS}, got {paths}")
        convnext = create_backbone(cfg.convnext, pretrained=pretrained, weights=convnext_weights,
                                   prefix=convnext_prefix, drop_path_rate=cfg.drop_path_rate, **cfg.convnext_args)
        swin = create_backbone(cfg.swin, pretrained=pretrained, weights=swin_weights, prefix=swin_prefix,
                               img_size=cfg.backbone_size or cfg.image_size, drop_path_rate=cfg.drop_path_rate, **cfg.swin_args)
        dc_c, dc_s = data_config(convnext), data_config(swin)
        if (dc_c["mean"], dc_c["std"]) != (dc_s["mean"], dc_s["std"]):
            raise ValueError(f"{cfg.convnext} and {cfg.swin} expect different normalisation; "
                             "pick a matching pair")
        spec = InputSpec(crop="face", image_size=cfg.image_size, mean=tuple(dc_c["mean"]),
                         std=tuple(dc_c["std"]))
        super().__init__(spec, num_classes)
        self.cfg, self.paths = cfg, tuple(paths)
        # ConvNeXt's LayerNorm blocks hand channels-last activations to their convolutions (the norm and
        # MLP run on N×H×W×C), so its weight gradients come out channels-last; with the weights in the
        # same layout DDP's gradient buckets match them (no per-bucket copy, no stride warning). The
        # BatchNorm build's gradients follow the weights' layout, so channels-last suits both.
        self.convnext, self.swin = convnext.to(memory_format=torch.channels_last), swin
        self.ae = ConvAutoencoder(cfg.ae_channels) if "ed" in paths else None
        self.vae = ConvVAE(cfg.vae_channels, cfg.latent_channels) if "vae" in paths else None
        feat = 2 * (convnext.num_features + swin.num_features)  # [f(x), f(r)], f = [convnext, swin]
        # a 4×4 map, not one pooled vector: where the detail changes (a blend boundary) is the evidence
        self.detail = (nn.Sequential(stride8_stem(cfg.detail_width),
                                     conv_bn_act(cfg.detail_width, cfg.detail_width, 3, 2),
                                     nn.AdaptiveAvgPool2d(DETAIL_GRID), nn.Flatten())
                       if cfg.detail_width else None)
        feat += cfg.detail_width * DETAIL_GRID ** 2
        self.feature_scale = (nn.Parameter(torch.full((1,), cfg.feature_scale_init))
                              if cfg.feature_scale_init else None)
        self.heads = nn.ModuleDict({p: _head(feat, cfg.hidden, num_classes, cfg.drop_rate)
                                    for p in self.paths})
        self.head_prefixes = tuple(f"heads.{p}." for p in self.paths)

    def cam_layers(self) -> dict[str, CamLayer]:
        """ConvNeXt's and Swin's last stages; at sizes with a detail stream its 7×7 map first (what the
        tiny model reads most: demo seed 1's stage 1 on the sample FF++ test split, video AUC 1.00; detail
        zeroed 0.58, both backbones zeroed 0.90, Swin zeroed 0.996)."""
        layers = super().cam_layers()
        if self.detail is not None:
            layers = {"detail": CamLayer(self.detail[1], self.cfg.detail_width), **layers}
        return layers

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled ConvNeXt and Swin features of normalised images, concatenated (N × (Dc + Ds))."""
        return torch.cat([self.convnext(x), self.swin(x)], dim=1)

    def forward(self, batch: dict) -> dict:
        image = self.normalize(batch["image"])
        x = resize(image, self.cfg.backbone_size)
        out: dict = {}
        recons = []
        if self.ae is not None:
            out["recon_ed"] = self.ae(x)
            recons.append(out["recon_ed"])
        if self.vae is not None:
            out["recon_vae"], out["mu"], out["logvar"] = self.vae(x)
            recons.append(out["recon_vae"])
        # one call per backbone on [image; reconstructions]: weights are read once, the batch is larger
        feats = self.features(torch.cat([x, *(self.normalize(r) for r in recons)]))
        if self.feature_scale is not None:
            feats = self.feature_scale * feats
        feats = feats.chunk(1 + len(recons))
        extra = [self.detail(highpass(image))] if self.detail is not None else []
        for i, p in enumerate(self.paths):
            out[f"logits_{p}"] = self.heads[p](torch.cat([feats[0], feats[i + 1], *extra], dim=1))
        out["logits"] = torch.stack([out[f"logits_{p}"] for p in self.paths]).mean(0)
        return out

    def loss(self, outputs: dict, batch: dict) -> dict:
        """``cls`` (mean over paths of the criterion on each path's logits) + weighted reconstruction/KL."""
        labels, target = batch["label"], resize(self.to_unit(batch["image"]), self.cfg.backbone_size)
        terms = {f"cls_{p}": self.criterion(outputs[f"logits_{p}"], labels) for p in self.paths}
        cls = torch.stack(list(terms.values())).mean()
        terms = {"cls": cls, **terms} if len(self.paths) > 1 else {"cls": cls}
        total = cls
        if self.ae is not None:
            terms["ae_rec"] = F.mse_loss(outputs["recon_ed"].float(), target)
            total = total + self.cfg.ae_weight * terms["ae_rec"]
        if self.vae is not None:
            terms["vae_rec"] = F.mse_loss(outputs["recon_vae"].float(), target)
            terms["kl"] = kl_divergence(outputs["mu"], outputs["logvar"])
            total = total + self.cfg.vae_weight * terms["vae_rec"] + self.cfg.kl_weight * terms["kl"]
        return {"loss": total, **terms}


def _create_genconvit(paths: tuple[str, ...], size: str = "full", pretrained: bool = False,
                      pretrained_path: str | None = None, num_classes: int = 2, drop_rate: float | None = None,
                      convnext_path: str | None = None, swin_path: str | None = None, **overrides) -> GenConViT:
    """Build a GenConViT variant: the size's numbers, overridden by ``overrides``.

    ``pretrained_path`` is one file holding both backbones under ``convnext.`` and ``swin.`` (e.g. an
    exported GenConViT); ``convnext_path`` / ``swin_path`` are single-backbone files (e.g. timm's).
    """
    if size not in SIZES:
        raise ValueError(f"unknown size '{size}' for GenConViT; choose one of {sorted(SIZES)}")
    names = {f.name for f in dataclasses.fields(GenConViTConfig)}
    if unknown := sorted(set(overrides) - names):
        valid = sorted(names | {"convnext_path", "swin_path"})
        raise TypeError(f"unknown GenConViT arguments {unknown}; valid: {valid}")
    if drop_rate is not None:
        overrides["drop_rate"] = drop_rate
    cfg = dataclasses.replace(SIZES[size], **overrides)
    model = GenConViT(cfg, paths, num_classes, pretrained=pretrained,
                      convnext_weights=convnext_path or pretrained_path or None,
                      swin_weights=swin_path or pretrained_path or None,
                      convnext_prefix="" if convnext_path or not pretrained_path else "convnext.",
                      swin_prefix="" if swin_path or not pretrained_path else "swin.")
    logger.info("GenConViT %s (%s): %.1f M parameters", "+".join(paths), size,
                sum(p.numel() for p in model.parameters()) / 1e6)
    return model


@register_model("genconvit_ed")
def genconvit_ed(**kwargs) -> GenConViT:
    """GenConViT's autoencoder (ED) path: image and AE reconstruction through ConvNeXt + Swin."""
    return _create_genconvit(("ed",), **kwargs)


@register_model("genconvit_vae")
def genconvit_vae(**kwargs) -> GenConViT:
    """GenConViT's VAE path: image and VAE reconstruction through ConvNeXt + Swin."""
    return _create_genconvit(("vae",), **kwargs)


@register_model("genconvit")
def genconvit(**kwargs) -> GenConViT:
    """Both paths on shared backbones; logits = mean of the two paths' logits."""
    return _create_genconvit(PATHS, **kwargs)
