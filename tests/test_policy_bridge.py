"""Program -> policy bridge: the rendered stacks pass every mandatory policy, and targeted mutations
of a compliant mesh (appended as synthetic registrations) are each caught by the right policy."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from tests.conftest import STACKS
from tools.plan import policy_resources
from tools.render import Registration, Rendering

# isort: split
from meshlab_policy.engine import Violation, load_pack_config, resolve, run_policies, stack_config_path
from meshlab_policy.settings import ENFORCE_LABEL, REASON_ANNOTATION


def registration(type_: str, name: str, inputs: dict[str, Any]) -> Registration:
    return Registration(
        urn=f"urn:pulumi:lab::meshlab::{type_}::{name}",
        type=type_,
        name=name,
        parent="",
        custom=True,
        dependencies=[],
        property_dependencies={},
        additional_secret_outputs=[],
        inputs=inputs,
        secret_paths=[],
        delete_before_replace=False,
    )


def custom(api_version: str, kind: str, name: str, namespace: str, spec: dict[str, Any]) -> Registration:
    group, version = api_version.split("/")
    inputs = {"apiVersion": api_version, "kind": kind, "metadata": {"name": name, "namespace": namespace}, "spec": spec}
    return registration(f"kubernetes:{group}/{version}:{kind}", f"{namespace}-{name}", inputs)


def namespace(name: str, labels: dict[str, str], reason: str | None = None) -> Registration:
    metadata: dict[str, Any] = {"name": name, "labels": labels}
    if reason:
        metadata["annotations"] = {REASON_ANNOTATION: reason}
    return registration(
        "kubernetes:core/v1:Namespace", name, {"apiVersion": "v1", "kind": "Namespace", "metadata": metadata}
    )


WEB_POD = {
    "securityContext": {"runAsNonRoot": True, "runAsUser": 101, "seccompProfile": {"type": "RuntimeDefault"}},
    "containers": [
        {
            "name": "web",
            "image": "nginxinc/nginx-unprivileged:1.27-alpine",
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]},
            },
            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
        }
    ],
    "volumes": [{"name": "tmp", "emptyDir": {}}],
}
GET_ROOT_ONLY = [{"to": [{"operation": {"methods": ["GET"], "paths": ["/"]}}]}]
WAYPOINT_REF = {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "waypoint"}


def compliant_mesh() -> list[Registration]:
    """What the mesh and app layers are meant to register, in a form every policy accepts."""
    return [
        namespace("istio-system", {ENFORCE_LABEL: "privileged"}, reason="istio-cni and ztunnel need host access"),
        namespace(
            "ns-test",
            {ENFORCE_LABEL: "restricted", "istio.io/dataplane-mode": "ambient", "istio.io/use-waypoint": "waypoint"},
        ),
        registration(
            "kubernetes:helm.sh/v3:Release",
            "istiod",
            {"chart": "istiod", "version": "1.27.0", "namespace": "istio-system"},
        ),
        custom("security.istio.io/v1", "PeerAuthentication", "default", "istio-system", {"mtls": {"mode": "STRICT"}}),
        custom(
            "gateway.networking.k8s.io/v1", "Gateway", "waypoint", "ns-test", {"gatewayClassName": "istio-waypoint"}
        ),
        custom("apps/v1", "Deployment", "web", "ns-test", {"template": {"spec": copy.deepcopy(WEB_POD)}}),
        custom(
            "security.istio.io/v1",
            "AuthorizationPolicy",
            "web",
            "ns-test",
            {"targetRefs": [WAYPOINT_REF], "rules": GET_ROOT_ONLY},
        ),
    ]


def check(rendering: Rendering, extra: list[Registration], stack: str = "lab") -> list[Violation]:
    combined = Rendering(rendering.stack, [*rendering.registrations, *extra])
    return run_policies(policy_resources(combined), resolve(load_pack_config(stack_config_path(stack))))


@pytest.mark.parametrize("stack", STACKS)
def test_each_rendered_stack_passes_every_mandatory_policy(rendered, stack):
    resources = policy_resources(rendered[stack])
    assert resources
    violations = run_policies(resources, resolve(load_pack_config(stack_config_path(stack))))
    assert [v for v in violations if v.mandatory] == []


def test_the_compliant_mesh_passes_every_policy(rendered):
    for stack in STACKS:
        assert check(rendered[stack], compliant_mesh(), stack) == []


def _edit(kind: str, change: Callable[[dict[str, Any]], None]) -> Callable[[list[Registration]], list[Registration]]:
    """A mutation that edits the inputs of the compliant mesh's (only) resource of `kind`."""

    def mutate(registrations: list[Registration]) -> list[Registration]:
        edited = []
        for original in registrations:
            if original.type.endswith(f":{kind}") and not (kind == "Namespace" and original.name != "ns-test"):
                inputs = copy.deepcopy(original.inputs)
                change(inputs)
                edited.append(replace(original, inputs=inputs))
            else:
                edited.append(original)
        return edited

    return mutate


