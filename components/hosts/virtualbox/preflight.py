"""`meshlab:hosts:HostPreflight`: check the workstation before any VM is created."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pulumi

from components.hosts.steps import step_command
from components.hosts.virtualbox.scripts import SCRIPTS
from components.hosts.vm import VmSize, preflight_vms
from config import versions


class HostPreflight(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        *,
        vms: dict[str, VmSize],
        host_ip: IPv4Address,
        subnet: IPv4Network,
        image: versions.CloudImage,
        cache_environment: dict[str, str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("meshlab:hosts:HostPreflight", name, None, opts)
        wanted = preflight_vms(vms)
        environment = {
            "MESHLAB_VMS": wanted,
            "MESHLAB_HOST_IP": str(host_ip),
            "MESHLAB_NETMASK": str(subnet.netmask),
            "MESHLAB_GUEST_ARCH": image.arch,
            "MESHLAB_IMAGE_BYTES": str(image.size_bytes),
            "MESHLAB_VBOX_MIN": ".".join(str(part) for part in versions.VIRTUALBOX_MIN),
            **cache_environment,
        }
        # Re-run whenever the topology changes: a bigger lab needs a fresh look at the host.
        self.check = step_command(
            f"{name}-check",
            scripts=SCRIPTS,
            create="preflight",
            environment=environment,
            parent=self,
            triggers=[wanted],
        )
        self.register_outputs({"summary": self.check.stdout})
