"""The hardened test app, the rollout phases and the demo scenarios, under mocks."""

from __future__ import annotations

import re
from ipaddress import ip_address, ip_network
from typing import Any

import kubernetes_validate
import pytest
from meshlab_policy.catalog import Enforcement
from meshlab_policy.engine import load_pack_config, resolve, run_policies, stack_config_path
from meshlab_policy.kube import Resource
from meshlab_policy.pod_security import Level, evaluate_pod

from config import versions
from config.loader import settings_from_config
from config.validation import SettingsError
from tests.kube_reference import crd_file, validate_against_crd
from tools.render import Registration, Rendering, with_overrides

KUBERNETES_MINOR = ".".join(versions.KUBERNETES.lstrip("v").split(".")[:2])
NS = "ns-test"
# One rendering with every app setting changed, shared by the tests that check each one.
CUSTOM_APP = {
    "meshlab:testAppAllowedMethods": ["GET", "HEAD"],
    "meshlab:testAppAllowedPaths": ["/", "/static/*"],
    "meshlab:testAppEgressFqdns": ["httpbin.org", "api.github.com"],
}


def app_objects(rendering: Rendering) -> dict[str, Registration]:
    """The test app's objects by kind/name."""
    [app] = rendering.of_type("meshlab:apps:WebTest")
    return {
        f"{r.inputs['kind']}/{r.inputs['metadata']['name']}": r
        for r in rendering.descendants(app.urn)
        if r.custom and "kind" in r.inputs
    }


def spec_of(objects: dict[str, Registration], key: str) -> dict[str, Any]:
    spec: dict[str, Any] = objects[key].inputs["spec"]
    return spec


def test_namespace_is_restricted_ambient_and_uses_the_waypoint(lab):
    labels = app_objects(lab)[f"Namespace/{NS}"].inputs["metadata"]["labels"]
    for mode in ("enforce", "audit", "warn"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"
    assert labels["istio.io/dataplane-mode"] == "ambient"
    assert labels["istio.io/use-waypoint"] == "waypoint"


def test_waypoint_runs_hbone_for_services(lab):
    objects = app_objects(lab)
    waypoint = objects["Gateway/waypoint"]
    assert waypoint.inputs["metadata"]["labels"] == {"istio.io/waypoint-for": "service"}
    spec = spec_of(objects, "Gateway/waypoint")
    assert spec["gatewayClassName"] == "istio-waypoint"
    assert spec["listeners"] == [{"name": "mesh", "port": 15008, "protocol": "HBONE"}]


def test_namespace_mtls_is_strict(lab):
    assert spec_of(app_objects(lab), "PeerAuthentication/default") == {"mtls": {"mode": "STRICT"}}


def test_authorization_policy_allows_only_get_on_root_through_the_waypoint(lab):
    objects = app_objects(lab)
    [policy] = [r for key, r in objects.items() if key.startswith("AuthorizationPolicy/")]
    spec = policy.inputs["spec"]
    assert "selector" not in spec
    assert spec["targetRefs"] == [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "waypoint"}]
    assert spec["action"] == "ALLOW"
    assert spec["rules"] == [{"to": [{"operation": {"methods": ["GET"], "paths": ["/"]}}]}]
    assert objects["Gateway/waypoint"].urn in policy.dependencies


def test_allowed_requests_come_from_settings(render_with):
    rendering = render_with(CUSTOM_APP)
    [policy] = [r for key, r in app_objects(rendering).items() if key.startswith("AuthorizationPolicy/")]
    [rule] = policy.inputs["spec"]["rules"]
    assert rule["to"][0]["operation"] == {"methods": ["GET", "HEAD"], "paths": ["/", "/static/*"]}


INGRESS_USE_WAYPOINT = "istio.io/ingress-use-waypoint"


def ingress_uses_waypoint(service: Registration, namespace: Registration) -> bool:
    """Istio 1.27: the Service's label, else its namespace's (lab-spec §5.2, "the Service label wins")."""
    labels = service.inputs["metadata"].get("labels", {})
    value: str | None = labels.get(
        INGRESS_USE_WAYPOINT, namespace.inputs["metadata"]["labels"].get(INGRESS_USE_WAYPOINT)
    )
    return value == "true"


