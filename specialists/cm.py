"""CM, the compression specialist: block-DCT statistics of the native, grid-aligned luma.

Manipulated faces are usually compressed twice, or at a different quality than the rest of the frame
(the blend is re-encoded). JPEG/H.264 work on the luma in 8×8 blocks aligned to the frame's grid,
which is why the ``native`` crop policy keeps the source pixels and the grid alignment. The module
applies a fixed orthonormal 8×8 block DCT (stride 8) and derives

* log-magnitude coefficients per block (64 maps);
* quantisation cues: coefficients of a decoded image cluster on multiples of the quantisation step,
  measured per frequency and per block by ``cos(2π c / q)`` for candidate steps ``q`` (≈ 1 on the
  lattice, ≈ 0 off it), and the share of coefficients quantised to zero per frequency;
* block-boundary cues: luma jumps across block boundaries relative to jumps inside blocks
  (blocking artefacts), horizontally and vertically.

Learned layers read the maps, modulated by a projection of the global statistics.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from utils.core.model import InputSpec
from utils.core.registry import register_model

from .net import BranchAttention, SpecialistNet, _create_specialist, conv_bn_act, luma

QUANT_STEPS = (2.0, 4.0, 8.0, 16.0)


def dct_basis(n: int = 8) -> torch.Tensor:
    """The n² orthonormal 2-D DCT-II basis images as conv weights (n²×1×n×n)."""
    k, i = torch.arange(n, dtype=torch.float64)[:, None], torch.arange(n, dtype=torch.float64)[None, :]
    c = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    c[0] /= math.sqrt(2.0)
    return torch.einsum("ui,vj->uvij", c, c).reshape(n * n, 1, n, n).float()


class BlockDCT(nn.Module):
    """Fixed orthonormal n×n block DCT with stride n (not trained; a buffer, not a parameter)."""

    def __init__(self, block: int = 8):
        super().__init__()
        self.block = block
        self.register_buffer("basis", dct_basis(block), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """B×1×H×W → B×n²×H/n×W/n coefficients (H, W multiples of n)."""
        return F.conv2d(x, self.basis, stride=self.block)

    def inverse(self, coeffs: torch.Tensor) -> torch.Tensor:
        """Coefficients → image; exact because the basis is orthonormal."""
        return F.conv_transpose2d(coeffs, self.basis, stride=self.block)


def blockiness(y: torch.Tensor, n: int = 8) -> torch.Tensor:
    """B×1×H×W → B×2×H/n×W/n: log jump across each block's right/bottom boundary minus log jump inside it."""
    b, _, h, w = y.shape
    blocks = (b, h // n, n, w // n, n)
    dx = F.pad((y[..., :, 1:] - y[..., :, :-1]).abs(), (0, 1, 0, 0), mode="replicate").view(blocks)
    dy = F.pad((y[..., 1:, :] - y[..., :-1, :]).abs(), (0, 0, 0, 1), mode="replicate").view(blocks)
    horizontal = torch.log1p(dx[..., n - 1].mean(2)) - torch.log1p(dx[..., : n - 1].mean((2, 4)))
    vertical = torch.log1p(dy[:, :, n - 1].mean(-1)) - torch.log1p(dy[:, :, : n - 1].mean((2, 4)))
    return torch.stack([horizontal, vertical], 1)


class CompressionCue(nn.Module):
    """Block-DCT log-magnitudes, quantisation-lattice and blocking cues of the luma."""

    def __init__(self, channels: int, width: int, feat_dim: int, spec: InputSpec, grid: int = 7):
        super().__init__()
        if spec.image_size % 8:
            raise ValueError(f"the compression cue needs crops of a multiple of 8 pixels, "
                             f"got {spec.image_size}")
        self.dct = BlockDCT(8)
        k = len(QUANT_STEPS)
        # 4-D so that model.to(memory_format=channels_last) accepts it
        self.register_buffer("steps", torch.tensor(QUANT_STEPS).view(k, 1, 1, 1), persistent=False)
        self.stem = nn.Sequential(conv_bn_act(64 + k + 2, 2 * width, 1),
                                  conv_bn_act(2 * width, 2 * width, 3, 2))
        self.global_proj = nn.Linear(64 * (1 + k), 2 * width)
        self.attention = BranchAttention(2 * width, channels, grid)

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """B×3×H×W in [0, 1] → (B×(64+K+2)×H/8×W/8 maps, B×64(1+K) global statistics), in fp32."""
        if x.shape[-1] % 8 or x.shape[-2] % 8:
            raise ValueError(f"compression cue: crop {tuple(x.shape[-2:])} is not a multiple of 8; serve a "
                             f"'native' crop aligned to the source's 8×8 grid")
        y = luma(x.float()) * 255.0 - 128.0  # the level shift JPEG applies before its DCT
        c = self.dct(y)
        lattice = torch.cos(2 * math.pi * c.unsqueeze(1) / self.steps)  # B×K×64×h×w
        maps = torch.cat([torch.log1p(c.abs()), lattice[:, :, 1:].mean(2), blockiness(y)], 1)
        zero_share = (c.abs() < 0.5).float().mean((2, 3))
        stats = torch.cat([zero_share, lattice.mean((3, 4)).flatten(1)], 1)
        return maps, stats

    def forward(self, video: torch.Tensor, feats: torch.Tensor, batch: dict) -> torch.Tensor:
        with torch.autocast(video.device.type, enabled=False):  # fixed transforms in fp32
            maps, stats = self.features(video[:, 0])
        return self.attention(self.stem(maps) + self.global_proj(stats)[..., None, None])


@register_model("cm")
def cm(**kwargs) -> SpecialistNet:
    """Compression specialist on the native crop: 40×7×7 cue map."""
    return _create_specialist(CompressionCue, 40, crop="native", **kwargs)
