"""How the command-line tools count and exit."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

# What a shell reports for a program that SIGPIPE ended, as `yes | head` does to yes.
EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE
# The project: its stack files are Pulumi.STACK.yaml here.
ROOT = Path(__file__).resolve().parent.parent


class UnknownStackError(ValueError):
    """A tool was asked for a stack that has no stack file."""


def known_stacks(root: Path = ROOT) -> list[str]:
    """The stacks with a stack file (`Pulumi.STACK.yaml`), sorted."""
    return sorted(path.name[len("Pulumi.") : -len(".yaml")] for path in root.glob("Pulumi.?*.yaml"))


def stack_config_file(stack: str, config_file: Path | None = None, root: Path = ROOT) -> Path:
    """The stack file a tool reads for `stack`: `config_file` when given, else `Pulumi.STACK.yaml`.
    Raises UnknownStackError naming the known stacks when there is none."""
    path = config_file or root / f"Pulumi.{stack}.yaml"
    if path.is_file():
        return path
    if config_file is not None:
        raise UnknownStackError(f"no stack config file {path}")
    known = ", ".join(known_stacks(root)) or "none"
    raise UnknownStackError(
        f"no stack config file {path}: the known stacks are {known} (Pulumi.STACK.yaml); or give one with --config-file"
    )


def counted(count: int, noun: str) -> str:
    """`1 resource`, `3 resources`."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def run(main: Callable[[], int]) -> NoReturn:
    """Exit with main()'s status. A reader that stops early (`| head`) ends the output quietly, with
    the status of a broken pipe instead of a traceback."""
    try:
        status = main()
        sys.stdout.flush()
    except BrokenPipeError:
        # Python flushes stdout again on exit: send what is left to /dev/null so that cannot fail too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        status = EXIT_BROKEN_PIPE
    sys.exit(status)
