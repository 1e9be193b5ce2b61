"""The files the cluster layer writes onto nodes (components/cluster/files.py), read back as RKE2,
kubelet and kube-vip read them: YAML documents checked field by field against what they must say."""

from __future__ import annotations

import hashlib
from typing import Any

import kubernetes_validate
import pytest
import yaml

from components.cluster.files import (
    ADMIN_KUBECONFIG_PATH,
    CILIUM_FILE,
    CONFIG_FILE,
    KUBE_VIP_FILE,
    api_endpoint,
    cilium_helm_chart_config,
    digest,
    join_url,
    kube_vip_manifest,
    nfs_export_line,
    rewrite_kubeconfig,
    rke2_config,
    tls_sans,
)
from config import versions
from config.loader import StackConfig, settings_from_config
from config.settings import Settings
from tools.render import MOCK_KUBECONFIG, with_overrides

KUBERNETES_MINOR = ".".join(versions.KUBERNETES.lstrip("v").split(".")[:2])


@pytest.fixture(scope="module")
def lab_settings(stack_configs: dict[str, StackConfig]) -> Settings:
    return settings_from_config(stack_configs["lab"])


def settings_with(stack_configs: dict[str, StackConfig], overrides: dict[str, Any]) -> Settings:
    return settings_from_config(with_overrides(stack_configs["lab"], overrides))


# digest ------------------------------------------------------------------------------------------


def test_the_digest_is_the_first_16_hex_digits_of_the_sha256():
    """Existing stacks store these digests in their step inputs: any other form (length, hash, encoding)
    changes every one of them, which re-copies every file and restarts every node on the next update."""
    assert digest("abc") == "ba7816bf8f01cfea"
    assert digest("") == "e3b0c44298fc1c14"
    assert digest("café") == hashlib.sha256("café".encode()).hexdigest()[:16]
    assert digest("a") != digest("b")


# Where the files go ------------------------------------------------------------------------------


def test_each_file_has_its_name_place_and_mode():
    assert (CONFIG_FILE.name, CONFIG_FILE.destination, CONFIG_FILE.mode) == (
        "rke2-config.yaml",
        "/etc/rancher/rke2/config.yaml",
        "0600",
    )
    assert (CILIUM_FILE.name, CILIUM_FILE.destination, CILIUM_FILE.mode) == (
        "rke2-cilium-config.yaml",
        "/var/lib/rancher/rke2/server/manifests/rke2-cilium-config.yaml",
        "0600",
    )
    assert (KUBE_VIP_FILE.name, KUBE_VIP_FILE.destination, KUBE_VIP_FILE.mode) == (
        "kube-vip.yaml",
        "/var/lib/rancher/rke2/agent/pod-manifests/kube-vip.yaml",
        "0600",
    )


# RKE2 config -------------------------------------------------------------------------------------


def test_the_first_server_config_in_full(lab_settings):
    first = lab_settings.topology.servers[0]
    assert yaml.safe_load(rke2_config(first, "first-server", lab_settings, "t0ken")) == {
        "token": "t0ken",
        "node-name": "master1",
        "node-ip": "192.168.56.11",
        "profile": "cis",
        "tls-san": ["192.168.56.10", "192.168.56.11", "192.168.56.12", "192.168.56.13"],
        "cni": "cilium",
        "disable-kube-proxy": True,
        "cluster-cidr": "10.42.0.0/16",
        "service-cidr": "10.43.0.0/16",
        "cluster-dns": "10.43.0.10",
        "ingress-controller": "none",
        "etcd-snapshot-schedule-cron": lab_settings.cluster.etcd_snapshot_schedule,
        "etcd-snapshot-retention": lab_settings.cluster.etcd_snapshot_retention,
        "write-kubeconfig-mode": "0600",
        "embedded-registry": True,
        "kube-apiserver-arg": ["service-account-extend-token-expiration=false"],
    }


