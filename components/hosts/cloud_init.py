"""The cloud-init NoCloud documents of one VM: pure functions, no Pulumi.

NICs are matched by the MAC addresses meshlab assigns, and renamed, so the host-only NIC
has the same name on amd64 and arm64 guests (the cluster layer binds RKE2, kube-vip and
MetalLB to it).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from ipaddress import IPv4Network

import yaml

from config.settings import HOST_ONLY_INTERFACE, NAT_INTERFACE, NodeSpec


def mac_address(vm_name: str, nic: int) -> str:
    """A stable, locally administered unicast MAC for a VM's NIC (12 hex digits, no colons)."""
    digest = hashlib.sha256(f"{vm_name}/nic{nic}".encode()).digest()
    return "02" + digest[:5].hex()


def with_colons(mac: str) -> str:
    return ":".join(mac[i : i + 2] for i in range(0, 12, 2))


@dataclass(frozen=True)
class SeedDocuments:
    user_data: str
    meta_data: str
    network_config: str

    def as_dict(self) -> dict[str, str]:
        return {"user-data": self.user_data, "meta-data": self.meta_data, "network-config": self.network_config}

    @property
    def digest(self) -> str:
        return hashlib.sha256("\0".join(self.as_dict().values()).encode()).hexdigest()[:16]


def user_data(node: NodeSpec, ssh_user: str, ssh_public_key: str, ntp_servers: list[str]) -> str:
    ntp: dict[str, object] = {"enabled": True, "ntp_client": "systemd-timesyncd"}
    if ntp_servers:
        ntp["servers"] = list(ntp_servers)
    document = {
        "hostname": node.name,
        "preserve_hostname": False,
        "users": [
            {
                "name": ssh_user,
                "gecos": "meshlab automation",
                "groups": ["sudo"],
                "shell": "/bin/bash",
                "sudo": "ALL=(ALL) NOPASSWD:ALL",
                "lock_passwd": True,
                "ssh_authorized_keys": [ssh_public_key.strip()],
            }
        ],
        "ssh_pwauth": False,
        "disable_root": True,
        "timezone": "Etc/UTC",
        "ntp": ntp,
        # The cluster layer installs what it needs; an apt upgrade here would only slow first boot.
        "package_update": False,
        "package_upgrade": False,
    }
    return "#cloud-config\n" + yaml.safe_dump(document, sort_keys=False)


def network_config(vm_name: str, node: NodeSpec, subnet: IPv4Network) -> str:
    document = {
        "version": 2,
        "ethernets": {
            NAT_INTERFACE: {
                "match": {"macaddress": with_colons(mac_address(vm_name, 1))},
                "set-name": NAT_INTERFACE,
                "dhcp4": True,
            },
            HOST_ONLY_INTERFACE: {
                "match": {"macaddress": with_colons(mac_address(vm_name, 2))},
                "set-name": HOST_ONLY_INTERFACE,
                "dhcp4": False,
                # No gateway: the default route stays on the NAT NIC, cluster traffic stays here.
                "addresses": [f"{node.ip}/{subnet.prefixlen}"],
            },
        },
    }
    return yaml.safe_dump(document, sort_keys=False)


def seed_documents(
    *,
    vm_name: str,
    node: NodeSpec,
    subnet: IPv4Network,
    ssh_user: str,
    ssh_public_key: str,
    ntp_servers: list[str],
) -> SeedDocuments:
    user = user_data(node, ssh_user, ssh_public_key, ntp_servers)
    network = network_config(vm_name, node, subnet)
    # A new instance-id whenever the seed changes, so cloud-init applies it on a rebuilt VM.
    instance = hashlib.sha256((user + network).encode()).hexdigest()[:12]
    meta = yaml.safe_dump({"instance-id": f"{vm_name}-{instance}", "local-hostname": node.name}, sort_keys=False)
    return SeedDocuments(user_data=user, meta_data=meta, network_config=network)
