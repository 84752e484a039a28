"""Synthetic twins inside the cache datasets: the glue between a dataset and its synthesis plan.

:class:`Twins` extends a dataset's items by the twins of its :class:`SynthesisPlan`, resolves an index
to (the real item it copies, the synthesiser, the synthesiser's generator), and turns a real item's
crops (and audio) into the fake's. Datasets call it between cutting the crops and the model's transform.
"""
from __future__ import annotations

import logging
from typing import Callable, Sequence

import numpy as np
import torch

from utils.core.config import SynthesisConfig
from utils.data.synthesis import SynthItem, Synthesiser, SynthesisPlan
from utils.data.synthesis.plan import PREFIX

logger = logging.getLogger(__name__)

SYNTH_STREAM = 0x5EED  # a fourth seed word: a twin's synthesis draws never repeat its crop's draws

Edit = Callable[[list[np.ndarray], np.ndarray], list[np.ndarray]]  # (crops, face box in crop px) -> crops


def box_in_crop(box: Sequence[float], window: Sequence[int], shape: tuple[int, ...]) -> np.ndarray:
    """A source-pixel face ``box`` in the pixels of a crop of ``window`` stored at ``shape`` (HxW...)."""
    x0, y0, x1, y1 = window
    sx, sy = shape[1] / max(1, x1 - x0), shape[0] / max(1, y1 - y0)
    b = np.asarray(box, np.float32)
    return np.array([(b[0] - x0) * sx, (b[1] - y0) * sy, (b[2] - x0) * sx, (b[3] - y0) * sy], np.float32)


class Twins:
    """The synthetic items of one dataset, appended after its ``n_base`` own items.

    Args:
        cfg: ``data.synthesis``; ``None`` or a ratio of 0 gives no twins.
        labels: the dataset's item labels (extended in place with 1 per twin).
        video_ids: the dataset's item video ids (extended in place).
        train: training draws (see :class:`SynthesisPlan`).
    """

    def __init__(self, cfg: SynthesisConfig | None, labels: list[int], video_ids: list[str], train: bool):
        self.n_base = len(labels)
        self.plan = SynthesisPlan(cfg, labels, video_ids, train) if cfg is not None and cfg.ratio > 0 else None
        if self.plan is not None:
            ids = [self.plan.video_id(k, video_ids[b]) for k, b in enumerate(self.plan.base)]
            labels += [1] * len(self.plan)
            video_ids += ids
            logger.info("%s data: %s", "training" if train else "evaluation", self.plan.describe())

    def __len__(self) -> int:
        return len(self.plan) if self.plan is not None else 0

    def resolve(self, index: int, seed_epoch: list[int]) -> tuple[int, Synthesiser | None,
                                                                  np.random.Generator | None]:
        """(the real item an index reads, and for a twin its synthesiser and generator)."""
        if index < self.n_base:
            return index, None, None
        k = index - self.n_base
        rng = np.random.default_rng([*seed_epoch, index, SYNTH_STREAM])
        return int(self.plan.base[k]), self.plan.kind_of(k, rng), rng

    def mark(self, sample: dict, index: int, synth: Synthesiser) -> dict:
        """Label, method and video id of twin ``index`` on the sample made from its real item."""
        sample.update(label=torch.tensor(1, dtype=torch.long), method=PREFIX + synth.kind,
                      video_id=self.plan.video_id(index - self.n_base, sample["video_id"]))
        return sample

    @staticmethod
    def editor(synth: Synthesiser, rng: np.random.Generator, sample: dict, other_audio=None) -> Edit:
        """The crop edit of one twin: builds the :class:`SynthItem`, runs ``synth``, and puts a changed
        audio window back into ``sample``."""
        def edit(crops: list[np.ndarray], box: np.ndarray) -> list[np.ndarray]:
            item = SynthItem(crops, box, None, sample.get("audio"), other_audio)
            fake = synth(item, rng)
            if fake.audio is not None and "audio" in sample:
                sample["audio"] = fake.audio
            return fake.frames
        return edit
