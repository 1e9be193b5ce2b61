"""Program -> policy bridge: every committed stack, as the real program renders it, passes every mandatory
policy of its own policy config, and targeted mutations are each caught by exactly the right policy.

Mutations change the real rendering wherever the program can express them: a stack setting the program
renders (PERMISSIVE mesh mTLS, node-exporter), or an edit of a real registration (a Namespace without its
enforce label or its reason). What the program does not build yet, the test app in `ns-test` (an ambient
namespace, its waypoint, a Deployment and an L7 AuthorizationPolicy), is added to the real rendering as
synthetic registrations; it reuses the real mesh-wide PeerAuthentication and Istio releases.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import pytest

from tests.conftest import STACKS
from tools.plan import policy_resources
from tools.render import Registration, Rendering

# isort: split
from meshlab_policy.engine import Violation, load_pack_config, resolve, run_policies, stack_config_path
from meshlab_policy.kube import CORE_GROUP, kube_type
from meshlab_policy.mesh import ISTIO_SECURITY_GROUP, istio_deployed
from meshlab_policy.settings import ENFORCE_LABEL, REASON_ANNOTATION

# Kinds as the pack recognises them (group, kind), whatever type token the program registers them with.
NAMESPACE = (CORE_GROUP, "Namespace")
PEER_AUTHENTICATION = (ISTIO_SECURITY_GROUP, "PeerAuthentication")
ROOT_NAMESPACE = "istio-system"
# The namespaces the platform layers create, and those of them exempted (with a reason) from restricted.
REAL_NAMESPACES = ("istio-system", "metallb-system", "nfs-provisioner", "monitoring", "kyverno")
EXEMPT_NAMESPACES = ("istio-system", "metallb-system", "nfs-provisioner")
APP_NAMESPACE = "ns-test"
MIN_RESOURCES = 100


def check(registrations: list[Registration], stack: str = "lab") -> list[Violation]:
    """Every policy over `registrations`, with the stack's committed policy config."""
    resources = policy_resources(Rendering(stack, registrations))
    return run_policies(resources, resolve(load_pack_config(stack_config_path(stack))))


def _metadata(registration: Registration) -> dict[str, Any]:
    metadata: dict[str, Any] = registration.inputs.get("metadata") or {}
    return metadata


def matching(kind: tuple[str, str], name: str, namespace: str = "") -> Callable[[Registration], bool]:
    """A registration the pack sees as `kind` (group, kind) whose object is `namespace/name` (no namespace:
    cluster-scoped)."""

    def match(registration: Registration) -> bool:
        kube = kube_type(registration.type)
        metadata = _metadata(registration)
        return (
            kube is not None
            and (kube.group, kube.kind) == kind
            and metadata.get("name") == name
            and metadata.get("namespace", "") == namespace
        )

    return match


def the_one(registrations: list[Registration], match: Callable[[Registration], bool]) -> Registration:
    found = [r for r in registrations if match(r)]
    assert len(found) == 1, f"expected exactly one match, found {[r.urn for r in found]}"
    return found[0]


Mutate = Callable[[list[Registration]], list[Registration]]


def edit(match: Callable[[Registration], bool], change: Callable[[dict[str, Any]], None]) -> Mutate:
    """Edit a copy of the inputs of the one registration `match` selects (the fixture stays untouched)."""

    def mutate(registrations: list[Registration]) -> list[Registration]:
        target = the_one(registrations, match)
        inputs = copy.deepcopy(target.inputs)
        change(inputs)
        assert inputs != target.inputs, "the mutation changed nothing"
        return [replace(r, inputs=inputs) if r is target else r for r in registrations]

    return mutate


def drop(match: Callable[[Registration], bool]) -> Mutate:
    def mutate(registrations: list[Registration]) -> list[Registration]:
        target = the_one(registrations, match)
        return [r for r in registrations if r is not target]

    return mutate


def add(extra: Registration) -> Mutate:
    return lambda registrations: [*registrations, extra]


# The test app (not built by the program yet) ----------------------------------------------------------


