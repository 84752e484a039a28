"""Atomic file writes and the one reader of weight files.

Every output the toolkit writes goes through :func:`atomic_write`: the data lands in a temporary file
beside the target and is renamed over it, so a reader (or a resumed run) never sees half a file, and
a failed write leaves the previous version in place and no temporary behind. Weight files are read by
:func:`read_weights_file` only (:func:`read_state_dict` for this toolkit's loaders, the checkpoint
importer for other codebases' files), which never unpickles code.
"""
from __future__ import annotations

import errno
import json
import os
import pickle
import shutil
import zipfile
from pathlib import Path
from typing import Callable

import torch

from utils.core.errors import CheckpointError, WriteError

TMP_MARK = ".tmp-"                       # temporary names: .<name>.tmp-<pid>
CONTAINER_KEYS = ("state_dict", "model", "model_state_dict", "module")  # training scripts' wrappers


def temp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}")


def _free_bytes(path: Path) -> int:
    for p in (path, *path.parents):
        if p.exists():
            return shutil.disk_usage(p).free
    return -1


def disk_full(err: BaseException, path: Path) -> bool:
    """Whether ``err`` is a full disk: ENOSPC, or a library error raised while almost no space is left
    (torch reports a full disk as ``RuntimeError: … unexpected pos``)."""
    return getattr(err, "errno", None) == errno.ENOSPC or 0 <= _free_bytes(path) < 1 << 20


def write_failure(path: Path, err: BaseException) -> WriteError:
    """A :class:`WriteError` that names the path and the cause (a full disk says so)."""
    if disk_full(err, path):
        return WriteError(f"no space left on device writing {path} ({_free_bytes(path) / 1e6:.1f} MB free): "
                          "free some space and run the same command again")
    return WriteError(f"could not write {path}: {getattr(err, 'strerror', None) or err}")


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` for a temporary path beside ``path``, then rename it over ``path``.

    Raises:
        WriteError: the write or the rename failed; ``path`` is untouched and the temporary removed.
    """
    path = Path(path)
    tmp = temp_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(tmp)
        os.replace(tmp, path)
    except OSError as e:
        raise write_failure(path, e) from None
    except RuntimeError as e:
        if disk_full(e, path):
            raise write_failure(path, e) from None
        raise
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    def write(tmp: Path) -> None:
        with open(tmp, "w") as f:
            f.write(text)
    return atomic_write(path, write)


def atomic_write_json(path: str | os.PathLike, obj, **kwargs) -> Path:
    """``obj`` as indented JSON (non-JSON values through ``str``)."""
    return atomic_write_text(path, json.dumps(obj, indent=2, default=str, **kwargs))


def remove_stale_temporaries(folder: str | os.PathLike, name: str = "*") -> int:
    """Delete the temporaries a killed process left in ``folder`` (for target ``name``, default all;
    not recursive); returns how many."""
    folder = Path(folder)
    stale = list(folder.glob(f".{name}{TMP_MARK}*")) if folder.is_dir() else []
    for p in stale:
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
    return len(stale)


def read_weights_file(path: str | os.PathLike, mmap: bool = False) -> tuple[object, str]:
    """What a weights file holds, as stored, and its format.

    The format is ``safetensors``, ``torch zip`` (``torch.save`` since 1.6) or ``torch legacy``.

    ``.safetensors`` through safetensors; anything else through ``torch.load(weights_only=True)``:
    tensors and plain containers only, never pickled code. ``mmap`` pages a zip-format file in lazily
    (a multi-GB checkpoint is not copied into memory).

    Raises:
        CheckpointError: no such file, empty, corrupt, or code inside a pickle.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path} is empty (0 bytes): a copy or download was cut short")
    if path.suffix == ".safetensors":
        return _read_safetensors(path), "safetensors"
    zipped = zipfile.is_zipfile(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap and zipped)
    except pickle.UnpicklingError as e:
        raise CheckpointError(f"{path} is not a plain weights file (refused to unpickle code): "
                              f"{str(e).splitlines()[0]}") from None
    except (RuntimeError, EOFError, ValueError, OSError) as e:
        raise CheckpointError(f"{path} is not a readable weights file ({type(e).__name__}: "
                              f"{str(e).splitlines()[0] if str(e) else 'truncated'})") from None
    return obj, "torch zip" if zipped else "torch legacy"


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors of a ``.safetensors`` or ``.pth``/``.bin`` file, never running pickled code.

    Training-script containers (``{"state_dict": …}``, ``{"model": …}``) are opened one level.

    Raises:
        CheckpointError: no such file, not a weights file, corrupt, or code inside a pickle.
    """
    obj, _ = read_weights_file(path)
    for key in CONTAINER_KEYS:
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path} does not hold a state dict of tensors")
    return obj


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path} is not a readable safetensors file ({e}); "
                              "it may be truncated or not a weights file") from None
