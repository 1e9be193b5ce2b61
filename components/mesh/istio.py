"""`meshlab:mesh:IstioAmbient`: Istio in ambient mode, in the order its Helm guide gives.

base -> istiod -> istio-cni -> ztunnel, each with `profile: ambient`. istiod waits for the
Gateway API CRDs and, when plugged in, the `cacerts` secret; istio-cni waits until Cilium is
healthy (it chains itself into Cilium's CNI config). A mesh-wide PeerAuthentication in the root
namespace sets the mTLS mode.
"""

from __future__ import annotations

from typing import Any

import pulumi

from components.cluster.access import ClusterAccess
from components.helm import release
from components.kube import kube_object
from components.mesh.ca import MeshCa
from components.network.gateway_api import GatewayApiCrds
from components.security.namespaces import ISTIO_SYSTEM
from config import versions
from config.settings import Settings

ROOT_NAMESPACE = ISTIO_SYSTEM
AMBIENT = "ambient"


def _ambient(version: str) -> dict[str, Any]:
    # `profile` picks the chart's built-in ambient profile; images come from the pinned hub and tag.
    return {"profile": AMBIENT, "global": {"hub": versions.ISTIO_HUB, "tag": version}}


def base_values() -> dict[str, Any]:
    return {"profile": AMBIENT}


def istiod_values(version: str, sidecars: bool = False) -> dict[str, Any]:
    # Waypoints and gateways get a RuntimeDefault seccomp profile, so they run in restricted namespaces.
    values = {**_ambient(version), "gateways": {"seccompProfile": {"type": "RuntimeDefault"}}}
    if sidecars:
        # Injected sidecars (the mesh benchmark's sidecar case) leave their redirection to the istio-cni
        # already on every node: the injector then adds `istio-validation` (uid 1337, no capabilities)
        # instead of `istio-init` (root, NET_ADMIN and NET_RAW, which even baseline refuses).
        # The ambient profile does not set this (istio@1.27.0 injection-template.yaml, ambient.yaml).
        values["pilot"] = {"cni": {"enabled": True}}
    return values


def cni_values(version: str) -> dict[str, Any]:
    # RKE2 keeps CNI files in the standard /etc/cni/net.d and /opt/cni/bin, the chart's defaults;
    # `global.platform` stays unset (the k3s platform would point elsewhere).
    return _ambient(version)


def ztunnel_values(version: str) -> dict[str, Any]:
    # ztunnel reads its image from top-level hub and tag.
    return {"profile": AMBIENT, "hub": versions.ISTIO_HUB, "tag": version}


def peer_authentication(mode: str) -> dict[str, Any]:
    return {
        "apiVersion": "security.istio.io/v1",
        "kind": "PeerAuthentication",
        "metadata": {"name": "default", "namespace": ROOT_NAMESPACE},
        "spec": {"mtls": {"mode": mode}},
    }


class IstioAmbient(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        *,
        access: ClusterAccess,
        namespace: pulumi.Resource,
        gateway_api: GatewayApiCrds,
        settings: Settings,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        mesh = settings.mesh
        istio_version = mesh.istio_version
        super().__init__(
            "meshlab:mesh:IstioAmbient",
            name,
            {
                "version": istio_version,
                "mtlsMode": mesh.mesh_mtls_mode,
                "pluggedCa": mesh.mesh_plugged_ca,
                "rootNamespace": ROOT_NAMESPACE,
            },
            opts,
        )
        self.ca = (
            MeshCa(
                f"{name}-ca",
                access=access,
                namespace=namespace,
                mesh=mesh,
                cluster_name=access.name,
                opts=pulumi.ResourceOptions(parent=self),
            )
            if mesh.mesh_plugged_ca
            else None
        )

        def install(part: str, chart: str, values: dict[str, Any], after: list[pulumi.Resource]) -> pulumi.Resource:
            # Release names as in Istio's Helm guide; every chart at the one Istio version.
            release_name = "istio-" + part if part in ("base", "cni") else part
            return release(
                f"{name}-{part}",
                sources=access.sources,
                name=release_name,
                chart=chart,
                namespace=ROOT_NAMESPACE,
                values=values,
                version=istio_version,
                opts=access.options(self, after),
            )

        self.base = install("base", "istio-base", base_values(), [namespace])
        self.istiod = install(
            "istiod",
            "istiod",
            istiod_values(istio_version, settings.apps.benchmark == "on"),
            [self.base, gateway_api, *([self.ca] if self.ca else [])],
        )
        self.cni = install("cni", "istio-cni", cni_values(istio_version), [self.istiod, access.ready])
        self.ztunnel = install("ztunnel", "ztunnel", ztunnel_values(istio_version), [self.cni])
        self.peer_authentication = kube_object(
            f"{name}-mesh-mtls", peer_authentication(mesh.mesh_mtls_mode), access.options(self, [self.base])
        )
        self.root_namespace = ROOT_NAMESPACE
        self.register_outputs({"mtlsMode": mesh.mesh_mtls_mode})
