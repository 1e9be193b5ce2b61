"""`meshlab:observability:Prometheus`: metrics from istiod, ztunnel, waypoints, Cilium and Hubble.

The scrape jobs are meshlab's own, listed explicitly (the chart's annotation-driven defaults
would scrape the same pods twice under other job names). The server runs restricted: the chart
leaves seccomp and the container security context to the user.
"""

from __future__ import annotations

from typing import Any

import pulumi

from components.cluster.access import ClusterAccess
from components.helm import release
from components.security.namespaces import ISTIO_SYSTEM, MONITORING
from config.settings import Settings

RELEASE_NAME = "prometheus"
# The chart names the server's Service <release>-server, port 80.
SERVER_URL = f"http://{RELEASE_NAME}-server.{MONITORING}.svc"
RESTRICTED_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "readOnlyRootFilesystem": True,
}


def _pods(
    job: str, *, namespace: str | None, keep: dict[str, str], port: int, path: str = "/metrics"
) -> dict[str, Any]:
    """A job scraping `port` on pods whose labels match `keep` (label -> regex)."""
    discovery: dict[str, Any] = {"role": "pod"}
    if namespace:
        discovery["namespaces"] = {"names": [namespace]}
    relabel: list[dict[str, Any]] = [
        {"source_labels": [f"__meta_kubernetes_pod_label_{label}"], "regex": regex, "action": "keep"}
        for label, regex in keep.items()
    ]
    relabel += [
        {"source_labels": ["__meta_kubernetes_pod_phase"], "regex": "Running", "action": "keep"},
        {"source_labels": ["__meta_kubernetes_pod_ip"], "target_label": "__address__", "replacement": f"$1:{port}"},
        {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
        {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
    ]
    return {"job_name": job, "metrics_path": path, "kubernetes_sd_configs": [discovery], "relabel_configs": relabel}


def scrape_configs(settings: Settings) -> list[dict[str, Any]]:
    jobs = [
        {"job_name": "prometheus", "static_configs": [{"targets": ["localhost:9090"]}]},
        {
            "job_name": "kube-state-metrics",
            "kubernetes_sd_configs": [{"role": "service", "namespaces": {"names": [MONITORING]}}],
            "relabel_configs": [
                {
                    "source_labels": ["__meta_kubernetes_service_label_app_kubernetes_io_name"],
                    "regex": "kube-state-metrics",
                    "action": "keep",
                }
            ],
        },
        {
            # istiod's monitoring port (15014) on its Service.
            "job_name": "istiod",
            "kubernetes_sd_configs": [{"role": "endpoints", "namespaces": {"names": [ISTIO_SYSTEM]}}],
            "relabel_configs": [
                {
                    "source_labels": ["__meta_kubernetes_service_name", "__meta_kubernetes_endpoint_port_name"],
                    "regex": "istiod;http-monitoring",
                    "action": "keep",
                }
            ],
        },
        _pods("ztunnel", namespace=ISTIO_SYSTEM, keep={"app": "ztunnel"}, port=15020, path="/stats/prometheus"),
        # Waypoints and gateways istiod deploys: the L7 metrics Kiali draws its graph from.
        _pods(
            "istio-waypoints-and-gateways",
            namespace=None,
            keep={"gateway_istio_io_managed": "istio\\.io-.*-controller"},
            port=15020,
            path="/stats/prometheus",
        ),
        _pods("cilium-agent", namespace="kube-system", keep={"k8s_app": "cilium"}, port=9962),
        _pods("cilium-operator", namespace="kube-system", keep={"io_cilium_app": "operator"}, port=9963),
    ]
    # The agent serves Hubble's metrics only with Hubble on; otherwise the job's targets are always down.
    if settings.cluster.hubble_enabled:
        jobs.append(_pods("hubble", namespace="kube-system", keep={"k8s_app": "cilium"}, port=9965))
    if settings.apps.benchmark == "on":
        jobs.append(cadvisor_job())
    return jobs


def cadvisor_job() -> dict[str, Any]:
    """Per-container CPU and memory (cAdvisor), which tools.bench_mesh reads for the sidecars, the
    waypoint and ztunnel: each kubelet through the API server's node proxy, so no kubelet port needs
    opening; the chart's ClusterRole grants nodes/proxy."""
    return {
        "job_name": "kubelet-cadvisor",
        "scheme": "https",
        "tls_config": {"ca_file": "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"},
        "bearer_token_file": "/var/run/secrets/kubernetes.io/serviceaccount/token",
        "kubernetes_sd_configs": [{"role": "node"}],
        "relabel_configs": [
            {"target_label": "__address__", "replacement": "kubernetes.default.svc:443"},
            {
                "source_labels": ["__meta_kubernetes_node_name"],
                "target_label": "__metrics_path__",
                "replacement": "/api/v1/nodes/$1/proxy/metrics/cadvisor",
            },
            {"source_labels": ["__meta_kubernetes_node_name"], "target_label": "node"},
        ],
    }


def prometheus_values(settings: Settings) -> dict[str, Any]:
    platform = settings.platform
    return {
        "alertmanager": {"enabled": False},
        "prometheus-pushgateway": {"enabled": False},
        "prometheus-node-exporter": {"enabled": platform.node_exporter_enabled},
        "kube-state-metrics": {"enabled": True},
        "configmapReload": {"prometheus": {"containerSecurityContext": RESTRICTED_CONTAINER}},
        "server": {
            # Merged with the chart's uid/gid 65534 and runAsNonRoot.
            "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
            "containerSecurityContext": RESTRICTED_CONTAINER,
            # The TSDB does not belong on NFS; metrics live as long as the pod (see docs/observability.md).
            "persistentVolume": {"enabled": False},
            # The chart's 300 s lets Prometheus flush its TSDB to a volume that here dies with the pod; the
            # namespace controller re-checks a deleted namespace only after its pods' grace, so 300 s made
            # every rollback below phase 4 wait minutes (found by the real-apply tier).
            "terminationGracePeriodSeconds": PROMETHEUS_GRACE_SECONDS,
            "retention": platform.prometheus_retention,
            "global": {"scrape_interval": "15s"},
        },
        "serverFiles": {"prometheus.yml": {"scrape_configs": scrape_configs(settings)}},
    }


PROMETHEUS_GRACE_SECONDS = 30


class Prometheus(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        *,
        access: ClusterAccess,
        namespace: pulumi.Resource,
        settings: Settings,
        depends_on: list[pulumi.Resource],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("meshlab:observability:Prometheus", name, {"url": SERVER_URL}, opts)
        self.release = release(
            f"{name}-release",
            sources=access.sources,
            name=RELEASE_NAME,
            chart="prometheus",
            namespace=MONITORING,
            values=prometheus_values(settings),
            opts=access.options(self, [namespace, *depends_on]),
        )
        self.url = SERVER_URL
        self.register_outputs({"url": SERVER_URL})
