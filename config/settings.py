"""The typed settings tree, built from a stack's `meshlab:*` config and validated before
anything is registered.

Config keys are flat (`meshlab:serverCpus`), so `pulumi config set` needs no `--path`, the
Pulumi CLI can type-check each one (Pulumi.yaml declares them, generated from these models),
and promotion can name keys one by one. Each key belongs to exactly one section model
below; its name is the camelCase of the field name.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, ValidationInfo, field_validator
from pydantic.alias_generators import to_camel

from config import versions

NAMESPACE = "meshlab"
# Stands in for a value that is encrypted in the stack file (tools read it without the passphrase).
SECRET_PLACEHOLDER = "[secret]"
# Every VirtualBox NAT adapter sits on this network (guest 10.0.2.15); nothing of ours may overlap it.
VIRTUALBOX_NAT = IPv4Network("10.0.2.0/24")
# QEMU's user-mode network (slirp, `-netdev user`), each guest's NIC to the internet (guest 10.0.2.15):
# the same subnet, inside every QEMU guest. Existing hosts have neither.
QEMU_USER_NETWORK = IPv4Network("10.0.2.0/24")
# VirtualBox 6.1.28+ on Linux/macOS accepts host-only addresses only here, unless
# /etc/vbox/networks.conf says otherwise.
VIRTUALBOX_DEFAULT_HOST_ONLY = IPv4Network("192.168.56.0/21")
# Interface names cloud-init gives the two NICs (matched by MAC, so the same on amd64 and arm64).
NAT_INTERFACE = "nat0"
HOST_ONLY_INTERFACE = "hostonly0"

# meshlab's own floor for a usable lab node (RKE2's published minimum for a server is 2 CPU / 4 GB).
MINIMUM_RESOURCES: dict[str, dict[str, int]] = {
    "server": {"cpus": 2, "memory_mib": 4096, "disk_gib": 20},
    "agent": {"cpus": 2, "memory_mib": 2048, "disk_gib": 20},
}
# The TCP ports RKE2 listens on by role (API, supervisor, kubelet, etcd client/peer/metrics): free
# on a machine before RKE2 is installed there.
RKE2_PORTS: dict[str, tuple[int, ...]] = {"server": (6443, 9345, 10250, 2379, 2380, 2381), "agent": (10250,)}
# Spegel, RKE2's embedded registry mirror, shares images between nodes on this port (with the supervisor's).
EMBEDDED_REGISTRY_PORT = 5001
# What the node steps are written for (apt, systemd; networkd is configured only where it runs):
# an existing host must run one of these ("ID VERSION_ID" of /etc/os-release).
EXISTING_HOST_OS = ("ubuntu 24.04", "ubuntu 22.04", "debian 12")
# MemTotal leaves out what the firmware and the kernel keep: an existing host passes with this
# share of the role's memory setting (an "8 GiB" machine shows about 7.7 GiB).
EXISTING_MEMORY_PERCENT = 90
ETCD_SERVER_COUNTS = (1, 3, 5, 7)
# Cilium operator replicas when the stack does not say: two for failover, fewer on fewer nodes.
DEFAULT_OPERATOR_REPLICAS = 2

# Marks a setting that `tools.promote` copies from one stack to the next (lab -> staging -> prod):
# versions and component behaviour. Everything else is the environment's own (addresses, node
# counts and sizes, hostnames, secrets) and stays where it is.
PROMOTABLE: dict[str, Any] = {"promotable": True}

_HOSTNAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


@dataclass(frozen=True)
class NodeSpec:
    """One VM: its hostname, its static host-only address and its RKE2 role."""

    name: str
    ip: IPv4Address
    role: Literal["server", "agent"]


def _parse_node(role: Literal["server", "agent"]) -> Any:
    def parse(item: Any) -> Any:
        if isinstance(item, NodeSpec):
            return item
        if not isinstance(item, str) or item.count("=") != 1:
            raise ValueError("not of the form NAME=IP (e.g. master1=192.168.56.11)")
        name, _, address = (part.strip() for part in item.partition("="))
        if not _HOSTNAME.match(name):
            raise ValueError(f"{name!r} is not a valid hostname (lowercase letters, digits, '-')")
        try:
            ip = IPv4Address(address)
        except ValueError:
            raise ValueError(f"{address!r} is not an IPv4 address") from None
        return NodeSpec(name=name, ip=ip, role=role)

    return parse


def _empty_is_none(value: Any) -> Any:
    return None if value == "" else value


Servers = list[Annotated[NodeSpec, BeforeValidator(_parse_node("server"))]]
Agents = list[Annotated[NodeSpec, BeforeValidator(_parse_node("agent"))]]
OptionalAddress = Annotated[IPv4Address | None, BeforeValidator(_empty_is_none)]
OptionalNetwork = Annotated[IPv4Network | None, BeforeValidator(_empty_is_none)]
OptionalCount = Annotated[int | None, BeforeValidator(_empty_is_none)]


@dataclass(frozen=True)
class AddressRange:
    """An inclusive IPv4 range, written `A-B` or as a CIDR."""

    first: IPv4Address
    last: IPv4Address
    # As the user wrote it, so error messages quote their own text back.
    text: str = field(default="", compare=False)

    def __contains__(self, address: object) -> bool:
        return isinstance(address, IPv4Address) and self.first <= address <= self.last

    def __str__(self) -> str:
        return self.text or f"{self.first}-{self.last}"

    @property
    def size(self) -> int:
        return int(self.last) - int(self.first) + 1


def _parse_range(value: Any) -> Any:
    if isinstance(value, AddressRange):
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected 'A-B' or a CIDR, got {value!r}")
    try:
        if "/" in value:
            network = IPv4Network(value, strict=True)
            return AddressRange(network[0], network[-1], value)
        first, _, last = value.partition("-")
        address_range = AddressRange(IPv4Address(first.strip()), IPv4Address(last.strip()), value)
    except ValueError as error:
        raise ValueError(f"{value!r} is not 'A-B' or a CIDR ({error})") from None
    if address_range.first > address_range.last:
        raise ValueError(f"{value!r}: the first address comes after the last")
    return address_range


PoolRange = Annotated[AddressRange, BeforeValidator(_parse_range)]


class _Section(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=to_camel,
        populate_by_name=True,
        arbitrary_types_allowed=True,
    )


class TopologySettings(_Section):
    """Which VMs exist and how big they are."""

    # Required when meshlab builds the cluster (validation says so); empty on an existing cluster.
    servers: Servers = Field(
        default_factory=list,
        description="RKE2 servers as NAME=IP on the host-only network; an odd count (1, 3, 5, 7). "
        "Not with meshlab:kubeconfig.",
    )
    agents: Agents = Field(default_factory=list, description="RKE2 agents as NAME=IP on the host-only network.")
    # On existing hosts the sizes are what the preflight requires of each machine.
    server_cpus: int = Field(default=2, description="vCPUs per server VM (existing: at least).")
    server_memory_mib: int = Field(default=4096, description="Memory per server VM, MiB (existing: at least).")
    server_disk_gib: int = Field(
        default=40,
        description="Disk per server VM, GiB, dynamically allocated (existing: free under /var/lib/rancher).",
    )
    agent_cpus: int = Field(default=2, description="vCPUs per agent VM (existing: at least).")
    agent_memory_mib: int = Field(default=6144, description="Memory per agent VM, MiB (existing: at least).")
    agent_disk_gib: int = Field(
        default=40,
        description="Disk per agent VM, GiB, dynamically allocated (existing: free under /var/lib/rancher).",
    )
    guest_arch: versions.GuestArch = Field(
        default="amd64", description="Guest architecture: amd64, or arm64 on Apple Silicon hosts."
    )
    require_ha: bool = Field(default=False, description="Refuse a topology with fewer than 3 servers (prod).")

    @property
    def nodes(self) -> list[NodeSpec]:
        return [*self.servers, *self.agents]


Hypervisor = Literal["virtualbox", "qemu", "existing"]
QemuAccelerator = Literal["auto", "kvm", "tcg"]
# Local image files by suffix: what each one holds.
IMAGE_FORMATS: dict[str, Literal["vmdk", "qcow2"]] = {".qcow2": "qcow2", ".img": "qcow2", ".vmdk": "vmdk"}


class HostsSettings(_Section):
    """What the nodes run on (VMs of a hypervisor, or machines that already exist), and the image
    VMs boot. The environment's own: never promoted."""

    hypervisor: Hypervisor = Field(
        default="virtualbox",
        description="What runs the nodes: virtualbox, qemu (QEMU/KVM on Linux), or existing (servers you already "
        "have, reached over SSH).",
    )
    qemu_accelerator: QemuAccelerator = Field(
        default="auto", description="QEMU only: kvm, tcg (emulation, slow), or auto (KVM when the host has it)."
    )
    qemu_bridge: str = Field(
        default="",
        description="QEMU only: the Linux bridge the lab NICs join; empty means meshlab-STACK, created if missing.",
    )
    image_file: str = Field(
        default="",
        description="A local cloud image (.qcow2, .img or .vmdk) instead of the pinned Ubuntu download; absolute path.",
    )
    image_sha256: str = Field(default="", description="The SHA-256 of meshlab:imageFile, checked before use.")
    node_interface: str = Field(
        default="",
        description="existing only: the NIC that holds each node's address (the same name on every node); kube-vip, "
        "Cilium and MetalLB bind there.",
    )
    ssh_bastion_host: str = Field(
        default="",
        description="existing only: a bastion (jump) host, HOST or HOST:PORT, the nodes are reached through; empty "
        "for direct SSH.",
    )
    ssh_bastion_user: str = Field(
        default="", description="The login user on meshlab:sshBastionHost (same key as the nodes)."
    )
    ssh_host_keys: list[str] = Field(
        default_factory=list,
        description="existing only: nodes' SSH host keys as NAME=KEY entries (server1=ecdsa-sha2-nistp256 AAAA...), "
        "checked out of band; a node not listed has its key learned on first contact and pinned from then on.",
    )
    ssh_bastion_host_key: str = Field(
        default="",
        description="existing only: meshlab:sshBastionHost's SSH host key (TYPE BASE64); empty learns it on first "
        "contact and pins it from then on.",
    )

    @property
    def existing(self) -> bool:
        return self.hypervisor == "existing"

    @property
    def lab_interface(self) -> str:
        """The NIC the cluster binds to: the seed names it on VMs, the user on existing hosts."""
        return self.node_interface if self.existing else HOST_ONLY_INTERFACE

    @property
    def bastion_address(self) -> tuple[str, int] | None:
        """meshlab:sshBastionHost as (host, port), port 22 unless given; None without a bastion.
        A malformed or missing port after a ':' reads as 0, which validation refuses."""
        if not self.ssh_bastion_host:
            return None
        host, colon, port = self.ssh_bastion_host.partition(":")
        if not colon:
            return host, 22
        return host, int(port) if port.isascii() and port.isdigit() else 0

    def bridge_name(self, stack: str) -> str:
        """The QEMU lab bridge: meshlab:qemuBridge, or one named after the stack (cut to 15 characters)."""
        return self.qemu_bridge or f"meshlab-{stack}"[:15]


