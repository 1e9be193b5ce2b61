"""`meshlab:observability:HubbleUi`: the workstation's way to Hubble UI, which Cilium runs in kube-system.

RKE2's CIS profile gives kube-system a NetworkPolicy that admits only pods of kube-system, so
the ingress gateway's pods get their own allowance to the UI.
"""

from __future__ import annotations

from typing import Any

import pulumi

from components.cluster.access import ClusterAccess
from components.kube import kube_object
from components.network.ingress import GATEWAY_NAME, IngressGateway, http_route, ui_hostname
from components.security.namespaces import ISTIO_SYSTEM
from config.settings import Settings

NAMESPACE = "kube-system"
SERVICE = "hubble-ui"
SERVICE_PORT = 80
# The UI container's port behind the Service.
CONTAINER_PORT = 8081


def ingress_network_policy() -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "allow-ingress-gateway-to-hubble-ui", "namespace": NAMESPACE},
        "spec": {
            "podSelector": {"matchLabels": {"k8s-app": SERVICE}},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [
                        {
                            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ISTIO_SYSTEM}},
                            "podSelector": {"matchLabels": {"gateway.networking.k8s.io/gateway-name": GATEWAY_NAME}},
                        }
                    ],
                    "ports": [{"protocol": "TCP", "port": CONTAINER_PORT}],
                }
            ],
        },
    }


class HubbleUi(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        *,
        access: ClusterAccess,
        ingress: IngressGateway,
        settings: Settings,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        hostname = ui_hostname(settings, "hubble")
        super().__init__("meshlab:observability:HubbleUi", name, {"hostname": hostname}, opts)
        self.network_policy = kube_object(f"{name}-network-policy", ingress_network_policy(), access.options(self))
        self.route = kube_object(
            f"{name}-route",
            http_route(SERVICE, NAMESPACE, hostname, SERVICE, SERVICE_PORT),
            access.options(self, [ingress.gateway]),
        )
        self.url = f"http://{hostname}/"
        self.register_outputs({"url": self.url})
