"""Import another codebase's checkpoint as this toolkit's exported weights (safetensors + sidecar).

``import_checkpoint(src, fmt, arch, out)``: read the file without unpickling code, take off the
wrappers, apply the architecture's mapping rules, refuse what cannot work (no head, another
architecture, a required part missing), load the result *strictly* into the registered model and
export it with :func:`utils.core.checkpoint.export_weights`. The sidecar records the upstream file, its
container and wrappers, every dropped key with the rule and reason that dropped it, and the notes of
the mapping (label order, behaviour that differs from upstream). From then on the file is like any
other exported checkpoint: ``predict``, ``evaluate``, ensembles and ``train.py --init`` read it.
"""
from __future__ import annotations

import datetime as _dt
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from utils.core.checkpoint import export_weights, load_weights
from utils.core.errors import CheckpointError, UsageError
from utils.core.interop.inspect import (MatchReport, detector_heads, dry_run, find_heads, holdings,
                                        looks_like, rank_mappings)
from utils.core.interop.mapping import KeyMapping, MappingResult, formats, get_mapping
from utils.core.interop.reading import ForeignCheckpoint, read_foreign
from utils.core.registry import create_model

logger = logging.getLogger(__name__)


class HeadlessCheckpoint(CheckpointError):
    """The checkpoint holds no classifier head: it cannot say real or fake."""


class ArchitectureMismatch(CheckpointError):
    """The checkpoint is not of the architecture (or layout) asked for."""


class MissingRequiredKeys(CheckpointError):
    """A part the architecture cannot run without is absent (e.g. F3Net's FAD head)."""


HEADLESS_ADVICE = (
    "What you can do: import the full detector checkpoint its training run saved (DeepfakeBench and "
    "GenConViT save the classifier with the network); or use these weights as a backbone initialisation "
    "(model.pretrained_path) and train a head with launch/train.py. A head cannot be recovered from an "
    "encoder, and running one with a random head gives ~50 % accuracy.")


@dataclass
class ImportPlan:
    """A checked mapping, ready to load: what goes where, what is dropped, the builder arguments."""

    checkpoint: ForeignCheckpoint
    mapping: KeyMapping
    result: MappingResult
    report: MatchReport
    model_kwargs: dict


def _head_hint(mapping: KeyMapping) -> str:
    return mapping.head_hint or " or ".join(mapping.head)


def plan_import(ck: ForeignCheckpoint, mapping: KeyMapping) -> ImportPlan:
    """Apply ``mapping`` to ``ck`` and refuse, with an explanation, whatever would not load exactly.

    Raises:
        HeadlessCheckpoint: no classifier head anywhere in the file.
        MissingRequiredKeys: a required part is absent (F3Net without ``FAD_head``).
        ArchitectureMismatch: keys or shapes do not fit; names the first mismatches and what the file
            looks like.
    """
    state, name = ck.state, f"{ck.path}"
    what = f"{mapping.format} {mapping.arch}"
    if not mapping.head_keys(state):
        det = detector_heads(state)
        if not det:
            others = [h.line() + f" ({h.kind})" for h in find_heads(state)]
            extra = (f" Its only classifier-like layers are {', '.join(others[:3])}: not a real/fake head."
                     if others else "")
            raise HeadlessCheckpoint(
                f"{name}: no classifier head. The file holds {holdings(ck)}; no classifier "
                f"(a {what} checkpoint keeps it in {_head_hint(mapping)}).{extra} {HEADLESS_ADVICE}")
        raise ArchitectureMismatch(
            f"{name} is not a {what} checkpoint: its head {det[-1].line()} is not where {mapping.arch} "
            f"keeps it ({_head_hint(mapping)}). It looks like {looks_like(state, exclude=mapping)}.")
    if mapping.validate is not None:
        try:
            mapping.validate(state)
        except ValueError as e:
            raise ArchitectureMismatch(f"{name}: {e}") from None
    report = dry_run(state, mapping)
    if report.missing_required:
        other = looks_like(state, exclude=mapping)
        raise MissingRequiredKeys(
            f"{name}: {mapping.arch} needs {'; '.join(report.missing_required)}, which the checkpoint lacks. "
            f"Refusing to run without it (a loader that skipped it would feed the network garbage). "
            f"The file holds {holdings(ck)}; it looks like {other}.")
    if not report.fits:
        raise ArchitectureMismatch(
            f"{name} does not fit {what}: " + "; ".join(report.problems(3))
            + f". It looks like {looks_like(state, exclude=mapping)}.")
    result = mapping.apply(state)
    return ImportPlan(ck, mapping, result, report, mapping.kwargs_for(state))


