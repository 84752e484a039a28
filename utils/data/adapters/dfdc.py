"""DFDC adapter: chunks ``dfdc_train_part_N`` with a ``metadata.json`` each, split by chunk lists.

A fake and its original sit in the same chunk, so splitting by chunk keeps every ``original`` group
in one split. Video ids are the file stems: DFDC names are unique across the 50 chunks (the index
build checks it). Videos named in a metadata file but absent on disk are skipped with a count
(partial unpacking is common with 10 GB archives).
"""
from __future__ import annotations

import logging
import re
from pathlib import Path

from dataclasses import dataclass, field

from utils.core.registry import register_dataset
from utils.data.adapters.base import DatasetAdapter
from utils.core.errors import ConfigError
from utils.data.adapters.common import (
    DatasetLayoutError, absolute, json_entries, layout_error, mp4_names, require_dir, warn_missing,
)
from utils.data.records import VideoRecord

logger = logging.getLogger(__name__)

_CHUNK = re.compile(r"dfdc_train_part_(\d+)")
METADATA = "metadata.json"

LAYOUT = f"""\
<root>/
  dfdc_train_part_0/
    {METADATA}    {{"aaqaifqrwn.mp4": {{"label": "REAL", "split": "train"}},
                     "awnfpubqmo.mp4": {{"label": "FAKE", "split": "train",
                                         "original": "aaqaifqrwn.mp4"}}, …}}
    aaqaifqrwn.mp4  awnfpubqmo.mp4 …
  dfdc_train_part_1/ …
  (a chunk may unpack one level deeper, e.g. dfdc_train_part_00/dfdc_train_part_0/{METADATA}: both work)
"""


def _chunk_folder(outer: Path, number: int) -> Path | None:
    """The folder holding ``metadata.json``: the chunk folder itself or one nested chunk folder in it."""
    if (outer / METADATA).is_file():
        return outer
    inner = [d for d in outer.iterdir()
             if d.is_dir() and _CHUNK.fullmatch(d.name) and (d / METADATA).is_file()]
    if len(inner) != 1:
        return None
    if int(_CHUNK.fullmatch(inner[0].name).group(1)) != number:
        raise layout_error(f"DFDC chunk folder {outer} holds {inner[0].name}: the chunk numbers disagree",
                           LAYOUT)
    return inner[0]


def find_chunks(root: Path) -> tuple[dict[int, Path], dict[int, Path]]:
    """``({number: folder with metadata.json}, {number: chunk folder without one})`` under ``root``."""
    found: dict[int, Path] = {}
    broken: dict[int, Path] = {}
    for outer in sorted(root.iterdir()):
        m = _CHUNK.fullmatch(outer.name)
        if not (m and outer.is_dir()):
            continue
        number = int(m.group(1))  # dfdc_train_part_05 and dfdc_train_part_5 are both chunk 5
        if number in found or number in broken:
            raise layout_error(f"DFDC chunk {number} appears twice under {root}: "
                               f"{(found.get(number) or broken[number]).name} and {outer.name}", LAYOUT)
        folder = _chunk_folder(outer, number)
        if folder is None:
            broken[number] = outer
        else:
            found[number] = folder
    return found, broken


@dataclass(frozen=True)
class DFDCOptions:
    train_chunks: list[int] = field(default_factory=list)   # chunk numbers; empty lists: a default split
    val_chunks: list[int] = field(default_factory=list)
    test_chunks: list[int] = field(default_factory=list)


def chunk_splits(options: DFDCOptions, found: list[int]) -> dict[int, str]:
    """``{chunk: split}`` from the option lists; with none, ~70/10/20 % of the chunks found, in order."""
    lists = {"train": options.train_chunks, "val": options.val_chunks, "test": options.test_chunks}
    if not any(lists.values()):
        if len(found) < 3:
            raise ConfigError(f"dfdc: set data.train_chunks / val_chunks / test_chunks (chunks found: "
                             f"{found}); with fewer than 3 chunks no default split is possible")
        n_test, n_val = max(1, round(0.2 * len(found))), max(1, round(0.1 * len(found)))
        n_train = len(found) - n_test - n_val
        cut = n_train + n_val
        lists = {"train": found[:n_train], "val": found[n_train:cut], "test": found[cut:]}
        logger.warning("dfdc: no chunk lists in the data config; using train %s, val %s, test %s",
                       lists["train"], lists["val"], lists["test"])
    split_of: dict[int, str] = {}
    for split, chunks in lists.items():
        for c in chunks:
            if c in split_of:
                raise ConfigError(f"dfdc: chunk {c} is in both data.{split_of[c]}_chunks and "
                                 f"data.{split}_chunks")
            split_of[c] = split
    return split_of


