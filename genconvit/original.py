"""The original GenConViT networks (Wodajo et al., 2023), as legacy models for its released weights.

For evaluating and fine-tuning the published ``genconvit_ed`` / ``genconvit_vae`` checkpoints only; the
repaired ``genconvit`` (:mod:`genconvit.model`) is the model to train. Rebuilt from the paper and the
published checkpoint layout, on timm's ConvNeXt-T, whose key names are unchanged from the timm 0.6.x
the release was trained with.

* ED: encoder 5 × [conv 3×3 → ReLU → max-pool 2] (3 → 16 → 32 → 64 → 128 → 256, 224 → 7), decoder
  5 × [transposed conv 2×2 stride 2 → ReLU] back to 3×224×224; f = [ConvNeXt(x̂), ConvNeXt(x)], each the
  backbone's 1000 ImageNet logits (2000-d); logits = fc2(GELU(fc(GELU(f)))), fc 2000 → 500 → 2.
* VAE: encoder 4 × [conv 3×3 stride 2 → BatchNorm → LeakyReLU] to 128×14×14, ``mu`` Linear 25088 → 12544,
  decoder (unflatten to 256×7×7) 4 × [transposed conv 2×2 stride 2 → LeakyReLU] to a 112×112
  reconstruction, which ConvNeXt reads at that size; f = [ConvNeXt(x), ConvNeXt(x̂)] (the other order
  than ED); ReLU instead of GELU.

Differences from the release, all deliberate:

* **labels**: upstream index 0 = FAKE, 1 = REAL (flipped back by an XOR at prediction). The import
  swaps the rows of ``fc2`` so that this toolkit's convention holds (0 = real, 1 = fake); nothing is
  flipped at prediction time. The MLP head (``fc``, ``fc2``) lives under ``head.`` here, as in every
  model of this toolkit.
* **deterministic VAE**: upstream samples z = ε·exp(½·mu) + mu even in eval mode (its ``var`` head is
  used only by a KL term it never adds to the loss), so its predictions change from run to run; here
  z = mu, the mode of that distribution, and ``encoder.var`` is not part of the model.
* **dead weights dropped by name** at import: the Swin-T "hybrid embedding" (``embedder.*`` and its
  second reference ``backbone.patch_embed.*`` / ``convnext_backbone.patch_embed.*``: attached to an
  attribute ConvNeXt never calls, it never runs; the two references share tensors, which safetensors
  refuses to save), and the VAE's never-called ``fc3`` and ``encoder.fc1`` / ``encoder.fc2``.

``size``: ``full`` is the released 224-px network; ``tiny`` the same layers at 64-px inputs (the VAE's
latent linears shrink from 25088 → 12544 to 2048 → 1024; ConvNeXt-T stays), for tests and the demo.
ConvNeXt's weights are kept channels-last, as in :mod:`genconvit.model` (its blocks hand channels-last
activations to their convolutions, so the weight gradients come out channels-last and DDP's buckets
match them).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
import timm

from utils.core.interop.mapping import KeyMapping, drop, register_mapping, rename, swap_rows
from utils.core.model import IMAGENET_MEAN, IMAGENET_STD, DeepfakeModel, InputSpec
from utils.core.registry import register_model

IMAGE_SIZE = 224
SIZES = {"full": IMAGE_SIZE, "tiny": 64}     # input size; the layers are the release's at both
BACKBONE = "convnext_tiny"
IMAGENET_CLASSES = 1000
UPSTREAM_LABELS = ("fake", "real")           # row order of the released fc2
TO_TOOLKIT = (1, 0)                          # our row r = upstream row TO_TOOLKIT[r]


def _spec(image_size: int) -> InputSpec:
    if image_size % 32:
        raise ValueError(f"the original GenConViT needs an image size divisible by 32 (five 2x poolings); "
                         f"got {image_size} (released weights: {IMAGE_SIZE})")
    return InputSpec(crop="face", image_size=image_size, mean=IMAGENET_MEAN, std=IMAGENET_STD)


def _convnext(pretrained: bool) -> nn.Module:
    """ConvNeXt-T with its ImageNet head (the release classifies its 1000 logits), weights channels-last
    (see the module docstring)."""
    model = timm.create_model(BACKBONE, pretrained=pretrained, num_classes=IMAGENET_CLASSES,
                              drop_path_rate=0.0)
    return model.to(memory_format=torch.channels_last)


def _mlp_head(num_classes: int) -> nn.Module:
    """The release's ``fc`` (2000 -> 500) and ``fc2`` (500 -> classes), kept under ``head.`` here."""
    head = nn.Module()
    head.fc = nn.Linear(2 * IMAGENET_CLASSES, 2 * IMAGENET_CLASSES // 4)
    head.fc2 = nn.Linear(2 * IMAGENET_CLASSES // 4, num_classes)
    return head


class _Stack(nn.Module):
    """A module whose only child is ``features`` (the released key layout: ``encoder.features.N``)."""

    def __init__(self, layers: list[nn.Module]):
        super().__init__()
        self.features = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def _ed_encoder(widths=(3, 16, 32, 64, 128, 256)) -> _Stack:
    layers: list[nn.Module] = []
    for cin, cout in zip(widths, widths[1:]):
        layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
    return _Stack(layers)


def _ed_decoder(widths=(256, 128, 64, 32, 16, 3)) -> _Stack:
    layers: list[nn.Module] = []
    for cin, cout in zip(widths, widths[1:]):
        layers += [nn.ConvTranspose2d(cin, cout, 2, stride=2), nn.ReLU(inplace=True)]
    return _Stack(layers)


class OriginalGenConViTED(DeepfakeModel):
    """The released ED network (see the module docstring); logits in this toolkit's order."""

    head_prefixes = ("head.",)

    def __init__(self, num_classes: int = 2, pretrained: bool = False, image_size: int = IMAGE_SIZE):
        super().__init__(_spec(image_size), num_classes)
        self.encoder = _ed_encoder()
        self.decoder = _ed_decoder()
        self.backbone = _convnext(pretrained)
        self.head = _mlp_head(num_classes)

    def forward(self, batch: dict) -> dict:
        x = self.normalize(batch["image"])
        recon = self.decoder(self.encoder(x))
        f = torch.cat([self.backbone(recon), self.backbone(x)], dim=1)
        return {"logits": self.head.fc2(F.gelu(self.head.fc(F.gelu(f)))), "recon_ed": recon}


class _VAEEncoder(nn.Module):
    def __init__(self, image_size: int, widths=(3, 16, 32, 64, 128)):
        super().__init__()
        layers: list[nn.Module] = []
        for cin, cout in zip(widths, widths[1:]):
            layers += [nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.BatchNorm2d(cout), nn.LeakyReLU()]
        self.features = nn.Sequential(*layers)
        grid = image_size // 16
        self.latent_shape = (256, image_size // 32, image_size // 32)   # 12544 = 256·7·7 at 224 px
        self.mu = nn.Linear(widths[-1] * grid * grid, 256 * (image_size // 32) ** 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The latent mean (z = mu: deterministic, see the module docstring)."""
        return self.mu(torch.flatten(self.features(x), 1))


class _VAEDecoder(nn.Module):
    def __init__(self, latent_shape: tuple[int, int, int], widths=(256, 64, 32, 16, 3)):
        super().__init__()
        self.unflatten = nn.Unflatten(1, latent_shape)
        layers: list[nn.Module] = []
        for cin, cout in zip(widths, widths[1:]):
            layers += [nn.ConvTranspose2d(cin, cout, 2, stride=2), nn.LeakyReLU()]
        self.features = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.features(self.unflatten(z))


class OriginalGenConViTVAE(DeepfakeModel):
    """The released VAE network, deterministic (z = mu); logits in this toolkit's order."""

    head_prefixes = ("head.",)

    def __init__(self, num_classes: int = 2, pretrained: bool = False, image_size: int = IMAGE_SIZE):
        super().__init__(_spec(image_size), num_classes)
        self.encoder = _VAEEncoder(image_size)
        self.decoder = _VAEDecoder(self.encoder.latent_shape)
        self.convnext_backbone = _convnext(pretrained)
        self.head = _mlp_head(num_classes)

    def forward(self, batch: dict) -> dict:
        x = self.normalize(batch["image"])
        recon = self.decoder(self.encoder(x))             # half the input size (112 at 224)
        f = torch.cat([self.convnext_backbone(x), self.convnext_backbone(recon)], dim=1)
        return {"logits": self.head.fc2(F.relu(self.head.fc(F.relu(f)))), "recon_vae": recon}

    def loss(self, outputs: dict, batch: dict) -> dict:
        """The release's objective: classification + MSE between the reconstruction (resized to the
        input size) and the normalised input."""
        cls = self.criterion(outputs["logits"], batch["label"])
        recon = F.interpolate(outputs["recon_vae"].float(), size=batch["image"].shape[-2:], mode="bilinear",
                              antialias=True, align_corners=False)
        rec = F.mse_loss(recon, self.normalize(batch["image"]))
        return {"loss": cls + rec, "cls": cls, "vae_rec": rec}


# ------------------------------------------------------------------------------------ key mappings
_SWIN_REASON = ("the Swin-T 'hybrid embedding', attached as the ConvNeXt's patch_embed, which ConvNeXt never "
                "calls, so it never runs; {what}")
_DROP_EMBEDDER = drop(r"embedder\..+", "swin_embedder", _SWIN_REASON.format(what="these are its weights"))
_HEAD_RULES = (
    rename(r"fc\.(weight|bias)", r"head.fc.\1", "head_hidden"),
    rename(r"fc2\.(weight|bias)", r"head.fc2.\1", "head", transform=swap_rows(TO_TOOLKIT)),
)
_NOTES = ("Upstream index 0 = FAKE: the rows of fc2 were swapped at import so that index 0 = real, 1 = fake "
          "(this toolkit's convention); nothing is flipped at prediction.",
          "Input: 224-px faces, normalised by the model with ImageNet mean/std.")
_HEAD = (r"fc2\.weight",)
_HEAD_HINT = "fc2.weight [2, 500] (after fc [500, 2000])"


_SHARED = ("a second reference to the embedder's tensors plus its projection conv (shared tensors: "
           "safetensors refuses them)")


def _convnext_rules(attr: str) -> tuple:
    return (
        drop(rf"{attr}\.patch_embed\..+", "swin_patch_embed",
             _SWIN_REASON.format(what=_SHARED)),
        rename(rf"{attr}\.((?:stem|stages|norm_pre|head)\..+)", rf"{attr}.\1", "convnext"),
    )


GENCONVIT_ORIGINAL_ED = register_mapping(KeyMapping(
    format="genconvit", arch="genconvit_original_ed",
    rules=(rename(r"encoder\.features\.(0|3|6|9|12)\.(weight|bias)", r"encoder.features.\1.\2", "encoder"),
           rename(r"decoder\.features\.(0|2|4|6|8)\.(weight|bias)", r"decoder.features.\1.\2", "decoder"),
           _DROP_EMBEDDER, *_convnext_rules("backbone"), *_HEAD_RULES),
    head=_HEAD, head_hint=_HEAD_HINT, aliases=("ed", "genconvit_ed"), label_order=UPSTREAM_LABELS,
    description="original GenConViT ED (released genconvit_ed_*.pth, timm 0.6.x names)", notes=_NOTES))

_BN_LEAF = "weight|bias|running_mean|running_var|num_batches_tracked"


def _vae_size(state: dict) -> dict:
    """The input size the VAE was built for, from its latent mean's input width (128·(size/16)²)."""
    w = state.get("encoder.mu.weight")
    if w is None or w.dim() != 2:
        return {}
    size = 16 * round((w.shape[1] / 128) ** 0.5)
    return {} if size == IMAGE_SIZE or 128 * (size // 16) ** 2 != w.shape[1] else {"image_size": size}


GENCONVIT_ORIGINAL_VAE = register_mapping(KeyMapping(
    format="genconvit", arch="genconvit_original_vae",
    rules=(rename(r"encoder\.features\.(0|1|3|4|6|7|9|10)\.(" + _BN_LEAF + ")", r"encoder.features.\1.\2",
                  "encoder"),
           rename(r"encoder\.mu\.(weight|bias)", r"encoder.mu.\1", "latent_mean"),
           drop(r"encoder\.var\..+", "latent_var",
                "the log-variance head feeds only the KL term, which upstream computes but never adds to the "
                "loss (and its sampling uses mu for the std); the import decodes z = mu, so it never changes "
                "an output"),
           drop(r"encoder\.fc[12]\..+", "encoder_fc",
                "defined in the encoder but never called by its forward"),
           rename(r"decoder\.features\.(0|2|4|6)\.(weight|bias)", r"decoder.features.\1.\2", "decoder"),
           _DROP_EMBEDDER, *_convnext_rules("convnext_backbone"),
           drop(r"fc3\..+", "fc3", "defined but never called by the forward"),
           *_HEAD_RULES),
    head=_HEAD, head_hint=_HEAD_HINT, aliases=("vae", "genconvit_vae"), label_order=UPSTREAM_LABELS,
    model_kwargs=_vae_size,
    description="original GenConViT VAE (released genconvit_vae_*.pth, timm 0.6.x names)",
    notes=_NOTES + ("Deterministic VAE: z = mu (upstream samples z = eps * exp(0.5 * mu) + mu even in eval "
                    "mode, so its own predictions vary from run to run; the import's equal upstream's with "
                    "eps = 0).",)))


def _create_original(cls: type[DeepfakeModel], *, size: str = "full", pretrained: bool = False,
                     pretrained_path: str | None = None, num_classes: int = 2, image_size: int | None = None,
                     **unknown) -> DeepfakeModel:
    """Build an original GenConViT network at a size (``image_size`` overrides the size's input)."""
    if unknown:
        raise TypeError(f"unknown arguments {sorted(unknown)} for the original GenConViT (it has no dropout "
                        "or other options); valid: image_size, num_classes, pretrained, size")
    if size not in SIZES:
        raise ValueError(f"unknown size '{size}' for the original GenConViT; choose one of {sorted(SIZES)}")
    if pretrained_path:
        raise ValueError("the original GenConViT takes its weights from the released checkpoint: import "
                         "it with launch/import_weights.py --format genconvit, then use --init")
    return cls(num_classes=num_classes, pretrained=pretrained, image_size=image_size or SIZES[size])


@register_model("genconvit_original_ed")
def genconvit_original_ed(**kwargs) -> OriginalGenConViTED:
    """The released GenConViT ED network (legacy: for its checkpoints). ``size``: ``full`` 224 px,
    ``tiny`` the same layers at 64 px (30.2 M parameters at both: ConvNeXt-T + a small autoencoder)."""
    return _create_original(OriginalGenConViTED, **kwargs)


@register_model("genconvit_original_vae")
def genconvit_original_vae(**kwargs) -> OriginalGenConViTVAE:
    """The released GenConViT VAE network, deterministic (legacy: for its checkpoints). ``size``: ``full``
    224 px (344 M parameters, most in the latent linear), ``tiny`` 64 px (31.9 M)."""
    return _create_original(OriginalGenConViTVAE, **kwargs)
