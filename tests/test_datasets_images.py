"""Image datasets: the imagefolder, manifest and deepfakebench adapters on fixture trees built here;
still images and frame lists through the face-crop cache; the image samples and their file sizes."""
from __future__ import annotations

import json
import logging
from collections import Counter, defaultdict
from pathlib import Path

import cv2
import numpy as np
import pytest

from utils.core.config import config_from_dict
from utils.core.errors import ConfigError
from utils.core.model import InputSpec
from utils.core.registry import get_dataset
from utils.data.adapters import DatasetLayoutError
from utils.data.cache import BuildOptions, build_cache, load_failures, load_index
from utils.data.footage import astronaut
from utils.data.frames import WholeFrame, frame_list_files, frame_list_path
from utils.data.index import build_index
from utils.data.leakage import LeakageError
from utils.data.sample import make_image_sample
from tests.helpers.launch import one_thread
from tests.helpers.shortcuts import shortcut_auc
from utils.orchestration import cli

ASTRONAUT_FACE = (182, 75, 270, 182)   # hand-checked on the photo (see test_video_faces.py)


def DataConfig(**data):
    return config_from_dict({"data": {k: str(v) if isinstance(v, Path) else v for k, v in data.items()}}, "test").data


def image(path: Path, seed: int = 0, size: int = 32) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    cv2.imwrite(str(path), pixels)
    return path


def by_id(records) -> dict:
    return {r.video_id: r for r in records}


def splits_per_group(records) -> dict[str, set[str]]:
    out = defaultdict(set)
    for r in records:
        out[r.group].add(r.split)
    return out


# ---------------------------------------------------------------------------------------------- imagefolder

def make_imagefolder(root: Path) -> Path:
    for split, people in (("train", ("p1", "p2", "p3")), ("val", ("p4",))):
        for k, p in enumerate(people):
            image(root / split / "real" / "wiki" / f"{p}_frame0.jpg", k)
            image(root / split / "real" / "wiki" / f"{p}_frame1.png", k + 10)
            image(root / split / "fake" / "inpainting" / f"{p}_frame0.jpg", k + 20)
            image(root / split / "aifake" / f"g{p}.webp", k + 30)
    (root / "train" / "real" / "wiki" / "notes.txt").write_text("not an image")
    return root


def test_imagefolder_splits_sources_groups_and_classes(tmp_path):
    root = make_imagefolder(tmp_path / "set")
    recs = build_index(DataConfig(dataset="imagefolder", classes=["real", "fake", "generated"],
                                  class_map={"aifake": "generated"}), root)
    ids = by_id(recs)
    assert len(recs) == 16                                               # the .txt is not an image
    r = ids["train/real/wiki/p1_frame1.png"]
    assert (r.label, r.method, r.group, r.split) == (0, "real/wiki", "p1", "train")
    f = ids["train/fake/inpainting/p1_frame0.jpg"]
    assert (f.label, f.method, f.group) == (1, "fake/inpainting", "p1")   # same person, same group
    g = ids["val/aifake/gp4.webp"]
    assert (g.label, g.method, g.split) == (2, "aifake", "val")          # aifake -> generated = class 2
    assert Counter(r.label for r in recs) == {0: 8, 1: 4, 2: 4}
    assert all(len(s) == 1 for s in splits_per_group(recs).values())
    # the leakage guard runs on the split folders: a photo of p1 under val/ is refused
    image(root / "val" / "real" / "wiki" / "p1_frame2.jpg")
    with pytest.raises(LeakageError, match="p1"):
        build_index(DataConfig(dataset="imagefolder"), root)


