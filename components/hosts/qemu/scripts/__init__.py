"""Step scripts of the QEMU/KVM backend, rendered with the hosts layer's `common.sh`
(components.hosts.scripts); they run on the Linux workstation: its bridge, taps and QEMU processes."""

from __future__ import annotations

from components.hosts.scripts import SCRIPTS as HOSTS_SCRIPTS
from components.shell import StepScripts

STEPS = (
    "qemu_preflight",
    "bridge_create",
    "bridge_delete",
    "qemu_vm_create",
    "qemu_vm_delete",
)
SCRIPTS = StepScripts("QEMU hosts", __name__, STEPS, common_package=HOSTS_SCRIPTS.package)

# The full bash script of a step: the shared helpers, then the step body.
render_script = SCRIPTS.render
