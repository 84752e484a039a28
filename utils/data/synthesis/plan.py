"""Which items of a dataset get a synthetic twin, and which synthesiser makes each.

A plan is fixed when the dataset is built: ``ratio`` x (the split's real videos) copies of real
videos are chosen (a seeded permutation of their ids, so every process and every resume agrees), and
every item (frame or clip) of a chosen video gets a twin appended after the dataset's own items. A
twin reads its real item's pixels with the real item's own random draws (crop placement, clip start,
augmentation: the pair differs in the synthesised cue only) and draws the synthesiser's parameters from
a generator of its own, seeded by (seed, epoch, index) like every augmentation. Training draws the
kind per twin and epoch; evaluation gives each chosen video one kind, in turn, so a synthetic test
video is one kind's fake throughout.
"""
from __future__ import annotations

import logging
import zlib
from collections import defaultdict
from typing import Sequence

import numpy as np

from utils.core.config import SynthesisConfig
from utils.core.errors import ConfigError, UnknownNameError
from utils.core.model import InputSpec
from utils.data.records import VideoRecord
from utils.data.synthesis.base import SYNTHESISERS, Synthesiser, get_synthesiser

logger = logging.getLogger(__name__)

PREFIX = "synth:"  # the method of a synthetic fake: "synth:<kind>"


def synthesis_applies(cfg: SynthesisConfig, records: Sequence[VideoRecord]) -> bool:
    """Whether ``records`` (one split) get synthetic twins under ``cfg``."""
    splits = {r.split for r in records}
    return cfg.ratio > 0 and bool(splits) and splits <= set(cfg.splits)


def check_synthesis(cfg: SynthesisConfig, spec: InputSpec, classes: Sequence[str]) -> None:
    """Refuse a synthesis setting the model or the classes cannot take, naming the key (exit 2)."""
    if cfg.ratio <= 0:
        return
    if len(classes) != 2:
        raise ConfigError(f"data.synthesis makes real-vs-fake twins; it needs two classes, got {list(classes)}")
    for kind in cfg.kinds:
        try:
            synth = SYNTHESISERS.get(kind)
        except UnknownNameError as e:
            raise ConfigError(f"data.synthesis.kinds: {e}") from None
        if synth.clip_only and spec.clip_len < 2:
            raise ConfigError(f"data.synthesis.kinds: {kind!r} changes a clip over time; this model reads "
                              "single images (clip_len 1): use an image kind (blend, lighting, recompress, "
                              "resample)")
        if synth.needs_audio and not spec.audio:
            logger.warning("data.synthesis.kinds: %r changes only the audio and this model reads none: its "
                           "synthetic fakes are identical to their reals (a chance-level control)", kind)


def keep_for_synthesis(cfg: SynthesisConfig, records: list[VideoRecord]) -> list[VideoRecord]:
    """The records a synthesising split reads: with ``real_only`` its real videos alone."""
    if cfg.real_only and synthesis_applies(cfg, records):
        return [r for r in records if r.label == 0]
    return records


class SynthesisPlan:
    """The synthetic twins of one dataset (see the module doc).

    Args:
        cfg: the recipe's ``data.synthesis``.
        labels: the dataset's item labels (0 = real).
        video_ids: the dataset's item video ids.
        train: draw the kind per twin and epoch (else one kind per chosen video).
    """

    def __init__(self, cfg: SynthesisConfig, labels: Sequence[int], video_ids: Sequence[str], train: bool):
        self.synths: list[Synthesiser] = [get_synthesiser(k) for k in cfg.kinds]
        self.train = train
        items: dict[str, list[int]] = defaultdict(list)
        for i, (label, vid) in enumerate(zip(labels, video_ids)):
            if label == 0:
                items[vid].append(i)
        reals = sorted(items)
        order = np.random.default_rng(zlib.crc32("\n".join(reals).encode())).permutation(len(reals))
        n = int(round(cfg.ratio * len(reals)))
        base, copy = [], []
        for k in range(n):
            base += items[reals[order[k % len(reals)]]]
            copy += [k] * len(items[reals[order[k % len(reals)]]])
        self.base = np.asarray(base, np.int64)
        self.copy = np.asarray(copy, np.int64)
        self.n_real_videos = len(reals)

    def __len__(self) -> int:
        return len(self.base)

    def kind_of(self, k: int, rng: np.random.Generator) -> Synthesiser:
        """The synthesiser of twin ``k``: drawn from ``rng`` when training, else the copy's own."""
        if self.train:
            return self.synths[int(rng.integers(len(self.synths)))]
        return self.synths[int(self.copy[k]) % len(self.synths)]

    def video_id(self, k: int, real_id: str) -> str:
        """A twin's video id: its real's, marked (``#synth``, with the repeat number past ratio 1)."""
        repeat = int(self.copy[k]) // max(1, self.n_real_videos)
        return f"{real_id}#synth{repeat or ''}"

    def describe(self) -> str:
        kinds = ", ".join(s.kind for s in self.synths)
        return f"{len(self)} synthetic twins ({kinds}) of {self.n_real_videos} real videos"
