"""What the VM backends (VirtualBox, QEMU) share, and the login every backend hands on.

The sizes of the roles' VMs, the inputs a VM component shows, the preflight's list of VMs; the SSH
access (`SshAccess`, with an optional `Bastion`) every `HostsOutput` carries; and the steps of a VM's
life that do not depend on the hypervisor: its seed ISO (`seed_step`) and the waits for SSH and
cloud-init (`boot_waits`). Each backend's VM component (`virtualbox.vm.VirtualBoxVm`, `qemu.vm.QemuVm`)
is built from them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from ipaddress import IPv4Network

import pulumi
import pulumi_tls as tls
from pulumi_command import local, remote

from components.hosts.cloud_init import HostKey, SeedDocuments, seed_documents
from components.hosts.scripts import SCRIPTS
from components.hosts.steps import step_command
from config.settings import NodeSpec, TopologySettings

SSH_TIMEOUT_SECONDS = 600
# remote.Command retries the SSH dial this many times, each bounded by PER_DIAL_TIMEOUT seconds.
DIAL_ERROR_LIMIT = 30
PER_DIAL_TIMEOUT = 10

# cloud-init exits 2 when it finished with recoverable errors: the VM is usable, so say so and go on.
CLOUD_INIT_WAIT = """\
status=0
sudo cloud-init status --wait >/dev/null || status=$?
if [ "$status" -ne 0 ] && [ "$status" -ne 2 ]; then
  echo "cloud-init failed on $(hostname) (exit $status); see /var/log/cloud-init-output.log" >&2
  exit 1
fi
[ "$status" -eq 0 ] || echo "cloud-init finished with recoverable errors on $(hostname)" >&2
echo "cloud-init done on $(hostname)"
"""


@dataclass(frozen=True)
class VmSize:
    cpus: int
    memory_mib: int
    disk_gib: int


def vm_sizes(topology: TopologySettings) -> dict[str, VmSize]:
    """The VM size of each role."""
    return {
        "server": VmSize(topology.server_cpus, topology.server_memory_mib, topology.server_disk_gib),
        "agent": VmSize(topology.agent_cpus, topology.agent_memory_mib, topology.agent_disk_gib),
    }


def vm_props(vm_name: str, node: NodeSpec, size: VmSize) -> dict[str, object]:
    """The inputs a VM component shows in previews, whichever hypervisor runs it."""
    return {
        "vmName": vm_name,
        "ip": str(node.ip),
        "role": node.role,
        "cpus": size.cpus,
        "memoryMib": size.memory_mib,
        "diskGib": size.disk_gib,
    }


def preflight_vms(vms: dict[str, VmSize]) -> str:
    """The VMs as a host preflight reads them: "name:cpus:memory_mib:disk_gib", space separated."""
    return " ".join(f"{vm}:{size.cpus}:{size.memory_mib}:{size.disk_gib}" for vm, size in vms.items())


@dataclass(frozen=True)
class Bastion:
    """A jump host the nodes are reached through (same key as the nodes)."""

    host: str
    port: int
    user: str
    # Its pinned SSH host key: an OpenSSH public key line ("ssh-ed25519 AAAA...").
    host_key: pulumi.Input[str]


@dataclass(frozen=True)
class SshAccess:
    user: str
    # The nodes' authorized key: what a VM's seed installs (existing hosts have theirs already).
    public_key: pulumi.Output[str] | None
    # Always a secret; None logs in with the keys of the ssh-agent (SSH_AUTH_SOCK).
    private_key: pulumi.Output[str] | None
    bastion: Bastion | None = None

    def connection(self, host: str, host_key: pulumi.Input[str]) -> remote.ConnectionArgs:
        """How remote commands reach `host`, which must present `host_key` (an OpenSSH public key line:
        the connection refuses any other); the dial is retried while the VM boots."""
        proxy = None
        if self.bastion:
            proxy = remote.ProxyConnectionArgs(
                host=self.bastion.host,
                port=self.bastion.port,
                user=self.bastion.user,
                host_key=self.bastion.host_key,
                private_key=self.private_key,
                dial_error_limit=DIAL_ERROR_LIMIT,
                per_dial_timeout=PER_DIAL_TIMEOUT,
            )
        return remote.ConnectionArgs(
            host=host,
            user=self.user,
            host_key=host_key,
            private_key=self.private_key,
            proxy=proxy,
            dial_error_limit=DIAL_ERROR_LIMIT,
            per_dial_timeout=PER_DIAL_TIMEOUT,
        )


def seed_step(
    name: str,
    *,
    vm_name: str,
    node: NodeSpec,
    subnet: IPv4Network,
    ssh: SshAccess,
    ntp_servers: list[str],
    cache_environment: dict[str, str],
    parent: pulumi.Resource,
) -> tuple[pulumi.Output[SeedDocuments], local.Command, pulumi.Output[str]]:
    """The VM's cloud-init documents, the step that writes them to its NoCloud seed ISO, and the VM's
    SSH host key (its public line), which the seed installs and every connection pins. The documents
    hold the host key's private half: they are a secret."""
    if ssh.public_key is None:  # pragma: no cover - every VM backend has a key pair
        raise ValueError(f"{vm_name}: a VM's seed needs the SSH public key it authorizes")
    host_key = tls.PrivateKey(
        f"{name}-host-key",
        algorithm="ED25519",
        opts=pulumi.ResourceOptions(parent=parent, additional_secret_outputs=["privateKeyOpenssh", "privateKeyPem"]),
    )
    documents = pulumi.Output.all(ssh.public_key, host_key.private_key_openssh, host_key.public_key_openssh).apply(
        lambda keys: seed_documents(
            vm_name=vm_name,
            node=node,
            subnet=subnet,
            ssh_user=ssh.user,
            ssh_public_key=keys[0],
            ntp_servers=ntp_servers,
            host_key=HostKey(private_openssh=keys[1], public_openssh=keys[2]),
        )
    )
    seed = step_command(
        f"{name}-seed",
        scripts=SCRIPTS,
        create="seed_create",
        delete="seed_delete",
        environment={"MESHLAB_VM_NAME": vm_name, **cache_environment},
        stdin=pulumi.Output.secret(documents.apply(lambda docs: json.dumps(docs.as_dict(), sort_keys=True))),
        parent=parent,
    )
    return documents, seed, host_key.public_key_openssh.apply(str.strip)


def boot_waits(
    name: str,
    *,
    vm_name: str,
    ip: str,
    host_key: pulumi.Output[str],
    machine: local.Command,
    ssh: SshAccess,
    parent: pulumi.Resource,
    hint: str | None = None,
) -> tuple[local.Command, remote.Command]:
    """Wait for SSH on the VM's lab address, then for cloud-init; both again for a new machine.
    `hint` is where the SSH timeout tells the user to look (the VirtualBox log by default)."""
    environment = {
        "MESHLAB_VM_NAME": vm_name,
        "MESHLAB_NODE_IP": ip,
        "MESHLAB_TIMEOUT_SECONDS": str(SSH_TIMEOUT_SECONDS),
    }
    if hint:
        environment["MESHLAB_SSH_HINT"] = hint
    ssh_ready = step_command(
        f"{name}-ssh",
        scripts=SCRIPTS,
        create="wait_ssh",
        environment=environment,
        parent=parent,
        depends_on=[machine],
        triggers=[machine.stdout],
    )
    cloud_init = remote.Command(
        f"{name}-cloud-init",
        connection=ssh.connection(ip, host_key),
        create=CLOUD_INIT_WAIT,
        triggers=[machine.stdout],
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[ssh_ready]),
    )
    return ssh_ready, cloud_init
