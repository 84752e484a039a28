"""Dataset adapters and the leakage guard on small fixture trees in the datasets' exact layouts."""
from __future__ import annotations

import json
import logging
from collections import defaultdict
from pathlib import Path

import pytest

from utils.core.config import config_from_dict
from utils.core.registry import DATASETS, register_dataset
from utils.data.adapters import DatasetAdapter, DatasetLayoutError
from utils.data.index import build_index
from utils.data.leakage import LeakageError, check_no_leakage
from utils.data.records import VideoRecord

FFPP_SPLITS = {"train": [["000", "001"], ["002", "003"]], "val": [["004", "005"]], "test": [["006", "007"]]}
FFPP_METHODS = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures")


def DataConfig(**data):
    """A data config as a recipe would give it (adapter options such as ``compression`` included)."""
    return config_from_dict({"data": {k: str(v) if isinstance(v, Path) else v for k, v in data.items()}},
                            "test").data


def touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x00")


# ---------------------------------------------------------------------------------------------- FF++

def make_ffpp(root: Path, methods=FFPP_METHODS, compression="c23", splits=FFPP_SPLITS) -> Path:
    for pairs in splits.values():
        for a, b in pairs:
            for vid in (a, b):
                touch(root / "original_sequences/youtube" / compression / "videos" / f"{vid}.mp4")
            for m in methods:
                for t, s in ((a, b), (b, a)):
                    touch(root / "manipulated_sequences" / m / compression / "videos" / f"{t}_{s}.mp4")
    (root / "splits").mkdir(parents=True, exist_ok=True)
    for split, pairs in splits.items():
        # pretty-printed like the official files: one id per line
        (root / "splits" / f"{split}.json").write_text(json.dumps(pairs, indent=2))
    return root


def test_ffpp_pairs_group_and_split(tmp_path):
    root = make_ffpp(tmp_path / "ffpp")
    recs = build_index(DataConfig(dataset="ffpp"), root)
    reals = [r for r in recs if r.label == 0]
    fakes = [r for r in recs if r.label == 1]
    assert len(reals) == 8 and len(fakes) == 4 * 2 * 4           # originals once each; a_b and b_a per method
    assert {r.method for r in fakes} == set(FFPP_METHODS)
    by_id = {r.video_id: r for r in recs}
    assert len(by_id) == len(recs)                                # method is part of the id
    for m in FFPP_METHODS:
        ab, ba = by_id[f"{m}/000_001"], by_id[f"{m}/001_000"]      # both swap directions
        assert ab.group == ba.group == by_id["original/000"].group == by_id["original/001"].group == "000_001"
        assert ab.split == ba.split == "train"
        assert ab.original == "original/000" and ba.original == "original/001"
        assert by_id[f"{m}/005_004"].group == "004_005" and by_id[f"{m}/005_004"].split == "val"
    splits_of_group = defaultdict(set)
    for r in recs:
        splits_of_group[r.group].add(r.split)
        assert Path(r.path).is_absolute() and Path(r.path).is_file()
    assert all(len(s) == 1 for s in splits_of_group.values())
    assert {g: s.pop() for g, s in splits_of_group.items()} == {
        "000_001": "train", "002_003": "train", "004_005": "val", "006_007": "test"}


def test_ffpp_methods_faceshifter_and_splits_dir(tmp_path):
    root = make_ffpp(tmp_path / "ffpp", methods=FFPP_METHODS + ("FaceShifter",), compression="c40")
    (root / "splits").rename(tmp_path / "elsewhere")
    recs = build_index(DataConfig(dataset="ffpp", compression="c40", splits_dir=tmp_path / "elsewhere"), root)
    assert "FaceShifter" in {r.method for r in recs}              # used by default when present
    only = build_index(DataConfig(dataset="ffpp", compression="c40", methods=["Face2Face"],
                                  splits_dir=tmp_path / "elsewhere"), root)
    assert {r.method for r in only} == {"original", "Face2Face"}
    with pytest.raises(DatasetLayoutError, match="c23"):          # wrong compression: folder named
        build_index(DataConfig(dataset="ffpp", compression="c23", splits_dir=tmp_path / "elsewhere"), root)
    with pytest.raises(DatasetLayoutError, match="splits"):
        build_index(DataConfig(dataset="ffpp", compression="c40"), root)


