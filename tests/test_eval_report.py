"""Report files (JSON with every number, Markdown, valid PNGs) and ensembles."""
import json

import numpy as np
import pytest

from evaluation.ensemble import average_probs, combine, fit_weights, load_weights, save_weights
from evaluation.scoring import build_report, summary_scalars
from evaluation.metrics import log_loss
from utils.engine.predictions import FramePredictions
from evaluation.report import FIGURES, make_figures, write_report


def _preds(seed=0, n_videos=30, frames=4, quality=1.0, dfdc=False):
    rng = np.random.default_rng(seed)
    y = np.arange(n_videos) % 2
    methods = np.where(y == 1, "fake", "real") if dfdc else np.where(y == 1, "NeuralTextures", "original")
    ids = np.array([f"{m}/{i}" for i, m in enumerate(methods)])
    rows = np.repeat(np.arange(n_videos), frames)
    p = 1 / (1 + np.exp(-(quality * (2 * y[rows] - 1) + rng.standard_normal(len(rows)))))
    extra = {"chunk": (np.arange(n_videos) % 3)[rows]} if dfdc else {}
    return FramePredictions(p, y[rows], ids[rows], methods[rows], np.tile(np.arange(frames), n_videos), extra)


def test_report_files(tmp_path):
    test, val = _preds(0, dfdc=True), _preds(1, dfdc=True)
    rep = build_report(test, val_preds=val, n_boot=100, title="unit")
    paths = write_report(rep, tmp_path)
    data = json.loads(paths["json"].read_text())  # strict JSON: NaN became null
    for key in ("meta", "threshold", "frame", "video", "breakdown", "collapsed", "no_face", "warnings"):
        assert key in data
    for lv in ("frame", "video"):
        for key in ("auc", "ap", "eer", "acc", "balanced_acc", "log_loss"):
            assert key in data[lv]["metrics"] and key in data[lv]["ci"]
        assert data[lv]["metrics"]["auc"] == pytest.approx(rep[lv]["metrics"]["auc"])
        assert "acc" in data[lv]["metrics_at_0.5"] and len(data[lv]["confusion"]) == 2
    assert set(data["breakdown"]["chunk"]) == {"0", "1", "2"}
    assert data["threshold"]["source"] == "validation"
    md = paths["md"].read_text()
    assert "| video |" in md and "roc.png" in md
    import matplotlib.image
    for name in FIGURES:
        img = matplotlib.image.imread(paths[name])  # raises on a broken PNG
        assert paths[name].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and img.shape[0] > 100 and img.std() > 0
    scalars = summary_scalars(rep, "test/")
    assert scalars["test/video/auc"] == rep["video"]["metrics"]["auc"] and "test/video/acc@0.5" in scalars


def test_collapsed_report_says_so(tmp_path):
    fp = _preds(0)
    fp.probs = np.tile([0.4, 0.6], (len(fp), 1))
    rep = build_report(fp, n_boot=20)
    write_report(rep, tmp_path, name="stage1", figures=True)
    assert json.loads((tmp_path / "stage1.json").read_text())["collapsed"] is True
    assert "MODEL COLLAPSE" in (tmp_path / "stage1.md").read_text()
    assert (tmp_path / "stage1_roc.png").is_file()
    figs = make_figures(rep)
    assert set(figs) == set(FIGURES) and figs["roc"]._suptitle.get_text().startswith("MODEL COLLAPSE")


def test_ensemble_weights_fit_on_validation(tmp_path):
    good, bad = _preds(0, quality=2.0), _preds(1, quality=0.0)
    w = fit_weights([good.probs, bad.probs], good.labels)
    assert w.sum() == pytest.approx(1.0) and w[0] > 0.8
    avg = average_probs([good.probs, bad.probs], w)
    assert log_loss(avg, good.labels) <= log_loss(average_probs([good.probs, bad.probs]), good.labels) + 1e-9
    path = save_weights(tmp_path / "ens.json", w,
                        ["runs/a/stage1/best.safetensors", "runs/b/stage1/best.safetensors"])
    back = load_weights(path, ["runs/b/stage1/best.safetensors", "runs/a/stage1/best.safetensors"])
    assert back == pytest.approx(w[::-1])
    with pytest.raises(ValueError, match="fitted for"):
        load_weights(path, ["runs/c/stage1/best.safetensors", "runs/a/stage1/best.safetensors"])
    # video-level combination of members that scored different frames of the same videos
    other = good.subset(good.frame_index < 2)
    ens = combine([good, other], [0.5, 0.5])
    assert len(ens) == 30 and set(ens.video_ids) == set(good.video_ids)
    assert build_report(ens, n_boot=0)["video"]["n"] == 30


def test_frame_predictions_round_trip(tmp_path):
    fp = _preds(0, n_videos=6, dfdc=True)
    fp.missing = [{"video_id": "fake/99", "label": 1, "method": "fake", "reason": "no face"}]
    back = FramePredictions.load(fp.save(tmp_path / "p.npz"))
    assert np.array_equal(back.probs, fp.probs) and list(back.video_ids) == list(fp.video_ids)
    assert list(back.extra["chunk"]) == list(fp.extra["chunk"]) and back.missing == fp.missing
    assert len(FramePredictions.concat([fp, back])) == 2 * len(fp)
