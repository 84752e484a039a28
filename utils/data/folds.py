"""Cross-validation folds over a dataset's groups: stratified, grouped, seeded, written once, reused.

A fold is a set of whole groups (``VideoRecord.group``: the identities a video shows, an image's
basename or its manifest group), so no person is ever on both sides of a train/test cut. Groups are
dealt to folds greedily, largest first (ties in a seeded random order): each goes to the fold whose
per-class video counts it brings closest to an equal share, so every fold keeps the class mix of the
whole. The inner validation split of a fold's training part is made the same way (one inner fold of
``round(1 / val_fraction)``), seeded by the fold number.

The assignment is written once to a file keyed by (dataset, root, groups and their class counts,
seed, k) and read back by every later experiment on the same data, so that experiments to be compared
have identical folds; its hash (of the group -> fold table itself) goes into every result.

Splits of a fold's records: the outer fold is ``test``, the inner validation groups ``val``, the rest
``train``; a dataset's fixed test split (an official test list) is never dealt into folds and keeps
the split name :data:`FIXED_TEST`.
"""
from __future__ import annotations

import hashlib
import json
import logging
import random
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

from utils.core.errors import InputError, UsageError
from utils.core.fileio import atomic_write_json
from utils.data.leakage import check_no_leakage
from utils.data.records import VideoRecord

logger = logging.getLogger(__name__)

FIXED_TEST = "fixed_test"
FORMAT_VERSION = 1


def group_counts(records: list[VideoRecord]) -> dict[str, dict[int, int]]:
    """``{group: {label: videos}}``."""
    table: dict[str, Counter] = {}
    for r in records:
        table.setdefault(r.group, Counter())[r.label] += 1
    return {g: dict(c) for g, c in table.items()}


def stratified_group_folds(records: list[VideoRecord], k: int, seed: int) -> dict[str, int]:
    """``{group: fold}`` for ``k`` folds: grouped, stratified by label, seeded (see module doc)."""
    counts = group_counts(records)
    if k < 2:
        raise UsageError(f"cross-validation needs at least 2 folds, got {k}")
    if len(counts) < k:
        raise UsageError(f"{k} folds need at least {k} groups; these videos have {len(counts)} "
                         "(groups are the identities / basenames that must not be split)")
    labels = sorted({lab for c in counts.values() for lab in c})
    order = sorted(counts)
    random.Random(seed).shuffle(order)
    order.sort(key=lambda g: -sum(counts[g].values()))        # stable: equal sizes keep the seeded order
    target = {lab: sum(c.get(lab, 0) for c in counts.values()) / k for lab in labels}
    filled = [dict.fromkeys(labels, 0) for _ in range(k)]
    out: dict[str, int] = {}
    for g in order:
        def cost(f: int) -> tuple[float, int, int]:
            after = sum(abs(filled[f][lab] + counts[g].get(lab, 0) - target[lab]) for lab in labels)
            before = sum(abs(filled[f][lab] - target[lab]) for lab in labels)
            return after - before, sum(filled[f].values()), f
        best = min(range(k), key=cost)
        out[g] = best
        for lab, n in counts[g].items():
            filled[best][lab] += n
    return out


