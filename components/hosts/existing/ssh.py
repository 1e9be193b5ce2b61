"""How meshlab reaches existing hosts over SSH: the login (key or ssh-agent, bastion) and the host
keys every connection pins, learned on first contact where the stack does not give them."""

from __future__ import annotations

import pulumi
from pulumi_command import local

from components.hosts.existing.scripts import SCRIPTS
from components.hosts.steps import step_command
from components.hosts.vm import Bastion, SshAccess
from config.host_keys import PROVIDER_HOST_KEY_ORDER, pinned
from config.settings import Settings


def openssh_host_key_algorithms() -> str:
    """OpenSSH's HostKeyAlgorithms in the command provider's order: asked so, a host shows OpenSSH the
    key it will show the provider's connections (an ssh-rsa key signs with rsa-sha2-256 or -512)."""
    names = [
        ("rsa-sha2-256,rsa-sha2-512" if key_type == "ssh-rsa" else key_type) for key_type in PROVIDER_HOST_KEY_ORDER
    ]
    return ",".join(names)


def host_key_step(
    name: str,
    *,
    key_of: str,
    label: str,
    address: str,
    ssh: SshAccess | None,
    parent: pulumi.Resource,
) -> local.Command:
    """The step that learns a host's SSH key on first contact and, on every later run, refuses a host
    that presents another (its last output is the pinned key). `ssh` logs in to a node; None for the
    bastion, whose key is read without a login."""
    environment: dict[str, pulumi.Input[str]] = {
        "MESHLAB_KEY_OF": key_of,
        "MESHLAB_NAME": label,
        "MESHLAB_ADDRESS": address,
        "MESHLAB_HOST_KEY_ALGORITHMS": openssh_host_key_algorithms(),
    }
    if ssh is not None:
        environment.update(login_environment(ssh))
    return step_command(
        name,
        scripts=SCRIPTS,
        create="existing_host_key",
        environment=environment,
        stdin=ssh.private_key if ssh else None,
        parent=parent,
    )


def login_environment(ssh: SshAccess) -> dict[str, pulumi.Input[str]]:
    """How the existing-hosts scripts log in: the user, the agent or the key on stdin, the bastion."""
    environment: dict[str, pulumi.Input[str]] = {
        "MESHLAB_HOST_KEY_ALGORITHMS": openssh_host_key_algorithms(),
        "MESHLAB_SSH_USER": ssh.user,
        "MESHLAB_SSH_AGENT": "true" if ssh.private_key is None else "false",
    }
    if ssh.bastion:
        bastion = ssh.bastion
        environment["MESHLAB_BASTION"] = f"{bastion.user}@{bastion.host}:{bastion.port}"
        environment["MESHLAB_BASTION_HOST_KEY"] = bastion.host_key
    return environment


def existing_ssh_access(settings: Settings, parent: pulumi.Resource) -> SshAccess:
    """The login the stack gives: its private key (a secret), or the ssh-agent; and the bastion, pinned
    to meshlab:sshBastionHostKey or to the key it showed on first contact."""
    access, hosts = settings.access, settings.hosts
    key = access.ssh_private_key.get_secret_value()
    address = hosts.bastion_address
    bastion = None
    if address:
        host_key: pulumi.Input[str] = pinned(hosts.ssh_bastion_host_key)
        if not hosts.ssh_bastion_host_key:
            learned = host_key_step(
                "hosts-bastion-host-key",
                key_of="bastion",
                label="bastion",
                address=f"{address[0]}:{address[1]}",
                ssh=None,
                parent=parent,
            )
            host_key = learned.stdout.apply(str.strip)
        bastion = Bastion(host=address[0], port=address[1], user=hosts.ssh_bastion_user, host_key=host_key)
    return SshAccess(
        user=access.ssh_user,
        public_key=None,
        private_key=None if access.ssh_agent else pulumi.Output.secret(key),
        bastion=bastion,
    )
