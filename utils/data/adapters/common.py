"""Helpers shared by the dataset adapters: layout errors, folder listings, JSON with line numbers."""
from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any

from utils.core.errors import InputError

logger = logging.getLogger(__name__)

_SHOW = 5  # missing files named in a warning; the rest are counted
_WS = " \t\r\n"


class DatasetLayoutError(InputError):
    """A dataset root, folder or index file is missing or not laid out as the adapter expects."""


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
