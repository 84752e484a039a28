"""Cue synthesis: fakes made on the fly from real samples, one cue at a time.

Importing this package registers the built-in synthesisers (``blend``, ``lighting``, ``recompress``,
``resample``, ``flicker``, ``av_offset``); :mod:`utils.data.synthesis.plan` decides which items of a
dataset become synthetic fakes. Adding a synthesiser is one module with a registered
:class:`Synthesiser` subclass and one import line here.
"""
from utils.data.synthesis import (  # noqa: F401  (each import registers a synthesiser)
    av_offset, blend, flicker, lighting, recompress, resample,
)
from utils.data.synthesis.base import (
    SYNTHESISERS, Synthesiser, SynthItem, get_synthesiser, list_synthesisers, register_synthesiser,
)
from utils.data.synthesis.plan import SynthesisPlan, check_synthesis, synthesis_applies

__all__ = ["SYNTHESISERS", "SynthItem", "Synthesiser", "SynthesisPlan", "check_synthesis", "get_synthesiser",
           "list_synthesisers", "register_synthesiser", "synthesis_applies"]
