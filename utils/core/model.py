"""The model task contract every deepfake model follows.

A detector is an ``nn.Module`` that

* declares the input it needs in an :class:`InputSpec` (crop policy, size, clip length, audio) so the
  data pipeline can serve it without model names in shared code;
* takes a batch dict and returns a dict with at least ``logits`` (``forward``);
* turns those outputs into a loss dict with ``loss`` (the total) and every term worth logging
  (``loss``); the classification criterion is chosen by the stage recipe and set by the trainer;
* normalises its own input: batches carry images as ``uint8`` (or float in [0, 1]) so loaders move 4x
  fewer bytes and reconstruction targets stay in the decoder's [0, 1] range.

Batch keys shared by all models: ``image`` (B×C×H×W) or ``clip`` (B×T×C×H×W), ``audio``
(B×n_mels×(T·mel_per_frame), log-mel) and ``audio_mask`` (B) where used, ``label`` (B, long),
and the bookkeeping keys ``video_id``, ``method``, ``frame_index``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Callable, Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CROP_POLICIES = ("face", "context", "native")
LABEL_NAMES = ("real", "fake")  # label 0 = real, 1 = fake, everywhere (never flipped)


@dataclass(frozen=True)
class InputSpec:
    """What a model needs from the data pipeline."""

    crop: Literal["face", "context", "native"] = "face"  # face: resized with margin; context: wider; native: as stored
    image_size: int = 224
    context_scale: float = 2.0    # context crop = this x the face box, centred on it (face = central 1/scale)
    clip_len: int = 1             # 1 -> batch["image"]; >1 -> batch["clip"] of consecutive frames
    audio: bool = False           # batch["audio"] log-mel window aligned with the clip + batch["audio_mask"]
    n_mels: int = 64
    mel_per_frame: int = 4        # log-mel frames per video frame: audio has clip_len * mel_per_frame columns
    sample_rate: int = 16000
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self):
        if self.crop not in CROP_POLICIES:
            raise ValueError(f"crop policy '{self.crop}' is not one of {CROP_POLICIES}")

    @property
    def audio_frames(self) -> int:
        return self.clip_len * self.mel_per_frame

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class CamLayer:
    """A layer whose output Grad-CAM can turn into a heat map: a feature map (N×C×h×W, N×h×w×C, or
    N×L×C tokens of a square grid) over ``box`` of the input crop (top, left, bottom, right, as shares
    of its height and width). ``channels`` (C, 0 = unknown) tells the layouts apart."""

    module: nn.Module
    channels: int = 0
    box: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)


def backbone_cam_layer(backbone: nn.Module) -> CamLayer:
    """The last feature stage of a timm model (its ``feature_info``), where Grad-CAM usually looks."""
    last = backbone.feature_info[-1]
    module = backbone.get_submodule(last["module"])
    if getattr(backbone, "global_pool", None) == "token" and hasattr(module, "norm1"):
        module = module.norm1   # class-token pooling (ViT): after the last block no patch token reaches the output
    return CamLayer(module, int(last.get("num_chs", 0)))


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.float(), labels)


class DeepfakeModel(nn.Module):
    """Base class of every model: input declaration, normalisation, default loss, dummy batches."""

    #: state-dict prefixes of the classification head; a checkpoint that misses them is refused.
    head_prefixes: tuple[str, ...] = ("head.",)

    def __init__(self, input_spec: InputSpec, num_classes: int = 2):
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        self.input_spec = input_spec
        self.num_classes = num_classes
        # the classification criterion is a plain callable, not a submodule: it never enters the
        # state dict, so weights move between stages whose losses differ.
        self.criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = cross_entropy
        self.register_buffer("_mean", torch.tensor(input_spec.mean).view(3, 1, 1), persistent=False)
        self.register_buffer("_std", torch.tensor(input_spec.std).view(3, 1, 1), persistent=False)

    @staticmethod
    def to_unit(x: torch.Tensor) -> torch.Tensor:
        """uint8 [0, 255] or float [0, 1] -> float [0, 1]."""
        return x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """[0, 1] or uint8 images (…×3×H×W) -> the backbone's normalised input."""
        return (self.to_unit(x) - self._mean) / self._std

    def set_normalization(self, mean, std) -> None:
        """Normalise with this per-channel mean/std ([0, 1] units) instead of the backbone's (spec too)."""
        self.input_spec = replace(self.input_spec, mean=tuple(float(v) for v in mean),
                                  std=tuple(float(v) for v in std))
        self._mean.copy_(torch.tensor(self.input_spec.mean).view(3, 1, 1))
        self._std.copy_(torch.tensor(self.input_spec.std).view(3, 1, 1))

    def forward(self, batch: dict) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def loss(self, outputs: dict, batch: dict) -> dict:
        """Total loss and its terms; subclasses add their own terms to ``cls``."""
        cls = self.criterion(outputs["logits"], batch["label"])
        return {"loss": cls, "cls": cls}

    def dummy_batch(self, batch_size: int = 2, generator: torch.Generator | None = None) -> dict:
        """A valid random batch for this model (tests, benchmarks, smoke checks)."""
        spec, g = self.input_spec, generator
        s = spec.image_size
        batch: dict = {"label": torch.arange(batch_size) % self.num_classes}
        shape = (batch_size, 3, s, s) if spec.clip_len == 1 else (batch_size, spec.clip_len, 3, s, s)
        key = "image" if spec.clip_len == 1 else "clip"
        batch[key] = torch.randint(0, 256, shape, dtype=torch.uint8, generator=g)
        if spec.audio:
            batch["audio"] = torch.randn(batch_size, spec.n_mels, spec.audio_frames, generator=g)
            batch["audio_mask"] = torch.ones(batch_size)
        batch["video_id"] = [f"dummy/{i}" for i in range(batch_size)]
        batch["method"] = ["dummy"] * batch_size
        batch["frame_index"] = torch.zeros(batch_size, dtype=torch.long)
        return batch

    def cam_layers(self) -> dict[str, CamLayer]:
        """The layers a Grad-CAM explanation looks at, by name: by default the last feature stage of
        every timm backbone the model holds as a direct child. A layer may see the input batch several
        times over: a clip's T frames (B·T rows, clip-major) or the images followed by images derived
        from them (GenConViT's reconstructions); its first rows are then the input's."""
        return {name: backbone_cam_layer(child) for name, child in self.named_children()
                if getattr(child, "feature_info", None)}

    def describe(self) -> dict:
        """What a checkpoint sidecar records about the model's input."""
        return {"input_spec": self.input_spec.to_dict(), "num_classes": self.num_classes}
