"""The hosts backend a stack asks for (meshlab:hypervisor), behind the one `HostsOutput` contract."""

from __future__ import annotations

from components.hosts.existing.hosts import ExistingHosts
from components.hosts.output import HostsOutput
from components.hosts.qemu.hosts import QemuHosts
from components.hosts.virtualbox.hosts import LabHosts
from config.settings import Settings


def lab_hosts(settings: Settings, stack: str) -> HostsOutput:
    """The stack's machines: VirtualBox VMs, QEMU VMs or existing hosts, registered as the component `hosts`."""
    if settings.hosts.existing:
        return ExistingHosts("hosts", settings=settings, stack=stack).output
    if settings.hosts.hypervisor == "qemu":
        return QemuHosts("hosts", settings=settings, stack=stack).output
    return LabHosts("hosts", settings=settings, stack=stack).output
