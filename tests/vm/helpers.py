"""What the tier's test modules share: the lab's nodes, and a step run twice that must change nothing
the second time."""

from __future__ import annotations

from pathlib import Path

from tests.test_cluster_layer import exported
from tests.vm.conftest import HOST_IP, MISWIRED, STANDIN_HTTP_PORT
from tests.vm.lab import VmLab

# Stand-ins for the internet endpoints the node preflight reaches (RKE2's installer, the
# registries): the tier has no internet. A URL with a port, as a proxy or mirror would be.
STANDIN_ENDPOINTS = f"http://{HOST_IP}:{STANDIN_HTTP_PORT}/get.rke2.io http://{HOST_IP}:{STANDIN_HTTP_PORT}/registry"

# What the node steps may change on a node; the second run of a step must leave all of it as it was.
FINGERPRINT = (
    "sudo sh -c 'find /etc /var/lib/rancher /srv /home -xdev \\( -type f -o -type d \\) "
    "-newer /run/meshlab-vm-tier-mark 2>/dev/null | grep -v -e ^/etc/resolv.conf -e /.ssh/ -e ^/home/[^/]*$ "
    "| sort; systemctl show -p ActiveEnterTimestamp systemd-networkd nfs-server'"
)


def running(pid: int) -> bool:
    """Whether process `pid` runs (a zombie has ended; only its parent has not collected it yet)."""
    try:
        return "\nState:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False


def lab_nodes(lab: VmLab) -> list[str]:
    """The three nodes the lab's steps run on (the miswired one aside), the server first."""
    return [node for node in lab.vm_names() if node != MISWIRED]


def mark(lab: VmLab, node: str) -> None:
    lab.ssh_retrying(node, "sudo touch /run/meshlab-vm-tier-mark && sleep 1").check()


def changed_since_mark(lab: VmLab, node: str) -> str:
    return lab.ssh_retrying(node, FINGERPRINT).check().stdout


def twice_remote(lab: VmLab, name: str, node: str, **kwargs: object) -> None:
    """Run remote step `name`, then again: the second run must succeed and change nothing."""
    lab.remote_step(name, **kwargs).check()  # type: ignore[arg-type]
    mark(lab, node)
    before = changed_since_mark(lab, node)
    lab.remote_step(name, **kwargs).check()  # type: ignore[arg-type]
    after = changed_since_mark(lab, node)
    new = sorted(set(after.splitlines()) - set(before.splitlines()))
    assert not new, f"the second run of {name} changed {new}"


def copies_of(vm_lab: VmLab, node: str) -> list[str]:
    return [
        r.name for r in vm_lab.rendering.of_type("command:remote:CopyToRemote") if r.name.startswith(f"cluster-{node}-")
    ]


def exported_value(command: str, name: str) -> str:
    """The value a remote step's script exports as `name`."""
    return exported(command)[name]
