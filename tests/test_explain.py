"""Grad-CAM: launch/explain.py for every registered model, and heat where a trained model's cue is.

Every model family goes through the command on real footage (the carphone clip: face detection,
the model's crop policy, its cam layers). A tiny ``cm`` trained on face crops whose fakes are
JPEG-recompressed in the mouth-and-chin region only must put more heat inside that region than
outside it.
"""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from evaluation.explain import explain_batch, inside_share, select_gallery, to_map
from evaluation.aggregate import aggregate
from utils.core.backbone import create_backbone
from utils.core.checkpoint import export_weights
from utils.core.model import DeepfakeModel, InputSpec
from utils.core.registry import create_model, list_models
from utils.data.footage import carphone_path
from utils.data.video import read_frames
from utils.engine.predictions import FramePredictions

REGION = (slice(32, 56), slice(16, 48))   # rows, columns of a 64x64 crop: mouth and chin


@pytest.fixture(autouse=True)
def quiet_and_one_thread():
    """One torch thread (two on a shared 2-core machine contend ~10x slower), and the log handler the
    command installs removed afterwards (it writes to the captured stream the test closes)."""
    import logging
    threads, handlers = torch.get_num_threads(), logging.getLogger().handlers[:]
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    logging.getLogger().handlers[:] = handlers


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    d = tmp_path_factory.mktemp("explain")
    out = {}
    for name in list_models():
        torch.manual_seed(0)
        out[name] = export_weights(create_model(name, size="tiny"), d / f"{name}.safetensors",
                                   {"model": name, "model_kwargs": {"size": "tiny"}, "threshold": 0.5,
                                    "config": {"data": {"clips_per_video": 1, "clip_frames": 4}}})
    return out


@pytest.mark.parametrize("name", list_models())
def test_explain_writes_finite_non_constant_maps_for_every_model(name, checkpoints, tmp_path, capsys):
    from launch.explain import main
    assert main([str(carphone_path()), "--checkpoint", str(checkpoints[name]), "--out", str(tmp_path),
                 "--samples", "1", "--frames", "4", "--per-class", "1"]) == 0
    entry = json.loads((tmp_path / "explain.json").read_text())["files"][0]
    assert entry["result"]["error"] is None and (tmp_path / "000_carphone_pristine.png").stat().st_size > 0
    z = np.load(entry["npz"])
    model = create_model(name, size="tiny")
    layers = list(model.cam_layers())
    assert [f"map_{k}" for k in layers] == [k for k in z.files if k.startswith("map_")]
    for k in layers:
        maps = z[f"map_{k}"]
        size = model.input_spec.image_size   # 64 px for most tiny builds; the upstream baselines keep theirs
        assert maps.shape[1:] == (model.input_spec.clip_len, size, size) and np.isfinite(maps).all()
        assert maps.min() >= 0 and maps.max() <= 1 + 1e-6
    first = z[f"map_{layers[0]}"]           # the backbone (specialists) / detail stream (tiny GenConViT)
    assert first.std() > 0.05, f"{name}: constant heat map"
    if model.input_spec.clip_len > 1:       # a map per frame, and the frames differ
        assert not np.allclose(first[0, 0], first[0, -1])
    assert list(tmp_path.glob("gallery_*.png"))


def test_token_and_channels_last_maps_become_images():
    tokens = torch.arange(2 * 17 * 3, dtype=torch.float32).view(2, 17, 3)   # class token + 4x4 grid
    grid = to_map(tokens)
    assert grid.shape == (2, 3, 4, 4) and torch.equal(grid[:, :, 0, 0], tokens[:, 1])
    nhwc = torch.randn(2, 7, 7, 32)      # timm's Swin stages
    assert torch.equal(to_map(nhwc, 32), nhwc.permute(0, 3, 1, 2))
    nchw = torch.randn(2, 32, 7, 7)
    assert to_map(nchw, 32) is nchw


class _TimmDetector(DeepfakeModel):
    """Any timm backbone as a detector (a recipe could name it): pooled features and a linear head."""

    def __init__(self, name: str, **kwargs):
        super().__init__(InputSpec(image_size=64))
        self.backbone = create_backbone(name, **kwargs)
        self.head = torch.nn.Linear(self.backbone.num_features, 2)

    def forward(self, batch: dict) -> dict:
        return {"logits": self.head(self.backbone(self.normalize(batch["image"])))}


@pytest.mark.parametrize("backbone, kwargs", [("resnet18", {}), ("convnext_atto", {}),
                                              ("vit_tiny_patch16_224", {"img_size": 64}),
                                              ("swin_tiny_patch4_window7_224", {"img_size": 64, "window_size": 4})])
def test_any_timm_backbone_is_explained(backbone, kwargs):
    torch.manual_seed(0)
    model = _TimmDetector(backbone, **kwargs)
    exp = explain_batch(model, model.dummy_batch(2, generator=torch.Generator().manual_seed(0)))
    (maps,) = exp.maps.values()
    assert maps.shape == (2, 1, 64, 64) and np.isfinite(maps).all() and maps.std() > 0.05


def test_a_specialist_on_another_backbone_is_explained():
    torch.manual_seed(0)
    # backbone features at full strength: the tiny size starts them at 0.01 (see specialists/net.py), and an
    # untrained model's backbone gradients are then below pytorch-grad-cam's normalisation epsilon
    model = create_model("bg", size="tiny", backbone="resnet18", feature_scale_init=1.0)
    exp = explain_batch(model, model.dummy_batch(2, generator=torch.Generator().manual_seed(0)))
    assert set(exp.maps) == {"backbone", "cue"} and all(np.isfinite(m).all() and m.std() > 0.05
                                                         for m in exp.maps.values())


def test_gallery_cells_pick_the_most_confident_videos():
    p = np.array([0.9, 0.6, 0.2, 0.1, 0.7, 0.3])
    y = np.array([1, 1, 1, 0, 0, 0])
    m = np.array(["A", "A", "A", "real", "real", "real"])
    videos = aggregate(FramePredictions(p, y, [f"v{i}" for i in range(6)], m), "mean")
    cells = select_gallery(videos, 0.5, 1)
    assert cells == {("A", "TP"): ["v0"], ("A", "FN"): ["v2"], ("real", "TN"): ["v3"], ("real", "FP"): ["v4"]}


def crops(frames: np.ndarray, seed: int, manipulate: bool) -> np.ndarray:
    rng, out = np.random.default_rng(seed), []
    for f in frames:
        y, x = 8 * rng.integers(3, 7), 8 * rng.integers(5, 9)        # 8-aligned, around the face
        c = f[y:y + 64, x:x + 64].copy()
        if manipulate:   # the fake: only the mouth region re-encoded as a low-quality JPEG
            ok, enc = cv2.imencode(".jpg", np.ascontiguousarray(c[REGION][..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 8])
            c[REGION] = cv2.imdecode(enc, cv2.IMREAD_COLOR)[..., ::-1]
        out.append(c)
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous()


def test_trained_cm_heat_sits_in_the_manipulated_region():
    frames = read_frames(carphone_path(), range(0, 120, 2)).images
    train, test = frames[:40], frames[40:]
    x = torch.cat([crops(train, 0, False), crops(train, 1, True)])
    y = torch.arange(len(x)) // len(train)
    torch.manual_seed(0)
    model = create_model("cm", size="tiny")
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    for step in range(30):
        b = torch.randint(0, len(x), (8,), generator=torch.Generator().manual_seed(step))
        loss = model.loss(model({"image": x[b]}), {"label": y[b]})["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    fakes = crops(test, 2, True)
    exp = explain_batch(model, {"image": fakes}, target="fake")
    assert exp.probs[:, 1].mean() > 0.9                       # it learned the cue
    mask = np.zeros((64, 64), bool)
    mask[REGION] = True
    inside, outside = np.array([inside_share(m[0], mask) for m in exp.maps["cue"]]).T
    print(f"cm cue map on {len(fakes)} held-out fakes: mean heat inside {inside.mean():.3f}, "
          f"outside {outside.mean():.3f}")
    assert inside.mean() > outside.mean() + 0.15 and (inside > outside).mean() >= 0.9
