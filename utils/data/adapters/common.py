"""Helpers shared by the dataset adapters: layout errors, folder listings, JSON with line numbers."""
from __future__ import annotations

import json
import logging
import os
import random
import re
from collections import Counter, defaultdict
from pathlib import Path, PureWindowsPath
from typing import Any, Sequence

from utils.core.errors import ConfigError, InputError

logger = logging.getLogger(__name__)

_SHOW = 5  # missing files named in a warning; the rest are counted
_WS = " \t\r\n"
# frame and augmentation suffixes stripped from a file stem to form its group: p0042_frame3, x_aug2, y (1)
DEFAULT_GROUP_SUFFIX = r"(?:[_-](?:frame|f|aug|crop|flip|rot|copy)\d*|\s*\(\d+\))+$"
REAL_NAMES = ("real",)   # label / folder names that mean "real" (case-insensitive) unless configured


class DatasetLayoutError(InputError):
    """A dataset root, folder or index file is missing or not laid out as the adapter expects.

    Exit status 2, like a usage error: the root or the options point at the wrong place, and nothing
    was run (the message shows the expected tree).
    """

    exit_code = 2


def layout_error(problem: str, layout: str) -> DatasetLayoutError:
    """An error that says what is wrong and shows the expected tree."""
    return DatasetLayoutError(f"{problem}\nExpected layout:\n{layout.rstrip()}")


def require_dir(path: Path, layout: str, what: str = "folder") -> Path:
    """Return ``path`` if it is a directory, else raise a layout error naming it."""
    if not path.is_dir():
        raise layout_error(f"{what} not found: {path}", layout)
    return path


def absolute(path: str | os.PathLike) -> Path:
    """Absolute, normalised path (symlinks kept: users often link datasets in)."""
    return Path(os.path.abspath(os.path.expanduser(os.fspath(path))))


def mp4_names(folder: Path) -> set[str]:
    """File names of the ``.mp4`` files in ``folder`` (one listing instead of a stat per video)."""
    return {n for n in os.listdir(folder) if n.endswith(".mp4")}


def natural_key(text: str) -> tuple:
    """Sort key that orders ``id2`` before ``id10``."""
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text))


def warn_missing(dataset: str, folder: Path, missing: list[str], listed: int, source: str) -> None:
    """One warning per folder for videos a list names but the disk lacks (they are skipped)."""
    if not missing:
        return
    names = ", ".join(sorted(missing)[:_SHOW]) + (", …" if len(missing) > _SHOW else "")
    logger.warning(
        "%s: %d of %d videos listed in %s are missing in %s and were skipped (%s)",
        dataset, len(missing), listed, source, folder, names,
    )


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _WS:
        pos += 1
    return pos


def json_entries(path: Path) -> tuple[Any, list[tuple[int, Any, Any]]]:
    """Parse a JSON file; for a top-level list or object also return its entries with line numbers.

    Returns ``(data, [(line, key_or_index, value), …])``. Entries come from the text itself, so a
    key written twice shows up twice (``json.loads`` would silently keep the last one). The line
    numbers let errors point at the offending entry.
    """
    text = path.read_text(encoding="utf-8-sig")  # tolerate a byte-order mark
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise DatasetLayoutError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
    if not isinstance(data, (list, dict)):
        return data, []
    decoder, entries = json.JSONDecoder(), []
    pos = _skip_ws(text, 0) + 1
    line, counted = 1, 0
    index = 0
    while True:
        pos = _skip_ws(text, pos)
        if text[pos] in "]}":
            return data, entries
        line += text.count("\n", counted, pos)
        counted = pos
        if isinstance(data, dict):
            key, pos = decoder.raw_decode(text, pos)
            pos = _skip_ws(text, pos) + 1  # the colon
            value, pos = decoder.raw_decode(text, _skip_ws(text, pos))
        else:
            key, (value, pos) = index, decoder.raw_decode(text, pos)
        entries.append((line, key, value))
        index += 1
        pos = _skip_ws(text, pos)
        if text[pos] == ",":
            pos += 1


# ---- image datasets (imagefolder, manifest) ----------------------------------------------------------

def group_stem(name: str, suffix: str = DEFAULT_GROUP_SUFFIX) -> str:
    """The group of an image: its file stem with frame/augmentation suffixes (regex ``suffix``) removed.

    ``p0042_frame3.jpg`` and ``p0042_frame7.png`` are one group; a name that would strip to nothing
    keeps its stem. Backslash paths are read as Windows paths.
    """
    stem = PureWindowsPath(name).stem if "\\" in name else Path(name).stem
    try:
        grouped = re.sub(suffix, "", stem, flags=re.IGNORECASE) if suffix else stem
    except re.error as e:
        raise DatasetLayoutError(f"data.group_suffix {suffix!r} is not a valid regular expression ({e})") \
            from None
    return grouped or stem


def binary_label(name: str, real_names: Sequence[str] = REAL_NAMES) -> int:
    """0 for a real label / folder name (or ``0``), 1 for any other (a manipulation or a generator)."""
    text = str(name).strip().lower()
    return 0 if text == "0" or text in {n.lower() for n in real_names} else 1


def method_name(label_name: str, source: str = "") -> str:
    """The record's ``method``: ``<label>/<source>`` (``fake/inpainting``), or the label alone."""
    return f"{label_name}/{source}" if source else label_name


def carve_splits(items: Sequence[tuple[str, int]], val: float, test: float, seed: int) -> dict[str, str]:
    """Seeded, group-wise split: ``{group: split}`` for ``(group, label)`` items.

    Whole groups are drawn in a seeded order into ``test``, then ``val``, while every label the group
    holds still falls short of its share there (``test`` / ``val`` of that label's items); the rest
    is ``train``. No group is ever split, and each split gets about its share of every label.
    """
    if val < 0 or test < 0 or val + test >= 1:
        raise ConfigError(f"data.val_fraction ({val}) and data.test_fraction ({test}) must be >= 0 "
                          "with a sum below 1")
    per_group: dict[str, Counter] = defaultdict(Counter)
    for group, label in items:
        per_group[group][label] += 1
    totals = Counter(label for _, label in items)
    need = {s: {lab: share * n for lab, n in totals.items()} for s, share in (("test", test), ("val", val))}
    order = sorted(per_group, key=natural_key)
    random.Random(seed).shuffle(order)
    out = {}
    for group in order:
        counts = per_group[group]
        fits = [s for s in ("test", "val") if all(need[s][lab] >= n / 2 for lab, n in counts.items())]
        out[group] = fits[0] if fits else "train"
        for lab, n in counts.items():
            if out[group] != "train":
                need[out[group]][lab] -= n
    return out
