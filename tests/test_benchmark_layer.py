"""`meshlab:benchmark`: the four data paths the mesh benchmark compares, under mocks."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from meshlab_policy.catalog import Enforcement
from meshlab_policy.engine import load_pack_config, resolve, run_policies, stack_config_path
from meshlab_policy.kube import Resource
from meshlab_policy.pod_security import Level, evaluate_pod

from config.loader import settings_from_config
from config.validation import SettingsError
from tests.conftest import STACKS
from tools.render import Registration, Rendering, with_overrides

ON = {"meshlab:benchmark": "on"}
ENFORCE = "pod-security.kubernetes.io/enforce"
MESH_LABELS = ("istio-injection", "istio.io/dataplane-mode", "istio.io/use-waypoint", "istio.io/rev")


def bench_objects(rendering: Rendering) -> dict[str, Registration]:
    """The benchmark's Kubernetes objects by kind/namespace/name."""
    [bench] = rendering.of_type("meshlab:apps:MeshBenchmark")
    return {
        "/".join([r.inputs["kind"], r.inputs["metadata"].get("namespace", ""), r.inputs["metadata"]["name"]]): r
        for r in rendering.descendants(bench.urn)
        if r.custom and "kind" in r.inputs
    }


def namespaces(rendering: Rendering) -> dict[str, dict[str, str]]:
    return {
        r.inputs["metadata"]["name"]: r.inputs["metadata"]["labels"]
        for key, r in bench_objects(rendering).items()
        if key.startswith("Namespace/")
    }


def mesh_labels(labels: dict[str, str]) -> dict[str, str]:
    return {key: value for key, value in labels.items() if key in MESH_LABELS}


@pytest.fixture(scope="module")
def on(render_with) -> Rendering:
    rendering: Rendering = render_with(ON)
    return rendering


def test_off_renders_nothing_of_the_benchmark(lab):
    assert lab.of_type("meshlab:apps:MeshBenchmark") == []
    names = {r.inputs.get("metadata", {}).get("name", "") for r in lab.resources() if r.custom}
    assert not [name for name in names if name.startswith(("bench-", "fortio"))]
    assert "pilot" not in lab.named("istio-istiod").inputs["values"]


def test_on_adds_only_the_benchmark_and_two_values(lab, on):
    before = {r.urn: r for r in lab.resources()}
    after = {r.urn: r for r in on.resources()}
    [bench] = on.of_type("meshlab:apps:MeshBenchmark")
    assert set(after) - set(before) == {bench.urn} | {r.urn for r in on.descendants(bench.urn)}
    assert set(before) <= set(after)
    changed = {after[urn].name for urn in before if before[urn].inputs != after[urn].inputs}
    assert changed == {"istio-istiod", "prometheus-release"}


def test_four_namespaces_differ_only_in_their_data_path(on):
    found = {name: mesh_labels(labels) for name, labels in namespaces(on).items()}
    assert found == {
        "bench-none": {},
        "bench-sidecar": {"istio-injection": "enabled"},
        "bench-ambient": {"istio.io/dataplane-mode": "ambient"},
        "bench-waypoint": {"istio.io/dataplane-mode": "ambient", "istio.io/use-waypoint": "waypoint"},
    }
    rest = [{k: v for k, v in labels.items() if k not in MESH_LABELS} for labels in namespaces(on).values()]
    assert all(labels == rest[0] for labels in rest)
    assert rest[0][ENFORCE] == "restricted"


