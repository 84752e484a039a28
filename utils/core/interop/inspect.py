"""What a checkpoint holds, without loading it into anything: heads, families, matching import formats.

Used by ``launch/inspect_checkpoint.py`` and by the importer's refusals (a headless checkpoint is
described by what it *does* hold, a checkpoint of another architecture by what it looks like).
Structure checks compare key names and shapes with the registered model built on PyTorch's ``meta``
device: no memory for weights, no initialisation, nothing run.
"""
from __future__ import annotations

import functools
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch

from utils.core.checkpoint import sidecar_path
from utils.core.interop.mapping import KeyMapping, fit, list_mappings
from utils.core.interop.reading import ForeignCheckpoint, read_foreign
from utils.core.registry import create_model

# the last named module of a classifier layer; numeric parts (Sequential indices) are skipped
_HEAD_NAME = re.compile(r"^(fc\d*|head|heads|last_linear|last_layer|classifier|cls|cls_head|logits|linear|"
                        r"out|output|pred|prediction)$")
_EMBEDDING = re.compile(r"(^|_)(embed|embeds|embedding|embeddings)$")
_IMAGENET_CLASSES = {1000, 1001, 10450, 11221, 11821, 21841, 21843}
MAX_DETECTOR_CLASSES = 16

# family signatures: every pattern must match at least one (unwrapped) key; first family that fits wins
FAMILIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("the original GenConViT ED (conv autoencoder + ConvNeXt, dead Swin embedder)",
     (r"encoder\.features\.0\.weight", r"decoder\.features\.8\.weight", r"backbone\.stem\.0\.weight")),
    ("the original GenConViT VAE (conv VAE + ConvNeXt, dead Swin embedder)",
     (r"encoder\.mu\.weight", r"convnext_backbone\.stem\.0\.weight")),
    ("an F3Net (DeepfakeBench layout: FAD head + 12-channel Xception)",
     (r"FAD_head\..+", r".*block12\.rep\..+")),
    ("an Xception (Cadene / timm legacy_xception / DeepfakeBench layout)",
     (r"(.+\.)?block12\.rep\.\d+\.pointwise\.weight",)),
    ("an EfficientNet (efficientnet_pytorch layout)", (r"(.+\.)?_blocks\.\d+\._depthwise_conv\.weight",)),
    ("a CLIP vision encoder (Hugging Face layout)",
     (r"(.+\.)?encoder\.layers\.\d+\.self_attn\.q_proj\.weight",
      r"(.+\.)?(embeddings\.patch_embedding\.weight|pre_layrnorm\.weight)")),
    ("a CLIP model (OpenAI layout)", (r"(.+\.)?visual\.transformer\.resblocks\.\d+\..+",)),
    ("this toolkit's GenConViT", (r"heads\.(ed|vae)\..+", r"convnext\..+", r"swin\..+")),
    ("this toolkit's specialist (EfficientNet + cue module)", (r"cue\..+", r"backbone\..+", r"head\..+")),
    ("an EfficientNet (timm layout)",
     (r"(.+\.)?blocks\.\d+\.\d+\.conv_dw\.weight", r"(.+\.)?conv_stem\.weight")),
    ("a Vision Transformer (timm layout)", (r"(.+\.)?blocks\.\d+\.attn\.qkv\.weight",)),
    ("a Swin Transformer (timm layout)",
     (r"(.+\.)?layers\.\d+\.blocks\.\d+\.attn\.relative_position_bias_table",)),
    ("a ConvNeXt (timm layout)", (r"(.+\.)?stages\.\d+\.blocks\.\d+\.conv_dw\.weight",)),
    ("a ResNet", (r"(.+\.)?layer4\.\d+\.conv1\.weight",)),
)


def guess_family(keys) -> str | None:
    keys = list(keys)
    for name, patterns in FAMILIES:
        if all(any(re.fullmatch(p, k) for k in keys) for p in patterns):
            return name
    return None


@dataclass
class Head:
    """A classifier layer found by name and shape: ``weight`` [classes, features] (+ ``bias``)."""

    weight: str
    shape: tuple[int, ...]
    bias: str | None = None

    @property
    def classes(self) -> int:
        return int(self.shape[0])

    @property
    def kind(self) -> str:
        if self.classes <= MAX_DETECTOR_CLASSES:
            return "detector"
        return "imagenet" if self.classes in _IMAGENET_CLASSES else "other"

    def line(self) -> str:
        b = f" + {self.bias}" if self.bias else ""
        return f"{self.weight} {list(self.shape)}{b} -> {self.classes} classes"


