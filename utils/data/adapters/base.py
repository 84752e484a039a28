"""The dataset adapter contract: one class owns everything about one dataset.

An adapter knows its on-disk layout (and says it in errors), the environment variable that points
at its root, its own options (declared as a dataclass and written flat in a recipe's ``data:``
section), which splits its official protocol fixes, how videos are grouped, how a stage's training
data is walked in partitions, and whether fakes may reuse their original's face boxes. Shared code
asks the adapter; it never compares a dataset name.

Add a dataset: write ``utils/data/adapters/<name>.py`` with a subclass of :class:`DatasetAdapter`
decorated with ``@register_dataset("<name>")``, and import it in ``utils/data/adapters/__init__.py``.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from utils.core.config import DataConfig
from utils.core.errors import ConfigError
from utils.data.records import VideoRecord


@dataclass(frozen=True)
class NoOptions:
    """An adapter without options of its own."""


class DatasetAdapter:
    """Base class of dataset adapters; subclasses set the class attributes and implement :meth:`index`."""

    name: ClassVar[str] = ""
    root_env: ClassVar[str] = ""               # environment variable holding the dataset root
    layout: ClassVar[str] = ""                 # the expected tree, shown in layout errors
    Options: ClassVar[type] = NoOptions        # the adapter's own ``data`` options
    fixed_splits: ClassVar[tuple[str, ...]] = ()   # splits an official protocol fixes (overlap reported)
    reuse_original_boxes: ClassVar[bool] = False   # fakes are pixel-aligned with their original
    still_images: ClassVar[bool] = False       # records are single images, not videos

    def options(self, data: DataConfig):
        """This adapter's typed options from ``data.options`` (keys of other adapters are ignored)."""
        fields = {f.name for f in dataclasses.fields(self.Options)}
        mine = {k: v for k, v in data.options.items() if k in fields}
        try:
            return self.Options(**mine)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{self.name} options: {e}") from None

    def index(self, root: Path, options, seed: int) -> list[VideoRecord]:  # pragma: no cover - abstract
        """Every usable video under ``root`` with its label, method, group and split."""
        raise NotImplementedError

    def phases(self, records: list[VideoRecord], options) -> list[tuple[str, list[VideoRecord]]]:
        """The training records walked in order when ``trainer.epochs_per_chunk`` is set: one phase per
        ``chunk`` value (in order of appearance), or a single phase when the dataset has no chunks."""
        chunks = list(dict.fromkeys(r.chunk for r in records))
        if chunks == [None]:
            return [("train", records)]
        return [(f"chunk {c}", [r for r in records if r.chunk == c]) for c in chunks]

    def option_summary(self, options) -> str:
        """Options that change which videos are indexed, for cache and fold keys."""
        return "|".join(f"{k}={v}" for k, v in sorted(dataclasses.asdict(options).items()))

    @classmethod
    def option_names(cls) -> list[str]:
        return list(typing.get_type_hints(cls.Options))
