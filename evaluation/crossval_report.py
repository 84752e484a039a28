"""Write a cross-validation report (:func:`evaluation.crossval.aggregate_cv`): JSON, Markdown, PNG.

Figures are drawn from the report dict alone (matplotlib's object API, no display), so the same
figures go to TensorBoard: ``roc`` and ``pr`` (pooled out-of-fold curve, each fold's curve thin),
``folds`` (each fold's value of the headline metrics with the mean and its t-interval).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from evaluation.report import style_curve_axes, to_jsonable
from evaluation.sources import sources_markdown
from utils.core.fileio import atomic_write_text

HEADLINE = ("auc", "balanced_acc", "eer", "ap", "acc", "log_loss")
FIGURES = ("roc", "pr", "folds")


def _f(v) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{v:.3f}"


def _figure(ncols: int = 1, width: float = 5.0):
    from matplotlib.figure import Figure   # lazy: matplotlib is heavy and only needed for figures
    fig = Figure(figsize=(width * ncols, 4.2), layout="constrained")
    return fig, [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]


def _curve_figure(cv: dict, kind: str):
    fig, (ax,) = _figure()
    pooled = cv["pooled"]
    for fold, c in pooled["fold_curves"].items():
        if c:
            ax.plot(c[kind]["x"], c[kind]["y"], lw=0.8, alpha=0.5, label=f"fold {fold}")
    if pooled["curves"]:
        key = "auc" if kind == "roc" else "ap"
        ax.plot(pooled["curves"][kind]["x"], pooled["curves"][kind]["y"], "k-", lw=2,
                label=f"pooled ({key.upper()} {_f(pooled['metrics'][key])})")
    style_curve_axes(ax, kind, "Out-of-fold ROC (videos)" if kind == "roc"
                     else "Out-of-fold precision-recall (videos)")
    ax.legend(fontsize=7, loc="lower right" if kind == "roc" else "lower left")
    return fig


def _folds_figure(cv: dict):
    fig, (ax,) = _figure(width=7.0)
    summary = cv["summary"]["video"]
    names = [m for m in HEADLINE if m in summary]
    for i, m in enumerate(names):
        s = summary[m]
        vals = [v for v in s["values"] if v is not None]
        ax.scatter(np.full(len(vals), i) + np.linspace(-0.15, 0.15, len(vals)), vals, s=14, alpha=0.7)
        if np.isfinite(s["mean"]):
            lo, hi = (s["lo"], s["hi"]) if np.isfinite(s["lo"]) else (s["mean"], s["mean"])
            ax.errorbar(i + 0.3, s["mean"], yerr=[[s["mean"] - lo], [hi - s["mean"]]], fmt="ks", capsize=3)
    ax.set(xticks=range(len(names)), xticklabels=names, title="Per-fold video metrics, mean and 95 % t-interval")
    return fig


def make_figures(cv: dict) -> dict:
    return {"roc": _curve_figure(cv, "roc"), "pr": _curve_figure(cv, "pr"), "folds": _folds_figure(cv)}


def _summary_table(cv: dict, lv: str) -> list[str]:
    s, pooled = cv["summary"][lv], cv["pooled"]
    lines = [f"### {lv.capitalize()} level", "",
             "| metric | mean ± std over folds | 95 % t-interval | pooled out-of-fold [95 % bootstrap] |",
             "|---|---|---|---|"]
    for m in HEADLINE:
        if m not in s:
            continue
        pooled_cell = ""
        if lv == "video" and m in pooled["metrics"]:
            ci = pooled["ci"].get(m, {})
            pooled_cell = f"{_f(pooled['metrics'][m])} [{_f(ci.get('lo'))}, {_f(ci.get('hi'))}]"
        lines.append(f"| {m} | {_f(s[m]['mean'])} ± {_f(s[m]['std'])} | [{_f(s[m]['lo'])}, {_f(s[m]['hi'])}] "
                     f"| {pooled_cell} |")
    return lines + [""]


def _fold_table(cv: dict) -> list[str]:
    lines = ["## Folds (video level)", "", "| fold | videos | threshold | AUC | bal. acc | EER | best epoch |",
             "|---|---|---|---|---|---|---|"]
    for r in cv["folds"]:
        v = r["video"]
        lines.append(f"| {r['fold']} | {r['n_videos']} | {_f(r['threshold'])} | {_f(v.get('auc'))} | "
                     f"{_f(v.get('balanced_acc'))} | {_f(v.get('eer'))} | {r.get('best_epoch') or 'n/a'} |")
    return lines + [""]


def _gap_table(gap: dict | None) -> list[str]:
    if not gap:
        return []
    lines = ["## Train / validation gap per fold", "", f"{gap['note']}.", "",
             "| fold | train AUC | val AUC | gap AUC | train log-loss | val log-loss |", "|---|---|---|---|---|---|"]
    for r in gap["per_fold"]:
        lines.append(f"| {r['fold']} | {_f(r['train_auc'])} | {_f(r['val_auc'])} | {_f(r['gap_auc'])} | "
                     f"{_f(r['train_log_loss'])} | {_f(r['val_log_loss'])} |")
    return lines + [""]


def _per_method_table(cv: dict) -> list[str]:
    lines = ["## Per method / source over folds (mean ± std)", "", "| source | AUC | acc | TPR | FPR |",
             "|---|---|---|---|---|"]
    for name, row in cv["per_method"].items():
        cells = [f"{_f(row[k]['mean'])} ± {_f(row[k]['std'])}" if k in row and row[k]["n"] else ""
                 for k in ("auc", "acc", "tpr", "fpr")]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines + [""]


def _holdout_lines(h: dict | None) -> list[str]:
    if not h:
        return []
    p, fm = h["pooled"], h.get("fold_mean", {})
    flag = "**FLAGGED** (Δ > %.2f: the model learns the sources it saw, not the forgery)" % h["flag_at"] \
        if h["flagged"] else f"not flagged (Δ ≤ {h['flag_at']:.2f})"
    return ["## Source hold-out", "",
            f"Held out of training and validation: `{h['held_out']}`.", "",
            f"- Δ = in-source AUC − held-out AUC = {_f(h['delta'])}: {flag}",
            f"- over folds: {_f(fm.get('mean'))} ± {_f(fm.get('std'))}, 95 % t-interval "
            f"[{_f(fm.get('lo'))}, {_f(fm.get('hi'))}]",
            f"- pooled: in-source {_f(p['in_auc'])}, held-out {_f(p['held_out_auc'])}, Δ {_f(p['delta'])} "
            f"[{_f(p['lo'])}, {_f(p['hi'])}] (bootstrap over videos)", ""]


def to_markdown(cv: dict, image_prefix: str | None = "") -> str:
    m = cv["meta"]
    lines = [f"# Cross-validation: {m.get('experiment', '')}", "",
             f"- model `{m.get('model')}`, stage {m.get('stage')}, dataset `{m.get('dataset')}`, {m['k']} folds "
             f"(seed {m.get('fold_seed')}), fold hash `{str(m.get('fold_hash', ''))[:16]}`",
             f"- pooled out-of-fold: {cv['pooled']['n_videos']} videos ({cv['pooled']['n_real']} real, "
             f"{cv['pooled']['n_fake']} fake); intervals: {m['interval_over_folds']} over folds, "
             f"{cv['pooled']['ci_method']} ({m['n_boot']} replicates)", ""]
    lines += _summary_table(cv, "video") + _summary_table(cv, "frame") + _fold_table(cv)
    if cv.get("fixed_test"):
        s = cv["fixed_test"]["summary"]
        lines += ["## Fixed test set (each fold's model)", "", "| metric | mean ± std | 95 % t-interval |",
                  "|---|---|---|"] + [f"| {k} | {_f(s[k]['mean'])} ± {_f(s[k]['std'])} | [{_f(s[k]['lo'])}, "
                                      f"{_f(s[k]['hi'])}] |" for k in HEADLINE if k in s] + [""]
    lines += _holdout_lines(cv.get("holdout")) + _per_method_table(cv)
    lines += [s for s in sources_markdown(cv.get("sources"))] + [""] + _gap_table(cv.get("gap"))
    if cv.get("warnings"):
        lines += ["## Warnings", ""] + [f"- {w}" for w in cv["warnings"]] + [""]
    if image_prefix is not None:
        lines += [f"![{k}]({image_prefix}{k}.png)" for k in FIGURES] + [""]
    return "\n".join(lines)


def write_cv_report(cv: dict, out_dir: str | os.PathLike, figures: dict | None = None) -> dict[str, Path]:
    """``cv.json``, ``cv.md`` and ``roc.png pr.png folds.png`` (``figures``, else drawn here) in ``out_dir``;
    returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "cv.json", "md": out / "cv.md"}
    atomic_write_text(paths["json"], json.dumps(to_jsonable(cv), indent=1, allow_nan=False))
    atomic_write_text(paths["md"], to_markdown(cv))
    for key, fig in (figures or make_figures(cv)).items():
        paths[key] = out / f"{key}.png"
        fig.savefig(paths[key], dpi=100)
    return paths
