"""The layers on Kubernetes under mocks: namespaces, Gateway API, Istio ambient, the mesh CA,
MetalLB, the ingress, NFS storage and Kyverno. Every object is checked against the upstream
schema it will meet: CRDs, the Kubernetes 1.32 OpenAPI, and each chart's own values.yaml."""

from __future__ import annotations

import json
from typing import Any

import kubernetes_validate
import pytest

from components.security.namespaces import REASON_ANNOTATION
from config import versions
from tests.conftest import STACKS, depends, waits_for
from tests.kube_reference import (
    chart_value_paths,
    crd_file,
    open_value_paths,
    reference_chart,
    validate_against_crd,
    value_paths,
)
from tools.render import SECRET, Registration, Rendering

RELEASE = "kubernetes:helm.sh/v3:Release"
PEER = "kubernetes:security.istio.io/v1:PeerAuthentication"
GATEWAY = "kubernetes:gateway.networking.k8s.io/v1:Gateway"
NAMESPACE = "kubernetes:core/v1:Namespace"
KUBERNETES_MINOR = ".".join(versions.KUBERNETES.lstrip("v").split(".")[:2])
# Keys a chart reads without listing them in values.yaml, with the evidence.
UNLISTED_VALUES = {
    # Every Istio chart ships files/profile-*.yaml and applies the one `profile` names (lab-spec §5.1).
    "base": {"profile"},
    "istiod": {"profile"},
    "cni": {"profile"},
    "ztunnel": {"profile"},
}


def kubernetes_objects(rendering: Rendering) -> list[Registration]:
    return [r for r in rendering.resources() if r.type.startswith("kubernetes:") and r.custom]


# API groups served by Kubernetes itself, as opposed to CRDs (Gateway API is a CRD despite its name).
CRD_GROUPS_UNDER_K8S_IO = ("gateway.networking.k8s.io",)


def is_core(resource: Registration) -> bool:
    group = resource.type.split(":")[1].rpartition("/")[0]
    return "." not in group or (group.endswith(".k8s.io") and group not in CRD_GROUPS_UNDER_K8S_IO)


def without_secrets(value: Any) -> Any:
    """The document as the schema sees it: secret fields (shown as "[secret]") left out."""
    if isinstance(value, dict):
        return {key: without_secrets(item) for key, item in value.items() if item != SECRET}
    if isinstance(value, list):
        return [without_secrets(item) for item in value]
    return value


# --- every object against its schema -------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_every_custom_resource_matches_its_crd(rendered, stack):
    custom = [
        r
        for r in kubernetes_objects(rendered[stack])
        if r.type not in (RELEASE, "kubernetes:yaml/v2:ConfigFile") and not is_core(r)
    ]
    assert len(custom) >= 5
    for resource in custom:
        document: dict[str, Any] = without_secrets(resource.inputs)
        validate_against_crd(document, crd_file(document["apiVersion"], document["kind"]))


@pytest.mark.parametrize("stack", STACKS)
def test_every_core_object_matches_the_kubernetes_schema(rendered, stack):
    core = [r for r in kubernetes_objects(rendered[stack]) if is_core(r)]
    assert {r.inputs["kind"] for r in core} >= {"Namespace", "ServiceAccount"}
    for resource in core:
        kubernetes_validate.validate(without_secrets(resource.inputs), KUBERNETES_MINOR, strict=True)


def test_the_schema_checks_catch_a_typo():
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x", "lables": {}}},
            KUBERNETES_MINOR,
            strict=True,
        )
    peer: dict[str, Any] = {
        "apiVersion": "security.istio.io/v1",
        "kind": "PeerAuthentication",
        "metadata": {"name": "default", "namespace": "istio-system"},
        "spec": {"mtls": {"mod": "STRICT"}},
    }
    with pytest.raises(Exception, match="mod"):
        validate_against_crd(peer, crd_file(peer["apiVersion"], peer["kind"]))


@pytest.mark.parametrize("stack", STACKS)
def test_every_release_is_pinned_and_sets_only_keys_its_chart_has(rendered, stack):
    releases = rendered[stack].of_type(RELEASE)
    assert len(releases) >= 8
    pinned = {(chart.name, chart.version, chart.repository) for chart in versions.CHARTS.values()}
    for release in releases:
        chart, version = release.inputs["chart"], release.inputs["version"]
        assert (chart, version, release.inputs["repositoryOpts"]["repo"]) in pinned, release.name
        folder = reference_chart(chart, version)
        known = chart_value_paths(folder) | UNLISTED_VALUES.get(chart, set())
        open_maps = open_value_paths(folder) | set(FREE_FORM.get(chart, ()))
        unknown = {
            path
            for path in value_paths(without_secrets(release.inputs.get("values", {})))
            if path not in known and not any(path.startswith(prefix + ".") for prefix in open_maps)
        }
        assert unknown == set(), f"{release.name}: {chart} {version} has no values {sorted(unknown)}"


