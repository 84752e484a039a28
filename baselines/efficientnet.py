"""DeepfakeBench's EfficientNet-B4 baseline on timm's ``tf_efficientnet_b4``, with its padding reproduced.

DeepfakeBench wraps lukemelas' ``efficientnet_pytorch`` EfficientNet-B4 (TF-ported weights, BatchNorm
eps 1e-3) and replaces its stem by a plain ``Conv2d(3, 48, 3, stride=2, bias=False)``: padding 0, so a
256-px face becomes 127×127. Every block convolution keeps ``efficientnet_pytorch``'s *static* TF
"same" padding, computed once for the network's native 380-px input and never for the actual input:
the stride-2 depthwise convolutions of blocks 2, 6, 10 and 22 pad (left, right, top, bottom) =
(0,1,0,1), (2,2,2,2), (0,1,0,1), (1,2,1,2) whatever the input size, and a 256-px input runs at
127 → 63 → 32 → 16 → 8.

timm's ``tf_efficientnet_b4`` is the same network with the same weights layout, except that its
stride-2 convolutions pad *dynamically* for the actual input (``Conv2dSame``). :func:`static_same_padding`
does the surgery: the stem becomes the padding-0 convolution, every depthwise convolution a
:class:`StaticPadConv2d` with the pads of the 380-px geometry. (timm's ``efficientnet_b4`` does not
match at all: symmetric PyTorch padding and eps 1e-5.)

Keys: ``backbone.efficientnet._blocks.{0..31}`` are timm's ``blocks.{stage}.{index}`` (stage lengths
2, 4, 4, 6, 6, 8, 2); inside a block ``_expand_conv``/``_bn0``/``_depthwise_conv``/``_bn1``/
``_se_reduce``/``_se_expand``/``_project_conv``/``_bn2`` are ``conv_pw``/``bn1``/``conv_dw``/``bn2``/
``se.conv_reduce``/``se.conv_expand``/``conv_pwl``/``bn3`` (stage 0 has no expansion: ``conv_dw``/``bn1``/
``se``/``conv_pw``/``bn2``); ``_conv_stem``/``_bn0``/``_conv_head``/``_bn1`` are ``conv_stem``/``bn1``/
``conv_head``/``bn2``; the head ``backbone.last_layer`` [2, 1792] is ``head``.
"""
from __future__ import annotations

import math
import re

import torch
import torch.nn as nn
import torch.nn.functional as F

from utils.core.interop.mapping import KeyMapping, drop, register_mapping, rename
from utils.core.model import CamLayer, InputSpec
from utils.core.registry import register_model

from .common import DFB_NOTES, PooledClassifier, _create_baseline

TIMM_NAME = "tf_efficientnet_b4"
SAME_PAD_SIZE = 380                      # efficientnet-b4's native resolution (efficientnet_pytorch's pads)
STAGE_LENGTHS = (2, 4, 4, 6, 6, 8, 2)    # B4: ceil(1.8 x (1, 2, 2, 3, 3, 4, 1))
STEM_CHANNELS = 48


