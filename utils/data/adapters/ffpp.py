"""FaceForensics++ adapter: official id-pair splits, one compression level, selectable methods.

Missing videos: a real download often lacks a few files (one method interrupted, a corrupt
archive). Those are skipped with one warning per folder and a count, because one absent fake should
not stop a training run. A folder in which *none* of the listed videos exists is an error: that is a
wrong root or compression level, not a gap.
"""
from __future__ import annotations

import logging
from pathlib import Path

from dataclasses import dataclass, field

from utils.core.registry import register_dataset
from utils.data.adapters.base import DatasetAdapter
from utils.core.errors import ConfigError
from utils.data.adapters.common import (
    DatasetLayoutError, absolute, json_entries, layout_error, mp4_names, require_dir, warn_missing,
)
from utils.data.records import SPLITS, VideoRecord

logger = logging.getLogger(__name__)

DEFAULT_METHODS = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures")
OPTIONAL_METHODS = ("FaceShifter",)  # used by default when its folder exists
COMPRESSIONS = ("raw", "c23", "c40")

LAYOUT = """\
<root>/
  original_sequences/youtube/{raw,c23,c40}/videos/000.mp4 … 999.mp4
  manipulated_sequences/<method>/{raw,c23,c40}/videos/<target>_<source>.mp4
      <method>: Deepfakes, Face2Face, FaceSwap, NeuralTextures (and FaceShifter when downloaded)
  splits/{train,val,test}.json   JSON lists of id pairs [["071", "054"], …]
      (not in the download: copy dataset/splits from the FaceForensics GitHub repository,
       or point data.splits_dir at the folder holding them)
"""


def read_split_pairs(splits_dir: Path) -> dict[str, list[tuple[str, str]]]:
    """``{split: [(a, b), …]}`` from ``splits/{train,val,test}.json``; every id in one pair only."""
    require_dir(splits_dir, LAYOUT, "FF++ splits folder")
    pairs: dict[str, list[tuple[str, str]]] = {}
    seen: dict[str, str] = {}  # id -> "file:line" where it was first listed
    for split in SPLITS:
        path = splits_dir / f"{split}.json"
        if not path.is_file():
            raise layout_error(f"FF++ split file not found: {path}", LAYOUT)
        data, entries = json_entries(path)
        if not isinstance(data, list):
            raise DatasetLayoutError(f"{path}:1: expected a JSON list of id pairs like [[\"071\", \"054\"], …]")
        pairs[split] = []
        for line, index, entry in entries:
            where = f"{path}:{line}"
            if not (isinstance(entry, list) and len(entry) == 2
                    and all(isinstance(v, str) and v for v in entry)):
                raise DatasetLayoutError(f"{where}: entry {index} is {entry!r}, "
                                 "expected a pair of ids like [\"071\", \"054\"]")
            for vid in entry:
                if vid in seen:
                    raise DatasetLayoutError(f"{where}: id '{vid}' is already listed at {seen[vid]}; "
                                     "each FF++ id belongs to exactly one pair")
                seen[vid] = where
            pairs[split].append((entry[0], entry[1]))
    return pairs


def method_dirs(root: Path, compression: str, methods: list[str]) -> dict[str, Path]:
    """Video folders of the requested methods (defaults: the usual four plus FaceShifter if present)."""
    manipulated = require_dir(root / "manipulated_sequences", LAYOUT, "FF++ folder")

    def folder(m: str) -> Path:
        return manipulated / m / compression / "videos"

    if methods:
        missing = [m for m in methods if not folder(m).is_dir()]
        if missing:
            present = sorted(d.name for d in manipulated.iterdir() if (d / compression / "videos").is_dir())
            raise layout_error(
                f"FF++ method folder(s) {missing} not found for compression '{compression}' under "
                f"{manipulated} (present: {present or 'none'})", LAYOUT)
        chosen = list(methods)
    else:
        chosen = [m for m in DEFAULT_METHODS + OPTIONAL_METHODS if folder(m).is_dir()]
        absent = [m for m in DEFAULT_METHODS if m not in chosen]
        if not chosen:
            raise layout_error(f"no FF++ method folders with '{compression}/videos' under {manipulated}",
                               LAYOUT)
        if absent:
            logger.warning("ffpp: default method(s) %s not found under %s; using %s",
                           absent, manipulated, chosen)
    if "DeepFakeDetection" in chosen:
        raise ConfigError("ffpp: DeepFakeDetection has no official id-pair split and a different naming; "
                         "it is not supported by this adapter")
    return {m: folder(m) for m in chosen}


