"""The two generative paths of GenConViT: a convolutional autoencoder (ED) and a small convolutional VAE.

Both decoders end in a Sigmoid, so reconstructions lie in [0, 1]; their targets are the input image in
[0, 1] (``DeepfakeModel.to_unit``), never the normalised image a Sigmoid cannot reach. The VAE's latent is a
small feature map (``latent_channels`` × H/16 × W/16), not the 25088→12544 linears of the original
release, whose two linear layers held ~630 M parameters and added little.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn


def _conv_bn_act(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


def _up_bn_act(cin: int, cout: int) -> nn.Sequential:
    """×2 upsampling (transposed conv, kernel 4 stride 2: no checkerboard from uneven overlap)."""
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


def _to_image(cin: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, 3, 3, 1, 1), nn.Sigmoid())


class ConvAutoencoder(nn.Module):
    """Encoder (conv + max-pool per stage: 224 → 7 for five stages) and transposed-conv decoder."""

    def __init__(self, channels: Sequence[int] = (16, 32, 64, 128, 256)):
        super().__init__()
        chs = (3, *channels)
        self.encoder = nn.Sequential(*[nn.Sequential(_conv_bn_act(a, b), nn.MaxPool2d(2))
                                       for a, b in zip(chs[:-1], chs[1:])])
        rev = tuple(reversed(channels))
        self.decoder = nn.Sequential(*[_up_bn_act(a, b) for a, b in zip(rev, (*rev[1:], rev[-1]))],
                                     _to_image(rev[-1]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised image → reconstruction in [0, 1]."""
        return self.decoder(self.encoder(x))


class ConvVAE(nn.Module):
    """Stride-2 conv encoder to a small convolutional latent (mu, log-variance), mirrored decoder."""

    def __init__(self, channels: Sequence[int] = (32, 64, 128, 256), latent_channels: int = 16):
        super().__init__()
        chs = (3, *channels)
        self.encoder = nn.Sequential(*[_conv_bn_act(a, b, stride=2) for a, b in zip(chs[:-1], chs[1:])])
        self.mu = nn.Conv2d(channels[-1], latent_channels, 1)
        self.logvar = nn.Conv2d(channels[-1], latent_channels, 1)
        rev = tuple(reversed(channels))
        self.decoder = nn.Sequential(_conv_bn_act(latent_channels, rev[0]),
                                     *[_up_bn_act(a, b) for a, b in zip(rev, (*rev[1:], rev[-1]))],
                                     _to_image(rev[-1]))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Normalised image → (reconstruction in [0, 1], mu, logvar).

        Training samples ``z = mu + exp(logvar / 2) · eps`` (the std comes from the log-variance, so the
        variance branch is trained through both the sample and the KL term); eval uses ``z = mu`` so
        predictions are deterministic (the released code sampled in eval mode and used ``mu`` as the
        standard deviation, so its variance branch was never trained and its predictions varied).
        """
        h = self.encoder(x)
        mu, logvar = self.mu(h), self.logvar(h).clamp(-12.0, 12.0)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu) if self.training else mu
        return self.decoder(z), mu, logvar


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) ‖ N(0, 1)), averaged over latent elements (same scale as a mean MSE)."""
    mu, logvar = mu.float(), logvar.float()
    return -0.5 * torch.mean(1.0 + logvar - mu.pow(2) - logvar.exp())
