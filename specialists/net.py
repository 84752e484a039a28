"""SpecialistNet: EfficientNet-B4 features + a specialist cue module + a head on both.

A specialist is a backbone that sees the (normalised) input, and a *cue module* that turns the same
input — modelled for one cue: lighting, compression, resampling, time, audio-visual sync — into a
C×7×7 map. Every cue module ends in the shared :class:`BranchAttention` block (four convolution branches
with kernel sizes 1/3/5/7, concatenated and gated by a sigmoid attention). The head classifies the
concatenation of the backbone's pooled features (averaged over the frames of a clip) and the
flattened cue map. The five specialists differ only in their cue module and their input declaration;
each is registered by a few lines passing numbers to :func:`_create_specialist`.

The backbone's pooled features enter the head through a learned scale (``feature_scale_init``: 1 at
full size, small at the tiny size). A tiny backbone trained from random weights carries no usable
evidence for its first few hundred steps; at full strength its 1280 noisy features drowned the cue in
the head (the tiny temporal model stayed at chance). The backbone may also see a downscaled copy of the
input (``backbone_size``), so that a cue module can read detail at a resolution the backbone does not pay for.

Cue modules take ``(video, feats, batch)``: ``video`` B×T×3×H×W in [0, 1] (T = 1 for single images),
``feats`` B×T×D the backbone's per-frame pooled features, ``batch`` the batch dict (audio lives there).
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from utils.core.backbone import create_backbone, data_config
from utils.core.model import CamLayer, DeepfakeModel, InputSpec
from utils.core.layers import conv_bn_act, resize  # noqa: F401  (conv_bn_act: the cue modules import it from here)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SpecialistConfig:
    """The numbers that distinguish one size from another (``**kwargs`` of a builder override them)."""

    backbone: str = "efficientnet_b4"   # pooled 1792-d features
    image_size: int = 224               # 224 / 32 = the 7x7 grid of the backbone's last stage
    clip_len: int = 8                   # frames per clip (clip models only)
    width: int = 64                     # channel width inside the cue modules
    hidden: int = 512                   # head MLP width
    grid: int = 7                       # cue map is C x grid x grid
    backbone_size: int = 0              # the backbone sees the input resized to this (0: image_size)
    feature_scale_init: float = 1.0     # initial scale of the backbone's features in the head
    drop_rate: float = 0.3              # head dropout
    drop_path_rate: float = 0.1         # stochastic depth inside the backbone
    context_scale: float = 2.0          # context crop = this x the face box (bg)
    n_mels: int = 64                    # log-mel bands (av)
    mel_per_frame: int = 4              # log-mel columns per video frame (av)


SIZES = {
    "full": SpecialistConfig(),
    # tinynet_e: EfficientNet-B0 scaled down (TinyNet-E, 0.8 M parameters), a third of B0's cost per frame
    "tiny": SpecialistConfig(backbone="tinynet_e", image_size=64, clip_len=4, width=16, hidden=64,
                             drop_path_rate=0.0, n_mels=32, feature_scale_init=0.01),
}


def luma(x: torch.Tensor) -> torch.Tensor:
    """ITU-R BT.601 luma (the Y that JPEG and H.264 compress) of RGB images …×3×H×W → …×1×H×W."""
    r, g, b = x.unbind(-3)
    return (0.299 * r + 0.587 * g + 0.114 * b).unsqueeze(-3)


class BranchAttention(nn.Module):
    """Four conv branches of kernel sizes 1/3/5/7, concatenated, gated by a sigmoid attention, pooled.

    The branches see the cue at several scales; the 1×1 attention over their concatenation
    (channel and position at once) lets the module suppress the scales and places without evidence.
    """

    def __init__(self, in_channels: int, out_channels: int, grid: int = 7,
                 kernels: Sequence[int] = (1, 3, 5, 7)):
        super().__init__()
        if out_channels % len(kernels):
            raise ValueError(f"out_channels={out_channels} must be divisible by the {len(kernels)} branches")
        branch = out_channels // len(kernels)
        self.branches = nn.ModuleList(conv_bn_act(in_channels, branch, k) for k in kernels)
        self.attention = nn.Conv2d(out_channels, out_channels, 1)
        self.grid, self.out_channels = grid, out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.cat([branch(x) for branch in self.branches], dim=1)
        return F.adaptive_avg_pool2d(y * torch.sigmoid(self.attention(y)), self.grid)


class SpecialistNet(DeepfakeModel):
    """Backbone + cue module + head; see the module docstring."""

    def __init__(self, cue: type[nn.Module], channels: int, spec_args: dict, cfg: SpecialistConfig,
                 num_classes: int = 2, pretrained: bool = False, weights: str | None = None):
        backbone = create_backbone(cfg.backbone, pretrained=pretrained, weights=weights,
                                   drop_path_rate=cfg.drop_path_rate)
        dc = data_config(backbone)
        spec = InputSpec(image_size=cfg.image_size, mean=tuple(dc["mean"]), std=tuple(dc["std"]), **spec_args)
        super().__init__(spec, num_classes)
        self.cfg = cfg
        self.backbone = backbone
        self.cue = cue(channels, cfg.width, backbone.num_features, spec, cfg.grid)
        in_features = backbone.num_features + channels * cfg.grid ** 2
        self.feature_scale = nn.Parameter(torch.full((1,), float(cfg.feature_scale_init)))
        self.head = nn.Sequential(nn.Dropout(cfg.drop_rate), nn.Linear(in_features, cfg.hidden), nn.GELU(),
                                  nn.Dropout(cfg.drop_rate), nn.Linear(cfg.hidden, num_classes))

    def video(self, batch: dict) -> torch.Tensor:
        """The model's visual input as B×T×3×H×W (T = 1 for image models), checked against its spec."""
        t = self.input_spec.clip_len
        key = "clip" if t > 1 else "image"
        if key not in batch:
            raise KeyError(f"{type(self.cue).__name__} needs batch['{key}'] "
                           f"(its InputSpec has clip_len={t}); "
                           f"the batch has keys {sorted(batch)}")
        x = batch[key] if t > 1 else batch[key].unsqueeze(1)
        if x.dim() != 5 or x.shape[1] != t or x.shape[2] != 3:
            raise ValueError(f"batch['{key}'] has shape {tuple(batch[key].shape)}; expected "
                             f"{'B×T×3×H×W with T=' + str(t) if t > 1 else 'B×3×H×W'}")
        return x

    def forward(self, batch: dict) -> dict:
        video = self.to_unit(self.video(batch))
        b, t = video.shape[:2]
        # all frames of all clips through the backbone in one call
        frames = self.normalize(video.flatten(0, 1))
        frames = resize(frames, self.cfg.backbone_size)
        feats = self.backbone(frames).view(b, t, -1)
        cue = self.cue(video, feats, batch)
        logits = self.head(torch.cat([self.feature_scale * feats.mean(1), cue.flatten(1)], dim=1))
        return {"logits": logits, "cue": cue}

    def cam_layers(self) -> dict[str, CamLayer]:
        """The backbone's last stage and the cue module's gated map (over ``cue.cam_box``, default all)."""
        att, box = self.cue.attention, getattr(self.cue, "cam_box", CamLayer.box)
        return {**super().cam_layers(), "cue": CamLayer(att, att.out_channels, box)}


