"""Classes as configuration: ``data.classes`` names the labels, ``data.class_map`` sends sources to them.

Adapters label every record 0 (real) or 1 (fake) and name its ``method``: the FF++ method, the
Celeb-DF folder, an image folder and source (``fake/inpainting``), a DeepfakeBench label. With the
default ``classes: [real, fake]`` and no map nothing changes. Otherwise each record takes the class
that the first of these names gives: the whole method, then its last part (the source), then its
first (the folder) -- looked up in ``class_map``, else among the class names themselves; a record
none of them names keeps ``classes[label]``. So FF++ trains as real / identity swap / reenactment with
``class_map: {Deepfakes: swap, FaceSwap: swap, Face2Face: reenact, NeuralTextures: reenact}``, and an
image set as real / deepfake / generated with ``class_map: {aifake: generated}``.

Label 0 stays real everywhere: ``classes[0]`` is the real class, no real record may be mapped to
another class and no fake to it. The cache stores pixels, not labels, so one cache serves any mapping.
"""
from __future__ import annotations

import dataclasses
import logging

from utils.core.config import DataConfig
from utils.core.errors import ConfigError
from utils.data.records import VideoRecord

logger = logging.getLogger(__name__)

BINARY = ["real", "fake"]


def check_classes(data: DataConfig) -> list[str]:
    """The class names, checked: at least two, unique, and every ``class_map`` target among them."""
    classes = [str(c) for c in data.classes]
    if len(classes) < 2 or len(set(classes)) != len(classes):
        raise ConfigError(f"data.classes must name at least 2 distinct classes (0 = real first), "
                          f"got {classes}")
    bad = {k: v for k, v in data.class_map.items() if v not in classes}
    if bad:
        raise ConfigError(f"data.class_map sends {bad} to classes that are not in data.classes {classes}")
    return classes


def model_classes(data: DataConfig, num_classes: int = 2) -> int:
    """The number of classes a model is built with: one per ``data.classes``.

    ``model.num_classes`` may be left at its default (2) or agree; anything else is an error.
    """
    k = len(check_classes(data))
    if num_classes not in (2, k):
        raise ConfigError(f"model.num_classes={num_classes} but data.classes names {k} classes "
                          f"{list(data.classes)}: set data.classes (the model follows it)")
    return k


def _candidates(method: str) -> list[str]:
    parts = method.split("/")
    return list(dict.fromkeys([method, parts[-1], parts[0]]))


def class_of(record: VideoRecord, classes: list[str], class_map: dict) -> int:
    """The class index of one record (see the module doc)."""
    for name in _candidates(record.method):
        target = class_map.get(name, name if name in classes else None)
        if target is not None:
            k = classes.index(target)
            break
    else:
        k = record.label
    if (k == 0) != (record.label == 0):
        kind = "real" if record.label == 0 else "fake"
        raise ConfigError(f"'{record.method}' ({kind}) would become class '{classes[k]}': class 0 "
                          f"('{classes[0]}') is the real class: reals must stay in it and fakes out of it; "
                          "fix data.classes / data.class_map")
    return k


def apply_classes(records: list[VideoRecord], data: DataConfig) -> list[VideoRecord]:
    """``records`` with labels in ``data.classes`` (unchanged for the default binary setting)."""
    classes = check_classes(data)
    if classes == BINARY and not data.class_map:
        return records
    by_method: dict[str, int] = {}
    out = []
    for r in records:
        if r.method not in by_method:
            by_method[r.method] = class_of(r, classes, data.class_map)
        out.append(dataclasses.replace(r, label=by_method[r.method]) if by_method[r.method] != r.label else r)
    named = {m for m in by_method if any(n in data.class_map or n in classes for n in _candidates(m))}
    unnamed = sorted(set(by_method) - named)
    if unnamed and len(classes) > 2:
        logger.warning("no data.class_map entry names %s: their videos keep class 0 or 1 ('%s' / '%s')",
                       ", ".join(unnamed), classes[0], classes[1])
    return out
