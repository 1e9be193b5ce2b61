"""The real-apply tier's cluster: the kube tier's control plane (etcd, kube-apiserver, kube-controller-manager at
the lab's Kubernetes version), plus kube-scheduler and KWOK's fake nodes and pod lifecycles, and a STAND-IN for
Cilium (its cilium-config ConfigMap as RKE2's rke2-cilium writes it with meshlab's values, and its two policy
CRDs from ../shared/reference): what an existing cluster with Cilium looks like to meshlab's program.

The API server runs with the webhook admission plugins off: on fake nodes no webhook server ever runs, and
MetalLB's (failurePolicy Fail) and Istio's sidecar injector would refuse what they guard. KWOK fakes readiness:
no image is pulled and no container runs.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from components.cluster.cluster_preflight import CILIUM_REQUIREMENTS
from tests.kube import toolchain
from tests.kube.controlplane import ControlPlane, free_ports, wait_until

WEBHOOK_PLUGINS = "MutatingAdmissionWebhook,ValidatingAdmissionWebhook"
# Replaces the module's pod-delete stage (see the file for why).
POD_DELETE = Path(__file__).resolve().parent / "kwok-pod-delete.yaml"
SHARED = Path(__file__).resolve().parents[3] / "shared"
CILIUM_CRDS = SHARED / "reference" / "crds" / "cilium-1.17.6"
GATEWAY_API_CRDS = SHARED / "reference" / "crds" / "gateway-api-v1.3.0-standard"
# Fake nodes named as the lab's (master1..3 servers, worker1..3 agents), labelled as RKE2 labels them.
SERVERS = ("master1", "master2", "master3")
AGENTS = ("worker1", "worker2", "worker3")


def node_document(name: str, server: bool) -> dict[str, Any]:
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "type": "kwok",
    }
    if server:
        labels |= {"node-role.kubernetes.io/control-plane": "true", "node-role.kubernetes.io/etcd": "true"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels, "annotations": {"kwok.x-k8s.io/node": "fake"}},
        "spec": {},
        "status": {
            "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "250"},
            "capacity": {"cpu": "32", "memory": "256Gi", "pods": "250"},
            "nodeInfo": {"kubeletVersion": "fake", "operatingSystem": "linux", "architecture": "amd64"},
        },
    }


def cilium_config() -> dict[str, Any]:
    """STAND-IN: kube-system/cilium-config with the keys meshlab's Cilium values produce (the ones the preflight
    reads, at the values Istio ambient needs)."""
    data = {key: wanted for key, (wanted, _) in CILIUM_REQUIREMENTS.items()}
    data["cluster-name"] = "default"
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cilium-config", "namespace": "kube-system", "labels": {"meshlab.dev/stand-in": "cilium"}},
        "data": data,
    }


def gateway_api_manifest() -> str:
    """The Gateway API v1.3.0 standard channel's CRDs as one manifest (standard-install.yaml's CRDs)."""
    files = sorted(GATEWAY_API_CRDS.glob("*.yaml"))
    if len(files) != 5:
        raise FileNotFoundError(f"expected the 5 standard CRDs in {GATEWAY_API_CRDS}, found {len(files)}")
    return "\n---\n".join(path.read_text() for path in files)


@dataclass
class ApplyCluster:
    plane: ControlPlane
    stages: Path
    timings: dict[str, float] = field(default_factory=dict)

    @classmethod
    def create(cls, bin_dir: Path, work: Path) -> ApplyCluster:
        plane = ControlPlane(
            "apply", bin_dir, work, apiserver_extra_args=[f"--disable-admission-plugins={WEBHOOK_PLUGINS}"]
        )
        return cls(plane, bin_dir.parent / toolchain.KWOK_STAGES)

    @property
    def kubeconfig(self) -> str:
        """The admin's kubeconfig with the CA inline (what a user hands meshlab:kubeconfig)."""
        document = json.loads(self.plane.kubectl.kubeconfig.read_text())
        cluster = document["clusters"][0]["cluster"]
        ca = Path(cluster.pop("certificate-authority")).read_bytes()
        cluster["certificate-authority-data"] = base64.b64encode(ca).decode()
        return yaml.safe_dump(document, sort_keys=False)

    def start(self) -> None:
        start = time.monotonic()
        plane = self.plane
        plane.start_etcd()
        plane.wait_etcd()
        plane.start_apiserver()
        plane.wait_apiserver()
        plane.start_controller_manager()
        plane.wait_controller_manager()
        self._start_scheduler()
        self._start_kwok()
        for name in SERVERS + AGENTS:
            answer = plane.api.create("/api/v1/nodes", node_document(name, name in SERVERS))
            if not answer.ok:
                raise RuntimeError(f"node {name}: {answer.status} {answer.message}")
        wait_until("every fake node Ready", self._nodes_ready, plane.processes, 60)
        self._stand_in_cilium()
        self.timings["cluster ready (control plane, scheduler, KWOK, 6 fake nodes, Cilium stand-in)"] = (
            time.monotonic() - start
        )

    def _start_scheduler(self) -> None:
        plane = self.plane
        (port,) = free_ports(1)
        plane._process(
            toolchain.SCHEDULER,
            [
                str(plane.bin_dir / toolchain.SCHEDULER),
                f"--kubeconfig={plane.kubectl.kubeconfig}",
                f"--authentication-kubeconfig={plane.kubectl.kubeconfig}",
                f"--authorization-kubeconfig={plane.kubectl.kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={port}",
                "--leader-elect=false",
            ],
        )

    def _start_kwok(self) -> None:
        plane = self.plane
        stages = sorted(self.stages.glob("*.yaml"))
        if not stages:
            raise FileNotFoundError(f"no KWOK stages in {self.stages}: run `make kube`")
        stages = [stage for stage in stages if stage.name != POD_DELETE.name] + [POD_DELETE]
        (port,) = free_ports(1)
        argv = [
            str(plane.bin_dir / toolchain.KWOK),
            f"--kubeconfig={plane.kubectl.kubeconfig}",
            "--manage-all-nodes=true",
            "--node-lease-duration-seconds=40",
            "--cidr=10.42.0.0/16",
            "--node-ip=127.0.0.1",
            f"--node-port={port}",
            "--server-address=127.0.0.1:0",
            *(f"--config={stage}" for stage in stages),
        ]
        plane._process(toolchain.KWOK, argv)

    def _nodes_ready(self) -> bool:
        answer = self.plane.api.get("/api/v1/nodes")
        items = answer.body.get("items", []) if answer.ok else []
        ready = [
            item
            for item in items
            if any(c["type"] == "Ready" and c["status"] == "True" for c in item.get("status", {}).get("conditions", []))
        ]
        return len(ready) == len(SERVERS + AGENTS)

    def _stand_in_cilium(self) -> None:
        answer = self.plane.api.create("/api/v1/namespaces/kube-system/configmaps", cilium_config())
        if not answer.ok:
            raise RuntimeError(f"cilium-config: {answer.status} {answer.message}")
        for path in sorted(CILIUM_CRDS.glob("*.yaml")):
            done = self.plane.kubectl.run("apply", "--server-side", "-f", str(path))
            if done.returncode != 0:
                raise RuntimeError(f"kubectl apply {path.name}: {done.stderr}")

    def stop(self) -> None:
        self.plane.stop()