def test_imagefolder_carves_splits_by_group_and_reads_groups_csv(tmp_path):
    root = tmp_path / "flat"
    for k in range(40):
        image(root / "real" / f"person{k}_frame0.jpg", k)
        image(root / "real" / f"person{k}_frame1.jpg", k + 100)
        image(root / "fake" / f"person{k}_frame0.jpg", k + 200)
    recs = build_index(DataConfig(dataset="imagefolder", val_fraction=0.2, test_fraction=0.2), root, seed=3)
    assert all(len(s) == 1 for s in splits_per_group(recs).values())    # no person on two sides
    counts = Counter((r.split, r.label) for r in recs)
    assert counts[("val", 0)] == counts[("test", 0)] == 16 and counts[("val", 1)] == counts[("test", 1)] == 8
    assert recs == build_index(DataConfig(dataset="imagefolder", val_fraction=0.2, test_fraction=0.2), root, seed=3)
    (root / "groups.csv").write_text("name,group\n" + "".join(f"person{k}_frame0.jpg,pair{k // 2}\n"
                                                             for k in range(40)))
    grouped = by_id(build_index(DataConfig(dataset="imagefolder"), root))
    assert grouped["real/person3_frame0.jpg"].group == grouped["fake/person2_frame0.jpg"].group == "pair1"
    assert grouped["real/person3_frame1.jpg"].group == "person3"        # not listed: its file-stem group


# ---------------------------------------------------------------------------------------------- manifest

def test_manifest_csv_jsonl_frame_lists_and_line_numbers(tmp_path):
    root = tmp_path / "m"
    for k in range(3):
        image(root / "frames" / "vid1" / f"{k:03d}.png", k)
    image(root / "imgs" / "a.jpg", 5)
    image(root / "imgs" / "b.jpg", 6)
    rows = ["path,label,source,group,split,video", "imgs\\a.jpg,real,wiki,ga,train,", "imgs/b.jpg,sd21,text2img,,val,",
            *[f"frames/vid1/{k:03d}.png,fake,faceswap,gv,train,vid1" for k in range(3)],
            "imgs/missing.jpg,fake,faceswap,gm,test,"]
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    recs = by_id(build_index(DataConfig(dataset="manifest", classes=["real", "fake", "generated"],
                                        class_map={"text2img": "generated"}), root))
    assert set(recs) == {"imgs/a.jpg", "imgs/b.jpg", "vid1", "imgs/missing.jpg"}
    assert (recs["imgs/a.jpg"].label, recs["imgs/a.jpg"].method, recs["imgs/a.jpg"].group) == (0, "real/wiki", "ga")
    assert (recs["imgs/b.jpg"].label, recs["imgs/b.jpg"].group) == (2, "b")   # source text2img -> generated
    video = recs["vid1"]
    assert (video.label, video.method, video.split) == (1, "fake/faceswap", "train")
    assert frame_list_files(video.path) == [str(root / "frames" / "vid1" / f"{k:03d}.png") for k in range(3)]
    # JSONL, no split anywhere: carved by group
    lines = [json.dumps({"path": f"imgs/{k}.jpg", "label": "real" if k % 2 else "fake", "group": f"g{k % 10}"})
             for k in range(40)]
    (root / "list.jsonl").write_text("\n".join(lines) + "\n")
    carved = build_index(DataConfig(dataset="manifest", manifest=root / "list.jsonl"), root)
    assert {r.split for r in carved} == {"train", "val", "test"}
    assert all(len(s) == 1 for s in splits_per_group(carved).values())
    # errors name file:line
    (root / "bad.csv").write_text("path,label,split\nimgs/a.jpg,real,train\nimgs/b.jpg,fake,\n")
    with pytest.raises(DatasetLayoutError, match=r"bad\.csv:3: no split"):
        build_index(DataConfig(dataset="manifest", manifest=root / "bad.csv"), root)
    (root / "bad.csv").write_text("path,label\nimgs/a.jpg,real\nimgs/a.jpg,fake\n")
    with pytest.raises(DatasetLayoutError, match=r"bad\.csv:3: imgs/a\.jpg is listed twice"):
        build_index(DataConfig(dataset="manifest", manifest=root / "bad.csv"), root)


# ---------------------------------------------------------------------------------------------- deepfakebench

