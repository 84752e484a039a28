"""What the dataset adapters will make of a planned sample tree, known before anything is rendered.

The plan's index files and an empty file per planned video are written to a scratch folder and
indexed there by the real adapters (:func:`utils.data.index.build_index`: FF++ pair splits,
Celeb-DF's identity-grouped validation carve, DFDC chunk lists, the leakage check), so the counts are
the ones training will see, not a re-implementation of the rules. Adapters only list file names
(and read the index files), so this takes milliseconds.

DFDC splits by chunk lists, which come from the recipe; the check uses the curriculum's convention
(``launch/configs/curriculum.yaml``): the last chunk is the test chunk, the one before it the
validation chunk, all earlier ones train. Celeb-DF's validation identities are drawn with the
training seed; the check runs the carve for :data:`CHECK_SEEDS` (the default training seed first).
"""
from __future__ import annotations

import logging
import tempfile
from collections import Counter
from pathlib import Path

from utils.core.config import DataConfig, TrainerConfig
from utils.data.index import build_index
from utils.data.records import SPLITS

# the default training seed, then a sweep: a recipe that changes the seed must not get a one-class split
CHECK_SEEDS = (TrainerConfig().seed, *range(16))

Counts = dict[str, dict[str, Counter]]   # dataset -> split (and DFDC "train chunk k") -> Counter({0: reals, 1: fakes})


def dfdc_chunk_lists(n_chunks: int) -> dict[str, list[int]]:
    """The curriculum's DFDC chunk lists for a tree of ``n_chunks`` chunks (train …, val n-2, test n-1)."""
    return {"train_chunks": list(range(n_chunks - 2)), "val_chunks": [n_chunks - 2],
            "test_chunks": [n_chunks - 1]}


def _skeleton(root: Path, plans: dict) -> None:
    for plan in plans.values():
        for path, text in plan.files.items():
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_text(text)
        for job in plan.jobs:
            for out in job.outputs:
                (root / out.path).parent.mkdir(parents=True, exist_ok=True)
                (root / out.path).touch()


def planned_split_counts(plans: dict, n_dfdc_chunks: int, seeds=CHECK_SEEDS,
                         options: dict[str, dict] | None = None) -> dict[int, Counts]:
    """``{seed: {dataset: {split: Counter(label)}}}`` as the adapters index the planned tree; ``options``
    (dataset -> adapter options, e.g. a recipe's ``val_fraction``) replace the adapters' defaults."""
    quiet = logging.getLogger("utils.data")
    level = quiet.level
    quiet.setLevel(logging.ERROR)   # the scratch tree is small on purpose: no "official list" warnings
    try:
        with tempfile.TemporaryDirectory(prefix="sample-splits-") as tmp:
            root = Path(tmp)
            _skeleton(root, plans)
            result: dict[int, Counts] = {}
            for seed in seeds:
                counts: Counts = {}
                # only Celeb-DF's carve depends on the seed; the other splits are fixed lists
                for name in (plans if seed == seeds[0] else [n for n in plans if n == "celebdf"]):
                    extra = {**(dfdc_chunk_lists(n_dfdc_chunks) if name == "dfdc" else {}),
                             **(options or {}).get(name, {})}
                    records = build_index(DataConfig(dataset=name, options=extra), root / name, seed=seed)
                    counts[name] = {s: Counter(r.label for r in records if r.split == s) for s in SPLITS}
                    if name == "dfdc":   # the curriculum trains chunk by chunk: each chunk is a training set
                        for c in extra["train_chunks"]:
                            counts[name][f"train chunk {c}"] = Counter(r.label for r in records if r.chunk == c)
                result[seed] = counts
            return result
    finally:
        quiet.setLevel(level)


def one_class_splits(counts: dict[int, Counts]) -> list[str]:
    """Human-readable list of the (seed, dataset, split) cells that lack a class."""
    bad = []
    for seed, per_dataset in counts.items():
        for name, per_split in per_dataset.items():
            for split, c in per_split.items():
                if not (c[0] and c[1]):
                    bad.append(f"{name} {split}: {c[0]} real / {c[1]} fake (training seed {seed})")
    return bad


def describe(counts: Counts) -> str:
    return "; ".join(f"{name} " + ", ".join(f"{s} {c[0]}r/{c[1]}f" for s, c in per_split.items())
                     for name, per_split in counts.items())
