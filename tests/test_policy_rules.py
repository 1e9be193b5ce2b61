"""The namespace-label, mTLS, ambient and hygiene validators, on plain resources."""

from __future__ import annotations

from typing import Any

import pytest

import tools.policy  # noqa: F401 - importing it puts policy-pack on sys.path

# isort: split
from meshlab_policy.hygiene import image_problem, validate_chart_pinned, validate_images_pinned
from meshlab_policy.kiali import validate_kiali_view_only
from meshlab_policy.kube import CORE_GROUP, Resource, kube_type
from meshlab_policy.mesh import (
    validate_ambient_waypoints,
    validate_mesh_mtls,
    validate_peer_authentication_effective,
    validate_peer_authentication_strict,
)
from meshlab_policy.namespaces import validate_namespace_labels
from meshlab_policy.settings import (
    ENFORCE_LABEL,
    REASON_ANNOTATION,
    MigrationAllowance,
    PolicySettings,
)

DEFAULTS = PolicySettings()


def k8s(api_version: str, kind: str, name: str, namespace: str | None = None, **fields: Any) -> Resource:
    group, _, version = api_version.rpartition("/")
    metadata: dict[str, Any] = {"name": name, **fields.pop("metadata", {})}
    if namespace:
        metadata["namespace"] = namespace
    props = {"apiVersion": api_version, "kind": kind, "metadata": metadata, **fields}
    return Resource(f"kubernetes:{group or 'core'}/{version}:{kind}", name, f"urn:{kind}:{namespace}:{name}", props)


def namespace(name: str, **labels: str) -> Resource:
    return k8s("v1", "Namespace", name, metadata={"labels": labels})


def peer_auth(
    ns: str,
    name: str,
    mode: str | None = None,
    *,
    selector: bool = False,
    ports: dict[str, str] | None = None,
    version: str = "v1",
) -> Resource:
    spec: dict[str, Any] = {}
    if mode:
        spec["mtls"] = {"mode": mode}
    if selector:
        spec["selector"] = {"matchLabels": {"app": name}}
    if ports:
        spec["portLevelMtls"] = {port: {"mode": m} for port, m in ports.items()}
    return k8s(f"security.istio.io/{version}", "PeerAuthentication", name, ns, spec=spec)


ISTIOD = Resource(
    "kubernetes:helm.sh/v3:Release",
    "istiod",
    "urn:istiod",
    {"chart": "istiod", "version": "1.27.0", "namespace": "istio-system"},
)
AMBIENT = {"istio.io/dataplane-mode": "ambient"}


# Namespace labels ------------------------------------------------------------------------------


def test_every_namespace_needs_an_enforce_label():
    violations = validate_namespace_labels(namespace("ns-test"), DEFAULTS)
    assert len(violations) == 1
    assert ENFORCE_LABEL in violations[0] and "restricted" in violations[0]
    assert validate_namespace_labels(namespace("ns-test", **{ENFORCE_LABEL: "restricted"}), DEFAULTS) == []


def test_a_looser_level_needs_the_exemption_list_and_a_reason():
    loose = namespace("apps", **{ENFORCE_LABEL: "baseline"})
    violations = validate_namespace_labels(loose, DEFAULTS)
    assert any("not in exemptNamespaces" in v for v in violations)
    assert any(REASON_ANNOTATION in v for v in violations)


def test_an_exempt_namespace_enforces_its_exact_level_with_a_reason():
    labels = {ENFORCE_LABEL: "privileged"}
    reasoned = k8s(
        "v1", "Namespace", "istio-system", metadata={"labels": labels, "annotations": {REASON_ANNOTATION: "istio-cni"}}
    )
    assert validate_namespace_labels(reasoned, DEFAULTS) == []
    unreasoned = namespace("istio-system", **labels)
    assert [v for v in validate_namespace_labels(unreasoned, DEFAULTS) if REASON_ANNOTATION in v]
    mismatched = namespace("istio-system", **{ENFORCE_LABEL: "restricted"})
    assert any("exempts it at privileged" in v for v in validate_namespace_labels(mismatched, DEFAULTS))


