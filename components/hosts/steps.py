"""A hosts-layer step: one `local.Command` running a rendered bash script on the workstation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
from pulumi_command import local

from components.hosts.scripts import render_script

BASH = ["bash", "-c"]


def step_command(
    name: str,
    *,
    create: str,
    delete: str | None = None,
    environment: Mapping[str, pulumi.Input[str]],
    parent: pulumi.Resource,
    depends_on: Sequence[pulumi.Resource] = (),
    stdin: pulumi.Input[str] | None = None,
    triggers: Sequence[Any] | None = None,
) -> local.Command:
    """Run step `create` (and `delete` on destroy) with the given environment.

    Steps act on named things outside Pulumi (a VM, a file), so a replacement must delete the
    old one before creating the new one: create-before-delete would find the old object,
    treat it as done, and then delete it.
    """
    return local.Command(
        name,
        create=render_script(create),
        delete=render_script(delete) if delete else None,
        environment=dict(environment),
        interpreter=BASH,
        stdin=stdin,
        triggers=list(triggers) if triggers else None,
        # Delete steps read what create printed (e.g. whether a network was ours).
        add_previous_output_in_env=True,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on), delete_before_replace=True),
    )
