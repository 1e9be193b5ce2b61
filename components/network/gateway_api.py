"""`meshlab:network:GatewayApiCrds`: the Gateway API standard-channel CRDs, before istiod.

istiod creates its GatewayClasses (`istio`, `istio-waypoint`) only when the CRDs exist at its
start, so the mesh layer depends on this component.
"""

from __future__ import annotations

import pulumi

from components.cluster.access import ClusterAccess
from components.kube import config_file
from config import versions


class GatewayApiCrds(pulumi.ComponentResource):
    def __init__(self, name: str, *, access: ClusterAccess, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(
            "meshlab:network:GatewayApiCrds",
            name,
            {"version": versions.GATEWAY_API, "manifest": access.sources.gateway_api_crds},
            opts,
        )
        self.crds = config_file(f"{name}-standard", file=access.sources.gateway_api_crds, opts=access.options(self))
        self.register_outputs({"version": versions.GATEWAY_API})
