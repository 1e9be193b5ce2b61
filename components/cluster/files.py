"""The files the cluster layer writes onto nodes, as pure functions of the settings.

RKE2 reads `/etc/rancher/rke2/config.yaml` at start; a server's manifests directory holds the
HelmChartConfig that tunes the bundled Cilium chart, and its static-pod directory holds
kube-vip. All three must be in place before RKE2 first starts.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Literal

import yaml

from config import images, versions
from config.registries import expand_mirrors, parse_credentials, parse_mirror
from config.settings import NodeSpec, Settings, is_secret_placeholder

SUPERVISOR_PORT = 9345
API_PORT = 6443
CONFIG_PATH = "/etc/rancher/rke2/config.yaml"
CILIUM_CONFIG_PATH = "/var/lib/rancher/rke2/server/manifests/rke2-cilium-config.yaml"
KUBE_VIP_PATH = "/var/lib/rancher/rke2/agent/pod-manifests/kube-vip.yaml"
# RKE2's admin kubeconfig on a server; it points at the local API server.
ADMIN_KUBECONFIG_PATH = "/etc/rancher/rke2/rke2.yaml"
# Read by RKE2 when it starts, to write containerd's registry configuration (rke2-docs install/private_registry).
REGISTRIES_PATH = "/etc/rancher/rke2/registries.yaml"
REGISTRY_CA_PATH = "/etc/rancher/rke2/meshlab-registry-ca.pem"

JoinRole = Literal["first-server", "server", "agent"]
# Hubble flow metrics the Cilium and Hubble dashboards chart.
HUBBLE_METRICS = ("dns", "drop", "tcp", "flow", "port-distribution", "icmp", "httpV2")


@dataclass(frozen=True)
class NodeFile:
    """One file for a node: its name in the staging directory, its destination and mode."""

    name: str
    destination: str
    mode: str


CONFIG_FILE = NodeFile("rke2-config.yaml", CONFIG_PATH, "0600")
CILIUM_FILE = NodeFile("rke2-cilium-config.yaml", CILIUM_CONFIG_PATH, "0600")
KUBE_VIP_FILE = NodeFile("kube-vip.yaml", KUBE_VIP_PATH, "0600")
REGISTRIES_FILE = NodeFile("registries.yaml", REGISTRIES_PATH, "0600")
REGISTRY_CA_FILE = NodeFile("registry-ca.pem", REGISTRY_CA_PATH, "0644")


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _dump(document: Any) -> str:
    return yaml.safe_dump(document, sort_keys=False, default_flow_style=False)


def join_url(settings: Settings) -> str:
    return f"https://{settings.network.vip}:{SUPERVISOR_PORT}"


def api_endpoint(settings: Settings) -> str:
    return f"https://{settings.network.vip}:{API_PORT}"


def tls_sans(settings: Settings) -> list[str]:
    """Names the API server certificate must carry: the VIP first (joins go through it)."""
    sans = [str(settings.network.vip), *(str(server.ip) for server in settings.topology.servers)]
    if settings.cluster.api_dns_name:
        sans.append(settings.cluster.api_dns_name)
    return sans


def rke2_config(node: NodeSpec, role: JoinRole, settings: Settings, token: str) -> str:
    """`/etc/rancher/rke2/config.yaml` for one node. `token` is the only secret in it."""
    document: dict[str, Any] = {}
    if role != "first-server":
        document["server"] = join_url(settings)
    document["token"] = token
    document["node-name"] = node.name
    # Every NAT adapter is 10.0.2.15: without this, etcd and the kubelet pick it and joins fail.
    document["node-ip"] = str(node.ip)
    # RKE2 applies its CIS host checks on agents too (kernel parameters).
    document["profile"] = "cis"
    if role == "agent":
        return _dump(document)
    network, cluster = settings.network, settings.cluster
    document.update(
        {
            "tls-san": tls_sans(settings),
            "cni": "cilium",
            # Critical values: they must match on every server or a join fails.
            "disable-kube-proxy": True,
            "cluster-cidr": str(network.cluster_cidr),
            "service-cidr": str(network.service_cidr),
            "cluster-dns": str(network.service_cidr[10]),
            "ingress-controller": "none",
            "etcd-snapshot-schedule-cron": cluster.etcd_snapshot_schedule,
            "etcd-snapshot-retention": cluster.etcd_snapshot_retention,
            "write-kubeconfig-mode": "0600",
            # A server flag that turns the mirror on for the whole cluster; registries.yaml says which
            # registries it serves.
            **({"embedded-registry": True} if cluster.embedded_registry else {}),
            # CIS 1.11 hardening guide: service account tokens keep their configured expiry.
            "kube-apiserver-arg": ["service-account-extend-token-expiration=false"],
        }
    )
    return _dump(document)


def registries_document(settings: Settings) -> dict[str, Any] | None:
    """RKE2's registries.yaml as data, or None when there is nothing to say (no mirror, no login, no
    embedded mirror). With the embedded mirror every registry the lab pulls from is listed, with no
    endpoint of its own unless a mirror names one: a listed registry is one the nodes share."""
    sources, cluster = settings.sources, settings.cluster
    lab_registries = images.lab_registries()
    mirrors = expand_mirrors((parse_mirror(entry) for entry in sources.registry_mirrors), lab_registries)
    if cluster.embedded_registry:
        for registry in lab_registries:
            mirrors.setdefault(registry, [])
    credentials = sources.registry_credentials.get_secret_value()
    logins = {} if is_secret_placeholder(credentials) else parse_credentials(credentials)
    configs: dict[str, dict[str, Any]] = {
        host: {"auth": {"username": login.username, "password": login.password}} for host, login in logins.items()
    }
    if sources.registry_ca_pem:
        https_hosts = {
            url.split("/")[2] for endpoints in mirrors.values() for url in endpoints if url.startswith("https://")
        }
        for host in sorted(https_hosts):
            configs.setdefault(host, {})["tls"] = {"ca_file": REGISTRY_CA_PATH}
    if not mirrors and not configs:
        return None
    document: dict[str, Any] = {
        "mirrors": {registry: {"endpoint": endpoints} if endpoints else {} for registry, endpoints in mirrors.items()}
    }
    if configs:
        document["configs"] = dict(sorted(configs.items()))
    return document


def registries_yaml(document: dict[str, Any]) -> str:
    return _dump(document)


def registries_digest_text(document: dict[str, Any]) -> str:
    """registries.yaml with each password replaced by a slow salted hash of it: a digest of this text tracks
    every change (a new password restarts RKE2 too) and may be shown in plans and state."""
    redacted = yaml.safe_load(_dump(document))
    for host, config in redacted.get("configs", {}).items():
        auth = config.get("auth")
        if auth:
            salt = f"meshlab:{host}:{auth['username']}".encode()
            auth["password"] = hashlib.scrypt(auth["password"].encode(), salt=salt, n=2**14, r=8, p=1)[:8].hex()
    return _dump(redacted)


def cilium_values(settings: Settings) -> dict[str, Any]:
    """Values for RKE2's bundled rke2-cilium chart (lab-spec §3.1). The fixed ones are what
    Istio ambient needs on Cilium; turning any of them off breaks the mesh, so they are not settings."""
    cluster = settings.cluster
    return {
        # The chart accepts only the strings "true" and "false" here.
        "kubeProxyReplacement": "true",
        # Every node has an API endpoint on localhost; the VIP would make Cilium wait for kube-vip.
        "k8sServiceHost": "localhost",
        "k8sServicePort": API_PORT,
        # Leave istio-cni's entry in the CNI config alone.
        "cni": {"exclusive": False},
        # Translate Service addresses in the host namespace only, so ztunnel and waypoints see them.
        "socketLB": {"hostNamespaceOnly": True},
        # Ambient SNATs kubelet probes to 169.254.7.127; BPF masquerade and host routing drop the replies.
        "bpf": {"masquerade": False, "hostLegacyRouting": True},
        "l7Proxy": True,
        # MetalLB owns LoadBalancer addresses. With LB-IPAM on (the chart's default), the first
        # CiliumLoadBalancerIPPool anyone creates makes Cilium strip MetalLB's from every Service
        # without a loadBalancerClass; "none" keeps node IPAM off those Services too.
        "enableLBIPAM": False,
        "defaultLBServiceIPAM": "none",
        # Metrics for the lab's Prometheus (agent 9962, operator 9963, Hubble 9965).
        "prometheus": {"enabled": True},
        "hubble": {
            "enabled": cluster.hubble_enabled,
            "relay": {"enabled": cluster.hubble_enabled},
            "ui": {"enabled": cluster.hubble_enabled},
            "metrics": {"enabled": list(HUBBLE_METRICS) if cluster.hubble_enabled else None},
        },
        "operator": {"replicas": cluster.cilium_operator_replicas, "prometheus": {"enabled": True}},
    }


def cilium_helm_chart_config(settings: Settings) -> str:
    document = {
        "apiVersion": "helm.cattle.io/v1",
        "kind": "HelmChartConfig",
        "metadata": {"name": "rke2-cilium", "namespace": "kube-system"},
        "spec": {"valuesContent": _dump(cilium_values(settings))},
    }
    return _dump(document)


def kube_vip_manifest(settings: Settings) -> str:
    """kube-vip as a static pod: ARP on the host-only NIC, control-plane VIP only.

    A static pod talks to the local API server through RKE2's admin kubeconfig, so it works
    before Cilium does (the DaemonSet flavour needs a ClusterIP that only Cilium provides)."""
    env = {
        "vip_arp": "true",
        "port": str(API_PORT),
        "vip_interface": settings.hosts.lab_interface,
        "address": str(settings.network.vip),
        "cp_enable": "true",
        "cp_namespace": "kube-system",
        # MetalLB owns LoadBalancer addresses.
        "svc_enable": "false",
        "vip_leaderelection": "true",
        "vip_leaseduration": "5",
        "vip_renewdeadline": "3",
        "vip_retryperiod": "1",
    }
    document = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "kube-vip",
            "namespace": "kube-system",
            "labels": {"app.kubernetes.io/name": "kube-vip", "app.kubernetes.io/part-of": "meshlab"},
        },
        "spec": {
            "hostNetwork": True,
            "priorityClassName": "system-node-critical",
            "hostAliases": [{"ip": "127.0.0.1", "hostnames": ["kubernetes"]}],
            "containers": [
                {
                    "name": "kube-vip",
                    "image": versions.KUBE_VIP_IMAGE,
                    "imagePullPolicy": "IfNotPresent",
                    "args": ["manager"],
                    "env": [
                        *({"name": name, "value": value} for name, value in env.items()),
                        {"name": "vip_nodename", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                    ],
                    "securityContext": {"capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN", "NET_RAW"]}},
                    "volumeMounts": [
                        {"name": "kubeconfig", "mountPath": "/etc/kubernetes/admin.conf", "readOnly": True}
                    ],
                }
            ],
            "volumes": [{"name": "kubeconfig", "hostPath": {"path": ADMIN_KUBECONFIG_PATH, "type": "File"}}],
        },
    }
    return _dump(document)


def nfs_export_line(settings: Settings) -> tuple[str, str]:
    """(export path, allowed clients) of the first server's NFS export."""
    allowed = settings.cluster.nfs_allowed_cidr or settings.network.subnet
    return settings.cluster.nfs_export_path, str(allowed)


def rewrite_kubeconfig(kubeconfig: str, server: str, name: str) -> str:
    """RKE2's admin kubeconfig, pointed at `server` and with cluster, user and context named `name`
    (RKE2 calls them all "default", which collides when kubeconfigs are merged)."""
    document = yaml.safe_load(kubeconfig)
    if not isinstance(document, dict) or not document.get("clusters"):
        raise ValueError("the first server returned something that is not a kubeconfig")
    for cluster in document["clusters"]:
        cluster["name"] = name
        cluster["cluster"]["server"] = server
    for user in document.get("users", []):
        user["name"] = name
    for context in document.get("contexts", []):
        context["name"] = name
        context["context"]["cluster"] = name
        context["context"]["user"] = name
    document["current-context"] = name
    return _dump(document)