def test_ingress_goes_through_the_waypoint_for_every_service_in_ns_test(lab, render_with):
    """Set on the namespace, so a Service added later (the L7 demo's v2) cannot skip the L7 policy."""
    for rendering in (lab, render_with({"meshlab:demoL7Routing": True})):
        namespace = app_objects(rendering)[f"Namespace/{NS}"]
        assert namespace.inputs["metadata"]["labels"][INGRESS_USE_WAYPOINT] == "true"
        services = [
            r for r in rendering.of_type("kubernetes:core/v1:Service") if r.inputs["metadata"]["namespace"] == NS
        ]
        assert len(services) == (2 if rendering is not lab else 1)
        for service in services:
            assert ingress_uses_waypoint(service, namespace), service.name


def test_the_apps_service_carries_the_ingress_label_itself_once_it_has_a_waypoint(lab, render_with):
    """Istio reads a Service's own label first; before 1.27 only that one (the namespace fallback is 1.27's)."""
    labels = app_objects(lab)["Service/web-test-service"].inputs["metadata"]["labels"]
    assert labels[INGRESS_USE_WAYPOINT] == "true"
    assert labels["app"] == "web-test"
    # Phase 2 has no waypoint: no label that would point the ingress at one.
    enrolling = app_objects(render_with({"meshlab:rolloutPhase": 2}))["Service/web-test-service"]
    assert INGRESS_USE_WAYPOINT not in enrolling.inputs["metadata"]["labels"]


def test_service_keeps_the_seeds_nodeport(lab):
    service = app_objects(lab)["Service/web-test-service"].inputs
    [port] = service["spec"]["ports"]
    assert (port["port"], port["targetPort"], port["nodePort"]) == (80, 8080, 30000)
    assert service["spec"]["type"] == "NodePort"


def test_route_publishes_the_app_on_the_ingress(lab):
    objects = app_objects(lab)
    route = objects["HTTPRoute/web-test"]
    spec = route.inputs["spec"]
    assert spec["hostnames"] == ["test.test"]
    [parent] = spec["parentRefs"]
    assert (parent["name"], parent["namespace"]) == ("ingress", "istio-system")
    [rule] = spec["rules"]
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/"}}]
    assert rule["backendRefs"] == [{"name": "web-test-service", "port": 80}]
    # Same namespace as its backend: no ReferenceGrant needed.
    assert route.inputs["metadata"]["namespace"] == NS


def _matches(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    return selector is not None and all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def admitted(spec: dict[str, Any], *, namespace: str, pod: dict[str, str], port: int, ip: str = "") -> bool:
    """Whether a NetworkPolicy in ns-test admits a connection from a pod (or, with `ip`, a bare address)."""
    namespace_labels = {"kubernetes.io/metadata.name": namespace}
    for rule in spec["ingress"]:
        if rule.get("ports") and port not in {p["port"] for p in rule["ports"]}:
            continue
        for peer in rule.get("from", []):
            if "ipBlock" in peer:
                if ip and ip_address(ip) in ip_network(peer["ipBlock"]["cidr"]):
                    return True
                continue
            # A podSelector alone selects pods of the policy's own namespace.
            in_namespace = (
                _matches(peer["namespaceSelector"], namespace_labels)
                if "namespaceSelector" in peer
                else namespace == NS
            )
            if not ip and in_namespace and ("podSelector" not in peer or _matches(peer["podSelector"], pod)):
                return True
    return False


WAYPOINT_POD = {"gateway.networking.k8s.io/gateway-name": "waypoint"}
INGRESS_POD = {"gateway.networking.k8s.io/gateway-name": "ingress"}


def test_network_policy_admits_hbone_only_from_the_waypoint_and_probes(lab):
    spec = spec_of(app_objects(lab), "NetworkPolicy/web-test-mesh-only")
    assert spec["policyTypes"] == ["Ingress"]
    assert spec["podSelector"] == {"matchLabels": {"app": "web-test"}}  # v1 and the L7 demo's v2
    assert admitted(spec, namespace=NS, pod=WAYPOINT_POD, port=15008)
    # The ingress gateway reaches the app through the waypoint only: a direct path would skip L7 policy.
    assert not admitted(spec, namespace="istio-system", pod=INGRESS_POD, port=15008)
    # Other meshed clients (by pod IP, past the waypoint) and the waypoint on other ports are refused.
    assert not admitted(spec, namespace=NS, pod={"app": "api-client"}, port=15008)
    assert not admitted(spec, namespace=NS, pod=WAYPOINT_POD, port=8080)
    # Kubelet probes, SNATed by ambient.
    assert admitted(spec, namespace="", pod={}, port=8080, ip="169.254.7.127")
    # Nothing admits 8080 directly: NodePort and pod-IP access from outside the mesh are dropped.
    assert not admitted(spec, namespace="", pod={}, port=8080, ip="192.168.56.1")
    assert all(port["port"] != 8080 for rule in spec["ingress"] for port in rule.get("ports", []))


def test_the_network_policy_model_sees_the_direct_ingress_path():
    """Guards the test above: a rule for the ingress gateway's pods is what admits them."""
    spec = {
        "ingress": [
            {
                "from": [
                    {
                        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "istio-system"}},
                        "podSelector": {"matchLabels": INGRESS_POD},
                    }
                ],
                "ports": [{"protocol": "TCP", "port": 15008}],
            }
        ]
    }
    assert admitted(spec, namespace="istio-system", pod=INGRESS_POD, port=15008)
    assert not admitted(spec, namespace=NS, pod=INGRESS_POD, port=15008)


