"""Model registry in the style of timm: ``@register_model`` on a builder, ``create_model(name)``.

Model families live in their own packages and register on import. The families to import are listed
as ``deepfake_toolkit.models`` entry points (setup.cfg), so this module never names a model.
"""
from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Callable

import torch.nn as nn

_MODELS: dict[str, Callable[..., nn.Module]] = {}
_FAMILIES_LOADED = False
ENTRY_POINT_GROUP = "deepfake_toolkit.models"


def register_model(name: str) -> Callable:
    """Decorator registering ``fn`` as the builder of model ``name``; a duplicate name is an error."""
    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _MODELS and _MODELS[name] is not fn:
            raise ValueError(f"model '{name}' is already registered by {_MODELS[name].__module__}")
        _MODELS[name] = fn
        return fn
    return wrap


def _load_families() -> None:
    """Import every model family named by an entry point (once)."""
    global _FAMILIES_LOADED
    if _FAMILIES_LOADED:
        return
    _FAMILIES_LOADED = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        importlib.import_module(ep.value)


def list_models() -> list[str]:
    """Sorted names of every registered model."""
    _load_families()
    return sorted(_MODELS)


def is_model(name: str) -> bool:
    return name in list_models()


def create_model(name: str, **kwargs) -> nn.Module:
    """Build model ``name``; keyword arguments left as ``None`` fall back to the builder's defaults."""
    _load_families()
    if name not in _MODELS:
        raise KeyError(f"unknown model '{name}'; registered models: {', '.join(sorted(_MODELS)) or '(none)'}")
    return _MODELS[name](**{k: v for k, v in kwargs.items() if v is not None})
