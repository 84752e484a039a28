"""Imported checkpoints through every command: predict, evaluate, an Xception + F3Net ensemble with weights
fitted on validation, and ``train.py --init`` — on the bundled sample data (FF++ Deepfakes, one frame per
video, a few videos per split: the smallest pieces that still exercise the whole path)."""
from __future__ import annotations

import json
import sys

import pytest
import torch
from safetensors.torch import load_file

from launch.diagnose import main as diagnose_main
from launch.evaluate import main as evaluate_main
from launch.import_weights import main as import_main
from launch.predict import main as predict_main
from tests.helpers import upstream as up
from tests.helpers.launch import REPO, run
from utils.data.footage import carphone_path
from utils.orchestration import cli

pytestmark = [pytest.mark.timeout(600), pytest.mark.usefixtures("one_thread")]
# the same data settings everywhere, so every command shares one small face-crop cache (stored at 256 px:
# the DeepfakeBench networks take 256-px inputs); imported weights carry no data settings, so the sample
# is asked for explicitly
DATA = ["data.sample=true", "data.cache_size=256", "data.methods=[Deepfakes]", "data.frames_per_video=1",
        "data.clips_per_video=0", "data.clip_frames=0", "data.max_videos_per_split=4", "data.num_workers=0",
        "data.batch_size=4"]


def _run(main, argv) -> int:
    """A command as its ``__main__`` runs it: errors become one line and an exit status."""
    return cli.run(lambda: main(argv))


@pytest.fixture(scope="module")
def env(sample_data, tmp_path_factory):
    """Imported xception and f3net checkpoints (seeded DeepfakeBench-layout weights) and a cache root."""
    if up.cadene_xception_module() is None:
        pytest.skip("pretrainedmodels (test extra) provides the upstream Xception")
    d = tmp_path_factory.mktemp("interop_eval")
    cks = {}
    for arch, seed in (("xception", 0), ("f3net", 1)):
        torch.manual_seed(seed)
        ref = up.DFBXceptionDetector(fad=arch == "f3net")
        up.randomise(ref, (up.dfb_inputs(4, 256 if arch == "f3net" else 128, seed=5) - 0.5) / 0.5, seed=seed)
        src = up.save_plain(ref.state_dict(), d / f"dfb_{arch}.pth")
        cks[arch] = d / arch / "imported.safetensors"
        assert _run(import_main, ["--format", "deepfakebench", "--arch", arch, str(src), str(cks[arch]),
                                  "-q"]) == 0
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DEEPFAKE_SAMPLE_DIR", str(sample_data))
        yield {"dir": d, "cks": cks, "cache": ["--set", f"data.cache_root={d / 'cache'}", *DATA],
               "sample": sample_data}


def test_evaluate_an_imported_checkpoint_full_report(env, capsys):
    out = env["dir"] / "eval_xception"
    rc = _run(evaluate_main, ["--checkpoint", str(env["cks"]["xception"]), "--dataset", "ffpp",
                              "--split", "test", "--out", str(out), "--n-boot", "20", *env["cache"]])
    rep = json.loads((out / "report.json").read_text())
    assert rc == (3 if rep["collapsed"] else 0), rc   # a random-weight model may look collapsed: then 3
    assert rep["title"] == "xception on ffpp/test" and rep["video"]["n"] == 4 and rep["frame"]["n"] == 4
    assert rep["threshold"]["source"] == "validation"
    assert set(rep["breakdown"]["method"]) == {"Deepfakes", "original"}
    assert (out / "roc.png").is_file() and (out / "predictions_test.npz").is_file()
    assert ("MODEL COLLAPSE" in capsys.readouterr().err) == (rc == 3)