def test_egress_allows_dns_through_cilium_then_only_the_allow_list(lab, render_with):
    dns, fqdns = spec_of(app_objects(lab), "CiliumNetworkPolicy/web-test-egress")["egress"]
    [kube_dns] = dns["toEndpoints"]
    assert kube_dns["matchLabels"]["k8s:k8s-app"] == "kube-dns"
    [dns_port] = dns["toPorts"]
    assert dns_port["ports"] == [{"port": "53", "protocol": "ANY"}]
    assert dns_port["rules"]["dns"] == [{"matchPattern": "*"}]  # the DNS rule that makes toFQDNs work
    assert fqdns["toFQDNs"] == [{"matchName": "httpbin.org"}]
    assert fqdns["toPorts"] == [{"ports": [{"port": "443", "protocol": "TCP"}]}]
    other = render_with(CUSTOM_APP)
    _, fqdns = spec_of(app_objects(other), "CiliumNetworkPolicy/web-test-egress")["egress"]
    assert fqdns["toFQDNs"] == [{"matchName": "httpbin.org"}, {"matchName": "api.github.com"}]


def test_probe_policy_never_turns_on_default_deny(lab):
    objects = app_objects(lab)
    spec = spec_of(objects, "CiliumClusterwideNetworkPolicy/allow-ambient-hostprobes")
    assert spec["endpointSelector"] == {}
    assert spec["ingress"] == [{"fromCIDR": ["169.254.7.127/32"]}]
    assert spec["enableDefaultDeny"] == {"ingress": False, "egress": False}


def test_deployment_is_restricted_and_schema_valid(lab):
    deployment = app_objects(lab)["Deployment/web-test"].inputs
    kubernetes_validate.validate(deployment, KUBERNETES_MINOR, strict=True)
    template = deployment["spec"]["template"]
    assert evaluate_pod(template["metadata"], template["spec"], Level.RESTRICTED) == []
    [container] = template["spec"]["containers"]
    assert container["image"] == versions.TEST_APP_IMAGE and not container["image"].endswith(":latest")
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert container["readinessProbe"]["httpGet"]["port"] == 8080


def test_every_app_object_matches_its_schema(lab):
    objects = app_objects(lab)
    assert len(objects) == 11
    for key, resource in objects.items():
        document = resource.inputs
        if "." in document["apiVersion"].split("/")[0] and not document["apiVersion"].startswith("networking.k8s.io"):
            validate_against_crd(document, crd_file(document["apiVersion"], document["kind"]))
        else:
            kubernetes_validate.validate(document, KUBERNETES_MINOR, strict=True)
        assert resource.provider, key


# --- rollout phases -----------------------------------------------------------------------------

LAYERS_BY_PHASE = {
    1: {"meshlab:hosts:LabHosts", "meshlab:cluster:Rke2Cluster"},
    2: {
        "meshlab:security:Namespaces",
        "meshlab:network:GatewayApiCrds",
        "meshlab:mesh:IstioAmbient",
        "meshlab:apps:WebTest",
    },
    3: {"meshlab:network:MetalLb", "meshlab:network:IngressGateway"},
    4: {
        "meshlab:storage:NfsProvisioner",
        "meshlab:security:Kyverno",
        "meshlab:observability:Prometheus",
        "meshlab:observability:Grafana",
        "meshlab:observability:Kiali",
        "meshlab:observability:HubbleUi",
    },
}


