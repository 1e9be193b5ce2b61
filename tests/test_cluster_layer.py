"""The cluster layer under mocks: files it writes, join and upgrade order, secrets, provider."""

from __future__ import annotations

import itertools
import json
import re
import shlex

import jsonschema
import pytest
import yaml

from components.cluster.files import (
    api_endpoint,
    cilium_values,
    rewrite_kubeconfig,
    rke2_config,
)
from config import versions
from config.loader import StackConfig, settings_from_config
from config.settings import Settings
from tests.conftest import STACKS, depends
from tests.kube_reference import (
    CHARTS,
    CRDS,
    documented_value_paths,
    merged,
    validate_against_crd,
    value_paths,
)
from tools.render import MOCK_KUBECONFIG, MOCK_TOKEN, SECRET, Registration, Rendering

REMOTE = "command:remote:Command"
COPY = "command:remote:CopyToRemote"
NODE = "meshlab:cluster:Rke2Node"
RKE2_CILIUM = CHARTS / f"rke2-cilium-{versions.RKE2_CILIUM_CHART}"
SERVERS = ("master1", "master2", "master3")
AGENTS = ("worker1", "worker2", "worker3")


@pytest.fixture(scope="module")
def lab_settings(stack_configs: dict[str, StackConfig]) -> Settings:
    return settings_from_config(stack_configs["lab"])


def step(rendering: Rendering, node: str, kind: str) -> Registration:
    return rendering.named(f"cluster-{node}-{kind}")


def script_inputs(command: str) -> dict[str, str]:
    """The inputs a step's command exports at the top of its script."""
    sudo, _, bash, _, script = shlex.split(command)
    assert (sudo, bash) == ("sudo", "bash")
    header = script.split("#!/usr/bin/env bash")[0]
    return dict(shlex.split(line)[1].split("=", 1) for line in header.splitlines())


def copied_text(rendering: Rendering, node: str, file: str) -> str:
    source = step(rendering, node, f"copy-{file}").inputs["source"]
    assert isinstance(source, dict), f"{file} on {node} is secret or missing"
    text: str = source["text"]
    return text


# --- what each stack registers ------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_one_cluster_with_a_node_component_per_vm(rendered, stack_configs, stack):
    settings = settings_from_config(stack_configs[stack])
    rendering = rendered[stack]
    [cluster] = rendering.of_type("meshlab:cluster:Rke2Cluster")
    assert cluster.inputs["servers"] == [node.name for node in settings.topology.servers]
    assert cluster.inputs["agents"] == [node.name for node in settings.topology.agents]
    nodes = {r.inputs["node"]: r.inputs["joinRole"] for r in rendering.of_type(NODE)}
    first, *others = settings.topology.servers
    assert nodes == {
        first.name: "first-server",
        **{node.name: "server" for node in others},
        **{node.name: "agent" for node in settings.topology.agents},
    }


# --- config.yaml -------------------------------------------------------------------------------


def test_first_server_config(lab_settings):
    first = lab_settings.topology.servers[0]
    config = yaml.safe_load(rke2_config(first, "first-server", lab_settings, "t0ken"))
    assert "server" not in config
    assert config["token"] == "t0ken"
    assert config["node-ip"] == "192.168.56.11" and config["node-name"] == "master1"
    assert config["tls-san"][0] == "192.168.56.10"
    assert set(config["tls-san"]) == {"192.168.56.10", "192.168.56.11", "192.168.56.12", "192.168.56.13"}
    assert config["cni"] == "cilium"
    assert config["disable-kube-proxy"] is True
    assert config["profile"] == "cis"
    assert config["ingress-controller"] == "none"
    assert (config["cluster-cidr"], config["service-cidr"], config["cluster-dns"]) == (
        "10.42.0.0/16",
        "10.43.0.0/16",
        "10.43.0.10",
    )
    assert config["etcd-snapshot-schedule-cron"] == lab_settings.cluster.etcd_snapshot_schedule
    assert config["etcd-snapshot-retention"] == lab_settings.cluster.etcd_snapshot_retention
    assert "service-account-extend-token-expiration=false" in config["kube-apiserver-arg"]


