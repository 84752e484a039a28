"""What every command-line tool shares: logging that only the main process speaks, and one error path.

A command's ``main`` runs inside :func:`run`: a :class:`~utils.core.errors.ToolkitError` (a problem the
user can fix: bad arguments, a missing dataset, a corrupt checkpoint, a full disk) becomes one line
``error: …`` on stderr and the exit status the error type names (2 for usage errors, 1 for unusable
inputs), never a traceback. Anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import logging
import os
import sys
from typing import Callable

from utils.core.errors import ToolkitError
from utils.core.signals import Stopped

EXIT_INTERRUPTED = 130


def process_rank() -> int:
    """This process's rank under ``accelerate launch`` / ``torchrun`` (0 when launched alone)."""
    return int(os.environ.get("RANK", "0"))


class _RankFilter(logging.Filter):
    def __init__(self, rank: int):
        super().__init__()
        self.rank = rank

    def filter(self, record: logging.LogRecord) -> bool:
        record.rank = self.rank
        return True


def setup_logging(verbose: bool = True) -> None:
    """INFO on the main process only; other ranks log WARNING and above, with their rank in the record.

    accelerate's own INFO lines are quieted on every rank.
    """
    rank = process_rank()
    level = logging.INFO if verbose and rank == 0 else logging.WARNING
    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s" if rank == 0 else \
        "%(asctime)s %(levelname)s [rank %(rank)d] %(name)s: %(message)s"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(fmt))
    handler.addFilter(_RankFilter(rank))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("accelerate").setLevel(logging.WARNING)


def device_problem(device: str) -> str | None:
    """Why ``device`` cannot be used here (``cuda`` without a GPU, ``cuda:3`` on a 2-GPU machine), or None."""
    import torch  # lazy: the CLIs that never look at a device should not pay for importing torch
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError) as e:
        return f"--device {device}: {e}"
    if dev.type == "cuda":
        n = torch.cuda.device_count()
        if n == 0:
            return f"--device {device}: no CUDA device on this machine; use --device cpu"
        if dev.index is not None and dev.index >= n:
            return f"--device {device}: this machine has {n} CUDA device(s) (cuda:0 … cuda:{n - 1})"
    elif dev.type != "cpu":
        return f"--device {device}: use cpu, cuda or cuda:N"
    return None


def fail(message: str, code: int = 2) -> int:
    """Print ``error: message`` and return ``code`` (for checks a command makes itself)."""
    rank = process_rank()
    print(f"error: {message}" if rank == 0 else f"error [rank {rank}]: {message}", file=sys.stderr)
    return code


def run(main: Callable[[], int]) -> int:
    """Run a command's ``main``; user errors become one ``error:`` line and their exit status, a stop
    on request (SIGTERM, SIGINT, SIGUSR1) one line from the main process and 128 + the signal."""
    try:
        return main()
    except Stopped as e:
        if process_rank() == 0:
            print(str(e), file=sys.stderr)
        return e.exit_code
    except ToolkitError as e:
        return fail(str(e), e.exit_code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