class NetworkSettings(_Section):
    """Addresses on the VirtualBox host-only network and inside the cluster."""

    # host_only_cidr and api_vip: required when meshlab builds the cluster (validation says so); an existing
    # cluster (meshlab:kubeconfig) has neither. Code on the built-cluster path reads `subnet` and `vip`.
    host_only_cidr: OptionalNetwork = Field(
        default=None, description="The host-only subnet every node, the VIP and the pool live in."
    )
    host_only_host_ip: OptionalAddress = Field(
        default=None, description="The host's address on the host-only network; empty means the first address."
    )
    vbox_allowed_ranges: list[IPv4Network] = Field(
        default_factory=lambda: [VIRTUALBOX_DEFAULT_HOST_ONLY],
        description="Host-only ranges VirtualBox accepts (/etc/vbox/networks.conf); default 192.168.56.0/21.",
    )
    api_vip: OptionalAddress = Field(default=None, description="Virtual IP of the Kubernetes API (kube-vip, ARP).")
    metallb_pool: PoolRange = Field(description="MetalLB LoadBalancer addresses, 'A-B' or a CIDR.")
    cluster_cidr: IPv4Network = Field(default=IPv4Network("10.42.0.0/16"), description="Pod CIDR.")
    service_cidr: IPv4Network = Field(default=IPv4Network("10.43.0.0/16"), description="Service CIDR.")

    @property
    def subnet(self) -> IPv4Network:
        """meshlab:hostOnlyCidr of a cluster meshlab builds (validation refuses it unset there)."""
        if self.host_only_cidr is None:
            raise RuntimeError(f"{config_key('host_only_cidr')} is unset: only an existing cluster goes without it")
        return self.host_only_cidr

    @property
    def vip(self) -> IPv4Address:
        """meshlab:apiVip of a cluster meshlab builds (validation refuses it unset there)."""
        if self.api_vip is None:
            raise RuntimeError(f"{config_key('api_vip')} is unset: only an existing cluster goes without it")
        return self.api_vip

    @property
    def host_ip(self) -> IPv4Address:
        return self.host_only_host_ip or self.subnet[1]