def test_joining_servers_share_the_critical_values_and_join_through_the_vip(lab_settings):
    first, second, _ = lab_settings.topology.servers
    leader = yaml.safe_load(rke2_config(first, "first-server", lab_settings, "t"))
    joiner = yaml.safe_load(rke2_config(second, "server", lab_settings, "t"))
    assert joiner["server"] == "https://192.168.56.10:9345"
    assert joiner["node-ip"] == "192.168.56.12"
    # RKE2 refuses a join when any of these differ between servers.
    for critical in ("disable-kube-proxy", "cluster-cidr", "service-cidr", "cluster-dns", "cni", "profile"):
        assert joiner[critical] == leader[critical], critical


def test_agent_config_is_minimal(lab_settings):
    agent = lab_settings.topology.agents[0]
    config = yaml.safe_load(rke2_config(agent, "agent", lab_settings, "t"))
    assert config == {
        "server": "https://192.168.56.10:9345",
        "token": "t",
        "node-name": "worker1",
        "node-ip": "192.168.56.21",
        "profile": "cis",
    }


def test_dns_name_and_cidrs_from_settings(stack_configs):
    config = StackConfig(
        {
            **stack_configs["lab"].values,
            "meshlab:apiDnsName": "api.meshlab.test",
            "meshlab:clusterCidr": "10.60.0.0/16",
            "meshlab:serviceCidr": "10.61.0.0/16",
            "meshlab:etcdSnapshotSchedule": "15 3 * * *",
            "meshlab:etcdSnapshotRetention": 30,
        }
    )
    settings = settings_from_config(config)
    document = yaml.safe_load(rke2_config(settings.topology.servers[1], "server", settings, "t"))
    assert document["tls-san"][-1] == "api.meshlab.test"
    assert (document["cluster-cidr"], document["service-cidr"], document["cluster-dns"]) == (
        "10.60.0.0/16",
        "10.61.0.0/16",
        "10.61.0.10",
    )
    assert (document["etcd-snapshot-schedule-cron"], document["etcd-snapshot-retention"]) == ("15 3 * * *", 30)


def test_config_copies_are_secret_and_the_digest_ignores_the_token(lab):
    for node in (*SERVERS, *AGENTS):
        copy = step(lab, node, "copy-rke2-config")
        assert copy.inputs["source"] == SECRET and "source" in copy.secret_paths
        assert copy.inputs["remotePath"] == "/home/meshlab/.meshlab-staging/rke2-config.yaml"
    # The start step carries a digest of the config; it must not be secret, or the whole script would be.
    start = step(lab, "master1", "start")
    assert start.inputs["create"] != SECRET and "MESHLAB_CONFIG_DIGEST=" in start.inputs["create"]


# --- Cilium HelmChartConfig and kube-vip ---------------------------------------------------------


def test_cilium_helm_chart_config_matches_its_crd_and_lab_spec(lab):
    for server in SERVERS:
        document = yaml.safe_load(copied_text(lab, server, "rke2-cilium-config"))
        validate_against_crd(document, CRDS / "helm-controller-v0.16.13" / "helm.cattle.io_helmchartconfigs.yaml")
        assert (document["metadata"]["name"], document["metadata"]["namespace"]) == ("rke2-cilium", "kube-system")
        values = yaml.safe_load(document["spec"]["valuesContent"])
        assert values["kubeProxyReplacement"] == "true"
        assert (values["k8sServiceHost"], values["k8sServicePort"]) == ("localhost", 6443)
        assert values["cni"]["exclusive"] is False
        assert values["socketLB"]["hostNamespaceOnly"] is True
        assert values["bpf"] == {"masquerade": False, "hostLegacyRouting": True}
        assert values["l7Proxy"] is True
        assert values["prometheus"]["enabled"] and values["operator"]["prometheus"]["enabled"]
        assert {"dns", "drop", "flow"} <= set(values["hubble"]["metrics"]["enabled"])
        assert (
            values["hubble"]["enabled"] and values["hubble"]["relay"]["enabled"] and values["hubble"]["ui"]["enabled"]
        )


