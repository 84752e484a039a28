"""Experiment trackers through accelerate: the choice in the config, a missing package refused before
training, and what TensorBoard, W&B (offline), MLflow (local file store, where installed) and the
jsonl / csv trackers hold after a short training run."""
from __future__ import annotations

import csv
import importlib.util
import json
import logging
import struct
from pathlib import Path

import numpy as np
import pytest

from evaluation.report import make_figures
from evaluation.scoring import build_report, summary_scalars, validation_metrics
from tests.helpers.tiny import TinyData, TinyNet, register
from utils.core.config import TRACKER_NAMES, ConfigError
from utils.core.recipe import load_config
from utils.engine import trackers
from utils.engine.inference import predict_loader
from utils.engine.setup import make_accelerator
from utils.engine.trackers import TrackerUnavailable, configured, log_figures
from utils.engine.trainer import Trainer
from utils.orchestration import cli

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_thread")
# what a short run logs: training scalars, validation metrics, and the test figures of the stage's report
TRAIN_VAL = {"train/loss", "train/cls", "train/lr", "val/auc", "val/balanced_acc", "val/loss"}
TEST = {"test/video/auc", "test/frame/auc", "test/video/balanced_acc"}


def _cfg(*sets):
    register()
    return load_config(None, ["model.name=tiny", "data.num_workers=0", "logging.progress_bar=false",
                              "logging.log_every_steps=1", "trainer.epochs=2", "data.batch_size=8",
                              "optim.lr=0.01", *sets])


def _train(run_dir: Path, cfg) -> None:
    """A short stage of the tiny model, then what the stage runner logs after its evaluation."""
    trainer = Trainer(TinyNet(), cfg, run_dir, TinyData(32), TinyData(16, seed=3, offset=100),
                      export_meta={"model": "tiny", "model_kwargs": {}}, validation=validation_metrics)
    trainer.fit(close=False)
    preds = predict_loader(trainer.model, trainer.val_loader, trainer.acc)
    report = build_report(preds, val_preds=preds, n_boot=20)
    step = trainer.state.global_step
    log_figures(trainer.acc, make_figures(report), step, prefix="test/")     # as evaluate_stage does
    trainer.acc.log(summary_scalars(report, "test/"), step=step)
    trainer.close()


def test_trackers_default_to_tensorboard_and_the_old_switch_still_works():
    assert configured(load_config(None, []).logging) == ["tensorboard"]
    assert configured(load_config(None, ["logging.tensorboard=false"]).logging) == []
    cfg = load_config(None, ["logging.trackers=[tensorboard,wandb,jsonl]", "logging.tensorboard=false"])
    assert configured(cfg.logging) == ["wandb", "jsonl"]
    assert set(TRACKER_NAMES) == set(trackers.PACKAGES) == set(trackers.TAKES)
    with pytest.raises(ConfigError, match=r"'logging.trackers'\[1\]: 'neptune' is not one of tensorboard"):
        load_config(None, ["logging.trackers=[csv,neptune]"])
    with pytest.raises(ConfigError, match="without repeats"):
        load_config(None, ["logging.trackers=[csv,csv]"])


def _hide(monkeypatch, package: str) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(trackers.importlib.util, "find_spec",
                        lambda name, *a: None if name == package else real(name, *a))


def test_a_tracker_without_its_package_is_refused_before_training(tmp_path, monkeypatch, capsys):
    from launch.train import main
    _hide(monkeypatch, "wandb")
    root = logging.getLogger()     # the command points the log at this test's captured stderr: put it back
    monkeypatch.setattr(root, "handlers", list(root.handlers))
    monkeypatch.setattr(root, "level", root.level)
    with pytest.raises(TrackerUnavailable, match=r"wandb package is not installed: pip install .*\[wandb\]"):
        make_accelerator(_cfg("logging.trackers=[tensorboard,wandb]"), tmp_path)
    out = tmp_path / "runs"
    rc = cli.run(lambda: main(["--model", "cm", "--stage", "1", "--config", "launch/configs/demo.yaml",
                               "--output-dir", str(out), "--set", "logging.trackers=[jsonl,wandb]"]))
    err = capsys.readouterr().err
    assert rc == 2 and "error: logging.trackers names 'wandb'" in err and "pip install" in err
    assert "Traceback" not in err and not out.exists()      # refused before anything was written


