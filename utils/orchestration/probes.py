"""Cue probes: does a specialist read the cue its name promises?

A *probe* is a split of real videos and the synthetic fakes of one kind made from them
(:mod:`utils.data.synthesis`): held-out identities, each fake paired to its real, the dataset's own
fakes left out. A specialist is trained on a probe's training reals and their twins through the stage
runner and scored on the probe's test split (:func:`probe_overrides`); :func:`probe_score` scores any
exported checkpoint on any probe, optionally with the cue destroyed at test time
(:mod:`utils.data.ablations`). Every probe's fakes differ from their reals in one cue only, so a high
score means the model reads that cue, and a fall to chance when the cue is destroyed shows it reads
nothing else.
"""
from __future__ import annotations

import logging
import os

import numpy as np
import torch
from accelerate import Accelerator
from sklearn.metrics import roc_auc_score
from torch.utils.data import DataLoader

from evaluation.bootstrap import bootstrap_ci
from utils.core.checkpoint import load_exported
from utils.data.ablations import ablate
from utils.data.datasets import build_dataset
from utils.data.index import split_records
from utils.engine.inference import predict_loader
from utils.orchestration.data import index_data, prepare_data
from utils.orchestration.evaluate import eval_config

logger = logging.getLogger(__name__)

PROBE_SPLITS = ("train", "val", "test")


def probe_overrides(kind: str) -> list[str]:
    """``--set`` values that turn a dataset into the probe of one synthesiser ``kind``."""
    return [f"data.synthesis.kinds=[{kind}]", "data.synthesis.ratio=1.0",
            f"data.synthesis.splits=[{','.join(PROBE_SPLITS)}]", "data.synthesis.real_only=true"]


class Ablated(torch.nn.Module):
    """A model whose every batch first has one cue destroyed (``ablation`` None: the model as it is)."""

    def __init__(self, model: torch.nn.Module, ablation: str | None):
        super().__init__()
        self.model, self.ablation = model, ablation

    def forward(self, batch: dict) -> dict:
        if self.ablation is not None:
            batch = ablate(self.ablation, batch, self.model.input_spec)
        return self.model(batch)


def video_auc(preds, n_boot: int = 300, seed: int = 0) -> dict:
    """Video AUC (mean P(fake) over each video's items) with a 95 % bootstrap interval over videos."""
    ids, inv = np.unique(preds.video_ids, return_inverse=True)
    p_fake = np.bincount(inv, preds.probs[:, 1]) / np.bincount(inv)
    labels = np.zeros(len(ids), np.int64)
    labels[inv] = preds.labels
    auc = float(roc_auc_score(labels, p_fake)) if len(set(labels)) == 2 else float("nan")
    ci = bootstrap_ci(p_fake, labels, n_boot=n_boot, seed=seed, metrics=("auc",))["auc"]
    return {"auc": auc, "lo": ci["lo"], "hi": ci["hi"], "n_videos": len(ids), "n_fake": int(labels.sum())}


def probe_score(checkpoint: str | os.PathLike, dataset: str, kind: str, ablation: str | None = None,
                acc: Accelerator | None = None, batch_size: int = 32, split: str = "test") -> dict:
    """Video AUC of an exported checkpoint on the ``kind`` probe of ``dataset`` (its ``split``), with
    the cue ``ablation`` destroyed at test time when given."""
    acc = acc or Accelerator(cpu=not torch.cuda.is_available())
    exported = load_exported(checkpoint, map_location=acc.device)
    spec = exported.input_spec
    cfg = eval_config(exported.config, dataset, overrides=probe_overrides(kind))
    cache, records = prepare_data(cfg, acc, index_data(cfg, acc), spec)
    ds = build_dataset(cache, split_records(records, split), spec, cfg.data, train=False)
    loader = acc.prepare(DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=0))
    model = Ablated(exported.model.eval(), ablation)
    with torch.no_grad():
        preds = predict_loader(model, loader, acc)
    out = video_auc(preds)
    logger.info("%s on the %s probe of %s%s: video AUC %.3f", exported.name, kind, dataset,
                f" ({ablation})" if ablation else "", out["auc"])
    return out