@pytest.mark.parametrize("stack", STACKS)
def test_cilium_leaves_loadbalancer_addresses_to_metallb(rendered, stack):
    """With LB-IPAM on (rke2-cilium's default), the first CiliumLoadBalancerIPPool anyone creates makes
    Cilium take over every LoadBalancer Service without a loadBalancerClass, MetalLB's included."""
    defaults = yaml.safe_load((RKE2_CILIUM / "values.yaml").read_text())
    assert (defaults["enableLBIPAM"], defaults["defaultLBServiceIPAM"]) == (True, "lbipam")
    copies = [r for r in rendered[stack].of_type(COPY) if r.name.endswith("-copy-rke2-cilium-config")]
    assert len(copies) == 3  # every server
    for copy in copies:
        node = copy.name.removeprefix("cluster-").removesuffix("-copy-rke2-cilium-config")
        document = yaml.safe_load(copied_text(rendered[stack], node, "rke2-cilium-config"))
        chart = merged(defaults, yaml.safe_load(document["spec"]["valuesContent"]))
        assert chart["enableLBIPAM"] is False
        # Nor may node IPAM claim class-less Services (lbipam, nodeipam or none, says the chart).
        assert chart["defaultLBServiceIPAM"] == "none"


def test_every_cilium_value_is_a_key_of_the_rke2_cilium_chart(lab_settings):
    documented = documented_value_paths(RKE2_CILIUM / "values.yaml")
    ours = value_paths(cilium_values(lab_settings))
    assert len(ours) >= 15
    assert ours - documented == set()


def test_cilium_values_pass_the_chart_schema(lab_settings):
    defaults = yaml.safe_load((RKE2_CILIUM / "values.yaml").read_text())
    schema = json.loads((RKE2_CILIUM / "values.schema.json").read_text())
    jsonschema.validate(merged(defaults, cilium_values(lab_settings)), schema)
    broken = merged(defaults, {**cilium_values(lab_settings), "operator": {"replicas": "two"}})
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


def test_the_key_check_catches_a_typo(lab_settings):
    documented = documented_value_paths(RKE2_CILIUM / "values.yaml")
    typo = value_paths({**cilium_values(lab_settings), "socketLB": {"hostNamespaceOnyl": True}})
    assert typo - documented == {"socketLB.hostNamespaceOnyl"}


def test_hubble_and_operator_come_from_settings(render_with):
    rendering = render_with({"meshlab:hubbleEnabled": False, "meshlab:ciliumOperatorReplicas": 1})
    values = yaml.safe_load(
        yaml.safe_load(copied_text(rendering, "master2", "rke2-cilium-config"))["spec"]["valuesContent"]
    )
    assert values["hubble"] == {
        "enabled": False,
        "relay": {"enabled": False},
        "ui": {"enabled": False},
        "metrics": {"enabled": None},
    }
    assert values["operator"]["replicas"] == 1
    workloads = script_inputs(rendering.named("cluster-ready").inputs["create"])["MESHLAB_WORKLOADS"]
    assert workloads.split() == ["daemonset/cilium", "deployment/cilium-operator"]


def test_kube_vip_is_a_static_pod_for_the_control_plane_vip_only(lab):
    for server in SERVERS:
        pod = yaml.safe_load(copied_text(lab, server, "kube-vip"))
        assert (pod["kind"], pod["metadata"]["namespace"]) == ("Pod", "kube-system")
        assert pod["spec"]["hostNetwork"] is True
        [container] = pod["spec"]["containers"]
        assert container["image"] == versions.KUBE_VIP_IMAGE and ":latest" not in container["image"]
        env = {item["name"]: item.get("value") for item in container["env"]}
        assert env["vip_arp"] == "true" and env["cp_enable"] == "true"
        assert env["svc_enable"] == "false"
        assert env["vip_interface"] == "hostonly0"
        assert env["address"] == "192.168.56.10" and env["port"] == "6443"
        assert set(container["securityContext"]["capabilities"]["add"]) == {"NET_ADMIN", "NET_RAW"}
        [volume] = pod["spec"]["volumes"]
        assert volume["hostPath"]["path"] == "/etc/rancher/rke2/rke2.yaml"
    for agent in AGENTS:
        assert not [r for r in lab.resources() if r.name == f"cluster-{agent}-copy-kube-vip"]


def exported(command: str) -> dict[str, str]:
    """Every variable a step's script exports, multi-line values included."""
    script = shlex.split(command)[-1]
    tokens = shlex.split(script.split("#!/usr/bin/env bash")[0])
    return dict(token.split("=", 1) for token in tokens if token != "export")


# (staged name, destination, mode) of each file, in the order the files step places them.
SERVER_FILES = [
    ("rke2-config.yaml", "/etc/rancher/rke2/config.yaml", "0600"),
    # The embedded registry mirror (on by default) is told which registries to share.
    ("registries.yaml", "/etc/rancher/rke2/registries.yaml", "0600"),
    ("rke2-cilium-config.yaml", "/var/lib/rancher/rke2/server/manifests/rke2-cilium-config.yaml", "0600"),
    ("kube-vip.yaml", "/var/lib/rancher/rke2/agent/pod-manifests/kube-vip.yaml", "0600"),
]