def fold_key(dataset: str, root: str, records: list[VideoRecord], seed: int, k: int) -> str:
    """What identifies an assignment: the data (dataset, root, every group with its class counts), seed, k."""
    counts = group_counts(records)
    groups = [[g, sorted(counts[g].items())] for g in sorted(counts)]
    text = json.dumps({"dataset": dataset, "root": str(root), "groups": groups, "seed": seed, "k": k},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def assignment_hash(folds: dict[str, int]) -> str:
    """The hash of a group -> fold table (equal tables, equal hashes)."""
    return hashlib.sha256(json.dumps(sorted(folds.items())).encode()).hexdigest()


@dataclass(frozen=True)
class FoldAssignment:
    """A written fold assignment: where it lives, what it was made from, and the table."""

    path: Path
    key: str
    hash: str
    dataset: str
    root: str
    seed: int
    k: int
    folds: dict[str, int]

    def summary(self) -> dict:
        return {"file": str(self.path), "key": self.key, "hash": self.hash, "dataset": self.dataset,
                "root": self.root, "seed": self.seed, "k": self.k, "n_groups": len(self.folds)}


def fold_file(folder: str | Path, dataset: str, key: str, seed: int, k: int) -> Path:
    return Path(folder) / f"{dataset}-k{k}-seed{seed}-{key[:16]}.json"


def _read(path: Path, key: str) -> dict[str, int]:
    try:
        data = json.loads(path.read_text())
        folds = {str(g): int(f) for g, f in data["folds"].items()}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise InputError(f"fold file {path} cannot be read ({e}); delete it to deal the folds again") from None
    if data.get("key") != key or data.get("hash") != assignment_hash(folds):
        raise InputError(f"fold file {path} does not match its key or its hash (edited by hand?); "
                         "delete it to deal the folds again")
    return folds


def load_or_create(folder: str | Path, dataset: str, root: str, records: list[VideoRecord], seed: int,
                   k: int, *, write: bool = True) -> FoldAssignment:
    """The fold assignment of ``records``: read from its file when it exists, else dealt (and written
    when ``write``: the main process writes, the others read after it)."""
    key = fold_key(dataset, root, records, seed, k)
    path = fold_file(folder, dataset, key, seed, k)
    if path.is_file():
        folds = _read(path, key)
        logger.info("folds read from %s", path)
    else:
        folds = stratified_group_folds(records, k, seed)
        if write:
            atomic_write_json(path, {"format_version": FORMAT_VERSION, "key": key, "hash": assignment_hash(folds),
                                     "dataset": dataset, "root": str(root), "seed": seed, "k": k,
                                     "folds": dict(sorted(folds.items()))})
            logger.info("%d groups dealt into %d folds: %s", len(folds), k, path)
    return FoldAssignment(path, key, assignment_hash(folds), dataset, str(root), seed, k, folds)


def inner_validation_groups(train_part: list[VideoRecord], val_fraction: float, seed: int,
                            fold: int) -> set[str]:
    """Groups of the validation split inside one fold's training part (grouped, stratified, seeded)."""
    n_groups = len({r.group for r in train_part})
    k_inner = min(max(2, round(1.0 / val_fraction)), n_groups)
    if k_inner < 2:
        raise UsageError(f"fold {fold}: its training part has {n_groups} group(s); a validation split "
                         "needs at least 2 (use fewer folds)")
    inner = stratified_group_folds(train_part, k_inner, seed * 1009 + fold + 1)
    return {g for g, f in inner.items() if f == 0}


def recipe_val_fraction(pool: list[VideoRecord]) -> float | None:
    """The validation share the dataset's own split gives its non-test videos (None without one)."""
    n_val = sum(r.split == "val" for r in pool)
    return n_val / len(pool) if n_val and len(pool) > n_val else None


def split_pool(records: list[VideoRecord], fixed_splits: tuple[str, ...] = ()
               ) -> tuple[list[VideoRecord], list[VideoRecord]]:
    """(the videos dealt into folds, the fixed test set): the test split, and any split an official
    protocol fixes, stay out of the folds."""
    fixed = {"test", *fixed_splits}
    return [r for r in records if r.split not in fixed], [r for r in records if r.split in fixed]


def fold_records(pool: list[VideoRecord], fixed: list[VideoRecord], folds: dict[str, int], fold: int,
                 val_groups: set[str]) -> list[VideoRecord]:
    """The records of one fold with their splits: ``test`` (the outer fold), ``val``, ``train``, and
    :data:`FIXED_TEST`; checked for leakage between the three splits the folds control."""
    def split(r: VideoRecord) -> str:
        return "test" if folds[r.group] == fold else "val" if r.group in val_groups else "train"

    out = [replace(r, split=split(r)) for r in pool] + [replace(r, split=FIXED_TEST) for r in fixed]
    check_no_leakage(out, fixed_splits=(FIXED_TEST,))
    return out
