"""Write an evaluation report: JSON (every number), a short Markdown summary, PNG plots.

Figures are built from the report dict alone with matplotlib's object API (``Figure``, no pyplot
state, no display needed), so the trainer can send the very same figures to TensorBoard with
``make_figures(report)``.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from evaluation.scoring import LEVELS
from evaluation.sources import sources_markdown
from utils.core.fileio import atomic_write_text
from utils.data.index import SAMPLE_NOTE

FIGURES = ("roc", "pr", "confusion", "histogram")
_STYLE = {"frame": ":", "video": "-"}


def to_jsonable(obj):
    """Numpy scalars/arrays to Python, NaN/inf to ``null`` (strict JSON)."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    return obj


def _figure(ncols: int = 1, width: float = 5.0):
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width * ncols, 4.2), layout="constrained")
    axes = [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]
    return fig, axes


def style_curve_axes(ax, kind: str, title: str) -> None:
    """Labels, unit limits and (for ROC) the chance diagonal of a ROC or precision-recall plot."""
    if kind == "roc":
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8)
        ax.set(xlabel="false positive rate", ylabel="true positive rate")
    else:
        ax.set(xlabel="recall", ylabel="precision")
    ax.set(title=title, xlim=(0, 1), ylim=(0, 1.02))


def _curve_figure(report: dict, kind: str):
    fig, (ax,) = _figure()
    for lv in LEVELS:
        auc = report[lv]["metrics"].get("auc" if kind == "roc" else "ap")
        for name, pts in report[lv]["curves"][kind].items():
            label = f"{lv} {name}" + (f" ({'AUC' if kind == 'roc' else 'AP'} {auc:.3f})"
                                      if auc is not None and np.isfinite(auc) else "")
            ax.plot(pts["x"], pts["y"], _STYLE[lv], label=label)
    style_curve_axes(ax, kind, "ROC" if kind == "roc" else "Precision-recall")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower right" if kind == "roc" else "lower left", fontsize=8)
    return fig


def _confusion_figure(report: dict):
    fig, axes = _figure(2, 4.2)
    names = report["meta"]["label_names"]
    for ax, lv in zip(axes, LEVELS):
        cm = np.asarray(report[lv]["confusion"], dtype=float)
        ax.imshow(cm, cmap="Blues")
        for (i, j), v in np.ndenumerate(cm):
            ax.text(j, i, f"{int(v)}", ha="center", va="center",
                    color="white" if v > cm.max() / 2 else "black")
        thr = report[lv]["threshold"]
        ax.set(xticks=range(len(names)), yticks=range(len(names)), xticklabels=names, yticklabels=names,
               xlabel="predicted", ylabel="true",
               title=f"{lv}s" + (f" @ {thr:.3f}" if thr is not None else ""))
    return fig


def _histogram_figure(report: dict):
    fig, axes = _figure(2)
    for ax, lv in zip(axes, LEVELS):
        hist = report[lv]["histogram"]
        edges = np.asarray(hist["edges"])
        for name, counts in hist["counts"].items():
            ax.stairs(counts, edges, label=name, fill=False, lw=1.5)
        thr = report[lv]["threshold"]
        if thr is not None and 0 <= thr <= 1 and hist["score"] == "P(fake)":
            ax.axvline(thr, color="grey", ls="--", lw=1, label=f"threshold {thr:.3f}")
        ax.set(xlabel=hist["score"], ylabel="count", title=f"{lv}s", xlim=(0, 1))
        ax.legend(fontsize=8)
    return fig


def make_figures(report: dict) -> dict:
    """``{"roc", "pr", "confusion", "histogram"}`` matplotlib Figures drawn from ``report``."""
    figs = {"roc": _curve_figure(report, "roc"), "pr": _curve_figure(report, "pr"),
            "confusion": _confusion_figure(report), "histogram": _histogram_figure(report)}
    if report.get("collapsed"):
        for fig in figs.values():
            fig.suptitle("MODEL COLLAPSE SUSPECTED", color="red", fontweight="bold")
    return figs


def _fmt(v, pct: bool = False) -> str:
    if v is None or not np.isfinite(v):
        return "n/a"
    return f"{100 * v:.1f}" if pct else f"{v:.3f}"


def _with_ci(level: dict, key: str) -> str:
    ci = level.get("ci", {}).get(key, {})
    val = _fmt(level["metrics"].get(key))
    if ci and ci.get("lo") is not None and np.isfinite(ci.get("lo", np.nan)):
        return f"{val} [{_fmt(ci['lo'])}, {_fmt(ci['hi'])}]"
    return val


