"""The README's path, with the real CLI: `make preview` on the lab stack, as a newcomer types it.

It runs the Makefile's own steps (prerequisites, the stack selected or created on the default local
file backend, the policy pack with the stack's policy config). `make up` takes the same path and then
deploys, which the stand-in providers refuse: the preview is as far as this machine can go.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.engine import toolchain


def test_make_preview_runs_the_readme_path(engine: toolchain.Engine, tmp_path: Path) -> None:
    project = toolchain.copy_project(tmp_path / "project")
    state = tmp_path / "state"
    env = engine.env()
    del env["PULUMI_BACKEND_URL"]  # the Makefile's default: file://$(MESHLAB_STATE)
    env["MESHLAB_STATE"] = str(state)
    done = subprocess.run(
        ["make", "preview"], cwd=project, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    report = f"exit code {done.returncode}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    assert done.returncode == 0, report
    assert "--policy-pack policy-pack --policy-pack-config policy-pack/config/lab.json" in done.stdout, report
    assert re.search(r"Policies:\s*\n.*\bmeshlab@v0\.1\.0\b", done.stdout), report
    assert (state / ".pulumi" / "stacks" / "meshlab" / "lab.json").is_file(), sorted(map(str, state.rglob("*")))
