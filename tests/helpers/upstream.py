"""Upstream-layout reference networks for the importer's parity tests, with seeded random weights.

* DeepfakeBench Xception / F3Net: Cadene's Xception from ``pretrainedmodels`` (BSD; the network
  DeepfakeBench copied), given DeepfakeBench's detector layout (``backbone.`` prefix,
  ``last_linear`` or ``last_linear.1`` head, unused ``adjust_channel``); the F3Net FAD head is written
  here from the paper's definition with an independent DCT (scipy) and numpy band masks.
* DeepfakeBench EfficientNet-B4: ``efficientnet_pytorch`` (Apache-2.0; the exact network DeepfakeBench
  wraps) with its stem replaced by a padding-0 conv and its ImageNet classifier by ``last_layer``.
* Original GenConViT ED / VAE: written here from the published description and key layout, on timm's
  ConvNeXt-T, with the dead Swin "hybrid embedding" attached where ConvNeXt never calls it (so the
  state dict holds the shared tensors twice, as the released files do). Upstream index 0 = FAKE.

Weights are random; BatchNorm running statistics are measured on random inputs and then perturbed,
so that they are neither the identity nor degenerate (outputs depend on the input). The GenConViT
references also get variance-preserving random weights in every convolution and linear layer
(:func:`randomise_every_layer`): with the library's default initialisation their plain-convolution
autoencoder passes almost nothing on, so a wrong mapping of it would barely move the logits.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import timm
import torch
import torch.nn as nn
import torch.nn.functional as F

# ------------------------------------------------------------------------------------ weights
NORMS = (nn.BatchNorm2d, nn.LayerNorm)


@torch.no_grad()
def randomise(model: nn.Module, calib: torch.Tensor, seed: int = 0, forward=None) -> nn.Module:
    """Random affine norm parameters, BatchNorm statistics measured on ``calib`` then perturbed; eval mode."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, NORMS) and m.weight is not None:
            m.weight.copy_(torch.empty_like(m.weight).uniform_(0.7, 1.3, generator=g))
            m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
        if hasattr(m, "gamma") and isinstance(m.gamma, nn.Parameter):   # ConvNeXt layer scale (1e-6 at init)
            m.gamma.copy_(torch.empty_like(m.gamma).uniform_(0.05, 0.3, generator=g))
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None          # cumulative average: the statistics of the calibration batch
    model.train()
    (forward or model)(calib)
    for m in bns:
        m.momentum = 0.1
        m.running_mean.add_(torch.randn(m.running_mean.shape, generator=g) * 0.05 * m.running_var.sqrt())
        m.running_var.mul_(torch.empty_like(m.running_var).uniform_(0.8, 1.25, generator=g))
        m.num_batches_tracked.fill_(1234)
    return model.eval()


def _fan_in(m: nn.Module) -> int:
    """Inputs summed into one output value: ``cin/groups * kh * kw`` for a convolution, ``in_features``
    for a linear layer, ``cin * kh * kw / (sh * sw)`` for a transposed convolution."""
    w = m.weight
    if isinstance(m, nn.ConvTranspose2d):
        return max(1, w.shape[0] * w.shape[2] * w.shape[3] // (m.stride[0] * m.stride[1]))
    return w[0].numel()


@torch.no_grad()
def variance_preserving(model: nn.Module, seed: int = 0, gain: float = 2.0) -> nn.Module:
    """Every convolution, transposed convolution and linear layer: weights N(0, gain / fan-in) (He:
    a ReLU-like layer keeps its input's second moment), biases N(0, 0.1^2)."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (gain / _fan_in(m)) ** 0.5)
            if m.bias is not None:
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
    return model


def randomise_every_layer(model: nn.Module, calib: torch.Tensor, seed: int = 0, forward=None) -> nn.Module:
    """:func:`variance_preserving` weights everywhere, then :func:`randomise`'s norms and layer scales."""
    return randomise(variance_preserving(model, seed + 1000), calib, seed, forward)


def save_plain(state: dict, path: Path) -> Path:
    torch.save(state, path)
    return path


def save_ddp(state: dict, path: Path) -> Path:
    torch.save({f"module.{k}": v for k, v in state.items()}, path)
    return path


def save_training_dict(model: nn.Module, path: Path, epoch: int = 7) -> Path:
    """GenConViT's train.py: {"epoch", "state_dict", "optimizer", "min_loss"}."""
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4, weight_decay=1e-4)
    torch.save({"epoch": epoch, "state_dict": model.state_dict(), "optimizer": opt.state_dict(),
                "min_loss": 0.1234}, path)
    return path