def test_ffpp_missing_fake_is_skipped_with_a_count(tmp_path, caplog):
    root = make_ffpp(tmp_path / "ffpp")
    (root / "manipulated_sequences/FaceSwap/c23/videos/002_003.mp4").unlink()
    with caplog.at_level(logging.WARNING):
        recs = build_index(DataConfig(dataset="ffpp"), root)
    assert "FaceSwap/002_003" not in {r.video_id for r in recs}
    assert len(recs) == 8 + 32 - 1
    assert "1 of 8 videos" in caplog.text and "FaceSwap" in caplog.text


def test_ffpp_malformed_split_entry_names_file_and_line(tmp_path):
    root = make_ffpp(tmp_path / "ffpp")
    (root / "splits/val.json").write_text('[\n  ["004", "005"],\n  ["006"]\n]\n')
    with pytest.raises(ValueError, match=r"val\.json:3: entry 1"):
        build_index(DataConfig(dataset="ffpp"), root)
    (root / "splits/val.json").write_text('[\n  ["004", "005"],\n  ["006", "007"\n')
    with pytest.raises(ValueError, match=r"val\.json:\d+: not valid JSON"):
        build_index(DataConfig(dataset="ffpp"), root)


def test_missing_root_shows_the_layout(tmp_path):
    markers = {"ffpp": "original_sequences", "celebdf": "Celeb-synthesis", "dfdc": "metadata.json"}
    for name, marker in markers.items():
        with pytest.raises(DatasetLayoutError, match="Expected layout") as err:
            build_index(DataConfig(dataset=name), tmp_path / "nowhere")
        assert marker in str(err.value) and "nowhere" in str(err.value)
    registered = ", ".join(DATASETS.names())   # every registered adapter, listed
    with pytest.raises(ValueError, match=registered):
        build_index(DataConfig(dataset="imagenet"), tmp_path)
    with pytest.raises(ValueError, match=registered):   # a bare DataConfig: the registry says it
        from utils.core.config import DataConfig as Bare
        build_index(Bare(dataset="imagenet"), tmp_path)


# ------------------------------------------------------------------------------------------ Celeb-DF

# two look-alike clusters (id0-id4, id5-id9) with swaps inside each and one bridging fake id4_id5
CDF_PAIRS = [(0, 1), (1, 2), (2, 3), (3, 4), (4, 0), (5, 6), (6, 7), (7, 8), (8, 9), (9, 5), (4, 5)]
CDF_FAKES = [f"id{t}_id{s}_{n:04d}" for t, s in CDF_PAIRS for n in range(2)]
CDF_TEST = ["1 Celeb-real/id0_0001.mp4", "1 Celeb-real/id7_0001.mp4", "1 YouTube-real/00009.mp4",
            "0 Celeb-synthesis/id0_id1_0001.mp4", "0 Celeb-synthesis/id7_id8_0001.mp4"]


def make_celebdf(root: Path, test_lines=CDF_TEST) -> Path:
    for i in range(10):
        for n in range(2):
            touch(root / "Celeb-real" / f"id{i}_{n:04d}.mp4")
        touch(root / "YouTube-real" / f"{i:05d}.mp4")
    for name in CDF_FAKES:
        touch(root / "Celeb-synthesis" / f"{name}.mp4")
    (root / "List_of_testing_videos.txt").write_text("\n".join(test_lines) + "\n\n\n")  # trailing blanks
    return root


def ids_of(video_id: str) -> set[str]:
    return {t for t in Path(video_id).name.split("_") if t.startswith("id")}


