"""Settings: every validation rule names the key and the value, and nothing gets registered."""

from __future__ import annotations

import json
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest
from pulumi.errors import RunError

from components.cluster.files import nfs_export_line
from config.loader import StackConfig, read_stack_file, settings_from_config
from config.settings import SECRET_PLACEHOLDER, field_sections, promotable_keys, unused_dhcp_address
from config.validation import SettingsError
from tests.conftest import STACKS
from tools.render import LabMocks, RecordingMonitor, render, with_overrides

LAB_SERVERS = ["master1=192.168.56.11", "master2=192.168.56.12", "master3=192.168.56.13"]

# (case, overrides, key the error must name, text the error must contain)
INVALID: list[tuple[str, dict[str, Any], str, str]] = [
    ("even server count", {"meshlab:servers": LAB_SERVERS[:2]}, "meshlab:servers", "must be odd"),
    ("no servers", {"meshlab:servers": []}, "meshlab:servers", "0 servers"),
    (
        "ha required",
        {"meshlab:servers": LAB_SERVERS[:1], "meshlab:requireHa": True},
        "meshlab:servers",
        "at least 3 servers",
    ),
    (
        "duplicate name",
        {"meshlab:agents": ["master1=192.168.56.31"]},
        "meshlab:agents[0]",
        "already used by meshlab:servers[0]",
    ),
    (
        "duplicate ip",
        {"meshlab:agents": ["worker1=192.168.56.12"]},
        "meshlab:agents[0]",
        "192.168.56.12 is already used",
    ),
    ("bad node entry", {"meshlab:agents": ["worker1:192.168.56.21"]}, "meshlab:agents[0]", "NAME=IP"),
    ("bad hostname", {"meshlab:agents": ["Worker_1=192.168.56.21"]}, "meshlab:agents", "not a valid hostname"),
    ("bad node ip", {"meshlab:agents": ["worker1=192.168.56.300"]}, "meshlab:agents", "not an IPv4 address"),
    (
        "node outside subnet",
        {"meshlab:agents": ["worker1=192.168.57.21"]},
        "meshlab:agents[0]",
        "outside the host-only subnet",
    ),
    ("node on broadcast", {"meshlab:agents": ["worker1=192.168.56.255"]}, "meshlab:agents[0]", "broadcast"),
    ("node on host ip", {"meshlab:agents": ["worker1=192.168.56.1"]}, "meshlab:agents[0]", "host's own address"),
    ("node on vip", {"meshlab:agents": ["worker1=192.168.56.10"]}, "meshlab:agents[0]", "API VIP"),
    ("vip outside subnet", {"meshlab:apiVip": "192.168.99.10"}, "meshlab:apiVip", "192.168.99.10 is outside"),
    ("vip is host", {"meshlab:apiVip": "192.168.56.1"}, "meshlab:apiVip", "host's own"),
    (
        "pool overlaps node",
        {"meshlab:metallbPool": "192.168.56.20-192.168.56.30"},
        "meshlab:metallbPool",
        "overlaps node worker1's IP 192.168.56.21",
    ),
    ("pool holds vip", {"meshlab:metallbPool": "192.168.56.5-192.168.56.10"}, "meshlab:metallbPool", "API VIP"),
    ("pool outside subnet", {"meshlab:metallbPool": "192.168.57.200/29"}, "meshlab:metallbPool", "outside"),
    ("pool reversed", {"meshlab:metallbPool": "192.168.56.250-192.168.56.200"}, "meshlab:metallbPool", "comes after"),
    ("pool garbage", {"meshlab:metallbPool": "lots"}, "meshlab:metallbPool", "not 'A-B' or a CIDR"),
    (
        "subnet outside virtualbox range",
        {
            "meshlab:hostOnlyCidr": "10.20.0.0/24",
            "meshlab:servers": ["master1=10.20.0.11"],
            "meshlab:agents": [],
            "meshlab:apiVip": "10.20.0.10",
            "meshlab:metallbPool": "10.20.0.200-10.20.0.210",
        },
        "meshlab:hostOnlyCidr",
        "networks.conf",
    ),
    ("cluster cidr overlaps nat", {"meshlab:clusterCidr": "10.0.0.0/16"}, "meshlab:clusterCidr", "VirtualBox NAT"),
    ("service cidr overlaps nat", {"meshlab:serviceCidr": "10.0.2.0/24"}, "meshlab:serviceCidr", "VirtualBox NAT"),
    (
        "cidrs overlap each other",
        {"meshlab:serviceCidr": "10.42.128.0/17"},
        "meshlab:serviceCidr",
        "overlaps meshlab:clusterCidr",
    ),
    (
        "cidr overlaps host-only",
        {"meshlab:clusterCidr": "192.168.0.0/16"},
        "meshlab:clusterCidr",
        "overlaps meshlab:hostOnlyCidr",
    ),
    ("server cpus", {"meshlab:serverCpus": 1}, "meshlab:serverCpus", "at least 2 vCPUs"),
    ("server memory", {"meshlab:serverMemoryMib": 2048}, "meshlab:serverMemoryMib", "at least 4096 MiB"),
    ("agent memory", {"meshlab:agentMemoryMib": 1024}, "meshlab:agentMemoryMib", "at least 2048 MiB"),
    ("agent disk", {"meshlab:agentDiskGib": 10}, "meshlab:agentDiskGib", "at least 20 GiB"),
    ("not an integer", {"meshlab:agentCpus": "many"}, "meshlab:agentCpus", "valid integer"),
    ("unknown key", {"meshlab:agentCpu": 4}, "meshlab:agentCpu", "did you mean meshlab:agentCpus"),
    ("unknown arch", {"meshlab:guestArch": "riscv64"}, "meshlab:guestArch", "amd64"),
    ("missing vip", {"meshlab:apiVip": None}, "meshlab:apiVip", "required setting is missing"),
    ("root login", {"meshlab:sshUser": "root"}, "meshlab:sshUser", "not root"),
    ("half a key pair", {"meshlab:sshPublicKey": "ssh-ed25519 AAAA me"}, "meshlab:sshPublicKey", "set both"),
    ("rke2 version malformed", {"meshlab:rke2Version": "1.32.7"}, "meshlab:rke2Version", "like v1.32.7+rke2r1"),
    ("rke2 downgrade", {"meshlab:rke2Version": "v1.31.9+rke2r1"}, "meshlab:rke2Version", "does not support downgrades"),
    (
        "rke2 older revision",
        {"meshlab:rke2Version": "v1.32.7+rke2r0"},
        "meshlab:rke2Version",
        "older than the pinned",
    ),
    ("rke2 skips a minor", {"meshlab:rke2Version": "v1.34.1+rke2r1"}, "meshlab:rke2Version", "go to v1.33.x first"),
    ("api dns name", {"meshlab:apiDnsName": "API_server"}, "meshlab:apiDnsName", "not a DNS name"),
    ("snapshot cron", {"meshlab:etcdSnapshotSchedule": "every 6 hours"}, "meshlab:etcdSnapshotSchedule", "5-field"),
    ("snapshot retention", {"meshlab:etcdSnapshotRetention": 0}, "meshlab:etcdSnapshotRetention", "at least 1"),
    (
        "operator replicas",
        {"meshlab:ciliumOperatorReplicas": 7},
        "meshlab:ciliumOperatorReplicas",
        "between 1 and the node count (6)",
    ),
    ("nfs path relative", {"meshlab:nfsExportPath": "srv/nfs"}, "meshlab:nfsExportPath", "absolute path"),
    ("nfs path spaces", {"meshlab:nfsExportPath": "/srv/my data"}, "meshlab:nfsExportPath", "absolute path"),
    (
        "nfs clients miss nodes",
        {"meshlab:nfsAllowedCidr": "192.168.56.16/28"},
        "meshlab:nfsAllowedCidr",
        "nodes master1, master2, master3 could not mount",
    ),
    ("ready timeout", {"meshlab:nodeReadyTimeoutSeconds": 10}, "meshlab:nodeReadyTimeoutSeconds", "at least 60 s"),
    ("istio version", {"meshlab:istioVersion": "v1.27"}, "meshlab:istioVersion", "like 1.27.0"),
    ("mtls mode", {"meshlab:meshMtlsMode": "DISABLE"}, "meshlab:meshMtlsMode", "STRICT"),
    (
        "half a shared root",
        {"meshlab:meshCaRootCertPem": "-----BEGIN CERTIFICATE-----"},
        "meshlab:meshCaRootCertPem",
        "set both",
    ),
    (
        "intermediate outlives root",
        {"meshlab:meshCaIntermediateValidityHours": 90000},
        "meshlab:meshCaIntermediateValidityHours",
        "must end before the root",
    ),
    (
        "ingress outside pool",
        {"meshlab:ingressAddress": "192.168.56.100"},
        "meshlab:ingressAddress",
        "MetalLB can only",
    ),
    ("ingress domain", {"meshlab:ingressDomain": "Lab_UI"}, "meshlab:ingressDomain", "not a DNS name"),
    ("storage class", {"meshlab:nfsStorageClass": "NFS Client"}, "meshlab:nfsStorageClass", "object name"),
    ("retention", {"meshlab:prometheusRetention": "a week"}, "meshlab:prometheusRetention", "duration"),
    ("kiali auth", {"meshlab:kialiAuthStrategy": "openid"}, "meshlab:kialiAuthStrategy", "anonymous"),
]