# ------------------------------------------------------------------------------ DeepfakeBench
def cadene_xception_module():
    """``pretrainedmodels.models.xception`` loaded by path (the package __init__ needs ``six``)."""
    spec = importlib.util.find_spec("pretrainedmodels")
    if spec is None:
        return None
    path = os.path.join(list(spec.submodule_search_locations)[0], "models", "xception.py")
    s = importlib.util.spec_from_file_location("_cadene_xception", path)
    mod = importlib.util.module_from_spec(s)
    s.loader.exec_module(mod)
    return mod


def dct_ortho(n: int) -> np.ndarray:
    """DCT-II matrix from scipy (independent of the toolkit's own)."""
    from scipy.fft import dct
    return dct(np.eye(n), type=2, norm="ortho", axis=0)


def band(size: int, start: float, end: float) -> np.ndarray:
    m = np.zeros((size, size), np.float32)
    for i in range(size):
        for j in range(size):
            if start < i + j <= end:
                m[i, j] = 1.0
    return m


class RefFilter(nn.Module):
    def __init__(self, size, start, end):
        super().__init__()
        self.base = nn.Parameter(torch.from_numpy(band(size, start, end)), requires_grad=False)
        self.learnable = nn.Parameter(torch.randn(size, size) * 0.1)

    def forward(self, x):
        return x * (self.base + 2.0 * torch.sigmoid(self.learnable) - 1.0)