def test_files_go_to_their_places_before_the_first_start(lab):
    for node in (*SERVERS, *AGENTS):
        files = step(lab, node, "files")
        inputs = exported(files.inputs["create"])
        placed = [tuple(line.split(" ")) for line in inputs["MESHLAB_FILES"].splitlines()]
        # Exactly these paths: a prefixed or suffixed destination is a file RKE2 never reads.
        assert placed == (SERVER_FILES if node in SERVERS else SERVER_FILES[:2]), node
        assert inputs["MESHLAB_STAGING_DIR"] == "/home/meshlab/.meshlab-staging"
        assert re.fullmatch(r"[0-9a-f]{16}", inputs["MESHLAB_FILES_DIGEST"])
        for name, _, _ in placed:
            copy = step(lab, node, f"copy-{name.removesuffix('.yaml')}")
            assert copy.inputs["remotePath"] == f"/home/meshlab/.meshlab-staging/{name}"
            assert depends(files, copy)
        start = step(lab, node, "start")
        assert depends(start, files) and depends(start, step(lab, node, "install"))
        assert re.fullmatch(r"[0-9a-f]{16}", exported(start.inputs["create"])["MESHLAB_CONFIG_DIGEST"])


# --- order ----------------------------------------------------------------------------------------


def test_servers_join_one_at_a_time_and_agents_in_parallel(lab):
    starts = {node: step(lab, node, "start") for node in (*SERVERS, *AGENTS)}
    assert not any(depends(starts["master1"], other) for other in starts.values())
    assert depends(starts["master2"], starts["master1"])
    assert depends(starts["master3"], starts["master2"])
    assert not depends(starts["master3"], starts["master1"])  # through master2, not around it
    for agent in AGENTS:
        assert depends(starts[agent], starts["master1"])
        others = [starts[n] for n in (*AGENTS, "master2", "master3") if n != agent]
        assert not any(depends(starts[agent], other) for other in others), agent


def test_only_the_first_server_waits_for_the_vip(lab):
    assert script_inputs(step(lab, "master1", "start").inputs["create"])["MESHLAB_WAIT_FOR_VIP"] == "192.168.56.10"
    for node in (*SERVERS[1:], *AGENTS):
        assert "MESHLAB_WAIT_FOR_VIP" not in script_inputs(step(lab, node, "start").inputs["create"])


def test_host_steps_run_in_order_and_in_parallel_across_nodes(lab):
    for node in (*SERVERS, *AGENTS):
        preflight, prepare, install = (step(lab, node, kind) for kind in ("preflight", "prepare", "install"))
        assert depends(preflight, lab.named(f"{node}-cloud-init"))
        assert depends(prepare, preflight) and depends(install, prepare)
        # Installing does not wait for any node to start: all nodes install at once.
        assert not any(depends(install, step(lab, other, "start")) for other in (*SERVERS, *AGENTS))


def test_upgrades_go_one_node_at_a_time_servers_first(lab):
    order = (*SERVERS, *AGENTS)
    upgrades = [step(lab, node, "upgrade") for node in order]
    for earlier, later in itertools.pairwise(upgrades):
        assert depends(later, earlier), f"{later.name} must wait for {earlier.name}"
    for node, upgrade in zip(order, upgrades, strict=True):
        assert depends(upgrade, step(lab, node, "start"))
        assert "rke2_upgrade" in upgrade.inputs["update"] and "RKE2" in upgrade.inputs["create"]
        assert "sudo" not in upgrade.inputs["create"]  # nothing happens at creation


def test_a_version_change_reaches_only_the_upgrade_steps(render_with, lab):
    newer = "v1.32.8+rke2r1"
    rendering = render_with({"meshlab:rke2Version": newer})
    for node in (*SERVERS, *AGENTS):
        install = step(rendering, node, "install")
        assert install.ignore_changes == ("create",)
        assert newer in step(rendering, node, "upgrade").inputs["update"]
        assert step(rendering, node, "start").inputs == step(lab, node, "start").inputs