def _config(stack_configs: dict[str, StackConfig], overrides: dict[str, Any]) -> StackConfig:
    return with_overrides(stack_configs["lab"], overrides)


@pytest.mark.parametrize(("case", "overrides", "key", "text"), INVALID, ids=[case[0] for case in INVALID])
def test_invalid_settings_name_the_key_and_value(stack_configs, case, overrides, key, text):
    with pytest.raises(SettingsError) as raised:
        settings_from_config(_config(stack_configs, overrides))
    matching = [p for p in raised.value.problems if p.key.startswith(key) and text in str(p)]
    assert matching, f"{case}: no problem for {key} containing {text!r} in:\n{raised.value}"
    shown = next(iter(overrides.values()))
    if isinstance(shown, str) and overrides.get(key.split("[")[0]) == shown:
        assert shown in str(raised.value), "the message must show the offending value"


@pytest.mark.parametrize(
    "overrides",
    [{"meshlab:servers": LAB_SERVERS[:2]}, {"meshlab:apiVip": "10.9.9.9"}, {"meshlab:agentCpus": 0}],
    ids=["even-servers", "vip-outside", "tiny-agent"],
)
def test_program_registers_nothing_on_invalid_settings(stack_configs, overrides):
    monitor = RecordingMonitor(LabMocks())
    with pytest.raises(RunError, match="invalid meshlab settings") as raised:
        render(_config(stack_configs, overrides), "lab", monitor=monitor)
    assert next(iter(overrides)) in str(raised.value)
    assert [r.type for r in monitor.registrations if r.type != "pulumi:pulumi:Stack"] == []
    # The same monitor does record a valid run, so the empty list above is not vacuous.
    render(stack_configs["lab"], "lab", monitor=monitor)
    assert len(monitor.registrations) > 1


