"""`meshlab:storage:NfsProvisioner`: dynamic volumes on the first server's NFS export."""

from __future__ import annotations

from typing import Any

import pulumi

from components.cluster.access import ClusterAccess
from components.cluster.nfs import NfsExport
from components.helm import release
from components.security.namespaces import NFS_PROVISIONER
from config.settings import Settings


def provisioner_values(export: NfsExport, settings: Settings) -> dict[str, Any]:
    platform = settings.platform
    return {
        "nfs": {"server": export.server, "path": export.path},
        "storageClass": {
            "name": platform.nfs_storage_class,
            "defaultClass": platform.nfs_default_storage_class,
            "reclaimPolicy": "Delete",
            # A deleted claim's directory is renamed archived-*, not removed: nothing is lost by accident.
            "archiveOnDelete": True,
        },
    }


class NfsProvisioner(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        *,
        access: ClusterAccess,
        nfs: NfsExport,
        namespace: pulumi.Resource,
        settings: Settings,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(
            "meshlab:storage:NfsProvisioner",
            name,
            {"storageClass": settings.platform.nfs_storage_class, "server": nfs.server, "path": nfs.path},
            opts,
        )
        self.release = release(
            f"{name}-release",
            sources=access.sources,
            name="nfs-subdir-external-provisioner",
            chart="nfs-provisioner",
            namespace=NFS_PROVISIONER,
            values=provisioner_values(nfs, settings),
            # The provisioner mounts the export when it starts.
            opts=access.options(self, [namespace, nfs.exported]),
        )
        self.storage_class = settings.platform.nfs_storage_class
        self.register_outputs({"storageClass": self.storage_class})
