"""DeepfakeBench's preprocessed data: a JSON index per dataset over folders of cropped face frames.

The index maps ``{dataset: {label name: {train|val|test: {[c23|c40|raw:] {video: {"label", "frames"}}}}}}``;
the compression level exists for FaceForensics++ only. Frame paths are written with Windows
backslashes in the published files; they are read on any OS and resolved under the root (or
``frames_root``): the leading path parts that do not exist here (``..\\datasets\\rgb\\``, a drive) are
dropped, found once from the first frames that do exist. A listed frame that is missing makes its
video a failure in the cache's ``failures.csv``; it does not stop the index.

Each video is one record whose frames (about 32, sampled across the video, not consecutive) are read
as a frame list: they are face crops already, so no face detection runs (the whole frame is the
face) and clip models are refused. The frames were resized by DeepfakeBench's preprocessing (to
256 px): a ``native`` crop then cuts resampled pixels -- the source's 8x8 compression grid and its
own resampling traces are lost, which the compression and resampling cues rely on.

Labels: a label name containing ``real`` (``FF-real``, ``CelebDFv2_real``, ``DFDC_Real``), or one
listed in ``real_labels``, is real (0); every method label (``FF-DF``, ``FF-F2F`` ...) is a fake (1)
and the record's method, so ``data.class_map`` can turn methods into classes. Groups join videos whose
names share an identity token (``group_pattern``; FF++ ``000_003`` joins ``000`` and ``003``). When the
index has no validation split, one is carved from the training videos by group.
"""
from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath

from utils.core.errors import ConfigError
from utils.core.registry import register_dataset
from utils.data.adapters.base import DatasetAdapter
from utils.data.adapters.common import (
    DatasetLayoutError, absolute, carve_splits, layout_error, natural_key,
)
from utils.data.frames import WholeFrame, frame_list_path
from utils.data.records import SPLITS, VideoRecord

COMPRESSIONS = ("raw", "c23", "c40")
LAYOUT = """\
<root>/                                     DeepfakeBench's preprocessed data
  dataset_json/<Dataset>.json               (or <root>/<Dataset>.json, or data.index: FILE)
      {"<Dataset>": {"<label>": {"train"|"val"|"test": {["c23"|"c40"|"raw":] {"<video>":
          {"label": "<label>", "frames": ["<Dataset>\\\\...\\\\frames\\\\<video>\\\\000.png", ...]}}}}}}
  <Dataset>/.../frames/<video>/000.png ...  cropped faces; paths as the index writes them (backslashes
                                            accepted), resolved under <root> (or data.frames_root)
  labels containing "real" (FF-real, CelebDFv2_real, DFDC_Real) are real; all others are fakes
"""


@dataclass(frozen=True)
class DeepfakeBenchOptions:
    index: str = ""                 # the JSON index; empty = the one *.json in <root>/dataset_json or <root>
    frames_root: str = ""           # where frame paths are resolved; empty = <root>
    compression: str = "c23"        # level used when the index has them (FaceForensics++)
    real_labels: list[str] = field(default_factory=list)   # real label names besides those containing "real"
    group_pattern: str = r"[^_]+"   # identity tokens in a video name; videos sharing a token are one group
    val_fraction: float = 0.15      # carved from train by group when the index has no val split


def index_file(root: Path, options: DeepfakeBenchOptions) -> Path:
    if options.index:
        path = absolute(options.index)
        if not path.is_file():
            raise layout_error(f"DeepfakeBench index not found: {path}", LAYOUT)
        return path
    found = sorted((root / "dataset_json").glob("*.json")) or sorted(root.glob("*.json"))
    if len(found) != 1:
        names = ", ".join(p.name for p in found)
        what = f"{len(found)} JSON indexes ({names})" if found else "no JSON index"
        raise layout_error(f"{what} in {root}/dataset_json or {root}: name one with data.index", LAYOUT)
    return found[0]


def _videos(split_entry: dict, compression: str, where: str) -> dict:
    """The ``{video: entry}`` of one split, through the compression level when the index has one."""
    if split_entry and set(split_entry) <= set(COMPRESSIONS):
        if compression not in split_entry:
            raise ConfigError(f"{where}: no compression level '{compression}' (has {sorted(split_entry)}); "
                              "set data.compression")
        return split_entry[compression]
    return split_entry