def read_metadata(path: Path) -> tuple:
    """``json_entries`` of a chunk's ``metadata.json``; a file that is not JSON text (binary, another
    encoding) or cannot be read is named in a :class:`DatasetLayoutError` like invalid JSON is."""
    try:
        return json_entries(path)
    except UnicodeDecodeError as e:
        raise DatasetLayoutError(f"{path}: not valid JSON (not UTF-8 text: byte 0x{e.object[e.start]:02x} at "
                                 f"offset {e.start}); DFDC's metadata.json is a JSON object keyed by video "
                                 "file name") from None
    except OSError as e:
        raise DatasetLayoutError(f"{path}: cannot be read ({e.strerror or e})") from None


def read_chunk(folder: Path, chunk: int, split: str) -> list[VideoRecord]:
    """Records of one chunk from its ``metadata.json``; bad entries name ``file:line``."""
    path = folder / METADATA
    data, entries = read_metadata(path)
    if not isinstance(data, dict):
        raise DatasetLayoutError(f"{path}:1: expected a JSON object keyed by video file name")
    names, records, missing, seen = mp4_names(folder), [], [], set()
    for line, name, meta in entries:
        where = f"{path}:{line}"
        if not (isinstance(name, str) and name.endswith(".mp4")) or name in seen:
            raise DatasetLayoutError(f"{where}: key {name!r} is not a .mp4 file name or is listed twice")
        seen.add(name)
        label = meta.get("label") if isinstance(meta, dict) else None
        if label not in ("REAL", "FAKE"):
            raise DatasetLayoutError(f"{where}: {name}: expected \"label\": \"REAL\" or \"FAKE\", got {meta!r}")
        original = meta.get("original")
        if label == "FAKE" and not (isinstance(original, str) and original.endswith(".mp4")):
            raise DatasetLayoutError(f"{where}: {name}: a FAKE entry needs \"original\": \"<file>.mp4\", "
                             f"got {meta!r}")
        if name not in names:
            missing.append(name)
            continue
        stem = name[:-4]
        origin = original[:-4] if label == "FAKE" else None
        records.append(VideoRecord(
            video_id=stem, path=str(folder / name), label=int(label == "FAKE"), dataset="dfdc",
            method=label.lower(), group=origin or stem, split=split, chunk=chunk, original=origin))
    warn_missing("dfdc", folder, missing, len(entries), METADATA)
    return records


@register_dataset("dfdc")
class DFDC(DatasetAdapter):
    """DFDC full training set (Dolhansky et al., 2020): 50 chunks, split by chunk lists.

    Fakes are pixel-aligned with their original, so the face cache reuses the original's boxes;
    training walks the training chunks in the order listed (``trainer.epochs_per_chunk``).
    """

    root_env = "DFDC_ROOT"
    layout = LAYOUT
    Options = DFDCOptions
    reuse_original_boxes = True

    def index(self, root: Path, options: DFDCOptions, seed: int = 0) -> list[VideoRecord]:
        """Records of the chunks named in the three chunk lists; group = ``original``; ``seed`` unused."""
        root = require_dir(absolute(root), LAYOUT, "DFDC root")
        found, broken = find_chunks(root)
        if not found and not broken:
            raise layout_error(f"no dfdc_train_part_N folders under {root}", LAYOUT)
        split_of = chunk_splits(options, sorted(found))
        absent = sorted(c for c in split_of if c not in found)
        if absent:
            detail = "".join(f"; chunk {c}: {broken[c]} has no {METADATA}" for c in absent if c in broken)
            raise layout_error(f"DFDC chunk(s) {absent} asked for but not found under {root} "
                               f"(chunks found: {sorted(found) or 'none'}){detail}", LAYOUT)
        records = []
        for chunk in sorted(split_of):
            records += read_chunk(found[chunk], chunk, split_of[chunk])
        return records

    def phases(self, records: list[VideoRecord], options: DFDCOptions) -> list[tuple[str, list[VideoRecord]]]:
        """One phase per training chunk, in the order ``train_chunks`` lists them."""
        order = options.train_chunks or sorted({r.chunk for r in records})
        return [(f"chunk {c}", [r for r in records if r.chunk == c]) for c in order]
