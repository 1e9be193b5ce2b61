"""Cross-field rules over a parsed settings tree.

Each rule reports the config key and the offending value, so a user can fix the stack file
without reading code. All problems are collected and reported together.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from pathlib import PurePosixPath
from typing import Any

from pydantic import SecretStr

from config import images, versions
from config.host_keys import host_key_problem, parse_host_key_entry
from config.kubeconfig import KubeconfigError, current_context
from config.registries import EVERY_REGISTRY, MirrorEntry, parse_credentials, parse_mirror
from config.settings import (
    ETCD_SERVER_COUNTS,
    IMAGE_FORMATS,
    MINIMUM_RESOURCES,
    QEMU_USER_NETWORK,
    VIRTUALBOX_NAT,
    AccessSettings,
    AppSettings,
    ClusterSettings,
    HostsSettings,
    MeshSettings,
    NetworkSettings,
    NodeSpec,
    PlatformSettings,
    Settings,
    SourcesSettings,
    TopologySettings,
    built_cluster_fields,
    config_key,
    is_secret_placeholder,
    unused_dhcp_address,
)

_USERNAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_RKE2_VERSION = re.compile(r"^v(\d+)\.(\d+)\.(\d+)\+rke2r(\d+)$")
_DNS_NAME = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")
_CRON_FIELD = re.compile(r"^[0-9*/,-]+$")
# Safe to put into /etc/exports and a shell line unquoted.
_EXPORT_PATH = re.compile(r"^(/[A-Za-z0-9._-]+)+$")
MINIMUM_READY_TIMEOUT_SECONDS = 60
_DURATION = re.compile(r"^[0-9]+(ms|s|m|h|d|w|y)$")
_OBJECT_NAME = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$")
MINIMUM_CA_HOURS = 24
# [registry[:port]/]repository[:tag][@sha256:digest] with a tag other than latest, or a digest.
_PINNED_IMAGE = re.compile(r"^([a-z0-9.\-]+(:[0-9]+)?/)?[a-z0-9.\-/_]+(:(?!latest$)[\w.\-]+)?(@sha256:[0-9a-f]{64})?$")
ROLLOUT_PHASES = (1, 2, 3, 4)
_ISTIO_VERSION = re.compile(r"^1\.[0-9]+\.[0-9]+$")
_HTTP_URL = re.compile(r"^https?://[^\s/?#]+(/[^\s?#]*)?$")
# The network each VM backend puts every guest's internet NIC on (guest 10.0.2.15), which nothing of ours
# may overlap. Existing hosts reach the internet their own way: they have neither.
GUEST_NETWORKS: dict[str, tuple[str, IPv4Network]] = {
    "virtualbox": ("the VirtualBox NAT network", VIRTUALBOX_NAT),
    "qemu": ("QEMU's user-mode network", QEMU_USER_NETWORK),
}


@dataclass(frozen=True)
class Problem:
    key: str
    value: Any
    message: str

    def __str__(self) -> str:
        return f"{self.key} = {self.value!s}: {self.message}"


class SettingsError(ValueError):
    """Raised before anything is registered when the stack's settings are invalid."""

    def __init__(self, problems: Iterable[Problem], source: str = "stack config") -> None:
        self.problems = list(problems)
        self.source = source
        lines = "\n".join(f"  - {problem}" for problem in self.problems)
        super().__init__(f"invalid meshlab settings in {source}:\n{lines}")


def _node_key(node: NodeSpec, topology: TopologySettings) -> str:
    group = topology.servers if node.role == "server" else topology.agents
    return f"{config_key(node.role + 's')}[{group.index(node)}]"


def _node_value(node: NodeSpec) -> str:
    return f"{node.name}={node.ip}"


