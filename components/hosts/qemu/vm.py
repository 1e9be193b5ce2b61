"""`meshlab:hosts:QemuVm`: one lab node under QEMU, from seed ISO to a VM that answers on SSH."""

from __future__ import annotations

import hashlib

import pulumi

from components.hosts.cloud_init import mac_address, with_colons
from components.hosts.image import BaseImage
from components.hosts.qemu.network import QemuBridge
from components.hosts.qemu.scripts import SCRIPTS
from components.hosts.steps import step_command
from components.hosts.vm import SshAccess, VmSize, boot_waits, seed_step, vm_props
from config.settings import NodeSpec, QemuAccelerator


def tap_name(vm_name: str) -> str:
    """The VM's tap device: Linux allows 15 characters, so a stable digest of the VM's name."""
    return "mltap-" + hashlib.sha256(vm_name.encode()).hexdigest()[:9]


class QemuVm(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        *,
        vm_name: str,
        node: NodeSpec,
        size: VmSize,
        bridge: QemuBridge,
        image: BaseImage,
        accelerator: QemuAccelerator,
        ssh: SshAccess,
        ntp_servers: list[str],
        cache_environment: dict[str, str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("meshlab:hosts:QemuVm", name, vm_props(vm_name, node, size), opts)
        self.node = node
        self.vm_name = vm_name
        self.ip = str(node.ip)
        self.role = node.role
        self.tap = tap_name(vm_name)

        documents, self.seed, self.host_key = seed_step(
            name,
            vm_name=vm_name,
            node=node,
            subnet=bridge.subnet,
            ssh=ssh,
            ntp_servers=ntp_servers,
            cache_environment=cache_environment,
            parent=self,
        )
        self.machine = step_command(
            f"{name}-vm",
            scripts=SCRIPTS,
            create="qemu_vm_create",
            delete="qemu_vm_delete",
            environment={
                "MESHLAB_VM_NAME": vm_name,
                "MESHLAB_GUEST_ARCH": image.image.arch,
                "MESHLAB_ACCELERATOR": accelerator,
                "MESHLAB_CPUS": str(size.cpus),
                "MESHLAB_MEMORY_MIB": str(size.memory_mib),
                "MESHLAB_DISK_GIB": str(size.disk_gib),
                # The same MACs as a VirtualBox VM of that name: the seed matches the NICs by them.
                "MESHLAB_MAC_NAT": with_colons(mac_address(vm_name, 1)),
                "MESHLAB_MAC_LAB": with_colons(mac_address(vm_name, 2)),
                "MESHLAB_BRIDGE": bridge.bridge,
                "MESHLAB_TAP": self.tap,
                "MESHLAB_BASE_DISK": image.base_disk,
                **cache_environment,
            },
            parent=self,
            depends_on=[self.seed, bridge, image],
            # cloud-init applies a seed only on first boot: a new seed means a new VM.
            triggers=[documents.apply(lambda docs: docs.digest)],
        )
        self.ssh_ready, self.cloud_init = boot_waits(
            name,
            vm_name=vm_name,
            ip=self.ip,
            host_key=self.host_key,
            machine=self.machine,
            ssh=ssh,
            parent=self,
            hint=f"check the VM's console, qemu/{vm_name}/console.log in the cache, and bridge {bridge.bridge}",
        )
        self.uuid = self.machine.stdout
        self.register_outputs({"ip": self.ip, "role": self.role, "vmName": vm_name, "uuid": self.uuid})
