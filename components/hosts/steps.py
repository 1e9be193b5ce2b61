"""A hosts-layer step: one `local.Command` running a rendered bash script on the workstation.

Each step names the scripts package it comes from: the layer's shared steps
(`components.hosts.scripts.SCRIPTS`) or its backend's (`components.hosts.BACKEND.scripts.SCRIPTS`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
from pulumi_command import local

from components.shell import StepScripts

BASH = ["bash", "-c"]


def step_command(
    name: str,
    *,
    scripts: StepScripts,
    create: str,
    delete: str | None = None,
    environment: Mapping[str, pulumi.Input[str]],
    parent: pulumi.Resource,
    depends_on: Sequence[pulumi.Resource] = (),
    stdin: pulumi.Input[str] | None = None,
    triggers: Sequence[Any] | None = None,
) -> local.Command:
    """Run step `create` (and `delete` on destroy) of `scripts` with the given environment.

    Steps act on named things outside Pulumi (a VM, a file), so a replacement must delete the
    old one before creating the new one: create-before-delete would find the old object,
    treat it as done, and then delete it.
    """
    return local.Command(
        name,
        create=scripts.render(create),
        delete=scripts.render(delete) if delete else None,
        environment=dict(environment),
        interpreter=BASH,
        stdin=stdin,
        triggers=list(triggers) if triggers else None,
        # Delete steps read what create printed (e.g. whether a network was ours).
        add_previous_output_in_env=True,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on), delete_before_replace=True),
    )
