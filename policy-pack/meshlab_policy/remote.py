"""Remote commands: every SSH connection pins the host key of the machine it talks to."""

from __future__ import annotations

from collections.abc import Mapping

from meshlab_policy.kube import UNKNOWN, Resource, mapping, text
from meshlab_policy.settings import PolicySettings

# pulumi-command's resources that connect over SSH (`connection`, and `connection.proxy` for a bastion).
SSH_RESOURCE_TYPES = {"command:remote:Command", "command:remote:CopyToRemote", "command:remote:CopyFile"}


def validate_ssh_host_key_pinned(resource: Resource, _settings: PolicySettings) -> list[str]:
    """Without `hostKey` the provider accepts whatever key answers: anyone on the path can pose as the
    machine and receive what the step sends (join tokens, keys). A value not known yet (a key generated
    or learned in this run) is pinned once known."""
    if resource.type not in SSH_RESOURCE_TYPES:
        return []
    connection = resource.props.get("connection")
    if not isinstance(connection, Mapping):
        return []  # unknown, or a secret this run cannot read: judged where it is known
    violations = []
    host = text(connection.get("host")) or "its host"
    if not _pinned(connection.get("hostKey")):
        violations.append(f"the SSH connection to {host} pins no host key (connection.hostKey): pin the machine's key")
    proxy = connection.get("proxy")
    if proxy is not None and proxy is not UNKNOWN:
        proxy = mapping(proxy)
        if not _pinned(proxy.get("hostKey")):
            bastion = text(proxy.get("host")) or "the bastion"
            violations.append(
                f"the SSH connection to {host} goes through {bastion}, whose host key is not pinned "
                "(connection.proxy.hostKey): pin the bastion's key"
            )
    return violations


def _pinned(value: object) -> bool:
    return value is UNKNOWN or bool(text(value).strip())