def test_every_problem_is_reported_at_once(stack_configs):
    overrides = {"meshlab:servers": LAB_SERVERS[:2], "meshlab:apiVip": "10.9.9.9", "meshlab:agentCpus": 1}
    with pytest.raises(SettingsError) as raised:
        settings_from_config(_config(stack_configs, overrides))
    keys = {problem.key for problem in raised.value.problems}
    assert {"meshlab:servers", "meshlab:apiVip", "meshlab:agentCpus"} <= keys


@pytest.mark.parametrize("stack", STACKS)
def test_committed_stacks_are_valid(stack_configs, stack):
    settings = settings_from_config(stack_configs[stack])
    assert len(settings.topology.servers) % 2 == 1
    assert settings.network.vip in settings.network.subnet


def test_stacks_use_their_own_addresses(stack_configs):
    subnets = {str(settings_from_config(c).network.host_only_cidr) for c in stack_configs.values()}
    assert len(subnets) == len(STACKS)


def test_prod_must_stay_ha(stack_configs):
    prod = stack_configs["prod"]
    single = with_overrides(prod, {"meshlab:servers": ["prod-server1=192.168.58.11"]})
    with pytest.raises(SettingsError, match="at least 3 servers"):
        settings_from_config(single)


def test_lab_is_the_seed_topology(stack_configs):
    topology = settings_from_config(stack_configs["lab"]).topology
    assert [n.name for n in topology.servers] == ["master1", "master2", "master3"]
    assert [n.name for n in topology.agents] == ["worker1", "worker2", "worker3"]
    assert (topology.server_cpus, topology.server_memory_mib) == (2, 4096)
    assert (topology.agent_cpus, topology.agent_memory_mib) == (2, 6144)


