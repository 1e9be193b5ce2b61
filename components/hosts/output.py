"""The one contract every hosts backend hands the cluster layer: `HostsOutput`.

A backend (VirtualBox, QEMU, existing hosts) is a component of its own that builds its machines and exposes them
as `HostNode`s; nothing above the hosts layer knows which backend made them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import pulumi
import pulumi_tls as tls

from components.hosts.vm import SshAccess
from config.settings import NodeSpec, Settings


class HostNode(Protocol):
    """One machine a node runs on, as the cluster layer uses it."""

    @property
    def node(self) -> NodeSpec: ...
    @property
    def ip(self) -> str: ...
    @property
    def role(self) -> str: ...
    @property
    def vm_name(self) -> str: ...
    # Changes whenever the machine is rebuilt: the node's steps run again on a new machine.
    @property
    def uuid(self) -> pulumi.Output[str]: ...
    # The resource that owns the machine: the node's steps are deleted with it, without running
    # their deletes. None when the machine outlives the stack (existing hosts): every delete runs.
    @property
    def machine(self) -> pulumi.Resource | None: ...
    # The SSH host key the machine must present (an OpenSSH public key line): every connection pins it.
    @property
    def host_key(self) -> pulumi.Output[str]: ...
    # Done when the machine is usable (cloud-init finished): the node's steps wait for it.
    @property
    def cloud_init(self) -> pulumi.Resource: ...


@dataclass(frozen=True)
class HostsOutput:
    """What the layers above need from the hosts layer."""

    vms: Sequence[HostNode]
    ssh: SshAccess
    # The NIC every node's address is on: what kube-vip, Cilium and MetalLB bind to.
    host_only_interface: str


def ssh_access(name: str, settings: Settings, parent: pulumi.Resource) -> SshAccess:
    """The nodes' login: the key pair the stack names, or an ED25519 pair generated (a secret)."""
    access = settings.access
    if access.ssh_public_key:
        return SshAccess(
            user=access.ssh_user,
            public_key=pulumi.Output.from_input(access.ssh_public_key),
            private_key=pulumi.Output.secret(access.ssh_private_key.get_secret_value()),
        )
    key = tls.PrivateKey(
        f"{name}-ssh-key",
        algorithm="ED25519",
        opts=pulumi.ResourceOptions(parent=parent, additional_secret_outputs=["privateKeyOpenssh", "privateKeyPem"]),
    )
    return SshAccess(
        user=access.ssh_user,
        public_key=key.public_key_openssh,
        private_key=pulumi.Output.secret(key.private_key_openssh),
    )
