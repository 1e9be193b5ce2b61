"""`meshlab:apps:WebTest`: the seed's hardened test app in `ns-test`, with layered security.

- L7 (Istio): a waypoint whose AuthorizationPolicy lets only the configured methods and paths
  through; everything else gets 403 "RBAC: access denied" from Envoy. The namespace tells the
  ingress to go through the waypoint for every Service in it (the L7 demo's v2 too), or ingress
  traffic would skip the L7 policy.
- L4 (Istio): STRICT PeerAuthentication for the namespace.
- L3/L4 (Kubernetes): a NetworkPolicy admitting only HBONE (15008) from the waypoint, plus the
  ambient probe address; the ingress gateway, other meshed pods by pod IP, NodePort and pod-IP
  access from outside the mesh are dropped, so no path to the app skips the waypoint.
- Egress (Cilium): DNS through Cilium's proxy and HTTPS to the allow-listed names only.

All traffic between ambient pods rides inside HBONE on 15008, so Cilium never sees the HTTP of
meshed requests: the 403s come from the waypoint, not from Cilium (lab-spec §7).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi

from components.cluster.access import ClusterAccess
from components.kube import RESTRICTED_CONTAINER, kube_object
from components.network.ingress import IngressGateway, http_route
from components.security.namespaces import NamespaceSpec, labelled_namespace
from config.settings import Settings

NAMESPACE = "ns-test"
APP = "web-test"
SERVICE = "web-test-service"
WAYPOINT = "waypoint"
CONTAINER_PORT = 8080
SERVICE_PORT = 80
NODE_PORT = 30000
HBONE_PORT = 15008
# Ambient SNATs kubelet probes to this address (lab-spec §5.4).
PROBE_SOURCE = "169.254.7.127/32"
# v1 is the app; the L7 routing demo adds a v2 under the same app label (same policies apply).
APP_LABELS = {"app": APP}
V1_LABELS = {**APP_LABELS, "version": "v1"}


@dataclass(frozen=True)
class WebTestShape:
    """Which parts exist at this rollout phase."""

    mtls_mode: str
    waypoint: bool
    ingress: bool

    @staticmethod
    def for_phase(phase: int) -> WebTestShape:
        # Phase 2 enrols the namespace on PERMISSIVE so workloads can join; phase 3 locks it down.
        return WebTestShape(mtls_mode="PERMISSIVE" if phase == 2 else "STRICT", waypoint=phase >= 3, ingress=phase >= 3)


# Istio: ingress gateways send a Service's traffic through its waypoint (else they skip it).
INGRESS_USE_WAYPOINT = "istio.io/ingress-use-waypoint"


def namespace_spec(shape: WebTestShape) -> NamespaceSpec:
    labels = {"istio.io/dataplane-mode": "ambient"}
    if shape.waypoint:
        labels["istio.io/use-waypoint"] = WAYPOINT
        # Ingress gateways skip service waypoints unless told otherwise (then POST / gets nginx's 405, not
        # 403). On the namespace (Istio 1.27), it covers every Service here, present and future.
        labels[INGRESS_USE_WAYPOINT] = "true"
    return NamespaceSpec(NAMESPACE, "restricted", labels=labels)


def waypoint() -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": WAYPOINT, "namespace": NAMESPACE, "labels": {"istio.io/waypoint-for": "service"}},
        "spec": {
            "gatewayClassName": "istio-waypoint",
            "listeners": [{"name": "mesh", "port": HBONE_PORT, "protocol": "HBONE"}],
        },
    }


def peer_authentication(mode: str) -> dict[str, Any]:
    return {
        "apiVersion": "security.istio.io/v1",
        "kind": "PeerAuthentication",
        "metadata": {"name": "default", "namespace": NAMESPACE},
        "spec": {"mtls": {"mode": mode}},
    }


def authorization_policy(rules: list[dict[str, Any]]) -> dict[str, Any]:
    """An ALLOW policy on the waypoint: a request matching none of `rules` gets 403."""
    return {
        "apiVersion": "security.istio.io/v1",
        "kind": "AuthorizationPolicy",
        "metadata": {"name": f"{APP}-allowed-requests", "namespace": NAMESPACE},
        "spec": {
            # Attached to the waypoint, never by selector: ztunnel cannot apply L7 rules and would
            # drop every request to the workload.
            "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": WAYPOINT}],
            "action": "ALLOW",
            "rules": rules,
        },
    }


def allowed_requests(settings: Settings) -> dict[str, Any]:
    apps = settings.apps
    return {
        "to": [
            {"operation": {"methods": list(apps.test_app_allowed_methods), "paths": list(apps.test_app_allowed_paths)}}
        ]
    }


def pod_template(labels: dict[str, str], image: str) -> dict[str, Any]:
    """A restricted pod of the non-root nginx image: read-only root, /tmp writable, probes on 8080."""
    probe = {"httpGet": {"path": "/", "port": CONTAINER_PORT}, "periodSeconds": 10}
    return {
        "metadata": {"labels": labels},
        "spec": {
            "automountServiceAccountToken": False,
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [
                {
                    "name": "nginx",
                    "image": image,
                    "ports": [{"name": "http", "containerPort": CONTAINER_PORT}],
                    "securityContext": RESTRICTED_CONTAINER,
                    "readinessProbe": probe,
                    "livenessProbe": {**probe, "initialDelaySeconds": 5},
                    "resources": {
                        "requests": {"cpu": "10m", "memory": "16Mi"},
                        "limits": {"cpu": "200m", "memory": "64Mi"},
                    },
                    # nginx writes its pid and temp files under /tmp; the root filesystem is read-only.
                    "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                }
            ],
            "volumes": [{"name": "tmp", "emptyDir": {}}],
        },
    }


def deployment_document(name: str, namespace: str, labels: dict[str, str], template: dict[str, Any]) -> dict[str, Any]:
    """One replica of `template`, selected by `labels`."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": template},
    }


