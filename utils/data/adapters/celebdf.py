"""Celeb-DF v2 adapter: the official 518-video test list, train = the rest, validation by identity.

Groups. A fake ``idT_idS_NNNN`` shows two celebrities, so identities are joined with a union-find
over the train and val videos: every video that shares an identity with another ends in the same
group (named after its smallest identity). A test video takes the group of an identity it shares
with train/val, else a group of its own. YouTube-real videos show people outside the celebrity
list; each is its own group.

Validation. We carve it out of the training videos by identity, seeded: starting from a random
identity, the set grows by the identity that moves the most videos into validation (where swaps
stay inside clusters of look-alike celebrities, this follows the cluster and keeps the cut small). A training video that
shows one validation identity and one training identity would leak either way; it is left out and
counted in the log. Holding out whole union-find groups would not work: each celebrity is swapped
with many others, so the swap graph is expected to join most of the 59 celebrities into one component
(one group), leaving nothing to hold out. The price of identity-disjoint train/val is the left-out
bridging fakes (in a simulation with 59 ids and random pairs, val_fraction 0.15: ~39 % of the pool;
with two look-alike clusters: ~22 %); the log line gives the real count.

The official test list is fixed. It shares identities with the rest of the dataset (that is how
the benchmark was published), so train/val are guarded strictly while overlap with the test list is
reported as a warning with counts (the adapter's ``fixed_splits``), not raised.
"""
from __future__ import annotations

import logging
import random
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from utils.core.registry import register_dataset
from utils.data.adapters.base import DatasetAdapter
from utils.core.errors import ConfigError
from utils.data.adapters.common import (
    DatasetLayoutError, absolute, layout_error, mp4_names, natural_key, require_dir, warn_missing,
)
from utils.data.records import VideoRecord

logger = logging.getLogger(__name__)

REAL, YOUTUBE, SYNTH = "Celeb-real", "YouTube-real", "Celeb-synthesis"
FOLDERS = (REAL, YOUTUBE, SYNTH)
TEST_LIST = "List_of_testing_videos.txt"
OFFICIAL_TEST_SIZE = 518
_NAME = {
    REAL: re.compile(r"(id\d+)_(\d+)"),
    YOUTUBE: re.compile(r"(\d+)"),
    SYNTH: re.compile(r"(id\d+)_(id\d+)_(\d+)"),
}
_PATTERN = {REAL: "idX_NNNN.mp4", YOUTUBE: "NNNNN.mp4", SYNTH: "idT_idS_NNNN.mp4"}

LAYOUT = f"""\
<root>/                         (Celeb-DF-v2)
  {REAL}/        {_PATTERN[REAL]}          e.g. id0_0000.mp4
  {YOUTUBE}/      {_PATTERN[YOUTUBE]}             e.g. 00170.mp4
  {SYNTH}/   {_PATTERN[SYNTH]}      e.g. id0_id16_0003.mp4
  {TEST_LIST}   {OFFICIAL_TEST_SIZE} lines "<label> <folder>/<file>.mp4", label 1 = real, 0 = fake, no header
"""


@dataclass(frozen=True)
class _Video:
    folder: str
    name: str               # file name
    ids: frozenset[str]     # celebrity identities shown (empty for YouTube-real)

    @property
    def key(self) -> str:
        return f"{self.folder}/{self.name}"

    @property
    def label(self) -> int:
        return int(self.folder == SYNTH)


def parse_name(folder: str, name: str) -> _Video | None:
    """The identities in a file name, or None when the name does not follow the folder's pattern."""
    m = _NAME[folder].fullmatch(name[:-4]) if name.endswith(".mp4") else None
    if m is None:
        return None
    ids = frozenset(m.groups()[:-1]) if folder != YOUTUBE else frozenset()
    return _Video(folder, name, ids)


