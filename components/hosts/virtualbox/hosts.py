"""`meshlab:hosts:LabHosts`: the VirtualBox backend. Every VM of a stack, created in parallel on
one host-only network.

It hands the cluster layer a `HostsOutput`: who the nodes are, how to reach them over SSH,
and which resources to wait for.
"""

from __future__ import annotations

import pulumi

from components.hosts.image import BaseImage, cloud_image
from components.hosts.output import HostsOutput, ssh_access
from components.hosts.virtualbox.network import HostOnlyNetwork, macos_dhcp_address, reserved_addresses
from components.hosts.virtualbox.preflight import HostPreflight
from components.hosts.virtualbox.vm import VirtualBoxVm
from components.hosts.vm import vm_sizes
from config.settings import HOST_ONLY_INTERFACE, NAMESPACE, Settings


class LabHosts(pulumi.ComponentResource):
    def __init__(self, name: str, *, settings: Settings, stack: str, opts: pulumi.ResourceOptions | None = None):
        # The backend shows in previews and in the pull-request diff (tools/diff.py).
        super().__init__("meshlab:hosts:LabHosts", name, {"hypervisor": settings.hosts.hypervisor}, opts)
        topology, network, access = settings.topology, settings.network, settings.access
        image = cloud_image(settings)
        cache = {"MESHLAB_CACHE_DIR": access.image_cache_dir} if access.image_cache_dir else {}
        child = pulumi.ResourceOptions(parent=self)

        self.ssh = ssh_access(name, settings, self)
        sizes = vm_sizes(topology)
        vm_names = {node.name: f"{NAMESPACE}-{stack}-{node.name}" for node in topology.nodes}

        self.preflight = HostPreflight(
            f"{name}-preflight",
            vms={vm_names[node.name]: sizes[node.role] for node in topology.nodes},
            host_ip=network.host_ip,
            subnet=network.subnet,
            image=image,
            cache_environment=cache,
            opts=child,
        )
        after_preflight = pulumi.ResourceOptions(parent=self, depends_on=[self.preflight])
        self.network = HostOnlyNetwork(
            f"{name}-host-only",
            subnet=network.subnet,
            host_ip=network.host_ip,
            dhcp_ip=macos_dhcp_address(network, topology.nodes),
            reserved=reserved_addresses(network, topology.nodes),
            opts=after_preflight,
        )
        self.image = BaseImage(f"{name}-image", image=image, cache_environment=cache, opts=after_preflight)
        # No VM depends on another: VirtualBox boots them all at once.
        self.vms = [
            VirtualBoxVm(
                node.name,
                vm_name=vm_names[node.name],
                group=f"/{NAMESPACE}/{stack}",
                node=node,
                size=sizes[node.role],
                network=self.network,
                image=self.image,
                ssh=self.ssh,
                ntp_servers=access.ntp_servers,
                cache_environment=cache,
                opts=child,
            )
            for node in topology.nodes
        ]
        self.output = HostsOutput(vms=self.vms, ssh=self.ssh, host_only_interface=HOST_ONLY_INTERFACE)
        self.register_outputs({"nodes": {vm.node.name: vm.ip for vm in self.vms}})
