"""Video aggregation by unique id, the confident rule, no-face videos, bootstrap, collapse guard."""
import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from evaluation.aggregate import aggregate, confident_score
from evaluation.bootstrap import _WeightedBinary, bootstrap_ci
from evaluation.scoring import build_report
from utils.engine.inference import predict_loader
from utils.engine.predictions import FramePredictions


def _videos(n_videos=40, frames=8, seed=0, signal=0.25, noise=0.2):
    """Synthetic FF++-like frame predictions: one score level per video plus frame noise."""
    rng = np.random.default_rng(seed)
    y = np.arange(n_videos) % 2
    methods = np.where(y == 1, np.where(np.arange(n_videos) % 4 == 1, "Deepfakes", "Face2Face"), "original")
    ids = np.array([f"{m}/{i:03d}" for i, m in enumerate(methods)])
    level = 0.5 + signal * (2 * y - 1) + 0.15 * rng.standard_normal(n_videos)
    rows = np.repeat(np.arange(n_videos), frames)
    p = np.clip(level[rows] + noise * rng.standard_normal(len(rows)), 0, 1)
    return FramePredictions(p, y[rows], ids[rows], methods[rows], np.tile(np.arange(frames), n_videos))


def test_same_file_name_in_two_methods_stays_two_videos():
    # FF++: Deepfakes/000_003.mp4 and Face2Face/000_003.mp4 share the file name 000_003.mp4
    ids = ["Deepfakes/000_003"] * 3 + ["Face2Face/000_003"] * 3
    fp = FramePredictions(np.array([0.9, 0.8, 0.7, 0.1, 0.2, 0.3]), np.ones(6, int), ids,
                          ["Deepfakes"] * 3 + ["Face2Face"] * 3)
    v = aggregate(fp)
    assert len(v) == 2
    assert list(v.video_ids) == ["Deepfakes/000_003", "Face2Face/000_003"]
    assert v.probs[:, 1] == pytest.approx([0.8, 0.2])
    assert list(v.n_frames) == [3, 3]
    rep = build_report(fp, n_boot=0)
    assert rep["video"]["n"] == 2 and set(rep["breakdown"]["method"]) == {"Deepfakes", "Face2Face"}
    # grouping by bare file name would merge them: refused with an explanation
    bad = FramePredictions(fp.probs, fp.labels, ["000_003"] * 6, fp.methods)
    with pytest.raises(ValueError, match="not unique"):
        aggregate(bad)


def test_confident_strategy():
    many_fake = np.r_[np.full(14, 0.95), np.full(18, 0.3)]    # 14 > 32/2.5 and > 11 confident fakes
    assert confident_score(many_fake) == pytest.approx(0.95)
    assert np.mean(many_fake) < 0.6
    mostly_real = np.r_[np.full(30, 0.05), np.full(2, 0.9)]   # > 90 % confidently real
    assert confident_score(mostly_real) == pytest.approx(0.05)
    mixed = np.linspace(0.1, 0.9, 32)
    assert confident_score(mixed) == pytest.approx(mixed.mean())
    fp = FramePredictions(np.r_[many_fake, mostly_real], np.repeat([1, 0], 32), np.repeat(["a", "b"], 32))
    v = aggregate(fp, "confident")
    assert v.probs[:, 1] == pytest.approx([0.95, 0.05])
    assert aggregate(fp, "mean").probs[0, 1] == pytest.approx(many_fake.mean())


def test_videos_without_faces_are_counted_never_silently_fake():
    fp = _videos(10)
    fp.missing = [{"video_id": "Deepfakes/999", "label": 1, "method": "Deepfakes", "reason": "no face"},
                  {"video_id": "original/998", "label": 0, "method": "original", "reason": "no face"}]
    rep = build_report(fp, n_boot=0)
    assert rep["no_face"]["count"] == 2 and rep["no_face"]["by_label"] == {"fake": 1, "real": 1}
    assert rep["video"]["n"] == 10  # excluded from the metrics
    assert any("no scored frame" in w for w in rep["warnings"])
    val = _videos(10, seed=1)
    rep = build_report(fp, n_boot=0, no_face="prior", val_preds=val)
    assert rep["video"]["n"] == 12
    v = aggregate(fp, no_face="prior", prior=0.3)
    assert v.imputed.sum() == 2 and v.probs[v.imputed, 1] == pytest.approx([0.3, 0.3])


def test_weighted_bootstrap_metrics_equal_sklearn_on_the_resample():
    fp = _videos(30)
    rng = np.random.default_rng(5)
    _, inv = np.unique(fp.video_ids, return_inverse=True)
    counts = np.bincount(rng.integers(0, 30, 30), minlength=30)
    idx = np.concatenate([np.flatnonzero(inv == u) for u in range(30) for _ in range(counts[u])])
    res = _WeightedBinary(fp.probs[:, 1], fp.labels, 0.4)(counts[inv].astype(float))
    y, s = fp.labels[idx], fp.probs[idx, 1]
    assert res["auc"] == pytest.approx(skm.roc_auc_score(y, s))
    assert res["ap"] == pytest.approx(skm.average_precision_score(y, s))
    assert res["acc"] == pytest.approx(skm.accuracy_score(y, s >= 0.4))
    assert res["balanced_acc"] == pytest.approx(skm.balanced_accuracy_score(y, s >= 0.4))
    assert res["log_loss"] == pytest.approx(skm.log_loss(y, np.clip(s, 0.01, 0.99)))


