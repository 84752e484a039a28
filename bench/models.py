"""Benchmark of every registered model at full size (not a test).

CPU: parameters, GFLOPs per sample (forward pass, counted by ``torch.utils.flop_counter``; FFTs are not
counted), forward latency at batch 1. CUDA, when a GPU is present: training samples/s (forward, loss,
backward, AdamW step), MFU (3 x forward FLOPs x samples/s over the GPU's dense bf16 peak) and peak
memory, for fp32, bf16 autocast + channels_last, and the same under ``torch.compile`` (inductor).

    python bench/models.py                              # all models; the CUDA table only on a GPU machine
    python bench/models.py --skip-cpu --json bench/results/models_cuda.json   # on a GPU: the table only
    python bench/models.py --models tm cm --threads 2 --no-compile
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from utils.core.registry import create_model, list_models


def gflops_per_sample(model: torch.nn.Module) -> float:
    """Forward GFLOPs (2 per multiply-add) of one sample."""
    batch = model.dummy_batch(1)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(batch)
    return counter.get_total_flops() / 1e9


def cpu_latency_ms(model: torch.nn.Module, repeats: int, warmup: int) -> float:
    """Median eval forward time at batch 1 on the CPU."""
    batch = model.dummy_batch(1)
    times = []
    with torch.inference_mode():
        for i in range(warmup + repeats):
            start = time.perf_counter()
            model(batch)
            if i >= warmup:
                times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def _to_device(batch: dict, device: str, channels_last: bool) -> dict:
    out = {}
    for key, value in batch.items():
        if torch.is_tensor(value):
            value = value.to(device, non_blocking=True)
            if channels_last and value.dim() == 4 and value.shape[1] == 3:
                value = value.contiguous(memory_format=torch.channels_last)
            out[key] = value
        else:
            out[key] = value
    return out


def cuda_train(name: str, batch_size: int, steps: int, warmup: int, bf16: bool, compile_: bool) -> dict:
    """Training samples/s and peak memory of ``name`` on the GPU (bf16 implies channels_last)."""
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    model = create_model(name).cuda().train()
    if bf16:
        model = model.to(memory_format=torch.channels_last)
    run = torch.compile(model) if compile_ else model
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    batch = _to_device(model.dummy_batch(batch_size), "cuda", channels_last=bf16)

    def step() -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
            loss = model.loss(run(batch), batch)["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    try:
        for _ in range(warmup):
            step()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        for _ in range(steps):
            step()
        torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
    except torch.cuda.OutOfMemoryError:
        return {"samples_per_s": None, "peak_gib": None, "note": "OOM"}
    return {"samples_per_s": batch_size * steps / elapsed,
            "peak_gib": torch.cuda.max_memory_allocated() / 2**30}


# dense bf16 tensor-core peaks (TFLOPS) of common training GPUs, for MFU; --peak-tflops overrides
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10": 125.0,
                    "4090": 165.0, "3090": 71.0}


def peak_tflops(device_name: str, given: float) -> float | None:
    if given:
        return given
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in device_name), None)


def _row(cells: list) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=None, help="default: every registered model")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--skip-cpu", action="store_true", help="only the CUDA table")
    parser.add_argument("--batch-size", type=int, default=32, help="CUDA training batch for image models")
    parser.add_argument("--clip-batch-size", type=int, default=8, help="CUDA training batch for clip models")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--gpu-warmup", type=int, default=5)
    parser.add_argument("--no-compile", action="store_true", help="leave out the torch.compile column")
    parser.add_argument("--peak-tflops", type=float, default=0.0, help="the GPU's dense bf16 peak, for MFU")
    parser.add_argument("--json", default="", help="write the results here")
    args = parser.parse_args()
    names = args.models or list_models()
    if unknown := sorted(set(names) - set(list_models())):
        parser.error(f"unknown models {unknown}; registered: {list_models()}")
    if args.threads:
        torch.set_num_threads(args.threads)
    results: dict = {name: {} for name in names}

    if not args.skip_cpu:
        print(f"CPU, {torch.get_num_threads()} threads, eval forward at batch 1 "
              f"({args.repeats} timed runs, median)")
        print(_row(["model", "input", "params (M)", "GFLOPs/sample", "CPU latency (ms)"]))
        print(_row(["---"] * 5))
        for name in names:
            model = create_model(name).eval()
            spec = model.input_spec
            shape = f"{spec.crop} {spec.clip_len}x{spec.image_size}px" + (" +audio" if spec.audio else "")
            r = results[name] = {"input": shape, "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
                                 "gflops": gflops_per_sample(model),
                                 "cpu_ms": cpu_latency_ms(model, args.repeats, args.warmup)}
            print(_row([name, shape, f"{r['params_m']:.1f}", f"{r['gflops']:.2f}", f"{r['cpu_ms']:.0f}"]),
                  flush=True)
            del model

    if torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32
        modes = [("fp32", False, False), ("bf16+cl", True, False)] + ([] if args.no_compile else
                                                                      [("bf16+cl+compile", True, True)])
        device = torch.cuda.get_device_name()
        peak = peak_tflops(device, args.peak_tflops)
        print(f"\nCUDA ({device}), training step (fwd+loss+bwd+AdamW): samples/s | MFU "
              f"(vs {peak or '?'} TFLOPS bf16 dense) | peak GiB")
        print(_row(["model", "batch"] + [m[0] for m in modes]))
        print(_row(["---"] * (2 + len(modes))))
        for name in names:
            clip = create_model(name, size="tiny").input_spec.clip_len > 1
            bs = args.clip_batch_size if clip else args.batch_size
            gflops = results[name].get("gflops") or gflops_per_sample(create_model(name).eval())
            cells = []
            for label, bf16, compile_ in modes:
                r = results[name][label] = cuda_train(name, bs, args.steps, args.gpu_warmup, bf16, compile_)
                if r["samples_per_s"] is not None and peak:
                    r["mfu"] = 3 * gflops * 1e9 * r["samples_per_s"] / (peak * 1e12)
                mfu = f"{100 * r['mfu']:.1f} %" if "mfu" in r else "n/a"
                cells.append(r.get("note") or f"{r['samples_per_s']:.0f} | {mfu} | {r['peak_gib']:.1f}")
            print(_row([name, bs] + cells), flush=True)
    else:
        print("\nCUDA: no GPU here; run this script on a CUDA machine for the training table.")

    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
