"""The pack as the real engine runs it on the first preview of a fresh stack, offline.

The engine hands resource policies each resource's *inputs* (Analyze) and stack policies each resource's
*outputs* (AnalyzeStack). On a first preview the Kubernetes provider's kubeconfig is an output of the
cluster layer, so the provider is not configured and its preview Create returns an empty property map:
the stack policies see every Kubernetes object's type and URN, nothing else. The real CLI v3.274 refused
`make up` on every fresh stack that way (mesh-mtls-strict: "no mesh-wide PeerAuthentication"). These
tests drive the CrossGuard servicer with the engine's own protobuf requests, shaped like that preview.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import struct_pb2
from pulumi.runtime import proto
from pulumi_policy import EnforcementLevel
from pulumi_policy import policy as crossguard
from pulumi_policy.proxy import UNKNOWN_OBJECT_VALUE, UNKNOWN_STRING_VALUE

from tests.conftest import STACKS
from tools.render import Registration, Rendering

# isort: split
from meshlab_policy.catalog import PACK_NAME
from meshlab_policy.engine import ENFORCEMENT_LEVEL, stack_config_path
from meshlab_policy.policies import build_policies

KUBERNETES = "kubernetes:"
Outputs = Callable[[Registration], Mapping[str, Any]]


def first_preview_outputs(registration: Registration) -> Mapping[str, Any]:
    """What a first preview's Create returns: nothing for a Kubernetes object (its provider is not
    configured yet), the inputs for the others (command, random, tls echo them, computed outputs unknown)."""
    return {} if registration.type.startswith(KUBERNETES) else registration.inputs


def _struct(value: Mapping[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(value)
    return struct


def _policy_config(path: Path) -> dict[str, Any]:
    """policy-pack/config/S.json as the CLI sends it to the analyzer's Configure."""
    levels = {"advisory": proto.ADVISORY, "mandatory": proto.MANDATORY, "disabled": proto.DISABLED}
    config: dict[str, Any] = {}
    for name, entry in json.loads(path.read_text()).items():
        level, properties = (entry, {}) if isinstance(entry, str) else (entry.get(ENFORCEMENT_LEVEL), entry)
        properties = {k: v for k, v in properties.items() if k != ENFORCEMENT_LEVEL}
        config[name] = proto.PolicyConfig(enforcementLevel=levels[level], properties=_struct(properties))
    return config


def _message(diagnostic: Any) -> str:
    """The finding, without the policy's description that CrossGuard puts on the line before it."""
    return str(diagnostic.message).removeprefix(f"{diagnostic.description}\n")


@dataclass(frozen=True)
class Diagnostic:
    policy: str
    mandatory: bool
    message: str
    urn: str


def engine_preview(
    registrations: Sequence[Registration], stack: str, outputs: Outputs = first_preview_outputs
) -> list[Diagnostic]:
    """Every diagnostic the pack returns to the engine: Analyze on each resource's inputs, then
    AnalyzeStack on `outputs` of every resource."""
    # The servicer's gRPC methods are untyped; Any keeps strict mypy from refusing each call.
    servicer: Any = crossguard._PolicyAnalyzerServicer(PACK_NAME, "0.1.0", build_policies(), EnforcementLevel.MANDATORY)
    servicer.Configure(proto.ConfigureAnalyzerRequest(policyConfig=_policy_config(stack_config_path(stack))), None)
    resources = [r for r in registrations if r.custom]
    diagnostics = []
    for resource in resources:
        request = proto.AnalyzeRequest(
            type=resource.type, properties=_struct(resource.inputs), urn=resource.urn, name=resource.name
        )
        diagnostics += servicer.Analyze(request, None).diagnostics
    stack_request = proto.AnalyzeStackRequest(
        resources=[
            proto.AnalyzerResource(type=r.type, properties=_struct(outputs(r)), urn=r.urn, name=r.name)
            for r in resources
        ]
    )
    diagnostics += servicer.AnalyzeStack(stack_request, None).diagnostics
    return [Diagnostic(d.policyName, d.enforcementLevel == proto.MANDATORY, _message(d), d.urn) for d in diagnostics]


def mandatory(diagnostics: Sequence[Diagnostic]) -> list[tuple[str, str]]:
    return [(d.policy, d.message) for d in diagnostics if d.mandatory]


def _is_mesh_wide(registration: Registration) -> bool:
    metadata = registration.inputs.get("metadata", {})
    return registration.type.endswith(":PeerAuthentication") and metadata == {
        "name": "default",
        "namespace": "istio-system",
    }


