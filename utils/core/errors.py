"""The project's error types and the exit status each one means for a command-line tool.

Library code raises these (or subclasses) for problems a user can fix; the command-line entry points
turn them into one line on stderr and an exit status (:mod:`utils.orchestration.cli`), never a
traceback. Anything else escaping a command is a bug and keeps its traceback.
"""
from __future__ import annotations


class ToolkitError(Exception):
    """A problem the user can act on; ``exit_code`` is what a command exits with."""

    exit_code = 1


class UsageError(ToolkitError):
    """Bad arguments, recipe or override: nothing was run (exit status 2)."""

    exit_code = 2


class ConfigError(UsageError, ValueError):
    """A recipe or override that does not fit the schema."""


class UnknownNameError(UsageError, KeyError, ValueError):
    """A name that is not registered (a model, a dataset); the message lists the registered ones."""

    __str__ = Exception.__str__   # KeyError would quote the message


class InputError(ToolkitError, ValueError):
    """An input that exists but cannot be used: a dataset laid out wrongly, a corrupt file (exit 1)."""


class CheckpointError(InputError, RuntimeError):
    """A checkpoint that cannot be used as asked (wrong model, head missing, unsafe or corrupt file)."""


class WriteError(ToolkitError, OSError):
    """Writing an output failed (disk full, no permission); the previous version of the file is intact."""
