"""Program -> policy bridge: every committed stack, as the real program renders it, passes every mandatory
policy of its own policy config, and targeted mutations are each caught by exactly the right policy.

Mutations change the real rendering: through a stack setting wherever the program can express the change
(PERMISSIVE mesh mTLS, the PERMISSIVE rollout phase of `ns-test`, node-exporter's privileged namespace),
else by editing or dropping real registrations (a Namespace without its enforce label or its reason, a
privileged or unconfined test-app container, an L7 AuthorizationPolicy attached by selector, a missing
waypoint or PeerAuthentication). Only what the program never creates (a workload-selector PeerAuthentication)
is added as a synthetic registration.
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
from meshlab_policy.workloads import pod_template

# Kinds as the pack recognises them (group, kind), whatever type token the program registers them with.
NAMESPACE = (CORE_GROUP, "Namespace")
PEER_AUTHENTICATION = (ISTIO_SECURITY_GROUP, "PeerAuthentication")
ROOT_NAMESPACE = "istio-system"
APP_NAMESPACE = "ns-test"
# The namespaces the platform and app layers create, and those of them exempted (with a reason) from restricted.
REAL_NAMESPACES = ("istio-system", "metallb-system", "nfs-provisioner", "monitoring", "kyverno", APP_NAMESPACE)
EXEMPT_NAMESPACES = ("istio-system", "metallb-system", "nfs-provisioner")
MIN_RESOURCES = 100


def check(
    registrations: list[Registration], stack: str = "lab", pack_config: dict[str, Any] | None = None
) -> list[Violation]:
    """Every policy over `registrations`, with the stack's committed policy config (or `pack_config`)."""
    resources = policy_resources(Rendering(stack, registrations))
    return run_policies(resources, resolve(pack_config or load_pack_config(stack_config_path(stack))))


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


def then(*mutations: Mutate) -> Mutate:
    def mutate(registrations: list[Registration]) -> list[Registration]:
        for each in mutations:
            registrations = each(registrations)
        return registrations

    return mutate


def synthetic(api_version: str, kind: str, name: str, namespace: str, spec: dict[str, Any]) -> Registration:
    """A registration of something the program never creates, shaped like the program's own."""
    group, _, version = api_version.rpartition("/")
    type_ = f"kubernetes:{group or CORE_GROUP}/{version}:{kind}"
    return Registration(
        urn=f"urn:pulumi:lab::meshlab::meshlab:apps:WebTest${type_}::synthetic-{name}",
        type=type_,
        name=f"synthetic-{name}",
        parent="",
        custom=True,
        dependencies=[],
        property_dependencies={},
        additional_secret_outputs=[],
        inputs={
            "apiVersion": api_version,
            "kind": kind,
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec,
        },
        secret_paths=[],
        delete_before_replace=False,
    )


# Violations, compared exactly -------------------------------------------------------------------------


Expected = tuple[tuple[str, str], ...]  # (policy, a fragment of its message), one pair per violation
MTLS_POLICIES = ("peer-authentication-strict", "mesh-mtls-strict")


def assert_exactly(violations: list[Violation], expected: Expected) -> None:
    """One mandatory violation per expected (policy, fragment) pair, and nothing else."""
    found = [(v.policy, v.message) for v in violations]
    assert len(violations) == len(expected), found
    assert all(v.mandatory for v in violations), found
    for policy, fragment in expected:
        hits = [message for name, message in found if name == policy and fragment in message]
        assert len(hits) == 1, (policy, fragment, found)


# The committed stacks ---------------------------------------------------------------------------------

MESH_WIDE = matching(PEER_AUTHENTICATION, "default", ROOT_NAMESPACE)
APP_MTLS = matching(PEER_AUTHENTICATION, "default", APP_NAMESPACE)
WEB = matching(("apps", "Deployment"), "web-test", APP_NAMESPACE)
WEB_POLICY = matching((ISTIO_SECURITY_GROUP, "AuthorizationPolicy"), "web-test-allowed-requests", APP_NAMESPACE)
WAYPOINT = matching(("gateway.networking.k8s.io", "Gateway"), "waypoint", APP_NAMESPACE)


def _named(name: str) -> Callable[[Registration], bool]:
    return lambda registration: registration.name == name


KIALI = _named("kiali-release")


