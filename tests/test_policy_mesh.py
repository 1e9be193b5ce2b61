"""Istio ambient rules (meshlab_policy.mesh): which mode covers a namespace, and what each finding says.

Every test here pairs a case that must be flagged with one that must not, so a rule that flags
everything, or nothing, fails."""

from __future__ import annotations

import json

import pytest

import tools.policy  # noqa: F401 - importing it puts policy-pack on sys.path
from tests.test_policy_rules import AMBIENT, DEFAULTS, ISTIOD, k8s, namespace, peer_auth

# isort: split
from meshlab_policy.kube import UNKNOWN, Resource
from meshlab_policy.mesh import (
    validate_ambient_waypoints,
    validate_mesh_mtls,
    validate_peer_authentication_effective,
    validate_peer_authentication_strict,
)
from meshlab_policy.settings import MigrationAllowance, PolicySettings

MESH_WIDE = peer_auth("istio-system", "default", "STRICT")
APP = namespace("ns-test", **AMBIENT)


def messages(resources: list[Resource], settings: PolicySettings = DEFAULTS) -> list[str]:
    return [violation.message for violation in validate_mesh_mtls(resources, settings)]


# Which mode covers an ambient namespace --------------------------------------------------------


@pytest.mark.parametrize("mode", ["UNSET", "unset", None])
def test_a_namespace_wide_policy_without_a_mode_inherits_the_mesh_wide_strict(mode):
    """mtls.mode UNSET (or no mtls at all) means "inherit from the parent": STRICT from the mesh-wide policy."""
    inherits = peer_auth("ns-test", "ns-wide", mode)
    assert validate_mesh_mtls([ISTIOD, MESH_WIDE, APP, inherits], DEFAULTS) == []
    # Without the mesh-wide policy there is nothing to inherit: the namespace is not covered.
    uncovered = [v for v in validate_mesh_mtls([ISTIOD, APP, inherits], DEFAULTS) if v.urn == APP.urn]
    assert [v.message for v in uncovered] == [
        'ambient namespace "ns-test" is not covered by STRICT mTLS (the mesh-wide PeerAuthentication gives no '
        "mode, which means PERMISSIVE): make it STRICT, or list the namespace in mtlsMigrationAllowList while "
        "it migrates"
    ]


def test_a_namespace_wide_strict_policy_covers_its_namespace_under_a_weak_mesh_wide_one():
    permissive = peer_auth("istio-system", "default", "PERMISSIVE")
    strict_here = peer_auth("ns-test", "ns-wide", "STRICT")
    found = validate_mesh_mtls([ISTIOD, permissive, APP, strict_here], DEFAULTS)
    assert [v.urn for v in found] == [permissive.urn]
    # A workload-selector policy covers only its workloads, never the namespace.
    selected = peer_auth("ns-test", "web", "STRICT", selector=True)
    found = validate_mesh_mtls([ISTIOD, permissive, APP, selected], DEFAULTS)
    assert sorted(str(v.urn) for v in found) == sorted([str(permissive.urn), str(APP.urn)])


def test_a_namespace_wide_weak_policy_names_itself_as_the_origin():
    weakened = peer_auth("ns-test", "ns-wide", "PERMISSIVE")
    assert messages([ISTIOD, MESH_WIDE, APP, weakened]) == [
        'ambient namespace "ns-test" is not covered by STRICT mTLS (its namespace-wide PeerAuthentication gives '
        "PERMISSIVE): make it STRICT, or list the namespace in mtlsMigrationAllowList while it migrates"
    ]


def test_a_mesh_wide_policy_with_mode_unset_is_not_strict():
    unset = peer_auth("istio-system", "default", "UNSET")
    found = validate_mesh_mtls([ISTIOD, unset], DEFAULTS)
    assert [(v.message, v.urn) for v in found] == [
        ('PeerAuthentication "istio-system/default" is mesh-wide with mtls.mode UNSET: set it to STRICT', unset.urn)
    ]
    empty = peer_auth("istio-system", "default", None)
    assert messages([ISTIOD, empty]) == [
        'PeerAuthentication "istio-system/default" is mesh-wide with mtls.mode unset: set it to STRICT'
    ]
    assert validate_mesh_mtls([ISTIOD, peer_auth("istio-system", "default", "strict")], DEFAULTS) == []