def top_level(rendering: Rendering) -> set[str]:
    stack = next(r.urn for r in rendering.registrations if r.type == "pulumi:pulumi:Stack")
    return {r.type for r in rendering.resources() if r.parent == stack}


@pytest.fixture(scope="module")
def phases(render_with) -> dict[int, Rendering]:
    return {phase: render_with({"meshlab:rolloutPhase": phase}) for phase in (1, 2, 3)}


@pytest.mark.parametrize("phase", [1, 2, 3, 4])
def test_each_phase_contains_exactly_its_layers(phases, lab, phase):
    rendering = lab if phase == 4 else phases[phase]
    expected = set().union(*(LAYERS_BY_PHASE[p] for p in range(1, phase + 1)))
    assert top_level(rendering) == expected


def test_phase_1_has_no_kubernetes_objects(phases):
    assert [r.name for r in phases[1].resources() if r.type.startswith("kubernetes:")] == []


def test_phase_2_enrols_ns_test_on_permissive_without_l7(phases):
    rendering = phases[2]
    objects = app_objects(rendering)
    assert spec_of(objects, "PeerAuthentication/default") == {"mtls": {"mode": "PERMISSIVE"}}
    assert set(objects) == {
        f"Namespace/{NS}",
        "ServiceAccount/default",
        "PeerAuthentication/default",
        "Deployment/web-test",
        "Service/web-test-service",
    }
    labels = objects[f"Namespace/{NS}"].inputs["metadata"]["labels"]
    assert labels["istio.io/dataplane-mode"] == "ambient" and "istio.io/use-waypoint" not in labels
    assert not ingress_uses_waypoint(objects["Service/web-test-service"], objects[f"Namespace/{NS}"])
    charts = {r.inputs["chart"] for r in rendering.of_type("kubernetes:helm.sh/v3:Release")}
    assert charts == {"base", "istiod", "cni", "ztunnel"}


def test_phase_3_locks_the_app_down_and_adds_the_ingress(phases):
    objects = app_objects(phases[3])
    assert spec_of(objects, "PeerAuthentication/default") == {"mtls": {"mode": "STRICT"}}
    assert {"Gateway/waypoint", "NetworkPolicy/web-test-mesh-only", "HTTPRoute/web-test"} <= set(objects)
    assert phases[3].stack_outputs()["urls"] == {"testApp": "http://test.test/"}


def test_a_phase_outside_1_to_4_is_refused(stack_configs):
    with pytest.raises(SettingsError, match=re.escape("meshlab:rolloutPhase = 5")):
        settings_from_config(with_overrides(stack_configs["lab"], {"meshlab:rolloutPhase": 5}))


# --- demos --------------------------------------------------------------------------------------

DEMOS = {
    "meshlab:demoAmbient": ("after", "meshlab:apps:AmbientDemo"),
    "meshlab:demoL7Routing": (True, "meshlab:apps:L7RoutingDemo"),
    "meshlab:demoPrincipalPolicy": (True, "meshlab:apps:PrincipalDemo"),
}


@pytest.mark.parametrize("key", sorted(DEMOS))
def test_each_demo_adds_only_its_own_objects(lab, render_with, key):
    value, component = DEMOS[key]
    rendering = render_with({key: value})
    before = {r.urn: r for r in lab.resources()}
    after = {r.urn: r for r in rendering.resources()}
    assert set(before) <= set(after)  # a demo removes nothing
    [demo] = rendering.of_type(component)
    added = set(after) - set(before)
    assert added == {demo.urn} | {r.urn for r in rendering.descendants(demo.urn)}
    assert len(added) >= 3
    changed = {urn for urn in before if before[urn].inputs != after[urn].inputs}
    # Only the app's AuthorizationPolicy may change, to let the demo's requests through.
    assert {after[urn].type for urn in changed} <= {"kubernetes:security.istio.io/v1:AuthorizationPolicy"}
    for urn in added:
        document = after[urn].inputs
        if after[urn].custom and document.get("kind") in ("Deployment",):
            template = document["spec"]["template"]
            assert evaluate_pod(template["metadata"], template["spec"], Level.RESTRICTED) == [], urn