def _module_name(key: str) -> str | None:
    """The classifier-like module name in ``<path>.weight``, if any: ``fc2``, ``head`` (of ``head.4``,
    ``heads.ed.4``), ``last_linear`` (of ``last_linear.1``)... but not a layer inside a repeated block
    (``encoder.layers.3.mlp.fc2``) nor an embedding table."""
    parts = key.split(".")
    if parts[-1] != "weight" or len(parts) < 2:
        return None
    path = parts[:-1]
    if any(_EMBEDDING.search(p) for p in path):   # token/position embeddings are 2-D too
        return None
    for i, p in enumerate(path):
        if _HEAD_NAME.match(p):
            return None if any(q.isdigit() for q in path[:i]) else p
    return None


def find_heads(state: dict[str, torch.Tensor]) -> list[Head]:
    """Linear layers named like classifiers, outside repeated blocks, in key order; the hidden layers of
    an MLP head (a layer whose outputs another head layer reads, e.g. ``fc`` [500, 2000] before ``fc2``
    [2, 500]) are left out."""
    heads = []
    for k, v in state.items():
        if v.dim() == 2 and _module_name(k):
            bias = k[: -len("weight")] + "bias"
            heads.append(Head(k, tuple(v.shape), bias if bias in state else None))
    return [h for h in heads
            if not any(o is not h and o.shape[1] == h.shape[0] and o.shape[0] < h.shape[0] for o in heads)]


def detector_heads(state: dict[str, torch.Tensor]) -> list[Head]:
    """Heads with few outputs (a real/fake classifier), excluding hidden layers that feed another head."""
    heads = [h for h in find_heads(state) if h.kind == "detector"]
    return heads


def key_groups(keys: list[str], max_groups: int = 4) -> tuple[int, list[tuple[str, int]]]:
    """Group keys by their first ``d`` dotted parts, ``d`` the deepest level with ≤ ``max_groups`` groups."""
    best_depth, best = 1, Counter(".".join(k.split(".")[:1]) for k in keys)
    for depth in range(2, 6):
        groups = Counter(".".join(k.split(".")[:depth]) for k in keys)
        if len(groups) > max_groups or len(groups) == len(keys):   # too many, or nothing grouped any more
            break
        best_depth, best = depth, groups
    return best_depth, best.most_common()


def holdings(ck: ForeignCheckpoint) -> str:
    """One sentence: what the file holds, e.g. 'a CLIP vision encoder: 300 keys under
    module.backbone.encoder.*, …'."""
    family = guess_family(ck.state) or "an unrecognised network"
    _, groups = key_groups(ck.raw_keys)
    raw = set(ck.raw_keys)
    parts = [g if n == 1 and g in raw else f"{n} key{'s' if n != 1 else ''} under {g}.*"
             for g, n in groups[:4]]
    if len(groups) > 4:
        parts.append(f"{sum(n for _, n in groups[4:])} more")
    return f"{family}: " + ", ".join(parts)


# ------------------------------------------------------------------------------ structure checks
@functools.lru_cache(maxsize=32)
def _expected_shapes(arch: str, kwargs_json: str) -> dict[str, tuple]:
    with torch.device("meta"):
        model = create_model(arch, **json.loads(kwargs_json))
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def expected_shapes(arch: str, **kwargs) -> dict[str, tuple]:
    """``{key: shape}`` of the registered model ``arch`` (built on the meta device, cached)."""
    return _expected_shapes(arch, json.dumps(kwargs, sort_keys=True))