def synthetic(
    api_version: str, kind: str, name: str, namespace: str, spec: dict[str, Any] | None = None
) -> Registration:
    group, _, version = api_version.rpartition("/")
    type_ = f"kubernetes:{group or 'core'}/{version}:{kind}"
    metadata = {"name": name, "namespace": namespace} if namespace else {"name": name}
    inputs: dict[str, Any] = {"apiVersion": api_version, "kind": kind, "metadata": metadata}
    if spec is not None:
        inputs["spec"] = spec
    pulumi_name = f"{namespace}-{name}" if namespace else name
    return Registration(
        urn=f"urn:pulumi:lab::meshlab::meshlab:apps:TestApp${type_}::{pulumi_name}",
        type=type_,
        name=pulumi_name,
        parent="",
        custom=True,
        dependencies=[],
        property_dependencies={},
        additional_secret_outputs=[],
        inputs=inputs,
        secret_paths=[],
        delete_before_replace=False,
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


def app_layer() -> list[Registration]:
    """What the app layer is meant to add to the real stack: an ambient, restricted namespace served by
    its waypoint, a hardened Deployment and an L7 AuthorizationPolicy bound to the waypoint. No
    PeerAuthentication: the real mesh-wide STRICT one covers the namespace."""
    app_namespace = synthetic("v1", "Namespace", APP_NAMESPACE, "")
    app_namespace.inputs["metadata"]["labels"] = {
        ENFORCE_LABEL: "restricted",
        "istio.io/dataplane-mode": "ambient",
        "istio.io/use-waypoint": "waypoint",
    }
    return [
        app_namespace,
        synthetic(
            "gateway.networking.k8s.io/v1",
            "Gateway",
            "waypoint",
            APP_NAMESPACE,
            {"gatewayClassName": "istio-waypoint", "listeners": [{"name": "mesh", "port": 15008, "protocol": "HBONE"}]},
        ),
        synthetic(
            "apps/v1",
            "Deployment",
            "web",
            APP_NAMESPACE,
            {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": copy.deepcopy(WEB_POD)},
            },
        ),
        synthetic(
            "security.istio.io/v1",
            "AuthorizationPolicy",
            "web",
            APP_NAMESPACE,
            {"targetRefs": [WAYPOINT_REF], "action": "ALLOW", "rules": GET_ROOT_ONLY},
        ),
    ]


def with_app(rendering: Rendering) -> list[Registration]:
    return [*rendering.registrations, *app_layer()]


# Violations, compared exactly -------------------------------------------------------------------------


Expected = tuple[tuple[str, str], ...]  # (policy, a fragment of its message), one pair per violation


def assert_exactly(violations: list[Violation], expected: Expected) -> None:
    """One mandatory violation per expected (policy, fragment) pair, and nothing else."""
    found = [(v.policy, v.message) for v in violations]
    assert len(violations) == len(expected), found
    assert all(v.mandatory for v in violations), found
    for policy, fragment in expected:
        hits = [message for name, message in found if name == policy and fragment in message]
        assert len(hits) == 1, (policy, fragment, found)


# The committed stacks ---------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_each_rendered_stack_passes_every_mandatory_policy(rendered, stack):
    resources = policy_resources(rendered[stack])
    # Guards against a vacuous pass: the whole stack is checked, Kubernetes layers included.
    assert len(resources) > MIN_RESOURCES
    namespaces = {r.object_name for r in resources if r.is_kind(*NAMESPACE)}
    assert set(REAL_NAMESPACES) <= namespaces
    mesh_wide = [r for r in resources if r.is_kind(*PEER_AUTHENTICATION) and r.namespace == ROOT_NAMESPACE]
    assert [(r.namespace, r.object_name, r.spec["mtls"]["mode"]) for r in mesh_wide] == [
        (ROOT_NAMESPACE, "default", "STRICT")
    ]
    assert istio_deployed(resources)  # so the stack-level mTLS policy really judged this stack

    violations = run_policies(resources, resolve(load_pack_config(stack_config_path(stack))))
    assert [(v.policy, v.urn, v.message) for v in violations if v.mandatory] == []


@pytest.mark.parametrize("stack", STACKS)
def test_the_app_layer_on_each_real_stack_passes_every_policy(rendered, stack):
    registrations = with_app(rendered[stack])
    # The program does not build ns-test yet; once it does, its real objects replace this synthetic layer.
    assert not any(matching(NAMESPACE, APP_NAMESPACE)(r) for r in rendered[stack].registrations), (
        "the program builds ns-test now: drop app_layer() and mutate the program's own ns-test objects"
    )
    assert check(registrations, stack) == []


# Mutations the program can express: stack settings ----------------------------------------------------


def test_a_permissive_mesh_is_caught_by_both_mtls_policies(rendered, render_with):
    permissive = render_with({"meshlab:meshMtlsMode": "PERMISSIVE"})
    # The same resources as the committed lab, the mesh-wide policy's mode alone changed.
    assert [r.urn for r in permissive.resources()] == [r.urn for r in rendered["lab"].resources()]
    mesh_wide = the_one(permissive.registrations, matching(PEER_AUTHENTICATION, "default", ROOT_NAMESPACE))
    assert mesh_wide.inputs["spec"] == {"mtls": {"mode": "PERMISSIVE"}}

    violations = check(permissive.registrations)
    assert_exactly(
        violations,
        (
            ("peer-authentication-strict", 'PeerAuthentication "istio-system/default" sets mtls.mode PERMISSIVE'),
            ("mesh-mtls-strict", 'PeerAuthentication "istio-system/default" is mesh-wide with mtls.mode PERMISSIVE'),
        ),
    )
    assert {v.urn for v in violations} == {mesh_wide.urn}

    # An ambient namespace under that mesh is left without STRICT coverage as well.
    assert_exactly(
        check([*permissive.registrations, *app_layer()]),
        (
            ("peer-authentication-strict", "sets mtls.mode PERMISSIVE"),
            ("mesh-mtls-strict", "is mesh-wide with mtls.mode PERMISSIVE"),
            ("mesh-mtls-strict", 'ambient namespace "ns-test" is not covered by STRICT mTLS'),
        ),
    )


def test_node_exporter_needs_a_monitoring_exemption_the_committed_configs_do_not_give(render_with):
    """node-exporter turns `monitoring` privileged (with its reason); no committed policy config exempts it."""
    rendering = render_with({"meshlab:nodeExporterEnabled": True})
    monitoring = the_one(rendering.registrations, matching(NAMESPACE, "monitoring"))
    assert monitoring.inputs["metadata"]["labels"][ENFORCE_LABEL] == "privileged"
    assert monitoring.inputs["metadata"]["annotations"][REASON_ANNOTATION]
    for stack in STACKS:
        violations = check(rendering.registrations, stack)
        assert_exactly(
            violations,
            (("namespace-pod-security-labels", 'namespace "monitoring" enforces privileged but is not in exempt'),),
        )
        assert violations[0].urn == monitoring.urn


# Mutations of real registrations ----------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("name", REAL_NAMESPACES)
def test_a_real_namespace_without_its_enforce_label_is_caught(rendered, stack, name):
    match = matching(NAMESPACE, name)
    real = the_one(rendered[stack].registrations, match)
    mutated = edit(match, lambda inputs: inputs["metadata"]["labels"].pop(ENFORCE_LABEL))(rendered[stack].registrations)
    violations = check(mutated, stack)
    assert_exactly(violations, (("namespace-pod-security-labels", f'namespace "{name}" has no {ENFORCE_LABEL} label'),))
    assert violations[0].urn == real.urn


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("name", EXEMPT_NAMESPACES)
def test_a_real_exempt_namespace_without_its_reason_is_caught(rendered, stack, name):
    match = matching(NAMESPACE, name)
    real = the_one(rendered[stack].registrations, match)
    assert real.inputs["metadata"]["labels"][ENFORCE_LABEL] in {"privileged", "baseline"}
    mutated = edit(match, lambda inputs: inputs["metadata"].pop("annotations"))(rendered[stack].registrations)
    violations = check(mutated, stack)
    assert_exactly(violations, (("namespace-pod-security-labels", f'namespace "{name}" enforces'),))
    assert "without saying why" in violations[0].message
    assert violations[0].urn == real.urn


# Mutations of the app layer on the real stack ---------------------------------------------------------


def _web_pod(inputs: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = inputs["spec"]["template"]["spec"]
    return spec


WEB = matching(("apps", "Deployment"), "web", APP_NAMESPACE)
WEB_POLICY = matching((ISTIO_SECURITY_GROUP, "AuthorizationPolicy"), "web", APP_NAMESPACE)
WAYPOINT = matching(("gateway.networking.k8s.io", "Gateway"), "waypoint", APP_NAMESPACE)
MESH_WIDE = matching(PEER_AUTHENTICATION, "default", ROOT_NAMESPACE)


def _app_peer_authentication(name: str, spec: dict[str, Any]) -> Registration:
    return synthetic("security.istio.io/v1", "PeerAuthentication", name, APP_NAMESPACE, spec)


@dataclass(frozen=True)
class Mutation:
    mutate: Mutate
    expected: Expected


APP_MUTATIONS: dict[str, Mutation] = {
    "privileged-container": Mutation(
        edit(WEB, lambda i: _web_pod(i)["containers"][0]["securityContext"].update(privileged=True)),
        (("pod-security-restricted", 'privileged: container "web"'),),
    ),
    "missing-seccomp": Mutation(
        edit(WEB, lambda i: _web_pod(i)["securityContext"].pop("seccompProfile")),
        (("pod-security-restricted", "seccompProfile_restricted: "),),
    ),
    "missing-run-as-non-root": Mutation(
        edit(WEB, lambda i: _web_pod(i)["securityContext"].pop("runAsNonRoot")),
        (("pod-security-restricted", "runAsNonRoot: "),),
    ),
    "l7-authorization-by-selector": Mutation(
        edit(WEB_POLICY, lambda i: i["spec"].update(targetRefs=[], selector={"matchLabels": {"app": "web"}})),
        (("ambient-waypoint-attachment", "attaches through a selector"),),
    ),
    "missing-waypoint": Mutation(
        drop(WAYPOINT),
        (("ambient-waypoint-attachment", 'namespace "ns-test" uses waypoint "waypoint" but the stack has no Gateway'),),
    ),
    # Istio is still deployed (the real releases), so the missing mesh-wide policy leaves ns-test uncovered.
    "ambient-namespace-without-strict": Mutation(
        drop(MESH_WIDE),
        (
            ("mesh-mtls-strict", 'there is no mesh-wide PeerAuthentication (no selector) in "istio-system"'),
            ("mesh-mtls-strict", 'ambient namespace "ns-test" is not covered by STRICT mTLS'),
        ),
    ),
    # A mesh-wide policy without a mode means Istio's default, PERMISSIVE.
    "mesh-wide-mode-unset": Mutation(
        edit(MESH_WIDE, lambda i: i["spec"].pop("mtls")),
        (
            ("mesh-mtls-strict", 'PeerAuthentication "istio-system/default" is mesh-wide with mtls.mode unset'),
            ("mesh-mtls-strict", 'ambient namespace "ns-test" is not covered by STRICT mTLS'),
        ),
    ),
    "permissive-workload-policy": Mutation(
        add(
            _app_peer_authentication(
                "web", {"selector": {"matchLabels": {"app": "web"}}, "mtls": {"mode": "PERMISSIVE"}}
            )
        ),
        (("peer-authentication-strict", 'PeerAuthentication "ns-test/web" sets mtls.mode PERMISSIVE'),),
    ),
    # A namespace-wide PERMISSIVE policy in an ambient namespace is both a plaintext policy and a gap in coverage.
    "permissive-ambient-namespace": Mutation(
        add(_app_peer_authentication("default", {"mtls": {"mode": "PERMISSIVE"}})),
        (
            ("peer-authentication-strict", 'PeerAuthentication "ns-test/default" sets mtls.mode PERMISSIVE'),
            ("mesh-mtls-strict", 'ambient namespace "ns-test" is not covered by STRICT mTLS'),
        ),
    ),
    "disable-in-ambient-namespace": Mutation(
        add(_app_peer_authentication("default", {"mtls": {"mode": "DISABLE"}})),
        (
            ("peer-authentication-strict", 'PeerAuthentication "ns-test/default" sets mtls.mode DISABLE'),
            ("mesh-mtls-strict", 'ambient namespace "ns-test" is not covered by STRICT mTLS'),
            ("mesh-mtls-strict", 'sets DISABLE in ambient namespace "ns-test": ambient does not support DISABLE'),
        ),
    ),
}


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("mutation", APP_MUTATIONS)
def test_each_app_mutation_on_the_real_stack_is_caught_by_its_policy(rendered, stack, mutation):
    case = APP_MUTATIONS[mutation]
    assert_exactly(check(case.mutate(with_app(rendered[stack])), stack), case.expected)