def test_bootstrap_contains_point_estimate_and_narrows_with_more_videos():
    widths = []
    for n in (40, 400):
        fp = _videos(n, signal=0.1, seed=2)
        point = build_report(fp, n_boot=0)["frame"]["metrics"]
        ci = bootstrap_ci(fp.probs, fp.labels, fp.video_ids, n_boot=300, seed=0)
        for key in ("auc", "acc", "log_loss"):
            assert ci[key]["lo"] <= point[key] <= ci[key]["hi"], (n, key, ci[key], point[key])
        widths.append(ci["auc"]["hi"] - ci["auc"]["lo"])
        again = bootstrap_ci(fp.probs, fp.labels, fp.video_ids, n_boot=300, seed=0)
        assert again == ci  # seeded
    assert widths[1] < widths[0] / 2, widths  # ~ 1/sqrt(10) expected
    # resampling videos (not frames) gives wider intervals for correlated frames
    fp = _videos(40, signal=0.1, seed=2)
    by_frame = bootstrap_ci(fp.probs, fp.labels, None, n_boot=300, seed=0)["auc"]
    by_video = bootstrap_ci(fp.probs, fp.labels, fp.video_ids, n_boot=300, seed=0)["auc"]
    assert by_video["hi"] - by_video["lo"] > 1.5 * (by_frame["hi"] - by_frame["lo"])


def test_multiclass_bootstrap_and_report():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 20)
    probs = rng.dirichlet([1, 1, 1], 60) + 0.5 * np.eye(3)[y]
    probs /= probs.sum(1, keepdims=True)
    fp = FramePredictions(probs, y, [f"v{i // 2}" for i in range(60)], label_names=("real", "df", "f2f"))
    ci = bootstrap_ci(fp.probs, fp.labels, fp.video_ids, n_boot=50)
    assert ci["auc"]["lo"] <= build_report(fp, n_boot=0)["frame"]["metrics"]["auc"] <= ci["auc"]["hi"]
    rep = build_report(fp, n_boot=20)
    assert rep["video"]["threshold"] is None and np.asarray(rep["video"]["confusion"]).shape == (3, 3)


class _Constant(torch.nn.Module):
    """A 'model' that outputs the same logits whatever the input (a collapsed detector)."""

    num_classes = 2

    def __init__(self):
        super().__init__()
        self.bias = torch.nn.Parameter(torch.tensor([-0.3, 0.3]))

    def forward(self, batch):
        return {"logits": self.bias.expand(len(batch["image"]), 2)}


def test_constant_output_model_is_flagged_as_collapsed(caplog):
    data = [{"image": torch.zeros(4, 3, 8, 8, dtype=torch.uint8), "label": torch.tensor([0, 0, 1, 1]),
             "video_id": [f"v{b}_{i // 2}" for i in range(4)], "method": ["m"] * 4,
             "frame_index": torch.arange(4)} for b in range(5)]
    preds = predict_loader(_Constant(), data)
    assert len(preds) == 20 and np.allclose(preds.probs, preds.probs[0])
    with caplog.at_level("WARNING"):
        rep = build_report(preds, n_boot=50)
    assert rep["collapsed"] is True
    assert any("near-constant" in r for r in rep["collapse_reasons"])
    assert any("of the predictions" in r for r in rep["collapse_reasons"])
    assert "MODEL COLLAPSE" in caplog.text
    # a discriminating model on the same labels is not flagged
    assert build_report(_videos(20), n_boot=0)["collapsed"] is False
    # skewed labels predicted skewed are not a collapse (DFDC is ~84 % fake)
    y = (np.arange(100) < 97).astype(int)
    p = np.where(y == 1, 0.8, 0.2) + 0.01 * np.random.default_rng(0).standard_normal(100)
    assert build_report(FramePredictions(p, y, np.arange(100)), n_boot=0)["collapsed"] is False


def test_validation_threshold_is_the_one_used_for_accuracy():
    # validation and test scores sit low (reals ~0.15, fakes ~0.35): 0.5 calls everything real
    def shifted(seed):
        fp = _videos(40, seed=seed)
        p = 0.15 + 0.2 * fp.labels + 0.02 * np.random.default_rng(seed).standard_normal(len(fp))
        fp.probs = np.clip(np.stack([1 - p, p], 1), 0, 1)
        return fp
    val, test = shifted(1), shifted(2)
    rep = build_report(test, val_preds=val, n_boot=0)
    t = rep["threshold"]
    assert t["source"] == "validation" and 0.2 < t["video"] < 0.3 and 0.2 < t["frame"] < 0.3
    assert rep["video"]["threshold"] == t["video"] and rep["video"]["metrics"]["threshold"] == t["video"]
    assert rep["video"]["metrics"]["acc"] == 1.0
    assert rep["video"]["metrics_at_0.5"]["acc"] == 0.5
    # an explicit threshold wins over validation
    forced = build_report(test, val_preds=val, threshold=0.5, n_boot=0)
    assert forced["video"]["metrics"]["acc"] == 0.5