def test_an_unknown_enforce_value_and_auto_named_namespaces():
    assert (
        "not a Pod Security level"
        in validate_namespace_labels(namespace("x", **{ENFORCE_LABEL: "strict"}), DEFAULTS)[0]
    )
    auto_named = Resource(
        "kubernetes:core/v1:Namespace", "istio-system", "urn:ns", {"metadata": {"labels": {ENFORCE_LABEL: "baseline"}}}
    )
    assert any("exempts it at privileged" in v for v in validate_namespace_labels(auto_named, DEFAULTS))


def test_other_kinds_are_not_namespaces():
    assert validate_namespace_labels(k8s("v1", "ConfigMap", "x", "ns-test"), DEFAULTS) == []


# PeerAuthentication ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "ports", "flagged"),
    [
        ("STRICT", None, False),
        ("UNSET", None, False),
        (None, None, False),
        ("PERMISSIVE", None, True),
        ("DISABLE", None, True),
        ("permissive", None, True),
        ("STRICT", {"8080": "PERMISSIVE"}, True),
        ("STRICT", {"8080": "DISABLE"}, True),
        ("PERMISSIVE", {"8080": "STRICT"}, True),
        ("STRICT", {"8080": "STRICT"}, False),
    ],
)
def test_plaintext_peer_authentication_is_flagged(mode, ports, flagged):
    violations = validate_peer_authentication_strict(
        peer_auth("ns-test", "web", mode, selector=True, ports=ports), DEFAULTS
    )
    assert bool(violations) == flagged
    if ports and flagged and mode == "STRICT":
        assert "8080=" in violations[0]


def test_the_migration_allow_list_permits_plaintext_in_its_namespaces_only():
    settings = PolicySettings(mtls_migration={"legacy": MigrationAllowance("legacy", "moving off VMs")})
    assert validate_peer_authentication_strict(peer_auth("legacy", "p", "PERMISSIVE"), settings) == []
    assert validate_peer_authentication_strict(peer_auth("ns-test", "p", "PERMISSIVE"), settings) != []


def test_ignored_peer_authentication_settings_are_reported():
    assert validate_peer_authentication_effective(peer_auth("ns-test", "p", "STRICT", selector=True), DEFAULTS) == []
    (old,) = validate_peer_authentication_effective(peer_auth("ns-test", "p", "STRICT", version="v1beta1"), DEFAULTS)
    assert "security.istio.io/v1" in old
    (ports,) = validate_peer_authentication_effective(
        peer_auth("ns-test", "p", "STRICT", ports={"80": "STRICT"}), DEFAULTS
    )
    assert "without a workload selector" in ports
    (root,) = validate_peer_authentication_effective(peer_auth("istio-system", "p", "STRICT", selector=True), DEFAULTS)
    assert "root namespace" in root
    moved = PolicySettings(istio_root_namespace="istio-config")
    assert validate_peer_authentication_effective(peer_auth("istio-system", "p", "STRICT", selector=True), moved) == []


# Mesh-wide STRICT ------------------------------------------------------------------------------

MESH_WIDE = peer_auth("istio-system", "default", "STRICT")


def test_no_istio_no_mesh_requirement():
    assert validate_mesh_mtls([namespace("ns-test", **AMBIENT)], DEFAULTS) == []


def test_istio_needs_a_mesh_wide_strict_policy():
    for istio in (ISTIOD, peer_auth("ns-test", "p", "STRICT", selector=True)):
        (missing,) = [v for v in validate_mesh_mtls([istio], DEFAULTS) if v.urn is None]
        assert "no mesh-wide PeerAuthentication" in missing.message
    assert validate_mesh_mtls([ISTIOD, MESH_WIDE, namespace("ns-test", **AMBIENT)], DEFAULTS) == []


@pytest.mark.parametrize(
    ("chart", "istio"),
    [("istio/istiod", True), ("oci://registry.example/istio/istiod", True), ("base", False), ("ztunnel", False)],
)
def test_an_istiod_release_in_any_chart_form_means_istio_runs(chart, istio):
    release = Resource("kubernetes:helm.sh/v3:Release", "r", "urn:r", {"chart": chart, "version": "1.27.0"})
    assert bool(validate_mesh_mtls([release], DEFAULTS)) == istio


