"""`meshlab:hosts:ExistingHosts`: machines that already exist (bare metal, cloud VMs, a rack of
NUCs), reached over SSH with the stack's key, optionally through a bastion. Nothing is created
for them: a preflight checks them all, and each node's identity is read.

A sibling of the VM backends behind the same `HostsOutput`. Its machines outlive the stack, so no
step is `deleted_with` them: `pulumi destroy` runs every step's delete (RKE2 uninstalled, meshlab's
files removed) and leaves the machines otherwise as they were.
"""

from __future__ import annotations

import pulumi
from pulumi_command import remote

from components.hosts.existing_preflight import ExistingPreflight
from components.hosts.output import HostsOutput
from components.hosts.vm import Bastion, SshAccess, vm_sizes
from config.settings import NodeSpec, Settings, config_key


def existing_ssh_access(settings: Settings) -> SshAccess:
    """The login the stack gives: its private key (a secret), or the ssh-agent; and the bastion."""
    access, hosts = settings.access, settings.hosts
    key = access.ssh_private_key.get_secret_value()
    address = hosts.bastion_address
    return SshAccess(
        user=access.ssh_user,
        public_key=None,
        private_key=None if access.ssh_agent else pulumi.Output.secret(key),
        bastion=Bastion(host=address[0], port=address[1], user=hosts.ssh_bastion_user) if address else None,
    )


def announced_addresses(settings: Settings) -> dict[str, str]:
    """The addresses the cluster will announce on the nodes' own network (kube-vip's API VIP, the ends
    of MetalLB's pool), each with the key that sets it: no other machine may have one."""
    network = settings.network
    pool = network.metallb_pool
    return {
        str(network.vip): config_key("api_vip"),
        str(pool.first): config_key("metallb_pool"),
        str(pool.last): config_key("metallb_pool"),
    }


class ExistingHost(pulumi.ComponentResource):
    """One existing machine as a `HostNode`: its identity is its /etc/machine-id."""

    def __init__(
        self,
        name: str,
        *,
        node: NodeSpec,
        ssh: SshAccess,
        preflight: ExistingPreflight,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(
            "meshlab:hosts:ExistingHost", name, {"host": node.name, "ip": str(node.ip), "role": node.role}, opts
        )
        self.node = node
        self.ip = str(node.ip)
        self.role = node.role
        self.vm_name = node.name
        # The machine outlives the stack: nothing owns it, and every step's delete runs on destroy.
        self.machine: pulumi.Resource | None = None
        # Read once: a reinstalled machine (a new machine-id) is taken up with `pulumi up --replace` on
        # this step, which runs every node step there again.
        self.identity = remote.Command(
            f"{name}-identity",
            connection=ssh.connection(self.ip),
            create="cat /etc/machine-id",
            opts=pulumi.ResourceOptions(parent=self, depends_on=[preflight]),
        )
        self.uuid = self.identity.stdout
        self.cloud_init = self.identity
        self.register_outputs({"ip": self.ip, "role": self.role, "machineId": self.uuid})


class ExistingHosts(pulumi.ComponentResource):
    # `stack` as every backend takes it; existing hosts carry the names the user gave them.
    def __init__(self, name: str, *, settings: Settings, stack: str, opts: pulumi.ResourceOptions | None = None):
        # The backend shows in previews and in the pull-request diff (tools/diff.py).
        super().__init__("meshlab:hosts:ExistingHosts", name, {"hypervisor": settings.hosts.hypervisor}, opts)
        topology, hosts = settings.topology, settings.hosts
        self.ssh = existing_ssh_access(settings)
        self.preflight = ExistingPreflight(
            f"{name}-preflight",
            nodes=topology.nodes,
            sizes=vm_sizes(topology),
            ssh=self.ssh,
            interface=hosts.node_interface,
            guest_arch=topology.guest_arch,
            announced=announced_addresses(settings),
            ports={role: settings.cluster.rke2_ports(role) for role in ("server", "agent")},
            opts=pulumi.ResourceOptions(parent=self),
        )
        # Each node's steps wait for the preflight of all of them.
        self.vms = [
            ExistingHost(
                node.name, node=node, ssh=self.ssh, preflight=self.preflight, opts=pulumi.ResourceOptions(parent=self)
            )
            for node in topology.nodes
        ]
        self.output = HostsOutput(vms=self.vms, ssh=self.ssh, host_only_interface=hosts.node_interface)
        self.register_outputs({"nodes": {vm.node.name: vm.ip for vm in self.vms}})
