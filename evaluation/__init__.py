"""Evaluation: metrics, video-level aggregation, bootstrap intervals, collapse guard, reports, prediction.

The usual path (also the trainer's at the end of a stage)::

    preds = predict_loader(model, loader, accelerator)          # FramePredictions
    report = build_report(preds, val_preds=val_preds)   # JSON-able dict
    write_report(report, out_dir)                               # report.json/.md + PNGs
"""
from evaluation.scoring import build_report, summary_scalars
from utils.engine.inference import predict_loader
from evaluation.metrics import choose_threshold, compute_metrics
from utils.engine.predictions import FramePredictions
from evaluation.report import make_figures, write_report

__all__ = ["FramePredictions", "choose_threshold", "compute_metrics", "build_report", "make_figures",
           "predict_loader", "summary_scalars", "write_report"]