def test_an_allow_listed_namespace_may_stay_uncovered_while_it_migrates():
    allow = PolicySettings(mtls_migration={"ns-test": MigrationAllowance("ns-test", "moving off VMs")})
    weakened = peer_auth("ns-test", "ns-wide", "PERMISSIVE")
    assert validate_mesh_mtls([ISTIOD, MESH_WIDE, APP, weakened], allow) == []
    other = namespace("other", **AMBIENT)
    other_weak = peer_auth("other", "ns-wide", "PERMISSIVE")
    assert [v.urn for v in validate_mesh_mtls([ISTIOD, MESH_WIDE, other, other_weak], allow)] == [other.urn]


def test_the_messages_of_the_mesh_wide_rules():
    assert messages([ISTIOD]) == [
        'Istio is deployed but there is no mesh-wide PeerAuthentication (no selector) in "istio-system": '
        "add one with mtls.mode STRICT"
    ]
    second = peer_auth("istio-system", "second", "STRICT")
    assert messages([ISTIOD, MESH_WIDE, second]) == [
        'PeerAuthentication "istio-system/default" is one of 2 mesh-wide PeerAuthentications in "istio-system": '
        "Istio honours only the oldest, keep exactly one",
        'PeerAuthentication "istio-system/second" is one of 2 mesh-wide PeerAuthentications in "istio-system": '
        "Istio honours only the oldest, keep exactly one",
    ]
    disabled = peer_auth("ns-test", "workload", "DISABLE", selector=True)
    assert messages([ISTIOD, MESH_WIDE, APP, disabled]) == [
        'PeerAuthentication "ns-test/workload" sets DISABLE in ambient namespace "ns-test": ambient does not '
        "support DISABLE and ignores the policy; to turn mTLS off, take the namespace out of ambient "
        "(istio.io/dataplane-mode)"
    ]
    # DISABLE outside ambient is a plaintext mode (peer-authentication-strict), not an ambient problem.
    assert messages([ISTIOD, MESH_WIDE, namespace("ns-test"), disabled]) == []


def test_ambient_namespaces_are_reported_in_name_order():
    names = ["zeta", "alpha", "mid"]
    found = validate_mesh_mtls([ISTIOD, *(namespace(name, **AMBIENT) for name in names)], DEFAULTS)
    reported = [v.message.split('"')[1] for v in found if v.message.startswith("ambient namespace")]
    assert reported == sorted(names)


def test_a_namespace_labelled_for_another_dataplane_is_not_ambient():
    sidecar = namespace("ns-test", **{"istio.io/dataplane-mode": "none"})
    # Only the missing mesh-wide policy (no URN) is reported, not the namespace.
    assert [v.urn for v in validate_mesh_mtls([ISTIOD, sidecar], DEFAULTS)] == [None]
    assert [v.urn for v in validate_mesh_mtls([ISTIOD, APP], DEFAULTS)] == [None, APP.urn]


# PeerAuthentication on its own -----------------------------------------------------------------


def test_the_messages_of_the_plaintext_rule():
    (mode,) = validate_peer_authentication_strict(peer_auth("ns-test", "p", "PERMISSIVE"), DEFAULTS)
    assert mode == (
        'PeerAuthentication "ns-test/p" sets mtls.mode PERMISSIVE, which accepts plaintext: use STRICT, or list '
        'namespace "ns-test" in mtlsMigrationAllowList with a reason while it migrates'
    )
    ports = peer_auth("ns-test", "p", "STRICT", selector=True, ports={"9090": "DISABLE", "8080": "PERMISSIVE"})
    (port,) = validate_peer_authentication_strict(ports, DEFAULTS)
    assert port.startswith('PeerAuthentication "ns-test/p" accepts plaintext on ports 8080=PERMISSIVE, 9090=DISABLE: ')


def test_other_kinds_are_not_peer_authentications():
    other = k8s("security.istio.io/v1", "AuthorizationPolicy", "p", "ns-test", spec={"mtls": {"mode": "DISABLE"}})
    assert validate_peer_authentication_strict(other, DEFAULTS) == []
    assert validate_peer_authentication_effective(other, DEFAULTS) == []
    wrong_group = k8s("example.com/v1", "PeerAuthentication", "p", "ns-test", spec={"mtls": {"mode": "DISABLE"}})
    assert validate_peer_authentication_strict(wrong_group, DEFAULTS) == []


