"""Plateau LR schedule and best-weight restoration, driven with chosen validation values."""
from __future__ import annotations

import pytest
import torch

from tests.helpers.tiny import TinyData, TinyNet, register
from evaluation.scoring import validation_metrics
from utils.core.recipe import load_config
from utils.engine.trainer import Trainer


def _trainer(tmp_path, *overrides):
    register()
    cfg = load_config(None, ["model.name=tiny", "data.num_workers=0", "logging.tensorboard=false",
                             "logging.progress_bar=false", "optim.lr=0.1", *overrides])
    return Trainer(TinyNet(), cfg, tmp_path, TinyData(16), TinyData(8, seed=3),
                   export_meta={"model": "tiny", "model_kwargs": {}}, validation=validation_metrics)


def test_plateau_drops_lr_after_patience_and_early_stop_restores_best(tmp_path):
    # PyTorch semantics: with patience p the LR drops at the (p+1)-th validation without improvement
    t = _trainer(tmp_path, "optim.plateau_patience=1", "optim.plateau_factor=0.5",
                 "trainer.early_stopping_patience=3", "trainer.epochs=10")
    lrs, snapshots = [], []
    for value in [0.70, 0.80, 0.75, 0.79, 0.78]:      # best at the 2nd validation
        with torch.no_grad():                          # every "epoch" moves the weights
            for p in t.raw_model.parameters():
                p.add_(torch.randn_like(p))
        snapshots.append({k: v.clone() for k, v in t.raw_model.state_dict().items()})
        t.end_of_epoch({"val/auc": value, "val/loss": 1.0})
        lrs.append(t.optimizer.param_groups[0]["lr"])
    assert lrs == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05])
    assert t.state.finished and t.state.stopped_early and t.state.best_epoch == 1
    assert t.state.bad_validations == 3 and t.state.best_metric == pytest.approx(0.80)
    t.finish()
    for k, v in t.raw_model.state_dict().items():
        assert torch.equal(v, snapshots[1][k]), f"{k} is not the best epoch's"


def test_nan_metric_never_counts_as_best(tmp_path):
    t = _trainer(tmp_path, "trainer.early_stopping_patience=2")
    t.end_of_epoch({"val/auc": float("nan"), "val/loss": 1.0})
    assert t.state.best_metric is None and t.state.bad_validations == 1
    with pytest.raises(KeyError, match="trainer.monitor 'val/auc'"):
        t.end_of_epoch({"val/loss": 1.0})
