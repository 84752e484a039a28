"""What the DeepfakeBench baselines share: input spec, pooled timm backbone + linear head, the builder.

DeepfakeBench (Yan et al., 2023) trains every image detector on 256×256 face crops normalised with
mean = std = (0.5, 0.5, 0.5), label 1 = fake (its detector configs), which is this toolkit's label
order, so no head permutation is needed. Here each baseline is a :class:`DeepfakeModel` with a headless
timm ``backbone`` (pooled features) and a ``head`` Linear; dropout before the head only where the
upstream detector has it (F3Net's ``Sequential(Dropout(0.5), Linear)``).

``size``: each baseline is one upstream network, so there is nothing to shrink that would still load
its checkpoints; ``tiny`` builds the same network as ``full`` (256-px input, ~20 M parameters).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from utils.core.backbone import create_backbone
from utils.core.model import DeepfakeModel, InputSpec

DFB_SIZE = 256
DFB_MEAN = (0.5, 0.5, 0.5)
DFB_STD = (0.5, 0.5, 0.5)
DFB_NOTES = ("DeepfakeBench label 1 = fake, as in this toolkit: head rows kept in order.",
             "Input: 256-px face crops, normalised by the model with mean = std = 0.5 "
             "(DeepfakeBench's config).")
SIZES = ("full", "tiny")   # one upstream network: both are the same (see the module docstring)


def dfb_spec(image_size: int = DFB_SIZE) -> InputSpec:
    return InputSpec(crop="face", image_size=image_size, mean=DFB_MEAN, std=DFB_STD)


class PooledClassifier(DeepfakeModel):
    """``logits = head(dropout(backbone(normalise(image))))`` with a headless timm backbone."""

    head_prefixes = ("head.",)

    def __init__(self, backbone: nn.Module, spec: InputSpec, num_classes: int = 2, drop_rate: float = 0.0):
        super().__init__(spec, num_classes)
        self.backbone = backbone
        self.drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(backbone.num_features, num_classes)

    def check_image(self, batch: dict) -> torch.Tensor:
        if "image" not in batch:
            raise KeyError(f"{type(self).__name__} needs batch['image'] (B×3×H×W); "
                           f"the batch has keys {sorted(batch)}")
        x = batch["image"]
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"batch['image'] has shape {tuple(x.shape)}; expected B×3×H×W")
        return x

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features of normalised images."""
        return self.backbone(x)

    def forward(self, batch: dict) -> dict:
        x = self.normalize(self.check_image(batch))
        return {"logits": self.head(self.drop(self.features(x)))}


def _create_baseline(cls: type[PooledClassifier], timm_name: str, *, in_chans: int = 3,
                     head_drop: float = 0.0, path_drop: float | None = None, size: str = "full",
                     pretrained: bool = False, pretrained_path: str | None = None, num_classes: int = 2,
                     drop_rate: float | None = None,
                     drop_path_rate: float | None = None, image_size: int = DFB_SIZE,
                     **unknown) -> PooledClassifier:
    """Build a baseline: ``cls`` on the timm backbone ``timm_name``.

    Args:
        cls: the detector class (backbone, input spec, classes, head dropout).
        timm_name: the timm architecture of the backbone; ``in_chans`` its input channels.
        head_drop: the default head dropout; ``path_drop`` the default stochastic depth (None: the
            backbone has none, and ``drop_path_rate`` is not an argument).
        size: ``full`` or ``tiny``, the same network (see the module docstring).
        pretrained / pretrained_path: timm's ImageNet weights of the backbone (internet or a local file).
        num_classes, drop_rate, drop_path_rate, image_size: as their names say.
    """
    valid = ["drop_rate", "image_size", "num_classes", "pretrained", "pretrained_path", "size"]
    if path_drop is None and drop_path_rate is not None:
        unknown["drop_path_rate"] = drop_path_rate
    if unknown:
        extra = [] if path_drop is None else ["drop_path_rate"]
        raise TypeError(f"unknown {cls.__name__} arguments {sorted(unknown)}; valid: {sorted(valid + extra)}")
    if size not in SIZES:
        raise ValueError(f"unknown size '{size}' for {cls.__name__}; choose one of {list(SIZES)} "
                         "(one upstream network: both build it)")
    timm_args = {} if path_drop is None else {"drop_path_rate": path_drop if drop_path_rate is None
                                              else drop_path_rate}
    if in_chans != 3:
        timm_args["in_chans"] = in_chans
    backbone = create_backbone(timm_name, pretrained=pretrained, weights=pretrained_path or None, **timm_args)
    return cls(backbone, dfb_spec(image_size), num_classes, head_drop if drop_rate is None else drop_rate)