def counted(count: int, noun: str) -> str:
    """`1 server`, `3 servers`: a count and its noun in agreement."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _article(noun: str) -> str:
    return f"an {noun}" if noun[:1] in "aeiou" else f"a {noun}"


def check_topology(topology: TopologySettings) -> Iterator[Problem]:
    servers = topology.servers
    server_names = ", ".join(node.name for node in servers) or "none"
    if len(servers) not in ETCD_SERVER_COUNTS:
        yield Problem(
            config_key("servers"),
            f"{counted(len(servers), 'server')} ({server_names})",
            "the server count must be odd (1, 3, 5 or 7) so etcd keeps quorum",
        )
    if topology.require_ha and len(servers) < 3:
        yield Problem(
            config_key("servers"),
            f"{counted(len(servers), 'server')} ({server_names})",
            "this stack sets meshlab:requireHa, which needs at least 3 servers",
        )

    seen_names: dict[str, NodeSpec] = {}
    seen_ips: dict[IPv4Address, NodeSpec] = {}
    for node in topology.nodes:
        if node.name in seen_names:
            yield Problem(
                _node_key(node, topology),
                _node_value(node),
                f"node name {node.name} is already used by {_node_key(seen_names[node.name], topology)}",
            )
        seen_names.setdefault(node.name, node)
        if node.ip in seen_ips:
            yield Problem(
                _node_key(node, topology),
                _node_value(node),
                f"IP {node.ip} is already used by {_node_key(seen_ips[node.ip], topology)}",
            )
        seen_ips.setdefault(node.ip, node)

    for role, minimums in MINIMUM_RESOURCES.items():
        for resource, minimum in minimums.items():
            field = f"{role}_{resource}"
            value = getattr(topology, field)
            if value < minimum:
                unit = {"cpus": "vCPUs", "memory_mib": "MiB", "disk_gib": "GiB"}[resource]
                yield Problem(config_key(field), value, f"{_article(role)} needs at least {minimum} {unit}")


def _check_inside(key: str, value: Any, address: IPv4Address, subnet: IPv4Network) -> Iterator[Problem]:
    if address not in subnet:
        yield Problem(
            key, value, f"{address} is outside the host-only subnet {config_key('host_only_cidr')} = {subnet}"
        )
    elif address in (subnet.network_address, subnet.broadcast_address):
        yield Problem(key, value, f"{address} is the network or broadcast address of {subnet}")


# Linux interface names (bridges, taps) are at most 15 characters.
_INTERFACE_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,14}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _read_only_with(hypervisor: str) -> str:
    return f"is read only with meshlab:hypervisor {hypervisor}"


def check_existing(
    hosts: HostsSettings, access: AccessSettings, network: NetworkSettings, node_names: Sequence[str] = ()
) -> Iterator[Problem]:
    """The settings of existing hosts, and those that only mean something for VMs."""
    if not hosts.existing:
        for name in ("node_interface", "ssh_bastion_host", "ssh_bastion_user", "ssh_host_keys", "ssh_bastion_host_key"):
            if getattr(hosts, name):
                yield Problem(config_key(name), getattr(hosts, name), _read_only_with("existing"))
        if access.ssh_agent:
            yield Problem(config_key("ssh_agent"), True, _read_only_with("existing"))
        return
    if not hosts.node_interface:
        yield Problem(
            config_key("node_interface"),
            "(unset)",
            "required with meshlab:hypervisor existing: the NIC that holds each node's address (e.g. eth0), the "
            "same name on every node; the preflight says which NIC holds it if this is wrong",
        )
    elif not _INTERFACE_NAME.match(hosts.node_interface):
        yield Problem(
            config_key("node_interface"), hosts.node_interface, "not a Linux interface name (letters, digits, _.-)"
        )
    has_key = bool(access.ssh_private_key.get_secret_value())
    if not has_key and not access.ssh_agent:
        yield Problem(
            config_key("ssh_private_key"),
            "(unset)",
            f"required with meshlab:hypervisor existing: the key that logs in to the nodes as "
            f"{config_key('ssh_user')} {access.ssh_user} (pulumi config set --secret meshlab:sshPrivateKey "
            "< KEYFILE), or set meshlab:sshAgent true to use your ssh-agent",
        )
    if has_key and access.ssh_agent:
        yield Problem(config_key("ssh_agent"), True, "choose one: meshlab:sshPrivateKey or the ssh-agent, not both")
    vm_only = {
        "ssh_public_key": (access.ssh_public_key, "the hosts already authorize your key; only the private key is read"),
        "ntp_servers": (
            access.ntp_servers,
            "the hosts keep their own time service (the preflight checks it is synced)",
        ),
        "host_only_host_ip": (network.host_only_host_ip, "the hosts are on your own network, not a host-only one"),
        "image_file": (hosts.image_file, "the hosts boot no image"),
        "image_sha256": (hosts.image_sha256, "the hosts boot no image"),
    }
    for name, (value, reason) in vm_only.items():
        if value:
            yield Problem(config_key(name), value, f"is not read with meshlab:hypervisor existing: {reason}")
    bastion = hosts.bastion_address
    if bastion:
        host, _ = bastion
        port_problem = _bastion_port_problem(hosts.ssh_bastion_host)
        if not (_DNS_NAME.match(host) or _is_ipv4(host)):
            yield Problem(
                config_key("ssh_bastion_host"),
                hosts.ssh_bastion_host,
                "not HOST or HOST:PORT (a DNS name or IPv4 address)",
            )
        elif port_problem:
            yield Problem(config_key("ssh_bastion_host"), hosts.ssh_bastion_host, port_problem)
        if not hosts.ssh_bastion_user:
            yield Problem(
                config_key("ssh_bastion_user"),
                "(unset)",
                f"required with {config_key('ssh_bastion_host')} {hosts.ssh_bastion_host}: the login user there",
            )
    elif hosts.ssh_bastion_user:
        yield Problem(
            config_key("ssh_bastion_user"),
            hosts.ssh_bastion_user,
            f"set {config_key('ssh_bastion_host')} too, or neither for direct SSH",
        )
    if hosts.ssh_bastion_user and not _USERNAME.match(hosts.ssh_bastion_user):
        yield Problem(config_key("ssh_bastion_user"), hosts.ssh_bastion_user, "must be a plain Linux user name")
    yield from _check_host_keys(hosts, node_names)


def _check_host_keys(hosts: HostsSettings, node_names: Sequence[str]) -> Iterator[Problem]:
    key = config_key("ssh_host_keys")
    seen: set[str] = set()
    for entry in hosts.ssh_host_keys:
        try:
            name, _ = parse_host_key_entry(entry)
        except ValueError as error:
            yield Problem(key, entry, str(error))
            continue
        if name in seen:
            yield Problem(key, entry, f"a second key for {name}: give each node one key")
        elif node_names and name not in node_names:
            yield Problem(key, entry, f"{name} is not a node of this stack ({', '.join(node_names)})")
        seen.add(name)
    if hosts.ssh_bastion_host_key:
        problem = host_key_problem(hosts.ssh_bastion_host_key)
        if problem:
            yield Problem(config_key("ssh_bastion_host_key"), hosts.ssh_bastion_host_key, problem)
        elif not hosts.ssh_bastion_host:
            yield Problem(
                config_key("ssh_bastion_host_key"),
                hosts.ssh_bastion_host_key,
                f"set {config_key('ssh_bastion_host')} too: this is the bastion's key",
            )


def _bastion_port_problem(bastion: str) -> str:
    """What is wrong with the port of meshlab:sshBastionHost ('' if nothing, or none is given)."""
    _, colon, port = bastion.partition(":")
    if not colon:
        return ""
    if not port:
        return "no port after ':' (write HOST alone for port 22)"
    if not (port.isascii() and port.isdigit()):
        return f"port {port} is not a number (1 to 65535)"
    if not 0 < int(port) < 65536:
        return f"port {port} is not a TCP port (1 to 65535)"
    return ""


def _is_ipv4(text: str) -> bool:
    try:
        IPv4Address(text)
    except ValueError:
        return False
    return True


def check_hosts(hosts: HostsSettings, network: NetworkSettings) -> Iterator[Problem]:
    # Compared with the default, not "was it given": the Pulumi CLI hands the program every declared key.
    ranges_default = NetworkSettings.model_fields["vbox_allowed_ranges"].get_default(call_default_factory=True)
    if hosts.hypervisor != "virtualbox" and network.vbox_allowed_ranges != ranges_default:
        yield Problem(
            config_key("vbox_allowed_ranges"),
            _shown_value(network.vbox_allowed_ranges),
            _read_only_with("virtualbox"),
        )
    if hosts.hypervisor != "qemu":
        if hosts.qemu_bridge:
            yield Problem(config_key("qemu_bridge"), hosts.qemu_bridge, _read_only_with("qemu"))
        if hosts.qemu_accelerator != "auto":
            yield Problem(config_key("qemu_accelerator"), hosts.qemu_accelerator, _read_only_with("qemu"))
    if hosts.qemu_bridge and not _INTERFACE_NAME.match(hosts.qemu_bridge):
        yield Problem(
            config_key("qemu_bridge"),
            hosts.qemu_bridge,
            "not a Linux interface name (letters, digits, _.-; 15 at most)",
        )
    image, digest = hosts.image_file, hosts.image_sha256
    if bool(image) != bool(digest):
        yield Problem(
            config_key("image_file" if image else "image_sha256"),
            image or digest,
            "set both meshlab:imageFile and meshlab:imageSha256, or neither to use the pinned Ubuntu image",
        )
    if image and not PurePosixPath(image).is_absolute():
        yield Problem(config_key("image_file"), image, "must be an absolute path")
    if image and PurePosixPath(image).suffix not in IMAGE_FORMATS:
        suffixes = ", ".join(IMAGE_FORMATS)
        yield Problem(config_key("image_file"), image, f"must end in one of {suffixes} (the format is read from it)")
    if digest and not _SHA256.match(digest):
        yield Problem(config_key("image_sha256"), digest, "must be 64 lowercase hexadecimal digits")


def check_network(network: NetworkSettings, topology: TopologySettings, hosts: HostsSettings) -> Iterator[Problem]:
    subnet = network.subnet
    # Existing hosts are on the user's own network: the workstation has no address of its own there.
    host_ip = None if hosts.existing else network.host_ip
    pool = network.metallb_pool

    if subnet.prefixlen > 28:
        yield Problem(
            config_key("host_only_cidr"), subnet, "use a /28 or larger subnet: it must hold nodes, VIP and pool"
        )
    # A QEMU bridge takes any subnet; VirtualBox's host-only networks only the allowed ranges.
    if hosts.hypervisor == "virtualbox" and not any(
        subnet.subnet_of(allowed) for allowed in network.vbox_allowed_ranges
    ):
        allowed_text = ", ".join(str(allowed) for allowed in network.vbox_allowed_ranges)
        yield Problem(
            config_key("host_only_cidr"),
            subnet,
            f"VirtualBox only allows host-only networks inside {allowed_text}; widen /etc/vbox/networks.conf "
            f"and list the range in {config_key('vbox_allowed_ranges')} to use another one",
        )
    guest = GUEST_NETWORKS.get(hosts.hypervisor)
    if guest is not None and subnet.overlaps(guest[1]):
        yield Problem(config_key("host_only_cidr"), subnet, f"overlaps {guest[0]} ({guest[1]})")
    if host_ip is not None:
        yield from _check_inside(config_key("host_only_host_ip"), host_ip, host_ip, subnet)

    for node in topology.nodes:
        key, value = _node_key(node, topology), _node_value(node)
        yield from _check_inside(key, value, node.ip, subnet)
        if node.ip == host_ip:
            yield Problem(key, value, f"{node.ip} is the host's own address on the host-only network")
        if node.ip == network.api_vip:
            yield Problem(key, value, f"{node.ip} is the API VIP {config_key('api_vip')}")
        if node.ip in pool:
            yield Problem(
                config_key("metallb_pool"), pool, f"the pool overlaps node {node.name}'s IP {node.ip} ({key})"
            )

    vip = network.vip
    yield from _check_inside(config_key("api_vip"), vip, vip, subnet)
    if vip == host_ip:
        yield Problem(config_key("api_vip"), vip, "the VIP is the host's own host-only address")
    if vip in pool:
        yield Problem(config_key("metallb_pool"), pool, f"the pool contains the API VIP {vip}")
    if host_ip is not None and host_ip in pool:
        yield Problem(config_key("metallb_pool"), pool, f"the pool contains the host's address {host_ip}")
    if pool.first not in subnet or pool.last not in subnet:
        yield Problem(config_key("metallb_pool"), pool, f"the pool reaches outside the host-only subnet {subnet}")
    elif subnet.network_address in pool or subnet.broadcast_address in pool:
        yield Problem(
            config_key("metallb_pool"), pool, f"the pool includes the network or broadcast address of {subnet}"
        )

    cidrs = {
        config_key("cluster_cidr"): network.cluster_cidr,
        config_key("service_cidr"): network.service_cidr,
    }
    others = {config_key("host_only_cidr"): subnet}
    if guest is not None:
        others[guest[0]] = guest[1]
    for key, cidr in cidrs.items():
        for other_key, other in {**others, **{k: v for k, v in cidrs.items() if k < key}}.items():
            if cidr.overlaps(other):
                yield Problem(key, cidr, f"overlaps {other_key} ({other})")


def rke2_version_key(version: str) -> tuple[int, int, int, int] | None:
    """(major, minor, patch, rke2 revision) of `v1.32.7+rke2r1`, or None when malformed."""
    match = _RKE2_VERSION.match(version)
    if not match:
        return None
    major, minor, patch, revision = (int(part) for part in match.groups())
    return major, minor, patch, revision


def check_cluster(cluster: ClusterSettings, network: NetworkSettings, topology: TopologySettings) -> Iterator[Problem]:
    wanted = rke2_version_key(cluster.rke2_version)
    pinned = rke2_version_key(versions.RKE2)
    if pinned is None:  # pragma: no cover - a programming error caught by the tests
        raise RuntimeError(f"config/versions.py pins a malformed RKE2 version {versions.RKE2!r}")
    if wanted is None:
        yield Problem(config_key("rke2_version"), cluster.rke2_version, "expected an RKE2 release like v1.32.7+rke2r1")
    elif wanted < pinned:
        yield Problem(
            config_key("rke2_version"),
            cluster.rke2_version,
            f"older than the pinned {versions.RKE2}: RKE2 does not support downgrades (restore a snapshot instead)",
        )
    elif wanted[:2] > (pinned[0], pinned[1] + 1):
        yield Problem(
            config_key("rke2_version"),
            cluster.rke2_version,
            f"Kubernetes upgrades one minor version at a time: from {versions.RKE2} go to v1.{pinned[1] + 1}.x first",
        )

    if cluster.api_dns_name and not _DNS_NAME.match(cluster.api_dns_name):
        yield Problem(config_key("api_dns_name"), cluster.api_dns_name, "not a DNS name (lowercase, dot-separated)")
    fields = cluster.etcd_snapshot_schedule.split()
    if len(fields) != 5 or not all(_CRON_FIELD.match(field) for field in fields):
        yield Problem(
            config_key("etcd_snapshot_schedule"),
            cluster.etcd_snapshot_schedule,
            "expected a 5-field cron expression such as '0 */6 * * *'",
        )
    if cluster.etcd_snapshot_retention < 1:
        yield Problem(config_key("etcd_snapshot_retention"), cluster.etcd_snapshot_retention, "keep at least 1")
    node_count = len(topology.nodes)
    replicas = cluster.cilium_operator_replicas
    # Unset, the count follows the topology (Settings); with no nodes at all the topology is what to fix.
    if replicas is not None and node_count and not 1 <= replicas <= node_count:
        yield Problem(
            config_key("cilium_operator_replicas"),
            replicas,
            f"must be between 1 and the node count ({node_count}): replicas never share a node",
        )
    if not _EXPORT_PATH.match(cluster.nfs_export_path):
        yield Problem(
            config_key("nfs_export_path"),
            cluster.nfs_export_path,
            "expected an absolute path below / of letters, digits, '.', '_' and '-'",
        )
    # Unset, the export's clients are the host-only subnet: a node outside it is already reported, as the
    # node's own problem, not one of a setting the user never wrote.
    allowed = cluster.nfs_allowed_cidr
    outside = [node.name for node in topology.nodes if allowed is not None and node.ip not in allowed]
    if outside:
        yield Problem(
            config_key("nfs_allowed_cidr"),
            allowed,
            f"{'node' if len(outside) == 1 else 'nodes'} {', '.join(outside)} could not mount the export; "
            "include every node IP",
        )
    if cluster.node_ready_timeout_seconds < MINIMUM_READY_TIMEOUT_SECONDS:
        yield Problem(
            config_key("node_ready_timeout_seconds"),
            cluster.node_ready_timeout_seconds,
            f"at least {MINIMUM_READY_TIMEOUT_SECONDS} s: an RKE2 server takes minutes to start",
        )


def check_mesh(mesh: MeshSettings) -> Iterator[Problem]:
    if not _ISTIO_VERSION.match(mesh.istio_version):
        yield Problem(config_key("istio_version"), mesh.istio_version, "expected an Istio release like 1.27.0")
    has_cert, has_key = bool(mesh.mesh_ca_root_cert_pem), bool(mesh.mesh_ca_root_key_pem.get_secret_value())
    if has_cert != has_key:
        yield Problem(
            config_key("mesh_ca_root_cert_pem"),
            mesh.mesh_ca_root_cert_pem.splitlines()[0] if has_cert else "(empty)",
            "set both meshlab:meshCaRootCertPem and meshlab:meshCaRootKeyPem, or neither to generate a root",
        )
    if has_cert and "-----BEGIN CERTIFICATE-----" not in mesh.mesh_ca_root_cert_pem:
        yield Problem(
            config_key("mesh_ca_root_cert_pem"),
            mesh.mesh_ca_root_cert_pem.splitlines()[0],
            "expected a PEM certificate",
        )
    if (has_cert or has_key) and not mesh.mesh_plugged_ca:
        yield Problem(
            config_key("mesh_plugged_ca"),
            mesh.mesh_plugged_ca,
            "a shared root CA is only used with meshPluggedCa: true",
        )
    for field in ("mesh_ca_root_validity_hours", "mesh_ca_intermediate_validity_hours"):
        if getattr(mesh, field) < MINIMUM_CA_HOURS:
            yield Problem(config_key(field), getattr(mesh, field), f"at least {MINIMUM_CA_HOURS} hours")
    if not has_cert and mesh.mesh_ca_intermediate_validity_hours >= mesh.mesh_ca_root_validity_hours:
        yield Problem(
            config_key("mesh_ca_intermediate_validity_hours"),
            mesh.mesh_ca_intermediate_validity_hours,
            f"must end before the root it is signed by ({config_key('mesh_ca_root_validity_hours')} = "
            f"{mesh.mesh_ca_root_validity_hours})",
        )


def check_platform(platform: PlatformSettings, network: NetworkSettings) -> Iterator[Problem]:
    if not _DNS_NAME.match(platform.ingress_domain):
        yield Problem(
            config_key("ingress_domain"), platform.ingress_domain, "not a DNS name (lowercase, dot-separated)"
        )
    if platform.ingress_address is not None and platform.ingress_address not in network.metallb_pool:
        yield Problem(
            config_key("ingress_address"),
            platform.ingress_address,
            f"MetalLB can only hand out addresses from {config_key('metallb_pool')} = {network.metallb_pool}",
        )
    if not _OBJECT_NAME.match(platform.nfs_storage_class):
        yield Problem(
            config_key("nfs_storage_class"), platform.nfs_storage_class, "not a Kubernetes object name (lowercase)"
        )
    if not _DURATION.match(platform.prometheus_retention):
        yield Problem(
            config_key("prometheus_retention"), platform.prometheus_retention, "expected a duration such as 7d or 24h"
        )


def check_apps(apps: AppSettings) -> Iterator[Problem]:
    if apps.rollout_phase not in ROLLOUT_PHASES:
        yield Problem(config_key("rollout_phase"), apps.rollout_phase, "the rollout has phases 1, 2, 3 and 4")
    if not _DNS_NAME.match(apps.test_app_hostname):
        yield Problem(config_key("test_app_hostname"), apps.test_app_hostname, "not a DNS name (lowercase)")
    image = apps.test_app_image
    if not _PINNED_IMAGE.match(image) or (":" not in image.rsplit("/", 1)[-1] and "@sha256:" not in image):
        yield Problem(config_key("test_app_image"), image, "pin the image to a version tag (not latest) or a digest")
    if not apps.test_app_allowed_methods:
        yield Problem(
            config_key("test_app_allowed_methods"), "[]", "allow at least one method, or nothing gets through"
        )
    for path in apps.test_app_allowed_paths:
        if not path.startswith(("/", "*")) or " " in path:
            yield Problem(config_key("test_app_allowed_paths"), path, "a path starts with '/' (or '*' for a suffix)")
    for name in apps.test_app_egress_fqdns:
        if not _DNS_NAME.match(name):
            yield Problem(config_key("test_app_egress_fqdns"), name, "not a DNS name (lowercase)")
    needs = {"demo_l7_routing": (apps.demo_l7_routing, 3), "demo_principal_policy": (apps.demo_principal_policy, 3)}
    needs["demo_ambient"] = (apps.demo_ambient != "off", 2)
    needs["benchmark"] = (apps.benchmark == "on", 3)
    for field, (enabled, phase) in needs.items():
        if enabled and apps.rollout_phase < phase:
            yield Problem(
                config_key(field),
                getattr(apps, field),
                f"needs {config_key('rollout_phase')} {phase} or later (it is {apps.rollout_phase})",
            )


def check_built_cluster_required(settings: Settings) -> Iterator[Problem]:
    """What a cluster meshlab builds cannot do without (an existing cluster needs none of it)."""
    unset = "(unset)"
    # An empty list given on purpose is the topology check's to judge (an odd server count).
    if "servers" not in settings.topology.model_fields_set:
        yield Problem(config_key("servers"), unset, "required setting is missing from the stack config")
    for field in ("host_only_cidr", "api_vip"):
        if getattr(settings.network, field) is None:
            yield Problem(config_key(field), unset, "required setting is missing from the stack config")


def check_built_cluster_nfs(cluster: ClusterSettings) -> Iterator[Problem]:
    """meshlab:nfsServer belongs to an existing cluster: a cluster meshlab builds exports NFS itself."""
    if cluster.nfs_server:
        yield Problem(
            config_key("nfs_server"),
            cluster.nfs_server,
            f"only with {config_key('kubeconfig')}: on a cluster meshlab builds, the first server exports NFS",
        )


def _shown_value(value: Any) -> Any:
    """A setting's value as the user wrote it: nodes as NAME=IP, lists comma-separated, secrets hidden."""
    if isinstance(value, SecretStr):
        return "[secret]"
    if isinstance(value, list):
        return ", ".join(_node_value(item) if isinstance(item, NodeSpec) else str(item) for item in value) or "[]"
    return "(empty)" if value is None else value


