"""What each component registers as its outputs (`register_outputs`): what Pulumi state and `pulumi stack output`
show, and what a reader of the stack trusts. Checked where it matters: each hosts backend and its nodes, the
cluster and its nodes, the NFS export, the ingress and the UIs' URLs, an existing cluster. Expectations come
from the settings, never from the program's own output."""

from __future__ import annotations

from typing import Any

import pytest

from config.loader import StackConfig, settings_from_config
from config.settings import Settings, cluster_name
from tests.test_existing_cluster import existing_config
from tools.render import SECRET, Rendering, render, with_overrides


def outputs_of(rendering: Rendering, type_token: str) -> dict[str, dict[str, Any]]:
    """name -> registered outputs of each component of a type; every one of them registers some."""
    found = {r.name: rendering.outputs.get(r.urn) for r in rendering.of_type(type_token)}
    assert found, f"the stack registers no {type_token}"
    missing = [name for name, outputs in found.items() if outputs is None]
    assert not missing, f"{type_token} {missing} registered no outputs"
    return {name: outputs for name, outputs in found.items() if outputs is not None}


def rendering_config(stack_configs: dict[str, StackConfig], stack: str, overrides: dict[str, Any]) -> StackConfig:
    return with_overrides(stack_configs[stack], overrides)


def expected_nodes(settings: Settings) -> dict[str, str]:
    return {node.name: str(node.ip) for node in settings.topology.nodes}


BACKENDS = {
    # backend: (overrides, stack, the hosts component, the node component)
    "virtualbox": ({}, "lab", "meshlab:hosts:LabHosts", "meshlab:hosts:VirtualBoxVm"),
    "qemu": ({"meshlab:hypervisor": "qemu"}, "lab", "meshlab:hosts:QemuHosts", "meshlab:hosts:QemuVm"),
    "existing": ({}, "prod", "meshlab:hosts:ExistingHosts", "meshlab:hosts:ExistingHost"),
}


@pytest.mark.parametrize("backend", BACKENDS)
def test_each_hosts_backend_outputs_every_node_with_its_address_and_role(render_with, stack_configs, backend):
    overrides, stack, hosts_type, node_type = BACKENDS[backend]
    rendering = render_with(overrides, stack=stack)
    settings = settings_from_config(rendering_config(stack_configs, stack, overrides))
    [hosts] = outputs_of(rendering, hosts_type).values()
    assert hosts == {"nodes": expected_nodes(settings)}
    nodes = outputs_of(rendering, node_type)
    roles = {node.name: node.role for node in settings.topology.nodes}
    assert {name: (out["ip"], out["role"]) for name, out in nodes.items()} == {
        name: (ip, roles[name]) for name, ip in expected_nodes(settings).items()
    }
    for name, out in nodes.items():
        # The machine's identity is what its create step printed (the VM's UUID, the host's machine id):
        # every node step is replaced when it changes.
        identity = out.get("uuid", out.get("machineId"))
        step = rendering.named(f"{name}-vm" if node_type != "meshlab:hosts:ExistingHost" else f"{name}-identity")
        assert identity == f"{step.name} done", name
        if "vmName" in out:
            assert out["vmName"] == f"meshlab-{stack}-{name}"


def test_the_cluster_outputs_its_endpoint_node_count_and_a_secret_kubeconfig(lab, stack_configs):
    settings = settings_from_config(stack_configs["lab"])
    [cluster] = outputs_of(lab, "meshlab:cluster:Rke2Cluster").values()
    assert cluster == {
        "apiEndpoint": f"https://{settings.network.api_vip}:6443",
        "nodes": len(settings.topology.nodes),
        "kubeconfig": SECRET,
    }
    first, *others = settings.topology.servers
    roles = {first.name: "first-server", **{n.name: "server" for n in others}}
    roles |= {n.name: "agent" for n in settings.topology.agents}
    nodes = outputs_of(lab, "meshlab:cluster:Rke2Node")
    assert {out["node"]: out["joinRole"] for out in nodes.values()} == roles
    [nfs] = outputs_of(lab, "meshlab:cluster:NfsServer").values()
    assert nfs == {"server": str(first.ip), "path": settings.cluster.nfs_export_path}
    stack = lab.stack_outputs()
    assert stack["apiEndpoint"] == cluster["apiEndpoint"] and stack["kubeconfig"] == SECRET
    assert stack["clusterName"] == cluster_name("lab")


def test_the_ingress_and_every_ui_output_the_addresses_a_user_opens(render_with, stack_configs):
    overrides = {"meshlab:ingressAddress": "192.168.56.222", "meshlab:ingressDomain": "example"}
    rendering = render_with(overrides)
    settings = settings_from_config(rendering_config(stack_configs, "lab", overrides))
    [ingress] = outputs_of(rendering, "meshlab:network:IngressGateway").values()
    assert ingress == {"address": "192.168.56.222"}
    urls = {
        "meshlab:observability:Grafana": "http://grafana.example/",
        "meshlab:observability:Kiali": "http://kiali.example/",
        "meshlab:observability:HubbleUi": "http://hubble.example/",
        "meshlab:apps:WebTest": f"http://{settings.apps.test_app_hostname}/",
    }
    for type_token, url in urls.items():
        [out] = outputs_of(rendering, type_token).values()
        assert out["url"] == url, type_token
    stack = rendering.stack_outputs()
    assert stack["ingressAddress"] == "192.168.56.222"
    assert set(stack["urls"].values()) == set(urls.values())
    assert stack["hostsFileEntry"].split()[0] == "192.168.56.222"
    # The default: the pool's first address.
    [default] = outputs_of(render_with({}), "meshlab:network:IngressGateway").values()
    assert default == {"address": str(settings.network.metallb_pool.first)}


def test_an_existing_cluster_outputs_the_endpoint_of_its_kubeconfig():
    rendering = render(existing_config(), "mycluster")
    [cluster] = outputs_of(rendering, "meshlab:cluster:ExistingCluster").values()
    assert cluster == {"apiEndpoint": "https://127.0.0.1:6443"}
    assert not rendering.of_type("meshlab:cluster:Rke2Cluster")