# Values a chart passes through whole, so their keys are someone else's: grafana.ini is Grafana's
# own configuration file; datasources, dashboardProviders and dashboards are keyed by file and
# dashboard names of our choosing; Kiali copies its values into Kiali's config, whose keys the
# chart's values.yaml lists only in part (external_services is Kiali's CR schema).
FREE_FORM: dict[str, tuple[str, ...]] = {
    "grafana": ("grafana.ini", "datasources", "dashboardProviders", "dashboards"),
    "kiali-server": ("external_services",),
}


def test_the_values_check_catches_a_typo():
    known = chart_value_paths(reference_chart("istiod", versions.ISTIO))
    assert "gateways.seccompProfile" in known
    assert "gateways.secompProfile" not in known


# --- namespaces ---------------------------------------------------------------------------------


def test_namespaces_are_labelled_for_pod_security(lab):
    namespaces = {r.inputs["metadata"]["name"]: r.inputs["metadata"] for r in lab.of_type(NAMESPACE)}
    levels = {name: meta["labels"]["pod-security.kubernetes.io/enforce"] for name, meta in namespaces.items()}
    assert levels == {
        "istio-system": "privileged",
        "metallb-system": "privileged",
        "nfs-provisioner": "baseline",
        "monitoring": "restricted",
        "kyverno": "restricted",
        "ns-test": "restricted",
    }
    for name, meta in namespaces.items():
        labels = meta["labels"]
        for mode in ("audit", "warn"):
            assert labels[f"pod-security.kubernetes.io/{mode}"] == levels[name]
        assert labels["pod-security.kubernetes.io/enforce-version"] == f"v{KUBERNETES_MINOR}"
        reason = meta.get("annotations", {}).get(REASON_ANNOTATION, "")
        assert bool(reason) == (levels[name] != "restricted"), name
        # Only the app's namespace joins the mesh; system namespaces never do.
        assert ("istio.io/dataplane-mode" in labels) == (name == "ns-test")


