"""TM, the temporal specialist: is the face consistent from frame to frame?

Frame-by-frame face synthesis flickers and jitters (blend boundaries, identity, lighting) in ways a
single frame cannot show. The module takes a clip of T consecutive face crops and combines three
streams per time step, each a width×7×7 map:

* a frame-difference stream: signed differences of consecutive frames through a small conv net
  (where and how the picture changes; the sign keeps the direction of time);
* a detail stream: each frame's high-pass residual (the frame minus its 3×3 local mean) through a
  small conv net (where the frame is sharp or smooth: a blended-in face is re-sampled, its detail
  and noise do not match the rest of the frame, and how that changes over time);
* the backbone's per-frame pooled features, projected to the module width (what each frame shows),
  scaled by a learned factor that starts small.

A learned time embedding marks each step, residual temporal convolutions (kernel 3 along time, at
every position of the 7×7 grid) relate neighbouring frames, and an attention over time pools the clip.
Reversing or shuffling the frames changes the output.

Why the fixed differences and residuals, and the small start of the backbone stream: at the tiny size,
trained from random weights for a few hundred steps, the backbone's features carry no usable evidence
yet, and at full strength they drowned the cue (the tiny model stayed at chance, its gradient dominated
by the backbone); the differences and residuals put the temporal and detail evidence one small conv
net away from the head, so it is learned in tens of steps. The backbone stream grows as it earns it.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from utils.core.model import InputSpec
from utils.core.registry import register_model

from utils.core.layers import highpass, stride8_stem

from .net import BranchAttention, SpecialistNet, _create_specialist

FEATURE_SCALE_INIT = 0.01   # LayerScale-style start of the backbone stream (see the module docstring)


class TemporalCue(nn.Module):
    """Frame differences + per-frame detail + per-frame features, temporal convolution, attention pooling."""

    def __init__(self, channels: int, width: int, feat_dim: int, spec: InputSpec, grid: int = 7):
        super().__init__()
        if spec.clip_len < 2:
            raise ValueError(f"the temporal cue needs clips of at least 2 frames, "
                             f"got clip_len={spec.clip_len}")
        self.grid, c = grid, 3 * width
        self.diff_stem = stride8_stem(width)
        self.detail_stem = stride8_stem(width)
        self.feat_proj = nn.Linear(feat_dim, width)
        self.feat_scale = nn.Parameter(torch.full((1,), FEATURE_SCALE_INIT))
        # time runs along dim 2 of a B×C×T×(grid²) layout: 2-D convs with kernel (3, 1) are temporal
        # convolutions at every grid position, and every weight stays 4-D (channels_last works)
        self.time_embed = nn.Parameter(torch.zeros(1, c, spec.clip_len, 1))
        nn.init.trunc_normal_(self.time_embed, std=0.02)
        self.temporal = nn.Sequential(nn.Conv2d(c, c, (3, 1), padding=(1, 0), bias=False), nn.BatchNorm2d(c),
                                      nn.GELU(), nn.Conv2d(c, c, (3, 1), padding=(1, 0)))
        self.time_score = nn.Conv2d(c, 1, 1)
        self.attention = BranchAttention(c, channels, grid)

    def _maps(self, stem: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """B×T'×3×H×W → B×T'×width×grid×grid."""
        b, t = x.shape[:2]
        y = F.adaptive_avg_pool2d(stem(x.flatten(0, 1)), self.grid)
        return y.view(b, t, -1, self.grid, self.grid)

    def forward(self, video: torch.Tensor, feats: torch.Tensor, batch: dict) -> torch.Tensor:
        b, t = video.shape[:2]
        g = self.grid
        diff = self._maps(self.diff_stem, video[:, 1:] - video[:, :-1])  # signed: time has a direction
        diff = F.pad(diff, (0, 0, 0, 0, 0, 0, 1, 0))  # frame 0 has no previous frame: zero change
        detail = self._maps(self.detail_stem, highpass(video.flatten(0, 1)).view_as(video))
        frame = (self.feat_scale * self.feat_proj(feats))[..., None, None].expand(-1, -1, -1, g, g)
        s = torch.cat([diff, detail, frame], dim=2).flatten(3).transpose(1, 2) + self.time_embed  # B×C×T×g²
        s = s + self.temporal(s)
        weights = torch.softmax(self.time_score(s).float(), dim=2).to(s.dtype)  # attention over time
        return self.attention((s * weights).sum(2).reshape(b, -1, g, g))


@register_model("tm")
def tm(size: str = "full", **kwargs) -> SpecialistNet:
    """Temporal specialist on a clip of face crops (8 frames at full size): 52×7×7 cue map.

    At the tiny size the clip is 112 px (the fixed differences and residuals need the detail a 64 px
    crop resamples away) while the backbone sees it at 64 px (``backbone_size``).
    """
    if size == "tiny":
        kwargs = {"image_size": 112, "backbone_size": 64, **kwargs}
    return _create_specialist(TemporalCue, 52, clip=True, size=size, **kwargs)
