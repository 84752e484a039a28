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
import logging
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from utils.core.config import DataConfig
from utils.core.errors import ConfigError
from utils.core.model import InputSpec
from utils.data.faces import FaceDetector
from utils.data.frames import is_frame_source
from utils.data.records import VideoRecord

logger = logging.getLogger(__name__)


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
    still_images: ClassVar[bool] = False       # records are still images (or frames sampled apart)
    resized_frames: ClassVar[bool] = False     # frames come already cropped and resized (pre-processed sets)

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

    def face_detector(self, options, margin: float) -> FaceDetector | None:
        """The face detector the cache runs on this dataset's frames; None: the default (MTCNN).

        Datasets of images that are already face crops return
        :class:`~utils.data.frames.WholeFrame` (the whole image is the face) instead.
        """
        return None

    def check_input(self, spec: InputSpec, records: list[VideoRecord]) -> None:
        """Refuse a model this dataset cannot feed; warn about what a model loses on it.

        Clip models need consecutive frames, which still images (and frames sampled apart) do not
        have. ``native`` crops of frames that were resized before they reached us cut resampled
        pixels: the source's 8x8 compression grid and its resampling traces are gone.
        """
        if spec.clip_len > 1 and (self.still_images or all(is_frame_source(r.path) for r in records)):
            raise ConfigError(
                f"{self.name}: the dataset holds still images, not videos, so there are no clips of "
                f"{spec.clip_len} consecutive frames for this model (its input spec has clip_len="
                f"{spec.clip_len}); train or evaluate a single-frame model on it (clip_len 1)")
        if spec.crop == "native" and self.resized_frames:
            logger.warning("%s: its frames were cropped and resized before they were stored; a 'native' crop "
                           "cuts those resampled pixels, so the source's 8x8 compression grid and its own "
                           "resampling traces are lost to the model", self.name)

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
