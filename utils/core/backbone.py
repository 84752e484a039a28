"""timm backbones with pooled features, and checked loading of local backbone weights.

Shared by both model families (GenConViT and the specialists). Weights come either from timm's own
mechanism (``pretrained=True``, needs internet or the HF cache) or from a local file that is read
without unpickling code (safetensors, or ``torch.load(weights_only=True)``), passed through the timm
model module's own ``checkpoint_filter_fn`` (remaps original/older key names, e.g. Swin's) and loaded
with every missing or unexpected key reported as an error — never a silent partial load.
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import timm
import torch.nn as nn

from utils.core.fileio import read_state_dict

logger = logging.getLogger(__name__)

def load_backbone_weights(model: nn.Module, path: str | Path, prefix: str = "") -> None:
    """Load a local weights file into a headless timm ``model``; any key mismatch is an error.

    Args:
        model: a timm model built with ``num_classes=0``.
        path: weights file (timm, original-release or whole-detector layout).
        prefix: keep only keys under this prefix (e.g. ``"swin."`` of an exported GenConViT) and strip it.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(
            f"backbone weights file '{path}' does not exist; point model.pretrained_path (or the model's "
            f"*_path argument) at a .safetensors/.pth file, or leave it empty for random initialisation")
    state = read_state_dict(path)
    if prefix:
        state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if not state:
            raise KeyError(f"'{path}' has no keys under '{prefix}'; is it the right file?")
    filter_fn = getattr(sys.modules[type(model).__module__], "checkpoint_filter_fn", None)
    if filter_fn is not None:  # timm's per-architecture remapping of foreign/older checkpoints
        try:
            state = filter_fn(state, model)
        except (KeyError, RuntimeError, ValueError) as e:  # it assumes the file is for this architecture
            raise RuntimeError(f"'{path}' does not fit backbone {type(model).__name__} (missing keys or "
                               f"shapes: {e}); check the file matches the backbone name and size") from e
    classifier = model.pretrained_cfg.get("classifier") or ()
    classifier = (classifier,) if isinstance(classifier, str) else tuple(classifier)
    result = model.load_state_dict(state, strict=False)
    # the ImageNet classifier is expected to be left over: the model is headless (num_classes=0)
    unexpected = [k for k in result.unexpected_keys if not k.startswith(tuple(c + "." for c in classifier))]
    if result.missing_keys or unexpected:
        raise RuntimeError(
            f"'{path}' does not fit backbone {type(model).__name__}: missing keys {result.missing_keys[:8]}"
            f"{'…' if len(result.missing_keys) > 8 else ''}, unexpected keys {unexpected[:8]}"
            f"{'…' if len(unexpected) > 8 else ''}; check the file matches the backbone name and size")
    logger.info("loaded backbone weights from %s (%d tensors)", path, len(state))


def create_backbone(name: str, *, pretrained: bool = False, weights: str | Path | None = None,
                    prefix: str = "", **kwargs) -> nn.Module:
    """A timm model returning pooled features (``num_classes=0``).

    Args:
        name: timm architecture.
        pretrained: timm's own pretrained weights (internet or HF cache); ignored when ``weights`` is set.
        weights: local weights file, loaded with :func:`load_backbone_weights`.
        prefix: key prefix to select and strip inside ``weights``.
        **kwargs: timm architecture arguments (img_size, drop_path_rate, depths, …).
    """
    model = timm.create_model(name, pretrained=pretrained and not weights, num_classes=0, **kwargs)
    if weights:
        load_backbone_weights(model, weights, prefix)
    return model


def data_config(model: nn.Module) -> dict:
    """Normalisation and input size timm associates with ``model``."""
    return timm.data.resolve_model_data_config(model)
