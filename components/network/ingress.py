"""`meshlab:network:IngressGateway`: the lab's one ingress, a Gateway API `Gateway` of class istio.

istiod deploys it (Deployment and LoadBalancer Service `ingress-istio`); MetalLB gives the
Service the fixed address from settings, so the workstation's hosts file stays valid across
rebuilds. Routes may attach only from the namespaces the lab puts routes in (the UIs and the
test app live in several), so a route anywhere else cannot claim their hostnames.
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Address
from typing import Any

import pulumi

from components.cluster.access import ClusterAccess
from components.kube import kube_object
from components.mesh.istio import IstioAmbient
from components.network.metallb import MetalLb
from components.security.namespaces import ISTIO_SYSTEM
from config.settings import Settings

GATEWAY_NAME = "ingress"
HTTP_LISTENER = "http"
# Set by the API server on every namespace to its name, so no one can put it on another namespace.
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


def ingress_address(settings: Settings) -> IPv4Address:
    return settings.platform.ingress_address or settings.network.metallb_pool.first


def gateway(address: IPv4Address, route_namespaces: Sequence[str]) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": GATEWAY_NAME, "namespace": ISTIO_SYSTEM},
        "spec": {
            "gatewayClassName": "istio",
            # Copied by istiod onto the generated Service; MetalLB reads it.
            "infrastructure": {"annotations": {"metallb.io/loadBalancerIPs": str(address)}},
            "listeners": [
                {
                    "name": HTTP_LISTENER,
                    "port": 80,
                    "protocol": "HTTP",
                    "allowedRoutes": {
                        "namespaces": {
                            "from": "Selector",
                            "selector": {
                                "matchExpressions": [
                                    {"key": NAMESPACE_NAME_LABEL, "operator": "In", "values": sorted(route_namespaces)}
                                ]
                            },
                        }
                    },
                }
            ],
        },
    }


def parent_ref() -> dict[str, str]:
    """How an HTTPRoute attaches to the lab's ingress."""
    return {"name": GATEWAY_NAME, "namespace": ISTIO_SYSTEM, "sectionName": HTTP_LISTENER}


def http_route(name: str, namespace: str, hostname: str, service: str, port: int) -> dict[str, Any]:
    """An HTTPRoute, in the backend's own namespace, that sends `hostname` on the ingress to `service`."""
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "parentRefs": [parent_ref()],
            "hostnames": [hostname],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                    "backendRefs": [{"name": service, "port": port}],
                }
            ],
        },
    }


def ui_hostname(settings: Settings, ui: str) -> str:
    return f"{ui}.{settings.platform.ingress_domain}"


class IngressGateway(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        *,
        access: ClusterAccess,
        mesh: IstioAmbient,
        metallb: MetalLb,
        route_namespaces: Sequence[str],
        settings: Settings,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        address = ingress_address(settings)
        super().__init__(
            "meshlab:network:IngressGateway",
            name,
            {"address": str(address), "routeNamespaces": sorted(route_namespaces)},
            opts,
        )
        # After the component's own init, which sets an Output attribute per property.
        self.address = address
        self.gateway = kube_object(
            f"{name}-gateway",
            gateway(self.address, route_namespaces),
            access.options(self, [mesh.istiod, metallb.pool, metallb.l2]),
        )
        self.register_outputs({"address": str(self.address)})
