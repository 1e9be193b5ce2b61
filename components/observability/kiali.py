"""`meshlab:observability:Kiali`: the mesh's topology and health, from Prometheus and Grafana.

Kiali lives with istiod in istio-system. Its login-token signing key is left to the chart, which
draws a new one when the release changes: logged-in users then log in again.

An anonymous Kiali (the lab's) is view-only: anyone who reaches the ingress may open it, and with
view-only mode the chart binds Kiali to its read-only ClusterRole (`kiali-viewer`) instead of the
one that creates, patches and deletes Istio configuration. The policy pack refuses anything else.
Kiali logs in to Grafana as its admin to link dashboards; the password reaches it as a file from
a Secret, never through the release's values.
"""

from __future__ import annotations

from typing import Any

import pulumi

from components.cluster.access import ClusterAccess
from components.helm import release
from components.kube import kube_object, secret
from components.network.ingress import IngressGateway, http_route, ui_hostname
from components.observability.grafana import ADMIN_USER
from components.security.namespaces import ISTIO_SYSTEM
from config.settings import Settings

RELEASE_NAME = "kiali"
PORT = 20001
GRAFANA_SECRET = "kiali-grafana-password"
# Kiali reads value.txt here over the configured Grafana password (kiali/kiali config/config.go,
# SecretFileGrafanaPassword); the chart mounts custom_secrets wherever they say.
GRAFANA_PASSWORD_DIR = "/kiali-override-secrets/grafana-password"


def kiali_values(settings: Settings, prometheus_url: str, grafana_url: str) -> dict[str, Any]:
    strategy = settings.platform.kiali_auth_strategy
    return {
        "auth": {"strategy": strategy},
        "deployment": {
            "cluster_wide_access": True,
            # A token login acts with each user's own RBAC; nobody logs in to an anonymous one.
            "view_only_mode": strategy == "anonymous",
            "custom_secrets": [{"name": GRAFANA_SECRET, "mount": GRAFANA_PASSWORD_DIR}],
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
                # The password comes from the mounted Secret; no "secret:" reference here, which
                # newer charts would mount a second time at the same path.
                "auth": {"type": "basic", "username": ADMIN_USER},
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
        grafana_password: pulumi.Output[str],
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
        grafana_credentials = secret(
            f"{name}-grafana-password",
            metadata={"name": GRAFANA_SECRET, "namespace": ISTIO_SYSTEM},
            type="Opaque",
            string_data=pulumi.Output.secret({"value.txt": grafana_password}),
            opts=access.options(self, depends_on),
        )
        self.release = release(
            f"{name}-release",
            sources=access.sources,
            name=RELEASE_NAME,
            chart="kiali",
            namespace=ISTIO_SYSTEM,
            values=kiali_values(settings, prometheus_url, grafana_url),
            opts=access.options(self, [*depends_on, grafana_credentials]),
        )
        self.route = kube_object(
            f"{name}-route",
            http_route(RELEASE_NAME, ISTIO_SYSTEM, hostname, RELEASE_NAME, PORT),
            access.options(self, [self.release, ingress.gateway]),
        )
        self.url = f"http://{hostname}/"
        self.register_outputs({"url": self.url})
