"""The program accepts the stack config as the real engine hands it over.

Under mocks the tests set config keys themselves; the real CLI derives them from Pulumi.yaml (typed
declarations and their defaults) and the stack file, and may shape them differently. This needs only
the CLI and the language host: the program validates its settings before it registers anything, so
a missing provider plugin cannot hide a settings error, and the policy pack is left out.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.engine import toolchain

STACKS = ("lab", "staging", "prod")


@pytest.fixture(scope="module")
def engine_without_providers(
    require: Callable[..., None], toolchain_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> toolchain.Engine:
    require(toolchain.CLI, toolchain.LANGUAGE_HOST)
    root = tmp_path_factory.mktemp("config")
    engine = toolchain.Engine(
        bin_dir=toolchain_dir / "bin",
        home=root / "home",
        backend=root / "state",
        project=toolchain.copy_project(root / "project"),
    )
    engine.backend.mkdir()
    return engine


@pytest.mark.parametrize("stack", STACKS)
def test_the_program_accepts_the_config_the_engine_gives_it(
    engine_without_providers: toolchain.Engine, stack: str
) -> None:
    engine = engine_without_providers
    engine.init_stack(stack)
    done: subprocess.CompletedProcess[str] = engine.run("preview", "--stack", stack)
    report = f"exit code {done.returncode}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    assert f"meshlab-{stack}" in done.stdout, "the program did not run:\n" + report
    assert "invalid meshlab settings" not in done.stdout + done.stderr, report


def test_a_stack_config_set_by_the_cli_reaches_the_program(engine_without_providers: toolchain.Engine) -> None:
    """`pulumi config set` on a copy of the lab stack: an invalid value is refused by the program's
    validation (so the key reached it), which proves the copy is what the engine ran."""
    engine = engine_without_providers
    stack = "lab-config-copy"
    shutil.copyfile(engine.project / "Pulumi.lab.yaml", engine.project / f"Pulumi.{stack}.yaml")
    engine.init_stack(stack)
    assert engine.run("config", "set", "--stack", stack, "meshlab:meshMtlsMode", "SOMETIMES").returncode == 0
    done = engine.run("preview", "--stack", stack)
    text = done.stdout + done.stderr
    assert done.returncode != 0, text
    assert "meshlab:meshMtlsMode = SOMETIMES" in text, text
    # The program's own error, as one message: no Python traceback, no dump of the exception.
    assert "Traceback" not in text and "RunError" not in text, text


def test_the_cli_refuses_a_mistyped_value_of_a_declared_key(engine_without_providers: toolchain.Engine) -> None:
    """Pulumi.yaml declares meshlab:serverCpus an integer: the CLI itself refuses "two" before the program runs."""
    engine = engine_without_providers
    stack = "lab-mistyped"
    shutil.copyfile(engine.project / "Pulumi.lab.yaml", engine.project / f"Pulumi.{stack}.yaml")
    engine.init_stack(stack)
    assert engine.run("config", "set", "--stack", stack, "meshlab:serverCpus", "two").returncode == 0
    done = engine.run("preview", "--stack", stack)
    text = done.stdout + done.stderr
    assert done.returncode != 0, text
    assert "meshlab:serverCpus" in text and "integer" in text, text
    assert f"meshlab-{stack}" not in done.stdout, "the program ran:\n" + text