def make_deepfakebench(root: Path, missing: str | None = None, with_val: bool = True) -> Path:
    """A DeepfakeBench FF++ index over 4 frames per video, with published-style Windows paths."""
    pairs = {"train": [("000", "003"), ("001", "004")], "val": [("002", "005")], "test": [("006", "007")]}
    if not with_val:
        pairs["train"] += pairs.pop("val")
    index = {"FF-real": {}, "FF-DF": {}}
    for split, split_pairs in pairs.items():
        for a, b in split_pairs:
            for label, method, videos in (("FF-real", ("original_sequences", "youtube"), (a, b)),
                                          ("FF-DF", ("manipulated_sequences", "Deepfakes"), (f"{a}_{b}", f"{b}_{a}"))):
                for v in videos:
                    folder = Path("FaceForensics++", *method, "c23", "frames", v)
                    frames = []
                    for k in range(4):
                        if f"{v}/{k}" != missing:
                            image(root / folder / f"{k:03d}.png", k, size=48)
                        frames.append("\\".join(("D:", "DeepfakeBench", "datasets", "rgb", *folder.parts, f"{k:03d}.png")))
                    index[label].setdefault(split, {"c23": {}, "c40": {}})["c23"][v] = {"label": label, "frames": frames}
    (root / "dataset_json").mkdir(parents=True, exist_ok=True)
    (root / "dataset_json" / "FaceForensics++.json").write_text(json.dumps({"FaceForensics++": index}))
    return root


def test_deepfakebench_backslash_paths_pairs_and_a_missing_frame(tmp_path):
    root = make_deepfakebench(tmp_path / "dfb", missing="000_003/2")
    recs = build_index(DataConfig(dataset="deepfakebench"), root)
    ids = by_id(recs)
    assert len(recs) == 16 and ids["FF-DF/000_003"].label == 1 and ids["FF-real/000"].label == 0
    assert ids["FF-DF/000_003"].group == ids["FF-DF/003_000"].group == ids["FF-real/003"].group == "000"
    assert ids["FF-real/006"].split == "test" and all(len(s) == 1 for s in splits_per_group(recs).values())
    files = frame_list_files(ids["FF-real/000"].path)
    assert len(files) == 4 and all(Path(f).is_file() for f in files)   # D:\...\rgb\ dropped, the rest found
    # the frames go into the cache as they are (the whole frame is the face); a missing one fails its video
    cache = tmp_path / "cache"
    detector = get_dataset("deepfakebench").face_detector(None, 0.3)
    build_cache(recs, cache, BuildOptions(frames_per_video=4, clips_per_video=0), face_detector=detector)
    failures = {f["video_id"]: f["reason"] for f in load_failures(cache)}
    assert list(failures) == ["FF-DF/000_003"] and "missing" in failures["FF-DF/000_003"]
    rows = load_index(cache)
    assert len(rows) == 15 * 4 and {(r["frame_w"], r["frame_h"]) for r in rows} == {(48, 48)}
    # no val split in the index: carved from train by group
    carved = build_index(DataConfig(dataset="deepfakebench", val_fraction=0.35),
                         make_deepfakebench(tmp_path / "noval", with_val=False))
    assert {r.split for r in carved} == {"train", "val", "test"}
    with pytest.raises(ConfigError, match="c40.*raw|raw"):
        build_index(DataConfig(dataset="deepfakebench", compression="raw"), root)


# ---------------------------------------------------------------------------------------------- errors

@pytest.mark.parametrize("dataset,marker", [("imagefolder", "<class>/"), ("manifest", "path,label"),
                                            ("deepfakebench", "dataset_json")])
def test_broken_layout_shows_the_layout_and_exits_2(tmp_path, capsys, dataset, marker):
    (tmp_path / "empty").mkdir()
    rc = cli.run(lambda: build_index(DataConfig(dataset=dataset), tmp_path / "empty"))
    err = capsys.readouterr().err
    assert rc == 2 and "Expected layout" in err and marker in err


# ---------------------------------------------------------------------------------------------- cache