def test_widened_networks_conf_is_accepted(stack_configs):
    overrides = {
        "meshlab:hostOnlyCidr": "10.20.0.0/24",
        "meshlab:vboxAllowedRanges": ["10.20.0.0/16"],
        "meshlab:servers": ["master1=10.20.0.11"],
        "meshlab:agents": ["worker1=10.20.0.21"],
        "meshlab:apiVip": "10.20.0.10",
        "meshlab:metallbPool": "10.20.0.200/29",
    }
    settings = settings_from_config(_config(stack_configs, overrides))
    assert settings.network.metallb_pool.size == 8


def test_rke2_may_run_ahead_of_the_pin_by_one_minor(stack_configs):
    for version in ("v1.32.8+rke2r1", "v1.33.4+rke2r1", "v1.32.7+rke2r2"):
        settings = settings_from_config(_config(stack_configs, {"meshlab:rke2Version": version}))
        assert settings.cluster.rke2_version == version


def test_promotable_keys_are_versions_and_behaviour_never_the_environments_own():
    keys = set(promotable_keys())
    assert {"meshlab:rke2Version", "meshlab:istioVersion", "meshlab:meshMtlsMode"} <= keys
    environment = {
        "meshlab:servers",
        "meshlab:agents",
        "meshlab:hostOnlyCidr",
        "meshlab:apiVip",
        "meshlab:metallbPool",
        "meshlab:ingressDomain",
        "meshlab:ingressAddress",
        "meshlab:serverMemoryMib",
        "meshlab:sshPrivateKey",
        "meshlab:meshCaRootKeyPem",
        "meshlab:meshPluggedCa",
    }
    assert keys.isdisjoint(environment)
    assert keys <= {f"meshlab:{key}" for key in field_sections()}


def test_nfs_clients_default_to_the_host_only_subnet(stack_configs):
    settings = settings_from_config(stack_configs["staging"])
    assert settings.cluster.nfs_allowed_cidr is None
    assert nfs_export_line(settings) == ("/srv/nfs/kubedata", "192.168.57.0/24")


def test_language_host_strings_parse_like_stack_file(stack_configs):
    """The CLI hands the program strings (JSON for arrays); the result must not differ."""
    native = stack_configs["lab"]
    as_strings = {k: v if isinstance(v, str) else json.dumps(v) for k, v in native.values.items()}
    as_strings["meshlab:requireHa"] = "false"
    assert settings_from_config(StackConfig(as_strings)) == settings_from_config(native)


def test_secure_values_are_read_as_secret_placeholders(tmp_path: Path):
    lab = (Path(__file__).parent.parent / "Pulumi.lab.yaml").read_text()
    path = tmp_path / "Pulumi.lab.yaml"
    path.write_text(
        lab + "  meshlab:sshPublicKey: ssh-ed25519 AAAAC3 me\n  meshlab:sshPrivateKey:\n    secure: v1:abc:def\n"
    )
    config = read_stack_file(path)
    assert config.values["meshlab:sshPrivateKey"] == SECRET_PLACEHOLDER
    assert "meshlab:sshPrivateKey" in config.secret_keys
    assert settings_from_config(config).access.ssh_private_key.get_secret_value() == SECRET_PLACEHOLDER


def test_plaintext_private_key_is_refused_without_echoing_it(stack_configs):
    overrides = {"meshlab:sshPublicKey": "ssh-ed25519 AAAA me", "meshlab:sshPrivateKey": "TOP-SECRET-KEY"}
    with pytest.raises(SettingsError) as raised:
        settings_from_config(_config(stack_configs, overrides))
    assert "--secret meshlab:sshPrivateKey" in str(raised.value)
    assert "TOP-SECRET-KEY" not in str(raised.value)


def test_config_keys_belong_to_one_section_each():
    owners = field_sections()
    assert len(owners) == len(set(owners))
    assert "servers" in owners
    assert "apiVip" in owners


def test_dhcp_address_avoids_everything_in_use(stack_configs):
    settings = settings_from_config(stack_configs["lab"])
    address = unused_dhcp_address(settings.network, settings.topology.nodes)
    assert address == IPv4Address("192.168.56.254")
    crowded = settings_from_config(_config(stack_configs, {"meshlab:metallbPool": "192.168.56.200-192.168.56.254"}))
    assert unused_dhcp_address(crowded.network, crowded.topology.nodes) == IPv4Address("192.168.56.199")
