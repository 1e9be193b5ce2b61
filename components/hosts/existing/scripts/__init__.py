"""Step scripts of the existing-hosts backend, rendered with the hosts layer's `common.sh`
(components.hosts.scripts); they run on the workstation and reach the machines over SSH."""

from __future__ import annotations

from components.hosts.scripts import SCRIPTS as HOSTS_SCRIPTS
from components.shell import StepScripts

STEPS = (
    "existing_host_key",
    "existing_preflight",
    "existing_check",
)
SCRIPTS = StepScripts("existing hosts", __name__, STEPS, common_package=HOSTS_SCRIPTS.package)


def render_script(step: str) -> str:
    """The full bash script of a step: shared helpers, then the step body."""
    return SCRIPTS.render(step)
