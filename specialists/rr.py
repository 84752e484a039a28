"""RR, the resolution/resampling specialist: high-pass residuals and their spectra.

Generated faces are rendered at a lower resolution and upsampled (interpolation, transposed
convolutions) before they are blended in. Upsampling leaves correlations between neighbouring pixels
(weak high-frequency residuals) and periodic peaks or missing bands in the spectrum. The module works
on the ``native`` crop (a resized crop would bury these traces under its own resampling):

* fixed high-pass filters on the luma (Laplacian, horizontal and vertical first differences, the
  second-order 5×5 "KV" filter of steganalysis) give residual maps;
* the centred log-magnitude FFT of each residual, pooled to a coarse map, and its radial (azimuthally
  averaged) profile expose the periodic peaks and the high-frequency deficit of interpolation.

Learned layers read the residuals and the spectra, modulated by a projection of the radial profiles.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from utils.core.model import InputSpec
from utils.core.registry import register_model

from .net import BranchAttention, SpecialistNet, _create_specialist, conv_bn_act, luma

N_BINS = 32


def highpass_filters() -> torch.Tensor:
    """Four fixed 5×5 high-pass kernels (4×1×5×5): Laplacian, d/dx, d/dy, KV."""
    k = torch.zeros(4, 5, 5)
    k[0, 1:4, 1:4] = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]) / 4
    k[1, 2, 2:4] = torch.tensor([-1.0, 1.0])
    k[2, 2:4, 2] = torch.tensor([-1.0, 1.0])
    k[3] = torch.tensor([[-1.0, 2.0, -2.0, 2.0, -1.0],
                         [2.0, -6.0, 8.0, -6.0, 2.0],
                         [-2.0, 8.0, -12.0, 8.0, -2.0],
                         [2.0, -6.0, 8.0, -6.0, 2.0],
                         [-1.0, 2.0, -2.0, 2.0, -1.0]]) / 12
    return k.unsqueeze(1)


def radial_profile(spectrum: torch.Tensor, n_bins: int = N_BINS) -> torch.Tensor:
    """Mean of a centred spectrum B×C×H×W over rings of equal radial frequency → B×C×n_bins."""
    h, w = spectrum.shape[-2:]
    fy = (torch.arange(h, device=spectrum.device) - h // 2) / (h / 2)
    fx = (torch.arange(w, device=spectrum.device) - w // 2) / (w / 2)
    radius = (fy[:, None] ** 2 + fx[None, :] ** 2).sqrt() / 2 ** 0.5  # 0 (DC) … 1 (corner)
    ring = (radius * n_bins).long().clamp(max=n_bins - 1).flatten()
    onehot = F.one_hot(ring, n_bins).to(spectrum.dtype)
    return spectrum.flatten(2) @ (onehot / onehot.sum(0).clamp(min=1))


class ResamplingCue(nn.Module):
    """High-pass residual maps and FFT features that expose upsampling and interpolation."""

    def __init__(self, channels: int, width: int, feat_dim: int, spec: InputSpec, grid: int = 7):
        super().__init__()
        self.register_buffer("highpass", highpass_filters(), persistent=False)
        n = self.highpass.shape[0]
        self.residual_stem = nn.Sequential(conv_bn_act(n, width, 3, 2), conv_bn_act(width, width, 3, 2),
                                           conv_bn_act(width, width, 3, 2))
        self.spectrum_stem = conv_bn_act(n, width, 3)
        self.global_proj = nn.Linear(n * N_BINS, 2 * width)
        self.attention = BranchAttention(2 * width, channels, grid)

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """B×3×H×W in [0, 1] → (residuals B×4×H×W, log spectra B×4×H/8×W/8, radial profiles B×4×N_BINS)."""
        y = luma(x.float()) * 255.0
        residual = F.conv2d(F.pad(y, (2, 2, 2, 2), mode="reflect"), self.highpass)
        spectrum = torch.log1p(torch.fft.fftshift(torch.fft.fft2(residual, norm="ortho"), dim=(-2, -1)).abs())
        size = (max(1, x.shape[-2] // 8), max(1, x.shape[-1] // 8))
        return residual, F.adaptive_avg_pool2d(spectrum, size), radial_profile(spectrum)

    def forward(self, video: torch.Tensor, feats: torch.Tensor, batch: dict) -> torch.Tensor:
        # FFT has no bf16 kernels; the fixed filters run in fp32 too
        with torch.autocast(video.device.type, enabled=False):
            residual, spectrum, profile = self.features(video[:, 0])
        r = self.residual_stem(residual)
        s = self.spectrum_stem(F.adaptive_avg_pool2d(spectrum, r.shape[-2:]))
        return self.attention(torch.cat([r, s], 1) + self.global_proj(profile.flatten(1))[..., None, None])


@register_model("rr")
def rr(**kwargs) -> SpecialistNet:
    """Resolution/resampling specialist on the native crop: 36×7×7 cue map."""
    return _create_specialist(ResamplingCue, 36, crop="native", **kwargs)