def check_existing_cluster(settings: Settings) -> Iterator[Problem]:
    """An existing cluster (meshlab:kubeconfig): a usable kubeconfig, and none of the settings only a cluster
    meshlab builds reads (each would be silently ignored)."""
    kubeconfig_key = config_key("kubeconfig")
    kubeconfig = settings.cluster.kubeconfig.get_secret_value()
    # Tools read an encrypted kubeconfig as a placeholder: only the program sees (and checks) the text.
    problem = "" if is_secret_placeholder(kubeconfig) else kubeconfig_problem(kubeconfig)
    if problem:
        yield Problem(kubeconfig_key, "[secret]", problem)
    for section, field in built_cluster_fields():
        model = getattr(settings, section)
        # Compared with the default, not "was it given": the Pulumi CLI hands the program every key
        # Pulumi.yaml declares, with its default.
        value, default = getattr(model, field), type(model).model_fields[field].get_default(call_default_factory=True)
        if isinstance(value, SecretStr) and isinstance(default, SecretStr):
            value, default = value.get_secret_value(), default.get_secret_value()
        if value != default:
            yield Problem(
                config_key(field),
                _shown_value(getattr(model, field)),
                f"only read when meshlab builds the cluster; with {kubeconfig_key} (an existing cluster) nothing "
                "reads it: remove it from this stack",
            )
    if settings.apps.rollout_phase == 1:
        yield Problem(
            config_key("rollout_phase"),
            1,
            f"phase 1 is hosts and cluster, which meshlab does not build with {kubeconfig_key}: start at 2",
        )
    nodes = settings.apps.benchmark_nodes
    if settings.apps.benchmark == "on" and len(nodes) != 2:
        yield Problem(
            config_key("benchmark_nodes"),
            _shown_value(nodes),
            "name two of the cluster's nodes (kubernetes.io/hostname) to pin the benchmark's servers and clients to",
        )
    server = settings.cluster.nfs_server
    if server and not (_is_ipv4(server) or _DNS_NAME.match(server)):
        yield Problem(config_key("nfs_server"), server, "expected an IPv4 address or a DNS name")