def check_paths(src: str | os.PathLike, out: str | os.PathLike) -> None:
    """Refuse, before reading anything, an input that is not there or an output that cannot be written.

    Raises:
        UsageError: the input is missing, the output does not end in ``.safetensors`` or is the input.
    """
    src, out = Path(src), Path(out)
    if not src.is_file():
        raise UsageError(f"input checkpoint not found: {src}")
    if out.suffix != ".safetensors":
        raise UsageError(f"output {out} must end in .safetensors (its .json sidecar is written next to it)")
    if out.resolve() == src.resolve():
        raise UsageError("output would overwrite the input")


def resolve_arch(ck: ForeignCheckpoint, fmt: str, arch: str) -> str:
    """``arch`` itself (checked to exist), or for ``auto`` the architecture of ``fmt`` whose rules fit
    every key of ``ck``.

    Raises:
        UnknownNameError: no such format or architecture.
        CheckpointError: ``auto`` and no architecture of ``fmt`` fits the file.
    """
    if arch != "auto":
        return get_mapping(fmt, arch).arch
    if fmt not in formats():
        get_mapping(fmt, arch)   # raises, listing the formats
    ranked = [r for r in rank_mappings(ck.state) if r.mapping.format == fmt]
    if not ranked or not ranked[0].fits:
        closest = f" (closest: {ranked[0].summary()})" if ranked else ""
        raise CheckpointError(f"{ck.path}: no {fmt} architecture fits every key{closest}; run "
                              "launch/inspect_checkpoint.py on it for details")
    return ranked[0].mapping.arch


def _sidecar(ck: ForeignCheckpoint, plan: ImportPlan, sha256: bool) -> dict:
    mapping = plan.mapping
    return {
        "model": mapping.arch,
        "model_kwargs": plan.model_kwargs,
        "source": {**ck.source_record(sha256=sha256), "format": mapping.format, "arch": mapping.arch,
                   "upstream": mapping.description, "upstream_label_order": list(mapping.label_order)},
        "import": {"n_source_keys": len(ck.state), "n_mapped": len(plan.result.mapped),
                   "n_dropped": plan.result.n_dropped, "dropped": plan.result.dropped_list(),
                   "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")},
        "notes": list(mapping.notes),
    }


def import_checkpoint(src: str | os.PathLike, fmt: str, arch: str, out: str | os.PathLike, *,
                      sha256: bool = True) -> dict:
    """Convert ``src`` (a ``fmt`` checkpoint of ``arch``, or ``auto``) into exported weights at ``out``;
    returns the sidecar. Nothing is written unless the whole checkpoint maps and loads strictly.

    Raises:
        UsageError (UnknownNameError): bad paths, no mapping for (``fmt``, ``arch``).
        CheckpointError (and subclasses above): the file cannot be used as that architecture.
    """
    check_paths(src, out)
    if arch != "auto":
        get_mapping(fmt, arch)   # an unknown name is refused before the file is read
    ck = read_foreign(src)
    mapping = get_mapping(fmt, resolve_arch(ck, fmt, arch))
    plan = plan_import(ck, mapping)
    model = create_model(mapping.arch, **plan.model_kwargs)
    load_weights(model, plan.result.mapped, strict=True, source=str(src))
    sidecar = _sidecar(ck, plan, sha256)
    export_weights(model, out, sidecar)
    logger.info("imported %s (%s %s): %d keys mapped, %d dropped -> %s", src, mapping.format, mapping.arch,
                len(plan.result.mapped), plan.result.n_dropped, out)
    return sidecar
