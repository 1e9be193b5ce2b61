"""`meshlab:network:MetalLb`: LoadBalancer addresses from the host-only network, announced by ARP.

The address pool and L2 advertisement go in only once MetalLB's validating webhook answers (its
Service has a ready endpoint and its configuration a CA bundle): until then it rejects them.
"""

from __future__ import annotations

from typing import Any

import pulumi

from components.cluster.access import ClusterAccess
from components.helm import release
from components.kube import kube_object
from components.security.namespaces import METALLB_SYSTEM
from config.settings import Settings

POOL_NAME = "lab-pool"


def pool(settings: Settings) -> dict[str, Any]:
    return {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "IPAddressPool",
        "metadata": {"name": POOL_NAME, "namespace": METALLB_SYSTEM},
        "spec": {"addresses": [str(settings.network.metallb_pool)]},
    }


def l2_advertisement(interface: str) -> dict[str, Any]:
    """`interface` empty: every NIC (an existing cluster's nodes are the user's own)."""
    spec: dict[str, Any] = {"ipAddressPools": [POOL_NAME]}
    if interface:
        # Answer ARP on the host-only NIC only: the NAT NIC is the same 10.0.2.0/24 on every VM.
        spec["interfaces"] = [interface]
    return {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "L2Advertisement",
        "metadata": {"name": POOL_NAME, "namespace": METALLB_SYSTEM},
        "spec": spec,
    }


class MetalLb(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        *,
        access: ClusterAccess,
        namespace: pulumi.Resource,
        settings: Settings,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("meshlab:network:MetalLb", name, {"pool": str(settings.network.metallb_pool)}, opts)
        self.release = release(
            f"{name}-release",
            sources=access.sources,
            name="metallb",
            chart="metallb",
            namespace=METALLB_SYSTEM,
            # Layer 2 only: the FRR (BGP) sidecar would add NET_ADMIN and SYS_ADMIN for nothing.
            values={"speaker": {"frr": {"enabled": False}}},
            opts=access.options(self, [namespace]),
        )
        self.webhook = access.webhook_ready(
            f"{name}-webhook-ready",
            namespace=METALLB_SYSTEM,
            service="metallb-webhook-service",
            webhook_configuration="validatingwebhookconfiguration/metallb-webhook-configuration",
            parent=self,
            depends_on=[self.release],
        )
        self.pool = kube_object(f"{name}-pool", pool(settings), access.options(self, [self.webhook]))
        self.l2 = kube_object(
            f"{name}-l2", l2_advertisement(access.node_interface), access.options(self, [self.webhook])
        )
        self.register_outputs({"pool": str(settings.network.metallb_pool)})
