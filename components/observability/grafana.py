"""`meshlab:observability:Grafana`: dashboards for Istio and Cilium over the lab's Prometheus.

The admin password is a generated secret, handed over in a Secret of its own. Dashboards come
from grafana.com at pinned revisions (the pod downloads them at start). The chart's defaults
already satisfy Pod Security restricted; persistence stays off, so its root-running chown init
container never renders.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_random as random

from components.cluster.access import ClusterAccess
from components.helm import release
from components.kube import kube_object, secret
from components.network.ingress import IngressGateway, http_route, ui_hostname
from components.security.namespaces import MONITORING
from config import versions
from config.settings import Settings

RELEASE_NAME = "grafana"
SERVICE_URL = f"http://{RELEASE_NAME}.{MONITORING}.svc"
ADMIN_USER = "admin"
ADMIN_SECRET = "grafana-admin"
DASHBOARD_ROOT = "/var/lib/grafana/dashboards"


def grafana_values(settings: Settings, prometheus_url: str) -> dict[str, Any]:
    hostname = ui_hostname(settings, "grafana")
    return {
        # The credentials come from a Secret, so the values (and their diffs) stay readable.
        "admin": {"existingSecret": ADMIN_SECRET, "userKey": "admin-user", "passwordKey": "admin-password"},
        "persistence": {"enabled": False},
        "initChownData": {"enabled": False},
        "testFramework": {"enabled": False},
        "grafana.ini": {"server": {"domain": hostname, "root_url": f"http://{hostname}/"}},
        "datasources": {
            "datasources.yaml": {
                "apiVersion": 1,
                "datasources": [
                    {
                        "name": "Prometheus",
                        "uid": "prometheus",
                        "type": "prometheus",
                        "access": "proxy",
                        "url": prometheus_url,
                        "isDefault": True,
                    }
                ],
            }
        },
        "dashboardProviders": {
            "dashboardproviders.yaml": {
                "apiVersion": 1,
                "providers": [
                    {
                        "name": folder,
                        "folder": folder.capitalize(),
                        "type": "file",
                        "disableDeletion": True,
                        "editable": False,
                        "options": {"path": f"{DASHBOARD_ROOT}/{folder}"},
                    }
                    for folder in versions.GRAFANA_DASHBOARDS
                ],
            }
        },
        "dashboards": {
            folder: {
                name: {
                    "gnetId": dashboard.gnet_id,
                    "revision": dashboard.revision,
                    # Bind the dashboard's ${DS_PROMETHEUS} input to the provisioned datasource.
                    "datasource": [{"name": "DS_PROMETHEUS", "value": "prometheus"}],
                }
                for name, dashboard in dashboards.items()
            }
            for folder, dashboards in versions.GRAFANA_DASHBOARDS.items()
        },
    }


class Grafana(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        *,
        access: ClusterAccess,
        namespace: pulumi.Resource,
        ingress: IngressGateway,
        prometheus_url: str,
        settings: Settings,
        depends_on: list[pulumi.Resource],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        hostname = ui_hostname(settings, "grafana")
        super().__init__("meshlab:observability:Grafana", name, {"hostname": hostname}, opts)
        password = random.RandomPassword(
            f"{name}-admin-password", length=32, special=False, opts=pulumi.ResourceOptions(parent=self)
        )
        self.admin_password: pulumi.Output[str] = pulumi.Output.secret(password.result)
        credentials = secret(
            f"{name}-admin",
            metadata={"name": ADMIN_SECRET, "namespace": MONITORING},
            type="Opaque",
            string_data=pulumi.Output.secret({"admin-user": ADMIN_USER, "admin-password": password.result}),
            opts=access.options(self, [namespace]),
        )
        self.release = release(
            f"{name}-release",
            sources=access.sources,
            name=RELEASE_NAME,
            chart="grafana",
            namespace=MONITORING,
            values=grafana_values(settings, prometheus_url),
            opts=access.options(self, [namespace, credentials, *depends_on]),
        )
        self.route = kube_object(
            f"{name}-route",
            http_route(RELEASE_NAME, MONITORING, hostname, RELEASE_NAME, 80),
            access.options(self, [self.release, ingress.gateway]),
        )
        self.url = f"http://{hostname}/"
        self.service_url = SERVICE_URL
        self.register_outputs({"url": self.url})
