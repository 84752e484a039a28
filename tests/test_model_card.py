"""The model card beside an exported checkpoint: what it says, from the sidecar and the report, and where
it goes."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np

from evaluation.model_card import card_path, toolkit_commit, write_model_card
from evaluation.scoring import build_report
from tests.helpers.tiny import TinyNet
from utils.core.checkpoint import export_weights
from utils.core.recipe import load_config
from utils.core.registry import DATASETS
from utils.data.index import SAMPLE_NOTE
from utils.engine.predictions import FramePredictions

ROOT = Path(__file__).resolve().parents[1]


def _checkpoint(folder: Path, stage: int, init: Path | None, sample: bool = False) -> Path:
    cfg = load_config(None, ["trainer.seed=7", "data.dataset=ffpp", "optim.lr=0.0003", "trainer.epochs=5"])
    path = folder / f"stage{stage}" / "best.safetensors"
    export_weights(TinyNet(), path, {
        "model": "tiny", "model_kwargs": {"width": 8}, "stage": stage, "init": str(init) if init else None,
        "config": cfg.to_dict(), "data": {"dataset": "ffpp", "root": "/data/ffpp", "sample": sample},
        "metrics": {"best_epoch": 3, "val/auc": 0.91, "val/balanced_acc": 0.84, "val/loss": 0.35},
        "threshold": 0.37, "threshold_frame": 0.41, "threshold_source": "validation"})
    return path


def _report() -> dict:
    rng = np.random.default_rng(0)
    methods = ["original"] * 40 + ["Deepfakes"] * 20 + ["Face2Face"] * 20
    labels = np.array([0] * 40 + [1] * 40)
    videos = np.repeat(np.arange(80), 4)
    p_fake = np.clip(labels[videos] * 0.4 + rng.uniform(0, 0.6, len(videos)), 0, 1)
    preds = FramePredictions(np.stack([1 - p_fake, p_fake], 1), labels[videos], [f"v{i}" for i in videos],
                             [methods[i] for i in videos], np.tile(np.arange(4), 80))
    report = build_report(preds, threshold={"video": 0.37, "frame": 0.41}, n_boot=50, seed=0,
                          threshold_source="validation", title="tiny stage2")
    report["data"] = {"dataset": "ffpp", "root": "/data/ffpp", "sample": False}
    return report


def test_card_has_model_input_training_figures_sources_seed_commit_and_limits(tmp_path):
    first = _checkpoint(tmp_path, 1, None)
    best = _checkpoint(tmp_path, 2, first)
    card = write_model_card(best, _report())
    assert card == best.parent / "README.md"
    text = card.read_text()
    assert text.startswith("---\nlibrary_name: deepfake-toolkit\n") and "datasets: [ffpp]" in text
    assert "model card of best.safetensors" in text and "# tiny — stage 2, ffpp" in text
    params = sum(v.numel() for v in TinyNet().state_dict().values())
    assert f"| stored values | {params:,} |" in text and "`tiny` {'width': 8}" in text
    assert "| input | face crop, 16 px, single frames |" in text
    assert "P(fake) ≥ 0.370 per video, ≥ 0.410 per frame (chosen on validation)" in text
    # training: data, the chain of stages, the recipe, validation at the exported epoch
    assert "- data: ffpp at /data/ffpp" in text
    assert f"stage 2 on ffpp at /data/ffpp, from `{first}`; stage 1 on ffpp at /data/ffpp, from random" \
        in text
    assert "5 epochs" in text and "lr 0.0003" in text
    assert "validation at the exported epoch (4): auc 0.910" in text
    # test figures with intervals, per-source rates
    assert "80 videos, 320 frames" in text
    assert re.search(r"\| video \| \d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\] \|", text)
    assert re.search(r"\| Deepfakes \| fake \| 20 \| TPR \d\.\d{3} \| \[", text)
    assert re.search(r"\| original \| real \| 40 \| FPR \d\.\d{3} \| \[", text)
    # seed and commit, limits
    assert "- seed: 7" in text
    commit = toolkit_commit()
    assert f"- code commit: {commit}" in text
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    assert commit.startswith(head.stdout.strip()) if head.returncode == 0 else commit == "unknown"
    others = [n for n in DATASETS.names() if n != "ffpp"]
    assert f"not tested on the other datasets the toolkit reads ({', '.join(others)})" in text
    assert "Fakes tested: Deepfakes, Face2Face" in text and "small test set (80 videos)" in text.lower()
    assert not [p for p in best.parent.iterdir() if ".tmp-" in p.name]


def test_an_untested_sample_checkpoint_says_so(tmp_path):
    best = _checkpoint(tmp_path, 1, None, sample=True)
    text = write_model_card(best).read_text()
    assert f"> {SAMPLE_NOTE}: a demonstration, not a detector." in text
    assert "it was not tested" in text and "Not tested: no evaluation report was found" in text
    assert "a demonstration of the toolkit, not a deepfake detector" in text


def test_a_readme_that_is_not_this_checkpoints_card_is_left_alone(tmp_path):
    best = _checkpoint(tmp_path, 1, None)
    readme = best.parent / "README.md"
    readme.write_text("# my notes\n")
    assert write_model_card(best) == best.parent / "best.README.md" and readme.read_text() == "# my notes\n"
    readme.unlink()
    assert write_model_card(best) == readme and card_path(best) == readme     # its own card: rewritten there
    assert write_model_card(best, _report()) == readme and "80 videos" in readme.read_text()