def test_the_messages_of_the_ignored_settings_rule():
    (old,) = validate_peer_authentication_effective(peer_auth("ns-test", "p", "STRICT", version="v1beta1"), DEFAULTS)
    assert old == 'PeerAuthentication "ns-test/p" uses security.istio.io/v1beta1: use security.istio.io/v1'
    (ports,) = validate_peer_authentication_effective(
        peer_auth("ns-test", "p", "STRICT", ports={"80": "STRICT"}), DEFAULTS
    )
    assert ports == (
        'PeerAuthentication "ns-test/p" sets portLevelMtls without a workload selector: Istio ignores port-level '
        "settings on namespace- and mesh-wide policies"
    )
    (root,) = validate_peer_authentication_effective(peer_auth("istio-system", "p", "STRICT", selector=True), DEFAULTS)
    assert root == (
        'PeerAuthentication "istio-system/p" has a workload selector in the root namespace (istioRootNamespace '
        '"istio-system"), where Istio ignores selector-based policies'
    )


# Waypoints -------------------------------------------------------------------------------------


def waypoint(ns: str, name: str = "waypoint", cls: str = "istio-waypoint") -> Resource:
    return k8s("gateway.networking.k8s.io/v1", "Gateway", name, ns, spec={"gatewayClassName": cls})


def test_the_messages_of_the_waypoint_rules():
    user = namespace("ns-test", **AMBIENT, **{"istio.io/use-waypoint": "waypoint"})
    (missing,) = validate_ambient_waypoints([user], DEFAULTS)
    assert missing.message == (
        'namespace "ns-test" uses waypoint "waypoint" but the stack has no Gateway "waypoint" in namespace '
        '"ns-test": create it (gatewayClassName istio-waypoint)'
    )
    assert missing.urn == user.urn
    (wrong_class,) = validate_ambient_waypoints([user, waypoint("ns-test", cls="istio")], DEFAULTS)
    assert wrong_class.message == (
        'namespace "ns-test" uses waypoint "waypoint", but Gateway "ns-test/waypoint" has gatewayClassName '
        "'istio', not istio-waypoint"
    )
    assert validate_ambient_waypoints([user, waypoint("ns-test")], DEFAULTS) == []
    outside = waypoint("plain")
    (not_ambient,) = validate_ambient_waypoints([namespace("plain"), outside], DEFAULTS)
    assert not_ambient.message == (
        'waypoint Gateway "plain/waypoint" lives in namespace "plain", which is not enrolled in ambient: label it '
        "istio.io/dataplane-mode=ambient"
    )
    assert not_ambient.urn == outside.urn


def test_use_waypoint_none_opts_out_and_an_undeclared_namespace_is_not_judged():
    opted_out = namespace("ns-test", **AMBIENT, **{"istio.io/use-waypoint": "none"})
    assert validate_ambient_waypoints([opted_out], DEFAULTS) == []
    # A Gateway whose namespace the stack does not declare: nothing says it is not ambient.
    assert validate_ambient_waypoints([waypoint("elsewhere")], DEFAULTS) == []
    # A Gateway of another class in a non-ambient namespace is an ordinary gateway.
    assert validate_ambient_waypoints([namespace("plain"), waypoint("plain", cls="istio")], DEFAULTS) == []


def test_the_messages_of_the_l7_binding_rules():
    rules = [{"to": [{"operation": {"methods": ["GET"], "paths": ["/"]}}]}]
    by_selector = k8s(
        "security.istio.io/v1",
        "AuthorizationPolicy",
        "web",
        "ns-test",
        spec={"selector": {"matchLabels": {"app": "web"}}, "rules": rules},
    )
    (selector,) = validate_ambient_waypoints([APP, by_selector], DEFAULTS)
    assert selector.message == (
        'AuthorizationPolicy "ns-test/web" matches L7 attributes (methods, paths) but attaches through a selector, '
        "so ztunnel enforces it and denies all traffic: bind it to the waypoint with targetRefs "
        "(group gateway.networking.k8s.io, kind Gateway) or to a Service"
    )
    namespace_wide = k8s("security.istio.io/v1", "AuthorizationPolicy", "web", "ns-test", spec={"rules": rules})
    (wide,) = validate_ambient_waypoints([APP, namespace_wide], DEFAULTS)
    assert "attaches through no targetRefs (namespace-wide), so ztunnel" in wide.message
    refs = [{"group": "apps", "kind": "Deployment", "name": "web"}]
    wrong = k8s(
        "security.istio.io/v1", "AuthorizationPolicy", "web", "ns-test", spec={"targetRefs": refs, "rules": rules}
    )
    (target,) = validate_ambient_waypoints([APP, wrong], DEFAULTS)
    assert target.message == (
        'AuthorizationPolicy "ns-test/web" targets Deployment/web: L7 policy binds to a waypoint Gateway '
        "(gateway.networking.k8s.io) or a Service"
    )
    single = k8s(
        "security.istio.io/v1",
        "AuthorizationPolicy",
        "web",
        "ns-test",
        spec={"targetRef": {"group": "", "kind": "Service", "name": "web"}, "rules": rules},
    )
    assert validate_ambient_waypoints([APP, single], DEFAULTS) == []


