"""One trainer for every model, on accelerate's canonical loop.

The loop is accumulate -> backward -> clip when gradients sync -> step; validation gathers predictions
from every rank with ``gather_for_metrics``; ReduceLROnPlateau and early stopping act on the globally
reduced monitored metric, the same decision on every rank; resumable state is saved every N steps and
at each epoch end; the best weights are exported on every improvement and restored at the end. The
trainer never names a model: it calls ``model(batch)`` and ``model.loss(outputs, batch)`` and logs
every scalar returned. What validation measures is passed in (``validation``), so the engine does not
depend on the evaluation layer.
"""
from __future__ import annotations

import json
import logging
import math
import signal
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import broadcast_object_list
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from utils.core.checkpoint import export_weights, load_weights, unwrap
from utils.core.config import Config
from utils.core.fileio import read_state_dict, write_failure
from utils.core.losses import build_loss
from utils.core.signals import StopRequest, Stopped
from utils.engine.inference import predict_loader
from utils.engine.predictions import FramePredictions
from utils.engine import persistence
from utils.engine.setup import build_optimizer, build_plateau, make_accelerator, make_loader, seed_everything
from utils.engine.state import TrainerState, update_early_stopping
from utils.engine.trackers import log_image, log_pr_curve, start_trackers, takes

logger = logging.getLogger(__name__)

Phase = tuple[str, Callable[[], Dataset]]
Validation = Callable[[FramePredictions], dict]


def basic_validation(preds: FramePredictions) -> dict:
    """What validation measures when no richer function is given: loss and accuracy."""
    probs, labels = preds.probs, preds.labels
    return {"val/loss": float(torch.nn.functional.nll_loss(torch.log(torch.from_numpy(probs).clamp_min(1e-7)),
                                                           torch.from_numpy(labels).long())),
            "val/acc": float((probs.argmax(1) == labels).mean()) if len(labels) else float("nan")}


