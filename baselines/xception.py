"""DeepfakeBench's Xception baseline on timm's ``legacy_xception``, and the import rules for its checkpoints.

DeepfakeBench's Xception is Cadene's ``pretrainedmodels`` Xception (Chollet 2017, the FaceForensics++
baseline) with a configurable input width and head; timm's ``legacy_xception`` is a port of the same
network with the same module names (``conv1``, ``bn1``, ``block1`` … ``block12`` with ``rep``/``skip``,
``conv3``/``conv4`` separable convs, ``bn3``/``bn4``). So the checkpoint's backbone keys map onto
``backbone.*`` one to one; the head (``backbone.last_linear`` [2, 2048], or ``backbone.last_linear.1``
when it is ``Sequential(Dropout, Linear)``) becomes ``head``; the ``adjust_channel`` block DeepfakeBench
builds in every Xception but never calls in its Xception/F3Net detectors is dropped by name.
"""
from __future__ import annotations

import torch

from utils.core.interop.mapping import KeyMapping, drop, register_mapping, rename
from utils.core.registry import register_model

from .common import DFB_NOTES, PooledClassifier, _create_baseline

XCEPTION_MODULES = r"conv1|bn1|conv2|bn2|block(?:[1-9]|1[0-2])|conv3|bn3|conv4|bn4"
HEAD_PATTERNS = (r"backbone\.last_linear\.(?:1\.)?weight",)
HEAD_HINT = "backbone.last_linear.weight [2, 2048] (backbone.last_linear.1.* when the head has dropout)"


class XceptionDetector(PooledClassifier):
    """Xception (timm ``legacy_xception``, pooled 2048-d features) + a linear real/fake head."""


def _pointwise_4d(t: torch.Tensor, key: str) -> torch.Tensor:
    """Cadene's ImageNet file stores separable convs' pointwise weights as 2-D; DeepfakeBench's as 4-D."""
    return t[..., None, None] if key.endswith("pointwise.weight") and t.dim() == 2 else t


def xception_rules() -> tuple:
    """The rules shared by DeepfakeBench's Xception and F3Net backbones (``backbone.*`` keys)."""
    return (
        drop(r"backbone\.adjust_channel\..+", "adjust_channel",
             "DeepfakeBench builds adjust_channel (1x1 conv 2048->512 + BN + ReLU) in every Xception but "
             "calls it only in mode='adjust_channel', which its xception and f3net detectors do not use"),
        rename(r"backbone\.last_linear\.(?:1\.)?(weight|bias)", r"head.\1", "head"),
        rename(rf"backbone\.((?:{XCEPTION_MODULES})\..+)", r"backbone.\1", "xception",
               transform=_pointwise_4d),
    )


def head_dropout(state: dict) -> dict:
    """``last_linear.1.*`` means ``Sequential(Dropout(p), Linear)``; DeepfakeBench's configs use p = 0.5."""
    return {"drop_rate": 0.5 if "backbone.last_linear.1.weight" in state else 0.0}


DEEPFAKEBENCH_XCEPTION = register_mapping(KeyMapping(
    format="deepfakebench", arch="xception", rules=xception_rules(), head=HEAD_PATTERNS, head_hint=HEAD_HINT,
    description="DeepfakeBench xception detector (Cadene Xception, 3-channel input, 2-class head)",
    model_kwargs=head_dropout, notes=DFB_NOTES))


@register_model("xception")
def xception(**kwargs) -> XceptionDetector:
    """DeepfakeBench's Xception: 256-px faces, mean = std = 0.5, head dropout ``drop_rate`` (default 0).

    ``size``: ``tiny`` is the full network (one upstream architecture, 20.8 M parameters);
    ``pretrained`` / ``pretrained_path`` give timm's ImageNet ``legacy_xception`` weights.
    """
    return _create_baseline(XceptionDetector, "legacy_xception", **kwargs)
