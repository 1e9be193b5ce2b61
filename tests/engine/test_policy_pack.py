"""The real engine starts the policy pack: the least the other engine tests stand on.

A program with no resource needs no provider, so this runs with just the CLI and the language host:
it separates "the engine cannot run our pack" from "a provider plugin is missing".
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from tests.engine import toolchain

PROGRAM = """\
import pulumi

pulumi.export("policy_pack_loaded", True)
"""


def test_the_engine_runs_the_policy_pack_over_a_program(
    require: Callable[..., None], toolchain_dir: Path, tmp_path: Path
) -> None:
    require(toolchain.CLI, toolchain.LANGUAGE_HOST)
    project = tmp_path / "project"
    project.mkdir()
    (project / "Pulumi.yaml").write_text(
        "name: engine-smoke\nruntime:\n  name: python\n  options:\n    toolchain: pip\n    virtualenv: venv\n"
    )
    (project / "__main__.py").write_text(PROGRAM)
    (project / "venv").symlink_to(toolchain.REPO / "venv")
    shutil.copytree(
        toolchain.REPO / "policy-pack", project / "policy-pack", ignore=shutil.ignore_patterns("__pycache__")
    )
    (tmp_path / "state").mkdir()
    engine = toolchain.Engine(
        bin_dir=toolchain_dir / "bin", home=tmp_path / "home", backend=tmp_path / "state", project=project
    )
    engine.init_stack("smoke")
    done: subprocess.CompletedProcess[str] = engine.run(
        "preview",
        "--stack",
        "smoke",
        "--policy-pack",
        "policy-pack",
        "--policy-pack-config",
        "policy-pack/config/lab.json",
    )
    report = (
        f"exit code {done.returncode}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}\n"
        "(A pack that 'failed to start' after running the program's own __main__.py: the language host\n"
        "predates the CLI's RunPlugin protocol for policy packs; see PYTHON_HOST_* in versions.env.)"
    )
    assert done.returncode == 0, report
    assert re.search(r"Policies:\s*\n.*\bmeshlab@v0\.1\.0\b", done.stdout), report
