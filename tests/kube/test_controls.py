"""Controls: rendered objects with one deliberate error, through the same apply path as the stacks.
The server must refuse each (and accept the same object without the error), so the tier can fail."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from tests.kube.apply import StackRun, Step, apply_manifest, wait_for_pods
from tests.kube.controlplane import ControlPlane
from tests.kube.manifests import Manifest

NAMESPACE = "kube-tier-controls"


@pytest.fixture(scope="module")
def controls_namespace(lab_plane: ControlPlane) -> str:
    answer = lab_plane.api.create(
        "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    )
    assert answer.status == 201, answer.body
    lab_plane.wait_service_account(NAMESPACE)
    return NAMESPACE


def rendered(applied: dict[str, StackRun], kind: str, source: str) -> Manifest:
    [found] = [m for m in applied["lab"].manifests if m.kind == kind and m.source == source]
    return found


def variant(manifest: Manifest, suffix: str, edit: Callable[[dict[str, Any]], None] | None = None) -> Manifest:
    """The manifest under another name in the controls namespace, optionally edited."""
    body = copy.deepcopy(manifest.body)
    body["metadata"]["name"] = f"{manifest.name}-{suffix}"
    body["metadata"]["namespace"] = NAMESPACE
    if edit:
        edit(body)
    return dataclasses.replace(manifest, source=f"{manifest.source} ({suffix})", body=body)


def _unknown_field(body: dict[str, Any]) -> None:
    body["spec"]["rules"][0]["bogusField"] = True


def _tls_on_http(body: dict[str, Any]) -> None:
    body["spec"]["listeners"][0]["tls"] = {"mode": "Terminate", "certificateRefs": [{"name": "ingress-cert"}]}


def _bad_protocol(body: dict[str, Any]) -> None:
    body["spec"]["egress"][1]["toPorts"][0]["ports"][0]["protocol"] = "HTTP"


CONTROLS = [
    # (kind, rendered source, edit, what the server must say)
    (
        "AuthorizationPolicy",
        "web-test-authorization",
        _unknown_field,
        ".spec.rules[0].bogusField: field not declared in schema",
    ),
    ("Gateway", "ingress-gateway", _tls_on_http, "tls must not be specified for protocols ['HTTP', 'TCP', 'UDP']"),
    ("CiliumNetworkPolicy", "web-test-egress", _bad_protocol, 'Unsupported value: "HTTP"'),
]


@pytest.mark.parametrize("control", CONTROLS, ids=[c[0] for c in CONTROLS])
def test_a_broken_rendered_object_is_refused_with_the_servers_message(
    applied: dict[str, StackRun], lab_plane: ControlPlane, controls_namespace: str, control
):
    kind, source, edit, message = control
    original = rendered(applied, kind, source)
    sound: Step = apply_manifest(lab_plane.api, variant(original, "control"))
    assert sound.ok, sound.rejection
    broken = apply_manifest(lab_plane.api, variant(original, "broken", edit))
    assert not broken.dry_run.ok
    assert broken.rejection is not None
    assert message in broken.rejection, broken.rejection


def test_an_out_of_range_node_port_passes_the_dry_run_and_fails_on_create(
    applied: dict[str, StackRun], lab_plane: ControlPlane, controls_namespace: str
):
    """Why every object is applied for real after its dry run."""

    def low_port(body: dict[str, Any]) -> None:
        body["spec"]["ports"][0]["nodePort"] = 20000

    step = apply_manifest(lab_plane.api, variant(rendered(applied, "Service", "web-test-service"), "port", low_port))
    assert step.dry_run.ok, step.dry_run.output
    assert step.real is not None and not step.real.ok
    assert "provided port is not in the valid range" in (step.rejection or ""), step.rejection


def test_a_workload_whose_pods_the_namespace_refuses_warns_and_gets_no_pod(
    applied: dict[str, StackRun], lab_plane: ControlPlane, controls_namespace: str
):
    """What the warning and pod checks of the stacks would see: the controls namespace has no label, so
    RKE2's default (restricted) applies; a privileged container is refused."""

    def privileged(body: dict[str, Any]) -> None:
        for container in body["spec"]["template"]["spec"]["containers"]:
            container["securityContext"] = {"privileged": True}

    deployment = variant(rendered(applied, "Deployment", "web-test-deployment"), "privileged", privileged)
    step = apply_manifest(lab_plane.api, deployment)
    assert step.ok, step.rejection  # a Deployment is only warned about
    assert any("would violate PodSecurity" in warning for warning in step.dry_run.warnings), step.dry_run
    _, pods, failures = wait_for_pods(lab_plane.api, deployment, timeout=20)
    assert pods == []
    assert any('violates PodSecurity "restricted:latest"' in failure for failure in failures), failures