def same_pad(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[tuple[int, int, int, int], int]:
    """TF "same" padding (left, right, top, bottom) of a square input ``size``, and the output size."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    lo = total // 2
    return (lo, total - lo, lo, total - lo), out


class StaticPadConv2d(nn.Conv2d):
    """A ``Conv2d`` behind a fixed zero pad (left, right, top, bottom): TF "same" frozen for one size."""

    def __init__(self, conv: nn.Conv2d, pad: tuple[int, int, int, int]):
        super().__init__(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, 0, conv.dilation,
                         conv.groups, conv.bias is not None, device=conv.weight.device,
                         dtype=conv.weight.dtype)
        self.static_pad = tuple(int(p) for p in pad)
        with torch.no_grad():
            if conv.weight.device.type != "meta":
                self.weight.copy_(conv.weight)
                if conv.bias is not None:
                    self.bias.copy_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, self.static_pad) if any(self.static_pad) else x)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", static_pad={self.static_pad}"


def static_same_padding(model: nn.Module, pad_size: int = SAME_PAD_SIZE) -> list[tuple[int, int, int, int]]:
    """Give a timm TF EfficientNet DeepfakeBench's geometry (see the module docstring); returns the
    depthwise pads, block by block (32 for B4)."""
    stem = model.conv_stem
    plain = nn.Conv2d(stem.in_channels, stem.out_channels, stem.kernel_size, stem.stride, 0, bias=False,
                      device=stem.weight.device, dtype=stem.weight.dtype)
    with torch.no_grad():
        if stem.weight.device.type != "meta":
            plain.weight.copy_(stem.weight)
    model.conv_stem = plain
    # efficientnet_pytorch tracks the image size of its 380-px geometry from the (replaced) stem on
    size = math.ceil(pad_size / stem.stride[0])
    pads = []
    for stage in model.blocks:
        for block in stage:
            conv = block.conv_dw
            pad, out = same_pad(size, conv.kernel_size[0], conv.stride[0], conv.dilation[0])
            block.conv_dw = StaticPadConv2d(conv, pad)
            pads.append(pad)
            size = out
    return pads


# efficientnet_pytorch's operations, in its order, on timm's modules: the same arithmetic, so imported
# weights give the same numbers (timm's fused SiLU and mean-pooled SE differ in the last bits, and a
# random network's activations grow large enough for that to show at 1e-4).
def swish(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(x)


def _bn(bn: nn.BatchNorm2d, x: torch.Tensor) -> torch.Tensor:
    """timm's BatchNormAct2d as a plain BatchNorm (its activation is applied separately)."""
    return nn.BatchNorm2d.forward(bn, x)


def _se(se: nn.Module, x: torch.Tensor) -> torch.Tensor:
    if isinstance(se, nn.Identity):
        return x
    s = se.conv_expand(swish(se.conv_reduce(F.adaptive_avg_pool2d(x, 1))))
    return torch.sigmoid(s) * x


def _block(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    shortcut = x
    if hasattr(block, "conv_pwl"):   # MBConv: expansion, depthwise, SE, projection
        x = swish(_bn(block.bn1, block.conv_pw(x)))
        x = swish(_bn(block.bn2, block.conv_dw(x)))
        x = _bn(block.bn3, block.conv_pwl(_se(block.se, x)))
    else:                            # stage 0, expansion 1: depthwise, SE, projection
        x = swish(_bn(block.bn1, block.conv_dw(x)))
        x = _bn(block.bn2, block.conv_pw(_se(block.se, x)))
    if block.has_skip:
        x = block.drop_path(x) + shortcut   # drop connect (training only), as efficientnet_pytorch
    return x


class EfficientNetB4Detector(PooledClassifier):
    """EfficientNet-B4 (DeepfakeBench geometry, pooled 1792-d features) + a linear real/fake head."""

    def __init__(self, backbone: nn.Module, spec: InputSpec, num_classes: int = 2, drop_rate: float = 0.0,
                 pad_size: int = SAME_PAD_SIZE):
        super().__init__(backbone, spec, num_classes, drop_rate)
        self.depthwise_pads = static_same_padding(self.backbone, pad_size)

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """efficientnet_pytorch's ``extract_features``: B×1792×h×w (8×8 at 256 px)."""
        b = self.backbone
        x = swish(_bn(b.bn1, b.conv_stem(x)))
        for stage in b.blocks:
            for block in stage:
                x = _block(block, x)
        return swish(_bn(b.bn2, b.conv_head(x)))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(F.adaptive_avg_pool2d(self.feature_map(x), 1), 1)

    def cam_layers(self) -> dict[str, CamLayer]:
        """Grad-CAM at the 1792-channel head convolution: the last module :meth:`feature_map` calls as a
        module (its BatchNorms run as functions, so timm's default ``bn2`` would never see a hook)."""
        return {"backbone": CamLayer(self.backbone.conv_head, self.backbone.conv_head.out_channels)}


# ------------------------------------------------------------------------------------ key mapping
_STAGE_OF = [(s, i) for s, n in enumerate(STAGE_LENGTHS) for i in range(n)]
_BLOCK_PARTS_DS = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_se_reduce": "se.conv_reduce",
                   "_se_expand": "se.conv_expand", "_project_conv": "conv_pw", "_bn2": "bn2"}
_BLOCK_PARTS_IR = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
                   "_se_reduce": "se.conv_reduce", "_se_expand": "se.conv_expand",
                   "_project_conv": "conv_pwl", "_bn2": "bn3"}
