"""Dataset adapters: one per on-disk layout, all producing the same :class:`VideoRecord` list.

Add a dataset by writing ``index_mine(cfg, root, seed, **kwargs) -> list[VideoRecord]`` and putting
it in :data:`ADAPTERS` (and its expected tree in :data:`LAYOUTS` for error messages).
"""
from __future__ import annotations

import logging
import os
import random
from collections import Counter, defaultdict
from pathlib import Path
from typing import Callable

from utils.core.config import DataConfig
from utils.orchestration.curriculum import ROOT_ENV
from utils.data.adapters import celebdf, dfdc, ffpp
from utils.data.adapters.common import DatasetLayoutError, absolute, layout_error
from utils.data.leakage import check_no_leakage
from utils.data.records import SPLITS, VideoRecord

__all__ = ["ADAPTERS", "FIXED_SPLITS", "LAYOUTS", "DatasetLayoutError", "build_index", "summarize"]

logger = logging.getLogger(__name__)

Adapter = Callable[..., list[VideoRecord]]

ADAPTERS: dict[str, Adapter] = {
    "ffpp": ffpp.index_ffpp,
    "celebdf": celebdf.index_celebdf,
    "dfdc": dfdc.index_dfdc,
}
LAYOUTS: dict[str, str] = {"ffpp": ffpp.LAYOUT, "celebdf": celebdf.LAYOUT, "dfdc": dfdc.LAYOUT}
# splits an official protocol fixes: overlap with them is reported, not raised (see celebdf.py)
FIXED_SPLITS: dict[str, tuple[str, ...]] = {"celebdf": ("test",)}
_NO_LAYOUT = "(see the adapter's documentation)"


def _resolve_root(data_cfg: DataConfig, root: str | os.PathLike | None) -> Path:
    name = data_cfg.dataset
    # same order as training (utils.orchestration.curriculum.data_root): an explicit root, the environment, the recipe
    chosen = os.fspath(root) if root else (os.environ.get(ROOT_ENV.get(name, ""), "") or data_cfg.root)
    if not chosen:
        raise layout_error(f"no {name} root: pass root, set data.root or ${ROOT_ENV.get(name, 'ROOT')}",
                           LAYOUTS.get(name, _NO_LAYOUT))
    path = absolute(chosen)
    if not path.is_dir():
        raise layout_error(f"{name} root not found: {path}", LAYOUTS.get(name, _NO_LAYOUT))
    return path


def _check_unique(records: list[VideoRecord], name: str) -> None:
    dup = [v for v, n in Counter(r.video_id for r in records).items() if n > 1]
    if dup:
        raise ValueError(f"{name}: {len(dup)} video id(s) occur more than once, e.g. {sorted(dup)[:5]}; "
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


def summarize(records: list[VideoRecord]) -> str:
    """``train 720 real / 2880 fake, val …`` for logs."""
    counts = Counter((r.split, r.label) for r in records)
    return ", ".join(f"{s} {counts[(s, 0)]} real / {counts[(s, 1)]} fake" for s in SPLITS)


def build_index(data_cfg: DataConfig, root: str | os.PathLike | None = None, seed: int = 0,
                **adapter_kwargs) -> list[VideoRecord]:
    """The video list of ``data_cfg.dataset`` under ``root``, checked for leakage.

    Args:
        data_cfg: data config; ``dataset`` picks the adapter, ``max_videos_per_split`` caps the list.
        root: dataset root; empty: ``$FFPP_ROOT`` / ``$CELEBDF_ROOT`` / ``$DFDC_ROOT``, then
            ``data_cfg.root``.
        seed: seeds the Celeb-DF validation draw and the per-split cap.
        **adapter_kwargs: passed to the adapter (``splits_dir`` for FF++, ``test_list`` for Celeb-DF).

    Raises:
        DatasetLayoutError: the root or a folder is missing (the message shows the expected tree).
        LeakageError: a group has videos in two splits.
    """
    name = data_cfg.dataset
    if name not in ADAPTERS:
        raise ValueError(f"unknown dataset '{name}' (valid: {', '.join(sorted(ADAPTERS))})")
    path = _resolve_root(data_cfg, root)
    records = ADAPTERS[name](data_cfg, path, seed, **adapter_kwargs)
    if not records:
        raise DatasetLayoutError(f"{name}: no videos found under {path}")
    _check_unique(records, name)
    check_no_leakage(records, fixed_splits=FIXED_SPLITS.get(name, ()))
    records = cap_per_split(records, data_cfg.max_videos_per_split, seed)
    logger.info("%s index (%s): %s", name, path, summarize(records))
    return records
