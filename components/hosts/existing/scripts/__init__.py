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

# The full bash script of a step: the shared helpers, then the step body.
render_script = SCRIPTS.render