@pytest.mark.parametrize(
    ("rule", "l7"),
    [
        ({"from": [{"source": {"requestPrincipals": ["*"]}}]}, "requestPrincipals"),
        ({"from": [{"source": {"notRequestPrincipals": ["x"]}}]}, "notRequestPrincipals"),
        ({"to": [{"operation": {"notPaths": ["/admin"]}}]}, "notPaths"),
        ({"to": [{"operation": {"hosts": ["a.example"]}}]}, "hosts"),
        ({"when": [{"key": "request.headers[x-user]", "values": ["a"]}]}, "when request.headers[x-user]"),
    ],
)
def test_each_l7_attribute_is_named(rule, l7):
    policy = k8s("security.istio.io/v1", "AuthorizationPolicy", "p", "ns-test", spec={"rules": [rule]})
    (found,) = validate_ambient_waypoints([APP, policy], DEFAULTS)
    assert f"matches L7 attributes ({l7}) but" in found.message


@pytest.mark.parametrize(
    "rule",
    [
        {"from": [{"source": {"principals": ["cluster.local/ns/a/sa/b"], "namespaces": ["a"]}}]},
        {"to": [{"operation": {"ports": ["8080"]}}]},
        {"when": [{"key": "source.ip", "values": ["10.0.0.1"]}]},
        {"from": [{"source": {"requestPrincipals": []}}]},
    ],
)
def test_l4_attributes_are_for_ztunnel(rule):
    policy = k8s("security.istio.io/v1", "AuthorizationPolicy", "p", "ns-test", spec={"rules": [rule]})
    assert validate_ambient_waypoints([APP, policy], DEFAULTS) == []


# What a rule needs to know, and where comparisons must be exact ----------------------------------


def unknown(resource: Resource, field: str) -> Resource:
    """`resource` as a preview shows it before `field` (e.g. "spec") is known."""
    return Resource(resource.type, resource.name, resource.urn, {**resource.props, field: UNKNOWN})


def engine_text(value: str) -> str:
    """A string as the engine hands it over: built at run time, not a literal the compiler shares."""
    parsed: str = json.loads(json.dumps(value))
    return parsed


@pytest.mark.parametrize("field", ["spec", "metadata"])
def test_a_mesh_wide_policy_not_known_yet_may_be_the_strict_one(field):
    assert validate_mesh_mtls([ISTIOD, unknown(MESH_WIDE, field), APP], DEFAULTS) == []
    # Known, the same policy must be STRICT.
    assert messages([ISTIOD, peer_auth("istio-system", "default", "PERMISSIVE")]) != []


def test_a_namespace_not_known_yet_is_not_judged_but_the_known_ones_are():
    labels_unknown = Resource(APP.type, "later", "urn:later", {"metadata": {"name": "later", "labels": UNKNOWN}})
    found = validate_mesh_mtls([ISTIOD, MESH_WIDE, labels_unknown, namespace("known", **AMBIENT)], DEFAULTS)
    assert found == []
    weak = peer_auth("known", "ns-wide", "PERMISSIVE")
    found = validate_mesh_mtls([ISTIOD, MESH_WIDE, labels_unknown, namespace("known", **AMBIENT), weak], DEFAULTS)
    assert [v.urn for v in found] == [namespace("known").urn]


def test_every_ambient_namespace_is_judged_past_an_allow_listed_one():
    allow = PolicySettings(mtls_migration={"aaa": MigrationAllowance("aaa", "migrating")})
    stack = [ISTIOD, MESH_WIDE, *(namespace(name, **AMBIENT) for name in ("aaa", "bbb"))]
    stack += [peer_auth(name, "ns-wide", "PERMISSIVE") for name in ("aaa", "bbb")]
    assert [v.urn for v in validate_mesh_mtls(stack, allow)] == [namespace("bbb").urn]


