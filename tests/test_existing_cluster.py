"""An existing cluster (meshlab:kubeconfig) and a chart mirror (meshlab:chartRepository,
meshlab:gatewayApiCrdsUrl): the settings' validation, the program rendered under mocks onto such a cluster,
the cluster preflight against a fake API server, and the kubeconfig's credentials as the preflight uses them.

A stack here is built from scratch (the committed stacks all build their cluster): the kubeconfig below is
passed as a secret, as `pulumi config set --secret` stores it.
"""

from __future__ import annotations

import base64
import json
import socket
import ssl
import subprocess
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from meshlab_policy.engine import resolve, run_policies

from components.cluster.cluster_preflight import (
    CILIUM_CONFIG,
    KubeconfigApi,
    UnreachableError,
    cluster_problems,
    preflight,
)
from components.lab import lab_namespaces
from components.security.namespaces import ISTIO_SYSTEM, NFS_PROVISIONER, OWNER_LABEL
from config import versions
from config.loader import StackConfig, read_stack_file, settings_from_config
from config.settings import ClusterSettings, built_cluster_fields, cluster_name, config_key
from config.validation import Problem, SettingsError
from tests.conftest import ROOT
from tools.plan import policy_resources
from tools.render import Registration, Rendering, render, with_overrides

KUBECONFIG_KEY = "meshlab:kubeconfig"
PRIVATE_KEY = "meshlab:sshPrivateKey"
# A credential that must never show in a problem: validation reads the kubeconfig, it never quotes it.
TOKEN = "kubeconfig-test-token-5f0c1d2e"
SERVER = "https://127.0.0.1:6443"


