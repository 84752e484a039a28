"""Data roots resolve by one rule everywhere: --set > environment > recipe; no root stops a run unless
it asks for the sample data (data.sample)."""
from __future__ import annotations

import pytest

from utils.core.errors import UsageError
from utils.core.recipe import load_config, load_recipe
from utils.data.adapters import DatasetLayoutError
from utils.data.index import build_index, data_root
from utils.orchestration.curriculum import resolve_stage


def test_set_beats_environment_beats_recipe_and_no_root_is_the_sample_only_when_asked(tmp_path, monkeypatch):
    env_root, recipe_root, set_root = (tmp_path / n for n in ("env", "recipe", "set"))
    for p in (env_root, recipe_root, set_root):
        p.mkdir()
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"data:\n  dataset: celebdf\n  root: {recipe_root}\n")
    monkeypatch.setenv("DEEPFAKE_SAMPLE_DIR", str(tmp_path / "sample"))
    monkeypatch.delenv("CELEBDF_ROOT", raising=False)
    bare = load_config(None, ["data.dataset=celebdf"])
    with pytest.raises(UsageError, match="no celebdf root given.*CELEBDF_ROOT.*--set data.root=.*make demo"):
        data_root(bare.data)
    asked = load_config(None, ["data.dataset=celebdf", "data.sample=true"])
    assert data_root(asked.data) == (tmp_path / "sample" / "celebdf", True)
    assert data_root(load_config(recipe).data) == (recipe_root, False)
    monkeypatch.setenv("CELEBDF_ROOT", str(env_root))
    assert data_root(load_config(recipe).data) == (env_root, False)
    assert data_root(load_config(recipe, [f"data.root={set_root}"]).data) == (set_root, False)


def test_stage_takes_the_environment_variable_of_its_own_dataset(tmp_path, monkeypatch):
    ffpp, celebdf = tmp_path / "ffpp", tmp_path / "celebdf"
    recipe = tmp_path / "c.yaml"
    recipe.write_text("data: {dataset: ffpp}\nstages:\n  1: {data: {dataset: ffpp}}\n  2: {data: {dataset: celebdf}}\n")
    monkeypatch.setenv("FFPP_ROOT", str(ffpp))
    monkeypatch.delenv("CELEBDF_ROOT", raising=False)
    monkeypatch.setenv("DEEPFAKE_SAMPLE_DIR", str(tmp_path / "sample"))
    raw = load_recipe(recipe)
    assert resolve_stage(raw, "tm", 1).data.root == str(ffpp)
    assert resolve_stage(raw, "tm", 2).data.root == ""          # FF++'s root never leaks into Celeb-DF
    monkeypatch.setenv("CELEBDF_ROOT", str(celebdf))
    assert resolve_stage(raw, "tm", 2).data.root == str(celebdf)
    assert resolve_stage(raw, "tm", 2, [f"data.root={ffpp}"]).data.root == str(ffpp)


def test_index_builder_agrees_with_training(tmp_path, monkeypatch):
    """build_index looks where data_root says, and an explicit root wins."""
    monkeypatch.delenv("DFDC_ROOT", raising=False)
    cfg = load_config(None, ["data.dataset=dfdc", f"data.root={tmp_path / 'missing'}"])
    for root, shown in ((None, "missing"), (tmp_path / "elsewhere", "elsewhere")):
        with pytest.raises(DatasetLayoutError, match=f"(?s){shown}.*Expected layout"):
            build_index(cfg.data, root)


def test_a_models_own_stage_section_applies_to_that_model_and_stage_only(tmp_path):
    """recipe < stage < models.<m> < models.<m>.stages.<k>: one model's learning rate at one stage."""
    recipe = tmp_path / "r.yaml"
    recipe.write_text("optim: {lr: 1.0e-3}\nstages:\n  1: {data: {dataset: ffpp}, optim: {lr: 5.0e-4}}\n"
                      "  2: {data: {dataset: celebdf}}\n"
                      "models:\n  cm: {optim: {lr: 2.0e-3}, stages: {2: {optim: {lr: 3.0e-4}}}}\n")
    raw = load_recipe(recipe)
    lr = {(m, k): resolve_stage(raw, m, k).optim.lr for m in ("cm", "tm") for k in (1, 2)}
    assert lr == {("cm", 1): 2e-3, ("cm", 2): 3e-4, ("tm", 1): 5e-4, ("tm", 2): 1e-3}
    assert resolve_stage(raw, "cm", 2, ["optim.lr=0.1"]).optim.lr == 0.1   # --set still wins
    recipe.write_text(recipe.read_text().replace("optim: {lr: 3.0e-4}", "optim: {lrr: 3.0e-4}"))
    with pytest.raises(Exception, match="lrr"):
        resolve_stage(load_recipe(recipe), "cm", 2)