@dataclass
class MatchReport:
    """A dry run of one import mapping on a state dict."""

    mapping: KeyMapping
    n_keys: int
    n_mapped: int
    n_dropped: int
    unmapped: list[str]
    missing: list[str]
    unexpected: list[str]
    shape_mismatch: list[tuple[str, tuple, tuple]]
    collisions: list[tuple[str, str, str]]
    missing_required: list[str]
    head_found: bool
    dropped: list[dict] = field(default_factory=list)
    error: str = ""

    @property
    def fits(self) -> bool:
        return not (self.unmapped or self.missing or self.unexpected or self.shape_mismatch or self.collisions
                    or self.missing_required or self.error) and self.head_found

    @property
    def score(self) -> float:
        """Share of the source keys that land on a model key of the right shape (ranks the guesses)."""
        if not self.n_keys:
            return 0.0
        good = self.n_mapped - len(self.shape_mismatch) - len(self.unexpected) + self.n_dropped
        return max(0.0, good / self.n_keys) - 0.001 * len(self.missing)

    def problems(self, limit: int = 3) -> list[str]:
        out = []
        if self.error:
            out.append(self.error)
        if self.missing_required:
            out.append("missing " + "; ".join(self.missing_required))
        if not self.head_found:
            out.append(f"no classifier head ({self.mapping.head_hint or ', '.join(self.mapping.head)})")
        out += [f"{t}: checkpoint {list(a)} vs model {list(b)}"
                for t, a, b in self.shape_mismatch[:limit]]
        if len(self.shape_mismatch) > limit:
            out.append(f"… {len(self.shape_mismatch) - limit} more shape mismatches")
        if self.unmapped:
            out.append(f"{len(self.unmapped)} keys no rule maps, e.g. {', '.join(self.unmapped[:limit])}")
        if self.missing:
            out.append(f"{len(self.missing)} model keys not filled, e.g. {', '.join(self.missing[:limit])}")
        if self.unexpected:
            out.append(f"{len(self.unexpected)} mapped keys the model lacks, "
                       f"e.g. {', '.join(self.unexpected[:limit])}")
        if self.collisions:
            t, a, b = self.collisions[0]
            out.append(f"{a} and {b} both map to {t}")
        return out

    def summary(self) -> str:
        head = f"--format {self.mapping.format} --arch {self.mapping.arch}: "
        if self.n_mapped == 0:
            return head + f"no (none of its {self.n_keys} keys map)"
        counts = (f"{self.n_keys} keys -> {self.n_mapped} mapped, {self.n_dropped} dropped, "
                  f"{len(self.unmapped)} unmapped")
        if self.fits:
            return head + f"FITS ({counts}; loads strictly)"
        return head + f"no ({counts}): " + "; ".join(self.problems(2))


def dry_run(state: dict[str, torch.Tensor], mapping: KeyMapping) -> MatchReport:
    """Apply ``mapping`` and compare the result with the model's structure, without building weights."""
    res = mapping.apply(state)
    head_found = bool(mapping.head_keys(state))
    try:
        kwargs = mapping.kwargs_for(state)
        expected = expected_shapes(mapping.arch, **kwargs)
        f = fit(res.mapped, expected)
        error = ""
    except Exception as e:  # noqa: BLE001 - a broken guess must not stop the listing
        f, error = fit({}, {}), f"cannot build {mapping.arch}: {type(e).__name__}: {e}"
    return MatchReport(mapping, len(state), len(res.mapped), res.n_dropped, res.unmapped, f.missing,
                       f.unexpected, f.shape_mismatch, res.collisions, res.missing_required, head_found,
                       res.dropped_list(), error)


def rank_mappings(state: dict[str, torch.Tensor]) -> list[MatchReport]:
    """Every registered mapping's dry run, best fit first."""
    reports = [dry_run(state, m) for m in list_mappings()]
    return sorted(reports, key=lambda r: (not r.fits, -r.score))


def looks_like(state: dict[str, torch.Tensor], exclude: KeyMapping | None = None) -> str:
    """'deepfakebench f3net (all 290 keys fit)' or the family guess, for error messages."""
    ranked = [r for r in rank_mappings(state) if r.mapping is not exclude]
    fam = guess_family(state)
    if ranked and ranked[0].fits:
        r = ranked[0]
        return (f"{fam + ', ' if fam else ''}which imports with --format {r.mapping.format} --arch "
                f"{r.mapping.arch} (all {r.n_keys} keys mapped or dropped by a rule)")
    if fam:
        return fam
    if ranked and ranked[0].score > 0.5:
        r = ranked[0]
        return f"closest: --format {r.mapping.format} --arch {r.mapping.arch} ({r.score:.0%} of the keys fit)"
    return "no registered architecture"


# ------------------------------------------------------------------------------------ the report
def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} GB"


