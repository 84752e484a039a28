"""TM, the temporal specialist: is the face consistent from frame to frame?

Frame-by-frame face synthesis flickers and jitters (blend boundaries, identity, lighting) in ways a
single frame cannot show. The module takes a clip of T consecutive face crops and combines two
streams per time step:

* the backbone's per-frame pooled features, projected to the module width (what each frame shows);
* a frame-difference stream: signed differences of consecutive frames through a small conv net
  (where and how the picture changes; the sign keeps the direction of time).

A learned time embedding marks each step, residual temporal convolutions (kernel 3 along time, at
every position of the 7×7 grid) relate neighbouring frames, and an attention over time pools the clip.
Reversing or shuffling the frames changes the output.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from utils.core.model import InputSpec
from utils.core.registry import register_model

from .net import BranchAttention, SpecialistNet, _create_specialist, conv_bn_act


class TemporalCue(nn.Module):
    """Per-frame features + frame differences, temporal convolution and attention pooling."""

    def __init__(self, channels: int, width: int, feat_dim: int, spec: InputSpec, grid: int = 7):
        super().__init__()
        if spec.clip_len < 2:
            raise ValueError(f"the temporal cue needs clips of at least 2 frames, "
                             f"got clip_len={spec.clip_len}")
        self.grid, c = grid, 2 * width
        self.diff_stem = nn.Sequential(conv_bn_act(3, width, 3, 2), conv_bn_act(width, width, 3, 2),
                                       conv_bn_act(width, width, 3, 2))
        self.feat_proj = nn.Linear(feat_dim, width)
        # time runs along dim 2 of a B×C×T×(grid²) layout: 2-D convs with kernel (3, 1) are temporal
        # convolutions at every grid position, and every weight stays 4-D (channels_last works)
        self.time_embed = nn.Parameter(torch.zeros(1, c, spec.clip_len, 1))
        nn.init.trunc_normal_(self.time_embed, std=0.02)
        self.temporal = nn.Sequential(nn.Conv2d(c, c, (3, 1), padding=(1, 0), bias=False), nn.BatchNorm2d(c),
                                      nn.GELU(), nn.Conv2d(c, c, (3, 1), padding=(1, 0)))
        self.time_score = nn.Conv2d(c, 1, 1)
        self.attention = BranchAttention(c, channels, grid)

    def forward(self, video: torch.Tensor, feats: torch.Tensor, batch: dict) -> torch.Tensor:
        b, t = video.shape[:2]
        g = self.grid
        diff = self.diff_stem((video[:, 1:] - video[:, :-1]).flatten(0, 1))  # signed: time has a direction
        diff = F.adaptive_avg_pool2d(diff, g).view(b, t - 1, -1, g, g)
        diff = F.pad(diff, (0, 0, 0, 0, 0, 0, 1, 0))  # frame 0 has no previous frame: zero change
        frame = self.feat_proj(feats)[..., None, None].expand(-1, -1, -1, g, g)
        s = torch.cat([diff, frame], dim=2).flatten(3).transpose(1, 2) + self.time_embed  # B×C×T×g²
        s = s + self.temporal(s)
        weights = torch.softmax(self.time_score(s).float(), dim=2).to(s.dtype)  # attention over time
        return self.attention((s * weights).sum(2).reshape(b, -1, g, g))


@register_model("tm")
def tm(**kwargs) -> SpecialistNet:
    """Temporal specialist on a clip of face crops (8 frames at full size): 52×7×7 cue map."""
    return _create_specialist(TemporalCue, 52, clip=True, **kwargs)
