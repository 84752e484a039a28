"""launch/predict.py on real footage: carphone clip, a photo, a corrupt file, a faceless image, ensembles."""
import json
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from evaluation.ensemble import save_weights
from utils.orchestration.predict import Predictor, expand_paths
from utils.core.checkpoint import export_weights
from utils.data.footage import astronaut, carphone_path
from utils.core.registry import create_model

ROOT = Path(__file__).resolve().parents[1]
THRESHOLD = 0.37


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("predict")
    torch.manual_seed(0)
    for name in ("genconvit_ed", "tm"):
        # the sidecar's run config says how the training cache sampled clips: predict does the same
        export_weights(create_model(name, size="tiny"), d / f"{name}.safetensors",
                       {"model": name, "model_kwargs": {"size": "tiny"}, "threshold": THRESHOLD,
                        "config": {"data": {"clips_per_video": 2, "clip_frames": 4, "margin": 0.3}}})
    (d / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    cv2.imwrite(str(d / "astronaut.png"), astronaut()[:, :, ::-1])
    cv2.imwrite(str(d / "noface.png"), np.full((160, 160, 3), 128, np.uint8))
    return d


def test_cli_scores_carphone_reports_bad_files_and_carries_on(files):
    paths = [str(carphone_path())] + [str(files / n) for n in ("corrupt.mp4", "noface.png", "astronaut.png")]
    proc = subprocess.run([sys.executable, "launch/predict.py", *paths, "--checkpoint",
                           str(files / "genconvit_ed.safetensors"), "--frames", "8", "--device", "cpu"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 4, proc.stdout + proc.stderr
    assert proc.returncode != 0
    for line, path in zip(lines, paths):
        assert line.startswith(path)
    for line in (lines[0], lines[3]):  # the carphone clip and the photo after the failures
        p = float(re.search(r"P\(fake\)=([0-9.]+)", line).group(1))
        assert 0.0 <= p <= 1.0
        assert f"threshold {THRESHOLD:.3f}" in line  # from the sidecar
        assert ("FAKE" if p >= THRESHOLD else "REAL") in line
    assert "8 frames, face found on 8" in lines[0]
    assert "ERROR" in lines[1] and "unreadable" in lines[1]
    assert "ERROR" in lines[2] and "no face" in lines[2]
    assert "2 of 4 files could not be scored" in proc.stderr


def test_json_output_and_fitted_ensemble_weights(files, capsys):
    from launch.predict import main

    ck = [str(files / "genconvit_ed.safetensors"), str(files / "tm.safetensors")]
    weights = save_weights(files / "ensemble.json", [1.0, 0.0], ck, threshold=0.6)
    rc = main([str(carphone_path()), str(files / "astronaut.png"), "--checkpoint", ck[0],
               "--checkpoint", ck[1], "--ensemble-weights", str(weights), "--json", "--frames", "4",
               "--device", "cpu"])
    video, image = (json.loads(line) for line in capsys.readouterr().out.strip().splitlines())
    assert rc == 1  # the image failed
    assert video["error"] is None and video["threshold"] == 0.6  # the weights file's threshold
    # weights (1, 0): the ensemble gives the first member's probability; the clip model scored too
    first = video["members"]["genconvit_ed:genconvit_ed.safetensors"]
    assert video["p_fake"] == pytest.approx(first, abs=1e-6)
    assert 0 <= video["members"]["tm:tm.safetensors"] <= 1 and video["label"] in ("REAL", "FAKE")
    assert video["n_frames"] == 4 + 2 * 4  # 4 spread frames + 2 runs of 4 (from the sidecar's config)
    # a clip model cannot score a still image: a clear error, not a crash
    assert image["p_fake"] is None and "clips of 4" in image["error"]


def test_folders_expand_to_media_files(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ("a.mp4", "sub/b.PNG", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in expand_paths([tmp_path])] == ["a.mp4", "b.PNG"]


@pytest.mark.gpu
def test_predict_on_gpu_matches_cpu(files):
    ck = [files / "genconvit_ed.safetensors"]
    cpu = next(Predictor(ck, device="cpu", frames=8).predict([carphone_path()]))
    gpu = next(Predictor(ck, device="cuda", frames=8).predict([carphone_path()]))
    assert gpu.ok and gpu.n_detected == cpu.n_detected
    assert gpu.p_fake == pytest.approx(cpu.p_fake, abs=2e-2)  # detector boxes may differ by a pixel on GPU
