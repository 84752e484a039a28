"""Compare cross-validation experiments run on the same folds: paired tests, a table, a forest plot.

    python launch/compare.py runs/cv/bg-stage1-baseline runs/cv/bg-stage1-clahe
    python launch/compare.py runs/cv/A runs/cv/B runs/cv/C --out runs/cv/compare-abc   # Holm-adjusted

Each argument is an experiment folder written by ``launch/cv.py`` (or an experiment name under
``--cv-dir``). Experiments whose fold hashes differ are refused. Per metric: the fold-wise difference
(B − A for A listed first) with a paired t-test and a Wilcoxon signed-rank test, and on the pooled
out-of-fold videos a paired bootstrap (and DeLong's test for AUC). Writes ``compare.json``,
``compare.md`` and ``forest.png`` to ``--out`` (default: ``<cv-dir>/compare/<A>__<B>…``).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from evaluation.compare import METRICS, compare, fmt, load_experiment
from evaluation.compare_report import write_comparison
from utils.orchestration import cli


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("experiments", nargs="+", help="experiment folders (or names under --cv-dir)")
    ap.add_argument("--cv-dir", default="runs/cv", help="where experiment names are looked up")
    ap.add_argument("--metrics", nargs="+", default=list(METRICS), choices=METRICS)
    ap.add_argument("--n-boot", type=int, default=2000, help="paired bootstrap replicates")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="output folder")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cli.setup_logging()
    if len(args.experiments) < 2:
        return cli.fail("give at least two experiments to compare")
    paths = [Path(e) if Path(e).is_dir() else Path(args.cv_dir) / e for e in args.experiments]
    if missing := [str(p) for p in paths if not p.is_dir()]:
        return cli.fail(f"experiment folder(s) not found: {', '.join(missing)}", 1)
    experiments = [load_experiment(p) for p in paths]
    result = compare(experiments, tuple(args.metrics), n_boot=args.n_boot, seed=args.seed)
    out = Path(args.out) if args.out else Path(args.cv_dir) / "compare" / "__".join(e.name for e in experiments)
    write_comparison(result, out)
    for pair in result["pairs"]:
        row = pair["metrics"].get("auc") or next(iter(pair["metrics"].values()))
        print(f"{pair['b']} − {pair['a']}: AUC diff over folds {fmt(row['mean_diff']['mean'])} "
              f"(t-test p {fmt(row['t_test']['p'], 4)}, Wilcoxon p {fmt(row['wilcoxon']['p'], 4)}), pooled "
              f"{fmt(row['bootstrap']['diff'])} [{fmt(row['bootstrap']['lo'])}, {fmt(row['bootstrap']['hi'])}]")
    for w in result["warnings"]:
        print(f"warning: {w}", file=sys.stderr)
    print(f"-> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
