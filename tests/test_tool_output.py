"""The command-line tools end quietly when their reader stops early (`python -m tools.plan lab --json | head`)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BASH = shutil.which("bash") or "/bin/bash"


def test_plan_json_piped_into_head_ends_without_a_traceback() -> None:
    # The lab's JSON plan is far larger than a pipe's buffer, so plan writes on after head has exited.
    result = subprocess.run(
        [BASH, "-c", f"'{sys.executable}' -m tools.plan lab --json | head -n 3"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.stdout.splitlines()[:2] == ["{", '  "resources": ['], result.stderr
    assert "Traceback" not in result.stderr and "BrokenPipeError" not in result.stderr, result.stderr


@pytest.mark.parametrize(
    "command",
    [
        ["tools.plan", "lab"],
        ["tools.plan", "lab", "--graph"],
        ["tools.plan", "lab", "--policy"],
        ["tools.promote", "lab", "staging"],
    ],
    ids=" ".join,
)
def test_a_reader_that_closes_before_any_output_gets_no_traceback(command: list[str]) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", *command], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    process.stdout.close()  # before the tool has printed anything: its first write finds no reader
    _, stderr = process.communicate(timeout=120)
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr
    assert process.returncode != 0  # the output was cut short: never report success