def test_xception_f3net_ensemble_fitted_on_validation_then_predict(env, capsys):
    cks = [str(env["cks"]["xception"]), str(env["cks"]["f3net"])]
    out = env["dir"] / "ensemble"
    rc = _run(evaluate_main, ["--checkpoint", cks[0], "--checkpoint", cks[1], "--dataset", "ffpp", "--out",
                              str(out), "--fit-ensemble", "--n-boot", "0", *env["cache"]])
    saved = json.loads((out / "ensemble_weights.json").read_text())
    assert rc == (3 if json.loads((out / "report.json").read_text())["collapsed"] else 0), rc
    assert len(saved["weights"]) == 2 and sum(saved["weights"]) == pytest.approx(1.0)
    # 4 val videos indexed; one whose single sampled frame shows no face is left out of the cache
    assert saved["fitted_on"] == "val" and 3 <= saved["n_videos"] <= 4
    rep = json.loads((out / "report.json").read_text())
    assert rep["title"] == "xception, f3net on ffpp/test" and rep["video"]["n"] == 4
    capsys.readouterr()
    rc = _run(predict_main, [str(carphone_path()), "--checkpoint", cks[0], "--checkpoint", cks[1],
                             "--ensemble-weights", str(out / "ensemble_weights.json"), "--frames", "2",
                             "--device", "cpu", "--json"])
    res = json.loads(capsys.readouterr().out.strip())
    assert rc == 0 and res["error"] is None and res["n_frames"] == 2
    assert set(res["members"]) == {"xception:imported.safetensors", "f3net:imported.safetensors"}
    w, members = saved["weights"], res["members"]
    mixed = w[0] * members["xception:imported.safetensors"] + w[1] * members["f3net:imported.safetensors"]
    assert res["p_fake"] == pytest.approx(mixed, abs=1e-6)
    assert res["threshold"] == pytest.approx(saved["threshold"])


def test_train_init_from_an_imported_checkpoint(env, tmp_path):
    """Stage 1 of the (test) curriculum starts from the imported weights and trains them."""
    ck = env["cks"]["xception"]
    cmd = [sys.executable, str(REPO / "launch" / "train.py"), "--model", "xception", "--stage", "1",
           "--config", str(REPO / "tests" / "configs" / "e2e.yaml"), "--init", str(ck),
           "--output-dir", str(tmp_path), *env["cache"], "trainer.max_steps_per_epoch=1",
           "trainer.val_max_batches=1", "trainer.epochs=1", "data.max_videos_per_split=2",
           "logging.tensorboard=false"]
    proc = run(cmd, env={"DEEPFAKE_SAMPLE_DIR": str(env["sample"])}, timeout=600)
    assert "[xception stage 1] trained" in proc.stdout
    best = tmp_path / "xception" / "stage1" / "best.safetensors"
    meta = json.loads(best.with_suffix(".json").read_text())
    assert meta["model"] == "xception" and meta["init"] == str(ck)
    before, after = load_file(str(ck)), load_file(str(best))
    assert before.keys() == after.keys()
    assert not torch.equal(before["head.weight"], after["head.weight"])   # trained from there...
    moved = float((before["backbone.conv1.weight"] - after["backbone.conv1.weight"]).abs().max())
    assert moved < 0.05   # ...not from a fresh initialisation


def test_diagnose_on_a_labelled_split(env, capsys):
    rc = _run(diagnose_main, ["--checkpoint", str(env["cks"]["xception"]), "--dataset", "ffpp",
                              "--split", "val", "--no-real-faces", "--json", *env["cache"]])
    d = json.loads(capsys.readouterr().out)
    n = d["split"]["n_videos"]   # 4 indexed, less any whose single sampled frame shows no face
    assert 3 <= n <= 4 and d["split"]["n_frames"] == n and len(d["split"]["label_share"]) == 2
    assert d["stats"]["n_inputs"] == 12 + n
    # a random-weight model either discriminates somewhat or is flagged by the labelled collapse check
    assert rc == (3 if d["flagged"] else 0)
    assert all(f.startswith("on ffpp/val") or "one class" in f or "depend" in f for f in d["flags"])
