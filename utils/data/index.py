"""The video index of a dataset: where its root is, its records, checked and optionally capped.

:func:`build_index` is what training, face extraction, evaluation and cross-validation call: it asks
the configured adapter for its records, checks that video ids are unique and that no group spans two
splits (the leakage guard), applies ``data.max_videos_per_split`` (the only place it is applied) and
logs the class counts per split.
"""
from __future__ import annotations

import logging
import os
import random
from collections import Counter, defaultdict
from pathlib import Path

from utils.core.config import DataConfig
from utils.core.errors import ConfigError, UsageError
from utils.core.registry import get_dataset, list_datasets
from utils.data.adapters.common import DatasetLayoutError, absolute, layout_error
from utils.data.classes import apply_classes
from utils.data.leakage import check_no_leakage
from utils.data.records import SPLITS, VideoRecord

logger = logging.getLogger(__name__)

SAMPLE_DIR_ENV = "DEEPFAKE_SAMPLE_DIR"
DEFAULT_SAMPLE_DIR = "data/sample"


def sample_dir() -> Path:
    """Where the bundled sample datasets are generated (``$DEEPFAKE_SAMPLE_DIR``, else data/sample)."""
    return Path(os.environ.get(SAMPLE_DIR_ENV, DEFAULT_SAMPLE_DIR))


SAMPLE_NOTE = "sample (generated, not a real dataset)"


def missing_root_message(data: DataConfig) -> str:
    """The one line that stops a run with no dataset root: what to set, and how to try the toolkit."""
    env = get_dataset(data.dataset).root_env if data.dataset in list_datasets() else ""
    where = f"export {env}=/path/to/{data.dataset} or " if env else ""
    name = data.dataset or "dataset"
    return (f"no {name} root given: {where}pass --set data.root=/path/to/{data.dataset}; to try the toolkit "
            "without data run `make demo` (or --set data.sample=true for the generated sample data)")


def data_root(data: DataConfig) -> tuple[Path, bool]:
    """(root, is_sample): ``data.root`` (already resolved: ``--set`` > environment > recipe), else the
    generated sample data of the dataset when ``data.sample`` asks for it.

    Raises:
        UsageError: no root and no ``data.sample``: a production run never falls back to toy data.
    """
    if data.root:
        return absolute(data.root), False
    if data.sample:
        return sample_dir() / data.dataset, True
    raise UsageError(missing_root_message(data))


def check_data_root(data: DataConfig) -> None:
    """Refuse a config that names no dataset root and does not ask for the sample (no I/O: call it
    before anything is built or written)."""
    data_root(data)


def data_source(data: DataConfig) -> dict:
    """What a run's data is, for summaries, sidecars and reports: ``{dataset, root, sample}`` (describes,
    never refuses: :func:`check_data_root` does that; an unresolved root is "")."""
    is_sample = not data.root and data.sample
    root = absolute(data.root) if data.root else absolute(sample_dir() / data.dataset) if is_sample else ""
    return {"dataset": data.dataset, "root": str(root), "sample": is_sample}


def _check_unique(records: list[VideoRecord], name: str) -> None:
    dup = [v for v, n in Counter(r.video_id for r in records).items() if n > 1]
    if dup:
        raise DatasetLayoutError(f"{name}: {len(dup)} video id(s) occur more than once, e.g. {sorted(dup)[:5]}; "
                                 "video ids must be unique within a dataset")


def _quotas(sizes: dict[int, int], limit: int) -> dict[int, int]:
    """Split ``limit`` over labels in proportion to ``sizes`` (largest remainders), at least 1 each."""
    total = sum(sizes.values())
    if total <= limit:
        return dict(sizes)
    quota = {k: min(n, max(1, limit * n // total)) for k, n in sizes.items()}
    for k in sorted(sizes, key=lambda k: (-(limit * sizes[k] % total), k)):
        if sum(quota.values()) >= limit:
            break
        quota[k] = min(sizes[k], quota[k] + 1)
    return quota


def cap_per_split(records: list[VideoRecord], limit: int, seed: int) -> list[VideoRecord]:
    """At most ``limit`` videos per split: a seeded draw that keeps each label's share (>= 1 each)."""
    if limit <= 0:
        return records
    rng = random.Random(seed)
    cells: dict[str, dict[int, list[VideoRecord]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        cells[r.split][r.label].append(r)
    kept: set[int] = set()
    for split in sorted(cells):  # sorted: the same draw on every run and rank
        by_label = cells[split]
        quota = _quotas({k: len(v) for k, v in by_label.items()}, limit)
        for label in sorted(by_label):
            kept.update(id(r) for r in rng.sample(by_label[label], quota[label]))
    return [r for r in records if id(r) in kept]


def summarize(records: list[VideoRecord], names: list[str] | tuple[str, ...] = ("real", "fake")) -> str:
    """``train 720 real / 2880 fake, val …`` for logs (one count per class)."""
    counts = Counter((r.split, r.label) for r in records)
    per_split = (" / ".join(f"{counts[(s, k)]} {n}" for k, n in enumerate(names)) for s in SPLITS)
    return ", ".join(f"{s} {text}" for s, text in zip(SPLITS, per_split))


def build_index(data: DataConfig, root: str | os.PathLike | None = None, seed: int = 0) -> list[VideoRecord]:
    """The video list of ``data.dataset`` under ``root`` (default: :func:`data_root`), checked for leakage.

    Args:
        data: data config; ``dataset`` picks the adapter, its options configure it,
            ``max_videos_per_split`` caps the list.
        root: dataset root; overrides ``data.root``.
        seed: seeds adapter draws (Celeb-DF's validation identities) and the per-split cap.

    Raises:
        DatasetLayoutError: the root or a folder is missing (the message shows the expected tree).
        LeakageError: a group has videos in two splits.
    """
    if not data.dataset:
        raise ConfigError(f"no dataset: set data.dataset to one of {', '.join(list_datasets())}")
    adapter = get_dataset(data.dataset)
    path = absolute(root) if root else data_root(data)[0]
    if not path.is_dir():
        hint = f"pass --root, set data.root or ${adapter.root_env}" if adapter.root_env else "set data.root"
        raise layout_error(f"{data.dataset} root not found: {path} ({hint})", adapter.layout)
    records = adapter.index(path, adapter.options(data), seed)
    if not records:
        raise DatasetLayoutError(f"{data.dataset}: no videos found under {path}")
    _check_unique(records, data.dataset)
    check_no_leakage(records, fixed_splits=adapter.fixed_splits)
    records = cap_per_split(apply_classes(records, data), data.max_videos_per_split, seed)
    logger.info("%s index (%s): %s", data.dataset, path, summarize(records, data.classes))
    return records


def split_records(records: list[VideoRecord], split: str) -> list[VideoRecord]:
    """The records of one split (the adapter already assigned splits from its options)."""
    return [r for r in records if r.split == split]
