"""Stop requests from the outside world: SIGTERM, SIGINT and SIGUSR1 become a flag, not a crash.

Cluster schedulers (SLURM, Kubernetes) send SIGTERM, or SIGUSR1 a set time ahead (``sbatch
--signal=USR1@120``), before they preempt a job. Long-running loops (training, the face-cache build)
install a :class:`StopRequest` and look at it at points where stopping loses nothing — after an
optimizer step, between two videos — then save what they have and exit with ``128 + signal``, the
status a shell reports for a job ended by that signal, so a requeued job resumes with the same
command. A second signal while the state is being saved aborts at once: the previous state is
intact because states are written under a temporary name and renamed only when complete. A second
signal within ``DUPLICATE_S`` of the first is the same request delivered twice (a scheduler signals
every process of a job and ``accelerate launch`` forwards the signal to its workers as well) and is
ignored.
"""
from __future__ import annotations

import logging
import os
import signal
import threading
import time

from utils.core.errors import ToolkitError

logger = logging.getLogger(__name__)

SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)
DUPLICATE_S = 2.0


class Stopped(ToolkitError):
    """A run stopped on request after saving its state; ``exit_code`` is 128 + the signal number."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum


class StopRequest:
    """Records the first stop signal; a second one ends the process immediately.

    Use as a context manager around the loop; outside the main thread (where Python cannot install
    handlers) it never fires.
    """

    def __init__(self, signals: tuple[int, ...] = SIGNALS):
        self.signals, self.signum, self.received = signals, None, 0.0
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            for s in self.signals:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame) -> None:
        if self.signum is not None:
            if time.monotonic() - self.received < DUPLICATE_S:
                return
            os.write(2, f"second {signal.Signals(signum).name}: aborting without saving\n".encode())
            os._exit(128 + signum)
        self.signum, self.received = signum, time.monotonic()
        logger.warning("%s received: stopping at the next safe point", signal.Signals(signum).name)

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else ""

    def __bool__(self) -> bool:
        return self.signum is not None
