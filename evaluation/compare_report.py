"""Write a comparison (:func:`evaluation.compare.compare`): JSON, a Markdown table, a forest plot."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from evaluation.compare import fmt
from evaluation.report import to_jsonable
from utils.core.fileio import atomic_write_text


def _p(cell: dict | None, holm: bool) -> str:
    if not cell:
        return ""
    text = fmt(cell.get("p"), 4)
    return text + (f" (Holm {fmt(cell.get('p_holm'), 4)})" if holm and "p_holm" in cell else "")


def to_markdown(result: dict) -> str:
    names = ", ".join(f"`{e['name']}`" for e in result["experiments"])
    lines = [f"# Comparison: {names}", "",
             f"- {result['k']} shared folds (fold hash `{result['fold_hash'][:16]}`); differences are "
             f"{result['direction']}, video level",
             f"- fold-wise: paired t-test and Wilcoxon signed-rank; pooled: {result['pooled_auc_test']} "
             f"(AUC), paired bootstrap for the other metrics ({result['n_boot']} replicates)",
             "- Holm-adjusted p-values over the pairs" if result["holm"] else "- two experiments: no adjustment",
             "", "| A | B | metric | mean diff over folds [95 % t-CI] | paired t p | Wilcoxon p (method) | "
             "pooled diff [95 % bootstrap] | bootstrap p | DeLong p |", "|---|---|---|---|---|---|---|---|---|"]
    for pair in result["pairs"]:
        for m, row in pair["metrics"].items():
            md, bs = row["mean_diff"], row["bootstrap"]
            arrow = " (lower is better)" if row["lower_is_better"] else ""
            lines.append(f"| {pair['a']} | {pair['b']} | {m}{arrow} | {fmt(md['mean'])} [{fmt(md['lo'])}, "
                         f"{fmt(md['hi'])}] | {_p(row['t_test'], result['holm'])} | "
                         f"{_p(row['wilcoxon'], result['holm'])} ({row['wilcoxon']['method']}) | "
                         f"{fmt(bs['diff'])} [{fmt(bs['lo'])}, {fmt(bs['hi'])}] | {_p(bs, result['holm'])} | "
                         f"{_p(row.get('delong'), result['holm'])} |")
    if result["warnings"]:
        lines += ["", "## Warnings", ""] + [f"- {w}" for w in result["warnings"]]
    return "\n".join(lines + ["", "![forest](forest.png)", ""])


def forest_figure(result: dict):
    """One panel per metric: each pair's mean fold difference with its t-interval (circle) and the pooled
    bootstrap difference with its interval (square); the dotted line is no difference."""
    from matplotlib.figure import Figure   # lazy: matplotlib is heavy and only needed for figures
    metrics = list(result["pairs"][0]["metrics"])
    labels = [f"{p['b']} − {p['a']}" for p in result["pairs"]]
    fig = Figure(figsize=(3.2 * len(metrics), 1.2 + 0.5 * len(labels)), layout="constrained")
    for i, m in enumerate(metrics):
        ax = fig.add_subplot(1, len(metrics), i + 1)
        for j, pair in enumerate(result["pairs"]):
            row = pair["metrics"][m]
            md, bs = row["mean_diff"], row["bootstrap"]
            for y, (c, lo, hi), style in ((j + 0.12, (md["mean"], md["lo"], md["hi"]), "o"),
                                          (j - 0.12, (bs["diff"], bs["lo"], bs["hi"]), "s")):
                if np.isfinite(c):
                    err = [[c - lo], [hi - c]] if np.isfinite(lo) and np.isfinite(hi) else None
                    ax.errorbar(c, y, xerr=err, fmt=style, color="k" if style == "o" else "tab:blue", capsize=3)
        ax.axvline(0.0, color="grey", ls=":")
        ax.set(title=m + (" (lower better)" if result["pairs"][0]["metrics"][m]["lower_is_better"] else ""),
               yticks=range(len(labels)), yticklabels=labels if i == 0 else [""] * len(labels),
               ylim=(-0.6, len(labels) - 0.4))
    fig.suptitle("B − A: folds (circle, t-interval) and pooled videos (square, bootstrap)", fontsize=9)
    return fig


def write_comparison(result: dict, out_dir: str | os.PathLike) -> dict[str, Path]:
    """``compare.json``, ``compare.md`` and ``forest.png`` in ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "compare.json", "md": out / "compare.md", "forest": out / "forest.png"}
    atomic_write_text(paths["json"], json.dumps(to_jsonable(result), indent=1, allow_nan=False))
    atomic_write_text(paths["md"], to_markdown(result))
    forest_figure(result).savefig(paths["forest"], dpi=100)
    return paths