def _collect(folder: Path, wanted: list[tuple[str, dict]], source: str) -> list[VideoRecord]:
    """Records for the ``(file name, fields)`` pairs whose file exists in ``folder``."""
    names = mp4_names(folder)
    found = [VideoRecord(path=str(folder / name), **fields) for name, fields in wanted if name in names]
    if wanted and not found:
        raise layout_error(f"none of the {len(wanted)} videos listed in {source} exist in {folder}: "
                           "check data.root and data.compression", LAYOUT)
    warn_missing("ffpp", folder, [n for n, _ in wanted if n not in names], len(wanted), source)
    return found


@dataclass(frozen=True)
class FFPPOptions:
    compression: str = "c23"        # raw | c23 | c40
    methods: list[str] = field(default_factory=list)  # empty = the four defaults (+ FaceShifter if present)
    splits_dir: str = ""            # folder of {train,val,test}.json; empty = <root>/splits


@register_dataset("ffpp")
class FaceForensics(DatasetAdapter):
    """FaceForensics++ (Rössler et al., ICCV 2019): originals and method folders, official pair splits."""

    root_env = "FFPP_ROOT"
    layout = LAYOUT
    Options = FFPPOptions

    def index(self, root: Path, options: FFPPOptions, seed: int = 0) -> list[VideoRecord]:
        """Originals once each, fakes ``a_b`` and ``b_a`` per method; group = the sorted id pair.

        The official splits are fixed, so ``seed`` is unused.
        """
        root = absolute(root)
        require_dir(root, LAYOUT, "FF++ root")
        if options.compression not in COMPRESSIONS:
            raise ConfigError(f"ffpp: data.compression '{options.compression}' is not one of {COMPRESSIONS}")
        real_dir = require_dir(root / "original_sequences" / "youtube" / options.compression / "videos", LAYOUT,
                               "FF++ originals folder")
        fakes = method_dirs(root, options.compression, options.methods)
        pairs = read_split_pairs(absolute(options.splits_dir) if options.splits_dir else root / "splits")
        reals, by_method = _wanted(pairs, fakes)
        source = f"{'/'.join(SPLITS)}.json"
        records = _collect(real_dir, reals, source)
        for method, wanted in by_method.items():
            records += _collect(fakes[method], wanted, source)
        return records


def _wanted(pairs: dict[str, list[tuple[str, str]]], fakes: dict[str, Path]):
    """(file name, record fields) of every real and, per method, every fake the split files name."""
    reals: list[tuple[str, dict]] = []
    by_method: dict[str, list[tuple[str, dict]]] = {m: [] for m in fakes}
    for split, split_pairs in pairs.items():
        for a, b in split_pairs:
            group = "_".join(sorted((a, b)))
            common = dict(label=0, dataset="ffpp", group=group, split=split)
            for vid in (a, b):
                reals.append((f"{vid}.mp4", dict(common, video_id=f"original/{vid}", method="original")))
            for method in fakes:
                for target, src in ((a, b), (b, a)):
                    # fake target_source: the source's face on the target's footage
                    by_method[method].append((f"{target}_{src}.mp4", dict(
                        common, label=1, video_id=f"{method}/{target}_{src}", method=method,
                        original=f"original/{target}")))
    return reals, by_method