def read_test_list(path: Path) -> list[_Video]:
    """Every non-blank line of the official list (1 = real, 0 = fake); errors name ``file:line``."""
    if not path.is_file():
        raise layout_error(f"Celeb-DF test list not found: {path}", LAYOUT)
    videos, seen = [], {}
    for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not raw.strip():
            continue
        where = f"{path}:{lineno}"
        parts = raw.split()
        folder, _, name = parts[1].partition("/") if len(parts) == 2 else ("", "", "")
        if len(parts) != 2 or parts[0] not in ("0", "1") or folder not in FOLDERS:
            raise DatasetLayoutError(f"{where}: expected '<1|0> <folder>/<file>.mp4' with 1 = real, 0 = fake and "
                             f"folder one of {FOLDERS}, got {raw.strip()!r}")
        video = parse_name(folder, name)
        if video is None:
            raise DatasetLayoutError(f"{where}: '{name}' does not follow the {folder} naming {_PATTERN[folder]}")
        if 1 - int(parts[0]) != video.label:  # the list says 1 = real; we say 1 = fake
            meaning, holds = ("real" if parts[0] == "1" else "fake"), ("fake" if video.label else "real")
            raise DatasetLayoutError(f"{where}: label {parts[0]} means {meaning} in this list (1 = real, 0 = fake) "
                             f"but {folder} holds {holds} videos")
        if video.key in seen:
            raise DatasetLayoutError(f"{where}: {video.key} is listed twice (first on line {seen[video.key]})")
        seen[video.key] = lineno
        videos.append(video)
    if len(videos) != OFFICIAL_TEST_SIZE:
        logger.warning("celebdf: %s has %d entries; the official list has %d",
                       path, len(videos), OFFICIAL_TEST_SIZE)
    return videos


def choose_val_identities(videos: list[_Video], fraction: float, rng: random.Random) -> set[str]:
    """Identities held out for validation, grown greedily from a random start (see module doc)."""
    by_id: dict[str, list[_Video]] = defaultdict(list)
    for v in videos:
        for ident in v.ids:
            by_id[ident].append(v)
    order = sorted(by_id, key=natural_key)
    rng.shuffle(order)
    rank = {ident: k for k, ident in enumerate(order)}
    target = fraction * len(videos)
    chosen: set[str] = set()
    held = 0

    def gain(ident: str) -> int:
        inside = chosen | {ident}
        return sum(v.ids <= inside for v in by_id[ident])

    while held < target and len(chosen) < len(order) - 1:  # leave at least one identity for training
        candidates = [c for c in order if c not in chosen]
        pick = candidates[0] if not chosen else max(candidates, key=lambda c: (gain(c), -rank[c]))
        held += gain(pick)
        chosen.add(pick)
    return chosen


class _UnionFind:
    def __init__(self):
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, items) -> None:
        items = list(items)
        head = self.find(items[0])
        for other in items[1:]:
            self.parent[self.find(other)] = head

    def names(self) -> dict[str, str]:
        """identity -> component name (its smallest identity in natural order)."""
        members: dict[str, list[str]] = defaultdict(list)
        for x in list(self.parent):
            members[self.find(x)].append(x)
        return {x: min(ms, key=natural_key) for ms in members.values() for x in ms}


def assign_groups(split_of: dict[_Video, str]) -> dict[_Video, str]:
    """Union-find groups over train + val; test videos join the group of an identity seen there."""
    uf = _UnionFind()
    for v, split in split_of.items():
        if split != "test" and v.ids:
            uf.union(v.ids)
    known = uf.names()
    test_only = _UnionFind()
    for v, split in split_of.items():
        if split == "test" and v.ids and not (v.ids & known.keys()):
            test_only.union(v.ids)
    fresh = test_only.names()
    groups = {}
    for v in split_of:
        if not v.ids:
            groups[v] = f"youtube_{v.name[:-4]}"
        elif v.ids & known.keys():
            groups[v] = min((known[i] for i in v.ids if i in known), key=natural_key)
        else:
            groups[v] = fresh[next(iter(v.ids))]
    return groups


