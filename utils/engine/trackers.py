"""Experiment trackers through accelerate's tracker API: which ones a run logs to, and what each takes.

``logging.trackers`` names them (default ``[tensorboard]``; ``logging.tensorboard: false`` still turns
TensorBoard off, as in older recipes). :func:`build_trackers` makes one accelerate tracker per name for
``Accelerator(log_with=...)``; the trainer starts them with ``init_trackers`` (rank 0 only) and every
scalar goes to all of them through ``accelerator.log``. Images, figures and precision-recall curves go
only to the trackers that take them (:data:`TAKES`): TensorBoard and Weights & Biases take all three,
MLflow images and figures (as artifacts), the file trackers none.

* ``tensorboard``: ``<run>/tensorboard/`` event files, as before.
* ``wandb``: a W&B run named ``<model>-<stage folder>`` in project ``$WANDB_PROJECT`` (default
  ``deepfake-toolkit``), its files under ``<run>/wandb/`` unless ``$WANDB_DIR`` says otherwise;
  ``WANDB_MODE=offline`` writes the run folder without an account (``wandb sync`` uploads it later).
* ``mlflow``: a run of experiment ``$MLFLOW_EXPERIMENT_NAME`` (default ``deepfake-toolkit``) in the
  tracking store ``$MLFLOW_TRACKING_URI``, else a local file store ``<run>/mlruns``; the run config is
  logged as parameters.
* ``jsonl`` / ``csv``: ``<run>/tracking/scalars.jsonl`` (one object per log call: step, time, values)
  and ``<run>/tracking/scalars.csv`` (one row per value: step, time, name, value). A resumed run
  appends; where a step was logged twice, the later row is the one that counts.

A tracker whose package is not installed is refused when the accelerator is made, before anything is
trained or written, with the command that installs it (:class:`TrackerUnavailable`, exit status 2).
"""
from __future__ import annotations

import csv
import importlib.util
import json
import os
import time
from pathlib import Path

import numpy as np
from accelerate import Accelerator
from accelerate.tracking import GeneralTracker, MLflowTracker, TensorBoardTracker, WandBTracker
from sklearn.metrics import precision_recall_curve

from utils.core.config import TRACKER_NAMES, Config, LoggingConfig
from utils.core.errors import InputError

PROJECT = "deepfake-toolkit"
# tracker -> (module it imports, the pip command that installs it); None: nothing beyond the toolkit
PACKAGES = {"tensorboard": ("tensorboard", "pip install tensorboard"),
            "wandb": ("wandb", "pip install 'deepfake-toolkit[wandb]' (or: pip install wandb)"),
            "mlflow": ("mlflow", "pip install 'deepfake-toolkit[mlflow]' (or: pip install mlflow)"),
            "jsonl": None, "csv": None}
# what each tracker takes besides scalars
TAKES = {"tensorboard": {"image", "figure", "pr_curve"}, "wandb": {"image", "figure", "pr_curve"},
         "mlflow": {"image", "figure"}, "jsonl": set(), "csv": set()}
assert set(PACKAGES) == set(TAKES) == set(TRACKER_NAMES)


class TrackerUnavailable(InputError):
    """A tracker the recipe names cannot run here (its package is missing, or it failed to start)."""

    exit_code = 2   # like a usage error: nothing ran, and the message says what to install or set


def configured(logging_cfg: LoggingConfig) -> list[str]:
    """The trackers a run logs to: ``logging.trackers`` in order, without TensorBoard when
    ``logging.tensorboard`` is false."""
    names = dict.fromkeys(logging_cfg.trackers)
    return [n for n in names if n != "tensorboard" or logging_cfg.tensorboard]


def check_trackers(logging_cfg: LoggingConfig) -> list[str]:
    """:func:`configured`, after checking that every package they need is installed."""
    names = configured(logging_cfg)
    for name in names:
        need = PACKAGES[name]
        if need and importlib.util.find_spec(need[0]) is None:
            raise TrackerUnavailable(f"logging.trackers names '{name}', but the {need[0]} package is not "
                                     f"installed: {need[1]}; or drop '{name}' from logging.trackers")
    return names


class FileTracker(GeneralTracker):
    """Scalars appended to a file under ``<run>/tracking/`` (``jsonl`` or ``csv``), rank 0 only."""

    requires_logging_directory = False
    main_process_only = True
    suffix = ""

    def __init__(self, run_dir: str | os.PathLike):
        super().__init__()
        self.path = Path(run_dir) / "tracking" / f"scalars.{self.suffix}"

    @property
    def tracker(self) -> Path:
        return self.path

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def log(self, values: dict, step: int | None = None, **kwargs) -> None:
        if not values:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", newline="") as f:
            self.write(f, values, step, round(time.time(), 3))

    def write(self, f, values: dict, step: int | None, now: float) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class JsonlTracker(FileTracker):
    name, suffix = "jsonl", "jsonl"

    def write(self, f, values: dict, step: int | None, now: float) -> None:
        f.write(json.dumps({"step": step, "time": now, **values}, default=str) + "\n")


class CsvTracker(FileTracker):
    name, suffix = "csv", "csv"
    columns = ("step", "time", "name", "value")

    def write(self, f, values: dict, step: int | None, now: float) -> None:
        out = csv.writer(f)
        if f.tell() == 0:
            out.writerow(self.columns)
        out.writerows([step, now, k, v] for k, v in values.items())