def test_a_weak_or_duplicated_mesh_wide_policy_is_flagged():
    permissive = peer_auth("istio-system", "default", "PERMISSIVE")
    found = validate_mesh_mtls([ISTIOD, permissive, namespace("ns-test", **AMBIENT)], DEFAULTS)
    assert {v.urn for v in found} == {permissive.urn, namespace("ns-test").urn}
    twice = validate_mesh_mtls([ISTIOD, MESH_WIDE, peer_auth("istio-system", "second", "STRICT")], DEFAULTS)
    assert len(twice) == 2 and all("only the oldest" in v.message for v in twice)


def test_every_ambient_namespace_is_covered_by_strict():
    weakened = peer_auth("ns-test", "ns-wide", "PERMISSIVE")
    (uncovered,) = validate_mesh_mtls([ISTIOD, MESH_WIDE, namespace("ns-test", **AMBIENT), weakened], DEFAULTS)
    assert 'ambient namespace "ns-test"' in uncovered.message and uncovered.urn == namespace("ns-test").urn
    strict_here = peer_auth("ns-test", "ns-wide", "STRICT")
    assert validate_mesh_mtls([ISTIOD, namespace("ns-test", **AMBIENT), strict_here], DEFAULTS) != []
    assert [v.urn for v in validate_mesh_mtls([ISTIOD, namespace("ns-test", **AMBIENT), strict_here], DEFAULTS)] == [
        None
    ]
    not_ambient = validate_mesh_mtls([ISTIOD, MESH_WIDE, namespace("ns-test"), weakened], DEFAULTS)
    assert not_ambient == []


def test_disable_is_unsupported_in_ambient_even_when_allow_listed():
    disabled = peer_auth("ns-test", "workload", "DISABLE", selector=True)
    allow = PolicySettings(mtls_migration={"ns-test": MigrationAllowance("ns-test", "migrating")})
    (found,) = validate_mesh_mtls([ISTIOD, MESH_WIDE, namespace("ns-test", **AMBIENT), disabled], allow)
    assert found.urn == disabled.urn and "does not support DISABLE" in found.message


def test_the_root_namespace_is_configurable():
    elsewhere = peer_auth("istio-config", "default", "STRICT")
    assert validate_mesh_mtls([ISTIOD, elsewhere], PolicySettings(istio_root_namespace="istio-config")) == []
    assert validate_mesh_mtls([ISTIOD, elsewhere], DEFAULTS) != []


# Ambient waypoints -----------------------------------------------------------------------------


def authorization(
    ns: str, rules: list[dict[str, Any]], *, selector: bool = False, target: dict[str, str] | None = None
) -> Resource:
    spec: dict[str, Any] = {"action": "ALLOW", "rules": rules}
    if selector:
        spec["selector"] = {"matchLabels": {"app": "web"}}
    if target:
        spec["targetRefs"] = [target]
    return k8s("security.istio.io/v1", "AuthorizationPolicy", "web", ns, spec=spec)


WAYPOINT_REF = {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "waypoint"}
GET_ONLY = [{"to": [{"operation": {"methods": ["GET"], "paths": ["/"]}}]}]


def waypoint(ns: str, name: str = "waypoint", cls: str = "istio-waypoint") -> Resource:
    return k8s("gateway.networking.k8s.io/v1", "Gateway", name, ns, spec={"gatewayClassName": cls})


@pytest.mark.parametrize(
    ("rules", "l7"),
    [
        (GET_ONLY, True),
        ([{"to": [{"operation": {"notHosts": ["a.example"]}}]}], True),
        ([{"from": [{"source": {"requestPrincipals": ["*"]}}]}], True),
        ([{"when": [{"key": "request.headers[x-token]", "values": ["t"]}]}], True),
        ([{"to": [{"operation": {"ports": ["8080"]}}]}], False),
        ([{"from": [{"source": {"namespaces": ["istio-system"]}}]}], False),
        ([{"when": [{"key": "source.ip", "values": ["10.0.0.1"]}]}], False),
    ],
)
def test_l7_rules_attached_by_selector_are_flagged(rules, l7):
    stack = [namespace("ns-test", **AMBIENT), authorization("ns-test", rules, selector=True)]
    violations = validate_ambient_waypoints(stack, DEFAULTS)
    assert bool(violations) == l7
    if l7:
        assert "selector" in violations[0].message and violations[0].urn == stack[1].urn


