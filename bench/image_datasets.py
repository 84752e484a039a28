"""The image samples measured: generation time and size, file-level shortcuts, 3-class learning with and
without class weights, and the collapse guard's verdict on each.

    python bench/image_datasets.py [--out /tmp/bench-images] [--epochs 6] [--seeds 0 1]

Longer than a test: full epochs, several seeds. Prints one JSON object per measurement.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.helpers.shortcuts import shortcut_auc  # noqa: E402
from utils.core.recipe import load_recipe  # noqa: E402
from utils.data.sample import make_image_sample  # noqa: E402
from utils.orchestration.curriculum import resolve_stage  # noqa: E402
from utils.orchestration.stage import run_stage  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "tests" / "configs" / "images_3class.yaml"


def train(out: Path, sample: Path, loss: str, epochs: int, seed: int) -> dict:
    os.environ["DEEPFAKE_SAMPLE_DIR"] = str(sample)
    sets = [f"data.cache_root={out / 'cache'}", f"optim.loss={loss}", f"trainer.epochs={epochs}",
            f"trainer.seed={seed}"]
    cfg = resolve_stage(load_recipe(RECIPE), "cm", 1, sets)
    start = time.perf_counter()
    run_stage(cfg, 1, out / f"runs-{loss}-{seed}", resume="never")
    report = json.loads((out / f"runs-{loss}-{seed}" / "cm" / "stage1" / "eval" / "report.json").read_text())
    m = report["frame"]["metrics"]
    return {"loss": loss, "seed": seed, "epochs": epochs, "seconds": round(time.perf_counter() - start, 1),
            "macro_auc": m["auc"], "recall": [m[f"recall_{c}"] for c in range(3)],
            "auc_per_class": [m[f"auc_{c}"] for c in range(3)], "macro_f1": m["macro_f1"],
            "collapsed": report["collapsed"], "reasons": report["collapse_reasons"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="/tmp/bench-images")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1])
    ap.add_argument("--skip-training", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    sample = out / "sample"
    for name in ("imagefolder", "manifest"):
        start = time.perf_counter()
        root = make_image_sample(sample, name)
        size = sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
        print(json.dumps({"sample": name, "seconds": round(time.perf_counter() - start, 1),
                          "mb": round(size / 1e6, 2), "shortcut": shortcut_auc(root)}), flush=True)
    if args.skip_training:
        return
    for seed in args.seeds:
        for loss in ("weighted_ce", "ce"):
            print(json.dumps(train(out, sample, loss, args.epochs, seed)), flush=True)


if __name__ == "__main__":
    main()