def kubeconfig_document(token: str = TOKEN) -> dict[str, Any]:
    """A kubeconfig as kubectl writes one: a cluster, a user with a bearer token, a context naming both."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "site", "cluster": {"server": SERVER}}],
        "users": [{"name": "admin", "user": {"token": token}}],
        "contexts": [{"name": "site-admin", "context": {"cluster": "site", "user": "admin"}}],
        "current-context": "site-admin",
    }


KUBECONFIG = yaml.safe_dump(kubeconfig_document())
MIRROR = "https://charts.example.internal/meshlab"
CRDS_URL = f"https://mirror.example.internal/gateway-api/{versions.GATEWAY_API}/standard-install.yaml"
NFS_SERVER = "nfs.example.internal"
# What an existing cluster's stack needs: the kubeconfig and the MetalLB pool (free addresses on the nodes'
# network); the demos, the benchmark (pinned to two of the cluster's nodes) and storage on top.
EXISTING: dict[str, Any] = {
    KUBECONFIG_KEY: KUBECONFIG,
    "meshlab:metallbPool": "10.20.0.200-10.20.0.220",
}
FULL: dict[str, Any] = {
    "meshlab:rolloutPhase": "4",
    "meshlab:benchmark": "on",
    "meshlab:benchmarkNodes": ["node-a", "node-b"],
    "meshlab:demoAmbient": "after",
    "meshlab:demoL7Routing": "true",
    "meshlab:demoPrincipalPolicy": "true",
    "meshlab:chartRepository": MIRROR,
    "meshlab:gatewayApiCrdsUrl": CRDS_URL,
    "meshlab:nfsServer": NFS_SERVER,
}
HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
CONFIG_FILE = "kubernetes:yaml/v2:ConfigFile"
NAMESPACE = "kubernetes:core/v1:Namespace"


def existing_config(overrides: Mapping[str, Any] | None = None, secret: frozenset[str] = frozenset()) -> StackConfig:
    """An existing-cluster stack with `overrides` (None removes a key); the kubeconfig is a secret."""
    config = with_overrides(StackConfig(dict(EXISTING)), overrides or {})
    return StackConfig(config.values, frozenset({KUBECONFIG_KEY}) | secret)


def problems_of(config: StackConfig) -> list[Problem]:
    """Every problem of `config` (none: it is valid)."""
    try:
        settings_from_config(config)
    except SettingsError as error:
        return error.problems
    return []


def shown(found: list[Problem]) -> list[str]:
    return [str(problem) for problem in found]


# --- validation -------------------------------------------------------------------------------


def test_an_existing_cluster_stack_needs_only_a_kubeconfig_and_a_pool():
    """The baseline the cases below change: without it a case could pass on problems it did not cause."""
    assert problems_of(existing_config()) == []
    assert problems_of(existing_config(FULL)) == []
    settings = settings_from_config(existing_config(FULL))
    assert settings.cluster.existing
    assert settings.cluster.kubeconfig.get_secret_value() == KUBECONFIG


# Every setting only a cluster meshlab builds reads, with a value the user might have left in the stack
# (not its default: the Pulumi CLI hands the program every declared key, with its default), and that value
# as the problem shows it (secrets never; nodes as NAME=IP, as written).
BUILT_CLUSTER_SETTINGS: dict[str, tuple[Any, Any]] = {
    # topology
    "meshlab:servers": (["master1=10.20.0.11", "master2=10.20.0.12"], "master1=10.20.0.11, master2=10.20.0.12"),
    "meshlab:agents": (["worker1=10.20.0.21"], "worker1=10.20.0.21"),
    "meshlab:serverCpus": ("4", 4),
    "meshlab:serverMemoryMib": ("8192", 8192),
    "meshlab:serverDiskGib": ("60", 60),
    "meshlab:agentCpus": ("4", 4),
    "meshlab:agentMemoryMib": ("8192", 8192),
    "meshlab:agentDiskGib": ("60", 60),
    "meshlab:guestArch": ("arm64", "arm64"),
    "meshlab:requireHa": ("true", True),
    # hosts
    "meshlab:hypervisor": ("existing", "existing"),
    "meshlab:qemuAccelerator": ("kvm", "kvm"),
    "meshlab:qemuBridge": ("br0", "br0"),
    "meshlab:imageFile": ("/srv/images/noble.qcow2", "/srv/images/noble.qcow2"),
    "meshlab:imageSha256": ("ab" * 32, "ab" * 32),
    "meshlab:nodeInterface": ("eth0", "eth0"),
    "meshlab:sshBastionHost": ("bastion.example.internal", "bastion.example.internal"),
    "meshlab:sshBastionUser": ("jump", "jump"),
    "meshlab:sshHostKeys": (
        ["server1=ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKey"],
        "server1=ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKey",
    ),
    "meshlab:sshBastionHostKey": ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKey",) * 2,
    # the node network
    "meshlab:hostOnlyCidr": ("10.20.0.0/24", "10.20.0.0/24"),
    "meshlab:hostOnlyHostIp": ("10.20.0.1", "10.20.0.1"),
    "meshlab:vboxAllowedRanges": (["10.20.0.0/16"], "10.20.0.0/16"),
    "meshlab:apiVip": ("10.20.0.10", "10.20.0.10"),
    # RKE2's own pod and service networks
    "meshlab:clusterCidr": ("10.52.0.0/16", "10.52.0.0/16"),
    "meshlab:serviceCidr": ("10.53.0.0/16", "10.53.0.0/16"),
    # SSH to the nodes
    "meshlab:sshUser": ("ubuntu", "ubuntu"),
    "meshlab:sshPublicKey": ("ssh-ed25519 AAAAC3Nza test@site", "ssh-ed25519 AAAAC3Nza test@site"),
    PRIVATE_KEY: ("-----BEGIN OPENSSH PRIVATE KEY-----\nkey\n-----END OPENSSH PRIVATE KEY-----\n", "[secret]"),
    "meshlab:sshAgent": ("true", True),
    "meshlab:ntpServers": (["ntp.example.internal"], "ntp.example.internal"),
    "meshlab:imageCacheDir": ("/var/cache/meshlab", "/var/cache/meshlab"),
    # RKE2, etcd and Cilium as meshlab installs them
    "meshlab:rke2Version": ("v1.33.3+rke2r1", "v1.33.3+rke2r1"),
    "meshlab:apiDnsName": ("api.site.example", "api.site.example"),
    "meshlab:etcdSnapshotSchedule": ("0 */2 * * *", "0 */2 * * *"),
    "meshlab:etcdSnapshotRetention": ("24", 24),
    "meshlab:ciliumOperatorReplicas": ("2", 2),
    "meshlab:nfsAllowedCidr": ("10.20.0.0/24", "10.20.0.0/24"),
    "meshlab:embeddedRegistry": ("false", False),
    # sources of RKE2 and the nodes' images
    "meshlab:rke2Artifacts": ("download", "download"),
    "meshlab:registryMirrors": (["*=https://mirror.example:5000"], "*=https://mirror.example:5000"),
    "meshlab:registryCredentials": ('{"mirror.example:5000": {"username": "u", "password": "p"}}', "[secret]"),
    "meshlab:registryCaPem": ("-----BEGIN CERTIFICATE-----", "-----BEGIN CERTIFICATE-----"),
}


def test_the_cases_cover_every_setting_only_a_built_cluster_reads():
    assert set(BUILT_CLUSTER_SETTINGS) == {config_key(name) for _, name in built_cluster_fields()}


@pytest.mark.parametrize(("key", "case"), BUILT_CLUSTER_SETTINGS.items(), ids=list(BUILT_CLUSTER_SETTINGS))
def test_a_built_cluster_setting_with_a_kubeconfig_is_named_with_its_value(key, case):
    value, displayed = case
    secret = frozenset({key}) if key in (PRIVATE_KEY, "meshlab:registryCredentials") else frozenset()
    [problem] = problems_of(existing_config({key: value}, secret))
    assert str(problem).startswith(f"{key} = {displayed}: ")
    assert KUBECONFIG_KEY in problem.message and "remove it" in problem.message
    if key == PRIVATE_KEY:
        assert "PRIVATE KEY" not in str(problem)


def _as_the_cli_passes_it(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value) if isinstance(value, list) else str(value)


def test_every_declared_default_the_pulumi_cli_passes_is_accepted():
    """The Pulumi CLI hands the program every key Pulumi.yaml declares, with its default when the stack does
    not set it: those of a built cluster among them must not read as set on an existing cluster."""
    declared = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]
    defaults = {key: _as_the_cli_passes_it(d["default"]) for key, d in declared.items() if "default" in d}
    built = {config_key(name) for _, name in built_cluster_fields()}
    assert built <= set(defaults)  # so each of them is passed below
    defaults = {key: value for key, value in defaults.items() if key != KUBECONFIG_KEY}
    assert problems_of(existing_config(defaults)) == []


def test_rollout_phase_1_is_refused_on_an_existing_cluster():
    """Phase 1 is hosts and RKE2, which meshlab does not build there; phase 2 is the first it deploys."""
    [problem] = problems_of(existing_config({"meshlab:rolloutPhase": "1"}))
    assert (problem.key, problem.value) == ("meshlab:rolloutPhase", 1)
    assert KUBECONFIG_KEY in problem.message
    assert problems_of(existing_config({"meshlab:rolloutPhase": "2"})) == []


def test_nfs_server_belongs_to_an_existing_cluster(stack_configs):
    lab = stack_configs["lab"]
    [problem] = problems_of(with_overrides(lab, {"meshlab:nfsServer": NFS_SERVER}))
    assert (problem.key, problem.value) == ("meshlab:nfsServer", NFS_SERVER)
    assert KUBECONFIG_KEY in problem.message
    # It hides nothing else wrong with the stack (every problem at once).
    found = problems_of(with_overrides(lab, {"meshlab:nfsServer": NFS_SERVER, "meshlab:serverCpus": 1}))
    assert [p.key for p in found] == ["meshlab:nfsServer", "meshlab:serverCpus"]


@pytest.mark.parametrize("server", ["10.20.0.5", "nfs.example.internal"])
def test_an_nfs_server_is_an_address_or_a_name(server):
    assert problems_of(existing_config({"meshlab:nfsServer": server})) == []


def test_an_nfs_server_that_is_neither_is_named():
    [problem] = problems_of(existing_config({"meshlab:nfsServer": "nfs server:/export"}))
    assert (problem.key, problem.value) == ("meshlab:nfsServer", "nfs server:/export")


def _without_current_context() -> dict[str, Any]:
    document = kubeconfig_document()
    del document["current-context"]
    return document


def _context_elsewhere() -> dict[str, Any]:
    return {**kubeconfig_document(), "current-context": "other"}


def _http_server() -> dict[str, Any]:
    document = kubeconfig_document()
    document["clusters"][0]["cluster"]["server"] = "http://127.0.0.1:8080"
    return document


def _unknown_cluster() -> dict[str, Any]:
    document = kubeconfig_document()
    document["contexts"][0]["context"]["cluster"] = "gone"
    return document


def _unknown_user() -> dict[str, Any]:
    document = kubeconfig_document()
    document["users"] = [{"name": "someone-else", "user": {"token": TOKEN}}]
    return document


# (case, the kubeconfig's text, a word of what it lacks the message must say)
MALFORMED: list[tuple[str, str, str]] = [
    ("not YAML", f"users:\n- name: admin\n  user: {{token: {TOKEN}\n", "YAML"),
    ("a list", f"- token: {TOKEN}\n", "kubeconfig"),
    ("another kind", yaml.safe_dump({**kubeconfig_document(), "kind": "Secret"}), "kubeconfig"),
    ("no current-context", yaml.safe_dump(_without_current_context()), "current-context"),
    ("its context missing", yaml.safe_dump(_context_elsewhere()), "other"),
    ("no https server", yaml.safe_dump(_http_server()), "https://"),
    ("its cluster missing", yaml.safe_dump(_unknown_cluster()), "cluster"),
    ("no user", yaml.safe_dump(_unknown_user()), "user"),
]


@pytest.mark.parametrize(("case", "text", "said"), MALFORMED, ids=[case[0] for case in MALFORMED])
def test_a_malformed_kubeconfig_is_named_without_quoting_it(case, text, said):
    assert TOKEN in text  # so the check below could fail
    with pytest.raises(SettingsError) as raised:
        settings_from_config(existing_config({KUBECONFIG_KEY: text}))
    [problem] = raised.value.problems
    assert (problem.key, problem.value) == (KUBECONFIG_KEY, "[secret]")
    assert said in problem.message
    assert TOKEN not in str(raised.value)
    assert not any(line.strip() and line.strip() in str(raised.value) for line in text.splitlines() if ":" in line)


def test_a_kubeconfig_stored_in_plain_text_is_refused_without_quoting_it():
    config = existing_config()
    config = StackConfig(config.values, frozenset())
    with pytest.raises(SettingsError) as raised:
        settings_from_config(config)
    [problem] = raised.value.problems
    assert (problem.key, problem.value) == (KUBECONFIG_KEY, "[secret]")
    assert "--secret" in problem.message
    assert TOKEN not in str(raised.value)


@pytest.mark.parametrize(
    "placeholder", ["[secret]", "[secret 0123456789abcdef]"], ids=["read from a stack file", "tools.snapshot's"]
)
def test_an_encrypted_kubeconfig_that_tools_cannot_read_is_left_to_the_program(placeholder):
    """tools.plan, tools.promote and tools.diff read a stack file without its passphrase."""
    assert problems_of(existing_config({KUBECONFIG_KEY: placeholder})) == []


# (key, an invalid value)
BAD_SOURCES = [
    ("meshlab:chartRepository", "ftp://charts.example.internal/meshlab"),
    ("meshlab:chartRepository", "charts.example.internal/meshlab"),
    ("meshlab:chartRepository", "https://charts.example.internal/my charts"),
    ("meshlab:gatewayApiCrdsUrl", "standard-install.yaml"),
    ("meshlab:gatewayApiCrdsUrl", "/srv/mirror/standard-install.json"),
    ("meshlab:gatewayApiCrdsUrl", "file:///srv/mirror/standard-install.yaml"),
]
GOOD_SOURCES = [
    ("meshlab:chartRepository", MIRROR),
    ("meshlab:chartRepository", "http://10.20.0.5:8080"),
    ("meshlab:gatewayApiCrdsUrl", CRDS_URL),
    ("meshlab:gatewayApiCrdsUrl", "/srv/mirror/standard-install.yaml"),
]


@pytest.mark.parametrize("stack", ["existing", "lab"])
@pytest.mark.parametrize(("key", "value"), BAD_SOURCES)
def test_an_invalid_source_is_named_on_either_kind_of_cluster(stack_configs, stack, key, value):
    config = (
        existing_config({key: value}) if stack == "existing" else with_overrides(stack_configs["lab"], {key: value})
    )
    [problem] = problems_of(config)
    assert (problem.key, problem.value) == (key, value)


@pytest.mark.parametrize("stack", ["existing", "lab"])
@pytest.mark.parametrize(("key", "value"), GOOD_SOURCES)
def test_a_mirror_url_or_file_is_accepted(stack_configs, stack, key, value):
    config = (
        existing_config({key: value}) if stack == "existing" else with_overrides(stack_configs["lab"], {key: value})
    )
    assert problems_of(config) == []


def test_without_a_kubeconfig_the_servers_are_required(stack_configs):
    found = problems_of(with_overrides(stack_configs["lab"], {"meshlab:servers": None}))
    assert shown(found) == ["meshlab:servers = (unset): required setting is missing from the stack config"]
    # A stack of nothing but a pool: meshlab would build a cluster, and needs where.
    found = problems_of(StackConfig({"meshlab:metallbPool": EXISTING["meshlab:metallbPool"]}))
    assert [(p.key, p.value) for p in found] == [
        ("meshlab:servers", "(unset)"),
        ("meshlab:hostOnlyCidr", "(unset)"),
        ("meshlab:apiVip", "(unset)"),
    ]


def test_every_problem_of_an_existing_cluster_stack_is_reported_at_once():
    broken = yaml.safe_dump(_http_server())
    found = problems_of(
        existing_config(
            {
                KUBECONFIG_KEY: broken,
                "meshlab:servers": ["master1=10.20.0.11"],
                "meshlab:apiVip": "10.20.0.10",
                "meshlab:rke2Version": "v1.33.3+rke2r1",
                "meshlab:rolloutPhase": "1",
                "meshlab:nfsServer": "not an address",
                "meshlab:chartRepository": "charts.example.internal",
                "meshlab:gatewayApiCrdsUrl": "crds.yaml",
                "meshlab:istioVersion": "latest",
            }
        )
    )
    assert sorted(p.key for p in found) == sorted(
        [
            KUBECONFIG_KEY,
            "meshlab:servers",
            "meshlab:apiVip",
            "meshlab:rke2Version",
            "meshlab:rolloutPhase",
            "meshlab:nfsServer",
            "meshlab:chartRepository",
            "meshlab:gatewayApiCrdsUrl",
            "meshlab:istioVersion",
        ]
    )
    assert TOKEN not in "\n".join(shown(found))


# --- the program on an existing cluster, under mocks ------------------------------------------


@pytest.fixture(scope="module")
def existing() -> Rendering:
    """Phase 4 with the benchmark, every demo, a chart mirror, a manifest mirror and NFS storage."""
    return _rendered(existing_config(FULL))


@pytest.fixture(scope="module")
def existing_without_nfs() -> Rendering:
    return _rendered(existing_config({**FULL, "meshlab:nfsServer": None}))


def _rendered(config: StackConfig) -> Rendering:
    rendering = render(config, "mycluster")
    assert len(rendering.resources()) > 50, "the program registered next to nothing: are the mocks set?"
    return rendering


def the_one(rendering: Rendering, type_token: str) -> Registration:
    [found] = rendering.of_type(type_token)
    return found


def test_no_hosts_no_rke2_and_no_step_of_a_built_cluster(existing):
    types = {r.type for r in existing.resources()}
    assert not [t for t in types if t.startswith("meshlab:hosts:")]
    assert "meshlab:cluster:Rke2Cluster" not in types
    # No remote or local command anywhere (no SSH, no kubectl), no join token, no generated SSH key.
    assert not [t for t in types if t.startswith(("command:", "tls:index/privateKey"))]
    cluster = the_one(existing, "meshlab:cluster:ExistingCluster")
    assert [(r.type, r.name) for r in existing.descendants(cluster.urn)] == [
        ("pulumi:providers:kubernetes", "cluster-kubernetes")
    ]
    # The one generated secret is Grafana's admin password: nothing of the cluster's (no join token).
    randoms = [r for r in existing.resources() if r.type.startswith("random:")]
    assert randoms and all("meshlab:observability:Grafana" in r.urn for r in randoms)


def test_the_kubeconfig_reaches_the_provider_as_a_secret(existing):
    cluster = the_one(existing, "meshlab:cluster:ExistingCluster")
    [provider] = existing.descendants(cluster.urn)
    assert provider.inputs["kubeconfig"] == "[secret]"
    assert "kubeconfig" in provider.secret_paths
    assert provider.revealed_inputs["kubeconfig"] == KUBECONFIG
    assert cluster.inputs["apiEndpoint"] == SERVER
    # Nothing but the secret input holds it.
    assert not [r.name for r in existing.resources() if TOKEN in str(r.inputs)]
    # Every Kubernetes object goes through that provider.
    kube = [r for r in existing.resources() if r.custom and r.type.startswith("kubernetes:")]
    assert len(kube) > 50
    assert all(r.provider.startswith(provider.urn + "::") for r in kube)


def test_every_release_comes_from_the_mirror_at_its_pinned_version(existing):
    releases = existing.of_type(HELM_RELEASE)
    assert len(releases) == len(versions.CHARTS) == 10
    assert {r.inputs["repositoryOpts"]["repo"] for r in releases} == {MIRROR}
    assert sorted((r.inputs["chart"], r.inputs["version"]) for r in releases) == sorted(
        (chart.name, chart.version) for chart in versions.CHARTS.values()
    )


def test_the_gateway_api_crds_come_from_the_configured_url(existing):
    assert the_one(existing, CONFIG_FILE).inputs["file"] == CRDS_URL


def test_metallb_answers_on_every_nic_of_an_existing_cluster(existing, lab):
    """The nodes' NICs are the site's own: no interface to name (the lab names its host-only NIC)."""
    [l2] = [r for r in existing.resources() if r.type.endswith(":L2Advertisement")]
    assert "interfaces" not in l2.inputs["spec"]
    assert l2.inputs["spec"]["ipAddressPools"]
    [lab_l2] = [r for r in lab.resources() if r.type.endswith(":L2Advertisement")]
    assert lab_l2.inputs["spec"]["interfaces"]  # so the check above could fail


def test_nfs_storage_uses_the_named_server(existing):
    [release] = [r for r in existing.of_type(HELM_RELEASE) if r.inputs["chart"] == "nfs-subdir-external-provisioner"]
    assert release.inputs["values"]["nfs"] == {
        "server": NFS_SERVER,
        "path": ClusterSettings.model_fields["nfs_export_path"].default,
    }
    assert the_one(existing, "meshlab:storage:NfsProvisioner")
    assert existing.stack_outputs()["nfsExport"]["server"] == NFS_SERVER


def test_without_an_nfs_server_there_is_no_storage(existing_without_nfs, existing):
    rendering = existing_without_nfs
    assert rendering.of_type("meshlab:storage:NfsProvisioner") == []
    charts = {r.inputs["chart"] for r in rendering.of_type(HELM_RELEASE)}
    assert "nfs-subdir-external-provisioner" not in charts and len(charts) == len(versions.CHARTS) - 1
    namespaces = {r.inputs["metadata"]["name"] for r in rendering.of_type(NAMESPACE)}
    assert NFS_PROVISIONER not in namespaces and ISTIO_SYSTEM in namespaces
    assert NFS_PROVISIONER in {r.inputs["metadata"]["name"] for r in existing.of_type(NAMESPACE)}
    outputs = rendering.stack_outputs()
    assert "nfsExport" not in outputs and "storageClass" not in outputs


def test_the_outputs_say_nothing_of_nodes(existing, lab):
    outputs = existing.stack_outputs()
    built_only = {"nodes", "apiVip", "sshUser", "sshPrivateKey", "hostOnlyInterface"}
    assert not built_only & set(outputs)
    assert {"nodes", "apiVip", "sshUser"} <= set(lab.stack_outputs())  # so the check above could fail
    assert outputs["apiEndpoint"] == SERVER
    assert outputs["kubeconfig"] == "[secret]"
    assert outputs["clusterName"] == "meshlab-mycluster"


def test_the_policy_pack_passes_on_an_existing_cluster(existing):
    """With the pack's defaults: what `tools.plan STACK --policy` uses for a stack without a policy config."""
    resources = policy_resources(existing)
    assert len(resources) > 50
    assert {"ns-test", "demo", ISTIO_SYSTEM} <= {r.namespace for r in resources}
    violations = run_policies(resources, resolve(None))
    assert [(v.policy, v.urn, v.message) for v in violations if v.mandatory] == []


