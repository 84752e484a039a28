"""AV, the audio-visual specialist: do the lips move with the speech?

Lip-sync fakes and audio-only manipulations (DFDC) break the agreement between mouth motion and
sound. The module takes a clip of face crops and the aligned log-mel window (``mel_per_frame`` columns
per video frame):

* a visual encoder on the mouth region (lower half, central half of the face crop) of every frame;
* an audio encoder (1-D convolutions over time, strided so there is one embedding per video frame,
  with per-sample normalisation so no sample's audio leaks into another's);
* fusion per frame and grid position: the visual features, the audio embedding, their product and
  their cosine agreement (the sync cue), mixed over neighbouring frames by a temporal convolution
  (small audio-visual offsets) and averaged over the clip.

When ``audio_mask`` is 0 (FF++ and Celeb-DF carry no audio) the audio is never read: a learned
"no audio" embedding takes its place, so the output does not depend on the audio tensor at all.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from utils.core.model import InputSpec
from utils.core.registry import register_model

from .net import BranchAttention, SpecialistNet, _create_specialist, conv_bn_act


def mouth_region(video: torch.Tensor) -> torch.Tensor:
    """…×H×W face crops → the lower half, central half in width (where a margin-padded crop has the mouth)."""
    h, w = video.shape[-2:]
    return video[..., h // 2:, w // 4: w - w // 4]


class AudioVisualCue(nn.Module):
    """Mouth-region visual stream + log-mel audio stream, fused per frame for sync cues."""

    cam_box = (0.5, 0.25, 1.0, 0.75)   # its maps cover mouth_region(): (top, left, bottom, right) shares

    def __init__(self, channels: int, width: int, feat_dim: int, spec: InputSpec, grid: int = 7):
        super().__init__()
        if not spec.audio or spec.clip_len < 2:
            raise ValueError("the audio-visual cue needs audio=True and a clip of at least 2 frames")
        self.grid, self.clip_len, self.audio_frames = grid, spec.clip_len, spec.audio_frames
        self.visual = nn.Sequential(conv_bn_act(3, width, 3, 2), conv_bn_act(width, width, 3, 2),
                                    conv_bn_act(width, width, 3, 2))
        k = spec.mel_per_frame
        self.audio = nn.Sequential(
            nn.GroupNorm(1, spec.n_mels), nn.Conv1d(spec.n_mels, width, 3, padding=1), nn.GroupNorm(1, width),
            nn.GELU(), nn.Conv1d(width, width, k, stride=k), nn.GELU(), nn.Conv1d(width, width, 3, padding=1))
        self.no_audio = nn.Parameter(torch.zeros(1, width, spec.clip_len))
        nn.init.trunc_normal_(self.no_audio, std=0.02)
        # fusion in a B×C×T×(grid²) layout: kernel (3, 1) mixes neighbouring frames at each grid position
        self.fuse = nn.Sequential(nn.Conv2d(3 * width + 1, 2 * width, (3, 1), padding=(1, 0), bias=False),
                                  nn.BatchNorm2d(2 * width), nn.GELU())
        self.attention = BranchAttention(2 * width, channels, grid)

    def encode_audio(self, batch: dict, batch_size: int, device: torch.device) -> torch.Tensor:
        """B×width×T audio embeddings; the learned no-audio embedding where ``audio_mask`` is 0."""
        if "audio" not in batch or "audio_mask" not in batch:
            raise KeyError("the audio-visual model needs batch['audio'] (B×n_mels×T·mel_per_frame log-mel) "
                           "and "
                           "batch['audio_mask'] (B, 0 where the video has no audio)")
        audio, has = batch["audio"].to(device), batch["audio_mask"].to(device).view(-1, 1, 1) > 0
        if audio.shape[0] != batch_size or audio.shape[-1] != self.audio_frames:
            raise ValueError(f"batch['audio'] has shape {tuple(audio.shape)}; "
                             f"expected B×n_mels×{self.audio_frames}")
        # masked audio never enters the encoder (it may be zeros, noise or NaN); the blend below (rather
        # than a selection) keeps the encoder and the no-audio embedding in every step's graph, so DDP
        # finds no unused parameters in an all-silent or all-audio batch; 0 × finite is exactly 0
        a = self.audio(torch.where(has, audio.float(), torch.zeros((), device=device)))
        keep = has.to(a.dtype)
        return keep * a + (1 - keep) * self.no_audio.to(a.dtype)

    def forward(self, video: torch.Tensor, feats: torch.Tensor, batch: dict) -> torch.Tensor:
        b, t = video.shape[:2]
        g = self.grid
        v = F.adaptive_avg_pool2d(self.visual(mouth_region(video).flatten(0, 1)), g)
        v = v.view(b, t, -1, g * g).transpose(1, 2)  # B×width×T×g²
        a = self.encode_audio(batch, b, video.device)[..., None].expand_as(v).to(v.dtype)
        sync = (F.normalize(v, dim=1) * F.normalize(a, dim=1)).sum(1, keepdim=True)  # cosine agreement
        return self.attention(self.fuse(torch.cat([v, a, v * a, sync], dim=1)).mean(2).reshape(b, -1, g, g))


@register_model("av")
def av(**kwargs) -> SpecialistNet:
    """Audio-visual specialist on a clip of face crops plus log-mel audio: 48×7×7 cue map."""
    return _create_specialist(AudioVisualCue, 48, clip=True, audio=True, **kwargs)