def _create_specialist(cue: type[nn.Module], channels: int, crop: str = "face", clip: bool = False,
                       audio: bool = False, *, size: str = "full", pretrained: bool = False,
                       pretrained_path: str | None = None, num_classes: int = 2,
                       drop_rate: float | None = None,
                       **overrides) -> SpecialistNet:
    """Build a specialist: its cue module, channel count and input needs, at a size (overridable).

    Args:
        cue: the cue module class.
        channels: channels of the cue map (C of C×7×7).
        crop: crop policy it needs (``face``, ``context``, ``native``).
        clip: it takes a clip of ``clip_len`` frames instead of one image.
        audio: it takes the aligned log-mel window and ``audio_mask``.
        size: ``full`` or ``tiny``.
        pretrained: timm's pretrained backbone weights.
        pretrained_path: a local backbone weights file (takes precedence over ``pretrained``).
        num_classes: number of classes (2 = real/fake).
        drop_rate: head dropout (``None``: the size's default).
        **overrides: any :class:`SpecialistConfig` field.
    """
    if size not in SIZES:
        raise ValueError(f"unknown size '{size}' for a specialist; choose one of {sorted(SIZES)}")
    names = {f.name for f in dataclasses.fields(SpecialistConfig)}
    if unknown := sorted(set(overrides) - names):
        raise TypeError(f"unknown specialist arguments {unknown}; valid: {sorted(names)}")
    if "clip_len" in overrides and not clip:
        raise TypeError(f"{cue.__name__} takes single images; clip_len applies to clip models (tm, av)")
    if drop_rate is not None:
        overrides["drop_rate"] = drop_rate
    cfg = dataclasses.replace(SIZES[size], **overrides)
    spec_args = dict(crop=crop, clip_len=cfg.clip_len if clip else 1, audio=audio, n_mels=cfg.n_mels,
                     mel_per_frame=cfg.mel_per_frame, context_scale=cfg.context_scale)
    model = SpecialistNet(cue, channels, spec_args, cfg, num_classes, pretrained=pretrained,
                          weights=pretrained_path or None)
    logger.info("%s (%s): %.1f M parameters", cue.__name__, size,
                sum(p.numel() for p in model.parameters()) / 1e6)
    return model