class AccessSettings(_Section):
    """How meshlab logs in to the VMs and where it keeps downloads."""

    ssh_user: str = Field(
        default="meshlab",
        description="Login user: created by cloud-init on VMs (sudo, key only); on existing hosts, one with "
        "passwordless sudo.",
    )
    ssh_public_key: str = Field(default="", description="Your OpenSSH public key; empty generates a key pair.")
    ssh_private_key: SecretStr = Field(
        default=SecretStr(""),
        description="Private key matching sshPublicKey (existing hosts: the key that logs in); set it with --secret.",
    )
    ssh_agent: bool = Field(
        default=False,
        description="existing only: log in with the keys of your ssh-agent (SSH_AUTH_SOCK) instead of "
        "meshlab:sshPrivateKey.",
    )
    ntp_servers: list[str] = Field(
        default_factory=list, description="NTP servers for the VMs; empty uses Ubuntu's (existing hosts keep theirs)."
    )
    image_cache_dir: str = Field(
        default="", description="Where images and seeds are cached; empty means ~/.cache/meshlab."
    )


class ClusterSettings(_Section):
    """RKE2, Cilium, kube-vip and the NFS export on the first server; or an existing cluster."""

    kubeconfig: SecretStr = Field(
        default=SecretStr(""),
        description="An existing cluster's kubeconfig (its current context): meshlab deploys the platform onto it "
        "and builds no hosts and no RKE2. Set it with --secret; never promoted.",
    )
    nfs_server: str = Field(
        default="",
        description="Existing cluster only: the NFS server (address or name) dynamic volumes live on, exporting "
        "meshlab:nfsExportPath; empty turns NFS storage off there.",
    )

    rke2_version: str = Field(
        json_schema_extra=PROMOTABLE,
        default=versions.RKE2,
        description="RKE2 release. Raising it upgrades servers one at a time, then agents; "
        "older than the pinned release is refused.",
    )
    api_dns_name: str = Field(
        default="", description="An extra DNS name for the API server certificate (tls-san); empty for none."
    )
    etcd_snapshot_schedule: str = Field(
        json_schema_extra=PROMOTABLE,
        default="0 */6 * * *",
        description="Cron schedule (5 fields) of automatic etcd snapshots on every server.",
    )
    etcd_snapshot_retention: int = Field(
        json_schema_extra=PROMOTABLE, default=12, description="How many etcd snapshots each server keeps."
    )
    hubble_enabled: bool = Field(
        json_schema_extra=PROMOTABLE, default=True, description="Hubble flow visibility, with its relay and UI."
    )
    cilium_operator_replicas: OptionalCount = Field(
        json_schema_extra=PROMOTABLE,
        default=None,
        description=f"Cilium operator replicas (at most one per node); empty means {DEFAULT_OPERATOR_REPLICAS}, "
        "or 1 on a one-node cluster.",
    )
    nfs_export_path: str = Field(
        json_schema_extra=PROMOTABLE,
        default="/srv/nfs/kubedata",
        description="Directory the first server exports over NFS for dynamic volumes (existing cluster: the "
        "directory meshlab:nfsServer exports).",
    )
    nfs_allowed_cidr: OptionalNetwork = Field(
        default=None, description="Clients allowed to mount the NFS export; empty means the host-only subnet."
    )
    embedded_registry: bool = Field(
        json_schema_extra=PROMOTABLE,
        default=True,
        description="RKE2's embedded registry mirror (Spegel): nodes share the images one of them pulled, so each "
        "image leaves the internet once per cluster, not once per node (TCP 5001 and 9345 between nodes).",
    )
    node_ready_timeout_seconds: int = Field(
        json_schema_extra=PROMOTABLE,
        default=900,
        description="How long each RKE2 start, join or upgrade may take before it fails.",
    )

    @property
    def existing(self) -> bool:
        """The stack targets a cluster meshlab did not build."""
        return bool(self.kubeconfig.get_secret_value())

    def rke2_ports(self, role: str) -> tuple[int, ...]:
        """The TCP ports RKE2 listens on for a role ("server" or "agent"): free before it is installed."""
        return (*RKE2_PORTS[role], *((EMBEDDED_REGISTRY_PORT,) if self.embedded_registry else ()))


