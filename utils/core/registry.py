"""Name registries in the style of timm: ``@register_model`` on a builder, ``create_model(name)``.

Two registries share one class: model builders and dataset adapters. Each fills itself when the
packages that hold its entries are imported; which packages those are is listed as entry points in
``setup.cfg`` (``deepfake_toolkit.models``, ``deepfake_toolkit.datasets``), so this module — and all
shared code — names no model and no dataset. Entry points are imported on first lookup, not at import
time of this module.
"""
from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Callable, Generic, TypeVar

from utils.core.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """Entries by name, filled by ``register(name)`` decorators in the packages of an entry-point group.

    Args:
        kind: what the entries are, for messages ("model", "dataset").
        group: the entry-point group whose packages register entries on import.
    """

    def __init__(self, kind: str, group: str):
        self.kind, self.group = kind, group
        self._entries: dict[str, T] = {}
        self._loaded = False

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering its target under ``name``; a second, different entry is an error."""
        def wrap(obj: T) -> T:
            if name in self._entries and self._entries[name] is not obj:
                raise ValueError(f"{self.kind} '{name}' is already registered by "
                                 f"{getattr(self._entries[name], '__module__', '?')}")
            self._entries[name] = obj
            return obj
        return wrap

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            for ep in entry_points(group=self.group):
                importlib.import_module(ep.value)

    def names(self) -> list[str]:
        """Sorted names of every entry."""
        self._load()
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self.names()

    def get(self, name: str) -> T:
        """The entry ``name``; an unknown name is a :class:`KeyError` that lists the valid ones."""
        self._load()
        if name not in self._entries:
            valid = ", ".join(sorted(self._entries)) or "(none)"
            raise UnknownNameError(f"unknown {self.kind} '{name}'; registered {self.kind}s: {valid}")
        return self._entries[name]

    def unregister(self, name: str) -> None:
        """Remove an entry (tests that register throw-away entries clean up with it)."""
        self._entries.pop(name, None)

    def items(self) -> list[tuple[str, T]]:
        self._load()
        return sorted(self._entries.items())


MODELS: Registry[Callable] = Registry("model", "deepfake_toolkit.models")
DATASETS: Registry = Registry("dataset", "deepfake_toolkit.datasets")

register_model = MODELS.register


def register_dataset(name: str):
    """Class decorator registering a dataset adapter class under ``name`` (its ``name`` attribute too)."""
    def wrap(cls):
        cls.name = name
        return DATASETS.register(name)(cls)
    return wrap


def list_models() -> list[str]:
    """Sorted names of every registered model."""
    return MODELS.names()


def is_model(name: str) -> bool:
    return name in MODELS


def create_model(name: str, **kwargs):
    """Build model ``name``; keyword arguments left as ``None`` fall back to the builder's defaults."""
    return MODELS.get(name)(**{k: v for k, v in kwargs.items() if v is not None})


def list_datasets() -> list[str]:
    """Sorted names of every registered dataset adapter."""
    return DATASETS.names()


def get_dataset(name: str):
    """An instance of the adapter registered as ``name`` (see :mod:`utils.data.adapters.base`)."""
    return DATASETS.get(name)()
