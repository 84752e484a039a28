"""F3Net (Qian et al., ECCV 2020) as DeepfakeBench trains it: the FAD head + a 12-channel Xception.

FAD ("frequency-aware decomposition") splits the *normalised* image into four frequency bands with a
fixed 2-D DCT: with D the orthonormal DCT-II matrix of the crop size, X = D·x·Dᵀ per channel, and for
band i

    y_i = Dᵀ · (X ⊙ (base_i + 2σ(learnable_i) − 1)) · D

where ``base_i`` is a fixed 0/1 mask of the anti-diagonal range start < i + j ≤ end of DCT indices,
(start, end) = (0, size // 2.82), (size // 2.82, size // 2), (size // 2, 2·size), (0, 2·size) — at 256 px
(0, 90], (90, 128], (128, 512], (0, 512] — and ``learnable_i`` a learnt correction in [−1, 1]. The
four 3-channel outputs, concatenated (band 0 first), are the Xception's 12-channel input. The DCT
matrices and masks are 256×256 buffers, so F3Net runs on exactly 256-px inputs.

Import: the checkpoint's ``FAD_head`` tensors are loaded as they are (its DCT and masks, not recomputed:
some DeepfakeBench versions include i + j = start in a band); a checkpoint without them is refused.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from utils.core.interop.mapping import KeyMapping, register_mapping, rename
from utils.core.model import InputSpec
from utils.core.registry import register_model

from .common import DFB_NOTES, DFB_SIZE, PooledClassifier, _create_baseline
from .xception import HEAD_HINT, HEAD_PATTERNS, head_dropout, xception_rules

N_BANDS = 4


def dct_matrix(n: int) -> torch.Tensor:
    """The orthonormal n-point DCT-II matrix D (D·Dᵀ = I): D[k, j] = c_k cos(π (j + ½) k / n)."""
    k = torch.arange(n, dtype=torch.float64)[:, None]
    j = torch.arange(n, dtype=torch.float64)[None, :]
    scale = torch.full((n, 1), math.sqrt(2.0 / n), dtype=torch.float64)
    scale[0] = math.sqrt(1.0 / n)
    return (scale * torch.cos(math.pi * (j + 0.5) * k / n)).float()


def band_edges(size: int) -> list[tuple[float, float]]:
    """(start, end) of the low, middle, high and all-pass bands on the index sum i + j."""
    return [(0, size // 2.82), (size // 2.82, size // 2), (size // 2, size * 2), (0, size * 2)]


def band_mask(size: int, start: float, end: float) -> torch.Tensor:
    """size×size float mask: 1 where start < i + j <= end."""
    idx = torch.arange(size)
    s = idx[:, None] + idx[None, :]
    return ((s > start) & (s <= end)).float()


class BandFilter(nn.Module):
    """Fixed band mask ``base`` plus a learnt correction 2σ(``learnable``) − 1, applied to a spectrum."""

    def __init__(self, size: int, start: float, end: float):
        super().__init__()
        self.register_buffer("base", band_mask(size, start, end))
        self.learnable = nn.Parameter(torch.empty(size, size).normal_(0.0, 0.1))

    def forward(self, spectrum: torch.Tensor) -> torch.Tensor:
        return spectrum * (self.base + 2.0 * torch.sigmoid(self.learnable) - 1.0)


class FADHead(nn.Module):
    """Frequency-aware decomposition: B×3×S×S (normalised) → B×12×S×S (four band-passed copies)."""

    def __init__(self, size: int = DFB_SIZE):
        super().__init__()
        d = dct_matrix(size)
        self.size = size
        self.register_buffer("dct", d)
        self.register_buffer("dct_t", d.t().contiguous())
        self.filters = nn.ModuleList(BandFilter(size, lo, hi) for lo, hi in band_edges(size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (self.size, self.size):
            raise ValueError(f"F3Net works only at {self.size}x{self.size} px (its FAD head holds fixed "
                             f"{self.size}x{self.size} DCT matrices and band masks); got "
                             f"{x.shape[-2]}x{x.shape[-1]}")
        with torch.autocast(x.device.type, enabled=False):   # the transforms in fp32 under mixed precision
            x = x.float()
            spectrum = self.dct @ x @ self.dct_t
            return torch.cat([self.dct_t @ band(spectrum) @ self.dct for band in self.filters], dim=1)


class F3Net(PooledClassifier):
    """FAD head → Xception with a 12-channel ``conv1`` → dropout → linear head."""

    # the FAD head is part of what must be loaded: a checkpoint without it is refused like a headless one
    head_prefixes = ("head.", "fad.")

    def __init__(self, backbone: nn.Module, spec: InputSpec, num_classes: int = 2, drop_rate: float = 0.5):
        if spec.image_size != DFB_SIZE:
            raise ValueError(f"F3Net works only at {DFB_SIZE} px (its FAD head holds fixed "
                             f"{DFB_SIZE}x{DFB_SIZE} DCT matrices and band masks); "
                             f"image_size={spec.image_size} is not possible")
        super().__init__(backbone, spec, num_classes, drop_rate)
        self.fad = FADHead(DFB_SIZE)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(self.fad(x))


def _check_fad(state: dict) -> None:
    d = state.get("FAD_head._DCT_all")
    if d is not None and tuple(d.shape) != (DFB_SIZE, DFB_SIZE):
        raise ValueError(f"F3Net works only at {DFB_SIZE} px, and this checkpoint's FAD head was built for "
                         f"{d.shape[-1]}x{d.shape[-1]} inputs (FAD_head._DCT_all {list(d.shape)})")


_FAD_REQUIRED = ((r"FAD_head\..+",
                  "its FAD head (FAD_head._DCT_all, FAD_head._DCT_all_T, FAD_head.filters.0-3.base and "
                  ".learnable: the DCT and the four frequency bands its 12-channel conv1 reads)"),)

DEEPFAKEBENCH_F3NET = register_mapping(KeyMapping(
    format="deepfakebench", arch="f3net",
    rules=(rename(r"FAD_head\._DCT_all", "fad.dct", "fad_dct"),
           rename(r"FAD_head\._DCT_all_T", "fad.dct_t", "fad_dct_t"),
           rename(rf"FAD_head\.filters\.([0-{N_BANDS - 1}])\.(base|learnable)", r"fad.filters.\1.\2",
                  "fad_filters"),
           *xception_rules()),
    head=HEAD_PATTERNS, head_hint=HEAD_HINT, required=_FAD_REQUIRED,
    description="DeepfakeBench f3net detector (FAD head + Xception with 12-channel conv1, 256 px only)",
    model_kwargs=head_dropout, validate=_check_fad, notes=DFB_NOTES))


@register_model("f3net")
def f3net(**kwargs) -> F3Net:
    """F3Net (FAD branch, as DeepfakeBench trains it): exactly 256-px faces, head dropout 0.5 by default.

    ``size``: ``tiny`` is the full network (the FAD head is fixed at 256 px; 21.1 M parameters);
    ``pretrained`` / ``pretrained_path``: ImageNet ``legacy_xception`` weights, whose 3-channel ``conv1``
    timm adapts to 12 channels.
    """
    return _create_baseline(F3Net, "legacy_xception", in_chans=3 * N_BANDS, head_drop=0.5, **kwargs)