def inspect_file(path: str | Path) -> dict:
    """Everything ``launch/inspect_checkpoint.py`` prints, as a JSON-able dict."""
    ck = read_foreign(path)
    state = ck.state
    keys = list(state)
    info: dict = {
        "path": str(path), "file_format": ck.file_format, "container": ck.container,
        "file_size": ck.size_bytes, "wrappers_removed": ck.wrappers, "n_tensors": len(state),
        "n_values": ck.n_values, "tensor_bytes": ck.n_bytes, "dtypes": ck.dtypes(),
        "first_keys": [f"{k} {list(state[k].shape)}" for k in keys[:5]],
        "last_keys": [f"{k} {list(state[k].shape)}" for k in keys[-5:]],
        "groups": [f"{g}.* ({n})" for g, n in key_groups(ck.raw_keys)[1]],
        "family": guess_family(state),
    }
    heads = find_heads(state)
    det = [h for h in heads if h.kind == "detector"]
    info["head"] = det[-1].line() if det else None
    info["num_classes"] = det[-1].classes if det else None
    info["extra_heads"] = [h.line() + ("" if h.kind == "detector" else f" ({h.kind})")
                           for h in heads if not det or h is not det[-1]]
    info["holds"] = holdings(ck)
    sidecar = _sidecar(path)
    info["import_matches"], info["best_import"] = [], None
    if sidecar is not None:
        info["native"] = _native(state, sidecar)
        info["architecture"] = info["native"]["model"]
        return info   # already this toolkit's format: nothing to import
    ranked = rank_mappings(state)
    info["import_matches"] = [r.summary() for r in ranked]
    best = next((r for r in ranked if r.fits), None)
    info["best_import"] = f"--format {best.mapping.format} --arch {best.mapping.arch}" if best else None
    info["architecture"] = best.mapping.arch if best else None
    return info


def _sidecar(path: str | Path) -> dict | None:
    """The sidecar of this toolkit's exported weights next to ``path``, or None (foreign file)."""
    side = sidecar_path(path)
    if Path(path).suffix != ".safetensors" or not side.is_file():
        return None
    try:
        meta = json.loads(side.read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) and "format_version" in meta and meta.get("model") else None


def _native(state: dict[str, torch.Tensor], meta: dict) -> dict:
    """This toolkit's exported weights: the model in the sidecar, checked against its structure."""
    out = {"model": meta.get("model"), "model_kwargs": meta.get("model_kwargs", {}),
           "label_names": meta.get("label_names"), "input_spec": meta.get("input_spec"),
           "imported_from": (meta.get("source") or {}).get("path"),
           "source_format": (meta.get("source") or {}).get("format")}
    try:
        f = fit(state, expected_shapes(meta.get("model"), **meta.get("model_kwargs", {})))
        out["loads_strictly"] = f.ok
        if not f.ok:
            out["problems"] = ([f"missing {f.missing[:3]}"] if f.missing else []) + \
                ([f"unexpected {f.unexpected[:3]}"] if f.unexpected else []) + \
                [f"{k}: {list(a)} vs {list(b)}" for k, a, b in f.shape_mismatch[:3]]
    except Exception as e:  # noqa: BLE001
        out["loads_strictly"] = False
        out["problems"] = [f"cannot build model '{meta.get('model')}': {type(e).__name__}: {e}"]
    return out


def format_report(info: dict) -> str:
    """The human-readable form of :func:`inspect_file`."""
    wrappers = ", ".join(info["wrappers_removed"]) + " (removed)" if info["wrappers_removed"] else "none"
    dtypes = ", ".join(f"{k} x{v}" for k, v in info["dtypes"].items())
    lines = [f"file:        {info['path']} ({_fmt_bytes(info['file_size'])}, {info['file_format']})",
             f"container:   {info['container']}",
             f"wrappers:    {wrappers}",
             f"tensors:     {info['n_tensors']} ({info['n_values'] / 1e6:.2f} M values, "
             f"{_fmt_bytes(info['tensor_bytes'])}; {dtypes})",
             f"holds:       {info['holds']}",
             "first keys:  " + "\n             ".join(info["first_keys"]),
             "last keys:   " + "\n             ".join(info["last_keys"]),
             f"head:        {info['head'] or 'NONE: no classifier head found (nothing to predict with)'}"]
    if info["extra_heads"]:
        lines.append("extra heads: " + "\n             ".join(info["extra_heads"]))
    if "native" in info:
        n = info["native"]
        loads = "loads strictly" if n["loads_strictly"] else "DOES NOT LOAD: " + "; ".join(n["problems"])
        lines.append(f"native:      this toolkit's exported weights of model '{n['model']}' "
                     f"{json.dumps(n['model_kwargs'])}; labels {n['label_names']}; {loads}")
        if n.get("imported_from"):
            lines.append(f"             imported ({n.get('source_format')}) from {n['imported_from']}")
    if "native" in info:
        lines.append(f"import:      none needed (registered model '{info['architecture']}')")
        return "\n".join(lines)
    lines.append("import:      " + "\n             ".join(info["import_matches"]))
    if info["best_import"]:
        lines.append(f"best match:  registered model '{info['architecture']}': python "
                     f"launch/import_weights.py {info['best_import']} {info['path']} OUT.safetensors")
    else:
        lines.append("best match:  none of the registered import formats fits"
                     + ("" if info["head"] else " (and the file has no classifier head)"))
    return "\n".join(lines)
