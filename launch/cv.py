"""Grouped k-fold cross-validation of one model on one recipe stage's dataset.

    python launch/cv.py --config launch/configs/curriculum.yaml --model tm --folds 5 --stage 1
    accelerate launch launch/cv.py --config my_recipe.yaml --model bg --folds 5 --seed 42
    python launch/cv.py --config my_recipe.yaml --model bg --folds 5 --hold-out-source NeuralTextures

The dataset's groups (identities, basenames) are dealt into stratified folds once, written to
``<output-dir>/folds/`` and reused by every experiment on the same data, seed and fold count, so two
recipes compared later (``launch/compare.py``) have identical folds. The dataset's test split stays out
of the folds and is scored by every fold's model as a fixed test set. Inside each fold's training part
a grouped validation split (the recipe's validation share, or ``--val-fraction``) drives early
stopping, the learning-rate plateau and the decision threshold. Folds resume where they stopped; a
finished fold is skipped. Results: ``<output-dir>/<experiment>/cv.{json,md}``, PNGs, TensorBoard.

``--seed`` seeds the folds and the inner validation splits; training keeps the recipe's
``trainer.seed`` (``--set trainer.seed=…``).
"""
from __future__ import annotations

import argparse
import math
import os
import sys

from utils.core.recipe import load_recipe
from utils.core.registry import list_models
from utils.orchestration import cli
from utils.orchestration.cv import plan_cv, run_cv

DEFAULT_RECIPE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "curriculum.yaml")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="a registered model name")
    ap.add_argument("--config", default=DEFAULT_RECIPE, help="recipe YAML (default: %(default)s)")
    ap.add_argument("--stage", type=int, default=None, help="recipe stage whose data and settings to use "
                    "(default: the first defined)")
    ap.add_argument("--folds", type=int, default=5, help="number of outer folds (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=42, help="seed of the fold assignment (default: %(default)s)")
    ap.add_argument("--val-fraction", type=float, default=None,
                    help="share of each training part held out for validation (default: the recipe's own "
                         "validation share, else 0.2)")
    ap.add_argument("--hold-out-source", default=None, metavar="SOURCE",
                    help="train and validate without this source (a record method); Δ is reported")
    ap.add_argument("--experiment", default="", help="experiment name (default: <model>-stage<k>-<recipe>)")
    ap.add_argument("--output-dir", default="runs/cv", help="experiments and the fold files go here")
    ap.add_argument("--folds-dir", default=None, help="fold files (default: <output-dir>/folds)")
    ap.add_argument("--init", default=None, help="every fold starts from these exported weights")
    ap.add_argument("--no-train-gap", action="store_true", help="do not score the training part")
    ap.add_argument("--n-boot", type=int, default=1000, help="bootstrap replicates of the pooled intervals")
    ap.add_argument("--set", nargs="*", default=[], metavar="SECTION.KEY=VALUE", help="config overrides")
    return ap.parse_args(argv)


def _f(v) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{v:.3f}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cli.setup_logging()
    if args.model not in list_models():
        return cli.fail(f"unknown model '{args.model}'; registered models: {', '.join(list_models())}")
    if args.init and not os.path.isfile(args.init):
        return cli.fail(f"--init {args.init}: file not found")
    plan = plan_cv(load_recipe(args.config), args.model, k=args.folds, stage=args.stage, seed=args.seed,
                   output_dir=args.output_dir, overrides=args.set, experiment=args.experiment,
                   held_out=args.hold_out_source, val_fraction=args.val_fraction, folds_dir=args.folds_dir,
                   recipe=args.config)
    cv = run_cv(plan, init=args.init, train_gap=not args.no_train_gap, n_boot=args.n_boot)
    if cli.process_rank() == 0:
        s, p = cv["summary"]["video"], cv["pooled"]
        line = ", ".join(f"{m} {_f(s[m]['mean'])} ± {_f(s[m]['std'])}" for m in ("auc", "balanced_acc", "eer")
                         if m in s)
        print(f"[{plan.experiment}] {plan.folds.k} folds: video {line}; pooled AUC {_f(p['metrics']['auc'])} "
              f"[{_f(p['ci']['auc']['lo'])}, {_f(p['ci']['auc']['hi'])}] -> {plan.out}")
        if cv.get("holdout"):
            h = cv["holdout"]
            print(f"hold-out {h['held_out']}: Δ = {_f(h['delta'])}{' FLAGGED' if h['flagged'] else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
