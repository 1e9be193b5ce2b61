"""`meshlab:hosts:HostOnlyNetwork`: the VirtualBox host-only network every node's NIC 2 joins."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pulumi

from components.hosts.steps import step_command


class HostOnlyNetwork(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        *,
        subnet: IPv4Network,
        host_ip: IPv4Address,
        dhcp_ip: IPv4Address,
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
                "MESHLAB_DHCP_IP": str(dhcp_ip),
            },
            parent=self,
        )
        self.register_outputs({"adapter": self.network.stdout})