def test_readiness_waits_for_every_node_and_cilium(lab):
    ready = lab.named("cluster-ready")
    for node in (*SERVERS, *AGENTS):
        assert depends(ready, step(lab, node, "start"))
    inputs = script_inputs(ready.inputs["create"])
    assert inputs["MESHLAB_NODES"] == "master1 master2 master3 worker1 worker2 worker3"
    assert inputs["MESHLAB_WORKLOADS"].split() == [
        "daemonset/cilium",
        "deployment/cilium-operator",
        "deployment/hubble-relay",
        "deployment/hubble-ui",
    ]


def test_nfs_export_is_on_the_first_server_and_needs_no_rke2(lab, lab_settings):
    [nfs] = lab.of_type("meshlab:cluster:NfsServer")
    assert nfs.inputs == {"server": "192.168.56.11", "path": "/srv/nfs/kubedata", "allowedClients": "192.168.56.0/24"}
    export = lab.named("cluster-nfs-export")
    assert depends(export, step(lab, "master1", "prepare"))
    assert not depends(export, step(lab, "master1", "start"))
    assert "nfs_unexport" in export.inputs["delete"]


# --- teardown, secrets, provider -----------------------------------------------------------------


def test_remote_steps_hang_off_their_vm(lab):
    vms = {r.name: r.urn for r in lab.resources() if r.name.endswith("-vm") and r.type == "command:local:Command"}
    cluster_steps = [r for r in lab.resources() if r.type in (REMOTE, COPY) and r.name.startswith("cluster-")]
    assert len(cluster_steps) == 3 * 10 + 3 * 8 + 3
    for resource in cluster_steps:
        node = resource.name.removeprefix("cluster-").split("-")[0]
        node = node if node in (*SERVERS, *AGENTS) else "master1"
        assert resource.deleted_with == vms[f"{node}-vm"], resource.name
        assert resource.delete_before_replace or resource.name == "cluster-kubeconfig", resource.name
        assert resource.inputs["connection"] == SECRET


def test_kubeconfig_is_read_without_logging_and_stays_secret(lab):
    read = lab.named("cluster-kubeconfig")
    assert read.inputs["logging"] == "none"
    assert {"stdout", "stderr"} <= set(read.additional_secret_outputs)
    assert depends(read, lab.named("cluster-ready"))
    outputs = lab.stack_outputs()
    assert outputs["kubeconfig"] == SECRET
    assert outputs["apiEndpoint"] == "https://192.168.56.10:6443"
    assert outputs["clusterName"] == "meshlab-lab"


def test_provider_uses_the_kubeconfig_and_a_cluster_identifier(lab):
    [provider] = lab.of_type("pulumi:providers:kubernetes")
    assert provider.inputs["kubeconfig"] == SECRET and "kubeconfig" in provider.secret_paths
    assert provider.inputs["clusterIdentifier"] == "meshlab-lab"
    assert depends(provider, lab.named("cluster-ready"))
    assert depends(provider, lab.named("cluster-kubeconfig"))


def test_token_is_a_random_password_without_special_characters(lab):
    [token] = [r for r in lab.of_type("random:index/randomPassword:RandomPassword") if r.name == "cluster-token"]
    assert token.inputs == {"length": 64, "special": False}
    for node in (*SERVERS, *AGENTS):
        assert depends(step(lab, node, "copy-rke2-config"), token)


def test_no_secret_leaks_into_plain_inputs(lab):
    plain = json.dumps([r.inputs for r in lab.resources()] + [lab.stack_outputs()])
    assert MOCK_TOKEN not in plain
    assert "BEGIN OPENSSH PRIVATE KEY" not in plain and "client-key-data" not in plain


def test_kubeconfig_rewrite_points_at_the_vip_and_names_the_cluster(lab_settings):
    rewritten = yaml.safe_load(rewrite_kubeconfig(MOCK_KUBECONFIG, api_endpoint(lab_settings), "meshlab-lab"))
    assert rewritten["clusters"][0]["cluster"]["server"] == "https://192.168.56.10:6443"
    assert rewritten["current-context"] == "meshlab-lab"
    assert rewritten["contexts"][0]["context"] == {"cluster": "meshlab-lab", "user": "meshlab-lab"}
    assert rewritten["users"][0]["user"]["client-key-data"] == "bW9jaw=="
    with pytest.raises(ValueError, match="not a kubeconfig"):
        rewrite_kubeconfig("sudo: a password is required\n", "https://x:6443", "x")