@pytest.mark.parametrize("stack", STACKS)
def test_a_fresh_stack_passes_its_first_preview(rendered: dict[str, Rendering], stack: str) -> None:
    registrations = rendered[stack].registrations
    # Not vacuous: the stack has the mesh-wide policy and Kubernetes objects whose outputs are empty.
    assert sum(map(_is_mesh_wide, registrations)) == 1
    assert sum(r.type.startswith(KUBERNETES) for r in registrations) > 30
    assert mandatory(engine_preview(registrations, stack)) == []


@pytest.mark.parametrize("stack", STACKS)
def test_the_same_stack_passes_once_every_output_is_known(rendered: dict[str, Rendering], stack: str) -> None:
    """After `pulumi up` the outputs are the objects as applied: the stack policies judge them, and pass."""
    assert mandatory(engine_preview(rendered[stack].registrations, stack, lambda r: r.inputs)) == []


def test_a_permissive_mesh_is_refused_on_the_first_preview(render_with: Callable[..., Rendering]) -> None:
    permissive = render_with({"meshlab:meshMtlsMode": "PERMISSIVE"})
    found = mandatory(engine_preview(permissive.registrations, "lab"))
    assert found == [
        (
            "peer-authentication-strict",
            'PeerAuthentication "istio-system/default" sets mtls.mode PERMISSIVE, which accepts plaintext: use '
            'STRICT, or list namespace "istio-system" in mtlsMigrationAllowList with a reason while it migrates',
        )
    ]
    # Once the outputs are known, the stack policy sees it too.
    known = mandatory(engine_preview(permissive.registrations, "lab", lambda r: r.inputs))
    assert sorted(policy for policy, _ in known) == ["mesh-mtls-strict", "peer-authentication-strict"]


def test_a_privileged_test_app_container_is_refused_on_the_first_preview(rendered: dict[str, Rendering]) -> None:
    def privileged(registration: Registration) -> Registration:
        metadata = registration.inputs.get("metadata", {})
        if not (registration.type.endswith(":Deployment") and metadata.get("name") == "web-test"):
            return registration
        inputs = json.loads(json.dumps(registration.inputs))
        inputs["spec"]["template"]["spec"]["containers"][0]["securityContext"]["privileged"] = True
        return replace(registration, inputs=inputs)

    registrations = [privileged(r) for r in rendered["lab"].registrations]
    assert registrations != rendered["lab"].registrations
    found = mandatory(engine_preview(registrations, "lab"))
    assert len(found) == 1, found
    policy, message = found[0]
    assert policy == "pod-security-restricted"
    assert message.startswith('restricted Pod Security (namespace "ns-test") in spec.template: privileged')


def test_an_anonymous_writable_kiali_is_refused_on_the_first_preview(rendered: dict[str, Rendering]) -> None:
    """A resource policy on the release's inputs: known before the cluster exists."""

    def writable(registration: Registration) -> Registration:
        if registration.name != "kiali-release":
            return registration
        inputs = json.loads(json.dumps(registration.inputs))
        inputs["values"]["deployment"]["view_only_mode"] = False
        return replace(registration, inputs=inputs)

    registrations = [writable(r) for r in rendered["lab"].registrations]
    assert registrations != rendered["lab"].registrations
    found = mandatory(engine_preview(registrations, "lab"))
    assert [policy for policy, _ in found] == ["kiali-anonymous-view-only"], found
    assert "deployment.view_only_mode: true" in found[0][1]


def _pa(namespace: str, mode: str | None, name: str = "default") -> dict[str, Any]:
    spec = {"mtls": {"mode": mode}} if mode else {}
    return {"metadata": {"name": name, "namespace": namespace}, "spec": spec}


