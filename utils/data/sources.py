"""Sources a run trains on and evaluates on: ``data.train_sources`` and ``data.eval_sources``.

A source is a record's ``method`` (an FF++ method or ``original``, a Celeb-DF folder, an image set's
generator). ``train_sources`` keeps only the listed sources in the training and validation splits (so
neither the weights nor their selection ever see the others); ``eval_sources`` does the same for every
other split (test, a fixed test set). An empty list keeps every source. A list that names no source of
one class keeps every source of that class: listing fake methods keeps the real videos, so
``train_sources: [Deepfakes, FaceSwap]`` trains on those two methods against all reals.
"""
from __future__ import annotations

import logging

from utils.core.errors import ConfigError
from utils.data.records import VideoRecord

logger = logging.getLogger(__name__)

TRAIN_SIDE = ("train", "val")


def source_labels(records: list[VideoRecord]) -> dict[str, set[int]]:
    """``{source: the labels its videos carry}``."""
    out: dict[str, set[int]] = {}
    for r in records:
        out.setdefault(r.method, set()).add(r.label)
    return out


def _keeper(records: list[VideoRecord], names: list[str], key: str):
    """A predicate on records for one source list (see module doc)."""
    if not names:
        return lambda r: True
    known = source_labels(records)
    if unknown := sorted(set(names) - set(known)):
        raise ConfigError(f"data.{key}: unknown source(s) {unknown}; the sources here are "
                          f"{', '.join(sorted(known))}")
    listed_labels = {lab for n in names for lab in known[n]}
    chosen = set(names)
    return lambda r: r.method in chosen or r.label not in listed_labels


def select_sources(records: list[VideoRecord], train_sources: list[str], eval_sources: list[str]
                   ) -> list[VideoRecord]:
    """``records`` without the sources ``train_sources`` / ``eval_sources`` leave out (see module doc)."""
    if not train_sources and not eval_sources:
        return records
    train_ok, eval_ok = (_keeper(records, train_sources, "train_sources"),
                         _keeper(records, eval_sources, "eval_sources"))
    kept = [r for r in records if (train_ok if r.split in TRAIN_SIDE else eval_ok)(r)]
    dropped = sorted({r.method for r in records if r.split in TRAIN_SIDE} -
                     {r.method for r in kept if r.split in TRAIN_SIDE})
    if dropped:
        logger.info("sources left out of training and validation: %s", ", ".join(dropped))
    if {r.label for r in kept if r.split == "train"} != {r.label for r in records if r.split == "train"}:
        raise ConfigError(f"data.train_sources {train_sources} leaves a class out of the training split")
    return kept


def hold_out(records: list[VideoRecord], source: str) -> list[str]:
    """The ``train_sources`` list that trains on every source but ``source``."""
    known = source_labels(records)
    if source not in known:
        raise ConfigError(f"--hold-out-source {source}: not a source here; the sources are "
                          f"{', '.join(sorted(known))}")
    rest = sorted(s for s in known if s != source and known[s] & known[source])
    if not rest:
        raise ConfigError(f"--hold-out-source {source}: it is the only source of its class; "
                          "nothing would be left to train on")
    return rest