class MeshSettings(_Section):
    """Istio ambient: mutual TLS and the mesh's certificate authority."""

    istio_version: str = Field(
        json_schema_extra=PROMOTABLE,
        default=versions.ISTIO,
        description="Istio release of the base, istiod, istio-cni and ztunnel charts and images.",
    )

    mesh_mtls_mode: Literal["STRICT", "PERMISSIVE"] = Field(
        json_schema_extra=PROMOTABLE,
        default="STRICT",
        description="Mesh-wide mTLS mode (PeerAuthentication in istio-system); STRICT or PERMISSIVE.",
    )
    mesh_plugged_ca: bool = Field(
        default=False,
        description="Plug a meshlab root and intermediate CA (the cacerts secret) into istiod instead of its own.",
    )
    mesh_ca_root_cert_pem: str = Field(
        default="", description="A shared root CA certificate (PEM) to sign the intermediate; empty generates a root."
    )
    mesh_ca_root_key_pem: SecretStr = Field(
        default=SecretStr(""), description="The shared root's private key (PEM); set it with --secret."
    )
    mesh_ca_root_validity_hours: int = Field(
        json_schema_extra=PROMOTABLE, default=87600, description="Lifetime of a generated root CA, hours."
    )
    mesh_ca_intermediate_validity_hours: int = Field(
        json_schema_extra=PROMOTABLE,
        default=8760,
        description="Lifetime of the mesh's intermediate CA, hours (rotate before it ends).",
    )


