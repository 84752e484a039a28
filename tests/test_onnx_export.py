"""ONNX export: a tiny model of each input kind (image, clip, clip + audio) exported with a dynamic batch
and checked against PyTorch; prediction through onnxruntime gives the PyTorch P(fake); refusals leave
nothing behind."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from utils.core import onnx_io
from utils.core.checkpoint import export_weights, load_exported
from utils.core.errors import CheckpointError
from utils.core.registry import create_model
from utils.data.footage import carphone_path
from utils.orchestration import cli, onnx_export
from utils.orchestration.onnx_export import export_onnx

pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.usefixtures("one_thread")
KINDS = {"genconvit_ed": ["image"], "tm": ["clip"], "av": ["clip", "audio", "audio_mask"]}
# the exporter asked for, and the one that must have written the graph (the dynamo exporter is what rr needs)
EXPORTER = {"genconvit_ed": ("auto", "torchscript"), "tm": ("dynamo", "dynamo"), "av": ("auto", "torchscript")}
THRESHOLD = 0.37


def _checkpoint(folder: Path, name: str) -> Path:
    """Random weights, with the last linear layer scaled so that the logits vary by about 1 across a
    batch of noise (at random initialisation they barely depend on the input, and a comparison to 1e-4
    would then say little)."""
    torch.manual_seed(0)
    model = create_model(name, size="tiny").eval()
    last = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        batch = model.dummy_batch(4, generator=torch.Generator().manual_seed(1))
        spread = model(batch)["logits"].std(0).max()
        last.weight.mul_(1.0 / float(spread))
    path = folder / f"{name}.safetensors"
    export_weights(model, path, {"model": name, "model_kwargs": {"size": "tiny"}, "threshold": THRESHOLD,
                                 "threshold_frame": 0.4, "seed_note": "random weights",
                                 "config": {"data": {"clips_per_video": 2, "clip_frames": 4}}})
    return path


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[str, tuple[Path, Path, dict]]:
    folder = tmp_path_factory.mktemp("onnx")
    out = {}
    for name in KINDS:
        ck = _checkpoint(folder, name)
        path = folder / f"{name}.onnx"
        out[name] = (ck, path, export_onnx(ck, path, batch_size=4, frames=4, exporter=EXPORTER[name][0]))
    return out


@pytest.mark.parametrize("name", list(KINDS))
def test_each_input_kind_exports_with_a_dynamic_batch_and_matches_pytorch(exported, name):
    ck, onnx_path, meta = exported[name]
    parity = meta["onnx"]["parity"]
    assert parity["max_abs_diff"] <= 1e-4 and parity["batch"] >= 2
    assert parity["sample"] == str(carphone_path())
    assert [i["name"] for i in meta["onnx"]["inputs"]] == KINDS[name]
    assert meta["onnx"]["exporter"] == EXPORTER[name][1]
    assert all(i["shape"][0] == "batch" for i in meta["onnx"]["inputs"])
    side = json.loads(onnx_path.with_suffix(".json").read_text())
    assert side["format"] == "onnx" and side["threshold"] == THRESHOLD and side["threshold_frame"] == 0.4
    assert side["seed_note"] == "random weights"
    assert side["onnx"]["source_sha256"] == meta["onnx"]["source_sha256"]
    assert Path(meta["card"]).is_file()
    # another batch size than the export's, with real audio where the model takes it
    ours, theirs = load_exported(ck).model, onnx_io.load_onnx(onnx_path).model
    batch = ours.dummy_batch(3, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        ref = ours(batch)["logits"]
    got = theirs(batch)["logits"]
    assert got.shape == ref.shape == (3, 2) and ref.std(0).max() > 0.1      # the logits depend on the input
    assert (got - ref).abs().max() <= 1e-4


def test_predict_on_carphone_gives_the_pytorch_p_fake_through_onnxruntime(exported, capsys):
    from launch.predict import main
    ck, onnx_path, _ = exported["genconvit_ed"]
    results = {}
    for path in (ck, onnx_path):
        assert main([str(carphone_path()), "--checkpoint", str(path), "--json", "--frames", "8",
                     "--device", "cpu"]) == 0
        results[path.suffix] = json.loads(capsys.readouterr().out.strip())
    a, b = results[".safetensors"], results[".onnx"]
    assert b["threshold"] == a["threshold"] == THRESHOLD and b["n_detected"] == a["n_detected"] == 8
    assert abs(a["p_fake"] - b["p_fake"]) <= 1e-4 and a["label"] == b["label"]
    # a clip model and an audio model too, each checkpoint beside its ONNX export in one run
    from utils.orchestration.predict import Predictor
    for name in ("tm", "av"):
        ck, onnx_path, _ = exported[name]
        (res,) = Predictor([ck, onnx_path], frames=4).predict([carphone_path()])
        p = list(res.members.values())
        assert res.error is None and abs(p[0] - p[1]) <= 1e-4, res


def test_a_graph_off_by_more_than_the_tolerance_is_refused_and_nothing_is_left(exported, tmp_path,
                                                                              monkeypatch, capsys):
    from launch.export_onnx import main
    ck = exported["genconvit_ed"][0]
    out = tmp_path / "model.onnx"
    out.write_bytes(b"an earlier export")
    real = onnx_export.compare
    monkeypatch.setattr(onnx_export, "compare", lambda *a: {**real(*a), "max_abs_diff": 3e-3})
    rc = cli.run(lambda: main([str(ck), str(out), "--frames", "4", "--batch-size", "4",
                               "--exporter", "torchscript"]))
    err = capsys.readouterr().err
    assert rc == 1 and "differs from PyTorch by 0.003" in err and "refused, nothing was written" in err
    assert out.read_bytes() == b"an earlier export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]       # no temporary, no sidecar


def test_missing_onnx_packages_and_foreign_sidecars_are_refused(exported, tmp_path, monkeypatch):
    ck, onnx_path, _ = exported["genconvit_ed"]
    real = onnx_io.importlib.util.find_spec
    monkeypatch.setattr(onnx_io.importlib.util, "find_spec",
                        lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    with pytest.raises(onnx_io.OnnxUnavailable, match=r"onnxruntime, not installed here: pip install") as e:
        export_onnx(ck, tmp_path / "x.onnx")
    assert e.value.exit_code == 2 and not list(tmp_path.iterdir())
    monkeypatch.undo()
    stray = tmp_path / "stray.onnx"
    stray.write_bytes(onnx_path.read_bytes())
    stray.with_suffix(".json").write_text(json.dumps({"model": "genconvit_ed"}))
    with pytest.raises(CheckpointError, match="not the sidecar of an ONNX export"):
        onnx_io.load_onnx(stray)


class _Resizes(torch.nn.Module):
    def forward(self, x):
        down = torch.nn.functional.interpolate(x, size=(40, 40), mode="bilinear", antialias=True)
        up = torch.nn.functional.interpolate(x, scale_factor=1.5, mode="bilinear", antialias=True)
        pooled = [torch.nn.functional.adaptive_avg_pool2d(down[:, :, :7, :10], size).flatten(1)
                  for size in ((4, 3), (7, 5), (1, 1), (2, 10))]
        return torch.cat([down.flatten(1), up.mean((2, 3)), *pooled], 1)


def test_resizing_and_adaptive_pooling_have_onnx_forms_that_match_pytorch(tmp_path):
    """What the TorchScript exporter lacks: F.interpolate(..., antialias=True) as opset 18 Resize, and
    adaptive average pooling to sizes that do not divide the input (7 -> 4, 10 -> 3)."""
    onnx_io.register_symbolics()
    x = torch.rand(2, 3, 112, 100)
    path = tmp_path / "resize.onnx"
    with onnx_export.quiet_exporter():
        torch.onnx.export(_Resizes(), (x,), str(path), dynamo=False, opset_version=onnx_io.TORCHSCRIPT_OPSET,
                          input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "b"}, "y": {0: "b"}})
    session = onnx_io.open_session(path)
    for batch in (x, torch.rand(5, 3, 112, 100)):
        (got,) = session.run(["y"], {"x": batch.numpy()})
        assert abs(got - _Resizes()(batch).numpy()).max() <= 1e-5
