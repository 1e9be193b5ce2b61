"""The whole lab graph, layer by layer. Each layer takes the typed output of the one below."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.cluster.rke2_cluster import ClusterAccess, Rke2Cluster
from components.hosts.lab_hosts import HostsOutput, LabHosts
from config.settings import Settings


@dataclass(frozen=True)
class Lab:
    hosts: HostsOutput
    cluster: ClusterAccess

    def export(self, settings: Settings) -> None:
        pulumi.export(
            "nodes", {vm.node.name: {"ip": vm.ip, "role": vm.role, "vm": vm.vm_name} for vm in self.hosts.vms}
        )
        pulumi.export("apiVip", str(settings.network.api_vip))
        pulumi.export("hostOnlyInterface", self.hosts.host_only_interface)
        pulumi.export("sshUser", self.hosts.ssh.user)
        pulumi.export("sshPrivateKey", self.hosts.ssh.private_key)
        pulumi.export("clusterName", self.cluster.name)
        pulumi.export("apiEndpoint", self.cluster.api_endpoint)
        pulumi.export("kubeconfig", self.cluster.kubeconfig)
        pulumi.export("nfsExport", {"server": self.cluster.nfs.server, "path": self.cluster.nfs.path})


def build_lab(settings: Settings, stack: str) -> Lab:
    hosts = LabHosts("hosts", settings=settings, stack=stack)
    cluster = Rke2Cluster("cluster", hosts=hosts.output, settings=settings, stack=stack)
    return Lab(hosts=hosts.output, cluster=cluster.access)
