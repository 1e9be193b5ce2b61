"""`meshlab:cluster:ExistingCluster`: a cluster meshlab did not build, reached with the stack's kubeconfig
(meshlab:kubeconfig). No hosts, no RKE2: the layers above get the same `ClusterAccess` as from the RKE2
layer, with the NFS export the stack names (or none) and no node NIC to bind to.

The cluster preflight (components/cluster/cluster_preflight.py) has run before this is registered.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from components.cluster.access import ClusterAccess
from components.cluster.nfs import NfsExport
from components.sources import Sources
from config.kubeconfig import current_context
from config.settings import Settings, cluster_name, is_secret_placeholder


def api_server(kubeconfig: str) -> str:
    """The server of the kubeconfig's current context (validation has checked it names one); empty for the
    placeholder of an encrypted kubeconfig that offline tools render with."""
    if is_secret_placeholder(kubeconfig):
        return ""
    return str(current_context(kubeconfig).cluster["server"])


class ExistingCluster(pulumi.ComponentResource):
    def __init__(
        self, name: str, *, settings: Settings, stack: str, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        cluster = settings.cluster
        endpoint = api_server(cluster.kubeconfig.get_secret_value())
        super().__init__(
            "meshlab:cluster:ExistingCluster",
            name,
            {"apiEndpoint": endpoint, "nfsServer": cluster.nfs_server},
            opts,
        )
        self.cluster_name = cluster_name(stack)
        self.kubeconfig: pulumi.Output[str] = pulumi.Output.secret(cluster.kubeconfig.get_secret_value())
        # With a cluster identifier, a new kubeconfig (new credentials for the same cluster) updates the
        # provider instead of replacing it and everything deployed through it.
        self.provider = k8s.Provider(
            f"{name}-kubernetes",
            kubeconfig=self.kubeconfig,
            cluster_identifier=self.cluster_name,
            opts=pulumi.ResourceOptions(parent=self),
        )
        nfs = (
            NfsExport(server=cluster.nfs_server, path=cluster.nfs_export_path, exported=self.provider)
            if cluster.nfs_server
            else None
        )
        self.access = ClusterAccess(
            name=self.cluster_name,
            provider=self.provider,
            api_endpoint=endpoint,
            kubeconfig=self.kubeconfig,
            ready=self.provider,
            nfs=nfs,
            node_interface="",
            sources=Sources.of(settings.sources),
            timeout_seconds=cluster.node_ready_timeout_seconds,
        )
        self.register_outputs({"apiEndpoint": endpoint})
