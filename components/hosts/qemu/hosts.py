"""`meshlab:hosts:QemuHosts`: the QEMU/KVM backend for Linux workstations. Every VM of a stack,
created in parallel, with a NAT NIC and a lab NIC on one bridge the host is on.

A sibling of the VirtualBox backend (`LabHosts`): the same seed, image and `HostsOutput`.
"""

from __future__ import annotations

import pulumi

from components.hosts.image import BaseImage, cloud_image
from components.hosts.output import HostsOutput, ssh_access
from components.hosts.qemu.network import QemuBridge
from components.hosts.qemu.preflight import QemuPreflight
from components.hosts.qemu.vm import QemuVm
from components.hosts.vm import vm_sizes
from config.settings import HOST_ONLY_INTERFACE, NAMESPACE, Settings


class QemuHosts(pulumi.ComponentResource):
    def __init__(self, name: str, *, settings: Settings, stack: str, opts: pulumi.ResourceOptions | None = None):
        # The backend shows in previews and in the pull-request diff (tools/diff.py).
        super().__init__("meshlab:hosts:QemuHosts", name, {"hypervisor": settings.hosts.hypervisor}, opts)
        topology, network, access, hosts = settings.topology, settings.network, settings.access, settings.hosts
        image = cloud_image(settings)
        cache = {"MESHLAB_CACHE_DIR": access.image_cache_dir} if access.image_cache_dir else {}
        bridge = hosts.bridge_name(stack)
        child = pulumi.ResourceOptions(parent=self)

        self.ssh = ssh_access(name, settings, self)
        sizes = vm_sizes(topology)
        vm_names = {node.name: f"{NAMESPACE}-{stack}-{node.name}" for node in topology.nodes}

        self.preflight = QemuPreflight(
            f"{name}-preflight",
            vms={vm_names[node.name]: sizes[node.role] for node in topology.nodes},
            host_ip=network.host_ip,
            subnet=network.subnet,
            bridge=bridge,
            accelerator=hosts.qemu_accelerator,
            image=image,
            cache_environment=cache,
            opts=child,
        )
        after_preflight = pulumi.ResourceOptions(parent=self, depends_on=[self.preflight])
        self.bridge = QemuBridge(
            f"{name}-bridge",
            bridge=bridge,
            subnet=network.subnet,
            host_ip=network.host_ip,
            opts=after_preflight,
        )
        self.image = BaseImage(
            f"{name}-image", image=image, cache_environment=cache, base_format="qcow2", opts=after_preflight
        )
        # No VM depends on another: they all boot at once.
        self.vms = [
            QemuVm(
                node.name,
                vm_name=vm_names[node.name],
                node=node,
                size=sizes[node.role],
                bridge=self.bridge,
                image=self.image,
                accelerator=hosts.qemu_accelerator,
                ssh=self.ssh,
                ntp_servers=access.ntp_servers,
                cache_environment=cache,
                opts=child,
            )
            for node in topology.nodes
        ]
        self.output = HostsOutput(vms=self.vms, ssh=self.ssh, host_only_interface=HOST_ONLY_INTERFACE)
        self.register_outputs({"nodes": {vm.node.name: vm.ip for vm in self.vms}})