def test_l7_rules_need_target_refs_to_a_waypoint_or_service():
    stack = [namespace("ns-test", **AMBIENT), waypoint("ns-test")]
    assert validate_ambient_waypoints([*stack, authorization("ns-test", GET_ONLY, target=WAYPOINT_REF)], DEFAULTS) == []
    service = {"group": "", "kind": "Service", "name": "web"}
    assert validate_ambient_waypoints([*stack, authorization("ns-test", GET_ONLY, target=service)], DEFAULTS) == []
    (namespace_wide,) = validate_ambient_waypoints([*stack, authorization("ns-test", GET_ONLY)], DEFAULTS)
    assert "namespace-wide" in namespace_wide.message
    deployment = {"group": "apps", "kind": "Deployment", "name": "web"}
    (wrong,) = validate_ambient_waypoints([*stack, authorization("ns-test", GET_ONLY, target=deployment)], DEFAULTS)
    assert "Deployment/web" in wrong.message


def test_sidecar_namespaces_may_attach_l7_by_selector():
    sidecars = namespace("legacy", **{"istio-injection": "enabled"})
    assert validate_ambient_waypoints([sidecars, authorization("legacy", GET_ONLY, selector=True)], DEFAULTS) == []


def test_use_waypoint_labels_name_an_existing_waypoint():
    user = namespace("ns-test", **AMBIENT, **{"istio.io/use-waypoint": "waypoint"})
    (missing,) = validate_ambient_waypoints([user], DEFAULTS)
    assert 'no Gateway "waypoint"' in missing.message and missing.urn == user.urn
    assert validate_ambient_waypoints([user, waypoint("ns-test")], DEFAULTS) == []
    (wrong_class,) = validate_ambient_waypoints([user, waypoint("ns-test", cls="istio")], DEFAULTS)
    assert "istio-waypoint" in wrong_class.message
    opted_out = namespace("ns-test", **AMBIENT, **{"istio.io/use-waypoint": "none"})
    assert validate_ambient_waypoints([opted_out], DEFAULTS) == []


def test_waypoints_in_other_namespaces_and_on_services():
    shared = namespace(
        "ns-test", **AMBIENT, **{"istio.io/use-waypoint": "egress", "istio.io/use-waypoint-namespace": "mesh"}
    )
    stack = [shared, namespace("mesh", **AMBIENT), waypoint("mesh", "egress")]
    assert validate_ambient_waypoints(stack, DEFAULTS) == []
    service = k8s("v1", "Service", "web", "ns-test", metadata={"labels": {"istio.io/use-waypoint": "web-waypoint"}})
    (missing,) = validate_ambient_waypoints([*stack, service], DEFAULTS)
    assert 'Service "ns-test/web"' in missing.message


def test_a_waypoint_lives_in_an_ambient_namespace():
    (outside,) = validate_ambient_waypoints([namespace("ns-test"), waypoint("ns-test")], DEFAULTS)
    assert "not enrolled in ambient" in outside.message


# Hygiene ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "pinned"),
    [
        ("nginxinc/nginx-unprivileged:1.27-alpine", True),
        ("registry.example:5000/team/app:2.0.1", True),
        ("app@sha256:" + "a" * 64, True),
        ("app:1.0@sha256:" + "b" * 64, True),
        ("nginx", False),
        ("nginx:latest", False),
        ("registry.example:5000/team/app", False),
        ("app@", False),
        ("", False),
    ],
)
def test_image_pinning(image, pinned):
    assert (image_problem(image) is None) == pinned