def read_index(path: Path, compression: str) -> list[tuple[str, str, str, list[str]]]:
    """``(label name, split, video, frame paths)`` of every video in a DeepfakeBench index."""
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as e:
        raise DatasetLayoutError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
    if not isinstance(data, dict) or len(data) != 1 or not isinstance(next(iter(data.values())), dict):
        raise layout_error(f"{path}: expected one top-level key, the dataset name", LAYOUT)
    dataset, labels = next(iter(data.items()))
    out = []
    for label, splits in labels.items():
        for split, split_entry in (splits or {}).items():
            if split not in SPLITS:
                raise DatasetLayoutError(f"{path}: {dataset}/{label}: split '{split}' is not one of {SPLITS}")
            where = f"{path}: {dataset}/{label}/{split}"
            for video, entry in _videos(split_entry or {}, compression, where).items():
                if not isinstance(entry, dict) or not isinstance(entry.get("frames"), list):
                    raise DatasetLayoutError(f"{where}/{video}: expected {{'label': ..., 'frames': [...]}}")
                frames = [str(f) for f in entry["frames"]]
                out.append((str(entry.get("label") or label), split, str(video), frames))
    if not out:
        raise layout_error(f"{path}: the index lists no videos", LAYOUT)
    return out


def _parts(frame: str) -> tuple[str, ...]:
    return PureWindowsPath(frame).parts if "\\" in frame else Path(frame).parts


def path_prefix(frames: list[str], base: Path, tries: int = 200) -> int:
    """How many leading parts of the index's frame paths to drop so that they lie under ``base``."""
    for frame in frames[:tries]:
        parts = _parts(frame)
        for k in range(len(parts)):
            if base.joinpath(*parts[k:]).is_file():
                return k
    example = frames[0] if frames else "(none)"
    raise layout_error(f"none of the first {min(tries, len(frames))} frames of the index exist under {base} "
                       f"(e.g. {example}): check data.root or data.frames_root", LAYOUT)


def identity_groups(videos: list[str], pattern: str) -> dict[str, str]:
    """``{video: group}``: videos sharing an identity token are joined (union-find); a group is named
    after its smallest token."""
    try:
        tokens = {v: re.findall(pattern, v) or [v] for v in videos}
    except re.error as e:
        raise ConfigError(f"data.group_pattern {pattern!r} is not a valid regular expression ({e})") from None
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for toks in tokens.values():
        for t in toks[1:]:
            parent[find(t)] = find(toks[0])
    members: dict[str, list[str]] = {}
    for t in list(parent) + [t for toks in tokens.values() for t in toks]:
        members.setdefault(find(t), []).append(t)
    name = {root: min(ms, key=natural_key) for root, ms in members.items()}
    return {v: name[find(toks[0])] for v, toks in tokens.items()}


@register_dataset("deepfakebench")
class DeepfakeBench(DatasetAdapter):
    """DeepfakeBench's JSON index and cropped frames (FF++, Celeb-DF, DFDC ... as it preprocesses them)."""

    root_env = "DEEPFAKEBENCH_ROOT"
    layout = LAYOUT
    Options = DeepfakeBenchOptions
    still_images = True      # ~32 frames sampled across each video: no consecutive frames
    resized_frames = True    # cropped and resized by DeepfakeBench's preprocessing
    fixed_splits = ("test",)

    def face_detector(self, options: DeepfakeBenchOptions, margin: float):
        return WholeFrame(margin)

    def is_real(self, label: str, options: DeepfakeBenchOptions) -> bool:
        return "real" in label.lower() or label in options.real_labels

    def index(self, root: Path, options: DeepfakeBenchOptions, seed: int = 0) -> list[VideoRecord]:
        root = absolute(root)
        videos = read_index(index_file(root, options), options.compression)
        base = absolute(options.frames_root) if options.frames_root else root
        drop = path_prefix([f for v in videos for f in v[3][:1]], base)
        groups = identity_groups(sorted({v[2] for v in videos}), options.group_pattern)
        records = [VideoRecord(
            video_id=f"{label}/{video}", label=0 if self.is_real(label, options) else 1, dataset=self.name,
            path=frame_list_path([base.joinpath(*_parts(f)[drop:]) for f in frames]) if frames else str(base),
            method=label, group=groups[video], split=split) for label, split, video, frames in videos]
        if "val" not in {r.split for r in records} and options.val_fraction > 0:
            train = [(r.group, r.label) for r in records if r.split == "train"]
            split_of = carve_splits(train, options.val_fraction, 0.0, seed)
            records = [dataclasses.replace(r, split=split_of[r.group]) if r.split == "train" else r
                       for r in records]
        return records