class LocalMLflowTracker(MLflowTracker):
    """accelerate's MLflow tracker, with a local file store in the run folder when no tracking URI is set."""

    def __init__(self, store: Path, **kwargs):
        super().__init__(**kwargs)
        self.store = store

    def start(self) -> None:
        import mlflow   # lazy: an optional package, imported only when the run logs to MLflow
        if not os.environ.get("MLFLOW_TRACKING_URI"):
            mlflow.set_tracking_uri(self.store.resolve().as_uri())
        super().start()


def run_name(cfg: Config, run_dir: Path) -> str:
    return f"{cfg.model.name or 'model'}-{Path(run_dir).name}"


def build_trackers(cfg: Config, run_dir: str | os.PathLike) -> list[GeneralTracker]:
    """One accelerate tracker per configured name (checked first), for ``Accelerator(log_with=...)``;
    nothing starts until ``init_trackers``."""
    run_dir = Path(run_dir)
    out: list[GeneralTracker] = []
    for name in check_trackers(cfg.logging):
        if name == "tensorboard":
            out.append(TensorBoardTracker("tensorboard", run_dir))    # <run>/tensorboard/, as before
        elif name == "wandb":
            kwargs = {"name": run_name(cfg, run_dir), "config": cfg.to_dict()}
            if not os.environ.get("WANDB_DIR"):
                kwargs["dir"] = str(run_dir)
            out.append(WandBTracker(os.environ.get("WANDB_PROJECT") or PROJECT, **kwargs))
        elif name == "mlflow":
            out.append(LocalMLflowTracker(run_dir / "mlruns", experiment_name=PROJECT,
                                          run_name=run_name(cfg, run_dir)))
        else:
            out.append((JsonlTracker if name == "jsonl" else CsvTracker)(run_dir))
    return out


def flat_config(values: dict, prefix: str = "") -> dict:
    """A nested config as ``{"section.key": value}`` with lists and None as strings (tracker parameters)."""
    out = {}
    for k, v in values.items():
        if isinstance(v, dict) and v:
            out.update(flat_config(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v if isinstance(v, (bool, int, float, str)) else str(v)
    return out


def start_trackers(acc: Accelerator, cfg: Config) -> None:
    """Start the accelerator's trackers once (``init_trackers``: rank 0 only); MLflow gets the config as
    parameters (W&B got it when built). A tracker that fails to start stops the run with its reason."""
    if not acc.log_with or acc.trackers:
        return
    try:
        acc.init_trackers(PROJECT)
        for tracker in acc.trackers:
            if tracker.name == "mlflow":
                tracker.store_init_configuration(flat_config(cfg.to_dict()))
    except Exception as e:   # noqa: BLE001 - a third-party tracker's start (login, store): the user's to fix
        raise TrackerUnavailable(f"an experiment tracker failed to start ({type(e).__name__}: {e}); for W&B "
                                 "without an account set WANDB_MODE=offline") from None


def takes(acc: Accelerator, what: str) -> bool:
    """Whether any started tracker takes ``what`` (``image``, ``figure``, ``pr_curve``)."""
    return any(what in TAKES.get(t.name, ()) for t in acc.trackers)


def log_image(acc: Accelerator, tag: str, image: np.ndarray, step: int) -> None:
    """An H×W×3 image (uint8, or float in [0, 1]) to every tracker that takes images."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = (np.clip(image, 0.0, 1.0) * 255).round().astype(np.uint8)
    for t in acc.trackers:
        if "image" not in TAKES.get(t.name, ()):
            continue
        if t.name == "tensorboard":
            t.tracker.add_image(tag, image, global_step=step, dataformats="HWC")
        elif t.name == "wandb":
            import wandb   # lazy: optional, and only reached when a W&B run is open
            t.tracker.log({tag: wandb.Image(image)}, step=step)
        elif t.name == "mlflow":
            import mlflow   # lazy: optional, and only reached when an MLflow run is open
            mlflow.log_image(image, f"{tag}_step{step}.png")


def log_figures(acc: Accelerator, figures: dict, step: int, prefix: str = "") -> None:
    """Matplotlib figures (``{name: Figure}``) to every tracker that takes figures, as ``<prefix><name>``."""
    for t in acc.trackers:
        if "figure" not in TAKES.get(t.name, ()):
            continue
        for key, fig in figures.items():
            if t.name == "tensorboard":
                t.tracker.add_figure(f"{prefix}{key}", fig, global_step=step, close=False)
            elif t.name == "wandb":
                import wandb   # lazy: optional, and only reached when a W&B run is open
                t.tracker.log({f"{prefix}{key}": wandb.Image(fig)}, step=step)
            elif t.name == "mlflow":
                t.log_figure(fig, f"{prefix}{key}.png")


def log_pr_curve(acc: Accelerator, tag: str, labels: np.ndarray, probs: np.ndarray, step: int,
                 names: tuple[str, ...] = ("real", "fake")) -> None:
    """A binary precision-recall curve (``probs``: N×2) to every tracker that takes one."""
    for t in acc.trackers:
        if "pr_curve" not in TAKES.get(t.name, ()):
            continue
        if t.name == "tensorboard":
            t.tracker.add_pr_curve(tag, labels, probs[:, 1], global_step=step)
        elif t.name == "wandb":   # a line plot of the curve's points (W&B's own pr_curve needs pandas)
            import wandb   # lazy: optional, and only reached when a W&B run is open
            precision, recall, _ = precision_recall_curve(np.asarray(labels) == 1, probs[:, 1])
            keep = np.unique(np.linspace(0, len(recall) - 1, min(len(recall), 256)).round().astype(int))
            table = wandb.Table(columns=["recall", "precision"],
                                data=[[float(recall[i]), float(precision[i])] for i in keep])
            t.tracker.log({tag: wandb.plot.line(table, "recall", "precision", title=f"{tag} ({names[1]})")},
                          step=step)
