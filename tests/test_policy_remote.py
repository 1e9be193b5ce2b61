"""The ssh-host-keys-pinned policy: on plain resources, and on every remote step every stack registers."""

from __future__ import annotations

from typing import Any

import pytest

import tools.policy  # noqa: F401 - importing it puts policy-pack on sys.path

# isort: split
from meshlab_policy.kube import UNKNOWN, Resource
from meshlab_policy.remote import SSH_RESOURCE_TYPES, validate_ssh_host_key_pinned
from meshlab_policy.settings import PolicySettings

from tests.conftest import STACKS

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKey"


def remote(connection: Any, type_token: str = "command:remote:Command") -> Resource:
    return Resource(type_token, "step", "urn:step", {"connection": connection, "create": "true"})


def violations(resource: Resource) -> list[str]:
    return validate_ssh_host_key_pinned(resource, PolicySettings())


@pytest.mark.parametrize("type_token", sorted(SSH_RESOURCE_TYPES))
def test_a_connection_without_a_host_key_is_refused(type_token):
    assert violations(remote({"host": "192.0.2.11", "user": "ubuntu"}, type_token)) == [
        "the SSH connection to 192.0.2.11 pins no host key (connection.hostKey): pin the machine's key"
    ]
    assert violations(remote({"host": "192.0.2.11", "hostKey": "  "}, type_token)) != []
    assert violations(remote({"host": "192.0.2.11", "hostKey": KEY}, type_token)) == []


def test_a_bastion_without_a_host_key_is_refused():
    proxy: dict[str, str] = {"host": "bastion.example", "user": "jump"}
    connection = {"host": "192.0.2.11", "hostKey": KEY, "proxy": proxy}
    assert violations(remote(connection)) == [
        "the SSH connection to 192.0.2.11 goes through bastion.example, whose host key is not pinned "
        "(connection.proxy.hostKey): pin the bastion's key"
    ]
    proxy["hostKey"] = KEY
    assert violations(remote(connection)) == []


def test_a_key_not_known_yet_is_pinned_once_known_and_other_types_are_not_judged():
    assert violations(remote({"host": "192.0.2.11", "hostKey": UNKNOWN})) == []
    assert violations(remote(UNKNOWN)) == []
    assert violations(Resource("command:local:Command", "step", "urn:step", {"create": "true"})) == []


@pytest.mark.parametrize("stack", STACKS)
def test_every_remote_step_of_every_stack_pins_its_host_keys(render_with, stack):
    """What the policy judges in a real preview, here with each connection's secret revealed; the
    bastion variant of prod too."""
    overrides = {}
    if stack == "prod":
        overrides = {"meshlab:sshBastionHost": "bastion.example", "meshlab:sshBastionUser": "jump"}
    rendering = render_with(overrides, stack=stack)
    steps = [r for r in rendering.resources() if r.type in SSH_RESOURCE_TYPES]
    assert len(steps) > 40, stack
    for step in steps:
        resource = Resource(step.type, step.name, step.urn, step.revealed_inputs)
        assert violations(resource) == [], step.name
        assert ("proxy" in step.revealed_inputs["connection"]) == bool(overrides), step.name