def _ambient(namespace: str, **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": namespace, "labels": {"istio.io/dataplane-mode": "ambient", **labels}}}


PA = "kubernetes:security.istio.io/v1:PeerAuthentication"
NAMESPACE = "kubernetes:core/v1:Namespace"
GATEWAY = "kubernetes:gateway.networking.k8s.io/v1:Gateway"
AUTHORIZATION = "kubernetes:security.istio.io/v1:AuthorizationPolicy"
WAYPOINT = {"metadata": {"name": "waypoint", "namespace": "ns-a"}, "spec": {"gatewayClassName": "istio-waypoint"}}
L7_BY_SELECTOR = {
    "metadata": {"name": "l7", "namespace": "ns-a"},
    "spec": {"selector": {"matchLabels": {"app": "a"}}, "rules": [{"to": [{"operation": {"paths": ["/"]}}]}]},
}


Resources = list[tuple[str, Mapping[str, Any]]]


def stack_diagnostics(*resources: tuple[str, Mapping[str, Any]]) -> list[tuple[str, str, str]]:
    """AnalyzeStack alone over (type, outputs) pairs, with the pack's defaults."""
    servicer: Any = crossguard._PolicyAnalyzerServicer(PACK_NAME, "0.1.0", build_policies(), EnforcementLevel.MANDATORY)
    request = proto.AnalyzeStackRequest(
        resources=[
            proto.AnalyzerResource(type=type_, properties=_struct(props), urn=f"urn:{index}", name=str(index))
            for index, (type_, props) in enumerate(resources)
        ]
    )
    return [(d.policyName, _message(d), d.urn) for d in servicer.AnalyzeStack(request, None).diagnostics]


@pytest.mark.parametrize(
    "resources",
    [
        # The mesh-wide policy's outputs are not known yet.
        [(PA, {}), (NAMESPACE, _ambient("ns-a"))],
        [(PA, {"metadata": UNKNOWN_OBJECT_VALUE, "spec": UNKNOWN_OBJECT_VALUE})],
        # The namespace's own policy is not known yet: it may be what covers the namespace.
        [(PA, _pa("istio-system", "STRICT")), (PA, {}), (NAMESPACE, _ambient("ns-a"))],
        # The namespace is not known yet, so neither is whether it is ambient.
        [(PA, _pa("istio-system", "STRICT")), (NAMESPACE, {}), (GATEWAY, WAYPOINT)],
        # The waypoint the namespace names is not known yet.
        [
            (PA, _pa("istio-system", "STRICT")),
            (NAMESPACE, _ambient("ns-a", **{"istio.io/use-waypoint": "waypoint"})),
            (GATEWAY, {}),
        ],
        [(PA, _pa("istio-system", "STRICT")), (AUTHORIZATION, {}), (NAMESPACE, _ambient("ns-a"))],
        [(PA, _pa("istio-system", "STRICT")), (AUTHORIZATION, {**L7_BY_SELECTOR, "spec": UNKNOWN_OBJECT_VALUE})],
        # A label whose value is not known yet.
        [
            (PA, _pa("istio-system", "STRICT")),
            (NAMESPACE, {"metadata": {"name": "ns-a", "labels": {"istio.io/dataplane-mode": UNKNOWN_STRING_VALUE}}}),
        ],
    ],
)
def test_what_is_not_known_yet_is_neither_a_violation_nor_a_pass(resources: Resources) -> None:
    assert [(policy, message) for policy, message, _ in stack_diagnostics(*resources)] == []


@pytest.mark.parametrize(
    ("resources", "policy", "fragment"),
    [
        # Known facts are still judged, whatever else is unknown.
        (
            [(PA, _pa("istio-system", "PERMISSIVE")), (PA, {})],
            "mesh-mtls-strict",
            "is mesh-wide with mtls.mode PERMISSIVE",
        ),
        (
            [(PA, _pa("istio-system", "STRICT")), (PA, _pa("istio-system", "STRICT", "second")), (PA, {})],
            "mesh-mtls-strict",
            "is one of 2 mesh-wide PeerAuthentications",
        ),
        (
            [
                (PA, _pa("istio-system", "STRICT")),
                (PA, _pa("ns-a", "DISABLE")),
                (NAMESPACE, _ambient("ns-a")),
                (PA, {}),
            ],
            "mesh-mtls-strict",
            'sets DISABLE in ambient namespace "ns-a"',
        ),
        (
            [(PA, {}), (AUTHORIZATION, L7_BY_SELECTOR), (NAMESPACE, _ambient("ns-a"))],
            "ambient-waypoint-attachment",
            "attaches through a selector",
        ),
        (
            [(PA, {}), (NAMESPACE, _ambient("ns-a", **{"istio.io/use-waypoint": "waypoint"}))],
            "ambient-waypoint-attachment",
            'uses waypoint "waypoint" but the stack has no Gateway',
        ),
        (
            [(NAMESPACE, {}), (NAMESPACE, {"metadata": {"name": "ns-a"}}), (GATEWAY, WAYPOINT)],
            "ambient-waypoint-attachment",
            "which is not enrolled in ambient",
        ),
        # An unknown value in one resource does not stop the policy judging the others.
        (
            [
                (PA, _pa("istio-system", "STRICT")),
                (PA, _pa("ns-b", "STRICT", UNKNOWN_STRING_VALUE)),
                (NAMESPACE, _ambient("ns-a")),
                (PA, _pa("ns-a", "DISABLE")),
            ],
            "mesh-mtls-strict",
            'sets DISABLE in ambient namespace "ns-a"',
        ),
    ],
)
def test_what_is_known_is_still_judged(resources: Resources, policy: str, fragment: str) -> None:
    found = stack_diagnostics(*resources)
    assert {p for p, message, _ in found if fragment in message} == {policy}, found
