"""No silent toy data: production recipes refuse to run without a dataset root, the generated sample is
used only where a recipe (or ``--set data.sample=true``) asks for it, a run trained on it says so in its
summary, sidecar, report and at prediction, and data-loader workers never outnumber the usable cores."""
from __future__ import annotations

import json
import logging
import shutil
import warnings
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from evaluation.report import to_markdown
from launch.predict import main as predict_main
from launch.train import format_status
from launch.train import main as train_main
from tests.helpers.launch import REPO, one_thread
from utils.core.checkpoint import trained_on_sample
from utils.core.errors import UsageError
from utils.core.recipe import load_config, load_recipe
from utils.core.registry import DATASETS
from utils.data import workers
from utils.data.index import SAMPLE_NOTE, check_data_root, data_root, data_source
from utils.engine.setup import make_loader
from utils.orchestration import cli
from utils.orchestration.curriculum import defined_stages, resolve_stage
from utils.orchestration.cv import plan_cv
from utils.orchestration.predict import load_member
from utils.orchestration.stage import run_stage

CONFIGS = REPO / "launch" / "configs"
PRODUCTION = sorted(p for p in CONFIGS.glob("*.yaml") if p.name != "demo.yaml")
ASKING = [CONFIGS / "demo.yaml", *sorted((REPO / "tests" / "configs").glob("*.yaml"))]
WORKER_WARNING = "worker processes in total"


def _stages(recipes: list[Path]) -> list[tuple[Path, int]]:
    return [(r, s) for r in recipes for s in defined_stages(load_recipe(r))]