def test_stills_go_through_the_face_crop_cache_detected_or_as_face_crops(tmp_path):
    root = tmp_path / "photos"
    (root / "real").mkdir(parents=True)
    cv2.imwrite(str(root / "real" / "astronaut.png"), cv2.resize(astronaut(), (256, 256))[:, :, ::-1])   # half size
    data = DataConfig(dataset="imagefolder", val_fraction=0.0, test_fraction=0.0)
    recs = build_index(data, root)
    build_cache(recs, tmp_path / "mtcnn", BuildOptions(frames_per_video=1, clips_per_video=0))   # MTCNN runs
    (row,) = load_index(tmp_path / "mtcnn")
    box = np.array([row["x1"], row["y1"], row["x2"], row["y2"]])
    assert row["detected"] and np.abs(2 * box - ASTRONAUT_FACE).max() < 20
    adapter = get_dataset("imagefolder")
    crops = adapter.face_detector(adapter.options(DataConfig(dataset="imagefolder", face_crops=True)), 0.25)
    assert isinstance(crops, WholeFrame) and adapter.face_detector(adapter.options(data), 0.25) is None
    build_cache(recs, tmp_path / "crops", BuildOptions(frames_per_video=1, clips_per_video=0), face_detector=crops)
    (row,) = load_index(tmp_path / "crops")
    # the box is the image less the margin: the face crop policy cuts exactly the image
    assert [row["x1"], row["y1"], row["x2"], row["y2"]] == pytest.approx([128 - 128 / 1.5] * 2 + [128 + 128 / 1.5] * 2,
                                                                      abs=0.01)
    with pytest.raises(ValueError, match="may not contain"):
        frame_list_path([tmp_path / "a,b.png"])


def test_clip_models_refuse_still_images(tmp_path, caplog):
    recs = build_index(DataConfig(dataset="imagefolder"), make_imagefolder(tmp_path / "set"))
    clip = InputSpec(crop="face", image_size=64, clip_len=4)
    for name in ("imagefolder", "deepfakebench"):
        with pytest.raises(ConfigError, match="still images.*clip_len=4"):
            get_dataset(name).check_input(clip, recs)
    get_dataset("imagefolder").check_input(InputSpec(crop="native", image_size=64), recs)   # frame models are fine
    with caplog.at_level(logging.WARNING):
        get_dataset("deepfakebench").check_input(InputSpec(crop="native", image_size=64), recs)
    assert "8x8 compression grid" in caplog.text                          # what a native crop loses there


# ---------------------------------------------------------------------------------------------- samples

def test_image_samples_layouts_groups_and_no_file_level_shortcut(image_samples):
    three = image_samples / "imagefolder"
    for split, expected in (("train", (120, 120, 40)), ("val", (60, 60, 20)), ("test", (60, 60, 20))):
        assert tuple(len(list((three / split / c).glob("*.jpg"))) for c in ("real", "fake", "aifake")) == expected
    # the held-out test split has its own people: no group (person) in two splits
    three_recs = build_index(DataConfig(dataset="imagefolder", face_crops=True), three)
    assert Counter(r.split for r in three_recs) == {"train": 280, "val": 140, "test": 140}
    assert all(len(s) == 1 for s in splits_per_group(three_recs).values())
    multi = image_samples / "manifest"
    recs = build_index(DataConfig(dataset="manifest", face_crops=True), multi)
    assert {r.method for r in recs} == {"real/wiki", "fake/inpainting", "fake/faceswap", "fake/text2img"}
    groups = Counter(r.group for r in recs)
    assert min(groups.values()) >= 2 and all(len(s) == 1 for s in splits_per_group(recs).values())
    for root in (three, multi):
        found = shortcut_auc(root, boosting=False)   # bench/image_datasets.py adds gradient boosting
        assert found["distinct_tables"] == 1 and found["distinct_sizes"] == 1   # one size, one JPEG quality
        assert found["logistic"] <= 0.6 and found["tree"] <= 0.6, found