@pytest.mark.parametrize("stack", STACKS)
def test_each_rendered_stack_passes_every_mandatory_policy(rendered, stack):
    registrations = rendered[stack].registrations
    resources = policy_resources(rendered[stack])
    # Guards against a vacuous pass: the whole stack is checked, Kubernetes layers and the app included.
    assert len(resources) > MIN_RESOURCES
    assert set(REAL_NAMESPACES) <= {r.object_name for r in resources if r.is_kind(*NAMESPACE)}
    for match in (MESH_WIDE, APP_MTLS):
        assert the_one(registrations, match).inputs["spec"] == {"mtls": {"mode": "STRICT"}}
    assert istio_deployed(resources)  # so the stack-level mTLS policy really judged this stack
    assert any(pod_template(r) is not None for r in resources if r.namespace == APP_NAMESPACE)  # and Pod Security

    violations = run_policies(resources, resolve(load_pack_config(stack_config_path(stack))))
    assert [(v.policy, v.urn, v.message) for v in violations if v.mandatory] == []


def test_the_lab_renders_an_anonymous_kiali_that_the_view_only_policy_passes(lab):
    """Not vacuous: the lab's Kiali is the anonymous case the policy exists for, and it is judged."""
    kiali = the_one(lab.registrations, KIALI)
    assert kiali.inputs["values"]["auth"]["strategy"] == "anonymous"
    levels = load_pack_config(stack_config_path("lab"))
    assert levels["kiali-anonymous-view-only"] == "mandatory"
    assert [v for v in check(lab.registrations) if v.policy == "kiali-anonymous-view-only"] == []


# Mutations the program can express: stack settings ----------------------------------------------------


def test_a_permissive_mesh_is_caught_by_both_mtls_policies(rendered, render_with):
    permissive = render_with({"meshlab:meshMtlsMode": "PERMISSIVE"})
    # The same resources as the committed lab, the mesh-wide policy's mode alone changed.
    assert [r.urn for r in permissive.resources()] == [r.urn for r in rendered["lab"].resources()]
    mesh_wide = the_one(permissive.registrations, MESH_WIDE)
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

    # ns-test stays covered by its own STRICT policy; without it, the permissive mesh leaves it uncovered.
    assert_exactly(
        check(drop(APP_MTLS)(permissive.registrations)),
        (
            ("peer-authentication-strict", 'PeerAuthentication "istio-system/default" sets mtls.mode PERMISSIVE'),
            ("mesh-mtls-strict", "is mesh-wide with mtls.mode PERMISSIVE"),
            ("mesh-mtls-strict", 'ambient namespace "ns-test" is not covered by STRICT mTLS'),
        ),
    )


def test_the_permissive_rollout_phase_needs_the_migration_allow_list(render_with):
    """Rollout phase 2 enrols ns-test on PERMISSIVE: the pack blocks it unless the stack's policy config lists
    the namespace in mtlsMigrationAllowList."""
    phase_two = render_with({"meshlab:rolloutPhase": 2})
    app_mtls = the_one(phase_two.registrations, APP_MTLS)
    assert app_mtls.inputs["spec"] == {"mtls": {"mode": "PERMISSIVE"}}
    assert the_one(phase_two.registrations, MESH_WIDE).inputs["spec"] == {"mtls": {"mode": "STRICT"}}
    violations = check(phase_two.registrations)
    assert_exactly(
        violations,
        (
            ("peer-authentication-strict", 'PeerAuthentication "ns-test/default" sets mtls.mode PERMISSIVE'),
            ("mesh-mtls-strict", 'ambient namespace "ns-test" is not covered by STRICT mTLS'),
        ),
    )

    pack_config = load_pack_config(stack_config_path("lab"))
    allowance = [{"namespace": APP_NAMESPACE, "reason": "rollout phase 2: workloads join the mesh before STRICT"}]
    for policy in MTLS_POLICIES:
        pack_config[policy] = {"enforcementLevel": pack_config[policy], "mtlsMigrationAllowList": allowance}
    assert check(phase_two.registrations, pack_config=pack_config) == []


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