def test_images_of_every_container_kind_are_checked():
    template = {
        "spec": {
            "initContainers": [{"name": "init", "image": "busybox"}],
            "containers": [{"name": "app", "image": "app:1.2.3"}],
            "ephemeralContainers": [{"name": "debug", "image": "busybox:latest"}],
        }
    }
    cron = k8s("batch/v1", "CronJob", "report", "ns-test", spec={"jobTemplate": {"spec": {"template": template}}})
    violations = validate_images_pinned(cron, DEFAULTS)
    assert len(violations) == 2
    assert 'init container "init"' in violations[0] and 'ephemeral container "debug"' in violations[1]


@pytest.mark.parametrize(
    ("version", "pinned"),
    [
        ("1.27.0", True),
        ("v1.17.6", True),
        ("4.0.18-rc.1", True),
        ("", False),
        ("^1", False),
        ("~1.2.3", False),
        (">=1.0.0", False),
        ("1.x", False),
        ("1.2", False),
        ("*", False),
    ],
)
def test_helm_release_versions_are_exact(version, pinned):
    release = Resource("kubernetes:helm.sh/v3:Release", "istiod", "urn:r", {"chart": "istiod", "version": version})
    assert (validate_chart_pinned(release, DEFAULTS) == []) == pinned
    chart = Resource("kubernetes:helm.sh/v4:Chart", "istiod", "urn:c", {"chart": "istiod", "version": version})
    assert (validate_chart_pinned(chart, DEFAULTS) == []) == pinned


def test_local_charts_and_chart_components_have_no_version_to_pin():
    local = Resource("kubernetes:helm.sh/v3:Release", "app", "urn:r", {"chart": "./charts/app"})
    assert validate_chart_pinned(local, DEFAULTS) == []
    component = Resource("kubernetes:helm.sh/v3:Chart", "app", "urn:c", {})
    assert validate_chart_pinned(component, DEFAULTS) == []


# Kiali ----------------------------------------------------------------------------------------


def kiali(values: Any, chart: str = "kiali-server", type_: str = "kubernetes:helm.sh/v3:Release") -> Resource:
    return Resource(type_, "kiali", "urn:kiali", {"chart": chart, "version": "2.14.0", "values": values})


ANONYMOUS = {"auth": {"strategy": "anonymous"}}


@pytest.mark.parametrize(
    ("values", "refused"),
    [
        (ANONYMOUS, True),
        ({**ANONYMOUS, "deployment": {"view_only_mode": False}}, True),
        # Helm would read the string as true, Kiali's config as no boolean at all: say it plainly.
        ({**ANONYMOUS, "deployment": {"view_only_mode": "true"}}, True),
        ({**ANONYMOUS, "deployment": {"view_only_mode": True}}, False),
        # A login means each user's own RBAC applies; the chart's default strategy is a login too.
        ({"auth": {"strategy": "token"}}, False),
        ({"auth": {"strategy": "openid"}, "deployment": {"view_only_mode": False}}, False),
        ({}, False),
    ],
)
def test_an_anonymous_kiali_must_be_view_only(values, refused):
    found = validate_kiali_view_only(kiali(values), DEFAULTS)
    assert bool(found) == refused
    if refused:
        [message] = found
        assert "anonymous" in message and "deployment.view_only_mode: true" in message


@pytest.mark.parametrize(
    ("chart", "type_", "judged"),
    [
        ("kiali/kiali-server", "kubernetes:helm.sh/v3:Release", True),
        ("oci://registry.example/kiali/kiali-server", "kubernetes:helm.sh/v4:Chart", True),
        ("kiali-operator", "kubernetes:helm.sh/v3:Release", False),
        ("kiali-server", "kubernetes:core/v1:ConfigMap", False),
    ],
)
def test_the_kiali_policy_judges_the_kiali_server_chart_in_any_form(chart, type_, judged):
    assert bool(validate_kiali_view_only(kiali(ANONYMOUS, chart, type_), DEFAULTS)) == judged


def test_a_core_kind_registered_without_its_group_is_still_core():
    for token in ("kubernetes:v1:Namespace", "kubernetes:core/v1:Namespace"):
        parsed = kube_type(token)
        assert parsed is not None and (parsed.group, parsed.version, parsed.kind) == (CORE_GROUP, "v1", "Namespace")
    assert kube_type("kubernetes:helm.sh/v3:Release") is not None
    assert kube_type("command:remote:Command") is None
