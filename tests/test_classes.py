"""Classes as configuration, end to end: class maps, per-class metrics and thresholds, the collapse guard,
ensembles of mismatched checkpoints, normalisation from the training reals, and 3-class training on the
image and FF++ samples (tiny cm, a few epochs on CPU).

The 3-class bar is measured on the image sample's held-out ``test/`` split (people seen neither in
training nor by the epoch selection on ``val/``), and a control trained the same way on the training
split with its labels shuffled must fail it: the bar is out of reach without learning the classes."""
from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
import sklearn.metrics as skm

from evaluation.collapse import MIN_RECALL, check_collapse
from evaluation.metrics import apply_threshold, choose_threshold, compute_metrics
from evaluation.report import to_markdown
from evaluation.scoring import build_report
from tests.helpers.launch import REPO, one_thread
from tests.test_adapters import make_ffpp
from utils.core.checkpoint import export_weights, load_exported
from utils.core.config import config_from_dict
from utils.core.errors import ConfigError, UsageError
from utils.core.recipe import load_recipe
from utils.core.registry import create_model
from utils.data.cache import BuildOptions, build_cache, cache_location
from utils.data.classes import model_classes
from utils.data.frames import WholeFrame
from utils.data.index import build_index, data_root
from utils.engine.predictions import FramePredictions
from utils.orchestration import cli
from utils.orchestration.curriculum import resolve_stage
from utils.orchestration.cv import plan_cv
from utils.orchestration.evaluate import evaluate_checkpoints
from utils.orchestration.predict import Predictor
from utils.orchestration.stage import run_stage

IMAGES = REPO / "tests" / "configs" / "images_3class.yaml"
FFPP_3 = REPO / "launch" / "configs" / "ffpp_3class.yaml"
NAMES = ["real", "fake", "generated"]
FFPP_MAP = {"Deepfakes": "swap", "FaceSwap": "swap", "Face2Face": "reenact", "NeuralTextures": "reenact"}


def data_config(**data):
    return config_from_dict({"data": data}, "test").data


# ---------------------------------------------------------------------------------------------- class maps

def test_class_map_turns_methods_into_classes_and_keeps_real_at_0(tmp_path, caplog):
    root = make_ffpp(tmp_path / "ffpp")
    recs = build_index(data_config(dataset="ffpp", classes=["real", "swap", "reenact"], class_map=FFPP_MAP), root)
    label = {r.method: r.label for r in recs}
    assert label == {"original": 0, "Deepfakes": 1, "FaceSwap": 1, "Face2Face": 2, "NeuralTextures": 2}
    assert model_classes(data_config(classes=["real", "swap", "reenact"])) == 3
    with pytest.raises(ConfigError, match="model.num_classes=4"):
        model_classes(data_config(classes=["real", "swap", "reenact"]), 4)
    with caplog.at_level(logging.WARNING):          # a method no entry names keeps class 1
        partial = build_index(data_config(dataset="ffpp", classes=["real", "swap", "reenact"],
                                          class_map={"Face2Face": "reenact"}), root)
    assert {r.method: r.label for r in partial}["NeuralTextures"] == 1 and "NeuralTextures" in caplog.text
    for bad, match in (({"Deepfakes": "real"}, "class 0"), ({"original": "swap"}, "class 0"),
                       ({"Deepfakes": "morph"}, "not in data.classes")):
        with pytest.raises(ConfigError, match=match):
            build_index(data_config(dataset="ffpp", classes=["real", "swap", "reenact"], class_map=bad), root)


# ---------------------------------------------------------------------------------------------- metrics

