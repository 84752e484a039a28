"""ONNX graphs of exported models: what is exported, and the model that runs an exported graph.

:class:`GraphWrapper` turns a model's batch-dict contract into the tensors a graph takes: ``image``
(B×3×S×S uint8) or ``clip`` (B×T×3×S×S uint8), plus ``audio`` (B×n_mels×(T·mel_per_frame) log-mel)
and ``audio_mask`` (B) when the input spec asks for audio, with the batch axis dynamic; it returns the
``logits`` (B×k). The model's own normalisation is inside the graph, so the graph takes exactly what
the data pipeline produces.

An exported graph ``<name>.onnx`` has a sidecar ``<name>.json`` like a ``.safetensors`` checkpoint (the
checkpoint's, plus ``format: onnx`` and an ``onnx`` section: source, exporter, opset, inputs and the
parity measured on export). :func:`load_onnx` returns the same :class:`ExportedModel` as
:func:`~utils.core.checkpoint.load_exported`, its model an :class:`OnnxModel` that runs the graph on
onnxruntime behind the model contract (``forward(batch) -> {"logits"}``), so prediction takes either.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from utils.core.checkpoint import ExportedModel, read_sidecar, sidecar_path
from utils.core.config import config_from_dict
from utils.core.errors import CheckpointError, ConfigError, InputError
from utils.core.model import InputSpec

ONNX_PIP = "pip install 'deepfake-toolkit[onnx]' (or: pip install onnx onnxruntime onnxscript)"
ORT_TYPES = {"tensor(uint8)": np.uint8, "tensor(float)": np.float32, "tensor(double)": np.float64,
             "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(bool)": np.bool_}


class OnnxUnavailable(InputError):
    """An ONNX package this needs is not installed (the message has the install command)."""

    exit_code = 2


def require(*modules: str) -> None:
    """Refuse, with the install command, when a module of ``modules`` (onnx, onnxruntime…) is missing."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise OnnxUnavailable(f"ONNX export and prediction need {', '.join(missing)}, not installed here: "
                              f"{ONNX_PIP}")


def graph_inputs(spec: InputSpec) -> list[str]:
    """The graph's input names, in order, for a model with this input spec."""
    return ["image" if spec.clip_len == 1 else "clip"] + (["audio", "audio_mask"] if spec.audio else [])