def test_every_benchmark_pod_is_restricted_and_resourced(on):
    objects = bench_objects(on)
    deployments = [r for key, r in objects.items() if key.startswith("Deployment/")]
    assert len(deployments) == 8
    for deployment in deployments:
        template = deployment.inputs["spec"]["template"]
        assert evaluate_pod(template["metadata"], template["spec"], Level.RESTRICTED) == [], deployment.name
        [container] = template["spec"]["containers"]
        assert container["image"].startswith("docker.io/fortio/fortio:")
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert set(container["resources"]) == {"requests", "limits"}
        assert template["spec"]["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}


def test_servers_and_clients_sit_on_two_fixed_nodes_of_the_topology(on, stack_configs):
    settings = settings_from_config(with_overrides(stack_configs["lab"], ON))
    agents = [node.name for node in settings.topology.agents]
    placement: dict[str, set[str]] = {"fortio-server": set(), "fortio-client": set()}
    for key, r in bench_objects(on).items():
        if key.startswith("Deployment/"):
            placement[r.inputs["metadata"]["name"]].add(
                r.inputs["spec"]["template"]["spec"]["nodeSelector"]["kubernetes.io/hostname"]
            )
    [server], [client] = placement["fortio-server"], placement["fortio-client"]
    assert server != client and {server, client} <= set(agents)
    options = bench_objects(on)["ConfigMap/bench-waypoint/waypoint-placement"].inputs["data"]["deployment"]
    assert f"kubernetes.io/hostname: {server}" in options


def test_a_single_node_lab_puts_both_on_it(render_with, stack_configs):
    servers = stack_configs["lab"].values["meshlab:servers"]
    first = (json.loads(servers) if isinstance(servers, str) else servers)[0]
    rendering = render_with({**ON, "meshlab:agents": [], "meshlab:servers": [first]})
    selectors = {
        r.inputs["spec"]["template"]["spec"]["nodeSelector"]["kubernetes.io/hostname"]
        for key, r in bench_objects(rendering).items()
        if key.startswith("Deployment/")
    }
    assert selectors == {first.split("=")[0].strip()}


def test_only_the_waypoint_case_has_a_waypoint_and_the_client_loads_the_service(on):
    objects = bench_objects(on)
    gateways = [r for key, r in objects.items() if key.startswith("Gateway/")]
    assert [g.inputs["metadata"]["namespace"] for g in gateways] == ["bench-waypoint"]
    [gateway] = gateways
    assert gateway.inputs["spec"]["gatewayClassName"] == "istio-waypoint"
    ref = gateway.inputs["spec"]["infrastructure"]["parametersRef"]
    assert f"ConfigMap/bench-waypoint/{ref['name']}" in objects
    assert objects[f"ConfigMap/bench-waypoint/{ref['name']}"].urn in gateway.dependencies
    for namespace in ("bench-none", "bench-sidecar", "bench-ambient", "bench-waypoint"):
        service = objects[f"Service/{namespace}/fortio-server"].inputs["spec"]
        assert service["selector"] == {"app": "fortio-server"}
        assert service["ports"][0]["appProtocol"] == "http"


def test_benchmark_namespaces_wait_for_the_data_plane(on):
    ztunnel = on.named("istio-ztunnel")
    for key, r in bench_objects(on).items():
        if key.startswith("Namespace/"):
            assert ztunnel.urn in r.dependencies, key


def test_on_tells_istiod_to_inject_cni_sidecars_and_prometheus_to_scrape_cadvisor(on):
    assert on.named("istio-istiod").inputs["values"]["pilot"] == {"cni": {"enabled": True}}
    jobs = on.named("prometheus-release").inputs["values"]["serverFiles"]["prometheus.yml"]["scrape_configs"]
    [cadvisor] = [job for job in jobs if job["job_name"] == "kubelet-cadvisor"]
    paths = [rule.get("replacement") for rule in cadvisor["relabel_configs"]]
    assert "/api/v1/nodes/$1/proxy/metrics/cadvisor" in paths


# What istiod 1.27's injector adds to a pod (manifests/charts/istio-control/istio-discovery/files/
# injection-template.yaml), by `pilot.cni.enabled`: with it, istio-validation as uid 1337 without
# capabilities; without it, istio-init as root adding NET_ADMIN and NET_RAW. istio-proxy is the same
# in both: uid 1337, drop ALL, no privilege escalation, read-only root.
ISTIO_PROXY = {
    "name": "istio-proxy",
    "securityContext": {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "runAsGroup": 1337,
        "runAsNonRoot": True,
        "runAsUser": 1337,
    },
}
INIT = {
    True: {
        "name": "istio-validation",
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
            "runAsGroup": 1337,
            "runAsUser": 1337,
            "runAsNonRoot": True,
        },
    },
    False: {
        "name": "istio-init",
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "capabilities": {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]},
            "readOnlyRootFilesystem": False,
            "runAsGroup": 0,
            "runAsNonRoot": False,
            "runAsUser": 0,
        },
    },
}


def injected(template: dict[str, Any], cni: bool) -> dict[str, Any]:
    spec = dict(template["spec"])
    spec["initContainers"] = [INIT[cni]]
    spec["containers"] = [*spec["containers"], ISTIO_PROXY]
    return spec


def test_the_sidecar_namespace_can_stay_restricted_only_because_sidecars_use_istio_cni(on):
    """The pod as the injector would change it: restricted with pilot.cni.enabled (the benchmark's
    istiod), refused even by baseline without it (the istiod every other lab runs)."""
    deployment = bench_objects(on)["Deployment/bench-sidecar/fortio-server"]
    template = deployment.inputs["spec"]["template"]
    assert evaluate_pod(template["metadata"], injected(template, cni=True), Level.RESTRICTED) == []
    assert evaluate_pod(template["metadata"], injected(template, cni=False), Level.BASELINE) != []


@pytest.mark.parametrize("stack", STACKS)
def test_the_policy_pack_passes_with_the_benchmark_on(render_with, stack):
    rendering = render_with(ON, stack=stack)
    resources = [Resource(type=r.type, name=r.name, urn=r.urn, props=r.inputs) for r in rendering.resources()]
    violations = run_policies(resources, resolve(load_pack_config(stack_config_path(stack))))
    assert [v for v in violations if v.enforcement is Enforcement.MANDATORY] == []
    assert rendering.of_type("meshlab:apps:MeshBenchmark")


def test_the_benchmark_needs_phase_3(stack_configs):
    config = with_overrides(stack_configs["lab"], {**ON, "meshlab:rolloutPhase": 2})
    with pytest.raises(SettingsError, match=re.escape("meshlab:benchmark = on: needs meshlab:rolloutPhase 3")):
        settings_from_config(config)
    assert settings_from_config(with_overrides(stack_configs["lab"], {**ON, "meshlab:rolloutPhase": 3}))


def test_the_benchmark_is_on_or_off(stack_configs):
    with pytest.raises(SettingsError, match="meshlab:benchmark"):
        settings_from_config(with_overrides(stack_configs["lab"], {"meshlab:benchmark": "yes"}))
