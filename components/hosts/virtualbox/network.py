"""`meshlab:hosts:HostOnlyNetwork`: the VirtualBox host-only network every node's NIC 2 joins."""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network

import pulumi

from components.hosts.steps import step_command
from components.hosts.virtualbox.scripts import SCRIPTS
from config.settings import NetworkSettings, NodeSpec, config_key


def reserved_addresses(
    network: NetworkSettings, nodes: Sequence[NodeSpec]
) -> list[tuple[IPv4Address, IPv4Address, str]]:
    """The addresses a lab uses without DHCP: its nodes', the API VIP, MetalLB's pool (the ingress among them)."""
    pool = network.metallb_pool
    reserved = [(node.ip, node.ip, config_key("servers" if node.role == "server" else "agents")) for node in nodes]
    return [
        *reserved,
        (network.vip, network.vip, config_key("api_vip")),
        (pool.first, pool.last, config_key("metallb_pool")),
    ]


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
        reserved: Sequence[tuple[IPv4Address, IPv4Address, str]] = (),
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """`reserved`: the addresses the lab uses statically (first, last, the key that sets them), which no
        DHCP server of an adopted network may lease."""
        super().__init__("meshlab:hosts:HostOnlyNetwork", name, None, opts)
        self.subnet = subnet
        self.host_ip = host_ip
        self.network = step_command(
            f"{name}-network",
            scripts=SCRIPTS,
            create="network_create",
            delete="network_delete",
            environment={
                "MESHLAB_HOST_IP": str(host_ip),
                "MESHLAB_NETMASK": str(subnet.netmask),
                # macOS names host-only networks; Linux/Windows number them (vboxnetN).
                "MESHLAB_NETWORK_NAME": "meshlab-" + str(subnet).replace("/", "-").replace(".", "-"),
                # macOS only; empty makes its create step explain why there is no free address.
                "MESHLAB_DHCP_IP": str(dhcp_ip) if dhcp_ip else "",
                "MESHLAB_RESERVED": "\n".join(f"{first} {last} {key}" for first, last, key in reserved),
            },
            parent=self,
        )
        self.register_outputs({"adapter": self.network.stdout})