def _three_class(n: int = 300, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.choice(3, n, p=[3 / 7, 3 / 7, 1 / 7])
    logits = rng.standard_normal((n, 3)) + 1.6 * np.eye(3)[y]
    return np.exp(logits) / np.exp(logits).sum(1, keepdims=True), y


def test_per_class_metrics_threshold_rule_and_report():
    p, y = _three_class()
    m = compute_metrics(p, y, warnings=[])                      # no threshold: the argmax
    pred = p.argmax(1)
    assert [m[f"recall_{c}"] for c in range(3)] == pytest.approx(skm.recall_score(y, pred, average=None))
    assert m["macro_f1"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert m["auc"] == pytest.approx(skm.roc_auc_score(y, p, multi_class="ovr"))
    assert m["auc_2"] == pytest.approx(skm.roc_auc_score(y == 2, p[:, 2]))
    # one-vs-rest threshold on the real class: real below it, else the most probable fake class
    t = choose_threshold(p, y)
    assert t == pytest.approx(choose_threshold(np.stack([p[:, 0], 1 - p[:, 0]], 1), (y > 0).astype(int)))
    hard = apply_threshold(p, t)
    assert ((hard == 0) == (1 - p[:, 0] < t)).all() and (hard[hard > 0] == 1 + p[hard > 0, 1:].argmax(1)).all()
    assert (apply_threshold(p[:, :2] / p[:, :2].sum(1, keepdims=True), 0.3) ==
            (p[:, 1] / p[:, :2].sum(1) >= 0.3)).all()          # two classes: the binary rule
    fp = FramePredictions(p, y, [f"v{i}" for i in range(len(y))], label_names=tuple(NAMES))
    rep = build_report(fp, val_preds=fp, n_boot=20)
    assert rep["threshold"]["source"] == "validation" and rep["video"]["threshold"] == pytest.approx(t)
    assert [r["class"] for r in rep["video"]["per_class"]] == NAMES
    assert np.asarray(rep["video"]["confusion"]).shape == (3, 3) and np.asarray(rep["video"]["confusion"]).sum() == 300
    md = to_markdown(rep)
    assert "## Per class (video level" in md and "| generated |" in md and "true \\ predicted" in md


def test_k_class_bootstrap_equals_explicit_resampling():
    from evaluation.bootstrap import bootstrap_ci
    p, y = _three_class(140, seed=1)
    p = np.round(p, 2) / np.round(p, 2).sum(1, keepdims=True)          # ties, as real scores have
    ci = bootstrap_ci(p, y, None, threshold=0.45, n_boot=100, seed=5)
    rng = np.random.default_rng(5)
    draws = [compute_metrics(p[i], y[i], 0.45, warnings=[]) for i in (rng.integers(0, 140, 140) for _ in range(100))]
    for key in ("auc", "ap", "acc", "balanced_acc", "log_loss"):
        lo, hi = np.percentile([d[key] for d in draws], [2.5, 97.5])
        assert (ci[key]["lo"], ci[key]["hi"]) == pytest.approx((lo, hi), abs=1e-9), key


def test_collapse_guard_flags_a_class_that_is_never_predicted():
    p, y = _three_class()
    ignored = p.copy()
    ignored[:, 2] = 0.0                                          # the minority class is never predicted
    ignored /= ignored.sum(1, keepdims=True)
    d = check_collapse(ignored, y, names=NAMES)
    assert max(d["pred_share"]) < 0.95                           # the share rule alone would not see it
    assert d["collapsed"] and any("class 2 (generated) is almost never predicted" in r for r in d["reasons"])
    assert not check_collapse(p, y, names=NAMES)["collapsed"]


def test_mixed_class_counts_cannot_form_an_ensemble(tmp_path):
    paths = []
    for k in (2, 3):
        path = tmp_path / f"cm{k}.safetensors"
        export_weights(create_model("cm", size="tiny", num_classes=k), path,
                       {"model": "cm", "model_kwargs": {"size": "tiny", "num_classes": k},
                        "label_names": NAMES[:k], "config": {"data": {"dataset": "imagefolder"}}})
        paths.append(path)
    with pytest.raises(UsageError, match="score different classes.*2 \\(real, fake\\).*3 \\(real, fake, generated\\)"):
        Predictor(paths)
    with pytest.raises(UsageError, match="score different classes"):
        evaluate_checkpoints([str(p) for p in paths], "imagefolder", "val", tmp_path / "eval")
    assert cli.run(lambda: Predictor(paths)) == 2                # one line, exit 2, no traceback


# ---------------------------------------------------------------------------------------------- training

MIN_MACRO_AUC, MIN_RECALL_EACH = 0.9, 0.7      # the 3-class bar, on the held-out test split
TEST_IMAGES = [60, 60, 20]                      # test/{real,fake,aifake}


def _run(out: Path, sample: Path, cache: Path, *extra: str, shuffle_train_labels: bool = False) -> dict:
    with pytest.MonkeyPatch.context() as mp, one_thread():
        mp.setenv("DEEPFAKE_SAMPLE_DIR", str(sample))
        cfg = resolve_stage(load_recipe(IMAGES), "cm", 1, [f"data.cache_root={cache}", *extra])
        records = None
        if shuffle_train_labels:
            records = build_index(cfg.data, data_root(cfg.data)[0], seed=cfg.trainer.seed)
            train = [i for i, r in enumerate(records) if r.split == "train"]
            labels = np.random.default_rng(0).permutation([records[i].label for i in train])
            for i, label in zip(train, labels):
                records[i] = dataclasses.replace(records[i], label=int(label))
        run_stage(cfg, 1, out, resume="never", records=records)
    return json.loads((out / "cm" / "stage1" / "eval" / "report.json").read_text())


def _meets_the_bar(report: dict) -> bool:
    m = report["frame"]["metrics"]
    return m["auc"] >= MIN_MACRO_AUC and min(_recalls(report)) >= MIN_RECALL_EACH


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("image-cache")


@pytest.fixture(scope="module")
def weighted(image_samples, cache_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("weighted")
    _run(out, image_samples, cache_root)
    return out / "cm" / "stage1"


def _recalls(report: dict) -> list[float]:
    return [report["frame"]["metrics"][f"recall_{c}"] for c in range(3)]


def test_weighted_ce_learns_every_class_of_the_3_1_split(weighted, image_samples):
    report = json.loads((weighted / "eval" / "report.json").read_text())
    # the report is on the held-out test split: its per-class counts are test/'s, and no warning says
    # it fell back to the validation split
    assert [r["n"] for r in report["frame"]["per_class"]] == TEST_IMAGES
    assert [len(list((image_samples / "imagefolder" / "test" / c).glob("*.jpg"))) for c in
            ("real", "fake", "aifake")] == TEST_IMAGES
    held_out = weighted / "eval" / "predictions_test.npz"
    assert held_out.is_file(), sorted(p.name for p in held_out.parent.iterdir())
    scored = FramePredictions.load(held_out).video_ids
    assert len(scored) == sum(TEST_IMAGES) and all(str(v).startswith("test/") for v in scored)
    assert not any("no test split" in w for w in report["warnings"]), report["warnings"]
    m = report["frame"]["metrics"]
    print(f"3-class test split: macro AUC {m['auc']:.3f}, recalls {_recalls(report)}")
    assert m["auc"] >= MIN_MACRO_AUC, m
    assert min(_recalls(report)) >= MIN_RECALL_EACH, _recalls(report)
    assert _meets_the_bar(report)
    assert [r["class"] for r in report["frame"]["per_class"]] == NAMES and not report["collapsed"]
    meta = json.loads((weighted / "best.json").read_text())
    assert meta["label_names"] == NAMES and meta["num_classes"] == 3


def test_shuffled_training_labels_fail_the_bar(image_samples, cache_root, tmp_path):
    """The same recipe with the training split's labels permuted (class counts kept): what the real run
    reaches must come from the labels, so this control stays near chance on the test split."""
    report = _run(tmp_path, image_samples, cache_root, shuffle_train_labels=True)
    m = report["frame"]["metrics"]
    print(f"shuffled-label control: macro AUC {m['auc']:.3f}, recalls {_recalls(report)}")
    assert [r["n"] for r in report["frame"]["per_class"]] == TEST_IMAGES
    assert not _meets_the_bar(report) and m["auc"] <= MIN_MACRO_AUC - 0.1, m


@pytest.mark.slow   # a second training run (make test runs it; make test-fast does not)
def test_plain_ce_collapse_verdict_matches_the_per_class_recalls(image_samples, cache_root, tmp_path):
    report = _run(tmp_path, image_samples, cache_root, "optim.loss=ce")    # the same run, plain CE
    for level in ("frame", "video"):
        d, recalls = report[level]["collapse"], report[level]["collapse"]["recall"]
        ignored = [c for c, r in enumerate(recalls) if r < MIN_RECALL]
        assert d["collapsed"] == bool(ignored) or any("of the predictions" in r for r in d["reasons"]), (recalls, d)
        assert all(f"class {c} ({NAMES[c]}) is almost never predicted" in " ".join(d["reasons"]) for c in ignored)
    print(f"plain CE: recalls {_recalls(report)}, collapsed {report['collapsed']}")


def test_predict_reports_three_probabilities_on_red_black_and_noise(weighted, tmp_path):
    inputs = {"red": np.zeros((128, 128, 3), np.uint8), "black": np.zeros((128, 128, 3), np.uint8),
              "noise": np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8)}
    inputs["red"][..., 2] = 255                                  # BGR on disk
    for name, img in inputs.items():
        cv2.imwrite(str(tmp_path / f"{name}.png"), img)
    predictor = Predictor([weighted / "best.safetensors"])
    assert isinstance(predictor.face_detector, WholeFrame)       # trained on face crops: no face detection
    results = {Path(r.path).stem: r for r in predictor.predict([tmp_path / f"{n}.png" for n in inputs])}
    for name, res in results.items():
        assert res.ok, res.error
        assert list(res.classes) == NAMES and sum(res.classes.values()) == pytest.approx(1.0, abs=1e-5)
        assert res.p_fake == pytest.approx(1 - res.classes["real"]) and res.label in ("REAL", "FAKE", "GENERATED")
        assert "P(generated)=" in res.line() and json.loads(res.to_json())["classes"] == res.classes
    probs = np.array([list(r.classes.values()) for r in results.values()])
    assert np.abs(probs - probs[0]).max() > 1e-4               # the outputs depend on the input


def test_real_train_normalisation_is_the_training_reals_and_predict_reads_it(weighted, image_samples):
    norm = json.loads((weighted / "best.json").read_text())["normalization"]
    # by hand: the native 64 px crop the tiny cm sees is the centre of each 128 px face crop
    crops = [cv2.imread(str(p))[32:96, 32:96, ::-1] / 255.0
             for p in sorted((image_samples / "imagefolder" / "train" / "real").glob("*.jpg"))]
    pixels = np.stack(crops).reshape(-1, 3)
    assert norm["n_images"] == len(crops) == 120
    assert norm["mean"] == pytest.approx(pixels.mean(0).tolist(), abs=1e-6)
    assert norm["std"] == pytest.approx(pixels.std(0).tolist(), abs=1e-6)
    member = Predictor([weighted / "best.safetensors"]).members[0]
    assert member.spec.mean == pytest.approx(norm["mean"]) and member.spec.std == pytest.approx(norm["std"])
    assert load_exported(weighted / "best.safetensors").model._mean.flatten().tolist() == pytest.approx(norm["mean"])


def test_clip_model_on_a_still_image_set_exits_2_before_building_a_cache(image_samples, cache_root, tmp_path,
                                                                       monkeypatch, capsys):
    monkeypatch.setenv("DEEPFAKE_SAMPLE_DIR", str(image_samples))
    cfg = resolve_stage(load_recipe(IMAGES), "tm", 1, [f"data.cache_root={tmp_path / 'cache'}"])
    assert cli.run(lambda: run_stage(cfg, 1, tmp_path / "runs")) == 2
    assert "holds still images" in capsys.readouterr().err and not (tmp_path / "cache").exists()


@pytest.mark.slow   # a training run on the FF++ sample (make test runs it; make test-fast does not)
def test_ffpp_sample_as_three_classes_reports_per_class_rows(sample_data, tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPFAKE_SAMPLE_DIR", str(sample_data))
    cfg = resolve_stage(load_recipe(FFPP_3), "cm", 1, [
        "data.sample=true", f"data.cache_root={tmp_path / 'cache'}", "model.size=tiny",
        "data.frames_per_video=2", "data.clips_per_video=0",
        "data.num_workers=0", "data.batch_size=16", "trainer.epochs=1", "trainer.max_steps_per_epoch=4",
        "logging.tensorboard=false", "logging.progress_bar=false"])
    # the face boxes do not matter here: the whole frame stands in for the detector (fast)
    records, opts = build_index(cfg.data, sample_data / "ffpp"), BuildOptions.from_data(cfg.data)
    with one_thread():
        build_cache(records, cache_location(cfg.data, sample_data / "ffpp", opts), opts, face_detector=WholeFrame())
        run_stage(cfg, 1, tmp_path / "runs", resume="never")
    report = json.loads((tmp_path / "runs" / "cm" / "stage1" / "eval" / "report.json").read_text())
    for level in ("video", "frame"):
        assert [r["class"] for r in report[level]["per_class"]] == ["real", "identity_swap", "reenactment"]
        assert np.asarray(report[level]["confusion"]).shape == (3, 3)
    test = [r.label for r in records if r.split == "test"]       # originals, then 2 methods per class
    assert [r["n"] for r in report["video"]["per_class"]] == [test.count(k) for k in range(3)]
    assert test.count(1) == test.count(2) == 2 * test.count(0)
    md = (tmp_path / "runs" / "cm" / "stage1" / "eval" / "report.md").read_text()
    assert "| identity_swap |" in md and "| reenactment |" in md and "Confusion matrix (video level" in md


def test_cross_validation_refuses_more_than_two_classes_before_indexing(tmp_path):
    with pytest.raises(UsageError, match="2 classes.*3 \\(real, fake, generated\\)"):
        plan_cv(load_recipe(IMAGES), "cm", output_dir=tmp_path / "cv")
    assert not (tmp_path / "cv").exists()