def test_deepfakebench_sample_indexes_every_frame(sample_data, tmp_path):
    root = make_image_sample(sample_data, "deepfakebench")
    text = (root / "dataset_json" / "FaceForensics++.json").read_text()
    assert "\\\\frames\\\\" in text                                       # Windows paths, as published
    recs = build_index(DataConfig(dataset="deepfakebench"), root)
    ffpp = build_index(DataConfig(dataset="ffpp"), sample_data / "ffpp")
    assert len(recs) == len(ffpp) and Counter(r.split for r in recs) == Counter(r.split for r in ffpp)
    assert all(all(Path(f).is_file() for f in frame_list_files(r.path)) for r in recs)
    assert {r.method for r in recs} == {"FF-real", "FF-DF", "FF-F2F", "FF-FS", "FF-NT"}


# ---------------------------------------------------------------------------------------------- recipes

RECIPES = {"images_3class": ("imagefolder", 3), "images_multisource": ("manifest", 2),
           "deepfakebench": ("deepfakebench", 2), "ffpp_3class": ("ffpp", 3)}


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_each_recipe_resolves_for_cm_and_indexes_its_sample(recipe, image_samples, sample_data, monkeypatch):
    from utils.core.recipe import load_recipe
    from utils.data.classes import model_classes
    from utils.data.index import data_root
    from utils.orchestration.curriculum import resolve_stage
    dataset, k = RECIPES[recipe]
    path = Path(__file__).parents[1] / "launch" / "configs" / f"{recipe}.yaml"
    cfg = resolve_stage(load_recipe(path), "cm", 1, ["data.sample=true"])   # production: the sample if asked
    assert cfg.data.dataset == dataset and model_classes(cfg.data, cfg.model.num_classes) == k
    sample = image_samples if dataset in ("imagefolder", "manifest") else sample_data
    if dataset == "deepfakebench":
        make_image_sample(sample_data, "deepfakebench")
    monkeypatch.setenv("DEEPFAKE_SAMPLE_DIR", str(sample))
    root, is_sample = data_root(cfg.data)
    recs = build_index(cfg.data, root)
    assert is_sample and len({r.label for r in recs}) == k and {"train", "val"} <= {r.split for r in recs}


def test_multisource_recipe_trains_and_evaluates_from_the_command_line(image_samples, tmp_path, monkeypatch):
    """``launch/train.py --config <recipe> --model cm --stage 1`` then ``launch/evaluate.py``, as typed
    (their ``main``, in this process: the same path as the command line, without two interpreter starts)."""
    from launch.evaluate import main as evaluate
    from launch.train import main as train
    monkeypatch.setenv("DEEPFAKE_SAMPLE_DIR", str(image_samples))
    recipe = Path(__file__).parents[1] / "launch" / "configs" / "images_multisource.yaml"
    fast = ["data.sample=true", "model.size=tiny", "trainer.epochs=1", "trainer.max_steps_per_epoch=2",
            "data.num_workers=0",
            "data.batch_size=8", "logging.tensorboard=false", "logging.progress_bar=false",
            f"data.cache_root={tmp_path / 'cache'}"]
    ck = tmp_path / "runs" / "cm" / "stage1" / "best.safetensors"
    root_logger = logging.getLogger()
    handlers, level = root_logger.handlers[:], root_logger.level   # the commands set up their own logging
    try:
        with one_thread():
            assert cli.run(lambda: train(["--config", str(recipe), "--model", "cm", "--stage", "1", "--output-dir",
                                          str(tmp_path / "runs"), "--set", *fast])) == 0
            rc = cli.run(lambda: evaluate(["--checkpoint", str(ck), "--dataset", "manifest", "--split", "test",
                                           "--n-boot", "0", "--out", str(tmp_path / "eval"), "--set",
                                           "data.num_workers=0"]))
    finally:
        root_logger.handlers[:], root_logger.level = handlers, level
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert rc == (3 if report["collapsed"] else 0), rc       # 3 exactly when the report says collapsed
    assert set(report["breakdown"]["method"]) == {"real/wiki", "fake/inpainting", "fake/faceswap", "fake/text2img"}