class RefFAD(nn.Module):
    """F3Net's FAD head, in DeepfakeBench's key layout (``_DCT_all``, ``_DCT_all_T``, ``filters.N``)."""

    def __init__(self, size=256):
        super().__init__()
        d = torch.from_numpy(dct_ortho(size)).float()
        self._DCT_all = nn.Parameter(d, requires_grad=False)
        self._DCT_all_T = nn.Parameter(d.t().contiguous(), requires_grad=False)
        edges = [(0, size // 2.82), (size // 2.82, size // 2), (size // 2, size * 2), (0, size * 2)]
        self.filters = nn.ModuleList(RefFilter(size, a, b) for a, b in edges)

    def forward(self, x):
        freq = self._DCT_all @ x @ self._DCT_all_T
        return torch.cat([self._DCT_all_T @ f(freq) @ self._DCT_all for f in self.filters], dim=1)


class DFBXceptionDetector(nn.Module):
    """DeepfakeBench's xception (``fad=False``) or f3net (``fad=True``) layout on Cadene's network."""

    def __init__(self, fad: bool = False, dropout: bool | None = None, adjust_channel: bool = True):
        super().__init__()
        mod = cadene_xception_module()
        b = mod.Xception(num_classes=2)
        del b.fc
        if fad:
            b.conv1 = nn.Conv2d(12, 32, 3, 2, 0, bias=False)
        dropout = fad if dropout is None else dropout
        b.last_linear = nn.Sequential(nn.Dropout(0.5), nn.Linear(2048, 2)) if dropout else nn.Linear(2048, 2)
        if adjust_channel:
            b.adjust_channel = nn.Sequential(nn.Conv2d(2048, 512, 1, 1), nn.BatchNorm2d(512), nn.ReLU())
        self.backbone = b
        if fad:
            self.FAD_head = RefFAD(256)

    def forward(self, x):
        """``x``: normalised images (mean = std = 0.5); returns [real, fake] logits."""
        if hasattr(self, "FAD_head"):
            x = self.FAD_head(x)
        return self.backbone.logits(self.backbone.features(x))


class DFBEfficientNetB4(nn.Module):
    """DeepfakeBench's efficientnetb4 detector layout on efficientnet_pytorch."""

    def __init__(self):
        super().__init__()
        from efficientnet_pytorch import EfficientNet

        class Backbone(nn.Module):
            def __init__(self):
                super().__init__()
                self.efficientnet = EfficientNet.from_name("efficientnet-b4")
                self.efficientnet._conv_stem = nn.Conv2d(3, 48, kernel_size=3, stride=2, bias=False)
                self.efficientnet._fc = nn.Identity()
                self.last_layer = nn.Linear(1792, 2)

        self.backbone = Backbone()

    def forward(self, x):
        f = self.backbone.efficientnet.extract_features(x)
        return self.backbone.last_layer(torch.flatten(F.adaptive_avg_pool2d(f, 1), 1))


def dfb_inputs(n: int = 2, size: int = 256, seed: int = 1) -> torch.Tensor:
    """[0, 1] images with structure (smooth blobs + noise), not just noise."""
    g = torch.Generator().manual_seed(seed)
    low = F.interpolate(torch.rand(n, 3, 8, 8, generator=g), size=(size, size), mode="bicubic",
                        align_corners=False)
    return (0.7 * low + 0.3 * torch.rand(n, 3, size, size, generator=g)).clamp(0, 1)


# ------------------------------------------------------------------------------ GenConViT original
class _Seq(nn.Module):
    def __init__(self, *layers):
        super().__init__()
        self.features = nn.Sequential(*layers)

    def forward(self, x):
        return self.features(x)


class HybridEmbedLike(nn.Module):
    """The release's ``patch_embed``: a reference to the Swin embedder plus a 1x1 projection."""

    def __init__(self, embedder: nn.Module, feature_dim: int = 1000, embed_dim: int = 768):
        super().__init__()
        self.backbone = embedder
        self.proj = nn.Conv2d(feature_dim, embed_dim, 1)


def _small_swin():
    # the embedder never runs: a small Swin keeps the test fast; its keys are dropped by prefix anyway
    return timm.create_model("swin_tiny_patch4_window7_224", embed_dim=24, depths=(1, 1, 1, 1),
                             num_heads=(1, 1, 1, 1), num_classes=1000)


class RefGenConViTED(nn.Module):
    def __init__(self):
        super().__init__()
        conv = []
        for a, b in zip((3, 16, 32, 64, 128), (16, 32, 64, 128, 256)):
            conv += [nn.Conv2d(a, b, (3, 3), (1, 1), (1, 1)), nn.ReLU(inplace=True),
                     nn.MaxPool2d((2, 2), (2, 2))]
        self.encoder = _Seq(*conv)
        dec = []
        for a, b in zip((256, 128, 64, 32, 16), (128, 64, 32, 16, 3)):
            dec += [nn.ConvTranspose2d(a, b, (2, 2), (2, 2)), nn.ReLU(inplace=True)]
        self.decoder = _Seq(*dec)
        self.backbone = timm.create_model("convnext_tiny", num_classes=1000)
        self.embedder = _small_swin()
        self.backbone.patch_embed = HybridEmbedLike(self.embedder)
        self.fc = nn.Linear(2000, 500)
        self.fc2 = nn.Linear(500, 2)

    def reconstruct(self, x):
        """The autoencoder's output (what ConvNeXt reads beside the image)."""
        return self.decoder(self.encoder(x))

    def forward(self, x):
        """ImageNet-normalised images -> [fake, real] logits (upstream order)."""
        rec = self.reconstruct(x)
        f = torch.cat((self.backbone(rec), self.backbone(x)), dim=1)
        return self.fc2(F.gelu(self.fc(F.gelu(f))))


class _RefVAEEncoder(nn.Module):
    def __init__(self, size):
        super().__init__()
        layers = []
        for a, b in zip((3, 16, 32, 64), (16, 32, 64, 128)):
            layers += [nn.Conv2d(a, b, 3, 2, 1), nn.BatchNorm2d(b), nn.LeakyReLU()]
        self.features = nn.Sequential(*layers)
        flat, latent = 128 * (size // 16) ** 2, 256 * (size // 32) ** 2
        self.fc1 = nn.Linear(flat, 256)
        self.fc2 = nn.Linear(256, 128)
        self.mu = nn.Linear(flat, latent)
        self.var = nn.Linear(flat, latent)

    def forward(self, x, sample: bool):
        h = torch.flatten(self.features(x), 1)
        mu = self.mu(h)
        _ = self.var(h)   # upstream computes a KL term from it and never uses it
        if sample:        # upstream's eval-mode sampling, std = exp(0.5 * mu)
            return torch.randn_like(mu) * torch.exp(0.5 * mu) + mu
        return mu


class RefGenConViTVAE(nn.Module):
    def __init__(self, size: int = 224):
        super().__init__()
        self.encoder = _RefVAEEncoder(size)
        dec = [nn.Unflatten(1, (256, size // 32, size // 32))]
        layers = []
        for a, b in zip((256, 64, 32, 16), (64, 32, 16, 3)):
            layers += [nn.ConvTranspose2d(a, b, 2, 2), nn.LeakyReLU()]
        self.decoder = nn.Module()
        self.decoder.unflatten = dec[0]
        self.decoder.features = nn.Sequential(*layers)
        self.embedder = _small_swin()
        self.convnext_backbone = timm.create_model("convnext_tiny", num_classes=1000, drop_path_rate=0)
        self.convnext_backbone.patch_embed = HybridEmbedLike(self.embedder)
        self.fc = nn.Linear(2000, 500)
        self.fc3 = nn.Linear(1000, 500)
        self.fc2 = nn.Linear(500, 2)

    def reconstruct(self, x, sample: bool = False):
        """The decoded latent (half the input size), z = mu unless ``sample``."""
        return self.decoder.features(self.decoder.unflatten(self.encoder(x, sample)))

    def forward(self, x, sample: bool = False):
        rec = self.reconstruct(x, sample)
        f = torch.cat((self.convnext_backbone(x), self.convnext_backbone(rec)), dim=1)
        return self.fc2(F.relu(self.fc(F.relu(f))))


IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def imagenet_norm(x: torch.Tensor) -> torch.Tensor:
    return (x - IMAGENET_MEAN) / IMAGENET_STD


def clip_vision_encoder_state(layers: int = 18, dim: int = 32, prefix: str = "module.backbone.") -> dict:
    """A headless CLIP vision encoder in Hugging Face's layout (what a CLIP-based detector saved without
    its classifier looks like): embeddings, pre/post layer norms, ``encoder.layers.N`` blocks."""
    g = torch.Generator().manual_seed(0)

    def t(*shape):
        return torch.randn(*shape, generator=g) * 0.02

    s = {"embeddings.class_embedding": t(dim), "embeddings.patch_embedding.weight": t(dim, 3, 14, 14),
         "embeddings.position_embedding.weight": t(257, dim), "pre_layrnorm.weight": t(dim),
         "pre_layrnorm.bias": t(dim)}
    for i in range(layers):
        p = f"encoder.layers.{i}."
        for proj in ("k_proj", "v_proj", "q_proj", "out_proj"):
            s[p + f"self_attn.{proj}.weight"], s[p + f"self_attn.{proj}.bias"] = t(dim, dim), t(dim)
        s[p + "layer_norm1.weight"], s[p + "layer_norm1.bias"] = t(dim), t(dim)
        s[p + "mlp.fc1.weight"], s[p + "mlp.fc1.bias"] = t(4 * dim, dim), t(4 * dim)
        s[p + "mlp.fc2.weight"], s[p + "mlp.fc2.bias"] = t(dim, 4 * dim), t(dim)
        s[p + "layer_norm2.weight"], s[p + "layer_norm2.bias"] = t(dim), t(dim)
    s["post_layernorm.weight"], s["post_layernorm.bias"] = t(dim), t(dim)
    return {prefix + k: v for k, v in s.items()}
