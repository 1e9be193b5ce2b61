"""Cluster-layer steps: remote commands and file copies on one node, over SSH.

Every step of a node hangs off that node's VM: it is `deleted_with` the VM (so `pulumi destroy`
never tries to SSH into a machine that is already gone) and is replaced with the VM (a rebuilt
machine runs every step again).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi_command import remote

from components.cluster.scripts import as_root, render_script
from components.hosts.output import HostNode
from components.hosts.vm import SshAccess


@dataclass(frozen=True)
class NodeTarget:
    """One lab node as the cluster layer reaches it."""

    vm: HostNode
    connection: remote.ConnectionArgs

    @property
    def name(self) -> str:
        return self.vm.node.name

    @property
    def ip(self) -> str:
        return self.vm.ip

    @property
    def role(self) -> str:
        return self.vm.role

    @staticmethod
    def of(vm: HostNode, ssh: SshAccess) -> NodeTarget:
        return NodeTarget(vm=vm, connection=ssh.connection(vm.ip, vm.host_key))


def _options(
    target: NodeTarget,
    parent: pulumi.Resource,
    depends_on: Sequence[pulumi.Resource],
    **extra: Any,
) -> pulumi.ResourceOptions:
    return pulumi.ResourceOptions(
        parent=parent,
        # Never before cloud-init has finished on the node.
        depends_on=[target.vm.cloud_init, *depends_on],
        deleted_with=target.vm.machine,
        # Steps act on fixed paths: a replacement must undo the old one before doing the new one.
        delete_before_replace=True,
        **extra,
    )


def node_step(
    name: str,
    *,
    target: NodeTarget,
    script: str,
    inputs: Mapping[str, str],
    parent: pulumi.Resource,
    depends_on: Sequence[pulumi.Resource] = (),
    delete_script: str | None = None,
    update_script: str | None = None,
    create: str | None = None,
    triggers: Sequence[Any] = (),
    ignore_changes: Sequence[str] = (),
) -> remote.Command:
    """Run step `script` as root on the node, with `inputs` rendered into it.

    `create` replaces the create command (e.g. a no-op for steps that act only on update)."""
    rendered = as_root(render_script(script, inputs))
    return remote.Command(
        name,
        connection=target.connection,
        create=create if create is not None else rendered,
        update=as_root(render_script(update_script, inputs)) if update_script else None,
        delete=as_root(render_script(delete_script, inputs)) if delete_script else None,
        triggers=[target.vm.uuid, *triggers],
        opts=_options(target, parent, depends_on, ignore_changes=list(ignore_changes) or None),
    )


def _copy(
    name: str,
    *,
    target: NodeTarget,
    source: pulumi.Input[pulumi.Asset],
    remote_path: str,
    parent: pulumi.Resource,
    depends_on: Sequence[pulumi.Resource],
) -> remote.CopyToRemote:
    return remote.CopyToRemote(
        name,
        connection=target.connection,
        source=source,
        remote_path=remote_path,
        triggers=[target.vm.uuid],
        opts=_options(target, parent, depends_on),
    )


def staged_copy(
    name: str,
    *,
    target: NodeTarget,
    content: pulumi.Input[str],
    remote_path: str,
    parent: pulumi.Resource,
    depends_on: Sequence[pulumi.Resource] = (),
) -> remote.CopyToRemote:
    """Copy generated text to the node's staging directory (as the login user; root-owned
    places are filled by the files step). A secret `content` stays secret."""
    source = pulumi.Output.from_input(content).apply(pulumi.StringAsset)
    return _copy(name, target=target, source=source, remote_path=remote_path, parent=parent, depends_on=depends_on)


def staged_file_copy(
    name: str,
    *,
    target: NodeTarget,
    local_path: str,
    ready: pulumi.Output[Any],
    remote_path: str,
    parent: pulumi.Resource,
    depends_on: Sequence[pulumi.Resource] = (),
) -> remote.CopyToRemote:
    """Copy a workstation file to the node's staging directory (the provider makes the directories). The file
    is read once `ready` is known: a file that a step of this same update writes does not exist yet when the
    plan is made."""
    source = ready.apply(lambda _: pulumi.FileAsset(local_path))
    return _copy(name, target=target, source=source, remote_path=remote_path, parent=parent, depends_on=depends_on)