def kubeconfig_problem(text: str) -> str:
    """What keeps a kubeconfig from naming one cluster and one user through its current context ('' if
    nothing). Never quotes the text: it holds credentials."""
    try:
        current_context(text)
    except KubeconfigError as error:
        return str(error)
    return ""


def check_sources(sources: SourcesSettings) -> Iterator[Problem]:
    if sources.chart_repository and not _HTTP_URL.match(sources.chart_repository):
        yield Problem(config_key("chart_repository"), sources.chart_repository, "expected an http:// or https:// URL")
    url = sources.gateway_api_crds_url
    if url and not (_HTTP_URL.match(url) or (url.startswith("/") and url.endswith((".yaml", ".yml")))):
        yield Problem(
            config_key("gateway_api_crds_url"),
            url,
            "expected an http:// or https:// URL, or an absolute path of a .yaml file",
        )


RKE2_ARTIFACTS_DOWNLOAD = "download"
_PEM_CERTIFICATE = re.compile(r"-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]+-----END CERTIFICATE-----")


def check_built_sources(sources: SourcesSettings) -> Iterator[Problem]:
    """RKE2's artifacts and the registry settings of a cluster meshlab builds."""
    artifacts = sources.rke2_artifacts
    if artifacts and artifacts != RKE2_ARTIFACTS_DOWNLOAD and not PurePosixPath(artifacts).is_absolute():
        yield Problem(
            config_key("rke2_artifacts"),
            artifacts,
            f"expected empty (nodes download RKE2), {RKE2_ARTIFACTS_DOWNLOAD} (the workstation downloads it once), "
            "or an absolute directory holding the release's artifacts",
        )
    key = config_key("registry_mirrors")
    entries: list[MirrorEntry] = []
    for index, entry in enumerate(sources.registry_mirrors):
        try:
            parsed = parse_mirror(entry)
        except ValueError as error:
            yield Problem(f"{key}[{index}]", entry, str(error))
            continue
        if parsed in entries:
            yield Problem(f"{key}[{index}]", entry, "listed twice")
        entries.append(parsed)
    credentials = sources.registry_credentials.get_secret_value()
    credentials_key = config_key("registry_credentials")
    if credentials and not is_secret_placeholder(credentials):
        try:
            logins = parse_credentials(credentials)
        except ValueError as error:
            yield Problem(credentials_key, "[secret]", str(error))
            logins = {}
        # A login is used only for a host containerd talks to: a mirror endpoint or a registry itself.
        known = {entry.endpoint_host for entry in entries} | {
            entry.registry for entry in entries if entry.registry != EVERY_REGISTRY
        }
        known |= set(images.lab_registries())
        for host in logins:
            if host not in known:
                yield Problem(
                    credentials_key,
                    "[secret]",
                    f"{host} is neither a mirror endpoint's host nor a registry the lab pulls from "
                    f"({', '.join(sorted(known))}): its login would never be used",
                )
    ca = sources.registry_ca_pem
    if ca:
        if not _PEM_CERTIFICATE.search(ca):
            yield Problem(
                config_key("registry_ca_pem"), ca[:40] + "...", "not a PEM certificate (-----BEGIN CERTIFICATE-----)"
            )
        elif not any(entry.endpoint.startswith("https://") for entry in entries):
            yield Problem(
                config_key("registry_ca_pem"),
                ca[:40] + "...",
                "no https:// mirror in meshlab:registryMirrors for this CA to verify",
            )