def wandb_history(run_dir: Path) -> list[dict]:
    """The history rows of the offline W&B run under ``run_dir``, read from its ``run-<id>.wandb`` file
    (LevelDB log format: 32 KiB blocks of records with a 7-byte header; W&B puts a 7-byte file header
    first; each complete record is a protobuf ``Record``)."""
    from wandb.proto import wandb_internal_pb2
    (path,) = run_dir.glob("wandb/offline-run-*/run-*.wandb")
    data, pos, pending, rows = path.read_bytes(), 7, b"", []
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:           # a block's trailer: too short for a record header
            pos += 32768 - pos % 32768
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        pending = chunk if kind in (1, 2) else pending + chunk    # 1 full, 2 first, 3 middle, 4 last
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            if record.WhichOneof("record_type") == "history":
                rows.append({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                             for item in record.history.item})
    return rows


def tensorboard_tags(run_dir: Path) -> dict[str, set]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    tags: dict[str, set] = {"scalars": set(), "images": set(), "tensors": set()}
    for d in {p.parent for p in (run_dir / "tensorboard").rglob("events.out.tfevents.*")}:
        acc = EventAccumulator(str(d), size_guidance={"images": 0})
        acc.Reload()
        for kind in tags:
            tags[kind] |= set(acc.Tags()[kind])
    return tags


def test_tensorboard_wandb_offline_jsonl_and_csv_hold_the_stage_metrics(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    for var in ("WANDB_DIR", "WANDB_PROJECT"):
        monkeypatch.delenv(var, raising=False)
    _train(tmp_path, _cfg("logging.trackers=[tensorboard,wandb,jsonl,csv]"))

    tb = tensorboard_tags(tmp_path)
    assert TRAIN_VAL | TEST <= tb["scalars"]
    assert "train/batch" in tb["images"] and "test/roc" in tb["images"] and "val/pr_curve" in tb["tensors"]

    rows = wandb_history(tmp_path)
    keys = set().union(*rows)
    assert TRAIN_VAL | TEST <= keys
    media = {k: r[k] for r in rows for k in r if k.endswith("/_type")}    # the image grid and the figures
    assert {media.get(f"{k}/_type") for k in ("train/batch", "test/roc", "test/confusion")} == {"image-file"}
    (folder,) = tmp_path.glob("wandb/offline-run-*/files")
    path = [r["train/batch/path"] for r in rows if "train/batch/path" in r][0]
    assert (folder / path).is_file() and any(k.startswith("val/pr_curve") for k in keys)
    last_auc = [r["val/auc"] for r in rows if "val/auc" in r][-1]

    lines = [json.loads(ln) for ln in (tmp_path / "tracking" / "scalars.jsonl").read_text().splitlines()]
    assert TRAIN_VAL | TEST <= set().union(*lines) and all("step" in ln and "time" in ln for ln in lines)
    assert [ln["val/auc"] for ln in lines if "val/auc" in ln][-1] == pytest.approx(last_auc)
    with open(tmp_path / "tracking" / "scalars.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == ["step", "time", "name", "value"]
    assert TRAIN_VAL | TEST <= {r["name"] for r in table}
    assert float([r["value"] for r in table if r["name"] == "val/auc"][-1]) == pytest.approx(last_auc)
    # the trainer's own log is unchanged
    assert any("val/auc" in json.loads(ln) for ln in (tmp_path / "metrics.jsonl").read_text().splitlines())


def test_mlflow_local_file_store_holds_the_stage_metrics(tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID"):
        monkeypatch.delenv(var, raising=False)
    _train(tmp_path, _cfg("logging.trackers=[mlflow]"))
    client = mlflow.tracking.MlflowClient(tracking_uri=(tmp_path / "mlruns").resolve().as_uri())
    (exp,) = [e for e in client.search_experiments() if e.name == trackers.PROJECT]
    (run,) = client.search_runs([exp.experiment_id])
    assert TRAIN_VAL | TEST <= set(run.data.metrics)
    assert run.data.params["optim.lr"] == "0.01" and run.info.run_name == "tiny-" + tmp_path.name
    assert np.isfinite(run.data.metrics["val/auc"])
