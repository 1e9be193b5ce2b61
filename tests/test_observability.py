"""The observability layer under mocks: what Prometheus scrapes, Grafana's and Kiali's wiring,
the UIs on the ingress, and pods that stay within Pod Security restricted."""

from __future__ import annotations

import json
from ipaddress import IPv4Address, IPv4Network
from typing import Any

import kubernetes_validate
from meshlab_policy.pod_security import Level, evaluate_pod

from config import versions
from tests.kube_reference import chart_defaults, merged, reference_chart
from tools.render import SECRET, Registration, Rendering

KUBERNETES_MINOR = ".".join(versions.KUBERNETES.lstrip("v").split(".")[:2])


def values(rendering: Rendering, release: str) -> dict[str, Any]:
    found = rendering.named(f"{release}-release").inputs["values"]
    assert isinstance(found, dict), f"{release}'s values must stay readable, not {found!r}"
    return found


def chart_values(rendering: Rendering, release: str) -> dict[str, Any]:
    """What Helm renders with: the chart's defaults merged with ours."""
    resource = rendering.named(f"{release}-release")
    defaults = chart_defaults(reference_chart(resource.inputs["chart"], resource.inputs["version"]))
    result: dict[str, Any] = merged(defaults, values(rendering, release))
    return result


def restricted_findings(pod_spec: dict[str, Any]) -> list[str]:
    """The pod checked as the cluster will: the Kubernetes 1.32 schema, then PSA restricted."""
    metadata: dict[str, Any] = {"name": "model"}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": pod_spec}
    kubernetes_validate.validate(pod, KUBERNETES_MINOR, strict=True)
    return [f"{finding.check}: {finding.detail}" for finding in evaluate_pod(metadata, pod_spec, Level.RESTRICTED)]


