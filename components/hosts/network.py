"""`meshlab:hosts:HostOnlyNetwork`: the VirtualBox host-only network every node's NIC 2 joins."""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network

import pulumi

from components.hosts.steps import step_command
from config.settings import NetworkSettings, NodeSpec


def macos_dhcp_address(network: NetworkSettings, nodes: Sequence[NodeSpec]) -> IPv4Address | None:
    """The one address a macOS host-only network may lease, or None when something of ours uses it.

    VirtualBox 7 on macOS gives the host the range's lower address and leases the ones after it up to
    the upper address (VBoxManage-hostonlynet(1): "the upper address will be handed out to a client,
    while the lower address will be used by the host itself"). With the lower address at
    meshlab:hostOnlyHostIp, the smallest range leases exactly the next address, so that one must be free.
    """
    candidate = network.host_ip + 1
    taken = {network.vip, *(node.ip for node in nodes)}
    free = candidate in network.subnet.hosts() and candidate not in taken
    return candidate if free and candidate not in network.metallb_pool else None


class HostOnlyNetwork(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        *,
        subnet: IPv4Network,
        host_ip: IPv4Address,
        dhcp_ip: IPv4Address | None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("meshlab:hosts:HostOnlyNetwork", name, None, opts)
        self.subnet = subnet
        self.host_ip = host_ip
        self.network = step_command(
            f"{name}-network",
            create="network_create",
            delete="network_delete",
            environment={
                "MESHLAB_HOST_IP": str(host_ip),
                "MESHLAB_NETMASK": str(subnet.netmask),
                # macOS names host-only networks; Linux/Windows number them (vboxnetN).
                "MESHLAB_NETWORK_NAME": "meshlab-" + str(subnet).replace("/", "-").replace(".", "-"),
                # macOS only; empty makes its create step explain why there is no free address.
                "MESHLAB_DHCP_IP": str(dhcp_ip) if dhcp_ip else "",
            },
            parent=self,
        )
        self.register_outputs({"adapter": self.network.stdout})
