"""`meshlab:hosts:QemuBridge`: the Linux bridge every QEMU VM's lab NIC joins, with the host on it.

The host's address on the bridge is meshlab:hostOnlyHostIp, so the host reaches the API VIP and the
MetalLB addresses directly, and kube-vip's and MetalLB's ARP answers travel between the nodes'
taps as on a VirtualBox host-only network.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pulumi

from components.hosts.qemu.scripts import SCRIPTS
from components.hosts.steps import step_command


class QemuBridge(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        *,
        bridge: str,
        subnet: IPv4Network,
        host_ip: IPv4Address,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("meshlab:hosts:QemuBridge", name, {"bridge": bridge}, opts)
        self.bridge = bridge
        self.subnet = subnet
        self.host_ip = host_ip
        self.network = step_command(
            f"{name}-bridge",
            scripts=SCRIPTS,
            create="bridge_create",
            delete="bridge_delete",
            environment={
                "MESHLAB_BRIDGE": bridge,
                "MESHLAB_HOST_IP": str(host_ip),
                "MESHLAB_PREFIX": str(subnet.prefixlen),
            },
            parent=self,
        )
        self.register_outputs({"bridge": self.network.stdout})
