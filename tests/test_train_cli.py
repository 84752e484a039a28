"""launch/train.py argument errors: exit 2, a message that says what is valid, nothing written."""
from __future__ import annotations

import sys

from tests.helpers.launch import REPO, run

TRAIN = str(REPO / "launch" / "train.py")


def test_unknown_model_exits_2_lists_models_and_writes_nothing(tmp_path):
    proc = run([sys.executable, TRAIN, "--model", "nosuch", "--stage", "1", "--output-dir", str(tmp_path / "runs")],
               check=False, cwd=tmp_path)
    assert proc.returncode == 2
    for name in ("genconvit", "genconvit_ed", "genconvit_vae", "bg", "av", "cm", "rr", "tm"):
        assert name in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_undefined_stage_lists_stages_and_shows_how_to_add_one(tmp_path):
    proc = run([sys.executable, TRAIN, "--model", "tm", "--stage", "3", "--output-dir", str(tmp_path / "runs")],
               check=False, cwd=tmp_path)
    assert proc.returncode == 2
    assert "defined stages: 1, 2, 4" in proc.stderr and "extends:" in proc.stderr and "3:" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_bad_override_and_missing_previous_stage(tmp_path):
    proc = run([sys.executable, TRAIN, "--model", "tm", "--stage", "1", "--set", "optim.lr=fast"],
               check=False, cwd=tmp_path)
    assert proc.returncode == 2 and "optim.lr" in proc.stderr
    proc = run([sys.executable, TRAIN, "--model", "tm", "--stage", "2", "--output-dir",
                str(tmp_path / "runs"), "--set", "data.sample=true"],   # past the data root check
               check=False, cwd=tmp_path)
    assert proc.returncode == 2
    assert "launch/train.py --model tm --stage 1" in proc.stderr
    assert not (tmp_path / "runs").exists()
