"""What a cue synthesiser is: a real sample in, a fake that differs from it in one cue out.

A synthesiser reads one item of a dataset after the face-crop cache and before the model's transform
(:class:`SynthItem`: the crops of one image or one clip, the face box in crop pixels, optionally five
landmarks, and the audio window of a clip model), draws its parameters from the generator it is given
(seeded per item, like the augmentations, so runs stay bitwise reproducible) and returns the changed
item. Image synthesisers change pixels inside the face mask they draw and nothing outside it; the
audio synthesiser changes the audio and no pixel.

Registering one is a decorator on a class (:func:`register_synthesiser`), like a dataset adapter; see
``docs/SYNTHESIS.md`` for a worked example.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, ClassVar, Optional

import numpy as np
import torch

from utils.core.registry import Registry

SYNTHESISERS: Registry = Registry("synthesiser", "deepfake_toolkit.synthesisers")

# Where the five detector landmarks (eyes, nose tip, mouth corners; image left before image right) sit in
# a face box, as fractions of its width and height: the usual placement of MTCNN's points in its own box.
LANDMARK_TEMPLATE = np.array([[0.31, 0.40], [0.69, 0.40], [0.50, 0.57], [0.35, 0.76], [0.65, 0.76]],
                             np.float32)
# The face outline in the same frame: forehead, temples, cheeks, jaw, chin.
OUTLINE_TEMPLATE = np.array([[0.50, 0.06], [0.20, 0.14], [0.80, 0.14], [0.08, 0.38], [0.92, 0.38],
                             [0.10, 0.64], [0.90, 0.64], [0.24, 0.88], [0.76, 0.88], [0.50, 1.00]], np.float32)

AudioSource = Callable[[str, np.random.Generator], Optional[torch.Tensor]]


@dataclass
class SynthItem:
    """One sample as a synthesiser sees it.

    Attributes:
        frames: HxWx3 uint8 crops, one for an image model, T (consecutive) for a clip model.
        box: the face box x1, y1, x2, y2 in crop pixels (the same for every frame of a clip).
        landmarks: five points (5x2, crop pixels) when the detector's landmarks are known; else the
            template placed in ``box`` stands in for them.
        audio: the log-mel window of a clip with audio, else None.
        other_audio: ``other_audio(how, rng)`` gives another real log-mel window of the same length:
            ``"shift"`` from the same video at least 0.3 s away (None when the cache holds none),
            ``"swap"`` from another real video of the same split.
        mask: after an image synthesiser, where it changed pixels (HxW float in [0, 1]; every pixel where
            it is 0 keeps its real value), for checks and figures.
    """

    frames: list[np.ndarray]
    box: np.ndarray
    landmarks: np.ndarray | None = None
    audio: torch.Tensor | None = None
    other_audio: AudioSource | None = field(default=None, repr=False)
    mask: np.ndarray | None = field(default=None, repr=False)

    def points(self) -> np.ndarray:
        """The five landmarks in crop pixels (the box template where the detector's are not known)."""
        if self.landmarks is not None:
            return np.asarray(self.landmarks, np.float32)
        return place(LANDMARK_TEMPLATE, self.box)

    def with_frames(self, frames: list[np.ndarray], mask: np.ndarray) -> "SynthItem":
        """This item with changed frames and the mask they were changed through."""
        return replace(self, frames=frames, mask=mask)


def place(template: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Box-relative points -> crop pixels."""
    x1, y1, x2, y2 = (float(v) for v in box)
    return np.stack([x1 + template[:, 0] * (x2 - x1), y1 + template[:, 1] * (y2 - y1)], axis=1)


class Synthesiser:
    """Base class: ``kind`` names it (samples made by it carry ``method = "synth:<kind>"``).

    Subclasses implement :meth:`make`. ``clip_only`` synthesisers need a clip of at least two frames;
    ``needs_audio`` ones change the audio window only, so for a model that reads no audio their fakes
    are identical to their reals (a chance-level control, never a training signal).
    """

    kind: ClassVar[str] = ""
    clip_only: ClassVar[bool] = False
    needs_audio: ClassVar[bool] = False

    def make(self, item: SynthItem, rng: np.random.Generator) -> SynthItem:
        """The fake made from ``item`` with parameters drawn from ``rng``."""
        raise NotImplementedError

    def __call__(self, item: SynthItem, rng: np.random.Generator) -> SynthItem:
        if self.clip_only and len(item.frames) < 2:
            raise ValueError(f"the {self.kind!r} synthesiser changes a clip over time: it needs a clip "
                             f"model (clip_len >= 2), got single images")
        return self.make(item, rng)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(kind={self.kind!r})"


def register_synthesiser(cls: type[Synthesiser]) -> type[Synthesiser]:
    """Class decorator: register a :class:`Synthesiser` subclass under its ``kind``."""
    if not cls.kind:
        raise ValueError(f"{cls.__name__} has no kind")
    SYNTHESISERS.register(cls.kind)(cls)
    return cls


def get_synthesiser(kind: str) -> Synthesiser:
    """A new synthesiser of a registered ``kind`` (the error lists the registered ones)."""
    return SYNTHESISERS.get(kind)()


def list_synthesisers() -> list[str]:
    return SYNTHESISERS.names()