def check_celebdf_index(recs: list[VideoRecord]) -> None:
    test = {r.video_id: r for r in recs if r.split == "test"}
    assert len(test) == len(CDF_TEST)                             # every line kept, line 1 included
    for line in CDF_TEST:
        flag, rel = line.split()
        assert test[rel[:-4]].label == 1 - int(flag)              # list: 1 = real; records: 1 = fake
    assert test["Celeb-synthesis/id0_id1_0001"].original == "Celeb-real/id0_0001"

    train = [r for r in recs if r.split == "train"]
    val = [r for r in recs if r.split == "val"]
    assert any(r.method == "Celeb-synthesis" for r in val) and any(r.method == "YouTube-real" for r in val)
    train_ids = set().union(*(ids_of(r.video_id) for r in train))
    val_ids = set().union(*(ids_of(r.video_id) for r in val))
    assert train_ids and val_ids and not train_ids & val_ids    # no identity in both
    # union-find: videos sharing an identity share a group; YouTube-real videos are their own group
    group_of_id = {}
    for r in train + val:
        for i in ids_of(r.video_id):
            assert group_of_id.setdefault(i, r.group) == r.group
    youtube = [r.group for r in recs if r.method == "YouTube-real"]
    assert len(set(youtube)) == len(youtube)
    # only videos bridging a train and a val identity may be left out
    kept = {r.video_id for r in recs}
    for name in CDF_FAKES:
        if f"Celeb-synthesis/{name}" not in kept:
            assert ids_of(name) & train_ids and ids_of(name) & val_ids
    assert all(f"Celeb-real/id{i}_{n:04d}" in kept for i in range(10) for n in range(2))


def test_celebdf_test_list_labels_and_identity_split(tmp_path, caplog):
    root = make_celebdf(tmp_path / "Celeb-DF-v2")
    cfg = DataConfig(dataset="celebdf", val_fraction=0.3)
    splits = []
    for seed in (0, 1, 2):
        with caplog.at_level(logging.WARNING):
            recs = build_index(cfg, root, seed=seed)
        check_celebdf_index(recs)
        splits.append(sorted((r.video_id, r.split) for r in recs))
    assert "share identities" in caplog.text                      # test overlap reported, not raised
    assert len({tuple(s) for s in splits}) > 1                    # the seed changes the validation draw
    assert sorted((r.video_id, r.split) for r in build_index(cfg, root, seed=2)) == splits[2]


def test_celebdf_malformed_line_names_file_and_line(tmp_path):
    lines = CDF_TEST[:2] + ["1 Celeb-real/id3_0001.mp4 extra"] + CDF_TEST[2:]
    root = make_celebdf(tmp_path / "cdf", test_lines=lines)
    with pytest.raises(ValueError, match=r"List_of_testing_videos\.txt:3:"):
        build_index(DataConfig(dataset="celebdf"), root)
    root = make_celebdf(tmp_path / "cdf2", test_lines=CDF_TEST[:3] + ["1 Celeb-synthesis/id0_id1_0000.mp4"])
    with pytest.raises(ValueError, match=r"txt:4: label 1 means real"):
        build_index(DataConfig(dataset="celebdf"), root)


# ---------------------------------------------------------------------------------------------- DFDC

def make_chunk(folder: Path, prefix: str, n_originals: int = 2) -> None:
    meta = {}
    for i in range(n_originals):
        orig = f"{prefix}real{i}.mp4"
        meta[orig] = {"label": "REAL", "split": "train"}
        for j in range(2):
            meta[f"{prefix}fake{i}{j}.mp4"] = {"label": "FAKE", "split": "train", "original": orig}
    for name in meta:
        touch(folder / name)
    (folder / "metadata.json").write_text(json.dumps(meta, indent=1))


def make_dfdc(root: Path) -> Path:
    make_chunk(root / "dfdc_train_part_0", "a")
    make_chunk(root / "dfdc_train_part_01" / "dfdc_train_part_1", "b")   # zero-padded outer + nesting
    make_chunk(root / "dfdc_train_part_2" / "dfdc_train_part_2", "c")    # same-name nesting
    return root


def test_dfdc_nested_chunks_and_original_groups(tmp_path):
    root = make_dfdc(tmp_path / "dfdc")
    cfg = DataConfig(dataset="dfdc", train_chunks=[0], val_chunks=[1], test_chunks=[2])
    recs = build_index(cfg, root)
    assert len(recs) == 3 * 6
    assert {(r.chunk, r.split) for r in recs} == {(0, "train"), (1, "val"), (2, "test")}
    by_id = {r.video_id: r for r in recs}
    assert by_id["bfake10"].original == "breal1"
    assert by_id["bfake10"].group == by_id["breal1"].group == "breal1"
    assert by_id["breal1"].original is None and by_id["breal1"].label == 0 and by_id["bfake10"].label == 1
    assert Path(by_id["cfake00"].path).parent.name == "dfdc_train_part_2"
    assert {len({r.video_id for r in recs if r.group == g}) for g in {r.group for r in recs}} == {3}
    default = build_index(DataConfig(dataset="dfdc"), root)      # no chunk lists: ~70/10/20 % in order
    assert {(r.chunk, r.split) for r in default} == {(0, "train"), (1, "val"), (2, "test")}
    with pytest.raises(ValueError, match="chunk 1 is in both"):
        build_index(DataConfig(dataset="dfdc", train_chunks=[0, 1], val_chunks=[1]), root)


