"""Run the project's commands in subprocesses the way users do."""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ACCELERATE_2PROC = [str(BIN / "accelerate"), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                    "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0"]


def run(cmd: list[str], check: bool = True, timeout: float = 600, env: dict | None = None,
        cwd: Path = REPO) -> subprocess.CompletedProcess:
    """Run ``cmd``; on an unexpected exit code fail with the tail of its output."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", **(env or {})}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=full_env, cwd=cwd)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} exited {proc.returncode}\n"
                             f"--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-6000:]}")
    return proc


@contextlib.contextmanager
def one_thread():
    """Run torch on one thread in this process, as :func:`run` does in subprocesses (``OMP_NUM_THREADS=1``):
    the same numbers on any machine, and a busy 2-core machine runs two OpenMP threads several times
    slower than one."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
