"""`meshlab:observability:Kiali`: the mesh's topology and health, from Prometheus and Grafana.

Kiali lives with istiod in istio-system. Its login-token signing key is left to the chart, which
draws a new one when the release changes: logged-in users then log in again.
"""

from __future__ import annotations

from typing import Any

import pulumi

from components.cluster.rke2_cluster import ClusterAccess
from components.helm import release
from components.kube import kube_object
from components.network.ingress import IngressGateway, http_route, ui_hostname
from components.security.namespaces import ISTIO_SYSTEM
from config.settings import Settings

RELEASE_NAME = "kiali"
PORT = 20001


def kiali_values(settings: Settings, prometheus_url: str, grafana_url: str) -> dict[str, Any]:
    return {
        "auth": {"strategy": settings.platform.kiali_auth_strategy},
        "deployment": {
            "cluster_wide_access": True,
            # The chart's own context has no seccomp profile; this one is complete for restricted.
            "security_context": {
                "allowPrivilegeEscalation": False,
                "privileged": False,
                "readOnlyRootFilesystem": True,
                "runAsNonRoot": True,
                "capabilities": {"drop": ["ALL"]},
                "seccompProfile": {"type": "RuntimeDefault"},
            },
        },
        "external_services": {
            "prometheus": {"url": prometheus_url},
            "grafana": {
                "enabled": True,
                "internal_url": grafana_url,
                "external_url": f"http://{ui_hostname(settings, 'grafana')}/",
            },
            # The lab runs no tracing backend.
            "tracing": {"enabled": False},
            "istio": {"root_namespace": ISTIO_SYSTEM},
        },
        # Served at the root of its own hostname.
        "server": {"web_root": "/"},
    }


class Kiali(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        *,
        access: ClusterAccess,
        ingress: IngressGateway,
        prometheus_url: str,
        grafana_url: str,
        settings: Settings,
        depends_on: list[pulumi.Resource],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        hostname = ui_hostname(settings, "kiali")
        super().__init__(
            "meshlab:observability:Kiali",
            name,
            {"hostname": hostname, "authStrategy": settings.platform.kiali_auth_strategy},
            opts,
        )
        self.release = release(
            f"{name}-release",
            name=RELEASE_NAME,
            chart="kiali",
            namespace=ISTIO_SYSTEM,
            values=kiali_values(settings, prometheus_url, grafana_url),
            opts=access.options(self, depends_on),
        )
        self.route = kube_object(
            f"{name}-route",
            http_route(RELEASE_NAME, ISTIO_SYSTEM, hostname, RELEASE_NAME, PORT),
            access.options(self, [self.release, ingress.gateway]),
        )
        self.url = f"http://{hostname}/"
        self.register_outputs({"url": self.url})
