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

from components.hosts.existing.preflight import ExistingPreflight
from components.hosts.existing.ssh import existing_ssh_access, host_key_step
from components.hosts.output import HostsOutput
from components.hosts.vm import SshAccess, vm_sizes
from config.host_keys import parse_host_keys
from config.settings import NodeSpec, Settings, config_key


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
        host_key: pulumi.Input[str],
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
        self.host_key = pulumi.Output.from_input(host_key)
        # The machine outlives the stack: nothing owns it, and every step's delete runs on destroy.
        self.machine: pulumi.Resource | None = None
        # Read once: a reinstalled machine (a new machine-id) is taken up with `pulumi up --replace` on
        # this step, which runs every node step there again.
        self.identity = remote.Command(
            f"{name}-identity",
            connection=ssh.connection(self.ip, self.host_key),
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
        self.ssh = existing_ssh_access(settings, self)
        # Each node's pinned host key: meshlab:sshHostKeys, or the key it showed on first contact.
        given = parse_host_keys(hosts.ssh_host_keys)
        self.host_keys: dict[str, pulumi.Input[str]] = {}
        for node in topology.nodes:
            if node.name in given:
                self.host_keys[node.name] = given[node.name]
            else:
                learned = host_key_step(
                    f"{node.name}-host-key",
                    key_of="node",
                    label=node.name,
                    address=str(node.ip),
                    ssh=self.ssh,
                    parent=self,
                )
                self.host_keys[node.name] = learned.stdout.apply(str.strip)
        self.preflight = ExistingPreflight(
            f"{name}-preflight",
            nodes=topology.nodes,
            sizes=vm_sizes(topology),
            ssh=self.ssh,
            host_keys=self.host_keys,
            interface=hosts.node_interface,
            guest_arch=topology.guest_arch,
            announced=announced_addresses(settings),
            ports={role: settings.cluster.rke2_ports(role) for role in ("server", "agent")},
            opts=pulumi.ResourceOptions(parent=self),
        )
        # Each node's steps wait for the preflight of all of them.
        self.vms = [
            ExistingHost(
                node.name,
                node=node,
                ssh=self.ssh,
                host_key=self.host_keys[node.name],
                preflight=self.preflight,
                opts=pulumi.ResourceOptions(parent=self),
            )
            for node in topology.nodes
        ]
        self.output = HostsOutput(vms=self.vms, ssh=self.ssh, host_only_interface=hosts.node_interface)
        self.register_outputs({"nodes": {vm.node.name: vm.ip for vm in self.vms}})