class PlatformSettings(_Section):
    """Ingress, storage and observability on top of the cluster."""

    ingress_domain: str = Field(
        default="lab", description="DNS suffix of the lab's UIs: grafana.<domain>, kiali.<domain>, hubble.<domain>."
    )
    ingress_address: OptionalAddress = Field(
        default=None, description="The ingress gateway's MetalLB address; empty means the pool's first address."
    )
    nfs_storage_class: str = Field(
        json_schema_extra=PROMOTABLE, default="nfs-client", description="Name of the NFS-backed StorageClass."
    )
    nfs_default_storage_class: bool = Field(
        json_schema_extra=PROMOTABLE, default=True, description="Make the NFS StorageClass the default."
    )
    node_exporter_enabled: bool = Field(
        json_schema_extra=PROMOTABLE,
        default=False,
        description="Run Prometheus node-exporter (host access: the monitoring namespace turns privileged).",
    )
    prometheus_retention: str = Field(
        json_schema_extra=PROMOTABLE, default="7d", description="How long Prometheus keeps metrics (e.g. 7d, 24h)."
    )
    kiali_auth_strategy: Literal["anonymous", "token"] = Field(
        default="token", description="Kiali login: token (a ServiceAccount token) or anonymous."
    )


def _json_text(value: Any) -> Any:
    """A secret JSON object arrives decoded (the loader decodes JSON text); keep it as text in the secret."""
    return json.dumps(value) if isinstance(value, dict | list) else value


SecretJson = Annotated[SecretStr, BeforeValidator(_json_text)]


