"""`meshlab:hosts:ExistingPreflight`: check every existing host over SSH, all at once, before any
step changes anything on any of them."""

from __future__ import annotations

import pulumi

from components.hosts.existing.scripts import SCRIPTS, render_script
from components.hosts.existing.ssh import login_environment
from components.hosts.steps import step_command
from components.hosts.vm import SshAccess, VmSize
from config.settings import EXISTING_HOST_OS, EXISTING_MEMORY_PERCENT, NodeSpec

# How long the check waits for a clock that is not synchronised yet (a host that just booted).
TIME_SYNC_TIMEOUT_SECONDS = 30


def preflight_nodes(nodes: list[NodeSpec], sizes: dict[str, VmSize]) -> str:
    """The nodes as the preflight reads them: "NAME IP ROLE CPUS MEMORY_MIB DISK_GIB" a line."""
    lines = []
    for node in nodes:
        size = sizes[node.role]
        lines.append(f"{node.name} {node.ip} {node.role} {size.cpus} {size.memory_mib} {size.disk_gib}")
    return "\n".join(lines)


class ExistingPreflight(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        *,
        nodes: list[NodeSpec],
        sizes: dict[str, VmSize],
        ssh: SshAccess,
        host_keys: dict[str, pulumi.Input[str]],
        interface: str,
        guest_arch: str,
        announced: dict[str, str],
        ports: dict[str, tuple[int, ...]],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """`announced`: the addresses meshlab will announce on the nodes' network, each with the key
        that sets it; the preflight looks whether another machine has one already. `ports`: by role, the
        ports RKE2 will listen on (free unless meshlab's RKE2 holds them). `host_keys`: by node name, the
        SSH host key each node is pinned to; a node that shows another is refused."""
        super().__init__("meshlab:hosts:ExistingPreflight", name, None, opts)
        wanted = preflight_nodes(nodes, sizes)
        pins = pulumi.Output.all(*[host_keys[node.name] for node in nodes]).apply(
            lambda keys: "\n".join(f"{node.name} {key}" for node, key in zip(nodes, keys, strict=True))
        )
        environment: dict[str, pulumi.Input[str]] = {
            "MESHLAB_NODES": wanted,
            "MESHLAB_HOST_KEYS": pins,
            **login_environment(ssh),
            "MESHLAB_INTERFACE": interface,
            "MESHLAB_GUEST_ARCH": guest_arch,
            "MESHLAB_SUPPORTED_OS": ",".join(EXISTING_HOST_OS),
            "MESHLAB_MEMORY_PERCENT": str(EXISTING_MEMORY_PERCENT),
            "MESHLAB_SERVER_PORTS": " ".join(str(port) for port in ports["server"]),
            "MESHLAB_AGENT_PORTS": " ".join(str(port) for port in ports["agent"]),
            "MESHLAB_TIME_SYNC_TIMEOUT_SECONDS": str(TIME_SYNC_TIMEOUT_SECONDS),
            "MESHLAB_NODE_CHECK": render_script("existing_check"),
            "MESHLAB_FREE_ADDRESSES": " ".join(f"{address}={key}" for address, key in announced.items()),
        }
        # Re-run whenever the nodes or what they need change: a new node is checked before it is used.
        # The key goes on stdin, so that the environment stays readable in previews.
        self.check = step_command(
            f"{name}-check",
            scripts=SCRIPTS,
            create="existing_preflight",
            environment=environment,
            stdin=ssh.private_key,
            parent=self,
            triggers=[wanted],
        )
        self.register_outputs({"summary": self.check.stdout})