def _pod(inputs: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = inputs["spec"]["template"]["spec"]
    return spec


def _without_everywhere(field: str) -> Callable[[dict[str, Any]], None]:
    """Drop a security setting from the pod and from every container, so none inherits it."""

    def change(inputs: dict[str, Any]) -> None:
        pod = _pod(inputs)
        for holder in [pod, *pod["containers"]]:
            holder.get("securityContext", {}).pop(field, None)

    return change


def _mtls_mode(mode: str) -> Callable[[dict[str, Any]], None]:
    return lambda inputs: inputs["spec"]["mtls"].update(mode=mode)


def _anonymous_and_writable(inputs: dict[str, Any]) -> None:
    values = inputs["values"]
    values["auth"]["strategy"] = "anonymous"
    values["deployment"]["view_only_mode"] = False


@dataclass(frozen=True)
class Mutation:
    mutate: Mutate
    expected: Expected


MUTATIONS: dict[str, Mutation] = {
    "privileged-container": Mutation(
        edit(WEB, lambda i: _pod(i)["containers"][0]["securityContext"].update(privileged=True)),
        (("pod-security-restricted", 'privileged: container "nginx"'),),
    ),
    "missing-seccomp": Mutation(
        edit(WEB, _without_everywhere("seccompProfile")),
        (("pod-security-restricted", "seccompProfile_restricted: "),),
    ),
    "missing-run-as-non-root": Mutation(
        edit(WEB, _without_everywhere("runAsNonRoot")),
        (("pod-security-restricted", "runAsNonRoot: "),),
    ),
    # The container sets its own seccomp profile, so dropping the pod's leaves it confined.
    "pod-seccomp-only-dropped": Mutation(edit(WEB, lambda i: _pod(i)["securityContext"].pop("seccompProfile")), ()),
    "l7-authorization-by-selector": Mutation(
        edit(WEB_POLICY, lambda i: i["spec"].update(targetRefs=[], selector={"matchLabels": {"app": "web-test"}})),
        (("ambient-waypoint-attachment", "attaches through a selector"),),
    ),
    "missing-waypoint": Mutation(
        drop(WAYPOINT),
        (("ambient-waypoint-attachment", 'namespace "ns-test" uses waypoint "waypoint" but the stack has no Gateway'),),
    ),
    # No PeerAuthentication at all, while Istio is deployed (the real releases): ns-test is left uncovered.
    "ambient-namespace-without-strict": Mutation(
        then(drop(MESH_WIDE), drop(APP_MTLS)),
        (
            ("mesh-mtls-strict", 'there is no mesh-wide PeerAuthentication (no selector) in "istio-system"'),
            ("mesh-mtls-strict", 'ambient namespace "ns-test" is not covered by STRICT mTLS'),
        ),
    ),
    # ns-test's own STRICT policy keeps it covered without the mesh-wide one, and the mesh-wide one without it.
    "mesh-wide-policy-dropped": Mutation(
        drop(MESH_WIDE),
        (("mesh-mtls-strict", 'there is no mesh-wide PeerAuthentication (no selector) in "istio-system"'),),
    ),
    "namespace-policy-dropped": Mutation(drop(APP_MTLS), ()),
    # A mesh-wide policy without a mode means Istio's default, PERMISSIVE.
    "mesh-wide-mode-unset": Mutation(
        edit(MESH_WIDE, lambda i: i["spec"].pop("mtls")),
        (("mesh-mtls-strict", 'PeerAuthentication "istio-system/default" is mesh-wide with mtls.mode unset'),),
    ),
    "permissive-workload-policy": Mutation(
        add(
            synthetic(
                "security.istio.io/v1",
                "PeerAuthentication",
                "web-test",
                APP_NAMESPACE,
                {"selector": {"matchLabels": {"app": "web-test"}}, "mtls": {"mode": "PERMISSIVE"}},
            )
        ),
        (("peer-authentication-strict", 'PeerAuthentication "ns-test/web-test" sets mtls.mode PERMISSIVE'),),
    ),
    # An anonymous Kiali with the chart's writable ClusterRole: anyone on the ingress edits mesh policy.
    "kiali-anonymous-writable": Mutation(
        edit(KIALI, _anonymous_and_writable),
        (("kiali-anonymous-view-only", 'Kiali release "istio-system/kiali" lets anyone in (auth.strategy anonymous)'),),
    ),
    "disable-in-ambient-namespace": Mutation(
        edit(APP_MTLS, _mtls_mode("DISABLE")),
        (
            ("peer-authentication-strict", 'PeerAuthentication "ns-test/default" sets mtls.mode DISABLE'),
            ("mesh-mtls-strict", 'ambient namespace "ns-test" is not covered by STRICT mTLS'),
            ("mesh-mtls-strict", 'sets DISABLE in ambient namespace "ns-test": ambient does not support DISABLE'),
        ),
    ),
}


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("mutation", MUTATIONS)
def test_each_mutation_of_the_real_stack_is_caught_by_its_policy(rendered, stack, mutation):
    case = MUTATIONS[mutation]
    assert_exactly(check(case.mutate(rendered[stack].registrations), stack), case.expected)
