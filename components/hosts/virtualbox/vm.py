"""`meshlab:hosts:VirtualBoxVm`: one lab node, from seed ISO to a VM that answers on SSH."""

from __future__ import annotations

import pulumi

from components.hosts.cloud_init import mac_address
from components.hosts.image import BaseImage
from components.hosts.steps import step_command
from components.hosts.virtualbox.network import HostOnlyNetwork
from components.hosts.virtualbox.scripts import SCRIPTS
from components.hosts.vm import SshAccess, VmSize, boot_waits, seed_step, vm_props
from config.settings import NodeSpec


class VirtualBoxVm(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        *,
        vm_name: str,
        group: str,
        node: NodeSpec,
        size: VmSize,
        network: HostOnlyNetwork,
        image: BaseImage,
        ssh: SshAccess,
        ntp_servers: list[str],
        cache_environment: dict[str, str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("meshlab:hosts:VirtualBoxVm", name, vm_props(vm_name, node, size), opts)
        self.node = node
        self.vm_name = vm_name
        self.ip = str(node.ip)
        self.role = node.role

        documents, self.seed, self.host_key = seed_step(
            name,
            vm_name=vm_name,
            node=node,
            subnet=network.subnet,
            ssh=ssh,
            ntp_servers=ntp_servers,
            cache_environment=cache_environment,
            parent=self,
        )
        arm = image.image.arch == "arm64"
        self.machine = step_command(
            f"{name}-vm",
            scripts=SCRIPTS,
            create="vm_create",
            delete="vm_delete",
            environment={
                "MESHLAB_VM_NAME": vm_name,
                "MESHLAB_VM_GROUP": group,
                "MESHLAB_OS_TYPE": image.image.vbox_os_type,
                "MESHLAB_PLATFORM": "arm" if arm else "x86",
                "MESHLAB_FIRMWARE": "efi" if arm else "bios",
                "MESHLAB_STORAGE_BUS": "virtio" if arm else "sata",
                "MESHLAB_CPUS": str(size.cpus),
                "MESHLAB_MEMORY_MIB": str(size.memory_mib),
                "MESHLAB_DISK_GIB": str(size.disk_gib),
                "MESHLAB_MAC_NAT": mac_address(vm_name, 1),
                "MESHLAB_MAC_HOST_ONLY": mac_address(vm_name, 2),
                "MESHLAB_HOST_IP": str(network.host_ip),
                "MESHLAB_NETMASK": str(network.subnet.netmask),
                "MESHLAB_BASE_DISK": image.base_disk,
                **cache_environment,
            },
            parent=self,
            depends_on=[self.seed, network, image],
            # cloud-init applies a seed only on first boot: a new seed means a new VM.
            triggers=[documents.apply(lambda docs: docs.digest)],
        )
        self.ssh_ready, self.cloud_init = boot_waits(
            name, vm_name=vm_name, ip=self.ip, host_key=self.host_key, machine=self.machine, ssh=ssh, parent=self
        )
        self.uuid = self.machine.stdout
        self.register_outputs({"ip": self.ip, "role": self.role, "vmName": vm_name, "uuid": self.uuid})