class SourcesSettings(_Section):
    """Where RKE2, images, charts and manifests come from: upstream, or the site's mirrors and files. The
    environment's own: never promoted."""

    rke2_artifacts: str = Field(
        default="",
        description="Where RKE2 comes from: empty for every node downloading it (get.rke2.io); download for the "
        "workstation downloading the release's artifacts once (verified, cached) and copying them to every node; "
        "or an absolute directory already holding them (air gap).",
    )
    registry_mirrors: list[str] = Field(
        default_factory=list,
        description="Registry mirrors as REGISTRY=URL entries, tried in order (docker.io=https://mirror.example:5000); "
        "REGISTRY * stands for every registry the lab pulls from. Written to registries.yaml on every node.",
    )
    registry_credentials: SecretJson = Field(
        default=SecretStr(""),
        description='Logins for registries or mirrors, a JSON object {"HOST": {"username": "...", "password": "..."}}; '
        "set it with --secret.",
    )
    registry_ca_pem: str = Field(
        default="",
        description="A CA certificate (PEM) the https mirrors' certificates are signed by; empty trusts the nodes' "
        "own CA bundle.",
    )

    chart_repository: str = Field(
        default="",
        description="One Helm repository (http:// or https://) that serves every pinned chart at its pinned "
        "version; empty uses each chart's upstream repository.",
    )
    gateway_api_crds_url: str = Field(
        default="",
        description="Where the Gateway API CRD manifest (standard-install.yaml of the pinned release) is read "
        "from: an http(s) URL or an absolute file path; empty uses the release on GitHub.",
    )


HttpMethod = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def _only_get() -> list[HttpMethod]:
    return ["GET"]


class AppSettings(_Section):
    """The rollout phase, the hardened test app and the demo scenarios."""

    rollout_phase: int = Field(
        default=4,
        description="Rollout phase 1-4: 1 hosts and cluster; 2 + Gateway API, Istio ambient, ns-test on PERMISSIVE; "
        "3 + waypoint, L7 policy, STRICT, ingress; 4 + storage, Kyverno, observability.",
    )
    test_app_hostname: str = Field(default="test.test", description="Hostname of the test app on the ingress.")
    test_app_image: str = Field(
        json_schema_extra=PROMOTABLE,
        default=versions.TEST_APP_IMAGE,
        description="Image of the test app (non-root nginx on 8080), pinned to a version.",
    )
    test_app_allowed_methods: list[HttpMethod] = Field(
        json_schema_extra=PROMOTABLE,
        default_factory=_only_get,
        description="HTTP methods the waypoint lets through to the test app.",
    )
    test_app_allowed_paths: list[str] = Field(
        json_schema_extra=PROMOTABLE,
        default_factory=lambda: ["/"],
        description="Exact paths the waypoint lets through (Istio path syntax: '/', '/api/*').",
    )
    test_app_egress_fqdns: list[str] = Field(
        json_schema_extra=PROMOTABLE,
        default_factory=lambda: ["httpbin.org"],
        description="The only names the test app may reach outside the cluster (HTTPS).",
    )
    demo_ambient: Literal["off", "before", "after"] = Field(
        default="off", description="Demo 1: a 'demo' namespace outside (before) or inside (after) the ambient mesh."
    )
    demo_l7_routing: bool = Field(default=False, description="Demo 2: the waypoint sends /v2 to a v2 backend.")
    demo_principal_policy: bool = Field(
        default=False, description="Demo 3: a client identity (ServiceAccount) may POST to /api/ on the test app."
    )
    # on/off as words, the spelling: a boolean key would refuse `on` (a string in YAML 1.2).
    benchmark: Literal["off", "on"] = Field(
        default="off",
        description="Mesh benchmark: fortio in four namespaces (no mesh, sidecar, ambient, ambient + waypoint) "
        "for tools.bench_mesh; rollout phase 3 or later.",
    )
    benchmark_nodes: list[str] = Field(
        default_factory=list,
        description="The two nodes (by name) the benchmark's servers and clients are pinned to; empty picks two "
        "agents of meshlab:agents. Required on an existing cluster.",
    )


