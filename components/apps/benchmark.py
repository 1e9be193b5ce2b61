"""`meshlab:apps:MeshBenchmark`: the design's performance comparison, set up in the user's own lab.

`meshlab:benchmark: on` (rollout phase 3 or later) adds four namespaces that differ only in the data
path, each with a fortio echo server and a fortio client (`tools.bench_mesh` runs `fortio load` in
the client with `kubectl exec`):

| case       | namespace        | data path                                                     |
| ---------- | ---------------- | ------------------------------------------------------------- |
| `none`     | `bench-none`     | no mesh: pod to pod through Cilium only                       |
| `sidecar`  | `bench-sidecar`  | an Envoy sidecar in each pod (istiod's injector), mTLS        |
| `ambient`  | `bench-ambient`  | ztunnel on each node (HBONE, mTLS), no L7 proxy               |
| `waypoint` | `bench-waypoint` | ztunnel, then the namespace's waypoint (Envoy, L7) in between |

Every server runs on one node and every client on another (by hostname, from the topology), and the
waypoint on the server's node, so each case crosses the same two nodes and only the proxies differ.

Pod Security: every namespace enforces `restricted`. The sidecar case can, because the injector is
told to leave redirection to istio-cni (`pilot.cni.enabled`, see components/mesh/istio.py): the
injected `istio-validation` and `istio-proxy` containers then run as uid 1337 without capabilities,
and the pod's own RuntimeDefault seccomp profile covers them. Without it the injector would add
`istio-init` (root, NET_ADMIN, NET_RAW), which even `baseline` refuses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
import yaml

from components.apps.web_test import HBONE_PORT, deployment_document
from components.cluster.access import ClusterAccess
from components.kube import RESTRICTED_CONTAINER, kube_object
from components.security.namespaces import NamespaceSpec, labelled_namespace
from config import versions
from config.settings import Settings

SERVER = "fortio-server"
CLIENT = "fortio-client"
CONTAINER = "fortio"
HTTP_PORT = 8080
WAYPOINT = "waypoint"
WAYPOINT_OPTIONS = "waypoint-placement"
HOSTNAME_LABEL = "kubernetes.io/hostname"
# fortio's image has no user of its own; its working directory (and default data dir) is this volume.
DATA_DIR = "/var/lib/fortio"


@dataclass(frozen=True)
class BenchCase:
    """One data path: its namespace, the labels that select it, and whether a waypoint sits in it."""

    key: str
    title: str
    namespace: str
    labels: dict[str, str] = field(default_factory=dict)
    waypoint: bool = False

    @property
    def url(self) -> str:
        """What the client loads: the server's Service (a waypoint serves Services, not pod IPs)."""
        return f"http://{SERVER}.{self.namespace}.svc:{HTTP_PORT}/echo"


AMBIENT = {"istio.io/dataplane-mode": "ambient"}
CASES: tuple[BenchCase, ...] = (
    BenchCase("none", "no mesh", "bench-none"),
    BenchCase("sidecar", "sidecar (Envoy)", "bench-sidecar", {"istio-injection": "enabled"}),
    BenchCase("ambient", "ambient (ztunnel)", "bench-ambient", dict(AMBIENT)),
    BenchCase("waypoint", "ambient + waypoint", "bench-waypoint", {**AMBIENT, "istio.io/use-waypoint": WAYPOINT}, True),
)


def bench_nodes(settings: Settings) -> tuple[str, str]:
    """(server node, client node): meshlab:benchmarkNodes, else two agents when there are two, else two of all
    the nodes (one if alone)."""
    if settings.apps.benchmark_nodes:
        server, client = settings.apps.benchmark_nodes
        return server, client
    topology = settings.topology
    candidates = topology.agents if len(topology.agents) >= 2 else topology.nodes
    names = [node.name for node in candidates]
    return names[0], names[1] if len(names) > 1 else names[0]


def namespace_spec(case: BenchCase) -> NamespaceSpec:
    return NamespaceSpec(case.namespace, "restricted", labels=dict(case.labels))


