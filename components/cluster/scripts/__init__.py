"""Step scripts of the cluster layer, rendered inline into each remote command.

A rendered script starts with the step's inputs as `export` lines (see components.shell for the
rest). Inputs travel inside the script because sshd drops environment variables it is not
configured to accept (AcceptEnv). The whole script runs as root through `sudo -n bash -c`.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping

from components.shell import StepScripts

STEPS = (
    "node_preflight",
    "node_prepare",
    "node_unprepare",
    "rke2_install",
    "rke2_uninstall",
    "files_place",
    "files_remove",
    "rke2_start",
    "rke2_upgrade",
    "cluster_ready",
    "nfs_export",
    "nfs_unexport",
    "rke2_artifacts_fetch",
)
SCRIPTS = StepScripts("cluster", __name__, STEPS)


def render_script(step: str, inputs: Mapping[str, str] | None = None) -> str:
    """The full bash script of a step: its inputs, the shared helpers, then the step body."""
    exports = "".join(f"export {name}={shlex.quote(value)}\n" for name, value in sorted((inputs or {}).items()))
    return SCRIPTS.render(step, prefix=exports)


def as_root(script: str) -> str:
    """A command line that runs `script` as root on the node (the login user has passwordless sudo)."""
    return f"sudo -n bash -c {shlex.quote(script)}"
