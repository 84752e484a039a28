"""Grad-CAM heat maps for every model family, and galleries of them.

The maps come from ``pytorch-grad-cam`` (the ``grad-cam`` package: Grad-CAM, Grad-CAM++, HiResCAM,
XGrad-CAM, LayerCAM, through forward hooks, with a reshape hook for transformer tokens). What this
module adds is what a deepfake model needs around it:

* the model takes a batch dict; a small wrapper hands the library one tensor (images B×3×H×W, clips
  flattened to B×(T·3)×H×W) and rebuilds the batch (audio and masks ride along unchanged);
* which layers to explain comes from the model itself (:meth:`DeepfakeModel.cam_layers`): the last
  stage of each timm backbone (the EfficientNet of a specialist, GenConViT's ConvNeXt and Swin, any
  backbone a recipe names) and a specialist's cue map;
* layouts: N×C×h×w maps pass through, N×h×w×C maps (timm's Swin stages) are permuted, N×L×C tokens
  (ViTs; a class token is dropped) are reshaped to their square grid;
* rows: a layer that sees each input several times keeps the input's own rows (a clip's frames, one
  map per frame; GenConViT's image rows, not its reconstructions); a time-pooled map (a clip model's
  cue) is shown on every frame; a map that covers part of the crop (the audio-visual cue's mouth
  region) is placed there;
* the target: the score of the predicted class, ``fake`` or ``real``; for binary models the logit
  difference fake − real (its sign flipped for ``real``), which is the log-odds the threshold acts on.

Each map is ReLU'd and min-max scaled to [0, 1] by the library, per image and layer.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from evaluation.aggregate import VideoPredictions
from utils.core.model import CamLayer

METHODS = {"gradcam": "GradCAM", "gradcam++": "GradCAMPlusPlus", "hirescam": "HiResCAM", "xgradcam": "XGradCAM",
           "layercam": "LayerCAM"}
TARGETS = ("predicted", "fake", "real")
CELLS = ("TP", "FN", "TN", "FP")     # fakes called fake / real, reals called real / fake


def to_map(t: torch.Tensor, channels: int = 0) -> torch.Tensor:
    """A layer output as N×C×h×w (see module doc for the layouts)."""
    if t.ndim == 3:
        n, length, c = t.shape
        for prefix in range(0, 9):
            side = math.isqrt(length - prefix) if length > prefix else 0
            if side and side * side == length - prefix:
                return t[:, prefix:].reshape(n, side, side, c).permute(0, 3, 1, 2)
        raise ValueError(f"cannot lay {length} tokens on a square grid")
    if t.ndim == 4 and channels and t.shape[1] != channels and t.shape[-1] == channels:
        return t.permute(0, 3, 1, 2)
    return t


class _Logits(nn.Module):
    """``model(batch)["logits"]`` from the one tensor the CAM library holds (see module doc)."""

    def __init__(self, model: nn.Module, extra: dict, clip_len: int):
        super().__init__()
        self.model, self.extra, self.clip_len = model, extra, clip_len

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.clip_len > 1:
            return self.model({"clip": x.view(x.shape[0], self.clip_len, 3, *x.shape[-2:]), **self.extra})["logits"]
        return self.model({"image": x, **self.extra})["logits"]


class _Target:
    """What the map explains for one image (the library calls it on each output row)."""

    def __init__(self, cls: int, num_classes: int):
        self.cls, self.binary = cls, num_classes == 2

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        if self.binary:
            return (logits[1] - logits[0]) * (1.0 if self.cls == 1 else -1.0)
        return logits[self.cls]


@dataclass
class Explanation:
    """Heat maps of one batch: ``images`` B×T×H×W×3 uint8 (the input frames), ``maps`` per layer
    B×T×H×W in [0, 1], ``probs`` B×k, ``target`` the class each map explains."""

    images: np.ndarray
    maps: dict[str, np.ndarray]
    probs: np.ndarray
    target: np.ndarray
    method: str


def _cam_class(method: str):
    import pytorch_grad_cam   # lazy: heavy (matplotlib, scipy, ttach), needed only when explaining
    if method not in METHODS:
        raise ValueError(f"unknown CAM method '{method}'; choose one of {', '.join(METHODS)}")
    return getattr(pytorch_grad_cam, METHODS[method])


def _rows(cam: np.ndarray, b: int, t: int) -> np.ndarray:
    """R×H×W maps of one layer → B×T×H×W (see module doc)."""
    r = len(cam)
    if r % (b * t) == 0:
        return cam[: b * t].reshape(b, t, *cam.shape[1:])
    if r % b == 0:
        return np.repeat(cam[:b, None], t, axis=1)
    raise ValueError(f"a layer with {r} rows for a batch of {b}×{t} frames: cannot tell which are the input's")


def _place(maps: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """Maps computed over the whole crop, moved into ``box`` (shares of the crop), zero outside."""
    if tuple(box) == CamLayer.box:
        return maps
    h, w = maps.shape[-2:]
    top, left, bottom, right = (round(box[0] * h), round(box[1] * w), round(box[2] * h), round(box[3] * w))
    small = F.interpolate(torch.from_numpy(maps.reshape(-1, 1, h, w)), size=(bottom - top, right - left),
                          mode="bilinear", align_corners=False).numpy().reshape(*maps.shape[:-2], bottom - top, -1)
    out = np.zeros_like(maps)
    out[..., top:bottom, left:right] = small
    return out


def _input(model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict, int, int]:
    """(x for the library, the other batch keys, B, T)."""
    spec, device = model.input_spec, next(model.parameters()).device
    key = "clip" if spec.clip_len > 1 else "image"
    pixels = model.to_unit(batch[key].to(device))
    b, t = pixels.shape[0], spec.clip_len
    x = pixels.reshape(b, t * 3, *pixels.shape[-2:]) if t > 1 else pixels
    extra = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items() if k not in ("image", "clip")}
    return x, extra, b, t


def explain_batch(model: nn.Module, batch: dict, *, method: str = "gradcam", target: str = "predicted",
                  layers: list[str] | None = None) -> Explanation:
    """Heat maps of every cam layer of ``model`` (or the named ``layers``) for one batch."""
    if target not in TARGETS:
        raise ValueError(f"unknown CAM target '{target}'; choose one of {', '.join(TARGETS)}")
    cam_cls, available = _cam_class(method), model.cam_layers()
    if unknown := sorted(set(layers or []) - set(available)):
        raise ValueError(f"unknown cam layer(s) {unknown}; this model has {', '.join(available)}")
    model.eval()
    x, extra, b, t = _input(model, batch)
    wrapper = _Logits(model, extra, t)
    with torch.no_grad():
        probs = torch.softmax(wrapper(x).float(), dim=1).cpu().numpy()
    cls = probs.argmax(1) if target == "predicted" else np.full(b, 1 if target == "fake" else 0)
    targets = [_Target(int(c), probs.shape[1]) for c in cls]
    maps = {}
    for name in layers or list(available):
        layer = available[name]
        cam = cam_cls(wrapper, [layer.module], reshape_transform=lambda a, c=layer.channels: to_map(a, c))
        try:
            with torch.enable_grad():
                raw = cam(input_tensor=x, targets=targets)
        finally:
            cam.activations_and_grads.release()
        maps[name] = _place(_rows(raw, b, t), layer.box).astype(np.float32)
    frames = (x.detach().view(b, t, 3, *x.shape[-2:]).permute(0, 1, 3, 4, 2).clamp(0, 1) * 255)
    return Explanation(frames.round().to(torch.uint8).cpu().numpy(), maps, probs, cls, method)


def overlay(image: np.ndarray, heat: np.ndarray) -> np.ndarray:
    """The heat map in the jet colour map over an H×W×3 uint8 image (the library's own overlay)."""
    from pytorch_grad_cam.utils.image import show_cam_on_image   # lazy: see _cam_class
    return show_cam_on_image(image.astype(np.float32) / 255.0, heat, use_rgb=True, image_weight=0.55)


def inside_share(heat: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """(mean heat inside ``mask``, mean heat outside it)."""
    m = mask.astype(bool)
    return float(heat[m].mean()), float(heat[~m].mean())


def select_gallery(videos: VideoPredictions, threshold: float, per_cell: int) -> dict[tuple[str, str], list[str]]:
    """``{(source, cell): video ids}``: up to ``per_cell`` videos of each source in each cell (TP, FN,
    TN, FP at ``threshold``), the most confident first (highest P(fake) when called fake, lowest when
    called real)."""
    score, y, src = videos.probs[:, 1], videos.labels, videos.methods
    called = score >= threshold
    cells = {"TP": (y == 1) & called, "FN": (y == 1) & ~called, "TN": (y == 0) & ~called, "FP": (y == 0) & called}
    out = {}
    for s in sorted(set(src)):
        for cell, mask in cells.items():
            idx = np.flatnonzero(mask & (src == s))
            if len(idx):
                order = idx[np.argsort(-score[idx] if cell in ("TP", "FP") else score[idx], kind="stable")]
                out[(s, cell)] = videos.video_ids[order[:per_cell]].tolist()
    return out


def explanation_figure(rows: list[dict], title: str = ""):
    """One row per image (``{"image", "maps": {layer: H×W}, "caption"}``): the crop, then each layer's
    heat map over it."""
    from matplotlib.figure import Figure   # lazy: matplotlib is heavy and only needed for figures
    layers = list(rows[0]["maps"]) if rows else []
    ncols = 1 + len(layers)
    fig = Figure(figsize=(1.9 * ncols, 1.9 * max(1, len(rows)) + 0.4), layout="constrained")
    for i, row in enumerate(rows):
        for j, name in enumerate(["crop", *layers]):
            ax = fig.add_subplot(len(rows), ncols, i * ncols + j + 1)
            ax.imshow(row["image"] if name == "crop" else overlay(row["image"], row["maps"][name]))
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(name, fontsize=8)
            if j == 0:
                ax.set_ylabel(row["caption"], fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig
