"""Cue ablations destroy one cue and keep the rest (what the cue probes rely on)."""
from __future__ import annotations

import pytest
import torch

from utils.core.model import InputSpec
from utils.data.ablations import ABLATIONS, ablate


def _batch(t: int = 4) -> dict:
    g = torch.Generator().manual_seed(0)
    return {"clip": torch.randint(0, 256, (2, t, 3, 16, 16), generator=g, dtype=torch.uint8),
            "image": torch.randint(0, 256, (2, 3, 16, 16), generator=g, dtype=torch.uint8),
            "audio": torch.randn(2, 8, 16, generator=g), "audio_mask": torch.ones(2), "label": torch.tensor([0, 1])}


def test_one_frame_and_shuffled_keep_the_pixels_and_remove_the_motion_or_its_order():
    b = _batch()
    one = ablate("one_frame", b, InputSpec(clip_len=4))["clip"]
    assert all(torch.equal(one[:, k], b["clip"][:, 2]) for k in range(4))
    mixed = ablate("shuffled", b, InputSpec(clip_len=4))["clip"]
    assert not torch.equal(mixed, b["clip"])
    assert sorted(mixed[0].flatten(1).sum(1).tolist()) == sorted(b["clip"][0].flatten(1).sum(1).tolist())


def test_no_audio_masks_the_audio_and_leaves_the_rest():
    b = _batch()
    out = ablate("no_audio", b, InputSpec(audio=True))
    assert float(out["audio_mask"].sum()) == 0 and torch.equal(out["clip"], b["clip"])
    assert float(b["audio_mask"].sum()) == 2   # the input batch is not changed in place


def test_resized_resamples_every_pixel_and_keeps_the_shape():
    b = _batch()
    out = ablate("resized", {"image": b["image"]}, InputSpec(crop="native", image_size=16))["image"]
    assert out.shape == b["image"].shape and out.dtype == torch.uint8 and not torch.equal(out, b["image"])
    smooth = torch.full((1, 3, 16, 16), 90, dtype=torch.uint8)   # a flat image survives resampling
    assert torch.equal(ablate("resized", {"image": smooth}, InputSpec())["image"], smooth)


def test_flat_surround_keeps_the_face_and_flattens_the_context():
    b = _batch()
    spec = InputSpec(crop="context", image_size=16, context_scale=2.0)
    out = ablate("flat_surround", {"image": b["image"]}, spec)["image"]
    assert torch.equal(out[..., 4:12, 4:12], b["image"][..., 4:12, 4:12])
    ring = out.clone()
    ring[..., 4:12, 4:12] = ring[..., :1, :1]
    mean = b["image"][..., 4:12, 4:12].float().mean(dim=(-2, -1)).round()
    assert torch.equal(ring.float(), mean[..., None, None].expand_as(ring.float()))


def test_unknown_ablation_lists_the_known_ones():
    with pytest.raises(KeyError, match=", ".join(ABLATIONS)):
        ablate("blur", _batch(), InputSpec())
