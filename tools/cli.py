"""How the command-line tools count and exit."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from typing import NoReturn

# What a shell reports for a program that SIGPIPE ended, as `yes | head` does to yes.
EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE


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