class Settings(BaseModel):
    """The whole validated settings tree."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    topology: TopologySettings
    hosts: HostsSettings = Field(default_factory=HostsSettings)
    network: NetworkSettings
    access: AccessSettings
    cluster: ClusterSettings
    mesh: MeshSettings
    platform: PlatformSettings
    apps: AppSettings
    sources: SourcesSettings = Field(default_factory=SourcesSettings)

    @field_validator("cluster")
    @classmethod
    def _operator_replicas_from_topology(cls, cluster: ClusterSettings, info: ValidationInfo) -> ClusterSettings:
        """An unset operator count follows the topology: a replica never shares a node with another. An
        existing cluster's operator is not meshlab's to count (and a count filled in here would read as set:
        validation refuses built-cluster settings there)."""
        topology = info.data.get("topology")
        if (
            cluster.existing
            or cluster.cilium_operator_replicas is not None
            or not isinstance(topology, TopologySettings)
        ):
            return cluster
        replicas = max(1, min(DEFAULT_OPERATOR_REPLICAS, len(topology.nodes)))
        return cluster.model_copy(update={"cilium_operator_replicas": replicas})


SECTIONS: dict[str, type[_Section]] = {
    "topology": TopologySettings,
    "hosts": HostsSettings,
    "network": NetworkSettings,
    "access": AccessSettings,
    "cluster": ClusterSettings,
    "mesh": MeshSettings,
    "platform": PlatformSettings,
    "apps": AppSettings,
    "sources": SourcesSettings,
}


# Settings of a cluster meshlab builds (hosts, RKE2, Cilium, the node network) that nothing reads on an
# existing cluster (meshlab:kubeconfig): whole sections, and single fields of the sections both share.
_BUILT_CLUSTER_SECTIONS = ("topology", "hosts", "access")
_BUILT_CLUSTER_FIELDS = {
    "network": (
        "host_only_cidr",
        "host_only_host_ip",
        "vbox_allowed_ranges",
        "api_vip",
        "cluster_cidr",
        "service_cidr",
    ),
    "cluster": (
        "rke2_version",
        "api_dns_name",
        "etcd_snapshot_schedule",
        "etcd_snapshot_retention",
        "cilium_operator_replicas",
        "nfs_allowed_cidr",
        "embedded_registry",
    ),
    "sources": ("rke2_artifacts", "registry_mirrors", "registry_credentials", "registry_ca_pem"),
}


def built_cluster_fields() -> list[tuple[str, str]]:
    """(section, field) of every setting only a cluster meshlab builds reads."""
    fields = [(section, name) for section in _BUILT_CLUSTER_SECTIONS for name in SECTIONS[section].model_fields]
    return fields + [(section, name) for section, names in _BUILT_CLUSTER_FIELDS.items() for name in names]


def cluster_name(stack: str) -> str:
    """The name a stack's cluster goes by (the provider's cluster identifier, namespace owner labels)."""
    return f"{NAMESPACE}-{stack}"


def config_key(field_name: str) -> str:
    """The Pulumi config key of a settings field."""
    return f"{NAMESPACE}:{to_camel(field_name)}"


def is_secret_placeholder(value: str) -> bool:
    """Whether `value` stands in for an encrypted stack-file value that offline tools cannot read: the
    placeholder, or tools.snapshot's "[secret DIGEST]" (a digest of the ciphertext, so that a diff sees a
    changed secret). Only the program run by the Pulumi CLI sees the text itself."""
    return value == SECRET_PLACEHOLDER or (value.startswith("[secret ") and value.endswith("]"))


def field_sections() -> dict[str, str]:
    """Map each bare config key name (camelCase) to the section that owns it."""
    owners: dict[str, str] = {}
    for section, model in SECTIONS.items():
        for field_name in model.model_fields:
            key = to_camel(field_name)
            if key in owners:  # pragma: no cover - a programming error caught by the tests
                raise RuntimeError(f"config key {key} is declared by both {owners[key]} and {section}")
            owners[key] = section
    return owners


def promotable_keys() -> list[str]:
    """The config keys `tools.promote` copies between stacks, in declaration order."""
    return [
        config_key(name)
        for model in SECTIONS.values()
        for name, info in model.model_fields.items()
        if isinstance(info.json_schema_extra, dict) and info.json_schema_extra.get("promotable")
    ]


def unused_dhcp_address(network: NetworkSettings, nodes: list[NodeSpec]) -> IPv4Address:
    """The highest host address nothing of ours uses: VirtualBox's DHCP range is pinned to it so
    its leases can never collide with node IPs, the VIP or the MetalLB pool."""
    taken = {network.host_ip, network.vip, *(node.ip for node in nodes)}
    for address in reversed(list(network.subnet.hosts())):
        if address not in taken and address not in network.metallb_pool:
            return address
    raise ValueError("no free address left in the host-only subnet")
