"""Manifests: a CSV or JSONL file that lists the images (or frames, or videos) of any other layout.

One row per file: ``path,label[,source,group,split,video]``. Paths are relative to the manifest's
folder (absolute paths and Windows backslashes are accepted). ``label`` is ``real`` / ``0`` (or a name
in ``real_labels``) for real, anything else (``fake``, ``1``, a generator's name) for a fake;
``data.classes`` / ``data.class_map`` map labels and sources to more classes. Rows that share a
``video`` value are the frames of one video, in row order: one record, read as a frame list. The
group defaults to the ``video``, else the file stem with frame/augmentation suffixes removed; the
split is given on every row or on none (then carved by group, seeded). A listed file that does not
exist is not an indexing error: the cache lists it in ``failures.csv`` and the run goes on.

Errors name ``manifest:line``.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath

from utils.core.registry import register_dataset
from utils.data.adapters.base import DatasetAdapter
from utils.data.adapters.common import (
    DEFAULT_GROUP_SUFFIX, REAL_NAMES, DatasetLayoutError, absolute, binary_label, carve_splits, group_stem,
    layout_error, method_name,
)
from utils.data.frames import WholeFrame, frame_list_path
from utils.data.records import SPLITS, VideoRecord

NAMES = ("manifest.csv", "manifest.jsonl")
COLUMNS = ("path", "label", "source", "group", "split", "video")
LAYOUT = """\
<root>/manifest.csv  (or manifest.jsonl, or data.manifest: FILE)
    path,label[,source,group,split,video]     one row per image (or frame, or video file)
    real/wiki/w0001_frame0.jpg,real,wiki,w0001,train
  paths: relative to the manifest's folder (absolute and backslash paths accepted)
  label: real / 0 for real (real_labels name more), any other name / 1 for a fake
  split: train / val / test on every row, or on none (then carved by group)
  video: rows with the same value are the frames of one video, in row order
"""


@dataclass(frozen=True)
class ManifestOptions:
    manifest: str = ""              # CSV or JSONL file; empty = <root>/manifest.csv or manifest.jsonl
    real_labels: list[str] = field(default_factory=lambda: list(REAL_NAMES))  # labels meaning real
    face_crops: bool = False        # the images are face crops already: no face detection
    group_suffix: str = DEFAULT_GROUP_SUFFIX
    val_fraction: float = 0.15      # used when no row has a split
    test_fraction: float = 0.15


def manifest_file(root: Path, options: ManifestOptions) -> Path:
    path = absolute(options.manifest) if options.manifest else next(
        (root / n for n in NAMES if (root / n).is_file()), root / NAMES[0])
    if not path.is_file():
        raise layout_error(f"manifest not found: {path}", LAYOUT)
    return path


def read_rows(path: Path) -> list[tuple[int, dict]]:
    """``(line, row)`` pairs of a CSV (header line first) or JSONL manifest, values as stripped strings."""
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        rows = []
        for line, text in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as e:
                raise DatasetLayoutError(f"{path}:{line}: not valid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise DatasetLayoutError(f"{path}:{line}: expected an object with {COLUMNS[:2]}, "
                                         f"got {text[:60]}")
            rows.append((line, row))
    else:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            rows = [(reader.line_num, row) for row in reader]
    return [(line, {k: "" if row.get(k) is None else str(row[k]).strip() for k in COLUMNS})
            for line, row in rows]


def _resolve(base: Path, text: str) -> Path:
    rel = PureWindowsPath(text).as_posix() if "\\" in text else text
    path = Path(rel)
    return path if path.is_absolute() else base / path


def _check(path: Path, line: int, row: dict) -> None:
    missing = [k for k in COLUMNS[:2] if not row[k]]
    if missing:
        raise DatasetLayoutError(f"{path}:{line}: empty {'/'.join(missing)} (columns: {', '.join(COLUMNS)})\n"
                                 f"Expected layout:\n{LAYOUT.rstrip()}")
    if row["split"] and row["split"] not in SPLITS:
        raise DatasetLayoutError(f"{path}:{line}: split '{row['split']}' is not one of {SPLITS}")


def _videos(path: Path, rows: list[tuple[int, dict]]) -> dict[str, list[tuple[int, dict]]]:
    """Rows by record: a row alone, or every row of one ``video`` (which must agree on everything else)."""
    by_key: dict[str, list[tuple[int, dict]]] = {}
    for line, row in rows:
        _check(path, line, row)
        key = f"video:{row['video']}" if row["video"] else f"file:{row['path']}"
        first = by_key.setdefault(key, [])
        if first and not row["video"]:
            raise DatasetLayoutError(f"{path}:{line}: {row['path']} is listed twice "
                                     f"(first on line {first[0][0]})")
        if first and any(first[0][1][k] != row[k] for k in ("label", "source", "group", "split")):
            raise DatasetLayoutError(f"{path}:{line}: video '{row['video']}' has rows that disagree on "
                                     f"label, source, group or split (first on line {first[0][0]})")
        first.append((line, row))
    return by_key


@register_dataset("manifest")
class Manifest(DatasetAdapter):
    """Any layout, described by a CSV or JSONL list of files with their labels (see the module doc)."""

    root_env = "MANIFEST_ROOT"
    layout = LAYOUT
    Options = ManifestOptions

    def face_detector(self, options: ManifestOptions, margin: float):
        return WholeFrame(margin) if options.face_crops else None

    def index(self, root: Path, options: ManifestOptions, seed: int = 0) -> list[VideoRecord]:
        """One record per row (or per ``video``); splits as given, else carved by group with ``seed``."""
        path = manifest_file(absolute(root), options)
        rows = read_rows(path)
        if not rows:
            raise layout_error(f"{path} lists no files", LAYOUT)
        with_split = {bool(row["split"]) for _, row in rows}
        if len(with_split) > 1:
            line = next(line for line, row in rows if not row["split"])
            raise DatasetLayoutError(f"{path}:{line}: no split, but other rows have one: give a split on "
                                     "every row or on none (then splits are carved by group)")
        records = [self._record(path.parent, members, options) for members in _videos(path, rows).values()]
        if with_split == {False}:
            split_of = carve_splits([(r.group, r.label) for r in records], options.val_fraction,
                                    options.test_fraction, seed)
            records = [dataclasses.replace(r, split=split_of[r.group]) for r in records]
        return records

    def _record(self, base: Path, members: list[tuple[int, dict]], options: ManifestOptions) -> VideoRecord:
        row = members[0][1]
        files = [_resolve(base, r["path"]) for _, r in members]
        path = str(files[0]) if not row["video"] else frame_list_path(files)
        video_id = row["video"] or PureWindowsPath(row["path"]).as_posix()
        group = row["group"] or row["video"] or group_stem(os.path.basename(video_id), options.group_suffix)
        label = binary_label(row["label"], options.real_labels)
        return VideoRecord(video_id=video_id, path=path, label=label,
                           dataset=self.name, method=method_name(row["label"], row["source"]),
                           group=group, split=row["split"] or "train")
