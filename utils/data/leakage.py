"""Leakage guard: no group (identity, FF++ pair, DFDC original) may span two splits.

A detector that has seen a person in training and is scored on the same person in validation
learns the face, not the manipulation; its numbers look better than they are. Every index build
runs :func:`check_no_leakage` and stops when a group crosses a split boundary we control.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Collection, Iterable

from utils.core.errors import InputError
from utils.data.records import SPLITS, VideoRecord

logger = logging.getLogger(__name__)

_SHOW = 10  # offending groups named in a message; the rest are counted


class LeakageError(InputError):
    """A group has videos in two splits."""

    def __init__(self, message: str, groups: dict[str, dict[str, int]]):
        super().__init__(message)
        self.groups = groups  # group -> {split: number of videos}


def group_splits(records: Iterable[VideoRecord]) -> dict[str, dict[str, int]]:
    """``{group: {split: videos}}`` for every group."""
    table: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in records:
        table[r.group][r.split] += 1
    return {g: dict(s) for g, s in table.items()}


def _describe(groups: dict[str, dict[str, int]]) -> str:
    def order(split: str) -> int:
        return SPLITS.index(split) if split in SPLITS else len(SPLITS)

    lines = []
    for g in sorted(groups)[:_SHOW]:
        parts = ", ".join(f"{s}: {n}" for s, n in sorted(groups[g].items(), key=lambda kv: order(kv[0])))
        lines.append(f"  group '{g}' -> {parts}")
    if len(groups) > _SHOW:
        lines.append(f"  … and {len(groups) - _SHOW} more")
    return "\n".join(lines)


def check_no_leakage(records: Iterable[VideoRecord], fixed_splits: Collection[str] = ()) -> None:
    """Raise :class:`LeakageError` when a group has videos in more than one split.

    Args:
        records: the video index.
        fixed_splits: splits fixed by an official protocol that we cannot change (Celeb-DF's test
            list). A group shared between such a split and another one is reported as a warning
            with counts instead of an error; groups shared between the splits we control still fail.
    """
    table = group_splits(records)
    leaks, reported = {}, {}
    for group, splits in table.items():
        if len(splits) < 2:
            continue
        controlled = [s for s in splits if s not in fixed_splits]
        (leaks if len(controlled) > 1 else reported)[group] = splits
    if leaks:
        raise LeakageError(
            f"{len(leaks)} group(s) have videos in more than one split (identity leakage):\n"
            f"{_describe(leaks)}\n"
            "Each group (FF++ id pair, Celeb-DF identities, DFDC original) must sit in one split: "
            "fix the split files or chunk lists so that no group crosses them.",
            leaks,
        )
    if reported:
        videos = sum(n for s in reported.values() for split, n in s.items() if split in fixed_splits)
        logger.warning(
            "%d group(s) (%d videos of the fixed split(s) %s) share identities with other splits; "
            "the official protocol defines it this way, so it is reported, not fixed:\n%s",
            len(reported), videos, "/".join(sorted(fixed_splits)), _describe(reported),
        )