def test_a_joining_server_differs_from_the_first_only_in_who_it_is_and_where_it_joins(lab_settings):
    first, second, _ = lab_settings.topology.servers
    leader = yaml.safe_load(rke2_config(first, "first-server", lab_settings, "t"))
    joiner = yaml.safe_load(rke2_config(second, "server", lab_settings, "t"))
    assert joiner == {
        **leader,
        "server": "https://192.168.56.10:9345",
        "node-name": "master2",
        "node-ip": "192.168.56.12",
    }


def test_the_api_names_and_endpoints(stack_configs, lab_settings):
    assert join_url(lab_settings) == "https://192.168.56.10:9345"
    assert api_endpoint(lab_settings) == "https://192.168.56.10:6443"
    named = settings_with(stack_configs, {"meshlab:apiDnsName": "api.lab.example"})
    assert tls_sans(named) == ["192.168.56.10", "192.168.56.11", "192.168.56.12", "192.168.56.13", "api.lab.example"]
    assert tls_sans(lab_settings) == ["192.168.56.10", "192.168.56.11", "192.168.56.12", "192.168.56.13"]


def test_an_agent_config_is_written_byte_for_byte_as_before(lab_settings):
    """The text, not just what YAML reads from it: the files step carries a digest of each file, so a file
    that reads the same but is written differently (key order, flow style) re-runs the files step and
    restarts RKE2 on every node of an existing stack at its next update."""
    agent = lab_settings.topology.agents[0]
    assert rke2_config(agent, "agent", lab_settings, "t0ken") == (
        "server: https://192.168.56.10:9345\ntoken: t0ken\nnode-name: worker1\nnode-ip: 192.168.56.21\nprofile: cis\n"
    )


# Cilium ------------------------------------------------------------------------------------------


def test_the_cilium_helm_chart_config_targets_rke2s_bundled_chart(lab_settings):
    document = yaml.safe_load(cilium_helm_chart_config(lab_settings))
    assert {key: document[key] for key in ("apiVersion", "kind", "metadata")} == {
        "apiVersion": "helm.cattle.io/v1",
        "kind": "HelmChartConfig",
        "metadata": {"name": "rke2-cilium", "namespace": "kube-system"},
    }
    values = yaml.safe_load(document["spec"]["valuesContent"])
    assert values["k8sServiceHost"] == "localhost" and values["k8sServicePort"] == 6443
    assert values["kubeProxyReplacement"] == "true"


def test_hubble_off_turns_off_relay_ui_and_metrics(stack_configs):
    off = settings_with(stack_configs, {"meshlab:hubbleEnabled": False})
    values = yaml.safe_load(yaml.safe_load(cilium_helm_chart_config(off))["spec"]["valuesContent"])
    assert values["hubble"] == {
        "enabled": False,
        "relay": {"enabled": False},
        "ui": {"enabled": False},
        "metrics": {"enabled": None},
    }
    assert values["prometheus"] == {"enabled": True}
    # On, Hubble exports the metric families the lab's Cilium and Hubble dashboards chart.
    on = yaml.safe_load(
        yaml.safe_load(cilium_helm_chart_config(settings_with(stack_configs, {})))["spec"]["valuesContent"]
    )
    assert on["hubble"]["metrics"] == {"enabled": ["dns", "drop", "tcp", "flow", "port-distribution", "icmp", "httpV2"]}
    assert values["operator"]["prometheus"] == {"enabled": True}


# kube-vip ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kube_vip(lab_settings: Settings) -> dict[str, Any]:
    pod: dict[str, Any] = yaml.safe_load(kube_vip_manifest(lab_settings))
    return pod


def test_kube_vip_is_a_valid_static_pod(kube_vip):
    kubernetes_validate.validate(kube_vip, KUBERNETES_MINOR, strict=True)
    assert kube_vip["metadata"] == {
        "name": "kube-vip",
        "namespace": "kube-system",
        "labels": {"app.kubernetes.io/name": "kube-vip", "app.kubernetes.io/part-of": "meshlab"},
    }
    spec = kube_vip["spec"]
    assert spec["hostNetwork"] is True
    assert spec["priorityClassName"] == "system-node-critical"
    # RKE2's admin kubeconfig names the API server https://127.0.0.1:6443; "kubernetes" must resolve there too.
    assert spec["hostAliases"] == [{"ip": "127.0.0.1", "hostnames": ["kubernetes"]}]