def deployment(settings: Settings) -> dict[str, Any]:
    return deployment_document(APP, NAMESPACE, V1_LABELS, pod_template(V1_LABELS, settings.apps.test_app_image))


def service(shape: WebTestShape) -> dict[str, Any]:
    # The Service carries the ingress label too: Istio reads a Service's own label first, and releases
    # before 1.27 read only that one (the namespace fallback came with 1.27).
    labels = {**APP_LABELS, INGRESS_USE_WAYPOINT: "true"} if shape.waypoint else APP_LABELS
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": SERVICE, "namespace": NAMESPACE, "labels": labels},
        "spec": {
            # The seed's NodePort, kept so the suite can show that direct access is blocked.
            "type": "NodePort",
            "selector": V1_LABELS,
            "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": CONTAINER_PORT, "nodePort": NODE_PORT}],
        },
    }


def network_policy() -> dict[str, Any]:
    hbone = [{"protocol": "TCP", "port": HBONE_PORT}]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": f"{APP}-mesh-only", "namespace": NAMESPACE},
        "spec": {
            "podSelector": {"matchLabels": APP_LABELS},
            "policyTypes": ["Ingress"],
            "ingress": [
                # The ingress gateway sends through the waypoint (ingress-use-waypoint), so it needs no rule.
                {
                    "from": [{"podSelector": {"matchLabels": {"gateway.networking.k8s.io/gateway-name": WAYPOINT}}}],
                    "ports": hbone,
                },
                # Kubelet probes, SNATed by ambient.
                {"from": [{"ipBlock": {"cidr": PROBE_SOURCE}}]},
            ],
        },
    }


def egress_policy(settings: Settings) -> dict[str, Any]:
    return {
        "apiVersion": "cilium.io/v2",
        "kind": "CiliumNetworkPolicy",
        "metadata": {"name": f"{APP}-egress", "namespace": NAMESPACE},
        "spec": {
            "endpointSelector": {"matchLabels": APP_LABELS},
            "egress": [
                {
                    # The DNS rule makes lookups go through Cilium's proxy, which is what lets toFQDNs work.
                    "toEndpoints": [
                        {"matchLabels": {"k8s:io.kubernetes.pod.namespace": "kube-system", "k8s:k8s-app": "kube-dns"}}
                    ],
                    "toPorts": [
                        {"ports": [{"port": "53", "protocol": "ANY"}], "rules": {"dns": [{"matchPattern": "*"}]}}
                    ],
                },
                {
                    "toFQDNs": [{"matchName": name} for name in settings.apps.test_app_egress_fqdns],
                    "toPorts": [{"ports": [{"port": "443", "protocol": "TCP"}]}],
                },
            ],
        },
    }


def probe_policy() -> dict[str, Any]:
    return {
        "apiVersion": "cilium.io/v2",
        "kind": "CiliumClusterwideNetworkPolicy",
        "metadata": {"name": "allow-ambient-hostprobes"},
        "spec": {
            "description": "Kubelet probes into ambient pods arrive SNATed from 169.254.7.127",
            "endpointSelector": {},
            "ingress": [{"fromCIDR": [PROBE_SOURCE]}],
            # Without these, the empty selector would put every pod in the cluster into default deny.
            "enableDefaultDeny": {"ingress": False, "egress": False},
        },
    }


def route(settings: Settings) -> dict[str, Any]:
    return http_route(APP, NAMESPACE, settings.apps.test_app_hostname, SERVICE, SERVICE_PORT)


class WebTest(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        *,
        access: ClusterAccess,
        settings: Settings,
        mesh_ready: list[pulumi.Resource],
        ingress: IngressGateway | None,
        waypoint_hardening: list[pulumi.Resource],
        extra_rules: list[dict[str, Any]] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        shape = WebTestShape.for_phase(settings.apps.rollout_phase)
        super().__init__(
            "meshlab:apps:WebTest",
            name,
            {"namespace": NAMESPACE, "mtlsMode": shape.mtls_mode, "waypoint": shape.waypoint},
            opts,
        )
        # Enrolled in ambient at creation, so it waits for ztunnel.
        self.namespace = labelled_namespace(f"{name}-namespace", namespace_spec(shape), access, self, mesh_ready)
        in_namespace = [self.namespace]
        self.peer_authentication = kube_object(
            f"{name}-mtls", peer_authentication(shape.mtls_mode), access.options(self, in_namespace)
        )
        self.deployment = kube_object(f"{name}-deployment", deployment(settings), access.options(self, in_namespace))
        self.service = kube_object(f"{name}-service", service(shape), access.options(self, in_namespace))
        self.waypoint: pulumi.Resource | None = None
        if shape.waypoint:
            self.waypoint = kube_object(
                f"{name}-waypoint", waypoint(), access.options(self, [*in_namespace, *waypoint_hardening])
            )
            rules = [allowed_requests(settings), *(extra_rules or [])]
            kube_object(f"{name}-authorization", authorization_policy(rules), access.options(self, [self.waypoint]))
            kube_object(f"{name}-network-policy", network_policy(), access.options(self, in_namespace))
            kube_object(f"{name}-egress", egress_policy(settings), access.options(self, in_namespace))
            # Cluster-wide, but it exists for the default-deny policies above.
            kube_object(f"{name}-probe-policy", probe_policy(), access.options(self))
        if shape.ingress and ingress is not None:
            kube_object(f"{name}-route", route(settings), access.options(self, [self.service, ingress.gateway]))
        self.url = f"http://{settings.apps.test_app_hostname}/"
        self.register_outputs({"namespace": NAMESPACE, "url": self.url})