_PRIVATE_KEY_BEGIN = re.compile(r"-----BEGIN ((?:[A-Z0-9]+ )*)PRIVATE KEY-----")
_PUBLIC_KEY_PEM = re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PUBLIC KEY-----")
_OPENSSH_PUBLIC = ("ssh-", "ecdsa-", "sk-ssh-", "sk-ecdsa-")
_KEY_FILE_NAME = re.compile(r"^id_[a-z0-9_]+$|\.(pem|key|ppk)$")
_AS_KEYFILE = "(pulumi config set --secret meshlab:sshPrivateKey < KEYFILE)"


def private_key_problem(text: str) -> str:
    """What keeps meshlab:sshPrivateKey from being a private key in a PEM or OpenSSH key file ('' if
    nothing): says what it looks like instead, and never quotes it."""
    text = text.strip()
    begin = _PRIVATE_KEY_BEGIN.search(text)
    if begin:
        if f"-----END {begin.group(1)}PRIVATE KEY-----" not in text[begin.end() :]:
            return "the key is cut short: no '-----END ... PRIVATE KEY-----' line after its '-----BEGIN' line"
        return ""
    if text.startswith(_OPENSSH_PUBLIC):
        kind = "OpenSSH"
    elif _PUBLIC_KEY_PEM.search(text):
        kind = "PEM"
    elif text.startswith("---- BEGIN SSH2 PUBLIC KEY ----"):
        kind = "SSH2"
    else:
        kind = ""
    if kind:
        return f"looks like a public key ({kind}): give its private half, the key file without .pub {_AS_KEYFILE}"
    if text.startswith("PuTTY-User-Key-File-"):
        return (
            "looks like a PuTTY key (.ppk): convert it to OpenSSH (puttygen KEY.ppk -O private-openssh -o KEYFILE) "
            "and set that file (pulumi config set --secret meshlab:sshPrivateKey < KEYFILE)"
        )
    if not any(space in text for space in " \t\n") and (
        text.startswith(("~", "/", ".")) or "/" in text or "\\" in text or _KEY_FILE_NAME.search(text)
    ):
        return f"looks like a file path: the setting holds the key itself {_AS_KEYFILE}"
    return "not a private key: no '-----BEGIN ... PRIVATE KEY-----' line (a PEM or OpenSSH key file)"