def _scan(root: Path, test_keys: set[str]) -> list[_Video]:
    """Training-pool videos on disk (everything not in the test list)."""
    pool, odd = [], []
    for folder in FOLDERS:
        for name in sorted(mp4_names(require_dir(root / folder, LAYOUT, "Celeb-DF folder")), key=natural_key):
            if f"{folder}/{name}" in test_keys:
                continue
            video = parse_name(folder, name)
            if video is None:
                odd.append(f"{folder}/{name}")
            else:
                pool.append(video)
    if odd:
        logger.warning("celebdf: %d file(s) do not follow the dataset's naming and were skipped (%s)",
                       len(odd), ", ".join(odd[:5]))
    return pool


def _split_pool(pool: list[_Video], fraction: float, seed: int) -> dict[_Video, str]:
    """train / val for the training pool; videos mixing train and val identities are left out."""
    rng = random.Random(seed)
    youtube = [v for v in pool if not v.ids]
    celeb = [v for v in pool if v.ids]
    val_youtube = set(rng.sample(youtube, round(fraction * len(youtube))))
    val_ids = choose_val_identities(celeb, fraction, rng) if fraction > 0 else set()
    split_of, dropped = {}, 0
    for v in pool:
        if not v.ids:
            split_of[v] = "val" if v in val_youtube else "train"
        elif v.ids <= val_ids:
            split_of[v] = "val"
        elif not v.ids & val_ids:
            split_of[v] = "train"
        else:
            dropped += 1
    logger.info("celebdf: validation holds %d of %d identities; %d training video(s) showing a validation "
                "and a training identity were left out so that no identity spans train and val",
                len(val_ids), len({i for v in celeb for i in v.ids}), dropped)
    return split_of


@dataclass(frozen=True)
class CelebDFOptions:
    val_fraction: float = 0.15      # share of training identities held out for validation
    test_list: str = ""             # the official list; empty = <root>/List_of_testing_videos.txt


@register_dataset("celebdf")
class CelebDF(DatasetAdapter):
    """Celeb-DF v2 (Li et al., CVPR 2020): official test list, identity-grouped validation carve."""

    root_env = "CELEBDF_ROOT"
    layout = LAYOUT
    Options = CelebDFOptions
    fixed_splits = ("test",)

    def index(self, root: Path, options: CelebDFOptions, seed: int = 0) -> list[VideoRecord]:
        """Video records (label 1 = fake, converted from the list's 1 = real); ``seed`` draws validation."""
        root = absolute(root)
        require_dir(root, LAYOUT, "Celeb-DF root")
        if not 0.0 <= options.val_fraction < 1.0:
            raise ConfigError(f"celebdf: data.val_fraction must be in [0, 1), got {options.val_fraction}")
        list_path = absolute(options.test_list) if options.test_list else root / TEST_LIST
        listed = read_test_list(list_path)
        on_disk = {f: mp4_names(require_dir(root / f, LAYOUT, "Celeb-DF folder")) for f in FOLDERS}
        test = [v for v in listed if v.name in on_disk[v.folder]]
        for folder in FOLDERS:
            wanted = [v.name for v in listed if v.folder == folder]
            warn_missing("celebdf", root / folder, [n for n in wanted if n not in on_disk[folder]], len(wanted),
                         list_path.name)
        split_of = _split_pool(_scan(root, {v.key for v in listed}), options.val_fraction, seed)
        split_of.update({v: "test" for v in test})
        return _records(root, split_of)


def _records(root: Path, split_of: dict[_Video, str]) -> list[VideoRecord]:
    groups = assign_groups(split_of)
    present = {v.key for v in split_of}
    records = []
    for v, split in split_of.items():
        original = None
        if v.folder == SYNTH:  # idT_idS_NNNN is made from Celeb-real/idT_NNNN
            target, _, number = v.name[:-4].split("_")
            original = f"{REAL}/{target}_{number}" if f"{REAL}/{target}_{number}.mp4" in present else None
        records.append(VideoRecord(
            video_id=v.key[:-4], path=str(root / v.folder / v.name), label=v.label, dataset="celebdf",
            method=v.folder, group=groups[v], split=split, original=original))
    return records
