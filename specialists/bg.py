"""BG, the background/lighting specialist: does the face fit the scene around it?

A swapped or re-rendered face is lit, coloured and textured by another scene. The module sees a
``context`` crop (face box × ``context_scale``, face at the centre) and builds the face-region mask
itself from the crop geometry. Per pixel it describes illumination (luma), colour temperature (log
chromaticity r/g and b/g) and texture (gradient magnitude); it then compares the face with its
surroundings: the difference of their means and the log ratio of their spreads (a global vector), and
every pixel relative to the surroundings' mean (a map). Learned layers read these with the image and
the mask. The backbone sees the same context crop.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from utils.core.model import InputSpec
from utils.core.registry import register_model

from .net import BranchAttention, SpecialistNet, _create_specialist, conv_bn_act, luma

N_DESCRIPTORS = 4  # luma, log(r/g), log(b/g), gradient magnitude
_EPS = 1e-3


def face_mask(height: int, width: int, scale: float, device: torch.device | None = None) -> torch.Tensor:
    """1×1×H×W mask, 1 on the central 1/scale of the crop (where the context crop policy puts the face)."""
    def inside(n: int) -> torch.Tensor:
        centre = torch.arange(n, device=device, dtype=torch.float32) + 0.5 - n / 2
        return (centre.abs() <= n / (2 * scale)).float()
    return (inside(height)[:, None] * inside(width)[None, :]).view(1, 1, height, width)


def masked_stats(x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of B×C×H×W ``x`` over the pixels where ``mask`` (1×1×H×W) is 1."""
    n = mask.sum().clamp(min=1.0)
    mean = (x * mask).sum((2, 3)) / n
    var = ((x - mean[..., None, None]).pow(2) * mask).sum((2, 3)) / n
    return mean, var.clamp(min=0).sqrt()


class BackgroundCue(nn.Module):
    """Face-versus-surroundings statistics of illumination, colour temperature and texture."""

    def __init__(self, channels: int, width: int, feat_dim: int, spec: InputSpec, grid: int = 7):
        super().__init__()
        if spec.context_scale <= 1.0:
            raise ValueError(f"context_scale must be > 1 (face plus surroundings), got {spec.context_scale}")
        self.scale = spec.context_scale
        sobel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 8
        self.register_buffer("sobel", torch.stack([sobel, sobel.t()]).unsqueeze(1), persistent=False)
        in_ch = 3 + 2 * N_DESCRIPTORS + 1 + 2 * N_DESCRIPTORS  # image, descriptors, relative, mask, stats
        self.stem = nn.Sequential(conv_bn_act(in_ch, width, 3, 2), conv_bn_act(width, 2 * width, 3, 2),
                                  conv_bn_act(2 * width, 2 * width, 3, 2))
        self.attention = BranchAttention(2 * width, channels, grid)

    def descriptors(self, x: torch.Tensor) -> torch.Tensor:
        """B×3×H×W in [0, 1] → B×4×H×W: luma, log(r/g), log(b/g), gradient magnitude."""
        y = luma(x)
        r, g, b = x.unbind(1)
        chroma = torch.stack([torch.log((r + _EPS) / (g + _EPS)), torch.log((b + _EPS) / (g + _EPS))], 1)
        grad = nn.functional.conv2d(nn.functional.pad(y, (1, 1, 1, 1), mode="replicate"), self.sobel)
        return torch.cat([y, chroma, grad.pow(2).sum(1, keepdim=True).add(1e-6).sqrt()], 1)

    def forward(self, video: torch.Tensor, feats: torch.Tensor, batch: dict) -> torch.Tensor:
        x = video[:, 0]
        b, _, h, w = x.shape
        with torch.autocast(x.device.type, enabled=False):  # statistics in fp32
            x = x.float()
            mask = face_mask(h, w, self.scale, x.device)
            d = self.descriptors(x)
            face_mean, face_std = masked_stats(d, mask)
            sur_mean, sur_std = masked_stats(d, 1 - mask)
            stats = torch.cat([face_mean - sur_mean, torch.log((face_std + _EPS) / (sur_std + _EPS))], 1)
            relative = d - sur_mean[..., None, None]
            inp = torch.cat([x, d, relative, mask.expand(b, 1, h, w),
                             stats[..., None, None].expand(-1, -1, h, w)], 1)
        return self.attention(self.stem(inp))


@register_model("bg")
def bg(**kwargs) -> SpecialistNet:
    """Background/lighting specialist on a context crop: 44×7×7 cue map."""
    return _create_specialist(BackgroundCue, 44, crop="context", **kwargs)