def test_dfdc_missing_chunk_and_bad_metadata(tmp_path):
    root = make_dfdc(tmp_path / "dfdc")
    with pytest.raises(DatasetLayoutError, match=r"\[7\].*chunks found: \[0, 1, 2\]"):
        build_index(DataConfig(dataset="dfdc", train_chunks=[0], val_chunks=[1], test_chunks=[7]), root)
    meta = root / "dfdc_train_part_0/metadata.json"
    entries = json.loads(meta.read_text())
    entries["afake01.mp4"] = {"label": "FAKE", "split": "train"}  # no original
    meta.write_text(json.dumps(entries, indent=1))
    line = next(i for i, t in enumerate(meta.read_text().splitlines(), 1) if "afake01" in t)
    with pytest.raises(ValueError, match=rf"metadata\.json:{line}: afake01\.mp4: a FAKE entry needs"):
        build_index(DataConfig(dataset="dfdc", train_chunks=[0, 1, 2]), root)


# ------------------------------------------------------------------------------------ leakage guard

def rec(video_id: str, group: str, split: str, label: int = 0) -> VideoRecord:
    return VideoRecord(video_id, f"/x/{video_id}.mp4", label, "t", "m", group, split)


def test_leakage_guard_catches_a_planted_leak(tmp_path, caplog):
    clean = [rec("a", "g1", "train"), rec("b", "g1", "train", 1), rec("c", "g2", "val")]
    check_no_leakage(clean)
    with pytest.raises(LeakageError, match="'g2'.*train: 1, val: 1") as err:
        check_no_leakage(clean + [rec("d", "g2", "train", 1)])
    assert err.value.groups == {"g2": {"val": 1, "train": 1}}
    with caplog.at_level(logging.WARNING):                        # a fixed split is reported instead
        check_no_leakage(clean + [rec("e", "g1", "test")], fixed_splits=("test",))
    assert "g1" in caplog.text
    with pytest.raises(LeakageError):                             # ... but train/val still fail
        check_no_leakage(clean + [rec("e", "g1", "test"), rec("f", "g1", "val")], fixed_splits=("test",))

    # planted on disk: a fake in the validation chunk made from an original in the training chunk
    root = make_dfdc(tmp_path / "dfdc")
    meta = root / "dfdc_train_part_01/dfdc_train_part_1/metadata.json"
    entries = json.loads(meta.read_text())
    entries["bfake00.mp4"]["original"] = "areal0.mp4"
    meta.write_text(json.dumps(entries))
    with pytest.raises(LeakageError, match="areal0"):
        build_index(DataConfig(dataset="dfdc", train_chunks=[0], val_chunks=[1], test_chunks=[2]), root)


def test_custom_adapter_and_cap(tmp_path):
    @register_dataset("toy")
    class Toy(DatasetAdapter):
        def index(self, root, options, seed):
            return [rec(f"v{i}", f"g{i}", "train" if i < 40 else "val", int(i % 4 == 0)) for i in range(50)]

    try:
        _check_toy(tmp_path)
    finally:
        DATASETS.unregister("toy")


def _check_toy(tmp_path):
    recs = build_index(DataConfig(dataset="toy", max_videos_per_split=8), tmp_path, seed=3)
    train = [r for r in recs if r.split == "train"]
    assert len(train) == 8 and sum(r.label for r in train) == 2   # label shares kept (1 fake in 4)
    assert len([r for r in recs if r.split == "val"]) == 8
    assert recs == build_index(DataConfig(dataset="toy", max_videos_per_split=8), tmp_path, seed=3)