def test_a_namespace_wide_policy_covers_only_its_own_namespace():
    stack = [ISTIOD, peer_auth("istio-system", "default", "PERMISSIVE"), namespace("aaa", **AMBIENT)]
    stack += [namespace("zzz", **AMBIENT), peer_auth("zzz", "ns-wide", "STRICT")]
    found = validate_mesh_mtls(stack, DEFAULTS)
    assert namespace("aaa").urn in [v.urn for v in found]
    assert namespace("zzz").urn not in [v.urn for v in found]


def test_two_mesh_wide_policies_leave_every_ambient_namespace_uncovered():
    """Which of the two Istio honours (the oldest) is not known before deployment."""
    second = peer_auth("istio-system", "second", "STRICT")
    found = validate_mesh_mtls([ISTIOD, MESH_WIDE, second, APP], DEFAULTS)
    assert [v.urn for v in found] == [MESH_WIDE.urn, second.urn, APP.urn]


def test_only_istio_security_resources_mean_istio_runs():
    for group in ("telemetry.istio.io", "zz.example.com", "networking.istio.io"):
        other = k8s(f"{group}/v1", "Thing", "x", "ns-test")
        assert validate_mesh_mtls([other], DEFAULTS) == [], group


def test_a_selector_policy_outside_the_root_namespace_is_honoured():
    for ns in ("apps", "zzz"):
        policy = peer_auth(ns, "p", "STRICT", selector=True)
        assert validate_peer_authentication_effective(policy, DEFAULTS) == [], ns


@pytest.mark.parametrize("field", ["methods", "notMethods", "paths", "notPaths", "hosts", "notHosts"])
def test_each_l7_operation_field_needs_a_waypoint(field):
    policy = k8s(
        "security.istio.io/v1",
        "AuthorizationPolicy",
        "p",
        "ns-test",
        spec={"rules": [{"to": [{"operation": {field: ["x"]}}]}]},
    )
    (found,) = validate_ambient_waypoints([APP, policy], DEFAULTS)
    assert f"matches L7 attributes ({field}) but" in found.message


def test_l7_policy_may_bind_to_a_service_entry_for_an_egress_waypoint():
    ref = {"group": "networking.istio.io", "kind": "ServiceEntry", "name": "httpbin"}
    rules = [{"to": [{"operation": {"methods": ["GET"]}}]}]
    policy = k8s(
        "security.istio.io/v1", "AuthorizationPolicy", "p", "ns-test", spec={"targetRefs": [ref], "rules": rules}
    )
    assert validate_ambient_waypoints([APP, policy], DEFAULTS) == []


L7 = [{"to": [{"operation": {"methods": ["GET"]}}]}]


def by_selector(ns: str, name: str = "web") -> Resource:
    spec = {"selector": {"matchLabels": {"app": name}}, "rules": L7}
    return k8s("security.istio.io/v1", "AuthorizationPolicy", name, ns, spec=spec)


def test_sidecar_namespaces_are_known_by_either_label_as_the_engine_hands_it_over():
    injected = namespace("legacy", **{"istio-injection": engine_text("enabled")})
    revision = namespace("legacy", **{"istio.io/rev": engine_text("1-27")})
    for sidecars in (injected, revision):
        assert validate_ambient_waypoints([sidecars, by_selector("legacy")], DEFAULTS) == []
    # Istio injects sidecars only for `enabled`: any other value (a typo, `true`) leaves the namespace
    # without them, so its L7 policy is judged as ztunnel would enforce it.
    for value in ("disabled", "true", "yes"):
        not_injected = namespace("legacy", **{"istio-injection": value})
        assert len(validate_ambient_waypoints([not_injected, by_selector("legacy")], DEFAULTS)) == 1, value


def test_l7_policies_in_namespaces_the_stack_does_not_declare():
    """With every Namespace known, an undeclared one is not a sidecar namespace: the policy is judged.
    With one Namespace not known yet, the undeclared one may be it, and nothing is concluded."""
    assert len(validate_ambient_waypoints([APP, by_selector("elsewhere")], DEFAULTS)) == 1
    later = Resource(APP.type, "later", "urn:later", {"metadata": UNKNOWN})
    assert validate_ambient_waypoints([APP, later, by_selector("elsewhere")], DEFAULTS) == []
    # A declared ambient namespace is judged whether or not the others are known yet.
    assert len(validate_ambient_waypoints([APP, later, by_selector("ns-test")], DEFAULTS)) == 1


