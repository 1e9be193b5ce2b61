"""Step scripts of the hosts layer; they run on the workstation (see components.shell)."""

from __future__ import annotations

from components.shell import StepScripts

STEPS = (
    "preflight",
    "network_create",
    "network_delete",
    "image_fetch",
    "seed_create",
    "seed_delete",
    "vm_create",
    "vm_delete",
    "wait_ssh",
    "qemu_preflight",
    "bridge_create",
    "bridge_delete",
    "qemu_vm_create",
    "qemu_vm_delete",
    "existing_host_key",
    "existing_preflight",
    "existing_check",
)
SCRIPTS = StepScripts("hosts", __name__, STEPS)


def render_script(step: str) -> str:
    """The full bash script of a step: shared helpers, then the step body."""
    return SCRIPTS.render(step)
