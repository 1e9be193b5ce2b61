"""The whole lab graph, layer by layer. Each layer takes the typed output of the one below.

The cluster comes from meshlab's hosts and RKE2 layers, or is an existing one (meshlab:kubeconfig): chosen
once, in components/cluster/backends.py; everything above takes the same `ClusterAccess`.

The rollout phase (`meshlab:rolloutPhase`) decides how far up the stack goes:
1 hosts and cluster (Cilium, Hubble); 2 + Gateway API, Istio ambient and the test app on
PERMISSIVE mTLS; 3 + the waypoint, L7 policy, STRICT mTLS, MetalLB and the ingress;
4 + NFS storage, Kyverno and observability.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi

from components.apps.benchmark import CASES as BENCHMARK_CASES
from components.apps.benchmark import MeshBenchmark
from components.apps.demos import DEMO_NAMESPACE, AmbientDemo, L7RoutingDemo, PrincipalDemo, extra_rules
from components.apps.web_test import NAMESPACE as APP_NAMESPACE
from components.apps.web_test import WebTest
from components.cluster.access import ClusterAccess
from components.cluster.backends import cluster_layer
from components.hosts.output import HostsOutput
from components.mesh.istio import IstioAmbient
from components.network.gateway_api import GatewayApiCrds
from components.network.ingress import IngressGateway
from components.network.metallb import MetalLb
from components.observability.grafana import Grafana
from components.observability.hubble import NAMESPACE as HUBBLE_NAMESPACE
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
    namespace_specs,
)
from components.storage.nfs_provisioner import NfsProvisioner
from config.settings import Settings


@dataclass
class Lab:
    hosts: HostsOutput | None  # None on an existing cluster
    cluster: ClusterAccess
    mesh: IstioAmbient | None = None
    ingress: IngressGateway | None = None
    storage: NfsProvisioner | None = None
    grafana: Grafana | None = None
    # UI or app name -> URL on the ingress
    urls: dict[str, str] = field(default_factory=dict)

    def export(self, settings: Settings) -> None:
        if self.hosts:
            hosts = self.hosts
            pulumi.export("nodes", {vm.node.name: {"ip": vm.ip, "role": vm.role, "vm": vm.vm_name} for vm in hosts.vms})
            pulumi.export("apiVip", str(settings.network.vip))
            pulumi.export("hostOnlyInterface", hosts.host_only_interface)
            pulumi.export("sshUser", hosts.ssh.user)
            # "IP KEY" a line, each node's pinned host key: a known_hosts file for your own ssh.
            pulumi.export(
                "sshKnownHosts",
                pulumi.Output.all(*[vm.host_key for vm in hosts.vms]).apply(
                    lambda keys: "".join(f"{vm.ip} {key}\n" for vm, key in zip(hosts.vms, keys, strict=True))
                ),
            )
            if hosts.ssh.private_key is not None:
                pulumi.export("sshPrivateKey", hosts.ssh.private_key)
        pulumi.export("rolloutPhase", settings.apps.rollout_phase)
        pulumi.export("clusterName", self.cluster.name)
        pulumi.export("apiEndpoint", self.cluster.api_endpoint)
        pulumi.export("kubeconfig", self.cluster.kubeconfig)
        if self.cluster.nfs:
            pulumi.export("nfsExport", {"server": self.cluster.nfs.server, "path": self.cluster.nfs.path})
        if self.mesh:
            pulumi.export("meshMtlsMode", settings.mesh.mesh_mtls_mode)
        if self.storage:
            pulumi.export("storageClass", self.storage.storage_class)
        if self.ingress:
            pulumi.export("ingressAddress", str(self.ingress.address))
            pulumi.export("urls", self.urls)
            hostnames = " ".join(url.removeprefix("http://").rstrip("/") for url in self.urls.values())
            # One line for /etc/hosts: the workstation resolves every UI to the ingress address.
            pulumi.export("hostsFileEntry", f"{self.ingress.address} {hostnames}")
        if self.grafana:
            pulumi.export("grafanaAdminPassword", self.grafana.admin_password)


def build_lab(settings: Settings, stack: str) -> Lab:
    phase = settings.apps.rollout_phase
    hosts, cluster = cluster_layer(settings, stack, namespaces=lab_namespaces(settings), istio_namespace=ISTIO_SYSTEM)
    lab = Lab(hosts=hosts, cluster=cluster)
    if phase < 2:
        return lab

    namespaces = Namespaces("namespaces", access=cluster, settings=settings)
    gateway_api = GatewayApiCrds("gateway-api", access=cluster)
    lab.mesh = mesh = IstioAmbient(
        "istio", access=cluster, namespace=namespaces[ISTIO_SYSTEM], gateway_api=gateway_api, settings=settings
    )
    if phase >= 3:
        metallb = MetalLb("metallb", access=cluster, namespace=namespaces[METALLB_SYSTEM], settings=settings)
        lab.ingress = IngressGateway(
            "ingress",
            access=cluster,
            mesh=mesh,
            metallb=metallb,
            route_namespaces=route_namespaces(settings),
            settings=settings,
        )
    waypoint_hardening: list[pulumi.Resource] = []
    if phase >= 4:
        if cluster.nfs:
            lab.storage = NfsProvisioner(
                "nfs-provisioner",
                access=cluster,
                nfs=cluster.nfs,
                namespace=namespaces[NFS_PROVISIONER],
                settings=settings,
            )
        kyverno = Kyverno("kyverno", access=cluster, namespace=namespaces[KYVERNO], settings=settings)
        waypoint_hardening.append(kyverno.waypoint_policy)
        _observability(lab, settings, namespaces, mesh)

    app = WebTest(
        "web-test",
        access=cluster,
        settings=settings,
        mesh_ready=[mesh.ztunnel],
        ingress=lab.ingress,
        waypoint_hardening=waypoint_hardening,
        extra_rules=extra_rules(settings),
    )
    if lab.ingress:
        lab.urls["testApp"] = app.url
    _demos(settings, cluster, mesh, app)
    if settings.apps.benchmark == "on":
        MeshBenchmark(
            "benchmark",
            access=cluster,
            settings=settings,
            mesh_ready=[mesh.ztunnel],
            waypoint_hardening=waypoint_hardening,
        )
    return lab


def lab_namespaces(settings: Settings) -> list[str]:
    """Every namespace the stack's phase creates (an existing cluster's preflight checks none is foreign)."""
    if settings.apps.rollout_phase < 2:
        return []
    names = [*(spec.name for spec in namespace_specs(settings)), APP_NAMESPACE]
    if settings.apps.demo_ambient != "off":
        names.append(DEMO_NAMESPACE)
    if settings.apps.benchmark == "on":
        names += [case.namespace for case in BENCHMARK_CASES]
    return names


def route_namespaces(settings: Settings) -> list[str]:
    """Where this phase puts routes on the ingress: the test app's, then Grafana's, Kiali's and Hubble UI's."""
    namespaces = [APP_NAMESPACE]
    if settings.apps.rollout_phase >= 4:
        namespaces += [MONITORING, ISTIO_SYSTEM]
        if settings.cluster.hubble_enabled:
            namespaces.append(HUBBLE_NAMESPACE)
    return namespaces


def _observability(lab: Lab, settings: Settings, namespaces: Namespaces, mesh: IstioAmbient) -> None:
    if lab.ingress is None:  # pragma: no cover - phase 4 always has the ingress
        raise RuntimeError("observability needs the ingress (rollout phase 3 or later)")
    access, monitoring = lab.cluster, namespaces[MONITORING]
    prometheus = Prometheus(
        "prometheus", access=access, namespace=monitoring, settings=settings, depends_on=[mesh.istiod]
    )
    lab.grafana = Grafana(
        "grafana",
        access=access,
        namespace=monitoring,
        ingress=lab.ingress,
        prometheus_url=prometheus.url,
        settings=settings,
        depends_on=[prometheus.release],
    )
    kiali = Kiali(
        "kiali",
        access=access,
        ingress=lab.ingress,
        prometheus_url=prometheus.url,
        grafana_url=lab.grafana.service_url,
        grafana_password=lab.grafana.admin_password,
        settings=settings,
        depends_on=[mesh.istiod, prometheus.release],
    )
    lab.urls |= {"grafana": lab.grafana.url, "kiali": kiali.url}
    if settings.cluster.hubble_enabled:
        lab.urls["hubble"] = HubbleUi("hubble-ui", access=access, ingress=lab.ingress, settings=settings).url


def _demos(settings: Settings, access: ClusterAccess, mesh: IstioAmbient, app: WebTest) -> None:
    apps = settings.apps
    if apps.demo_ambient != "off":
        AmbientDemo("demo-ambient", access=access, settings=settings, depends_on=[mesh.ztunnel])
    if apps.demo_l7_routing:
        L7RoutingDemo("demo-l7-routing", access=access, settings=settings, depends_on=[app.namespace])
    if apps.demo_principal_policy:
        PrincipalDemo("demo-principal", access=access, depends_on=[app.namespace])
