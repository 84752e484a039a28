"""Bad input, said once: broken, empty, truncated and corrupt videos given to ``launch/predict.py`` and
``launch/extract_faces.py`` are each reported in one line that names the file and the reason, with
none of the decoders' own lines on stderr (decord's ``video_reader.cc: ERROR opening``, FFmpeg's
``moov atom not found``); a DFDC ``metadata.json`` that is not JSON is named in one error line.

The commands run as users run them (subprocesses), so native output written straight to file
descriptor 2 would show here.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.launch import REPO, run
from utils.data.video import write_video

pytestmark = pytest.mark.timeout(300)
NATIVE = ("video_reader.cc", "moov atom", "[mov,mp4", "[h264 @", "error while decoding", "Invalid NAL",
          "Traceback")


def _video(path: Path) -> bytes:
    frames = np.random.default_rng(0).integers(0, 256, (8, 64, 64, 3), dtype=np.uint8)
    return write_video(path, frames, fps=25.0).read_bytes()


def broken_videos(folder: Path) -> dict[str, tuple[Path, str]]:
    """``{name: (file, the reason its line must give)}``: not a video, empty, cut short (its index,
    the ``moov`` atom, is at the end), and a whole file with its picture data overwritten."""
    folder.mkdir(parents=True, exist_ok=True)
    whole = _video(folder / "whole.tmp")
    (folder / "whole.tmp").unlink()
    corrupt = bytearray(whole)
    for i in range(1000, len(corrupt) - 1000, 7):
        corrupt[i] = 0xFF
    files = {"junk": (b"this is not a video", "Invalid data"), "empty": (b"", "empty (0 bytes)"),
             "truncated": (whole[: len(whole) // 3], "Invalid data"), "corrupt": (bytes(corrupt), "")}
    out = {}
    for name, (data, reason) in files.items():
        (folder / f"{name}.mp4").write_bytes(data)
        out[name] = (folder / f"{name}.mp4", reason)
    return out


def no_native_lines(stderr: str) -> None:
    bad = [line for line in stderr.splitlines() if any(s in line for s in NATIVE)]
    assert not bad, bad


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A tiny untrained cm checkpoint: the files never reach it."""
    from utils.core.checkpoint import export_weights
    from utils.core.registry import create_model
    path = tmp_path_factory.mktemp("ck") / "cm.safetensors"
    export_weights(create_model("cm", size="tiny"), path, {
        "model": "cm", "model_kwargs": {"size": "tiny"}, "label_names": ["real", "fake"],
        "config": {"data": {"dataset": "ffpp"}}})
    return path


def test_predict_names_each_broken_video_once_without_decoder_noise(checkpoint, tmp_path):
    videos = broken_videos(tmp_path / "in")
    proc = run([sys.executable, str(REPO / "launch" / "predict.py"), *[str(p) for p, _ in videos.values()],
                "--checkpoint", str(checkpoint), "--frames", "4", "--device", "cpu"], check=False)
    assert proc.returncode == 1
    no_native_lines(proc.stderr)
    assert proc.stderr.strip().splitlines() == [f"{len(videos)} of {len(videos)} files could not be scored"]
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == len(videos), proc.stdout
    for (path, reason), line in zip(videos.values(), lines):
        assert line.startswith(f"{path}\tERROR\tunreadable: ") and reason in line, line
        assert "Errno" not in line and line.count(str(path)) <= 2, line     # no errno, the name not thrice
    proc = run([sys.executable, str(REPO / "launch" / "predict.py"), str(videos["truncated"][0]), "--json",
                "--checkpoint", str(checkpoint), "--frames", "4", "--device", "cpu"], check=False)
    no_native_lines(proc.stderr)
    assert "Invalid data" in json.loads(proc.stdout)["error"]


def dfdc_tree(root: Path) -> dict[str, tuple[Path, str]]:
    """Three DFDC chunks (train, val, test) whose videos are all broken."""
    videos = broken_videos(root / "videos")
    chunks = {0: ["junk", "empty"], 1: ["truncated"], 2: ["corrupt"]}
    out = {}
    for chunk, names in chunks.items():
        folder = root / f"dfdc_train_part_{chunk}"
        folder.mkdir(parents=True)
        meta = {}
        for k, name in enumerate(names):
            path, reason = videos[name]
            path.rename(folder / path.name)
            out[name] = (folder / path.name, reason)
            meta[path.name] = {"label": "REAL"} if k == 0 else {"label": "FAKE", "original": f"{names[0]}.mp4"}
        (folder / "metadata.json").write_text(json.dumps(meta))
    return out


def _extract(root: Path, cache: Path, check: bool = False):
    return run([sys.executable, str(REPO / "launch" / "extract_faces.py"), "--dataset", "dfdc", "--root",
                str(root), "--cache", str(cache), "--set", "data.train_chunks=[0]", "data.val_chunks=[1]",
                "data.test_chunks=[2]", "data.frames_per_video=2", "data.clips_per_video=0"], check=check)


def test_extract_faces_names_each_broken_video_once_without_decoder_noise(tmp_path):
    videos = dfdc_tree(tmp_path / "dfdc")
    proc = _extract(tmp_path / "dfdc", tmp_path / "cache", check=True)
    no_native_lines(proc.stderr)
    for name, (path, reason) in videos.items():
        mentions = [line for line in proc.stderr.splitlines() if path.name in line]
        assert len(mentions) == 1, (name, mentions)
        assert re.search(rf"skipping {re.escape(str(path))}: (unreadable|corrupt): ", mentions[0]), mentions[0]
        assert reason in mentions[0] and "Errno" not in mentions[0], mentions[0]
    assert f"failed {len(videos)}" in proc.stdout


@pytest.mark.parametrize("content,reason", [
    (b'{"a.mp4": {"label": "REAL"', r"metadata\.json:1: not valid JSON \(Expecting ',' delimiter\)"),
    (b"\xff\xfe\x00\x01 binary", r"metadata\.json: not valid JSON \(not UTF-8 text: byte 0xff at offset 0\)"),
    (b"", r"metadata\.json:1: not valid JSON \(Expecting value\)"),
], ids=["cut-short", "binary", "empty"])
def test_dfdc_metadata_that_is_not_json_is_named(tmp_path, content, reason, capsys):
    from launch.extract_faces import main
    from utils.orchestration import cli
    dfdc_tree(tmp_path / "dfdc")
    bad = tmp_path / "dfdc" / "dfdc_train_part_1" / "metadata.json"
    bad.write_bytes(content)
    assert cli.run(lambda: main(["--dataset", "dfdc", "--root", str(tmp_path / "dfdc"), "--cache",
                                 str(tmp_path / "cache"), "--set", "data.train_chunks=[0]",
                                 "data.val_chunks=[1]", "data.test_chunks=[2]"])) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {bad}") and "Traceback" not in err[0], err
    assert re.search(reason, err[0]), err[0]
    assert not (tmp_path / "cache").exists()                     # nothing written
