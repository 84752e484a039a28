"""The cross-dataset table: one checkpoint's frame and video AUC on the test split of several datasets.

The first table of every deepfake paper and of DeepfakeBench (train on FF++, test on Celeb-DF and DFDC).
Built from the per-dataset reports (:func:`evaluation.scoring.build_report`), written as JSON (one object
per dataset: ``dataset``, ``frame_auc``, ``video_auc`` with their intervals, ``n_videos``) and Markdown.
"""
from __future__ import annotations

import math
from pathlib import Path

from utils.core.fileio import atomic_write_json, atomic_write_text


def _auc(report: dict, level: str) -> tuple[float, float | None, float | None]:
    ci = report[level].get("ci", {}).get("auc", {})
    return report[level]["metrics"].get("auc", math.nan), ci.get("lo"), ci.get("hi")


def cross_dataset_row(dataset: str, report: dict) -> dict:
    """One dataset's row from its report."""
    frame, flo, fhi = _auc(report, "frame")
    video, vlo, vhi = _auc(report, "video")
    return {"dataset": dataset, "frame_auc": frame, "frame_auc_ci": [flo, fhi], "video_auc": video,
            "video_auc_ci": [vlo, vhi], "n_videos": report["video"]["n"],
            "balanced_acc": report["video"]["metrics"].get("balanced_acc", math.nan),
            "collapsed": bool(report.get("collapsed"))}


def markdown(rows: list[dict], title: str) -> str:
    """The table in Markdown (intervals in brackets)."""
    def f(v):
        return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"
    lines = [f"# {title}", "", "| test dataset | frame AUC [95 % CI] | video AUC [95 % CI] | videos |",
             "|---|---|---|---|"]
    for r in rows:
        (flo, fhi), (vlo, vhi) = r["frame_auc_ci"], r["video_auc_ci"]
        lines.append(f"| {r['dataset']} | {f(r['frame_auc'])} [{f(flo)}, {f(fhi)}] "
                     f"| {f(r['video_auc'])} [{f(vlo)}, {f(vhi)}] "
                     f"| {r['n_videos']}{' (collapsed)' if r['collapsed'] else ''} |")
    return "\n".join(lines) + "\n"


def write_cross_dataset(rows: list[dict], out_dir: str | Path, title: str) -> Path:
    """``cross_dataset.json`` and ``cross_dataset.md`` in ``out_dir``; returns the JSON path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "cross_dataset.md", markdown(rows, title))
    return atomic_write_json(out / "cross_dataset.json", rows)