def _class_lines(report: dict) -> list[str]:
    """Per-class rows (recall, precision, F1, one-vs-rest AUC) and the confusion matrix, per level."""
    lines = []
    for lv in ("video", "frame"):
        d = report[lv]
        names = [row["class"] for row in d.get("per_class", [])]
        if not names:
            continue
        lines += ["", f"## Per class ({lv} level, macro-F1 {_fmt(d['metrics'].get('macro_f1'))})", "",
                  "| class | n | predicted | recall | precision | F1 | AUC (one-vs-rest) |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {r['class']} | {r['n']} | {r['predicted']} | {_fmt(r['recall'])} | "
                  f"{_fmt(r['precision'])} | {_fmt(r['f1'])} | {_fmt(r['auc'])} |" for r in d["per_class"]]
        lines += ["", f"Confusion matrix ({lv} level; rows: true class, columns: predicted)", "",
                  "| true \\ predicted | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
        lines += [f"| {names[i]} | " + " | ".join(str(v) for v in row) + " |"
                  for i, row in enumerate(d["confusion"])]
    return lines


def _data_lines(report: dict) -> list[str]:
    """``- data: …``: the generated sample is named as such, a real dataset by its name and root."""
    data = report.get("data")
    if not data:
        return []
    text = SAMPLE_NOTE if data.get("sample") else f"{data.get('dataset')} at {data.get('root')}"
    return [f"- data: {text}"]


def to_markdown(report: dict, image_prefix: str | None = "") -> str:
    """A short human summary of a report (images ``<image_prefix><figure>.png``; None: no images)."""
    t = report["threshold"]
    lines = [f"# Evaluation{': ' + report['title'] if report.get('title') else ''}", ""]
    if report.get("collapsed"):
        lines += ["> **MODEL COLLAPSE SUSPECTED** — " + "; ".join(report["collapse_reasons"]), ""]
    v, f = report["video"], report["frame"]
    lines += _data_lines(report)
    lines += [f"- videos: {v['n']}, frames: {f['n']}, aggregation: `{report['meta']['aggregation']}`",
              f"- thresholds: video {_fmt(t['video'])}, frame {_fmt(t['frame'])} ({t['source']}"
              + (f", rule `{t['rule']}`" if t.get("rule") else "") + ")",
              f"- videos without a scored frame: {report['no_face']['count']} "
              f"(rule `{report['no_face']['rule']}`)",
              f"- 95 % bootstrap intervals over videos ({report['meta']['n_boot']} replicates)", "",
              "| level | AUC | AP | EER | acc @thr | bal. acc @thr | acc @0.5 | log-loss |",
              "|---|---|---|---|---|---|---|---|"]
    for lv, d in (("video", v), ("frame", f)):
        half = d.get("metrics_at_0.5", d["metrics"])
        lines.append(f"| {lv} | {_with_ci(d, 'auc')} | {_with_ci(d, 'ap')} | {_with_ci(d, 'eer')} | "
                     f"{_with_ci(d, 'acc')} | {_with_ci(d, 'balanced_acc')} | {_fmt(half.get('acc'))} | "
                     f"{_with_ci(d, 'log_loss')} |")
    lines += _class_lines(report)
    for key, table in report.get("breakdown", {}).items():
        lines += ["", f"## Per {key} (video level)", "",
                  f"| {key} | compared with | videos | AUC [95 % CI] | acc @thr | TPR | TNR |",
                  "|---|---|---|---|---|---|---|"]
        for name, row in table.items():
            m, ci = row["video"], row["video_ci"]["auc"]
            auc = _fmt(m.get("auc")) + (f" [{_fmt(ci['lo'])}, {_fmt(ci['hi'])}]" if ci["n_valid"] else "")
            lines.append(f"| {name} | {row['compared_with']} | {row['n_videos']} | {auc} | "
                         f"{_fmt(m.get('acc'))} | {_fmt(m.get('tpr'))} | {_fmt(m.get('tnr'))} |")
    lines += sources_markdown(report.get("sources"))
    if report.get("warnings"):
        lines += ["", "## Warnings", ""] + [f"- {w}" for w in report["warnings"]]
    if image_prefix is not None:
        lines += [""] + [f"![{k}]({image_prefix}{k}.png)" for k in FIGURES]
    lines.append("")
    return "\n".join(lines)


def write_report(report: dict, out_dir: str | os.PathLike, *, figures: bool = True,
                 name: str = "report") -> dict[str, Path]:
    """Write ``<name>.json``, ``<name>.md`` and (``figures``) the PNG plots; returns the paths.

    PNGs are ``roc.png pr.png confusion.png histogram.png`` (prefixed ``<name>_`` when ``name`` is not
    ``report``, so several reports can share a folder).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / f"{name}.json", "md": out / f"{name}.md"}
    atomic_write_text(paths["json"], json.dumps(to_jsonable(report), indent=1, allow_nan=False))
    prefix = "" if name == "report" else f"{name}_"
    atomic_write_text(paths["md"], to_markdown(report, prefix if figures else None))
    if figures:
        for key, fig in make_figures(report).items():
            paths[key] = out / f"{prefix}{key}.png"
            fig.savefig(paths[key], dpi=100)
    return paths