def fortio_pod(labels: dict[str, str], node: str) -> dict[str, Any]:
    """A restricted fortio pod pinned to `node`: `fortio server` on 8080 only (the client idles as one too)."""
    probe = {"httpGet": {"path": "/", "port": HTTP_PORT}, "periodSeconds": 10}
    args = ["server", "-http-port", str(HTTP_PORT)]
    # Only the HTTP echo server: the gRPC, TCP/UDP echo and https-redirect listeners stay closed.
    for flag in ("-grpc-port", "-redirect-port", "-tcp-port", "-udp-port"):
        args += [flag, "disabled"]
    return {
        "metadata": {"labels": labels},
        "spec": {
            "automountServiceAccountToken": False,
            "nodeSelector": {HOSTNAME_LABEL: node},
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": versions.FORTIO_UID,
                "runAsGroup": versions.FORTIO_UID,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": CONTAINER,
                    "image": versions.FORTIO_IMAGE,
                    "args": args,
                    "ports": [{"name": "http", "containerPort": HTTP_PORT}],
                    "securityContext": RESTRICTED_CONTAINER,
                    "readinessProbe": probe,
                    # Limits well above 1,000 qps of 1 KB, so CPU throttling does not show up as latency.
                    "resources": {
                        "requests": {"cpu": "100m", "memory": "32Mi"},
                        "limits": {"cpu": "2", "memory": "256Mi"},
                    },
                    "volumeMounts": [{"name": "data", "mountPath": DATA_DIR}],
                }
            ],
            "volumes": [{"name": "data", "emptyDir": {}}],
        },
    }


def server_service(case: BenchCase) -> dict[str, Any]:
    labels = {"app": SERVER}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": SERVER, "namespace": case.namespace, "labels": labels},
        "spec": {
            "selector": labels,
            # appProtocol http: sidecars and the waypoint treat it as HTTP/1.1 without sniffing.
            "ports": [{"name": "http", "port": HTTP_PORT, "targetPort": HTTP_PORT, "appProtocol": "http"}],
        },
    }


def waypoint_options(node: str) -> dict[str, Any]:
    """The waypoint Deployment's overlay (Istio's Gateway parametersRef): on the server's node."""
    deployment = {"spec": {"template": {"spec": {"nodeSelector": {HOSTNAME_LABEL: node}}}}}
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": WAYPOINT_OPTIONS, "namespace": CASES[-1].namespace},
        "data": {"deployment": yaml.safe_dump(deployment, sort_keys=True)},
    }


def waypoint(case: BenchCase) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": WAYPOINT, "namespace": case.namespace, "labels": {"istio.io/waypoint-for": "service"}},
        "spec": {
            "gatewayClassName": "istio-waypoint",
            "infrastructure": {"parametersRef": {"group": "", "kind": "ConfigMap", "name": WAYPOINT_OPTIONS}},
            "listeners": [{"name": "mesh", "port": HBONE_PORT, "protocol": "HBONE"}],
        },
    }


def case_documents(case: BenchCase, server_node: str, client_node: str) -> list[dict[str, Any]]:
    """Everything in one case's namespace, namespace excluded."""
    documents: list[dict[str, Any]] = []
    if case.waypoint:
        documents += [waypoint_options(server_node), waypoint(case)]
    server_labels, client_labels = {"app": SERVER}, {"app": CLIENT}
    documents.append(deployment_document(SERVER, case.namespace, server_labels, fortio_pod(server_labels, server_node)))
    documents.append(server_service(case))
    documents.append(deployment_document(CLIENT, case.namespace, client_labels, fortio_pod(client_labels, client_node)))
    return documents


class MeshBenchmark(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        *,
        access: ClusterAccess,
        settings: Settings,
        mesh_ready: list[pulumi.Resource],
        waypoint_hardening: list[pulumi.Resource],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        server_node, client_node = bench_nodes(settings)
        summary = {
            "namespaces": [case.namespace for case in CASES],
            "serverNode": server_node,
            "clientNode": client_node,
        }
        super().__init__("meshlab:apps:MeshBenchmark", name, summary, opts)
        for case in CASES:
            prefix = f"{name}-{case.key}"
            # Enrolled (or injected) at creation, so every namespace waits for the mesh's data plane.
            namespace = labelled_namespace(f"{prefix}-namespace", namespace_spec(case), access, self, mesh_ready)
            created: dict[str, pulumi.Resource] = {}
            for document in case_documents(case, server_node, client_node):
                kind, after = document["kind"], [namespace]
                if kind == "Gateway":
                    # After its placement overlay, and after whatever hardens waypoint pods (Kyverno).
                    after += [created["ConfigMap"], *waypoint_hardening]
                created[kind] = kube_object(
                    f"{prefix}-{kind.lower()}-{document['metadata']['name']}", document, access.options(self, after)
                )
        self.register_outputs(summary)