def test_kube_vip_learns_its_node_name_from_the_downward_api(kube_vip):
    """Leader election identifies each kube-vip by vip_nodename: a wrong fieldPath and no VIP comes up."""
    [container] = kube_vip["spec"]["containers"]
    [nodename] = [item for item in container["env"] if item["name"] == "vip_nodename"]
    assert nodename == {"name": "vip_nodename", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}


def test_kube_vip_announces_the_control_plane_vip_by_arp_only(kube_vip):
    [container] = kube_vip["spec"]["containers"]
    env = {item["name"]: item["value"] for item in container["env"] if "value" in item}
    assert env == {
        "vip_arp": "true",
        "port": "6443",
        "vip_interface": "hostonly0",
        "address": "192.168.56.10",
        "cp_enable": "true",
        "cp_namespace": "kube-system",
        "svc_enable": "false",
        "vip_leaderelection": "true",
        "vip_leaseduration": "5",
        "vip_renewdeadline": "3",
        "vip_retryperiod": "1",
    }
    assert (container["name"], container["image"], container["args"]) == (
        "kube-vip",
        versions.KUBE_VIP_IMAGE,
        ["manager"],
    )
    # The image is preloaded or cached on the node; the VIP must come up without a registry round trip.
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert container["securityContext"] == {"capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN", "NET_RAW"]}}


def test_kube_vip_reads_rke2s_admin_kubeconfig_read_only(kube_vip):
    [container] = kube_vip["spec"]["containers"]
    [mount] = container["volumeMounts"]
    [volume] = kube_vip["spec"]["volumes"]
    assert mount == {"name": volume["name"], "mountPath": "/etc/kubernetes/admin.conf", "readOnly": True}
    assert volume["hostPath"] == {"path": "/etc/rancher/rke2/rke2.yaml", "type": "File"}
    assert ADMIN_KUBECONFIG_PATH == "/etc/rancher/rke2/rke2.yaml"


# NFS and the kubeconfig --------------------------------------------------------------------------


def test_the_nfs_export_allows_the_host_only_subnet_unless_told_otherwise(stack_configs, lab_settings):
    assert nfs_export_line(lab_settings) == ("/srv/nfs/kubedata", "192.168.56.0/24")
    narrowed = settings_with(stack_configs, {"meshlab:nfsAllowedCidr": "192.168.56.0/26"})
    assert nfs_export_line(narrowed) == ("/srv/nfs/kubedata", "192.168.56.0/26")


def test_the_rewritten_kubeconfig_names_every_entry_and_keeps_the_credentials():
    source = yaml.safe_load(MOCK_KUBECONFIG)
    source["clusters"].append({"name": "default", "cluster": {"server": "https://127.0.0.1:6443"}})
    rewritten = yaml.safe_load(rewrite_kubeconfig(yaml.safe_dump(source), "https://192.168.56.10:6443", "lab"))
    assert [c["name"] for c in rewritten["clusters"]] == ["lab", "lab"]
    assert {c["cluster"]["server"] for c in rewritten["clusters"]} == {"https://192.168.56.10:6443"}
    assert rewritten["clusters"][0]["cluster"]["certificate-authority-data"] == "bW9jaw=="
    assert rewritten["users"] == [{"name": "lab", "user": source["users"][0]["user"]}]
    assert rewritten["contexts"] == [{"name": "lab", "context": {"cluster": "lab", "user": "lab"}}]
    assert rewritten["current-context"] == "lab"


@pytest.mark.parametrize(
    "text", ["sudo: a password is required\n", "- a\n- list\n", "apiVersion: v1\nkind: Config\nclusters: []\n", ""]
)
def test_anything_but_a_kubeconfig_is_refused(text):
    with pytest.raises(ValueError, match=r"^the first server returned something that is not a kubeconfig$"):
        rewrite_kubeconfig(text, "https://x:6443", "x")