def _web_pod(inputs: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = inputs["spec"]["template"]["spec"]
    return spec


def _add(extra: Registration) -> Callable[[list[Registration]], list[Registration]]:
    return lambda registrations: [*registrations, extra]


MUTATIONS: dict[str, tuple[Callable[[list[Registration]], list[Registration]], set[str], str]] = {
    "permissive-peer-authentication": (
        _add(
            custom(
                "security.istio.io/v1",
                "PeerAuthentication",
                "web",
                "ns-test",
                {"selector": {"matchLabels": {"app": "web"}}, "mtls": {"mode": "PERMISSIVE"}},
            )
        ),
        {"peer-authentication-strict"},
        "PERMISSIVE",
    ),
    "privileged-container": (
        _edit("Deployment", lambda i: _web_pod(i)["containers"][0]["securityContext"].update(privileged=True)),
        {"pod-security-restricted"},
        'privileged: container "web"',
    ),
    "missing-seccomp": (
        _edit("Deployment", lambda i: _web_pod(i)["securityContext"].pop("seccompProfile")),
        {"pod-security-restricted"},
        "seccompProfile_restricted",
    ),
    "missing-run-as-non-root": (
        _edit("Deployment", lambda i: _web_pod(i)["securityContext"].pop("runAsNonRoot")),
        {"pod-security-restricted"},
        "runAsNonRoot",
    ),
    "l7-authorization-by-selector": (
        _edit(
            "AuthorizationPolicy", lambda i: i["spec"].update(targetRefs=[], selector={"matchLabels": {"app": "web"}})
        ),
        {"ambient-waypoint-attachment"},
        "attaches through a selector",
    ),
    "ambient-namespace-without-strict": (
        lambda registrations: [r for r in registrations if not r.type.endswith(":PeerAuthentication")],
        {"mesh-mtls-strict"},
        'ambient namespace "ns-test" is not covered',
    ),
    "namespace-without-enforce-label": (
        _edit("Namespace", lambda i: i["metadata"]["labels"].pop(ENFORCE_LABEL)),
        {"namespace-pod-security-labels"},
        f"no {ENFORCE_LABEL} label",
    ),
    # A namespace-wide PERMISSIVE policy in an ambient namespace is both a plaintext policy and a gap in coverage.
    "permissive-ambient-namespace": (
        _add(
            custom("security.istio.io/v1", "PeerAuthentication", "default", "ns-test", {"mtls": {"mode": "PERMISSIVE"}})
        ),
        {"peer-authentication-strict", "mesh-mtls-strict"},
        "ns-test",
    ),
}


@pytest.mark.parametrize("mutation", MUTATIONS)
def test_each_mutation_is_caught_by_its_policy(rendered, mutation):
    mutate, policies, fragment = MUTATIONS[mutation]
    violations = check(rendered["lab"], mutate(compliant_mesh()))
    assert {v.policy for v in violations} == policies
    assert all(v.mandatory for v in violations)
    assert any(fragment in v.message for v in violations), [v.message for v in violations]
