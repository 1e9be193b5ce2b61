"""The mesh benchmark's objects (`meshlab:benchmark: on`) on the real kube-apiserver: the lab's
control plane, with the lab applied, takes the four data paths' namespaces, fortio workloads, the
waypoint and its placement, and admits their pods at each namespace's declared Pod Security level."""

from __future__ import annotations

from tests.kube.apply import StackRun, apply_in_order, wait_for_pods
from tests.kube.manifests import manifests

BENCHMARK = "meshlab:apps:MeshBenchmark"
ENFORCE = "pod-security.kubernetes.io/enforce"


def test_the_benchmark_is_accepted_and_its_pods_admitted(applied: dict[str, StackRun], render_with):
    plane = applied["lab"].plane
    objects = [m for m in manifests(render_with({"meshlab:benchmark": "on"})) if BENCHMARK in m.urn]
    kinds = sorted({m.kind for m in objects})
    assert kinds == ["ConfigMap", "Deployment", "Gateway", "Namespace", "Service", "ServiceAccount"], kinds
    namespaces = {m.name: m.body["metadata"]["labels"] for m in objects if m.kind == "Namespace"}
    assert sorted(namespaces) == ["bench-ambient", "bench-none", "bench-sidecar", "bench-waypoint"]
    assert {labels[ENFORCE] for labels in namespaces.values()} == {"restricted"}

    steps = apply_in_order(plane.api, objects)
    rejections = [step.rejection for step in steps if step.rejection]
    assert not rejections, "\n".join(r for r in rejections if r)
    warned = [
        f"{step.manifest.ref}: {warning}"
        for step in steps
        for outcome in (step.dry_run, step.real)
        if outcome is not None
        for warning in outcome.warnings
        if "PodSecurity" in warning
    ]
    assert not warned, "\n".join(warned)
    deployments = [step.manifest for step in steps if step.manifest.kind == "Deployment"]
    assert len(deployments) == 8  # a server and a client in each of the four namespaces
    for deployment in deployments:
        wanted, pods, failures = wait_for_pods(plane.api, deployment)
        assert len(pods) == wanted > 0, f"{deployment.ref}: {len(pods)} of {wanted} pods; {failures}"
