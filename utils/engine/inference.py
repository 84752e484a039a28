"""Run a detector over a DataLoader of batch-contract dicts and collect frame-level predictions.

Under ``accelerate`` every rank runs its shard and ``gather_for_metrics`` reassembles the whole split
on every rank, dropping the samples a distributed sampler duplicated to even out the last batch;
tensors and the string columns (video ids, methods) are gathered by separate calls so that both are
truncated the same way.
"""
from __future__ import annotations

import logging

import numpy as np
import torch

from utils.engine.predictions import FramePredictions

logger = logging.getLogger(__name__)

STRING_KEYS = ("video_id", "method")
EXTRA_KEYS = ("chunk",)


def _to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v
            for k, v in batch.items()}


def _strings(value, n: int) -> list[str]:
    if isinstance(value, torch.Tensor):
        return [str(v) for v in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return [str(value)] * n


def _score_batch(model: torch.nn.Module, batch: dict, accelerator) -> dict:
    """One batch's columns (probabilities, labels, frame numbers, strings), gathered across ranks."""
    if accelerator is not None:
        with accelerator.autocast():
            logits = model(batch)["logits"]
    else:
        logits = model(batch)["logits"]
    probs = torch.softmax(logits.float(), dim=-1)
    n = len(probs)
    labels = batch["label"].reshape(-1).long()
    frame_index = batch.get("frame_index", torch.full((n,), -1, device=probs.device))
    frame_index = torch.as_tensor(frame_index, device=probs.device).reshape(-1).long()
    strings = {k: _strings(batch.get(k, "unknown"), n) for k in STRING_KEYS}
    strings.update({k: _strings(batch[k], n) for k in EXTRA_KEYS if k in batch})
    if accelerator is not None:
        probs, labels, frame_index = accelerator.gather_for_metrics((probs, labels, frame_index))
        strings = {k: accelerator.gather_for_metrics(v) for k, v in strings.items()}
    return {"probs": probs.cpu().numpy(), "labels": labels.cpu().numpy(),
            "frame_index": frame_index.cpu().numpy(), **strings}


@torch.no_grad()
def predict_loader(model: torch.nn.Module, loader, accelerator=None, *, max_batches: int = 0,
                   device: str | torch.device | None = None, label_names: tuple[str, ...] | None = None
                   ) -> FramePredictions:
    """Softmax probabilities of ``model(batch)["logits"]`` for every sample of ``loader``.

    Args:
        model: a DeepfakeModel (or its prepared/wrapped form); put in eval mode here, left in eval mode.
        loader: yields batch dicts with ``image``/``clip``, ``label``, ``video_id``, ``method``,
            ``frame_index`` (and optionally ``chunk``).
        accelerator: an ``accelerate.Accelerator`` whose ``prepare``d loader this is; ``None`` runs
            single-process and moves batches to ``device`` (default: the model's device).
        max_batches: stop after this many batches (0 = all; quick validation during training).
    """
    model.eval()
    if accelerator is None:
        device = torch.device(device) if device is not None else next(model.parameters()).device
    parts: dict[str, list] = {}
    for i, batch in enumerate(loader):
        if max_batches and i >= max_batches:
            break
        cols = _score_batch(model, batch if accelerator is not None else _to_device(batch, device), accelerator)
        for k, v in cols.items():
            parts.setdefault(k, []).append(v)
    if not parts:
        logger.warning("predict_loader: the loader yielded no batch")
        k = getattr(model, "num_classes", 2)
        return FramePredictions(np.zeros((0, k)), np.zeros(0, int), [], [], np.zeros(0, int))
    kwargs = {"label_names": tuple(label_names)} if label_names else {}
    flat = {k: [s for part in parts[k] for s in part] for k in (*STRING_KEYS, *EXTRA_KEYS) if k in parts}
    return FramePredictions(np.concatenate(parts["probs"]), np.concatenate(parts["labels"]),
                            flat["video_id"], flat["method"], np.concatenate(parts["frame_index"]),
                            {k: flat[k] for k in EXTRA_KEYS if k in flat}, **kwargs)