def test_every_policy_is_judged_past_one_that_is_skipped_or_reported():
    sidecars = namespace("legacy", **{"istio-injection": "enabled"})
    stack = [sidecars, APP, by_selector("legacy"), by_selector("ns-test", "a"), by_selector("ns-test", "b")]
    found = validate_ambient_waypoints(stack, DEFAULTS)
    assert [v.urn for v in found] == [stack[3].urn, stack[4].urn]


def test_a_waypoint_of_any_name_must_exist():
    user = namespace("ns-test", **AMBIENT, **{"istio.io/use-waypoint": "app-waypoint"})
    assert [v.urn for v in validate_ambient_waypoints([user], DEFAULTS)] == [user.urn]
    named = namespace("ns-test", **AMBIENT, **{"istio.io/use-waypoint": engine_text("none")})
    assert validate_ambient_waypoints([named], DEFAULTS) == []


def test_gateways_not_known_yet_may_be_the_waypoint_a_namespace_uses():
    users = [namespace(ns, **AMBIENT, **{"istio.io/use-waypoint": "waypoint"}) for ns in ("aaa", "bbb")]
    later = unknown(waypoint("aaa"), "spec")
    assert validate_ambient_waypoints([*users, later], DEFAULTS) == []
    # A Gateway that is known still has to be of the waypoint class, whatever else is not known yet.
    wrong = waypoint("bbb", cls="kong")
    found = validate_ambient_waypoints([*users, later, wrong], DEFAULTS)
    assert [v.urn for v in found] == [users[1].urn]
    # With every Gateway known, each user without its waypoint is reported, the first not hiding the second.
    assert [v.urn for v in validate_ambient_waypoints(users, DEFAULTS)] == [u.urn for u in users]


def test_only_the_waypoint_class_makes_a_gateway_a_waypoint():
    for cls in ("kong", "istio", "zz"):
        user = namespace("ns-test", **AMBIENT, **{"istio.io/use-waypoint": "waypoint"})
        assert len(validate_ambient_waypoints([user, waypoint("ns-test", cls=cls)], DEFAULTS)) == 1, cls
        assert validate_ambient_waypoints([namespace("plain"), waypoint("plain", cls=cls)], DEFAULTS) == [], cls


def test_each_identity_field_not_known_yet_stops_a_conclusion():
    """A preview may know a PeerAuthentication's namespace but not its name, or the reverse."""
    for field in ("name", "namespace"):
        metadata = {"name": "default", "namespace": "istio-system", field: UNKNOWN}
        partly = Resource(MESH_WIDE.type, "default", MESH_WIDE.urn, {**MESH_WIDE.props, "metadata": metadata})
        # The mesh-wide policy may be this one: nothing is missing yet.
        assert validate_mesh_mtls([ISTIOD, partly], DEFAULTS) == [], field


def test_a_namespace_whose_name_or_labels_are_not_known_yet_may_be_any_namespace():
    policy = by_selector("elsewhere")
    for metadata in ({"name": "later", "labels": UNKNOWN}, {"name": UNKNOWN, "labels": {}}):
        later = Resource(APP.type, "later", "urn:later", {"metadata": metadata})
        assert validate_ambient_waypoints([APP, later, policy], DEFAULTS) == [], metadata


def test_the_messages_name_every_wrong_target_and_a_service_user():
    refs = [{"group": "apps", "kind": "Deployment", "name": "a"}, {"group": "", "kind": "Pod", "name": "b"}]
    policy = k8s(
        "security.istio.io/v1", "AuthorizationPolicy", "web", "ns-test", spec={"targetRefs": refs, "rules": L7}
    )
    (found,) = validate_ambient_waypoints([APP, policy], DEFAULTS)
    assert found.message.startswith('AuthorizationPolicy "ns-test/web" targets Deployment/a, Pod/b: ')
    service = k8s("v1", "Service", "web", "ns-test", metadata={"labels": {"istio.io/use-waypoint": "svc-waypoint"}})
    (missing,) = validate_ambient_waypoints([APP, service], DEFAULTS)
    assert missing.message.startswith('Service "ns-test/web" uses waypoint "svc-waypoint" but the stack has no Gateway')
    assert missing.urn == service.urn
