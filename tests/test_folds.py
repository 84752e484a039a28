"""Cross-validation folds: grouped, stratified, identical across recipes, seeded; and the source lists."""
from __future__ import annotations

import json
import random
from collections import Counter

import pytest

from utils.core.config import Config
from utils.core.errors import ConfigError, InputError, UsageError
from utils.data.folds import (FIXED_TEST, fold_records, inner_validation_groups, load_or_create,
                              recipe_val_fraction, split_pool, stratified_group_folds)
from utils.data.index import build_index
from utils.data.records import VideoRecord
from utils.data.sample import SCALES
from utils.data.sources import hold_out, select_sources


def synthetic(n_groups: int = 120, seed: int = 0) -> list[VideoRecord]:
    """Groups of 1-8 videos with every mix of classes (some all real, some all fake)."""
    rng, out = random.Random(seed), []
    for g in range(n_groups):
        share = rng.choice([0.0, 0.2, 0.5, 0.8, 1.0])
        for v in range(rng.randint(1, 8)):
            label = int(rng.random() < share)
            out.append(VideoRecord(f"g{g}/v{v}", "", label, "synthetic", "fake" if label else "real", f"g{g}",
                                   "train" if g % 7 else "val"))
    return out


def fake_share(records) -> float:
    return sum(r.label for r in records) / len(records)


def test_folds_are_grouped_stratified_and_cover_every_group():
    records = synthetic()
    folds = stratified_group_folds(records, 5, seed=42)
    assert set(folds) == {r.group for r in records} and set(folds.values()) == set(range(5))
    whole = fake_share(records)
    for f in range(5):
        part = [r for r in records if folds[r.group] == f]
        assert abs(fake_share(part) - whole) <= 0.05, (f, fake_share(part), whole)
        assert 0.15 <= len(part) / len(records) <= 0.25   # sizes balanced too
    # a group is in one fold by construction (a mapping); the records follow their group
    assert all(len({folds[r.group] for r in records if r.group == g}) == 1 for g in folds)


def test_inner_validation_split_is_grouped_and_apart_from_training():
    records = synthetic()
    folds = stratified_group_folds(records, 5, seed=42)
    for f in range(5):
        part = [r for r in records if folds[r.group] != f]
        val = inner_validation_groups(part, 0.2, seed=42, fold=f)
        recs = fold_records(part + [r for r in records if folds[r.group] == f], [], folds, f, val)
        splits: dict[str, set[str]] = {}
        for r in recs:
            splits.setdefault(r.group, set()).add(r.split)
        assert all(len(s) == 1 for s in splits.values())          # no group in two splits
        val_recs = [r for r in recs if r.split == "val"]
        assert 0.12 <= len(val_recs) / len(part) <= 0.28
        assert abs(fake_share(val_recs) - fake_share(part)) <= 0.08


def test_a_seed_changes_the_folds_and_too_few_groups_are_refused():
    records = synthetic()
    assert stratified_group_folds(records, 5, 42) == stratified_group_folds(records, 5, 42)
    assert stratified_group_folds(records, 5, 42) != stratified_group_folds(records, 5, 43)
    with pytest.raises(UsageError, match="at least 5 groups"):
        stratified_group_folds(records[:3], 5, 0)


def test_fold_file_is_written_once_and_shared(tmp_path):
    records = synthetic()
    a = load_or_create(tmp_path, "synthetic", "/data/x", records, 42, 5)
    stamp = a.path.stat().st_mtime_ns
    b = load_or_create(tmp_path, "synthetic", "/data/x", list(reversed(records)), 42, 5)   # another recipe
    assert b.path == a.path and b.hash == a.hash and b.folds == a.folds and a.path.stat().st_mtime_ns == stamp
    c = load_or_create(tmp_path, "synthetic", "/data/x", records, 7, 5)
    assert c.path != a.path and c.hash != a.hash
    d = load_or_create(tmp_path, "synthetic", "/data/other", records, 42, 5)   # another root: another key
    assert d.key != a.key
    data = json.loads(a.path.read_text())
    data["folds"][next(iter(data["folds"]))] = 4 - data["folds"][next(iter(data["folds"]))]   # hand-edited
    a.path.write_text(json.dumps(data))
    with pytest.raises(InputError, match="does not match"):
        load_or_create(tmp_path, "synthetic", "/data/x", records, 42, 5)


def test_sample_ffpp_folds_keep_the_test_split_out(sample_data, tmp_path):
    cfg = Config()
    cfg.data.dataset = "ffpp"
    records = build_index(cfg.data, sample_data / "ffpp")
    pool, fixed = split_pool(records)
    assert {r.split for r in fixed} == {"test"} and {r.split for r in pool} == {"train", "val"}
    train_pairs, val_pairs, _ = SCALES["test"].ffpp_pairs
    assert recipe_val_fraction(pool) == pytest.approx(val_pairs / (train_pairs + val_pairs))
    folds = load_or_create(tmp_path, "ffpp", str(sample_data / "ffpp"), pool, 42, 5)
    recs = fold_records(pool, fixed, folds.folds, 0, inner_validation_groups(
        [r for r in pool if folds.folds[r.group] != 0], 1 / 3, 42, 0))
    counts = Counter(r.split for r in recs)
    assert counts[FIXED_TEST] == len(fixed) and counts["test"] and counts["val"] and counts["train"]
    assert not {r.group for r in recs if r.split == "test"} & {r.group for r in recs if r.split != "test"}


def test_source_lists_keep_the_other_class_and_refuse_unknown_names():
    recs = [VideoRecord(f"{m}/{i}", "", int(m != "original"), "d", m, f"g{i}", s)
            for m in ("original", "A", "B") for i in range(3) for s in ("train", "test")]
    recs = [VideoRecord(f"{r.video_id}/{r.split}", "", r.label, "d", r.method, r.group, r.split) for r in recs]
    kept = select_sources(recs, ["A"], [])
    assert {(r.split, r.method) for r in kept} == {("train", "A"), ("train", "original"), ("test", "A"),
                                                   ("test", "B"), ("test", "original")}
    assert {r.method for r in select_sources(recs, [], ["B"]) if r.split == "test"} == {"B", "original"}
    assert hold_out(recs, "B") == ["A"]
    with pytest.raises(ConfigError, match="unknown source"):
        select_sources(recs, ["C"], [])
    with pytest.raises(ConfigError, match="only source of its class"):
        hold_out(recs, "original")
