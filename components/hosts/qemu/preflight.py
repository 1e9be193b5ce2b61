"""`meshlab:hosts:QemuPreflight`: check the Linux workstation before any QEMU VM or bridge exists."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pulumi

from components.hosts.qemu.scripts import SCRIPTS
from components.hosts.steps import step_command
from components.hosts.vm import VmSize, preflight_vms
from config import versions
from config.settings import QemuAccelerator


class QemuPreflight(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        *,
        vms: dict[str, VmSize],
        host_ip: IPv4Address,
        subnet: IPv4Network,
        bridge: str,
        accelerator: QemuAccelerator,
        image: versions.CloudImage,
        cache_environment: dict[str, str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("meshlab:hosts:QemuPreflight", name, None, opts)
        wanted = preflight_vms(vms)
        environment = {
            "MESHLAB_VMS": wanted,
            "MESHLAB_HOST_IP": str(host_ip),
            "MESHLAB_PREFIX": str(subnet.prefixlen),
            "MESHLAB_BRIDGE": bridge,
            "MESHLAB_GUEST_ARCH": image.arch,
            "MESHLAB_ACCELERATOR": accelerator,
            "MESHLAB_IMAGE_BYTES": str(image.size_bytes),
            **cache_environment,
        }
        # Re-run whenever the topology changes: a bigger lab needs a fresh look at the host.
        self.check = step_command(
            f"{name}-check",
            scripts=SCRIPTS,
            create="qemu_preflight",
            environment=environment,
            parent=self,
            triggers=[wanted],
        )
        self.register_outputs({"summary": self.check.stdout})
