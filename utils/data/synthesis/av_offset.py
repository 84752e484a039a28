"""``av_offset``: the real clip's exact pixels with audio that does not belong to them.

Lip-sync and audio-only manipulations break the agreement between the mouth and the speech. The
fake keeps every pixel of its real clip and takes its audio from elsewhere: from the same video at
least 0.3 s away (the same voice, out of sync) when the cache holds audio there, else from another
real video of the same split (a real voice, not this mouth). Only a model that compares the two
streams can tell the fake from its real; a model without audio sees identical pixels (its fakes are
their reals: the probes use that as a control that must score at chance).
"""
from __future__ import annotations

import numpy as np

from utils.data.synthesis.base import Synthesiser, SynthItem, register_synthesiser


@register_synthesiser
class AVOffset(Synthesiser):
    kind = "av_offset"
    needs_audio = True

    def make(self, item: SynthItem, rng: np.random.Generator) -> SynthItem:
        unchanged = np.zeros(item.frames[0].shape[:2], np.float32)
        if item.audio is None:   # a model without audio: the fake is its real, pixel for pixel
            return SynthItem(list(item.frames), item.box, item.landmarks, None, item.other_audio, unchanged)
        if item.other_audio is None:
            raise ValueError("the av_offset synthesiser needs the dataset's other audio windows")
        audio = item.other_audio("shift", rng) if rng.random() < 0.5 else None
        if audio is None:
            audio = item.other_audio("swap", rng)
        return SynthItem(list(item.frames), item.box, item.landmarks, audio, item.other_audio, unchanged)
