"""Each stack's Kubernetes objects on a real kube-apiserver v1.32.7 with RKE2's CIS Pod Security defaults:
the reference CRDs Established, every rendered object accepted (dry run, then for real), the pods of
every rendered workload admitted, and a privileged pod judged by each namespace's declared level."""

from __future__ import annotations

import pytest

from tests.conftest import STACKS
from tests.kube.admission import denied_checks
from tests.kube.apply import StackRun, wait_for_pods
from tests.kube.controlplane import PSA_EXEMPT_NAMESPACES
from tests.kube.manifests import PREEXISTING_NAMESPACES, reference_crds

ENFORCE = "pod-security.kubernetes.io/enforce"
# Workloads whose pods the controller-manager creates without any node.
CONTROLLED = {"Deployment", "ReplicaSet", "StatefulSet", "Job"}


@pytest.mark.parametrize("stack", STACKS)
def test_reference_crds_are_established(applied: dict[str, StackRun], stack: str):
    """Applied once to the seed cluster (kubectl, server-side), served Established by each stack's."""
    run = applied[stack]
    assert run.crds.ok, run.crds.output
    assert run.established.ok, run.established.output
    served = run.plane.api.get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions")
    assert served.ok, served.message
    established = {
        item["metadata"]["name"]
        for item in served.body["items"]
        if any(c["type"] == "Established" and c["status"] == "True" for c in item["status"].get("conditions", []))
    }
    expected = {doc["metadata"]["name"] for doc in reference_crds()}
    assert expected == established
    assert len(expected) >= 30  # gateway 5, istio, cilium 2, kyverno 7, metallb 8, helm-controller 2


@pytest.mark.parametrize("stack", STACKS)
def test_every_rendered_object_is_accepted(applied: dict[str, StackRun], stack: str):
    run = applied[stack]
    assert run.crds.ok and run.established.ok, f"{run.crds.output}\n{run.established.output}"
    assert len(run.steps) == len(run.manifests) > 20
    rejections = [step.rejection for step in run.steps if step.rejection]
    assert not rejections, f"{len(rejections)} of {len(run.steps)} objects refused:\n" + "\n".join(
        r for r in rejections if r
    )


@pytest.mark.parametrize("stack", STACKS)
def test_every_object_is_stored_as_rendered(applied: dict[str, StackRun], stack: str):
    """The server holds each object under the name, namespace and kind we rendered (nothing was
    applied somewhere else, e.g. to the default namespace)."""
    run = applied[stack]
    assert run.steps
    for step in run.steps:
        manifest = step.manifest
        stored = run.plane.api.get(run.plane.api.object_path(manifest.body))
        assert stored.ok, (manifest.ref, stored.message)
        assert (stored.body["apiVersion"], stored.body["kind"]) == (manifest.api_version, manifest.kind), manifest.ref
        assert stored.body["metadata"].get("namespace") == manifest.namespace, manifest.ref
        assert manifest.body["metadata"].get("labels", {}).items() <= stored.body["metadata"].get("labels", {}).items()


@pytest.mark.parametrize("stack", STACKS)
def test_no_pod_security_warning_for_rendered_workloads(applied: dict[str, StackRun], stack: str):
    """The server warns on a workload whose pod template its namespace's level would refuse."""
    warned = [
        f"{step.manifest.ref}: {warning}"
        for step in applied[stack].steps
        for outcome in (step.dry_run, step.real)
        if outcome is not None
        for warning in outcome.warnings
        if "PodSecurity" in warning
    ]
    assert not warned, "\n".join(warned)


@pytest.mark.parametrize("stack", STACKS)
def test_pods_of_every_rendered_workload_are_admitted(applied: dict[str, StackRun], stack: str):
    """The controller-manager creates each workload's pods; Pod Security admits them (they stay
    Pending: there is no scheduler and no node)."""
    run = applied[stack]
    workloads = [step.manifest for step in run.steps if step.ok and step.manifest.kind in CONTROLLED]
    assert workloads, "the stack renders no workload"
    for workload in workloads:
        wanted, pods, failures = wait_for_pods(run.plane.api, workload)
        assert len(pods) == wanted, f"{workload.ref}: {len(pods)} of {wanted} pods; creation failures: {failures}"
        for pod in pods:
            assert pod["status"].get("phase") == "Pending", pod["status"]
            assert pod["metadata"]["ownerReferences"][0]["kind"] in {"ReplicaSet", "StatefulSet", "Job"}


PRIVILEGED_POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "privileged-probe"},
    "spec": {
        "automountServiceAccountToken": False,
        "containers": [{"name": "probe", "image": "registry.invalid/probe:1", "securityContext": {"privileged": True}}],
    },
}


@pytest.mark.parametrize("stack", STACKS)
def test_a_privileged_pod_is_judged_by_each_namespaces_level(applied: dict[str, StackRun], stack: str):
    """Refused where we declare restricted or baseline (and where RKE2's restricted default applies),
    admitted where we declare privileged and in the namespaces RKE2 exempts."""
    run = applied[stack]
    declared = {
        step.manifest.name: step.manifest.body["metadata"].get("labels", {}).get(ENFORCE)
        for step in run.steps
        if step.manifest.kind == "Namespace"
    }
    assert {"restricted", "privileged"} <= set(declared.values())
    levels = {name: level or "restricted" for name, level in declared.items()}
    levels["default"] = "restricted"  # no label: RKE2's cluster-wide default
    levels.update({name: "privileged" for name in PSA_EXEMPT_NAMESPACES if name in PREEXISTING_NAMESPACES})
    wrong = []
    for namespace, level in sorted(levels.items()):
        run.plane.wait_service_account(namespace)
        answer = run.plane.api.create(f"/api/v1/namespaces/{namespace}/pods", PRIVILEGED_POD, dry_run=True)
        denial = denied_checks(answer.message)
        if level == "privileged":
            if answer.status != 201:
                wrong.append(f"{namespace} ({level}): refused: {answer.message}")
        elif answer.status != 403 or denial is None or "privileged" not in denial[1]:
            wrong.append(f"{namespace} ({level}): expected a PodSecurity denial, got {answer.status} {answer.message}")
        elif declared.get(namespace) and denial[0] != level:
            wrong.append(f"{namespace}: judged at {denial[0]}, declared {level}")
    assert not wrong, "\n".join(wrong)