_PREFIX = r"backbone\.efficientnet\."
_LEAF = r"(weight|bias|running_mean|running_var|num_batches_tracked)"


def _block_key(m: re.Match) -> str:
    idx, part, leaf = int(m.group(1)), m.group(2), m.group(3)
    if idx >= len(_STAGE_OF):
        return f"<no block {idx} in EfficientNet-B4>.{part}.{leaf}"   # lands as an unexpected key
    stage, j = _STAGE_OF[idx]
    parts = _BLOCK_PARTS_DS if stage == 0 else _BLOCK_PARTS_IR
    name = parts.get(part, f"<{part} not in a stage-{stage} block>")
    return f"backbone.blocks.{stage}.{j}.{name}.{leaf}"


DEEPFAKEBENCH_EFFICIENTNET_B4 = register_mapping(KeyMapping(
    format="deepfakebench", arch="efficientnetb4",
    rules=(
        rename(_PREFIX + r"_conv_stem\.weight", "backbone.conv_stem.weight", "stem"),
        rename(_PREFIX + r"_bn0\.(.+)", r"backbone.bn1.\1", "stem_bn"),
        rename(_PREFIX + r"_blocks\.(\d+)\.(_[a-z0-9_]+)\." + _LEAF, _block_key, "blocks"),
        rename(_PREFIX + r"_conv_head\.weight", "backbone.conv_head.weight", "conv_head"),
        rename(_PREFIX + r"_bn1\.(.+)", r"backbone.bn2.\1", "head_bn"),
        rename(r"backbone\.last_layer\.(weight|bias)", r"head.\1", "head"),
        drop(_PREFIX + r"_fc\..+", "imagenet_fc",
             "efficientnet_pytorch's ImageNet classifier: DeepfakeBench replaces it by Identity and "
             "classifies with last_layer, so it is never called"),
        drop(r"backbone\.adjust_channel\..+", "adjust_channel",
             "used only in DeepfakeBench's mode='adjust_channel', not by the efficientnetb4 detector"),
    ),
    head=(r"backbone\.last_layer\.weight",), head_hint="backbone.last_layer.weight [2, 1792]",
    aliases=("efficientnet_b4", "effnb4"),
    description="DeepfakeBench efficientnetb4 detector (efficientnet_pytorch B4, padding-0 stem, "
                "380-px static pads)",
    notes=DFB_NOTES + ("Padding as efficientnet_pytorch: static TF 'same' pads of the 380-px geometry, "
                       "stem padding 0 (DeepfakeBench's replaced stem).",)))


@register_model("efficientnetb4")
def efficientnetb4(**kwargs) -> EfficientNetB4Detector:
    """DeepfakeBench's EfficientNet-B4: 256-px faces, mean = std = 0.5, its padding geometry.

    ``size``: ``tiny`` is the full network (one upstream architecture, 17.5 M parameters);
    ``drop_path_rate`` 0.2 is efficientnet_pytorch's drop-connect rate for B4 (training only);
    ``pretrained`` / ``pretrained_path``: timm's ``tf_efficientnet_b4`` ImageNet weights (the same TF port).
    """
    return _create_baseline(EfficientNetB4Detector, TIMM_NAME, path_drop=0.2, **kwargs)
