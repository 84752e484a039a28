"""Cue ablations: batch transforms that destroy one cue at test time and keep everything else.

A specialist that reads its cue must fall to chance when the cue is gone. Each ablation takes a batch
(the batch contract of :mod:`utils.core.model`: uint8 ``image`` B×3×S×S or ``clip`` B×T×3×S×S, ``audio``
and ``audio_mask``) and returns a new one:

* ``no_audio``: ``audio_mask`` = 0 (the audio-visual model uses its learned no-audio embedding);
* ``one_frame``: the middle frame of each clip repeated through it (no motion at all);
* ``shuffled``: the frames of each clip in a fixed random order (motion without its order);
* ``resized``: each image scaled by 0.5 (area) and back (bilinear): every compression and resampling
  trace on the native pixels is replaced by one and the same fresh resampling;
* ``flat_surround``: the context around the face (outside the central 1/``context_scale`` of the crop)
  replaced by the face region's mean colour: no scene left to compare the face's lighting with.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from utils.core.model import InputSpec

Ablation = Callable[[dict, InputSpec], dict]


def _pixels(batch: dict) -> tuple[str, torch.Tensor]:
    key = "clip" if "clip" in batch else "image"
    return key, batch[key]


def no_audio(batch: dict, spec: InputSpec) -> dict:
    if "audio_mask" not in batch:
        raise ValueError("no_audio needs a batch with audio (a model whose input spec reads audio)")
    return {**batch, "audio_mask": torch.zeros_like(batch["audio_mask"])}


def one_frame(batch: dict, spec: InputSpec) -> dict:
    clip = batch["clip"]
    return {**batch, "clip": clip[:, clip.shape[1] // 2:clip.shape[1] // 2 + 1].expand_as(clip).contiguous()}


def shuffled(batch: dict, spec: InputSpec) -> dict:
    clip = batch["clip"]
    order = torch.randperm(clip.shape[1], generator=torch.Generator().manual_seed(0))
    if torch.equal(order, torch.arange(len(order))):
        order = order.flip(0)
    return {**batch, "clip": clip[:, order]}


def resized(batch: dict, spec: InputSpec) -> dict:
    key, x = _pixels(batch)
    flat = x.reshape(-1, *x.shape[-3:]).float()
    size = x.shape[-1]
    small = F.interpolate(flat, size=(size // 2, size // 2), mode="area")
    back = F.interpolate(small, size=(size, size), mode="bilinear", align_corners=False)
    return {**batch, key: back.round().clamp(0, 255).to(x.dtype).reshape(x.shape)}


def flat_surround(batch: dict, spec: InputSpec) -> dict:
    key, x = _pixels(batch)
    h, w = x.shape[-2:]
    fh, fw = int(round(h / spec.context_scale)), int(round(w / spec.context_scale))
    top, left = (h - fh) // 2, (w - fw) // 2
    face = x[..., top:top + fh, left:left + fw]
    mean = face.float().mean(dim=(-2, -1), keepdim=True).round().to(x.dtype)
    out = mean.expand_as(x).clone()
    out[..., top:top + fh, left:left + fw] = face
    return {**batch, key: out}


ABLATIONS: dict[str, Ablation] = {"no_audio": no_audio, "one_frame": one_frame, "shuffled": shuffled,
                                  "resized": resized, "flat_surround": flat_surround}


def ablate(name: str, batch: dict, spec: InputSpec) -> dict:
    """``batch`` with the cue ``name`` destroyed (see the module doc); an unknown name lists the known."""
    if name not in ABLATIONS:
        raise KeyError(f"unknown ablation {name!r}; known: {', '.join(ABLATIONS)}")
    return ABLATIONS[name](batch, spec)
