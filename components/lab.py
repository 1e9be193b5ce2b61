"""The whole lab graph, layer by layer. Each layer takes the typed output of the one below."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.cluster.rke2_cluster import ClusterAccess, Rke2Cluster
from components.hosts.lab_hosts import HostsOutput, LabHosts
from components.mesh.istio import IstioAmbient
from components.network.gateway_api import GatewayApiCrds
from components.network.ingress import IngressGateway
from components.network.metallb import MetalLb
from components.observability.grafana import Grafana
from components.observability.hubble import HubbleUi
from components.observability.kiali import Kiali
from components.observability.prometheus import Prometheus
from components.security.kyverno import Kyverno
from components.security.namespaces import (
    ISTIO_SYSTEM,
    KYVERNO,
    METALLB_SYSTEM,
    MONITORING,
    NFS_PROVISIONER,
    Namespaces,
)
from components.storage.nfs_provisioner import NfsProvisioner
from config.settings import Settings


@dataclass(frozen=True)
class Lab:
    hosts: HostsOutput
    cluster: ClusterAccess
    mesh: IstioAmbient
    ingress: IngressGateway
    storage: NfsProvisioner
    grafana: Grafana
    # UI name -> URL on the ingress
    urls: dict[str, str]

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
        pulumi.export("storageClass", self.storage.storage_class)
        pulumi.export("meshMtlsMode", settings.mesh.mesh_mtls_mode)
        pulumi.export("ingressAddress", str(self.ingress.address))
        pulumi.export("urls", self.urls)
        hostnames = " ".join(url.removeprefix("http://").rstrip("/") for url in self.urls.values())
        # One line for /etc/hosts: the workstation resolves every UI to the ingress address.
        pulumi.export("hostsFileEntry", f"{self.ingress.address} {hostnames}")
        pulumi.export("grafanaAdminPassword", self.grafana.admin_password)


def build_lab(settings: Settings, stack: str) -> Lab:
    hosts = LabHosts("hosts", settings=settings, stack=stack)
    cluster = Rke2Cluster("cluster", hosts=hosts.output, settings=settings, stack=stack).access
    namespaces = Namespaces("namespaces", access=cluster, settings=settings)
    gateway_api = GatewayApiCrds("gateway-api", access=cluster)
    metallb = MetalLb("metallb", access=cluster, namespace=namespaces[METALLB_SYSTEM], settings=settings)
    mesh = IstioAmbient(
        "istio", access=cluster, namespace=namespaces[ISTIO_SYSTEM], gateway_api=gateway_api, settings=settings
    )
    ingress = IngressGateway("ingress", access=cluster, mesh=mesh, metallb=metallb, settings=settings)
    storage = NfsProvisioner(
        "nfs-provisioner", access=cluster, namespace=namespaces[NFS_PROVISIONER], settings=settings
    )
    Kyverno("kyverno", access=cluster, namespace=namespaces[KYVERNO])
    prometheus = Prometheus(
        "prometheus", access=cluster, namespace=namespaces[MONITORING], settings=settings, depends_on=[mesh.istiod]
    )
    grafana = Grafana(
        "grafana",
        access=cluster,
        namespace=namespaces[MONITORING],
        ingress=ingress,
        prometheus_url=prometheus.url,
        settings=settings,
        depends_on=[prometheus.release],
    )
    kiali = Kiali(
        "kiali",
        access=cluster,
        ingress=ingress,
        prometheus_url=prometheus.url,
        grafana_url=grafana.service_url,
        settings=settings,
        depends_on=[mesh.istiod, prometheus.release],
    )
    urls = {"grafana": grafana.url, "kiali": kiali.url}
    if settings.cluster.hubble_enabled:
        urls["hubble"] = HubbleUi("hubble-ui", access=cluster, ingress=ingress, settings=settings).url
    return Lab(
        hosts=hosts.output, cluster=cluster, mesh=mesh, ingress=ingress, storage=storage, grafana=grafana, urls=urls
    )
