"""Ask before `make destroy` touches machines or a cluster meshlab did not create.

    python -m tools.destroy_guard STACK

On VMs (VirtualBox, QEMU) a destroy deletes what meshlab made, and nothing is asked. On existing hosts it
runs RKE2's uninstaller on each machine (every container and the etcd data go with it); on an existing
cluster it deletes meshlab's namespaces, releases and CRDs from that cluster. Then this names what will be
touched and goes on only when the stack's name is typed, or when CONFIRM_DESTROY=STACK is set (scripts).
Exit status: 0 to go on, 1 not confirmed, 2 the stack cannot be read.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence

from config.loader import load_stack_file
from config.validation import SettingsError
from tools.cli import run
from tools.render import stack_file

CONFIRM_VARIABLE = "CONFIRM_DESTROY"


def warning(stack: str) -> str | None:
    """What a destroy of `stack` would do to things meshlab did not create, or None when it deletes only its own."""
    settings = load_stack_file(stack_file(stack))
    if settings.cluster.existing:
        return (
            f"`pulumi destroy` of stack {stack} deletes meshlab's platform from the cluster of its meshlab:kubeconfig: "
            "the namespaces meshlab created (and every workload and volume claim in them), the Helm releases, "
            "the cluster-wide policies and webhooks; Istio's CRDs stay."
        )
    if settings.hosts.existing:
        machines = ", ".join(f"{node.name} ({node.ip})" for node in settings.topology.nodes)
        return (
            f"`pulumi destroy` of stack {stack} runs RKE2's uninstaller on machines meshlab did not create: "
            f"{machines}. "
            "It stops every container there and deletes /var/lib/rancher/rke2 with the etcd data; the NFS data "
            "directory stays."
        )
    return None


def confirmed(stack: str, ask: Callable[[str], str]) -> bool:
    """The variable names the stack, or the user typed its name (never without a terminal to ask on)."""
    if os.environ.get(CONFIRM_VARIABLE) == stack:
        return True
    if not sys.stdin.isatty() and ask is input:
        print(f"Not confirmed: run it again with {CONFIRM_VARIABLE}={stack} to go on.", file=sys.stderr)
        return False
    try:
        answer = ask(f"Type the stack's name ({stack}) to go on: ")
    except EOFError:
        answer = ""
    if answer.strip() != stack:
        print("Not confirmed: nothing was destroyed.", file=sys.stderr)
        return False
    return True


def main(argv: Sequence[str] | None = None, ask: Callable[[str], str] = input) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m tools.destroy_guard STACK", file=sys.stderr)
        return 2
    stack = args[0]
    try:
        said = warning(stack)
    except (OSError, SettingsError) as error:
        print(f"destroy: cannot read stack {stack}: {error}", file=sys.stderr)
        return 2
    if said is None:
        return 0
    print(f"WARNING: {said}", file=sys.stderr)
    return 0 if confirmed(stack, ask) else 1


if __name__ == "__main__":
    run(main)
