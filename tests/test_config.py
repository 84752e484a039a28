"""Config: extends chains, --set overrides, unknown keys and wrong types name the key and the file."""
from __future__ import annotations

import pytest

from utils.core.config import ConfigError
from utils.core.recipe import load_config, save_config


def _write(path, text):
    path.write_text(text)
    return path


def test_extends_chain_and_set_override(tmp_path):
    _write(tmp_path / "base.yaml", "optim:\n  lr: 1e-4\n  loss: focal\ntrainer:\n  epochs: 6\n")
    _write(tmp_path / "mid.yaml", "extends: base.yaml\ntrainer:\n  epochs: 3\n")
    leaf = _write(tmp_path / "leaf.yaml", "extends: mid.yaml\ndata:\n  batch_size: 8\n")
    cfg = load_config(leaf, ["optim.lr=3e-4", "data.methods=[Deepfakes,FaceSwap]"])
    assert cfg.optim.lr == pytest.approx(3e-4)        # --set beats the chain; "3e-4" is a number
    assert cfg.optim.loss == "focal"                  # from the root of the chain
    assert cfg.trainer.epochs == 3                    # the middle overrides the root
    assert cfg.data.batch_size == 8 and cfg.data.options["methods"] == ["Deepfakes", "FaceSwap"]
    assert cfg.trainer.seed == 42                     # untouched defaults stay


def test_unknown_key_names_key_and_file(tmp_path):
    bad = _write(tmp_path / "bad.yaml", "optim:\n  learning_rate: 0.1\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*optim\.learning_rate"):
        load_config(bad)
    with pytest.raises(ConfigError, match="unknown section 'optimizer'"):
        load_config(_write(tmp_path / "bad2.yaml", "optimizer:\n  lr: 0.1\n"))


def test_wrong_type_names_key_and_file(tmp_path):
    bad = _write(tmp_path / "typed.yaml", "trainer:\n  epochs: six\n")
    with pytest.raises(ConfigError, match=r"typed\.yaml.*trainer\.epochs.*integer"):
        load_config(bad)
    with pytest.raises(ConfigError, match=r"--set.*logging\.tensorboard"):
        load_config(None, ["logging.tensorboard=maybe"])


def test_stage_sections_are_validated_and_loops_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"stages\.4.*data\.chunks"):
        load_config(_write(tmp_path / "s.yaml", "stages:\n  4:\n    data:\n      chunks: [1]\n"))
    _write(tmp_path / "a.yaml", "extends: b.yaml\n")
    _write(tmp_path / "b.yaml", "extends: a.yaml\n")
    with pytest.raises(ConfigError, match="loops"):
        load_config(tmp_path / "a.yaml")


def test_resolved_config_round_trips(tmp_path):
    cfg = load_config(None, ["model.name=tiny", "stages.1.optim.lr=0.5"])
    save_config(cfg, tmp_path / "run" / "config.yaml")
    again = load_config(tmp_path / "run" / "config.yaml")
    assert again == cfg