@pytest.fixture
def no_roots(monkeypatch, tmp_path):
    """No dataset root in the environment, the sample folder and the working directory in ``tmp_path``."""
    for _, adapter in DATASETS.items():
        if adapter.root_env:
            monkeypatch.delenv(adapter.root_env, raising=False)
    monkeypatch.delenv("DEEPFAKE_SAMPLE_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


# ------------------------------------------------------------------------------------------- refusal

def test_the_production_recipes_are_the_ones_expected():
    """Every shipped recipe but the demo counts as production (a new one is covered without editing)."""
    names = {p.name for p in PRODUCTION}
    assert {"curriculum.yaml", "ffpp_3class.yaml", "deepfakebench.yaml"} <= names and "demo.yaml" not in names
    assert {1, 2, 4} <= set(defined_stages(load_recipe(CONFIGS / "curriculum.yaml")))


@pytest.mark.parametrize("recipe,stage", _stages(PRODUCTION), ids=lambda v: getattr(v, "stem", str(v)))
def test_a_production_stage_without_a_root_is_refused_with_what_to_do(recipe, stage, no_roots):
    cfg = resolve_stage(load_recipe(recipe), "cm", stage, recipe=str(recipe))
    env = DATASETS.get(cfg.data.dataset).root_env
    with pytest.raises(UsageError) as err:
        check_data_root(cfg.data)
    message = str(err.value)
    assert "\n" not in message and f"no {cfg.data.dataset} root" in message
    assert env in message and "--set data.root=" in message and "make demo" in message


@pytest.mark.parametrize("stage", [1, 2, 4])
def test_train_refuses_each_curriculum_stage_in_one_line_exit_2_and_writes_nothing(stage, no_roots, capsys):
    root_logger = logging.getLogger()
    handlers, level = root_logger.handlers[:], root_logger.level   # the command sets up its own logging
    try:
        rc = cli.run(lambda: train_main(["--model", "cm", "--stage", str(stage), "--output-dir", "runs"]))
    finally:
        root_logger.handlers[:], root_logger.level = handlers, level
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert [line for line in err.splitlines() if line.startswith("error:")] == err.strip().splitlines()
    assert len(err.strip().splitlines()) == 1 and "make demo" in err
    assert list(no_roots.iterdir()) == []          # no runs/, no data/sample, no data/cache


def test_several_stages_are_all_checked_before_the_first_trains(no_roots, monkeypatch, capsys):
    """FF++'s root given, Celeb-DF's not: stage 1 must not start (``--check`` and a real run alike)."""
    (no_roots / "ffpp").mkdir()
    monkeypatch.setenv("FFPP_ROOT", str(no_roots / "ffpp"))
    for extra in (["--check"], []):
        argv = ["--model", "cm", "--stage", "1", "2", "--output-dir", "runs", *extra]
        assert cli.run(lambda: train_main(argv)) == 2
        assert "no celebdf root" in capsys.readouterr().err
    assert sorted(p.name for p in no_roots.iterdir()) == ["ffpp"]


def test_the_stage_runner_and_cross_validation_refuse_before_anything_is_written(no_roots):
    raw = load_recipe(CONFIGS / "curriculum.yaml")
    with pytest.raises(UsageError, match="no ffpp root"):
        run_stage(resolve_stage(raw, "cm", 1), 1, no_roots / "runs")
    with pytest.raises(UsageError, match="no celebdf root"):
        plan_cv(raw, "cm", stage=2, output_dir=no_roots / "cv")
    assert list(no_roots.iterdir()) == []


# ------------------------------------------------------------------------------------------- asking

@pytest.mark.parametrize("recipe,stage", _stages(ASKING), ids=lambda v: getattr(v, "stem", str(v)))
def test_the_demo_and_test_recipes_ask_for_the_sample_and_get_it(recipe, stage, no_roots, monkeypatch):
    monkeypatch.setenv("DEEPFAKE_SAMPLE_DIR", str(no_roots / "sample"))
    cfg = resolve_stage(load_recipe(recipe), "cm", stage, recipe=str(recipe))
    assert cfg.data.sample and data_root(cfg.data) == (no_roots / "sample" / cfg.data.dataset, True)
    # a root in the environment does not redirect a recipe that asks for the sample ...
    monkeypatch.setenv(DATASETS.get(cfg.data.dataset).root_env, str(no_roots / "elsewhere"))
    assert data_root(resolve_stage(load_recipe(recipe), "cm", stage).data)[1]
    # ... an explicit root does
    given = resolve_stage(load_recipe(recipe), "cm", stage, [f"data.root={no_roots / 'mine'}"])
    assert data_root(given.data) == (no_roots / "mine", False)


def test_set_data_sample_opts_a_production_recipe_in(no_roots):
    cfg = resolve_stage(load_recipe(CONFIGS / "curriculum.yaml"), "cm", 2, ["data.sample=true"])
    assert data_root(cfg.data) == (Path("data/sample/celebdf"), True)
    # what summaries, sidecars and reports record: an absolute root, so it still means something later
    assert data_source(cfg.data) == {"dataset": "celebdf", "root": str(no_roots / "data" / "sample" / "celebdf"),
                                     "sample": True}
    assert load_config(None, ["data.dataset=dfdc"]).data.sample is False          # the default refuses


# ------------------------------------------------------------------------------------------- the mark

def test_a_sample_trained_run_says_so_in_summary_sidecar_report_and_prediction(image_samples, tmp_path,
                                                                               monkeypatch, caplog, capsys):
    monkeypatch.setenv("DEEPFAKE_SAMPLE_DIR", str(image_samples))
    recipe = REPO / "tests" / "configs" / "images_3class.yaml"
    sets = [f"data.cache_root={tmp_path / 'cache'}", "trainer.epochs=1", "trainer.max_steps_per_epoch=2"]
    cfg = resolve_stage(load_recipe(recipe), "cm", 1, sets)
    with one_thread():
        summary = run_stage(cfg, 1, tmp_path / "runs", resume="never")
    rd = tmp_path / "runs" / "cm" / "stage1"
    mark = {"dataset": "imagefolder", "root": str(image_samples / "imagefolder"), "sample": True}
    assert summary["data"] == mark and json.loads((rd / "summary.json").read_text())["data"] == mark
    assert format_status(summary, "trained").endswith(f"data: {SAMPLE_NOTE}")
    sidecar = json.loads((rd / "best.json").read_text())
    assert sidecar["data"] == mark and trained_on_sample(sidecar)
    assert json.loads((rd / "eval" / "report.json").read_text())["data"] == mark
    assert f"- data: {SAMPLE_NOTE}" in (rd / "eval" / "report.md").read_text()
    photo = next((image_samples / "imagefolder").rglob("*.jpg"))
    root_logger = logging.getLogger()
    handlers, level = root_logger.handlers[:], root_logger.level   # the command sets up its own logging
    try:
        capsys.readouterr()
        assert cli.run(lambda: predict_main([str(photo), "--checkpoint", str(rd / "best.safetensors"),
                                             "--device", "cpu"])) == 0
    finally:
        root_logger.handlers[:], root_logger.level = handlers, level
    out = capsys.readouterr()
    assert "WARNING" in out.err and "trained on the generated sample data, not a real dataset" in out.err
    assert out.out.startswith(str(photo)) and "generated sample" not in out.out   # results stay clean

    # the same weights with a sidecar naming a real root: no warning, no mark
    real = tmp_path / "real"
    real.mkdir()
    shutil.copy(rd / "best.safetensors", real / "best.safetensors")
    sidecar["data"] = {"dataset": "imagefolder", "root": "/data/set", "sample": False}
    (real / "best.json").write_text(json.dumps(sidecar))
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        load_member(real / "best.safetensors")
    assert "sample" not in caplog.text and not trained_on_sample(sidecar)
    assert "data: sample" not in format_status({**summary, "data": sidecar["data"]}, "trained")
    report = json.loads((rd / "eval" / "report.json").read_text())
    assert "- data: imagefolder at /data/set" in to_markdown({**report, "data": sidecar["data"]}, None)


# ------------------------------------------------------------------------------------------- workers

def test_usable_cores_take_the_affinity_and_a_cgroup_quota(monkeypatch, tmp_path):
    v2 = tmp_path / "cpu.max"
    v1 = (tmp_path / "quota", tmp_path / "period")
    v2.write_text("150000 100000\n")
    assert workers.cgroup_cpus(v2, v1) == 2                       # 1.5 CPUs of quota: 2 workers
    v2.write_text("max 100000\n")
    assert workers.cgroup_cpus(v2, v1) is None
    v1[0].write_text("300000\n"), v1[1].write_text("100000\n")
    assert workers.cgroup_cpus(tmp_path / "absent", v1) == 3
    v1[0].write_text("-1\n")
    assert workers.cgroup_cpus(tmp_path / "absent", v1) is None
    monkeypatch.setattr(workers.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr(workers, "cgroup_cpus", lambda: None)
    assert workers.usable_cores() == 4
    monkeypatch.setattr(workers, "cgroup_cpus", lambda: 2)
    assert workers.usable_cores() == 2


def test_workers_are_capped_with_one_info_line(monkeypatch, caplog):
    monkeypatch.setattr(workers, "_reported", set())
    with caplog.at_level(logging.INFO, logger="utils.data.workers"):
        assert [workers.loader_workers(4, cores=2) for _ in range(3)] == [2, 2, 2]
        assert workers.loader_workers(2, cores=2) == 2 and workers.loader_workers(0, cores=2) == 0
    assert [r.getMessage() for r in caplog.records] == [
        "data.num_workers=4 capped at 2: this process can use 2 core(s)"]


def test_a_loader_of_a_4_worker_recipe_on_2_cores_starts_2_without_the_warning(monkeypatch):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1}, raising=False)   # torch reads it too
    monkeypatch.setattr(workers, "cgroup_cpus", lambda: None)
    cfg = load_config(None, ["data.num_workers=4", "data.batch_size=2"])
    data = TensorDataset(torch.zeros(8, 1))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loader = make_loader(data, cfg, world_size=1, train=True, cuda=False)
    assert loader.num_workers == 2 and not [w for w in caught if WORKER_WARNING in str(w.message)]
    with warnings.catch_warnings(record=True) as caught:                  # what the cap prevents
        warnings.simplefilter("always")
        DataLoader(data, batch_size=2, num_workers=4)
    assert [w for w in caught if WORKER_WARNING in str(w.message)]
