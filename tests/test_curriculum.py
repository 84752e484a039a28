"""Data roots resolve the same way for training, the index builder and extract_faces."""
from __future__ import annotations

from utils.core.config import load_config
from utils.orchestration.curriculum import data_root
from utils.data.adapters import _resolve_root


def test_environment_beats_recipe_beats_sample(tmp_path, monkeypatch):
    env_root, recipe_root = tmp_path / "env", tmp_path / "recipe"
    env_root.mkdir()
    recipe_root.mkdir()
    monkeypatch.setenv("DEEPFAKE_SAMPLE_DIR", str(tmp_path / "sample"))
    monkeypatch.delenv("CELEBDF_ROOT", raising=False)
    bare = load_config(None, ["data.dataset=celebdf"])
    assert data_root(bare) == (tmp_path / "sample" / "celebdf", True)
    cfg = load_config(None, ["data.dataset=celebdf", f"data.root={recipe_root}"])
    assert data_root(cfg) == (recipe_root, False)
    assert _resolve_root(cfg.data, None) == recipe_root
    monkeypatch.setenv("CELEBDF_ROOT", str(env_root))
    assert data_root(cfg) == (env_root, False)
    assert _resolve_root(cfg.data, None) == env_root          # the index builder agrees with training
    assert _resolve_root(cfg.data, recipe_root) == recipe_root  # an explicit root always wins
