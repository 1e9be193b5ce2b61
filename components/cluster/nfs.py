"""`meshlab:cluster:NfsServer`: the NFS export on the first server that dynamic volumes live on."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi

from components.cluster.steps import NodeTarget, node_step


@dataclass(frozen=True)
class NfsExport:
    """Where the storage layer's provisioner mounts from, and the step after which it is exported."""

    server: str
    path: str
    exported: pulumi.Resource


class NfsServer(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        *,
        target: NodeTarget,
        path: str,
        allowed_clients: str,
        depends_on: Sequence[pulumi.Resource],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(
            "meshlab:cluster:NfsServer",
            name,
            {"server": target.ip, "path": path, "allowedClients": allowed_clients},
            opts,
        )
        inputs = {"MESHLAB_EXPORT_PATH": path, "MESHLAB_ALLOWED_CIDR": allowed_clients}
        self.command = node_step(
            f"{name}-export",
            target=target,
            script="nfs_export",
            delete_script="nfs_unexport",
            inputs=inputs,
            parent=self,
            depends_on=depends_on,
        )
        self.export = NfsExport(server=target.ip, path=path, exported=self.command)
        self.register_outputs({"server": target.ip, "path": path})