def test_the_lab_keeps_each_charts_upstream_repository(lab):
    releases = lab.of_type(HELM_RELEASE)
    upstream = {chart.name: chart.repository for chart in versions.CHARTS.values()}
    assert len(releases) == len(upstream)
    assert {r.inputs["chart"]: r.inputs["repositoryOpts"]["repo"] for r in releases} == upstream
    assert the_one(lab, CONFIG_FILE).inputs["file"] == versions.GATEWAY_API_CRDS_URL


@pytest.mark.parametrize("case", ["existing", "existing without NFS", "lab"])
def test_lab_namespaces_names_every_namespace_the_stack_creates(
    case, existing, existing_without_nfs, lab, stack_configs
):
    config, rendering = {
        "existing": (existing_config(FULL), existing),
        "existing without NFS": (existing_config({**FULL, "meshlab:nfsServer": None}), existing_without_nfs),
        "lab": (stack_configs["lab"], lab),
    }[case]
    names = lab_namespaces(settings_from_config(config))
    rendered = [r.inputs["metadata"]["name"] for r in rendering.of_type(NAMESPACE)]
    assert len(rendered) >= 5
    assert sorted(names) == sorted(rendered)


# --- the cluster preflight, against a fake API server -----------------------------------------

ENDPOINT = "https://10.20.0.10:6443"
# Cilium configured as Istio ambient needs it, as cilium-config spells each Helm value.
CILIUM_FOR_AMBIENT = {"cni-exclusive": "false", "bpf-lb-sock-hostns-only": "true", "kube-proxy-replacement": "true"}
NAMESPACES = ("istio-system", "metallb-system", "ns-test")
# The stack the preflight runs for: namespaces it created are labelled as its own.
OWNER = cluster_name("mycluster")


