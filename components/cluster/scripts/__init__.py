"""Step scripts of the cluster layer, rendered inline into each remote command.

A rendered script is the step's inputs as `export` lines, then `common.sh`, then the step body.
Inputs travel inside the script because sshd drops environment variables it is not configured
to accept (AcceptEnv). The whole script runs as root through `sudo -n bash -c`, so it lives in
Pulumi state with its delete step, and a changed script shows in the preview diff.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from functools import cache
from importlib import resources

STEPS = (
    "node_preflight",
    "node_prepare",
    "rke2_install",
    "rke2_uninstall",
    "files_place",
    "files_remove",
    "rke2_start",
    "rke2_upgrade",
    "cluster_ready",
    "nfs_export",
    "nfs_unexport",
)


@cache
def _read(name: str) -> str:
    return resources.files(__name__).joinpath(f"{name}.sh").read_text()


def render_script(step: str, inputs: Mapping[str, str] | None = None) -> str:
    """The full bash script of a step: its inputs, the shared helpers, then the step body."""
    if step not in STEPS:
        raise KeyError(f"unknown cluster step script {step!r}")
    exports = "".join(f"export {name}={shlex.quote(value)}\n" for name, value in sorted((inputs or {}).items()))
    return exports + _read("common") + "\n# --- " + step + " ---\n" + _read(step)


def as_root(script: str) -> str:
    """A command line that runs `script` as root on the node (the login user has passwordless sudo)."""
    return f"sudo -n bash -c {shlex.quote(script)}"
