"""Step scripts of the VirtualBox backend, rendered with the hosts layer's `common.sh`
(components.hosts.scripts); they run on the workstation and drive `VBoxManage`."""

from __future__ import annotations

from components.hosts.scripts import SCRIPTS as HOSTS_SCRIPTS
from components.shell import StepScripts

STEPS = (
    "preflight",
    "network_create",
    "network_delete",
    "vm_create",
    "vm_delete",
)
SCRIPTS = StepScripts("VirtualBox hosts", __name__, STEPS, common_package=HOSTS_SCRIPTS.package)

# The full bash script of a step: the shared helpers, then the step body.
render_script = SCRIPTS.render