def test_l7_routing_demo_sends_v2_to_the_v2_backend(render_with):
    rendering = render_with({"meshlab:demoL7Routing": True})
    [route] = [
        r
        for r in rendering.of_type("kubernetes:gateway.networking.k8s.io/v1:HTTPRoute")
        if r.name.endswith("-route") and "l7" in r.name
    ]
    spec = route.inputs["spec"]
    assert spec["parentRefs"] == [{"group": "", "kind": "Service", "name": "web-test-service", "port": 80}]
    v2, default = spec["rules"]
    assert v2["matches"][0]["path"] == {"type": "PathPrefix", "value": "/v2"}
    assert v2["backendRefs"] == [{"name": "web-test-v2", "port": 80}]
    assert default["backendRefs"] == [{"name": "web-test-service", "port": 80}]
    [policy] = [r for key, r in app_objects(rendering).items() if key.startswith("AuthorizationPolicy/")]
    assert {"to": [{"operation": {"methods": ["GET"], "paths": ["/v2", "/v2/*"]}}]} in policy.inputs["spec"]["rules"]


def test_principal_demo_allows_one_identity_on_api_paths(render_with):
    rendering = render_with({"meshlab:demoPrincipalPolicy": True})
    [policy] = [r for key, r in app_objects(rendering).items() if key.startswith("AuthorizationPolicy/")]
    rule = policy.inputs["spec"]["rules"][-1]
    assert rule["from"] == [{"source": {"principals": ["cluster.local/ns/ns-test/sa/api-client"]}}]
    assert rule["to"] == [{"operation": {"methods": ["GET", "POST"], "paths": ["/api", "/api/*"]}}]
    accounts = [
        r.inputs["metadata"]
        for r in rendering.resources()
        if r.type == "kubernetes:core/v1:ServiceAccount" and r.inputs["metadata"]["namespace"] == "ns-test"
    ]
    assert accounts == [{"name": "api-client", "namespace": "ns-test"}]


def test_ambient_demo_before_and_after_differ_only_in_enrolment(render_with):
    def namespace(value: str) -> dict[str, str]:
        rendering = render_with({"meshlab:demoAmbient": value})
        [ns] = [
            r
            for r in rendering.resources()
            if r.type == "kubernetes:core/v1:Namespace" and r.inputs["metadata"]["name"] == "demo"
        ]
        labels: dict[str, str] = ns.inputs["metadata"]["labels"]
        return labels

    before, after = namespace("before"), namespace("after")
    assert "istio.io/dataplane-mode" not in before and after["istio.io/dataplane-mode"] == "ambient"
    assert {k: v for k, v in after.items() if k != "istio.io/dataplane-mode"} == before


def test_demos_need_their_phase(stack_configs):
    config = with_overrides(stack_configs["lab"], {"meshlab:rolloutPhase": 2, "meshlab:demoL7Routing": True})
    with pytest.raises(SettingsError, match=re.escape("needs meshlab:rolloutPhase 3 or later")):
        settings_from_config(config)


def test_phase_2_passes_the_policy_pack_only_with_ns_test_on_the_migration_allow_list(phases):
    """What docs/rollout.md tells a user to do before phase 2."""
    resources = [Resource(type=r.type, name=r.name, urn=r.urn, props=r.inputs) for r in phases[2].resources()]
    levels = load_pack_config(stack_config_path("lab"))
    mandatory = {v.policy for v in run_policies(resources, resolve(levels)) if v.enforcement is Enforcement.MANDATORY}
    assert mandatory == {"peer-authentication-strict", "mesh-mtls-strict"}
    allow = [{"namespace": NS, "reason": "rollout phase 2: workloads joining the mesh"}]
    for policy in mandatory:
        levels[policy] = {"enforcementLevel": levels[policy], "mtlsMigrationAllowList": allow}
    assert [v for v in run_policies(resources, resolve(levels)) if v.enforcement is Enforcement.MANDATORY] == []


@pytest.mark.parametrize(
    "spelling",
    [
        {"meshlab:rolloutPhase": 1},
        {"meshlab:rollout.phase": 1},
        {"meshlab:rollout": {"phase": 1}},
        {"meshlab:rollout": '{"phase": 1}'},
    ],
    ids=["flat", "dotted", "object", "object-as-json"],
)
def test_the_seeds_spellings_of_the_rollout_phase_are_read(stack_configs, spelling):
    settings = settings_from_config(with_overrides(stack_configs["lab"], spelling))
    assert settings.apps.rollout_phase == 1


def test_two_different_rollout_phases_are_refused(stack_configs):
    config = with_overrides(stack_configs["lab"], {"meshlab:rolloutPhase": 3, "meshlab:rollout.phase": 2})
    with pytest.raises(SettingsError, match="set more than once"):
        settings_from_config(config)