class Trainer:
    """Train one model for one stage.

    Args:
        model: a DeepfakeModel (forward(batch) -> {"logits", ...}; loss(outputs, batch) -> {"loss", ...}).
        cfg: the resolved run config.
        run_dir: where state, weights, logs and metrics go.
        train_data: a Dataset, or a list of (name, builder) phases walked in order with
            ``trainer.epochs_per_chunk`` epochs each (DFDC chunks).
        val_data: the validation Dataset (fixed for the stage).
        export_meta: sidecar fields of the exported weights (model name, model kwargs, stage...).
        validation: validation predictions -> ``{"val/<name>": value}``; a ``val/threshold`` entry is
            recorded in the sidecar as the decision threshold (default: :func:`basic_validation`).
    """

    def __init__(self, model: torch.nn.Module, cfg: Config, run_dir: str | Path,
                 train_data: Dataset | Sequence[Phase], val_data: Dataset, *,
                 export_meta: dict | None = None, accelerator: Accelerator | None = None,
                 validation: Validation | None = None):
        self.cfg, self.run_dir = cfg, Path(run_dir)
        self.phases: list[Phase] = (list(train_data) if isinstance(train_data, (list, tuple))
                                    else [("all", lambda d=train_data: d)])
        self.epochs_per_phase = cfg.trainer.epochs_per_chunk or cfg.trainer.epochs
        self.total_epochs = self.epochs_per_phase * len(self.phases)
        self.export_meta = export_meta or {}
        self.validation = validation or basic_validation
        self.acc = accelerator or make_accelerator(cfg, self.run_dir)
        seed_everything(cfg.trainer.seed, cfg.trainer.deterministic)
        self.state = TrainerState(model=self.export_meta.get("model", ""))
        self.stop = StopRequest()
        self.raw_model = model
        if cfg.trainer.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.optimizer = build_optimizer(model, cfg)
        self.base_lrs = [g["lr"] for g in self.optimizer.param_groups]
        self.plateau = build_plateau(self.optimizer, cfg)
        if cfg.trainer.compile:  # in place: no _orig_mod. wrapper, so state, export and --init keys stay plain
            model.compile(backend=cfg.trainer.compile_backend)
        self.model, self.optimizer = self.acc.prepare(model, self.optimizer)
        self.val_loader = self.acc.prepare(self._loader(val_data, train=False))
        self._phase_cache: tuple[int, DataLoader, Dataset] | None = None
        self._sampler = None

    def _loader(self, dataset: Dataset, train: bool) -> DataLoader:
        return make_loader(dataset, self.cfg, self.acc.num_processes, train, self.acc.device.type == "cuda")

    def _phase_loader(self, phase: int) -> tuple[DataLoader, Dataset]:
        """The prepared train loader of ``phase``, built once per phase (chunks are built lazily)."""
        if self._phase_cache is None or self._phase_cache[0] != phase:
            name, build = self.phases[phase]
            dataset = build()
            o = self.cfg.optim
            self.raw_model.criterion = build_loss(
                o.loss, self.raw_model.num_classes, getattr(dataset, "labels", None),
                label_smoothing=o.label_smoothing, focal_gamma=o.focal_gamma, focal_alpha=o.focal_alpha)
            loader = self._loader(dataset, train=True)
            self._phase_cache = (phase, self.acc.prepare(loader), dataset)
            self._sampler = loader.sampler   # ours, inside whatever accelerate wraps around it
            logger.info("phase %d/%d (%s): %d training samples", phase + 1, len(self.phases), name, len(dataset))
        return self._phase_cache[1], self._phase_cache[2]

    # ------------------------------------------------------------------ state
    @property
    def ckpt_root(self) -> Path:
        return self.run_dir / "checkpoints"

    @property
    def best_path(self) -> Path:
        return self.run_dir / "best.safetensors"

    def save_state(self) -> None:
        """Resumable state into ``checkpoints/step_<global step>/``, atomically, keeping the last N."""
        self.state.plateau = self.plateau.state_dict()
        persistence.save(self.acc, self.ckpt_root, self.state, self.cfg.trainer.keep_last)

    def resume(self, resume: str = "auto") -> bool:
        """Load resumable state: ``auto`` = newest in the run folder, ``never`` (start afresh), or a folder."""
        if self.acc.is_main_process:
            persistence.clean_leftovers(self.run_dir, self.ckpt_root)
        path = persistence.find(self.ckpt_root, resume)
        if path is None:
            return False
        self.state = persistence.load(self.acc, path, self.state.model)
        if self.state.plateau:
            self.plateau.load_state_dict(self.state.plateau)
        self._trim_metrics_log()
        logger.info("resumed from %s: epoch %d, step %d in epoch, global step %d", path,
                    self.state.epoch, self.state.step_in_epoch, self.state.global_step)
        return True

    def _stop_if_asked(self, just_saved: bool = False) -> None:
        """After an optimizer step: when any rank got a stop signal, every rank saves and stops here."""
        if not persistence.any_rank(self.acc, bool(self.stop)):
            return
        if not just_saved:
            self.save_state()
        st = self.state
        name = self.stop.name or "a stop signal (on another rank)"
        signum = self.stop.signum or signal.SIGTERM
        raise Stopped(f"stopped by {name} at epoch {st.epoch + 1}, step {st.step_in_epoch} "
                      f"(global step {st.global_step}); resumable state saved in {self.ckpt_root}: run the "
                      "same command to continue", signum)

    # ------------------------------------------------------------------ logging
    def _log(self, values: dict, step: int) -> None:
        values = {k: float(v) for k, v in values.items() if v is not None and np.isfinite(float(v))}
        self.acc.log(values, step=step)
        if self.acc.is_main_process:
            path = self.run_dir / "metrics.jsonl"
            try:
                with open(path, "a") as f:
                    f.write(json.dumps({"step": step, "epoch": self.state.epoch, **values}) + "\n")
            except OSError as e:
                raise write_failure(path, e) from None

    def _trim_metrics_log(self) -> None:
        """After a resume, drop log lines past the resumed step (they are about to be redone)."""
        path = self.run_dir / "metrics.jsonl"
        if self.acc.is_main_process and path.is_file():
            lines = [ln for ln in path.read_text().splitlines()
                     if ln.strip() and json.loads(ln)["step"] <= self.state.global_step]
            path.write_text("".join(ln + "\n" for ln in lines))

    # ------------------------------------------------------------------ loop
    def fit(self, close: bool = True) -> TrainerState:
        """Train until the epochs run out or early stopping fires; restore the best weights.

        ``close=False`` keeps the trackers open for logging after training (end-of-stage evaluation);
        call :meth:`close` then.
        """
        self.run_dir.mkdir(parents=True, exist_ok=True)
        start_trackers(self.acc, self.cfg)   # logging.trackers, through init_trackers (rank 0 only)
        with StopRequest() as self.stop:
            while not self.state.finished and self.state.epoch < self.total_epochs:
                self.train_one_epoch()
                metrics = self.validate()
                self.end_of_epoch(metrics)
                self._stop_if_asked(just_saved=True)
        self.finish()
        if close:
            self.close()
        return self.state

    def train_one_epoch(self) -> None:
        st, t = self.state, self.cfg.trainer
        loader, dataset = self._phase_loader(st.epoch // self.epochs_per_phase)
        if hasattr(dataset, "set_epoch"):   # per-sample augmentation seeds: (seed, epoch, index)
            dataset.set_epoch(st.epoch, seed=t.seed)
        n_batches = len(loader) if not t.max_steps_per_epoch else min(len(loader), t.max_steps_per_epoch * t.grad_accum)
        batches = self.acc.skip_first_batches(loader, st.step_in_epoch) if st.step_in_epoch else loader
        # accelerate re-seeds the sampler with its loader's own iteration count on every __iter__;
        # a loader built for a resume starts that count at 0, so set it to the stage's epoch — and on
        # our sampler itself: under several processes the skipping loader does not reach it.
        batches.set_epoch(st.epoch)
        self._sampler.set_epoch(st.epoch)
        self.model.train()
        bar = tqdm(total=n_batches, initial=st.step_in_epoch, desc=f"epoch {st.epoch + 1}/{self.total_epochs}",
                   disable=not (self.acc.is_main_process and self.cfg.logging.progress_bar), leave=False)
        tick, seen = time.perf_counter(), 0
        for batch in batches:
            if st.step_in_epoch >= n_batches:
                break
            if st.global_step == 0 and st.step_in_epoch == 0:
                self._log_image_grid(batch)
            losses, grad_norm = self.train_step(batch)
            st.step_in_epoch += 1
            seen += len(batch["label"]) * self.acc.num_processes
            bar.update(1)
            if not self.acc.sync_gradients:
                continue
            st.global_step += 1
            if st.global_step % self.cfg.logging.log_every_steps == 0:
                rate = seen / max(time.perf_counter() - tick, 1e-9)
                self._log_train(losses, grad_norm, rate)
                tick, seen = time.perf_counter(), 0
            if t.checkpoint_every_steps and st.global_step % t.checkpoint_every_steps == 0:
                self.save_state()
            self._stop_if_asked()
        bar.close()

    def train_step(self, batch: dict) -> tuple[dict, float | None]:
        """One micro-batch: forward, loss, backward; clip and step when gradients sync."""
        # a per-step seed makes dropout/sampling noise a function of the step, so a resumed run
        # draws exactly what the uninterrupted run drew.
        torch.manual_seed(self.cfg.trainer.seed * 1_000_003 + self.state.global_step * 97
                          + self.state.step_in_epoch * 7 + self.acc.process_index)
        grad_norm = None
        with self.acc.accumulate(self.model):
            with self.acc.autocast():
                outputs = self.model(batch)
                losses = self.raw_model.loss(outputs, batch)
            if not torch.isfinite(losses["loss"]):
                raise FloatingPointError(f"non-finite loss at global step {self.state.global_step}: {losses}")
            self.acc.backward(losses["loss"])
            if self.acc.sync_gradients:
                clip = self.cfg.optim.grad_clip or float("inf")
                grad_norm = float(self.acc.clip_grad_norm_(self.model.parameters(), clip))
                self._warm_up()
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        return {k: float(v.detach()) for k, v in losses.items() if torch.is_tensor(v) and v.numel() == 1}, grad_norm

    def _warm_up(self) -> None:
        """Linear learning-rate warm-up over the first ``optim.warmup_steps`` optimizer steps of a stage
        (a random head's first gradients are large; full steps then can wreck normalisation statistics)."""
        n = self.cfg.optim.warmup_steps
        if n and self.state.global_step < n:
            for group, base in zip(self.optimizer.param_groups, self.base_lrs):
                group["lr"] = base * (self.state.global_step + 1) / n
        elif n and self.state.global_step == n:
            for group, base in zip(self.optimizer.param_groups, self.base_lrs):
                group["lr"] = base

    def _log_train(self, losses: dict, grad_norm: float | None, rate: float) -> None:
        values = {f"train/{k}": v for k, v in losses.items()}
        values.update({"train/lr": self.optimizer.param_groups[0]["lr"], "train/samples_per_s": rate})
        if grad_norm is not None:
            values["train/grad_norm"] = grad_norm
        self._log(values, self.state.global_step)

    def _log_image_grid(self, batch: dict, n: int = 16) -> None:
        """The stage's first training batch as the model sees it (after augmentation), to the trackers that
        take images."""
        if not (self.cfg.logging.image_grid and self.acc.is_main_process and takes(self.acc, "image")):
            return
        from torchvision.utils import make_grid
        images = batch.get("image", batch.get("clip"))
        if images is None:
            return
        images = images[:n, 0] if images.ndim == 5 else images[:n]   # clips: their first frame
        grid = make_grid(images.detach().cpu(), nrow=8)
        log_image(self.acc, "train/batch", grid.permute(1, 2, 0).numpy(), step=0)

    def validate(self) -> dict:
        """Validation metrics, identical on every rank (computed on gathered data, broadcast from rank 0)."""
        preds = predict_loader(self.model, self.val_loader, self.acc, max_batches=self.cfg.trainer.val_max_batches)
        metrics = {k: float(v) for k, v in self.validation(preds).items()} if self.acc.is_main_process else {}
        box = [metrics]
        broadcast_object_list(box, from_process=0)
        if self.acc.is_main_process:
            self._log_pr_curve(preds.probs, preds.labels)
        return box[0]

    def _log_pr_curve(self, probs: np.ndarray, labels: np.ndarray) -> None:
        if probs.shape[1] == 2 and takes(self.acc, "pr_curve"):
            log_pr_curve(self.acc, "val/pr_curve", labels, probs, self.state.global_step)

    def end_of_epoch(self, metrics: dict) -> None:
        """Plateau step, early stopping, best-weights export and a state checkpoint."""
        t, st = self.cfg.trainer, self.state
        if t.monitor not in metrics:
            raise KeyError(f"trainer.monitor '{t.monitor}' is not a validation metric; have {sorted(metrics)}")
        value = metrics[t.monitor]
        self.plateau.step(value if math.isfinite(value) else (-math.inf if t.monitor_mode == "max" else math.inf))
        is_best, stop = update_early_stopping(st, value, t.monitor_mode, t.early_stopping_min_delta,
                                              t.early_stopping_patience)
        st.history.append({"epoch": st.epoch, **metrics})
        self._log({**metrics, "val/lr": self.optimizer.param_groups[0]["lr"]}, st.global_step)
        logger.info("epoch %d: %s=%.4f (best %.4f @ epoch %d)%s", st.epoch + 1, t.monitor, value,
                    st.best_metric if st.best_metric is not None else float("nan"), st.best_epoch + 1,
                    "  new best" if is_best else "")
        if is_best and self.acc.is_main_process:
            self.export(self.best_path, {"best_epoch": st.epoch, **metrics})
        st.epoch, st.step_in_epoch = st.epoch + 1, 0
        if stop:
            logger.info("early stopping: no improvement of %s in %d validations", t.monitor, st.bad_validations)
            st.stopped_early = True
        st.finished = stop or st.epoch >= self.total_epochs
        self.save_state()

    def export(self, path: Path, metrics: dict) -> None:
        """Best weights + sidecar; the validation threshold, when measured, is the decision threshold."""
        meta = {**self.export_meta, "config": self.cfg.to_dict(), "metrics": metrics,
                "threshold": metrics.get("val/threshold"), "threshold_frame": metrics.get("val/threshold_frame"),
                "threshold_source": "validation" if "val/threshold" in metrics else None}
        export_weights(unwrap(self.model), path, meta)

    def finish(self) -> None:
        """Restore the best weights on every rank and record the stage as finished."""
        self.acc.wait_for_everyone()
        if not self.best_path.is_file() and self.acc.is_main_process:
            # no validation ever improved (every value NaN): the last weights are this run's best
            logger.warning("no validation of %s improved; exporting the last weights as the best",
                           self.cfg.trainer.monitor)
            self.export(self.best_path, self.state.history[-1] if self.state.history else {})
        self.acc.wait_for_everyone()
        load_weights(unwrap(self.model), read_state_dict(self.best_path), source=str(self.best_path))
        self.state.finished = True
        if self.acc.is_main_process:
            self.state.save(self.run_dir / "trainer_state.json")
        self.acc.wait_for_everyone()

    def close(self, keep_process_group: bool = False) -> None:
        """Flush and close the trackers, and the process group unless ``keep_process_group`` (a caller
        that runs several stages in one process, e.g. the folds of a cross-validation)."""
        if keep_process_group:
            for tracker in self.acc.trackers:
                tracker.finish()
        else:
            self.acc.end_training()
