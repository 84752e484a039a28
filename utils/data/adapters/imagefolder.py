"""Image folders: one folder per class, optionally under split folders, optionally one level of sources.

Each image is a record (a video of one frame, read by :mod:`utils.data.frames`), so every model, crop
policy, sampler, evaluation and report works on it. Labels: a class folder named in ``real_labels``
is real (0), any other is a fake (1); ``data.classes`` / ``data.class_map`` turn folder and source
names into more classes (``aifake -> generated``). The record's ``method`` is ``<class>/<source>``,
or the class folder alone, so reports break results down per source.

Groups. What must never be split across train/val/test is, by default, the file's stem with frame and
augmentation suffixes removed (``group_suffix``): ``p0042_frame3.jpg`` in ``real/`` and ``p0042.jpg``
in ``fake/inpainting/`` are one group. A ``groups.csv`` (columns ``path``, relative to the root, or
``name``, a file name; and ``group_column``) overrides it per file. With split folders the leakage
guard checks that no group crosses them; without, the splits are carved by group (seeded).

Images that are already face crops (``face_crops: true``) skip face detection: the whole image is the
face. Otherwise MTCNN looks for the face as in a video frame, and an image without one is a failure
listed in the cache's ``failures.csv``.
"""
from __future__ import annotations

import csv
import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path

from utils.core.registry import register_dataset
from utils.data.adapters.base import DatasetAdapter
from utils.data.adapters.common import (
    DEFAULT_GROUP_SUFFIX, REAL_NAMES, DatasetLayoutError, absolute, binary_label, carve_splits, group_stem,
    layout_error, method_name, natural_key,
)
from utils.data.frames import WholeFrame, is_image
from utils.data.records import SPLITS, VideoRecord

logger = logging.getLogger(__name__)

GROUPS_CSV = "groups.csv"
LAYOUT = """\
<root>/                              (split folders optional; without them splits are carved by group)
  [train/ val/ test/]
    <class>/                         e.g. real/  fake/  aifake/   (real_labels name the real ones)
      [<source>/]                    optional: one folder per source, e.g. real/wiki/  fake/inpainting/
        *.jpg *.jpeg *.png *.webp *.bmp    any depth below the class (or source) folder
  groups.csv                         optional: path (or name),group -- overrides the file-stem groups
"""


@dataclass(frozen=True)
class ImageFolderOptions:
    real_labels: list[str] = field(default_factory=lambda: list(REAL_NAMES))  # class folders holding reals
    face_crops: bool = False        # images are face crops already: no face detection, the image is the face
    group_suffix: str = DEFAULT_GROUP_SUFFIX  # regex removed from file stems to form groups
    groups_csv: str = ""            # per-file groups; empty = <root>/groups.csv when it exists
    group_column: str = "group"     # the groups.csv column holding the group
    val_fraction: float = 0.15      # splits carved by group when there are no split folders
    test_fraction: float = 0.15


def read_groups(path: Path, column: str) -> dict[str, str]:
    """``{relative path or file name: group}`` from a groups CSV (``path`` or ``name`` column)."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        fields = reader.fieldnames or []
        key = "path" if "path" in fields else "name" if "name" in fields else None
        if key is None or column not in fields:
            raise DatasetLayoutError(f"{path}: needs a 'path' (or 'name') column and a '{column}' column, "
                                     f"has {fields}")
        return {row[key].replace("\\", "/").strip(): row[column].strip() for row in reader}


def _class_dirs(base: Path) -> list[Path]:
    return sorted((d for d in base.iterdir() if d.is_dir() and not d.name.startswith(".")),
                  key=lambda d: natural_key(d.name))


def _images(folder: Path) -> list[Path]:
    """Image files anywhere below ``folder``, in natural order; other files are counted and skipped."""
    files = [p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")]
    images = sorted((p for p in files if is_image(p)), key=lambda p: natural_key(p.as_posix()))
    if len(images) < len(files):
        logger.info("imagefolder: %d non-image file(s) under %s skipped", len(files) - len(images), folder)
    return images


def scan(root: Path, split_dirs: list[str]) -> list[tuple[str, str, str, Path]]:
    """``(split or "", class, source, file)`` for every image of the tree."""
    bases = [(s, root / s) for s in split_dirs] or [("", root)]
    found = []
    for split, base in bases:
        classes = _class_dirs(base)
        if not classes:
            raise layout_error(f"no class folders under {base}", LAYOUT)
        for class_dir in classes:
            for path in _images(class_dir):
                inner = path.relative_to(class_dir).parts
                found.append((split, class_dir.name, inner[0] if len(inner) > 1 else "", path))
    return found


@register_dataset("imagefolder")
class ImageFolder(DatasetAdapter):
    """Folders of images by class (``real/``, ``fake/``, ``aifake/`` ...), with or without split folders."""

    root_env = "IMAGEFOLDER_ROOT"
    layout = LAYOUT
    Options = ImageFolderOptions
    still_images = True

    def face_detector(self, options: ImageFolderOptions, margin: float):
        return WholeFrame(margin) if options.face_crops else None

    def index(self, root: Path, options: ImageFolderOptions, seed: int = 0) -> list[VideoRecord]:
        """One record per image; splits from the split folders, else carved by group with ``seed``."""
        root = absolute(root)
        split_dirs = [s for s in SPLITS if (root / s).is_dir()]
        found = scan(root, split_dirs)
        if not found:
            raise layout_error(f"no images under {root}", LAYOUT)
        groups_file = absolute(options.groups_csv) if options.groups_csv else root / GROUPS_CSV
        if options.groups_csv and not groups_file.is_file():
            raise layout_error(f"groups file not found: {groups_file}", LAYOUT)
        table = read_groups(groups_file, options.group_column) if groups_file.is_file() else {}
        records, unlisted = [], 0
        for split, cls, source, path in found:
            rel = path.relative_to(root).as_posix()
            group = table.get(rel) or table.get(path.name)
            unlisted += bool(table) and group is None
            records.append(VideoRecord(
                video_id=rel, path=str(path), label=binary_label(cls, options.real_labels), dataset=self.name,
                method=method_name(cls, source), group=group or group_stem(path.name, options.group_suffix),
                split=split or "train"))
        if unlisted:
            logger.warning("imagefolder: %d image(s) not in %s take their file-stem group", unlisted,
                           groups_file)
        if not split_dirs:
            split_of = carve_splits([(r.group, r.label) for r in records], options.val_fraction,
                                    options.test_fraction, seed)
            records = [dataclasses.replace(r, split=split_of[r.group]) for r in records]
        return records
