"""Small building blocks shared by model families (GenConViT, the specialists): no model names here."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def conv_bn_act(cin: int, cout: int, kernel: int = 3, stride: int = 1) -> nn.Sequential:
    """Conv (no bias) -> BatchNorm -> SiLU, 'same' padding."""
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(cout),
                         nn.SiLU(inplace=True))


def stride8_stem(width: int, cin: int = 3) -> nn.Sequential:
    """Three stride-2 conv-BN-SiLU layers: H×W → H/8×W/8."""
    return nn.Sequential(conv_bn_act(cin, width, 3, 2), conv_bn_act(width, width, 3, 2),
                         conv_bn_act(width, width, 3, 2))


def highpass(images: torch.Tensor) -> torch.Tensor:
    """N×C×H×W → the residual of each pixel against its 3×3 neighbourhood mean (a fixed high-pass)."""
    return images - F.avg_pool2d(images, 3, 1, 1, count_include_pad=False)


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """Square anti-aliased bilinear resize of N×C×H×W images (unchanged when already ``size``)."""
    if not size or images.shape[-1] == size and images.shape[-2] == size:
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
