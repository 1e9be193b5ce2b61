"""`meshlab:network:GatewayApiCrds`: the Gateway API standard-channel CRDs, before istiod.

istiod creates its GatewayClasses (`istio`, `istio-waypoint`) only when the CRDs exist at its
start, so the mesh layer depends on this component.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from components.cluster.rke2_cluster import ClusterAccess
from config import versions


class GatewayApiCrds(pulumi.ComponentResource):
    def __init__(self, name: str, *, access: ClusterAccess, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(
            "meshlab:network:GatewayApiCrds",
            name,
            {"version": versions.GATEWAY_API, "manifest": versions.GATEWAY_API_CRDS_URL},
            opts,
        )
        self.crds = k8s.yaml.v2.ConfigFile(
            f"{name}-standard", file=versions.GATEWAY_API_CRDS_URL, opts=access.options(self)
        )
        self.register_outputs({"version": versions.GATEWAY_API})
