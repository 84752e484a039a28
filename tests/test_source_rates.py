"""Per-source rates in every report, DeLong's AUC variance, and the source hold-out gap Δ.

The hold-out case is built here: small images whose fake sources each carry their own artefact (a
bright patch at a source-specific place). A tiny CNN trained without one source cannot detect it, so
Δ = in-source AUC − held-out AUC is large and flagged; when every source carries the same artefact
(a forgery cue, not a source cue) the held-out source is caught and Δ is not flagged.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import binomtest
from sklearn.metrics import roc_auc_score

from evaluation.aggregate import aggregate
from evaluation.delong import auc_interval, auc_variance, delong_paired
from evaluation.scoring import build_report
from evaluation.sources import holdout_delta, source_rates, t_interval, wilson
from tests.helpers.tiny import TinyNet
from utils.data.records import VideoRecord
from utils.data.sources import hold_out, select_sources
from utils.engine.predictions import FramePredictions

PATCHES = {"A": (1, 1), "B": (11, 11), "C": (1, 11)}   # top-left corner of each source's 4x4 artefact


def test_rates_and_pairwise_aucs_match_direct_counts():
    rng = np.random.default_rng(0)
    methods = np.array(["real"] * 40 + ["yt"] * 20 + ["A"] * 30 + ["B"] * 30)
    labels = (np.isin(methods, ["A", "B"])).astype(int)
    p = np.clip(rng.normal(0.35, 0.15, len(labels)) + 0.3 * (methods == "A") + 0.1 * (methods == "B"), 0, 1)
    vids = aggregate(FramePredictions(p, labels, [f"v{i}" for i in range(len(p))], methods), "mean")
    out = source_rates(vids, 0.5)
    for s in ("A", "B"):
        k = int((p[methods == s] >= 0.5).sum())
        assert out["fake"][s]["tpr"] == k / 30 and out["fake"][s]["called_fake"] == k
        own = (methods == s) | (labels == 0)
        assert out["pairwise_auc"][s]["auc"] == pytest.approx(roc_auc_score(labels[own], p[own]))
    assert out["real"]["yt"]["fpr"] == (p[methods == "yt"] >= 0.5).mean()
    aucs = [out["pairwise_auc"][s]["auc"] for s in ("A", "B")]
    assert out["auc_spread"]["var"] == pytest.approx(np.var(aucs, ddof=1))
    assert out["pairwise_auc"]["A"]["auc"] > out["pairwise_auc"]["B"]["auc"]
    lo, hi = wilson(7, 30)   # close to the exact (Clopper-Pearson) interval
    ci = binomtest(7, 30).proportion_ci(0.95)
    assert abs(lo - ci.low) < 0.03 and abs(hi - ci.high) < 0.03


def test_every_report_has_the_source_section():
    rng = np.random.default_rng(1)
    n = 60
    labels, methods = np.arange(n) % 2, np.where(np.arange(n) % 2, np.where(np.arange(n) % 4 == 1, "A", "B"), "real")
    frames = FramePredictions(np.clip(rng.random(n) * 0.5 + 0.4 * labels, 0, 1), labels, [f"v{i}" for i in range(n)],
                              methods)
    rep = build_report(frames, threshold=0.5, n_boot=0)
    assert set(rep["sources"]["fake"]) == {"A", "B"} and set(rep["sources"]["real"]) == {"real"}
    from evaluation.report import to_markdown
    assert "## Per source" in to_markdown(rep)


def test_delong_variance_matches_the_placement_formula():
    rng = np.random.default_rng(2)
    y = np.r_[np.ones(25), np.zeros(35)].astype(int)
    s = rng.normal(0.8 * y, 1.0).round(1)          # ties on purpose
    auc, var = auc_variance(s, y)
    pos, neg = s[y == 1], s[y == 0]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    v10, v01 = psi.mean(1), psi.mean(0)
    assert auc == pytest.approx(roc_auc_score(y, s))
    assert var == pytest.approx(v10.var(ddof=1) / 25 + v01.var(ddof=1) / 35)
    assert auc_interval(s, y)["lo"] < auc < auc_interval(s, y)["hi"]
    same = delong_paired(s, s, y)
    assert same["diff"] == 0 and same["p"] == 1.0


def brute_force_delong(a: np.ndarray, b: np.ndarray, y: np.ndarray) -> dict:
    """DeLong's paired test written out: placement values from every (positive, negative) pair,
    their 2x2 sample covariances, Var(AUC_b - AUC_a) with the covariance term, a normal two-sided p."""
    def placements(s):
        pos, neg = s[y == 1], s[y == 0]
        psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
        return psi.mean(), psi.mean(1), psi.mean(0)     # AUC, V10 (per positive), V01 (per negative)

    (auc_a, v10_a, v01_a), (auc_b, v10_b, v01_b) = placements(a), placements(b)
    m, n = len(v10_a), len(v01_a)

    def cov(u, v):
        return float(np.sum((u - u.mean()) * (v - v.mean())) / (len(u) - 1))

    var_a = cov(v10_a, v10_a) / m + cov(v01_a, v01_a) / n
    var_b = cov(v10_b, v10_b) / m + cov(v01_b, v01_b) / n
    cov_ab = cov(v10_a, v10_b) / m + cov(v01_a, v01_b) / n
    se = math.sqrt(var_a + var_b - 2 * cov_ab)
    z = (auc_b - auc_a) / se
    return {"auc_a": auc_a, "auc_b": auc_b, "diff": auc_b - auc_a, "se": se, "z": z,
            "p": math.erfc(abs(z) / math.sqrt(2)), "cov_ab": cov_ab, "var_a": var_a, "var_b": var_b}


@pytest.mark.parametrize("seed,effect", [(3, 0.3), (4, 0.6), (5, 0.0)])
def test_paired_delong_equals_the_placement_computation_on_correlated_scores(seed, effect):
    rng = np.random.default_rng(seed)
    y = np.r_[np.ones(40), np.zeros(55)].astype(int)
    shared = rng.normal(0.9 * y, 1.0)                       # what both models see: strongly correlated
    a = (shared + rng.normal(0, 0.4, len(y))).round(1)      # ties on purpose
    b = (shared + effect * y + rng.normal(0, 0.4, len(y))).round(1)
    ref, got = brute_force_delong(a, b, y), delong_paired(a, b, y)
    # the covariance term matters here: dropping it or flipping its sign changes the variance a lot
    assert ref["cov_ab"] > 0.4 * (ref["var_a"] + ref["var_b"]) / 2, ref
    for key in ("auc_a", "auc_b", "diff", "se", "z", "p"):
        assert got[key] == pytest.approx(ref[key], rel=1e-9, abs=1e-12), \
            f"{key}: {got[key]:.6g}, by hand {ref[key]:.6g}"
    assert got["auc_a"] == pytest.approx(roc_auc_score(y, a))
    assert got["auc_b"] == pytest.approx(roc_auc_score(y, b))


def test_t_interval_is_students():
    from scipy.stats import t
    v = [0.8, 0.82, 0.79, 0.9, 0.85]
    ci = t_interval(v)
    half = t.ppf(0.975, 4) * np.std(v, ddof=1) / np.sqrt(5)
    assert ci["lo"] == pytest.approx(np.mean(v) - half) and ci["hi"] == pytest.approx(np.mean(v) + half)


def images(n: int, source: str, generic: bool, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(60, 196, (n, 3, 16, 16), generator=g).float()
    if source != "real":
        r, c = (6, 6) if generic else PATCHES[source]
        x[:, :, r:r + 4, c:c + 4] += 70.0
    return x.clamp(0, 255).to(torch.uint8)


def records_and_pixels(generic: bool, split: str, n: int, seed: int):
    recs, pix = [], []
    for k, source in enumerate(["real", "real", "A", "B", "C"]):
        x = images(n, source, generic, seed + 10 * k)
        for i in range(n):
            recs.append(VideoRecord(f"{split}/{source}{k}/{i}", "", int(source != "real"), "images", source,
                                    f"{split}{k}-{i}", split))
            pix.append(x[i])
    return recs, torch.stack(pix)


def train_without(held: str, generic: bool) -> tuple[dict, dict]:
    """A tiny CNN trained on every source but ``held``; (hold-out Δ, per-source section) on new images."""
    torch.manual_seed(0)
    recs, pix = records_and_pixels(generic, "train", 48, 0)
    keep = {r.video_id for r in select_sources(recs, hold_out(recs, held), [])}
    idx = torch.tensor([i for i, r in enumerate(recs) if r.video_id in keep])
    assert not any(recs[i].method == held for i in idx.tolist())
    x, y = pix[idx], torch.tensor([recs[i].label for i in idx.tolist()])
    model = TinyNet()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(150):
        b = torch.randint(0, len(idx), (32,), generator=torch.Generator().manual_seed(step))
        loss = torch.nn.functional.cross_entropy(model({"image": x[b]})["logits"], y[b])
        opt.zero_grad()
        loss.backward()
        opt.step()
    test, tx = records_and_pixels(generic, "test", 32, 1000)
    with torch.no_grad():
        probs = torch.softmax(model({"image": tx})["logits"], 1).numpy()
    frames = FramePredictions(probs, [r.label for r in test], [r.video_id for r in test], [r.method for r in test])
    videos = aggregate(frames, "mean")
    folds = np.arange(len(videos)) % 3       # three pseudo-folds: the per-fold path and the t-interval
    return holdout_delta(videos, held, folds, n_boot=300, seed=0), source_rates(videos, 0.5)


@pytest.fixture
def one_thread():
    """Two torch threads contend on a shared 2-core machine (several times slower than one)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_a_source_specific_artefact_is_flagged_and_a_shared_one_is_not(one_thread):
    specific, rates = train_without("C", generic=False)
    assert specific["pooled"]["in_auc"] > 0.95 and specific["pooled"]["held_out_auc"] < 0.75
    assert specific["flagged"] and specific["delta"] > 0.2 and specific["pooled"]["lo"] > 0.05
    assert len(specific["per_fold"]) == 3 and specific["fold_mean"]["n"] == 3
    assert rates["pairwise_auc"]["C"]["auc"] < rates["pairwise_auc"]["A"]["auc"]
    assert rates["auc_spread"]["range"] > 0.2
    shared, _ = train_without("C", generic=True)
    assert shared["pooled"]["held_out_auc"] > 0.95 and not shared["flagged"], shared["delta"]