def test_node_exporter_makes_monitoring_privileged(render_with):
    rendering = render_with({"meshlab:nodeExporterEnabled": True})
    [monitoring] = [r for r in rendering.of_type(NAMESPACE) if r.inputs["metadata"]["name"] == "monitoring"]
    assert monitoring.inputs["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
    assert "node-exporter" in monitoring.inputs["metadata"]["annotations"][REASON_ANNOTATION]


def test_default_service_accounts_stop_mounting_tokens(lab):
    patches = lab.of_type("kubernetes:core/v1:ServiceAccountPatch")
    namespaces = {r.inputs["metadata"]["name"]: r for r in lab.of_type(NAMESPACE)}
    assert len(patches) == len(namespaces) == 6
    for patch in patches:
        assert patch.inputs["automountServiceAccountToken"] is False
        assert patch.inputs["metadata"]["name"] == "default"
        assert depends(patch, namespaces[patch.inputs["metadata"]["namespace"]])


def test_every_kubernetes_object_goes_through_the_cluster_provider(lab):
    [provider] = lab.of_type("pulumi:providers:kubernetes")
    objects = kubernetes_objects(lab)
    assert len(objects) >= 25
    for resource in objects:
        assert resource.provider.startswith(provider.urn + "::"), resource.name


# --- Gateway API and Istio ----------------------------------------------------------------------


def test_gateway_api_crds_are_the_pinned_standard_release(lab):
    [crds] = lab.of_type("kubernetes:yaml/v2:ConfigFile")
    assert crds.inputs["file"] == versions.GATEWAY_API_CRDS_URL
    assert f"/{versions.GATEWAY_API}/standard-install.yaml" in crds.inputs["file"]


def test_istio_installs_in_order_with_the_ambient_profile(lab):
    base, istiod, cni, ztunnel = (lab.named(f"istio-{part}") for part in ("base", "istiod", "cni", "ztunnel"))
    assert depends(base, lab.named("namespaces-istio-system"))
    assert depends(istiod, base) and depends(istiod, lab.named("gateway-api-standard"))
    assert depends(cni, istiod) and depends(cni, lab.named("cluster-ready"))  # after Cilium is healthy
    assert depends(ztunnel, cni)
    for release in (base, istiod, cni, ztunnel):
        assert release.inputs["values"]["profile"] == "ambient"
        assert release.inputs["namespace"] == "istio-system"
        assert release.inputs["version"] == versions.ISTIO
    assert istiod.inputs["values"]["gateways"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert "platform" not in cni.inputs["values"]["global"]  # RKE2 uses the default CNI paths
    assert {"cniConfDir", "cniBinDir"}.isdisjoint(cni.inputs["values"])


@pytest.mark.parametrize("stack", STACKS)
def test_mesh_wide_peer_authentication_is_strict_by_default(rendered, stack):
    [peer] = [r for r in rendered[stack].of_type(PEER) if r.inputs["metadata"]["namespace"] == "istio-system"]
    assert peer.inputs["metadata"] == {"name": "default", "namespace": "istio-system"}
    assert peer.inputs["spec"] == {"mtls": {"mode": "STRICT"}}
    assert depends(peer, rendered[stack].named("istio-base"))


def test_mtls_mode_comes_from_settings(render_with):
    [peer] = [
        r
        for r in render_with({"meshlab:meshMtlsMode": "PERMISSIVE"}).of_type(PEER)
        if r.inputs["metadata"]["namespace"] == "istio-system"
    ]
    assert peer.inputs["spec"]["mtls"]["mode"] == "PERMISSIVE"


def test_lab_uses_istiods_own_ca_and_staging_plugs_one_in(rendered):
    assert rendered["lab"].of_type("meshlab:mesh:MeshCa") == []
    for stack in ("staging", "prod"):
        rendering = rendered[stack]
        [ca] = rendering.of_type("meshlab:mesh:MeshCa")
        [secret] = [r for r in rendering.of_type("kubernetes:core/v1:Secret") if r.parent == ca.urn]
        assert secret.inputs["metadata"]["name"] == "cacerts"
        assert secret.inputs["metadata"]["namespace"] == "istio-system"
        assert secret.inputs["stringData"] == SECRET and "stringData" in secret.secret_paths
        assert depends(rendering.named("istio-istiod"), secret)
        keys = [r for r in rendering.of_type("tls:index/privateKey:PrivateKey") if r.parent == ca.urn]
        assert len(keys) == 2
        assert all({"privateKeyPem", "privateKeyOpenssh"} <= set(k.additional_secret_outputs) for k in keys)
        [root] = rendering.of_type("tls:index/selfSignedCert:SelfSignedCert")
        [intermediate] = rendering.of_type("tls:index/locallySignedCert:LocallySignedCert")
        assert root.inputs["isCaCertificate"] and intermediate.inputs["isCaCertificate"]
        assert intermediate.inputs["validityPeriodHours"] < root.inputs["validityPeriodHours"]
        assert 0 < intermediate.inputs["earlyRenewalHours"] < intermediate.inputs["validityPeriodHours"]
        assert intermediate.inputs["caPrivateKeyPem"] == SECRET


def test_a_shared_root_replaces_the_generated_one(render_with, stack_configs):
    root_cert = "-----BEGIN CERTIFICATE-----\nshared\n-----END CERTIFICATE-----\n"
    rendering = render_with(
        {"meshlab:meshCaRootCertPem": root_cert, "meshlab:meshCaRootKeyPem": "-----BEGIN PRIVATE KEY-----\nk\n"},
        secret_keys=frozenset({"meshlab:meshCaRootKeyPem"}),
        stack="staging",
    )
    assert rendering.of_type("tls:index/selfSignedCert:SelfSignedCert") == []
    [intermediate] = rendering.of_type("tls:index/locallySignedCert:LocallySignedCert")
    assert intermediate.inputs["caCertPem"] == root_cert
    assert intermediate.inputs["caPrivateKeyPem"] == SECRET
    assert "BEGIN PRIVATE KEY" not in json.dumps([r.inputs for r in rendering.resources()])


# --- MetalLB and the ingress --------------------------------------------------------------------


def test_metallb_pool_and_l2_come_after_the_release(lab):
    parts = ("release", "webhook-ready-job", "pool", "l2")
    release, webhook, pool, l2 = (lab.named(f"metallb-{part}") for part in parts)
    assert depends(release, lab.named("namespaces-metallb-system"))
    assert depends(webhook, release)
    assert depends(pool, webhook) and depends(l2, webhook)
    env = {e["name"]: e["value"] for e in webhook.inputs["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["SERVICE"] == "metallb-webhook-service" and env["WEBHOOK_NAME"] == "metallb-webhook-configuration"
    assert webhook.inputs["metadata"]["namespace"] == "metallb-system"
    assert pool.inputs["spec"]["addresses"] == ["192.168.56.200-192.168.56.250"]
    assert l2.inputs["spec"] == {"ipAddressPools": [pool.inputs["metadata"]["name"]], "interfaces": ["hostonly0"]}


def test_the_ingress_is_one_istio_gateway_on_a_fixed_metallb_address(lab):
    [gateway] = [r for r in lab.of_type(GATEWAY) if r.inputs["spec"]["gatewayClassName"] == "istio"]
    spec = gateway.inputs["spec"]
    assert spec["gatewayClassName"] == "istio"
    assert spec["infrastructure"]["annotations"]["metallb.io/loadBalancerIPs"] == "192.168.56.200"
    assert [listener["port"] for listener in spec["listeners"]] == [80]
    for before in ("istio-istiod", "metallb-pool", "metallb-l2"):
        assert depends(gateway, lab.named(before))
    charts = {r.inputs["chart"] for r in lab.of_type(RELEASE)}
    assert "gateway" not in charts  # no second, unused ingress
    assert lab.stack_outputs()["ingressAddress"] == "192.168.56.200"


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Kubernetes label-selector semantics (matchLabels and matchExpressions, all terms ANDed)."""
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for term in selector.get("matchExpressions", []):
        key, operator, wanted = term["key"], term["operator"], term.get("values", [])
        present = key in labels
        if not {
            "In": present and labels.get(key) in wanted,
            "NotIn": not present or labels.get(key) not in wanted,
            "Exists": present,
            "DoesNotExist": not present,
        }[operator]:
            return False
    return True


def admits_routes_from(listener: dict[str, Any], namespace: str) -> bool:
    """Whether an HTTPRoute in `namespace` may attach to the istio-system listener (Gateway API: the
    default is Same; Selector matches the route's namespace labels, which always carry its name)."""
    namespaces = listener.get("allowedRoutes", {}).get("namespaces", {})
    origin = namespaces.get("from", "Same")
    if origin == "All":
        return True
    if origin == "Same":
        return namespace == "istio-system"
    return origin == "Selector" and selects(namespaces["selector"], {"kubernetes.io/metadata.name": namespace})


@pytest.mark.parametrize(
    "overrides",
    [{}, {"meshlab:hubbleEnabled": False}, {"meshlab:rolloutPhase": 3}, {"meshlab:demoL7Routing": True}],
    ids=["lab", "no-hubble", "phase-3", "l7-demo"],
)
def test_the_ingress_admits_routes_only_from_the_namespaces_that_put_routes_on_it(render_with, overrides):
    """A route in any other namespace cannot claim test.test or a UI's hostname."""
    rendering = render_with(overrides)
    [gateway] = [r for r in rendering.of_type(GATEWAY) if r.inputs["spec"]["gatewayClassName"] == "istio"]
    [listener] = gateway.inputs["spec"]["listeners"]
    on_the_ingress = {
        r.inputs["metadata"]["namespace"]
        for r in rendering.of_type("kubernetes:gateway.networking.k8s.io/v1:HTTPRoute")
        if any(parent.get("name") == "ingress" for parent in r.inputs["spec"]["parentRefs"])
    }
    assert "ns-test" in on_the_ingress
    for namespace in on_the_ingress:
        assert admits_routes_from(listener, namespace), namespace
    created = {r.inputs["metadata"]["name"] for r in rendering.of_type(NAMESPACE)}
    for namespace in (created | {"default", "kube-public", "demo"}) - on_the_ingress:
        assert not admits_routes_from(listener, namespace), namespace


def test_the_route_namespace_check_sees_the_open_listener():
    """Guards the test above: `All` admits every namespace, a selector only its own."""
    assert admits_routes_from({"allowedRoutes": {"namespaces": {"from": "All"}}}, "anything")
    selector = {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["a"]}]}
    listener = {"allowedRoutes": {"namespaces": {"from": "Selector", "selector": selector}}}
    assert admits_routes_from(listener, "a") and not admits_routes_from(listener, "b")
    assert not admits_routes_from({}, "a") and admits_routes_from({}, "istio-system")


def test_ingress_address_from_settings(render_with):
    rendering = render_with({"meshlab:ingressAddress": "192.168.56.240"})
    [gateway] = [r for r in rendering.of_type(GATEWAY) if r.inputs["spec"]["gatewayClassName"] == "istio"]
    assert gateway.inputs["spec"]["infrastructure"]["annotations"]["metallb.io/loadBalancerIPs"] == "192.168.56.240"


# --- storage and Kyverno ------------------------------------------------------------------------


def test_nfs_provisioner_points_at_the_cluster_export(lab):
    release = lab.named("nfs-provisioner-release")
    assert release.inputs["namespace"] == "nfs-provisioner"
    values = release.inputs["values"]
    assert values["nfs"] == {"server": "192.168.56.11", "path": "/srv/nfs/kubedata"}
    assert values["storageClass"]["name"] == "nfs-client" and values["storageClass"]["defaultClass"] is True
    assert values["storageClass"]["archiveOnDelete"] is True
    assert lab.stack_outputs()["storageClass"] == "nfs-client"


def test_storage_class_settings(render_with):
    rendering = render_with({"meshlab:nfsStorageClass": "lab-nfs", "meshlab:nfsDefaultStorageClass": False})
    values = rendering.named("nfs-provisioner-release").inputs["values"]["storageClass"]
    assert (values["name"], values["defaultClass"]) == ("lab-nfs", False)


def test_kyverno_hardens_waypoint_pods_after_it_is_ready(lab):
    release, policy = lab.named("kyverno-release"), lab.named("kyverno-waypoint-policy")
    webhook = lab.named("kyverno-webhook-ready-job")
    assert depends(webhook, release) and depends(policy, webhook)
    assert depends(release, lab.named("namespaces-kyverno"))
    [rule] = policy.inputs["spec"]["rules"]
    [match] = rule["match"]["any"]
    assert match["resources"]["selector"]["matchLabels"] == {"gateway.istio.io/managed": "istio.io-mesh-controller"}
    patch = rule["mutate"]["patchStrategicMerge"]["spec"]["securityContext"]
    assert patch == {"seccompProfile": {"type": "RuntimeDefault"}}


def test_kyverno_cannot_block_pods_it_does_not_mutate(lab):
    """Kyverno 1.15 gives a policy with spec.webhookConfiguration.matchConditions a webhook of its own
    carrying those conditions (pkg/controllers/webhook), so the API server calls Kyverno only for the
    pods the policy mutates; failurePolicy Ignore there (the CRD's default is Fail) lets even those
    through when Kyverno is down: istiod's seccomp value is the first line."""
    policy = lab.named("kyverno-waypoint-policy").inputs
    spec = policy["spec"]
    validate_against_crd(policy, crd_file(policy["apiVersion"], policy["kind"]))
    webhook = spec["webhookConfiguration"]
    assert webhook["failurePolicy"] == "Ignore"
    assert "failurePolicy" not in spec  # the deprecated top-level field would compete with it
    [condition] = webhook["matchConditions"]
    # The webhook is narrowed to exactly the label the rule matches on.
    [rule] = spec["rules"]
    [(key, value)] = rule["match"]["any"][0]["resources"]["selector"]["matchLabels"].items()
    expression = condition["expression"]
    assert f"object.metadata.labels['{key}'] == '{value}'" in expression
    # A DELETE has no object; the expression must not fail on it.
    assert expression.startswith("object != null && ")


@pytest.mark.parametrize(("stack", "replicas"), [("lab", 1), ("staging", 1), ("prod", 3)])
def test_kyverno_runs_highly_available_where_the_stack_requires_ha(rendered, stack_configs, stack, replicas):
    requires_ha = stack_configs[stack].values.get("meshlab:requireHa", False)
    admission = rendered[stack].named("kyverno-release").inputs["values"]["admissionController"]
    assert admission["replicas"] == replicas
    assert (replicas == 3) == bool(requires_ha)
    # A disruption budget only where there is a replica to spare; with one it would block every drain.
    assert admission["podDisruptionBudget"]["enabled"] is (replicas > 1)


def test_nfs_provisioner_waits_for_the_nfs_export(lab):
    """The provisioner mounts the export as soon as it starts: the export must exist first."""
    release, export = lab.named("nfs-provisioner-release"), lab.named("cluster-nfs-export")
    assert export.urn in waits_for(lab, release)


@pytest.mark.parametrize("stack", STACKS)
def test_every_chart_waits_for_its_labelled_namespace(rendered, stack):
    rendering = rendered[stack]
    namespaces = {r.inputs["metadata"]["name"]: r.urn for r in rendering.of_type(NAMESPACE)}
    releases = rendering.of_type(RELEASE)
    assert len(releases) == 10
    for release in releases:
        assert namespaces[release.inputs["namespace"]] in waits_for(rendering, release), release.name