class FakeApi:
    """The few reads and the one review the preflight makes, answered from plain data."""

    def __init__(
        self,
        *,
        version: str = "v1.32.7",
        cilium: dict[str, str] | None = None,
        deployments: list[dict[str, Any]] | None = None,
        namespaces: dict[str, dict[str, str]] | None = None,
        allowed: bool = True,
    ) -> None:
        self.endpoint = ENDPOINT
        self.answers: dict[str, tuple[int, Any]] = {"/version": (200, {"gitVersion": version})}
        if cilium is not None:
            self.answers[CILIUM_CONFIG] = (200, {"data": cilium})
        for name, labels in (namespaces or {}).items():
            self.answers[f"/api/v1/namespaces/{name}"] = (200, {"metadata": {"name": name, "labels": labels}})
        self.deployments = deployments or []
        self.review: tuple[int, Any] = (201, {"status": {"allowed": allowed}})
        self.unreachable = False
        self.gets: list[str] = []
        self.posts: list[tuple[str, dict[str, Any]]] = []

    def get(self, path: str) -> tuple[int, Any]:
        self.gets.append(path)
        if self.unreachable:
            raise UnreachableError("connection refused")
        where, _, query = path.partition("?")
        if where == "/apis/apps/v1/deployments":
            selector = urllib.parse.parse_qs(query).get("labelSelector", [""])[0]
            key, _, value = selector.partition("=")
            items = [d for d in self.deployments if not selector or d["metadata"]["labels"].get(key) == value]
            return 200, {"items": items}
        return self.answers.get(path, (404, {"kind": "Status", "code": 404}))

    def post(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        self.posts.append((path, body))
        return self.review


def deployment(namespace: str, name: str, app: str) -> dict[str, Any]:
    return {"metadata": {"namespace": namespace, "name": name, "labels": {"app": app}}}


def healthy(**changes: Any) -> FakeApi:
    """A cluster ready for the platform: Cilium configured for ambient, no Istio, no namespace of ours."""
    return FakeApi(cilium=dict(CILIUM_FOR_AMBIENT), **changes)


def check(api: FakeApi, owner: str = OWNER) -> list[str]:
    return cluster_problems(api, NAMESPACES, ISTIO_SYSTEM, owner)


def test_a_healthy_cluster_has_no_problem():
    api = healthy(deployments=[deployment("kube-system", "coredns", "coredns")])
    assert check(api) == []
    # It asked what it needed: the version, a cluster-wide review, Cilium's config, istiod, each namespace.
    assert "/version" in api.gets and CILIUM_CONFIG in api.gets
    assert {f"/api/v1/namespaces/{name}" for name in NAMESPACES} <= set(api.gets)
    [(path, review)] = api.posts
    assert path == "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
    assert review["kind"] == "SelfSubjectAccessReview"
    assert review["spec"]["resourceAttributes"] == {"verb": "*", "group": "*", "resource": "*"}


def test_an_unreachable_api_server_is_one_line_naming_it():
    api = healthy()
    api.unreachable = True
    [problem] = check(api)
    assert ENDPOINT in problem and "connection refused" in problem
    assert api.posts == [] and api.gets == ["/version"]


@pytest.mark.parametrize("status", [401, 403])
def test_refused_credentials_are_named_and_nothing_else_is_asked(status):
    api = healthy()
    api.answers["/version"] = (status, {"kind": "Status", "code": status})
    [problem] = check(api)
    assert ENDPOINT in problem and f"HTTP {status}" in problem and "credentials" in problem
    assert api.posts == []


def test_credentials_the_review_refuses_are_named():
    api = healthy()
    api.review = (401, None)
    [problem] = check(api)
    assert "credentials" in problem and "HTTP 401" in problem


@pytest.mark.parametrize("version", ["v1.28.3", "v1.29.15", "v1.34.0"])
def test_a_kubernetes_version_the_pinned_charts_do_not_support_is_named(version):
    [problem] = check(healthy(version=version))
    (low_major, low_minor), (high_major, high_minor) = versions.KUBERNETES_SUPPORTED
    assert version in problem
    assert f"{low_major}.{low_minor}" in problem and f"{high_major}.{high_minor}" in problem


def _supported_versions() -> list[str]:
    (low_major, low_minor), (high_major, high_minor) = versions.KUBERNETES_SUPPORTED
    return [
        f"v{low_major}.{low_minor}.0",
        "v1.32.7",
        "v1.32.7+rke2r1",
        "v1.31.4-eks-2d5f260",
        f"v{high_major}.{high_minor}.9",
    ]


@pytest.mark.parametrize("version", _supported_versions())
def test_a_supported_kubernetes_version_passes(version):
    assert check(healthy(version=version)) == []


def test_a_user_who_may_not_do_everything_is_named():
    [problem] = check(healthy(allowed=False))
    assert "cluster-admin" in problem


def test_a_cluster_without_cilium_is_named_with_what_ambient_needs():
    api = FakeApi()  # no cilium-config
    [problem] = check(api)
    assert "Cilium" in problem
    for key, value in CILIUM_FOR_AMBIENT.items():
        assert f"{key}: {value}" in problem


@pytest.mark.parametrize("key", CILIUM_FOR_AMBIENT)
@pytest.mark.parametrize("found", ["wrong", "unset"])
def test_each_cilium_setting_ambient_needs_is_named_with_found_and_needed(key, found):
    cilium = dict(CILIUM_FOR_AMBIENT)
    needed = cilium[key]
    if found == "unset":
        del cilium[key]
    else:
        cilium[key] = {"false": "true", "true": "false"}[needed]
    [problem] = check(FakeApi(cilium=cilium))
    assert key in problem
    assert (f'"{cilium[key]}"' if found == "wrong" else "unset") in problem
    assert f'needed, "{needed}"' in problem


def test_another_istio_control_plane_is_named():
    foreign = deployment("istio-1-20", "istiod-1-20", "istiod")
    [problem] = check(healthy(deployments=[foreign]))
    assert "istio-1-20/istiod-1-20" in problem
    # meshlab's own istiod (a second `pulumi up`) is not another one.
    assert check(healthy(deployments=[deployment(ISTIO_SYSTEM, "istiod", "istiod")])) == []


def test_a_namespace_someone_else_made_is_named_and_one_this_stack_made_passes():
    [problem] = check(healthy(namespaces={"ns-test": {}}))
    assert "ns-test" in problem
    [problem] = check(healthy(namespaces={"metallb-system": {"app.kubernetes.io/managed-by": "Helm"}}))
    assert "metallb-system" in problem
    other = cluster_name("other")
    [problem] = check(healthy(namespaces={"ns-test": {OWNER_LABEL: other}}))
    assert "ns-test" in problem and other in problem
    assert check(healthy(namespaces={"ns-test": {OWNER_LABEL: OWNER}})) == []


def test_a_second_up_on_the_same_cluster_finds_only_its_own_namespaces(existing):
    """What the program labels its namespaces with is what the preflight takes for this stack's own."""
    rendered = {r.inputs["metadata"]["name"]: r.inputs["metadata"]["labels"] for r in existing.of_type(NAMESPACE)}
    assert len(rendered) >= 5
    api = healthy(namespaces=rendered)
    assert cluster_problems(api, list(rendered), ISTIO_SYSTEM, cluster_name(existing.stack)) == []
    problems = cluster_problems(healthy(namespaces=rendered), list(rendered), ISTIO_SYSTEM, cluster_name("other"))
    assert len(problems) == len(rendered)


def test_problems_of_several_checks_come_together():
    cilium = {**CILIUM_FOR_AMBIENT, "cni-exclusive": "true"}
    found = check(
        FakeApi(cilium=cilium, deployments=[deployment("istio", "istiod", "istiod")], namespaces={"ns-test": {}})
    )
    assert len(found) == 3
    assert [any(word in problem for problem in found) for word in ("cni-exclusive", "istio/istiod", "ns-test")] == [
        True,
        True,
        True,
    ]


def test_the_preflight_of_a_kubeconfig_whose_server_does_not_answer_is_one_line():
    with socket.socket() as probe:  # a loopback port nothing listens on once this is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    document = kubeconfig_document()
    document["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{port}"
    [problem] = preflight(yaml.safe_dump(document), NAMESPACES, ISTIO_SYSTEM, OWNER)
    assert f"https://127.0.0.1:{port}" in problem and "cannot reach" in problem
    assert TOKEN not in problem


# --- the kubeconfig's credentials -------------------------------------------------------------


def with_user(user: dict[str, Any], **cluster: Any) -> str:
    document = kubeconfig_document()
    document["users"][0]["user"] = user
    document["clusters"][0]["cluster"].update(cluster)
    return yaml.safe_dump(document)


def test_a_token_user_sends_a_bearer_token(tmp_path):
    api = KubeconfigApi.from_kubeconfig(with_user({"token": TOKEN}, server=SERVER + "/"), tmp_path)
    assert api.endpoint == SERVER
    assert api.headers["Authorization"] == f"Bearer {TOKEN}"


def test_a_token_file_user_sends_the_files_token(tmp_path):
    (tmp_path / "token").write_text(TOKEN + "\n")
    api = KubeconfigApi.from_kubeconfig(with_user({"tokenFile": str(tmp_path / "token")}), tmp_path)
    assert api.headers["Authorization"] == f"Bearer {TOKEN}"


def test_a_basic_auth_user_sends_its_name_and_password(tmp_path):
    api = KubeconfigApi.from_kubeconfig(with_user({"username": "admin", "password": "s3cret"}), tmp_path)
    scheme, _, credentials = api.headers["Authorization"].partition(" ")
    assert scheme == "Basic"
    assert base64.b64decode(credentials).decode() == "admin:s3cret"


def _throwaway_ca(directory: Path) -> bytes:
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", "ca.key", "-out", "ca.crt", "-days", "1", "-subj", "/CN=meshlab-preflight-test-ca",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        ],
        cwd=directory, capture_output=True, check=True,
    )  # fmt: skip
    return (directory / "ca.crt").read_bytes()


@pytest.mark.parametrize("given", ["certificate-authority-data", "certificate-authority"])
def test_the_clusters_certificate_authority_is_the_only_one_trusted(tmp_path, given):
    """As kubectl: a server certificate from any other CA (one of the system's) is refused."""
    ca = _throwaway_ca(tmp_path)
    value = base64.b64encode(ca).decode() if given.endswith("-data") else str(tmp_path / "ca.crt")
    api = KubeconfigApi.from_kubeconfig(with_user({"token": TOKEN}, **{given: value}), tmp_path)
    assert api.context.get_ca_certs(binary_form=True) == [ssl.PEM_cert_to_DER_cert(ca.decode())]
    assert api.context.verify_mode == ssl.CERT_REQUIRED and api.context.check_hostname


def test_insecure_skip_tls_verify_turns_verification_off(tmp_path):
    api = KubeconfigApi.from_kubeconfig(with_user({"token": TOKEN}, **{"insecure-skip-tls-verify": True}), tmp_path)
    assert api.context.verify_mode == ssl.CERT_NONE and not api.context.check_hostname


# --- the documented example and the mirror's archives -----------------------------------------

EXAMPLE = ROOT / "docs" / "examples" / "Pulumi.mycluster.yaml"
GUIDE = ROOT / "docs" / "existing-cluster.md"


def test_the_documented_example_stack_is_valid_with_its_kubeconfig():
    config = read_stack_file(EXAMPLE)
    assert config.problems == ()
    # The example never holds a kubeconfig: `pulumi config set --secret` adds it, encrypted.
    assert KUBECONFIG_KEY not in config.values
    with pytest.raises(SettingsError, match="meshlab:servers"):
        settings_from_config(config, source=str(EXAMPLE))  # without one it is a cluster to build
    config = StackConfig({**config.values, KUBECONFIG_KEY: KUBECONFIG}, config.secret_keys | {KUBECONFIG_KEY})
    settings = settings_from_config(config, source=str(EXAMPLE))
    assert settings.cluster.existing and settings.cluster.nfs_server
    assert settings.sources.chart_repository and settings.sources.gateway_api_crds_url


def test_the_guide_lists_every_pinned_chart_archive_and_where_it_comes_from():
    """What a mirror must hold (docs/existing-cluster.md) follows config/versions.py."""
    text = GUIDE.read_text()
    for chart in versions.CHARTS.values():
        assert f"`{chart.name}-{chart.version}.tgz`" in text
        assert chart.repository in text
        assert f"--version {chart.version}" in text
    assert versions.GATEWAY_API_CRDS_URL in text
    assert "(examples/Pulumi.mycluster.yaml)" in text and EXAMPLE.is_file()