def validate(settings: Settings) -> list[Problem]:
    """Every cross-field problem of a parsed settings tree (empty when valid)."""
    common = [
        *check_sources(settings.sources),
        *check_mesh(settings.mesh),
        *check_platform(settings.platform, settings.network),
        *check_apps(settings.apps),
    ]
    if settings.cluster.existing:
        return [*check_existing_cluster(settings), *common]
    required = list(check_built_cluster_required(settings))
    if required:
        return [
            *required,
            *check_built_cluster_nfs(settings.cluster),
            *check_hosts(settings.hosts, settings.network),
            *common,
        ]
    problems = [
        *check_built_cluster_nfs(settings.cluster),
        *check_topology(settings.topology),
        *check_hosts(settings.hosts, settings.network),
        *check_existing(
            settings.hosts, settings.access, settings.network, [node.name for node in settings.topology.nodes]
        ),
        *check_network(settings.network, settings.topology, settings.hosts),
        *check_cluster(settings.cluster, settings.network, settings.topology),
        *check_built_sources(settings.sources),
        *common,
    ]
    if not problems:
        try:
            unused_dhcp_address(settings.network, settings.topology.nodes)
        except ValueError as error:
            problems.append(Problem(config_key("host_only_cidr"), settings.network.host_only_cidr, str(error)))
    access = settings.access
    if not _USERNAME.match(access.ssh_user) or access.ssh_user == "root":
        problems.append(Problem(config_key("ssh_user"), access.ssh_user, "must be a plain Linux user name (not root)"))
    if not settings.hosts.existing and bool(access.ssh_public_key) != bool(access.ssh_private_key.get_secret_value()):
        problems.append(
            Problem(
                config_key("ssh_public_key"),
                access.ssh_public_key or "(empty)",
                "set both meshlab:sshPublicKey and meshlab:sshPrivateKey, or neither to generate a key pair",
            )
        )
    if access.ssh_public_key and not access.ssh_public_key.startswith(("ssh-", "ecdsa-")):
        problems.append(Problem(config_key("ssh_public_key"), access.ssh_public_key, "not an OpenSSH public key"))
    private_key = access.ssh_private_key.get_secret_value()
    # Tools read an encrypted key as a placeholder: only the program sees (and checks) the text.
    if private_key and not is_secret_placeholder(private_key):
        problem = private_key_problem(private_key)
        if problem:
            problems.append(Problem(config_key("ssh_private_key"), "[secret]", problem))
    return problems