class GraphWrapper(nn.Module):
    """A model as a function of tensors: (image | clip[, audio, audio_mask]) -> logits."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.names = graph_inputs(model.input_spec)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.model(dict(zip(self.names, inputs)))["logits"]


def _resize_bilinear_aa(g, image, output_size, align_corners, scale_factors):
    """ONNX form of ``aten::_upsample_bilinear2d_aa`` (``F.interpolate(..., mode="bilinear",
    antialias=True)``), which PyTorch's TorchScript-based exporter lacks: opset 18's ``Resize`` with
    ``antialias=1``; ``exclude_outside=1`` renormalises the filter at the borders as PyTorch does (without
    it the border pixels differ by ~0.04)."""
    from torch.onnx import symbolic_helper as sh   # lazy: the exporter's helpers, only while exporting
    if sh._maybe_get_const(align_corners, "b"):
        raise RuntimeError("antialiased bilinear resizing with align_corners=True has no ONNX form")
    empty = g.op("Constant", value_t=torch.tensor([], dtype=torch.float32))
    common = {"mode_s": "linear", "antialias_i": 1, "exclude_outside_i": 1,
              "coordinate_transformation_mode_s": "half_pixel"}
    if not sh._is_none(output_size):
        size = torch.tensor(sh._maybe_get_const(output_size, "is"), dtype=torch.int64)
        batch_channels = g.op("Slice", g.op("Shape", image), g.op("Constant", value_t=torch.tensor([0])),
                              g.op("Constant", value_t=torch.tensor([2])))
        sizes = g.op("Concat", batch_channels, g.op("Constant", value_t=size), axis_i=0)
        return g.op("Resize", image, empty, empty, sizes, **common)
    scales = torch.tensor([1.0, 1.0, *sh._maybe_get_const(scale_factors, "fs")], dtype=torch.float32)
    return g.op("Resize", image, empty, g.op("Constant", value_t=scales), **common)


def _adaptive_avg_pool2d(g, x, output_size):
    """ONNX form of ``aten::adaptive_avg_pool2d`` for any output size (PyTorch's exporter takes only global
    pooling and sizes that divide a known input): PyTorch's windows (cell i of n over m inputs spans
    floor(i·m/n) to ceil((i+1)·m/n)), computed in the graph from the input's shape, averaged one axis at a
    time (each window a Slice and a ReduceMean; the mean over a rectangle is the mean of its rows' means)."""
    from torch.onnx import symbolic_helper as sh   # lazy: the exporter's helpers, only while exporting
    out = list(sh._maybe_get_const(output_size, "is"))
    if out == [1, 1]:
        return g.op("GlobalAveragePool", x)
    if any(n is None for n in out):
        raise RuntimeError(f"adaptive average pooling to {out} (a size kept as is) has no ONNX form here")

    def const(*values: int):
        return g.op("Constant", value_t=torch.tensor(values, dtype=torch.int64))

    for axis, n_out in ((2, out[0]), (3, out[1])):
        n_in = g.op("Slice", g.op("Shape", x), const(axis), const(axis + 1))
        cells = []
        for i in range(n_out):
            start = g.op("Div", g.op("Mul", n_in, const(i)), const(n_out))
            stop = g.op("Div", g.op("Add", g.op("Mul", n_in, const(i + 1)), const(n_out - 1)), const(n_out))
            window = g.op("Slice", x, start, stop, const(axis))
            cells.append(g.op("ReduceMean", window, const(axis), keepdims_i=1))
        x = g.op("Concat", *cells, axis_i=axis)
    return x


TORCHSCRIPT_OPSET = 18   # Resize with antialias; ReduceMean with its axes as an input


def register_symbolics() -> None:
    """Teach the TorchScript-based exporter the operators it lacks that the models use (idempotent)."""
    torch.onnx.register_custom_op_symbolic("aten::_upsample_bilinear2d_aa", _resize_bilinear_aa,
                                           TORCHSCRIPT_OPSET)
    torch.onnx.register_custom_op_symbolic("aten::adaptive_avg_pool2d", _adaptive_avg_pool2d,
                                           TORCHSCRIPT_OPSET)


def open_session(model: str | os.PathLike | bytes, device: str | torch.device = "cpu"):
    """An onnxruntime session on ``device`` (CUDA where onnxruntime has it, else the CPU), using as many
    threads as torch does in this process."""
    import onnxruntime as ort   # lazy: an optional package (the onnx extra)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()
    opts.inter_op_num_threads = 1
    providers = ["CPUExecutionProvider"]
    if torch.device(device).type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    return ort.InferenceSession(model if isinstance(model, bytes) else str(model), sess_options=opts,
                                providers=providers)


def feed(session, batch: dict) -> dict[str, np.ndarray]:
    """The session's inputs from a batch dict, in the types the graph declares."""
    out = {}
    for node in session.get_inputs():
        if node.name not in batch:
            raise KeyError(f"the ONNX graph takes '{node.name}', which the batch does not hold")
        value = batch[node.name]
        value = value.detach().cpu().numpy() if torch.is_tensor(value) else np.asarray(value)
        out[node.name] = np.ascontiguousarray(value.astype(ORT_TYPES.get(node.type, value.dtype), copy=False))
    return out


class OnnxModel(nn.Module):
    """An ONNX graph on onnxruntime behind the model contract (inference only): ``forward(batch) ->
    {"logits"}``, with the ``input_spec`` and ``num_classes`` the data pipeline and prediction read."""

    def __init__(self, session, input_spec: InputSpec, num_classes: int):
        super().__init__()
        self.session, self.input_spec, self.num_classes = session, input_spec, int(num_classes)

    def forward(self, batch: dict) -> dict:
        (logits,) = self.session.run(["logits"], feed(self.session, batch))
        like = next((v for v in batch.values() if torch.is_tensor(v)), None)
        out = torch.from_numpy(logits)
        return {"logits": out.to(like.device) if like is not None else out}


def spec_from_sidecar(meta: dict, source: str) -> InputSpec:
    try:
        return InputSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in meta["input_spec"].items()})
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{source}: no usable input_spec in the sidecar ({e})") from None


def load_onnx(path: str | os.PathLike, device: str | torch.device = "cpu") -> ExportedModel:
    """An exported ONNX graph and its sidecar, ready to predict with (see module doc)."""
    path = Path(path)
    meta = read_sidecar(path)
    side = str(sidecar_path(path))
    if meta.get("format") != "onnx":
        raise CheckpointError(f"{side} is not the sidecar of an ONNX export (no 'format: onnx'); write "
                              "ONNX files with launch/export_onnx.py")
    require("onnxruntime")
    try:
        session = open_session(path, device)
    except Exception as e:   # noqa: BLE001 - onnxruntime's own error types: a file it cannot load
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(f"{path} is not a graph onnxruntime can load ({reason})") from None
    try:
        cfg = config_from_dict(meta.get("config") or {}, f"{side} [config]")
    except ConfigError as e:
        raise CheckpointError(str(e)) from None
    k = int(meta.get("num_classes") or len(meta.get("label_names") or ()) or 2)
    return ExportedModel(path, OnnxModel(session, spec_from_sidecar(meta, side), k).eval(), meta, cfg)