def container(name: str, context: dict[str, Any] | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": name, "image": f"example.invalid/{name}:1"}
    if context:
        spec["securityContext"] = context
    return spec


# --- Prometheus ---------------------------------------------------------------------------------


def test_prometheus_scrapes_the_mesh_and_cilium(lab):
    jobs = {
        job["job_name"]: job for job in values(lab, "prometheus")["serverFiles"]["prometheus.yml"]["scrape_configs"]
    }
    assert {"istiod", "ztunnel", "istio-waypoints-and-gateways", "cilium-agent", "cilium-operator", "hubble"} <= set(
        jobs
    )
    keep = jobs["istiod"]["relabel_configs"][0]
    assert keep["regex"] == "istiod;http-monitoring" and keep["action"] == "keep"
    ports = {
        name: next(r["replacement"] for r in jobs[name]["relabel_configs"] if r.get("target_label") == "__address__")
        for name in ("ztunnel", "cilium-agent", "cilium-operator", "hubble")
    }
    assert ports == {
        "ztunnel": "$1:15020",
        "cilium-agent": "$1:9962",
        "cilium-operator": "$1:9963",
        "hubble": "$1:9965",
    }
    assert jobs["ztunnel"]["metrics_path"] == "/stats/prometheus"
    # The chart's annotation-driven jobs are replaced, so no pod is scraped twice.
    assert "kubernetes-pods" not in jobs


def test_the_hubble_job_exists_only_with_hubble(lab, render_with):
    """Without Hubble, nothing serves :9965 and the job would only add a target that is always down."""

    def jobs(rendering: Rendering) -> set[str]:
        return {
            job["job_name"]
            for job in values(rendering, "prometheus")["serverFiles"]["prometheus.yml"]["scrape_configs"]
        }

    with_hubble, without_hubble = jobs(lab), jobs(render_with({"meshlab:hubbleEnabled": False}))
    assert "hubble" in with_hubble and "hubble" not in without_hubble
    # Only that job goes: Cilium's own metrics stay.
    assert with_hubble - without_hubble == {"hubble"}


def test_prometheus_subcharts_and_retention_follow_settings(lab, render_with):
    chosen = values(lab, "prometheus")
    assert chosen["alertmanager"] == {"enabled": False}
    assert chosen["prometheus-pushgateway"] == {"enabled": False}
    assert chosen["prometheus-node-exporter"] == {"enabled": False}
    assert chosen["server"]["retention"] == "7d"
    assert chosen["server"]["persistentVolume"] == {"enabled": False}
    other = values(
        render_with({"meshlab:nodeExporterEnabled": True, "meshlab:prometheusRetention": "24h"}), "prometheus"
    )
    assert other["prometheus-node-exporter"] == {"enabled": True}
    assert other["server"]["retention"] == "24h"


def test_prometheus_server_pod_is_restricted(lab):
    chart = chart_values(lab, "prometheus")
    server = chart["server"]
    pod = {
        "securityContext": server["securityContext"],
        "containers": [
            container("prometheus-server", server["containerSecurityContext"]),
            container("configmap-reload", chart["configmapReload"]["prometheus"]["containerSecurityContext"]),
        ],
        "volumes": [
            {"name": "config-volume", "configMap": {"name": "prometheus-server"}},
            {"name": "storage-volume", "emptyDir": {}},
        ],
    }
    assert restricted_findings(pod) == []


def test_prometheus_server_is_deleted_within_the_namespace_controllers_patience(lab):
    """The real-apply tier's rollback 4 -> 3 took 200 s, 162 s of it the monitoring namespace waiting for the
    chart's 300 s grace period of a server whose TSDB is an emptyDir that dies with it anyway."""
    resource = lab.named("prometheus-release")
    defaults = chart_defaults(reference_chart(resource.inputs["chart"], resource.inputs["version"]))
    assert defaults["server"]["terminationGracePeriodSeconds"] == 300  # what the chart would wait
    server = chart_values(lab, "prometheus")["server"]
    assert server["persistentVolume"]["enabled"] is False
    assert server["terminationGracePeriodSeconds"] <= 30


def test_the_pod_model_fails_with_the_chart_defaults_alone(lab):
    """Guards the test above: without meshlab's values the server pod is not restricted."""
    resource = lab.named("prometheus-release")
    defaults = chart_defaults(reference_chart(resource.inputs["chart"], resource.inputs["version"]))
    pod = {
        "securityContext": defaults["server"]["securityContext"],
        "containers": [container("prometheus-server", defaults["server"]["containerSecurityContext"])],
    }
    assert {finding.split(":")[0] for finding in restricted_findings(pod)} >= {
        "seccompProfile_restricted",
        "allowPrivilegeEscalation",
    }


# --- Grafana ------------------------------------------------------------------------------------


def test_grafana_reads_its_password_from_a_secret_and_prometheus_as_data_source(lab):
    chosen = values(lab, "grafana")
    [secret] = [r for r in lab.of_type("kubernetes:core/v1:Secret") if r.name == "grafana-admin"]
    assert chosen["admin"]["existingSecret"] == secret.inputs["metadata"]["name"]
    assert secret.inputs["stringData"] == SECRET and "stringData" in secret.secret_paths
    assert secret.urn in lab.named("grafana-release").dependencies
    [source] = chosen["datasources"]["datasources.yaml"]["datasources"]
    assert (source["type"], source["url"], source["isDefault"]) == (
        "prometheus",
        "http://prometheus-server.monitoring.svc",
        True,
    )
    assert lab.stack_outputs()["grafanaAdminPassword"] == SECRET


def test_grafana_provisions_the_pinned_istio_and_cilium_dashboards(lab):
    chosen = values(lab, "grafana")
    providers = {
        p["name"]: p["options"]["path"] for p in chosen["dashboardProviders"]["dashboardproviders.yaml"]["providers"]
    }
    assert set(providers) == set(chosen["dashboards"]) == {"istio", "cilium"}
    for folder, dashboards in versions.GRAFANA_DASHBOARDS.items():
        assert providers[folder].endswith(f"/{folder}")
        for name, pinned in dashboards.items():
            entry = chosen["dashboards"][folder][name]
            assert (entry["gnetId"], entry["revision"]) == (pinned.gnet_id, pinned.revision)
            assert entry["datasource"] == [{"name": "DS_PROMETHEUS", "value": "prometheus"}]
    ids = {d.gnet_id for folder in versions.GRAFANA_DASHBOARDS.values() for d in folder.values()}
    assert {7639, 16611} <= ids  # the Istio mesh and Cilium agent dashboards


# grafana.com's id of Istio's "Istio Ztunnel Dashboard" (grafana.com/grafana/dashboards/21306-istio-ztunnel-dashboard).
ZTUNNEL_DASHBOARD = 21306


def test_grafana_has_a_pinned_ztunnel_dashboard_next_to_the_scrape_job_it_reads(lab):
    """Ambient's data plane is ztunnel: the lab shows it, from the ztunnel job Prometheus scrapes."""
    chosen = values(lab, "grafana")
    [(name, entry)] = [
        (name, entry)
        for folder in chosen["dashboards"].values()
        for name, entry in folder.items()
        if entry["gnetId"] == ZTUNNEL_DASHBOARD
    ]
    assert name in chosen["dashboards"]["istio"]
    # Pinned: the chart downloads a given revision, never "latest".
    assert isinstance(entry["revision"], int) and entry["revision"] >= 1
    jobs = {job["job_name"] for job in values(lab, "prometheus")["serverFiles"]["prometheus.yml"]["scrape_configs"]}
    assert "ztunnel" in jobs


def test_grafana_pods_are_restricted(lab):
    chart = chart_values(lab, "grafana")
    assert chart["persistence"]["enabled"] is False and chart["initChownData"]["enabled"] is False
    pod = {
        "securityContext": chart["securityContext"],
        # Dashboards from grafana.com are fetched by an init container.
        "initContainers": [container("download-dashboards", chart["downloadDashboards"]["securityContext"])],
        "containers": [container("grafana", chart["containerSecurityContext"])],
        "volumes": [{"name": "storage", "emptyDir": {}}, {"name": "config", "configMap": {"name": "grafana"}}],
    }
    assert restricted_findings(pod) == []


# --- Kiali --------------------------------------------------------------------------------------


def test_kiali_is_wired_to_prometheus_and_grafana(lab, rendered):
    chosen = values(lab, "kiali")
    services = chosen["external_services"]
    assert services["prometheus"]["url"] == "http://prometheus-server.monitoring.svc"
    assert services["grafana"]["internal_url"] == "http://grafana.monitoring.svc"
    assert services["grafana"]["external_url"] == "http://grafana.lab/"
    assert chosen["auth"]["strategy"] == "anonymous"
    assert values(rendered["staging"], "kiali")["auth"]["strategy"] == "token"
    release = lab.named("kiali-release")
    assert release.inputs["namespace"] == "istio-system"
    assert lab.named("istio-istiod").urn in release.dependencies


def kiali_cluster_role(chart: dict[str, Any]) -> str:
    """The ClusterRole the kiali-server chart binds Kiali's ServiceAccount to: its read-only `kiali-viewer`
    unless the login is anonymous and view-only mode is off, then `kiali`, which may create, patch and
    delete Istio configuration (kiali/helm-charts kiali-server/templates/clusterrolebinding.yaml, the
    `or view_only_mode (ne auth.strategy "anonymous")` condition)."""
    viewer = chart["deployment"]["view_only_mode"] is True or chart["auth"]["strategy"] != "anonymous"
    return "kiali-viewer" if viewer else "kiali"


def test_an_anonymous_kiali_is_view_only_and_bound_to_the_read_only_role(rendered, render_with):
    """Anyone on the ingress can open an anonymous Kiali: it must not be able to change the mesh."""
    lab = chart_values(rendered["lab"], "kiali")
    assert lab["auth"]["strategy"] == "anonymous"  # the case that matters is really rendered
    assert lab["deployment"]["view_only_mode"] is True
    assert kiali_cluster_role(lab) == "kiali-viewer"
    # Without meshlab's value the chart would bind the writable role.
    assert kiali_cluster_role(merged(lab, {"deployment": {"view_only_mode": False}})) == "kiali"
    # Anonymous anywhere is view-only, not just in the lab's stack file.
    staging = chart_values(render_with({"meshlab:kialiAuthStrategy": "anonymous"}, stack="staging"), "kiali")
    assert staging["deployment"]["view_only_mode"] is True
    # A token login acts with each user's own RBAC, so writes stay possible for those allowed them.
    token = chart_values(rendered["staging"], "kiali")
    assert token["auth"]["strategy"] == "token" and token["deployment"]["view_only_mode"] is False


GRAFANA_PASSWORD_MOUNT = "/kiali-override-secrets/grafana-password"


def test_kiali_logs_in_to_grafana_with_a_secret_it_mounts(lab):
    """Kiali reads /kiali-override-secrets/grafana-password/value.txt over the configured password
    (kiali/kiali config/config.go); the chart mounts a Secret there through deployment.custom_secrets."""
    chosen = values(lab, "kiali")
    auth = chosen["external_services"]["grafana"]["auth"]
    # Grafana's only user is its admin (docs/platform.md); the chart has no read-only one to offer.
    assert (auth["type"], auth["username"]) == ("basic", "admin")
    # The password never sits in the values (they are readable in every diff).
    assert "password" not in auth and "[secret]" not in json.dumps(chosen)
    [mount] = [s for s in chosen["deployment"]["custom_secrets"] if s["mount"] == GRAFANA_PASSWORD_MOUNT]
    [secret] = [
        r
        for r in lab.of_type("kubernetes:core/v1:Secret")
        if r.inputs["metadata"] == {"name": mount["name"], "namespace": "istio-system"}
    ]
    assert secret.inputs["stringData"] == SECRET and "stringData" in secret.secret_paths
    # The value is Grafana's generated admin password, and the Secret exists before Kiali starts.
    assert lab.named("grafana-admin-password").urn in secret.property_dependencies["stringData"]
    assert secret.urn in lab.named("kiali-release").dependencies


def test_kiali_pod_is_restricted(lab):
    chart = chart_values(lab, "kiali")
    pod = {"containers": [container("kiali", chart["deployment"]["security_context"])]}
    assert restricted_findings(pod) == []


# --- the UIs on the ingress ----------------------------------------------------------------------


def routes(rendering: Rendering) -> dict[str, Registration]:
    found = rendering.of_type("kubernetes:gateway.networking.k8s.io/v1:HTTPRoute")
    return {r.inputs["spec"]["hostnames"][0]: r for r in found}


def test_each_ui_has_a_hostname_on_the_ingress(lab):
    [gateway] = [
        r
        for r in lab.of_type("kubernetes:gateway.networking.k8s.io/v1:Gateway")
        if r.inputs["metadata"]["name"] == "ingress"
    ]
    by_host = routes(lab)
    expected = {
        "test.test": ("ns-test", "web-test-service", 80),
        "grafana.lab": ("monitoring", "grafana", 80),
        "kiali.lab": ("istio-system", "kiali", 20001),
        "hubble.lab": ("kube-system", "hubble-ui", 80),
    }
    assert set(by_host) == set(expected)
    for host, (namespace, service, port) in expected.items():
        route = by_host[host]
        assert route.inputs["metadata"]["namespace"] == namespace
        [parent] = route.inputs["spec"]["parentRefs"]
        assert (parent["name"], parent["namespace"]) == (gateway.inputs["metadata"]["name"], "istio-system")
        [rule] = route.inputs["spec"]["rules"]
        assert rule["backendRefs"] == [{"name": service, "port": port}]
        assert gateway.urn in route.dependencies


def test_hubble_ui_admits_the_ingress_gateway_through_kube_systems_policy(lab):
    [policy] = [
        r
        for r in lab.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")
        if r.inputs["metadata"]["namespace"] == "kube-system"
    ]
    spec = policy.inputs["spec"]
    assert policy.inputs["metadata"]["namespace"] == "kube-system"
    assert spec["podSelector"] == {"matchLabels": {"k8s-app": "hubble-ui"}}
    [peer] = spec["ingress"][0]["from"]
    assert peer["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "istio-system"}
    assert peer["podSelector"]["matchLabels"] == {"gateway.networking.k8s.io/gateway-name": "ingress"}


def test_no_hubble_route_without_hubble(render_with):
    rendering = render_with({"meshlab:hubbleEnabled": False})
    assert set(routes(rendering)) == {"grafana.lab", "kiali.lab", "test.test"}
    assert "hubble" not in rendering.stack_outputs()["urls"]


def test_urls_and_hosts_file_entry_are_stack_outputs(lab, rendered):
    outputs = lab.stack_outputs()
    assert outputs["urls"] == {
        "grafana": "http://grafana.lab/",
        "kiali": "http://kiali.lab/",
        "hubble": "http://hubble.lab/",
        "testApp": "http://test.test/",
    }
    address, *names = outputs["hostsFileEntry"].split()
    assert address == "192.168.56.200"
    assert sorted(names) == ["grafana.lab", "hubble.lab", "kiali.lab", "test.test"]
    staging = rendered["staging"].stack_outputs()["hostsFileEntry"].split()
    assert staging[0] == "192.168.57.200" and "grafana.staging.lab" in staging


def test_hosts_file_entry_points_every_ui_at_the_ingress(lab):
    address, *names = lab.stack_outputs()["hostsFileEntry"].split()
    assert IPv4Address(address) in IPv4Network("192.168.56.0/24")
    assert sorted(names) == sorted(
        url.removeprefix("http://").rstrip("/") for url in lab.stack_outputs()["urls"].values()
    )
