"""Benchmark: ONNX export parity of every registered model at ``size=tiny``.

Each model is built with random weights, exported as a checkpoint, then through
:func:`utils.orchestration.onnx_export.export_onnx` (what ``launch/export_onnx.py`` runs): a real batch of
the carphone clip built the way prediction builds one, the graph run on onnxruntime at that batch and at
batch 1, and compared with the PyTorch logits. At random initialisation the tiny heads give logits that
barely depend on the input, so by default the last linear layer is scaled until the logits spread by
about 1 over a batch of noise (``--raw`` keeps the weights as built): a difference of 1e-4 then means
something.

    python bench/onnx_parity.py [--models tm av] [--json bench/results/onnx_parity.json]

One row per model: input, exporter used, opset, graph size, the max |logit difference| (over the batch
and batch 1), the max |P(fake) difference|, the logits' spread on the check batch, and the wall time of
the whole export (decoding the clip, finding the face, exporting, checking).
"""
from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import torch

from utils.core.checkpoint import export_weights
from utils.core.fileio import atomic_write_json
from utils.core.registry import create_model, list_models
from utils.orchestration.onnx_export import DEFAULT_ATOL, export_onnx


def tiny_checkpoint(name: str, folder: Path, raw: bool) -> Path:
    torch.manual_seed(0)
    model = create_model(name, size="tiny").eval()
    if not raw:
        last = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
        with torch.no_grad():
            batch = model.dummy_batch(4, generator=torch.Generator().manual_seed(1))
            last.weight.mul_(1.0 / float(model(batch)["logits"].std(0).max()))
    path = folder / f"{name}.safetensors"
    export_weights(model, path, {"model": name, "model_kwargs": {"size": "tiny"},
                                 "config": {"data": {"clips_per_video": 2, "clip_frames": 4}}})
    return path


def _row(cells) -> str:
    widths = (24, 26, 12, 6, 9, 14, 14, 12, 9)
    return "  ".join(str(c).ljust(w) for c, w in zip(cells, widths))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=None, help="default: every registered model")
    ap.add_argument("--raw", action="store_true", help="keep the random weights as built (no head scaling)")
    ap.add_argument("--atol", type=float, default=DEFAULT_ATOL)
    ap.add_argument("--json", default="", help="write the results here")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    names = args.models or list_models()
    if unknown := sorted(set(names) - set(list_models())):
        ap.error(f"unknown models {unknown}; registered: {list_models()}")
    print(f"ONNX parity at size=tiny, random weights{'' if args.raw else ' (head scaled)'}, check batch from "
          f"the carphone clip, onnxruntime CPU, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(_row(["model", "inputs", "exporter", "opset", "MB", "max|dlogit|", "max|dP(fake)|", "logit std",
                "wall s"]))
    results = {}
    with tempfile.TemporaryDirectory(prefix="onnx-parity-") as tmp:
        for name in names:
            ck = tiny_checkpoint(name, Path(tmp), args.raw)
            start = time.perf_counter()
            try:
                meta = export_onnx(ck, Path(tmp) / f"{name}.onnx", atol=args.atol, batch_size=4, frames=4)
            except Exception as e:   # noqa: BLE001 - one model's failure is a row of the table
                results[name] = {"error": f"{type(e).__name__}: {e}"}
                print(_row([name, "ERROR", str(e)[:200]]), flush=True)
                continue
            onnx, par = meta["onnx"], meta["onnx"]["parity"]
            inputs = " ".join(f"{i['name']}{i['shape'][1:]}" for i in onnx["inputs"])
            results[name] = {"inputs": onnx["inputs"], "exporter": onnx["exporter"], "opset": onnx["opset"],
                             "mb": (Path(tmp) / f"{name}.onnx").stat().st_size / 1e6,
                             "export_s": time.perf_counter() - start, **par}
            r = results[name]
            print(_row([name, inputs[:26], r["exporter"], r["opset"], f"{r['mb']:.1f}",
                        f"{r['max_abs_diff']:.2e}", f"{r['max_abs_diff_p_fake']:.2e}", f"{r['logit_std']:.3f}",
                        f"{r['export_s']:.1f}"]), flush=True)
    if args.json:
        atomic_write_json(args.json, {"torch": torch.__version__, "atol": args.atol, "raw": args.raw,
                                      "models": results})


if __name__ == "__main__":
    main()
