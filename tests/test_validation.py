"""Cross-field settings rules (config/validation.py): each case changes the lab stack and must get
exactly the problems listed, each as `KEY = VALUE: MESSAGE`, the line a user reads; a valid
neighbour of each case must get none."""

from __future__ import annotations

import json
from typing import Any

import pytest

from config.loader import StackConfig, settings_from_config
from config.validation import Problem, SettingsError, counted
from tools.render import with_overrides

PRIVATE = "meshlab:sshPrivateKey"
# A private key as an OpenSSH key file holds it (validation reads its BEGIN and END lines).
KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEA\n-----END OPENSSH PRIVATE KEY-----\n"
POOL = "192.168.56.200-192.168.56.250"


def problems(stack_configs: dict[str, StackConfig], overrides: dict[str, Any], secret: bool = False) -> list[str]:
    """Every problem the lab stack with `overrides` has, as printed (none: the stack is valid)."""
    config = with_overrides(stack_configs["lab"], overrides)
    if secret:
        config = StackConfig(config.values, config.secret_keys | {PRIVATE})
    try:
        settings_from_config(config)
    except SettingsError as error:
        assert str(error).startswith("invalid meshlab settings in stack config:\n  - ")
        return [str(problem) for problem in error.problems]
    return []


def test_the_lab_stack_itself_is_valid(stack_configs):
    """The baseline every case below changes: without it, a case could pass on problems it did not cause."""
    assert problems(stack_configs, {}) == []


# (case, overrides, the problems exactly)
CASES: list[tuple[str, dict[str, Any], list[str]]] = [
    (
        "host ip outside the subnet",
        {"meshlab:hostOnlyHostIp": "192.168.57.1"},
        [
            "meshlab:hostOnlyHostIp = 192.168.57.1: 192.168.57.1 is outside the host-only subnet "
            "meshlab:hostOnlyCidr = 192.168.56.0/24"
        ],
    ),
    (
        "host ip on the network address",
        {"meshlab:hostOnlyHostIp": "192.168.56.0"},
        ["meshlab:hostOnlyHostIp = 192.168.56.0: 192.168.56.0 is the network or broadcast address of 192.168.56.0/24"],
    ),
    (
        "host ip on the broadcast address",
        {"meshlab:hostOnlyHostIp": "192.168.56.255"},
        [
            "meshlab:hostOnlyHostIp = 192.168.56.255: 192.168.56.255 is the network or broadcast address of "
            "192.168.56.0/24"
        ],
    ),
    ("host ip inside the subnet", {"meshlab:hostOnlyHostIp": "192.168.56.2"}, []),
    (
        "host ip on a node",
        {"meshlab:hostOnlyHostIp": "192.168.56.11"},
        [
            "meshlab:servers[0] = master1=192.168.56.11: 192.168.56.11 is the host's own address on the host-only "
            "network"
        ],
    ),
    (
        "host ip on the vip",
        {"meshlab:hostOnlyHostIp": "192.168.56.10"},
        ["meshlab:apiVip = 192.168.56.10: the VIP is the host's own host-only address"],
    ),
    (
        "host ip in the pool",
        {"meshlab:hostOnlyHostIp": "192.168.56.210"},
        [f"meshlab:metallbPool = {POOL}: the pool contains the host's address 192.168.56.210"],
    ),
    (
        "node outside the subnet",
        {"meshlab:agents": ["worker1=192.168.57.21"]},
        [
            "meshlab:agents[0] = worker1=192.168.57.21: 192.168.57.21 is outside the host-only subnet "
            "meshlab:hostOnlyCidr = 192.168.56.0/24",
        ],
    ),
    (
        "node on the network address",
        {"meshlab:agents": ["worker1=192.168.56.0"]},
        [
            "meshlab:agents[0] = worker1=192.168.56.0: 192.168.56.0 is the network or broadcast address of "
            "192.168.56.0/24"
        ],
    ),
    (
        "nodes on the host and on the vip",
        {"meshlab:agents": ["worker1=192.168.56.1", "worker2=192.168.56.10"]},
        [
            "meshlab:agents[0] = worker1=192.168.56.1: 192.168.56.1 is the host's own address on the host-only network",
            "meshlab:agents[1] = worker2=192.168.56.10: 192.168.56.10 is the API VIP meshlab:apiVip",
        ],
    ),
    (
        "a small subnet",
        {
            "meshlab:hostOnlyCidr": "192.168.56.0/29",
            "meshlab:servers": ["master1=192.168.56.2"],
            "meshlab:agents": [],
            "meshlab:apiVip": "192.168.56.3",
            "meshlab:metallbPool": "192.168.56.4-192.168.56.5",
        },
        ["meshlab:hostOnlyCidr = 192.168.56.0/29: use a /28 or larger subnet: it must hold nodes, VIP and pool"],
    ),
    (
        "a user name with a space",
        {"meshlab:sshUser": "Bad User"},
        ["meshlab:sshUser = Bad User: must be a plain Linux user name (not root)"],
    ),
]


@pytest.mark.parametrize(("case", "overrides", "expected"), CASES, ids=[case[0] for case in CASES])
def test_each_rule_reports_exactly_its_problems(stack_configs, case, overrides, expected):
    assert problems(stack_configs, overrides) == expected, case


# OpenSSH keys ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "public_key",
    [
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG me@host",
        "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ me@host",
        "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTY me@host",
    ],
)
def test_an_openssh_public_key_with_its_private_key_is_accepted(stack_configs, public_key):
    assert problems(stack_configs, {"meshlab:sshPublicKey": public_key, PRIVATE: KEY}, secret=True) == []


@pytest.mark.parametrize(
    "public_key",
    ["AAAAC3NzaC1lZDI1NTE5AAAAIG me@host", "-----BEGIN OPENSSH PRIVATE KEY-----", "ed25519 AAAA me@host"],
)
def test_anything_else_is_not_an_openssh_public_key(stack_configs, public_key):
    found = problems(stack_configs, {"meshlab:sshPublicKey": public_key, PRIVATE: KEY}, secret=True)
    assert found == [f"meshlab:sshPublicKey = {public_key}: not an OpenSSH public key"]


def test_half_a_key_pair_names_both_keys(stack_configs):
    assert problems(stack_configs, {PRIVATE: KEY}, secret=True) == [
        "meshlab:sshPublicKey = (empty): set both meshlab:sshPublicKey and meshlab:sshPrivateKey, or neither to "
        "generate a key pair"
    ]


# The wording helpers -----------------------------------------------------------------------------


def test_counts_agree_with_their_noun():
    assert [counted(n, "server") for n in (0, 1, 2)] == ["0 servers", "1 server", "2 servers"]


def test_a_problem_prints_key_value_and_message():
    problem = Problem("meshlab:agents[0]", "worker1=192.168.56.0", "the message")
    assert str(problem) == "meshlab:agents[0] = worker1=192.168.56.0: the message"
    error = SettingsError([problem, Problem("meshlab:apiVip", "x", "other")], "Pulumi.lab.yaml")
    assert str(error) == (
        "invalid meshlab settings in Pulumi.lab.yaml:\n"
        "  - meshlab:agents[0] = worker1=192.168.56.0: the message\n"
        "  - meshlab:apiVip = x: other"
    )
    assert (error.source, error.problems) == ("Pulumi.lab.yaml", [problem, Problem("meshlab:apiVip", "x", "other")])


# Accepted and refused neighbours -------------------------------------------------------------------

CERT = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
ROOT_KEY = "meshlab:meshCaRootKeyPem"
SHA = "0123456789abcdef" * 4
FIVE_SERVERS = [f"master{n}=192.168.56.1{n}" for n in range(1, 6)]

ACCEPTED: list[tuple[str, dict[str, Any]]] = [
    ("host ip above the vip", {"meshlab:hostOnlyHostIp": "192.168.56.50"}),
    ("a cron with lists and ranges", {"meshlab:etcdSnapshotSchedule": "15 3,9 1-7 */2 0"}),
    ("one operator replica", {"meshlab:ciliumOperatorReplicas": 1}),
    ("an operator replica per node", {"meshlab:ciliumOperatorReplicas": 6}),
    (
        "ca lifetimes at the minimum",
        {"meshlab:meshCaRootValidityHours": 25, "meshlab:meshCaIntermediateValidityHours": 24},
    ),
    *((f"rollout phase {phase}", {"meshlab:rolloutPhase": phase}) for phase in (1, 2, 3, 4)),
    ("an image with a tag", {"meshlab:testAppImage": "nginx:1.27"}),
    ("an image of a registry with a port", {"meshlab:testAppImage": "registry.lab:5000/team/nginx:1.27"}),
    ("an image by digest", {"meshlab:testAppImage": f"nginx@sha256:{SHA}"}),
    ("suffix and prefix paths", {"meshlab:testAppAllowedPaths": ["*.html", "/api/*", "/"]}),
    (
        "l7 demos from phase 3",
        {"meshlab:rolloutPhase": 3, "meshlab:demoL7Routing": True, "meshlab:demoPrincipalPolicy": True},
    ),
    ("the ambient demo from phase 2", {"meshlab:rolloutPhase": 2, "meshlab:demoAmbient": "after"}),
    ("no ambient demo in phase 1", {"meshlab:rolloutPhase": 1, "meshlab:demoAmbient": "off"}),
    ("a user name after root", {"meshlab:sshUser": "zed"}),
    ("five servers when ha is required", {"meshlab:servers": FIVE_SERVERS, "meshlab:requireHa": True}),
    ("one snapshot kept", {"meshlab:etcdSnapshotRetention": 1}),
    ("the shortest ready timeout", {"meshlab:nodeReadyTimeoutSeconds": 60}),
    (
        "every demo past the phase it needs",
        {
            "meshlab:rolloutPhase": 4,
            "meshlab:demoL7Routing": True,
            "meshlab:demoPrincipalPolicy": True,
            "meshlab:demoAmbient": "before",
        },
    ),
]


@pytest.mark.parametrize(("case", "overrides"), ACCEPTED, ids=[case[0] for case in ACCEPTED])
def test_valid_neighbours_are_accepted(stack_configs, case, overrides):
    assert problems(stack_configs, overrides) == [], case


NODES_POOL = "192.168.56.20-192.168.56.30"
REFUSED: list[tuple[str, dict[str, Any], list[str]]] = [
    (
        "one server when ha is required",
        {"meshlab:servers": FIVE_SERVERS[:1], "meshlab:requireHa": True},
        ["meshlab:servers = 1 server (master1): this stack sets meshlab:requireHa, which needs at least 3 servers"],
    ),
    (
        "two servers when ha is required",
        {"meshlab:servers": FIVE_SERVERS[:2], "meshlab:requireHa": True},
        [
            "meshlab:servers = 2 servers (master1, master2): the server count must be odd (1, 3, 5 or 7) so etcd "
            "keeps quorum",
            "meshlab:servers = 2 servers (master1, master2): this stack sets meshlab:requireHa, which needs at least "
            "3 servers",
        ],
    ),
    (
        "a node name used twice",
        {"meshlab:agents": ["master1=192.168.56.31"]},
        ["meshlab:agents[0] = master1=192.168.56.31: node name master1 is already used by meshlab:servers[0]"],
    ),
    (
        "an ip used twice",
        {"meshlab:agents": ["worker1=192.168.56.12"]},
        ["meshlab:agents[0] = worker1=192.168.56.12: IP 192.168.56.12 is already used by meshlab:servers[1]"],
    ),
    (
        "a subnet virtualbox does not allow",
        {
            "meshlab:hostOnlyCidr": "10.20.0.0/24",
            "meshlab:servers": ["master1=10.20.0.11"],
            "meshlab:agents": [],
            "meshlab:apiVip": "10.20.0.10",
            "meshlab:metallbPool": "10.20.0.200-10.20.0.210",
            "meshlab:vboxAllowedRanges": ["192.168.56.0/21", "172.16.0.0/12"],
        },
        [
            "meshlab:hostOnlyCidr = 10.20.0.0/24: VirtualBox only allows host-only networks inside 192.168.56.0/21, "
            "172.16.0.0/12; widen /etc/vbox/networks.conf and list the range in meshlab:vboxAllowedRanges to use "
            "another one"
        ],
    ),
    (
        "a pool over the agents",
        {"meshlab:metallbPool": NODES_POOL},
        [
            f"meshlab:metallbPool = {NODES_POOL}: the pool overlaps node worker{n}'s IP 192.168.56.2{n} "
            f"(meshlab:agents[{n - 1}])"
            for n in (1, 2, 3)
        ],
    ),
    (
        "a pool over the vip",
        {"meshlab:metallbPool": "192.168.56.5-192.168.56.10"},
        ["meshlab:metallbPool = 192.168.56.5-192.168.56.10: the pool contains the API VIP 192.168.56.10"],
    ),
    (
        "a pool ending outside the subnet",
        {"meshlab:metallbPool": "192.168.56.250-192.168.57.5"},
        [
            "meshlab:metallbPool = 192.168.56.250-192.168.57.5: the pool reaches outside the host-only subnet "
            "192.168.56.0/24"
        ],
    ),
    (
        "a pool starting outside the subnet",
        {"meshlab:metallbPool": "192.168.55.250-192.168.56.5"},
        [
            "meshlab:metallbPool = 192.168.55.250-192.168.56.5: the pool contains the host's address 192.168.56.1",
            "meshlab:metallbPool = 192.168.55.250-192.168.56.5: the pool reaches outside the host-only subnet "
            "192.168.56.0/24",
        ],
    ),
    (
        "a pool over the broadcast address",
        {"meshlab:metallbPool": "192.168.56.240-192.168.56.255"},
        [
            "meshlab:metallbPool = 192.168.56.240-192.168.56.255: the pool includes the network or broadcast address "
            "of 192.168.56.0/24"
        ],
    ),
    (
        "a pool over the network address",
        {"meshlab:hostOnlyHostIp": "192.168.56.100", "meshlab:metallbPool": "192.168.56.0-192.168.56.5"},
        [
            "meshlab:metallbPool = 192.168.56.0-192.168.56.5: the pool includes the network or broadcast address of "
            "192.168.56.0/24"
        ],
    ),
    (
        "a pod cidr over virtualbox's nat",
        {"meshlab:clusterCidr": "10.0.0.0/16"},
        ["meshlab:clusterCidr = 10.0.0.0/16: overlaps the VirtualBox NAT network (10.0.2.0/24)"],
    ),
    (
        "cidrs over each other, reported once",
        {"meshlab:serviceCidr": "10.42.128.0/17"},
        ["meshlab:serviceCidr = 10.42.128.0/17: overlaps meshlab:clusterCidr (10.42.0.0/16)"],
    ),
    (
        "a malformed rke2 version",
        {"meshlab:rke2Version": "1.32.7"},
        ["meshlab:rke2Version = 1.32.7: expected an RKE2 release like v1.32.7+rke2r1"],
    ),
    (
        "an rke2 downgrade",
        {"meshlab:rke2Version": "v1.31.9+rke2r1"},
        [
            "meshlab:rke2Version = v1.31.9+rke2r1: older than the pinned v1.32.7+rke2r1: RKE2 does not support "
            "downgrades (restore a snapshot instead)"
        ],
    ),
    (
        "an api name with capitals",
        {"meshlab:apiDnsName": "API_server"},
        ["meshlab:apiDnsName = API_server: not a DNS name (lowercase, dot-separated)"],
    ),
    (
        "no snapshot kept",
        {"meshlab:etcdSnapshotRetention": 0},
        ["meshlab:etcdSnapshotRetention = 0: keep at least 1"],
    ),
    (
        "a relative export path",
        {"meshlab:nfsExportPath": "srv/nfs"},
        ["meshlab:nfsExportPath = srv/nfs: expected an absolute path below / of letters, digits, '.', '_' and '-'"],
    ),
    (
        "a ready timeout under a minute",
        {"meshlab:nodeReadyTimeoutSeconds": 59},
        ["meshlab:nodeReadyTimeoutSeconds = 59: at least 60 s: an RKE2 server takes minutes to start"],
    ),
    (
        "an istio version with a v",
        {"meshlab:istioVersion": "v1.27"},
        ["meshlab:istioVersion = v1.27: expected an Istio release like 1.27.0"],
    ),
    (
        "an ingress address outside the pool",
        {"meshlab:ingressAddress": "192.168.56.100"},
        [
            "meshlab:ingressAddress = 192.168.56.100: MetalLB can only hand out addresses from meshlab:metallbPool = "
            f"{POOL}"
        ],
    ),
    (
        "an ingress domain with capitals",
        {"meshlab:ingressDomain": "Lab_UI"},
        ["meshlab:ingressDomain = Lab_UI: not a DNS name (lowercase, dot-separated)"],
    ),
    (
        "a storage class with a space",
        {"meshlab:nfsStorageClass": "NFS Client"},
        ["meshlab:nfsStorageClass = NFS Client: not a Kubernetes object name (lowercase)"],
    ),
    (
        "a retention in words",
        {"meshlab:prometheusRetention": "a week"},
        ["meshlab:prometheusRetention = a week: expected a duration such as 7d or 24h"],
    ),
    (
        "root, as read",
        {"meshlab:sshUser": json.loads('"root"')},
        ["meshlab:sshUser = root: must be a plain Linux user name (not root)"],
    ),
    (
        "a full subnet",
        {
            "meshlab:hostOnlyCidr": "192.168.56.0/28",
            "meshlab:hostOnlyHostIp": "192.168.56.1",
            "meshlab:apiVip": "192.168.56.2",
            "meshlab:servers": ["master1=192.168.56.3"],
            "meshlab:agents": [],
            "meshlab:metallbPool": "192.168.56.4-192.168.56.14",
        },
        ["meshlab:hostOnlyCidr = 192.168.56.0/28: no free address left in the host-only subnet"],
    ),
    *(
        (
            f"cron {schedule!r}",
            {"meshlab:etcdSnapshotSchedule": schedule},
            [f"meshlab:etcdSnapshotSchedule = {schedule}: expected a 5-field cron expression such as '0 */6 * * *'"],
        )
        for schedule in ("0 */6 * *", "0 */6 * * * *", "0 */6 * * x")
    ),
    (
        "no operator replica",
        {"meshlab:ciliumOperatorReplicas": 0},
        ["meshlab:ciliumOperatorReplicas = 0: must be between 1 and the node count (6): replicas never share a node"],
    ),
    (
        "a root certificate without the root key and plugged ca",
        {"meshlab:meshCaRootCertPem": CERT},
        [
            "meshlab:meshCaRootCertPem = -----BEGIN CERTIFICATE-----: set both meshlab:meshCaRootCertPem and "
            "meshlab:meshCaRootKeyPem, or neither to generate a root",
            "meshlab:meshPluggedCa = False: a shared root CA is only used with meshPluggedCa: true",
        ],
    ),
    (
        "a ca lifetime under a day",
        {"meshlab:meshCaRootValidityHours": 25, "meshlab:meshCaIntermediateValidityHours": 23},
        ["meshlab:meshCaIntermediateValidityHours = 23: at least 24 hours"],
    ),
    (
        "an intermediate as long as its root",
        {"meshlab:meshCaRootValidityHours": 100, "meshlab:meshCaIntermediateValidityHours": 100},
        [
            "meshlab:meshCaIntermediateValidityHours = 100: must end before the root it is signed by "
            "(meshlab:meshCaRootValidityHours = 100)"
        ],
    ),
    *(
        (
            f"rollout phase {phase}",
            {"meshlab:rolloutPhase": phase},
            [f"meshlab:rolloutPhase = {phase}: the rollout has phases 1, 2, 3 and 4"],
        )
        for phase in (0, 5)
    ),
    (
        "a hostname with capitals",
        {"meshlab:testAppHostname": "Test_App"},
        ["meshlab:testAppHostname = Test_App: not a DNS name (lowercase)"],
    ),
    *(
        (
            f"image {image}",
            {"meshlab:testAppImage": image},
            [f"meshlab:testAppImage = {image}: pin the image to a version tag (not latest) or a digest"],
        )
        for image in ("nginx", "nginx:latest", "registry.lab:5000/nginx", "localhost:5000/nginx:latest")
    ),
    (
        "no method",
        {"meshlab:testAppAllowedMethods": []},
        ["meshlab:testAppAllowedMethods = []: allow at least one method, or nothing gets through"],
    ),
    (
        "paths without a slash or with a space",
        {"meshlab:testAppAllowedPaths": ["/", "foo", "/a b"]},
        [
            "meshlab:testAppAllowedPaths = foo: a path starts with '/' (or '*' for a suffix)",
            "meshlab:testAppAllowedPaths = /a b: a path starts with '/' (or '*' for a suffix)",
        ],
    ),
    (
        "an egress name with capitals",
        {"meshlab:testAppEgressFqdns": ["httpbin.org", "Example.COM"]},
        ["meshlab:testAppEgressFqdns = Example.COM: not a DNS name (lowercase)"],
    ),
    (
        "l7 demos before phase 3",
        {"meshlab:rolloutPhase": 2, "meshlab:demoL7Routing": True, "meshlab:demoPrincipalPolicy": True},
        [
            "meshlab:demoL7Routing = True: needs meshlab:rolloutPhase 3 or later (it is 2)",
            "meshlab:demoPrincipalPolicy = True: needs meshlab:rolloutPhase 3 or later (it is 2)",
        ],
    ),
    (
        "the ambient demo in phase 1",
        {"meshlab:rolloutPhase": 1, "meshlab:demoAmbient": "before"},
        ["meshlab:demoAmbient = before: needs meshlab:rolloutPhase 2 or later (it is 1)"],
    ),
    (
        "an even server count names the servers",
        {"meshlab:servers": FIVE_SERVERS[:2]},
        [
            "meshlab:servers = 2 servers (master1, master2): the server count must be odd (1, 3, 5 or 7) so etcd "
            "keeps quorum"
        ],
    ),
    (
        "no server at all",
        {"meshlab:servers": []},
        ["meshlab:servers = 0 servers (none): the server count must be odd (1, 3, 5 or 7) so etcd keeps quorum"],
    ),
    (
        "too few cpus, each with its article",
        {"meshlab:agentCpus": 1, "meshlab:serverCpus": 1},
        [
            "meshlab:serverCpus = 1: a server needs at least 2 vCPUs",
            "meshlab:agentCpus = 1: an agent needs at least 2 vCPUs",
        ],
    ),
]


@pytest.mark.parametrize(("case", "overrides", "expected"), REFUSED, ids=[case[0] for case in REFUSED])
def test_invalid_neighbours_get_exactly_their_problems(stack_configs, case, overrides, expected):
    assert problems(stack_configs, overrides) == expected, case


def test_a_shared_root_needs_a_pem_certificate_and_plugged_ca(stack_configs):
    shared = {ROOT_KEY: "key", "meshlab:meshPluggedCa": True}
    secret = frozenset({ROOT_KEY})
    assert problems_with_secret(stack_configs, {**shared, "meshlab:meshCaRootCertPem": CERT}, secret) == []
    garbage = {**shared, "meshlab:meshCaRootCertPem": "garbage line\nsecond line"}
    assert problems_with_secret(stack_configs, garbage, secret) == [
        "meshlab:meshCaRootCertPem = garbage line: expected a PEM certificate"
    ]
    unplugged = {ROOT_KEY: "key", "meshlab:meshCaRootCertPem": CERT}
    assert problems_with_secret(stack_configs, unplugged, secret) == [
        "meshlab:meshPluggedCa = False: a shared root CA is only used with meshPluggedCa: true"
    ]


def problems_with_secret(stack_configs, overrides: dict[str, Any], secret: frozenset[str]) -> list[str]:
    config = with_overrides(stack_configs["lab"], overrides)
    try:
        settings_from_config(StackConfig(config.values, config.secret_keys | secret))
    except SettingsError as error:
        return [str(problem) for problem in error.problems]
    return []


@pytest.mark.parametrize(
    ("pin", "accepted", "refused"),
    [
        ("v1.32.7+rke2r1", "v1.33.1+rke2r1", "v1.34.1+rke2r1"),
        # Another major, odd minor and revision: the rule must read each part of the pin, not its shape.
        ("v1.33.2+rke2r2", "v1.34.1+rke2r1", "v1.35.1+rke2r1"),
    ],
)
def test_kubernetes_upgrades_one_minor_at_a_time_from_the_pin(stack_configs, monkeypatch, pin, accepted, refused):
    monkeypatch.setattr("config.versions.RKE2", pin)
    assert problems(stack_configs, {"meshlab:rke2Version": pin}) == []
    assert problems(stack_configs, {"meshlab:rke2Version": accepted}) == []
    minor = int(pin.split(".")[1])
    assert problems(stack_configs, {"meshlab:rke2Version": refused}) == [
        f"meshlab:rke2Version = {refused}: Kubernetes upgrades one minor version at a time: from {pin} go to "
        f"v1.{minor + 1}.x first"
    ]


def test_a_root_key_without_its_certificate_names_both(stack_configs):
    overrides = {ROOT_KEY: "key", "meshlab:meshPluggedCa": True}
    assert problems_with_secret(stack_configs, overrides, frozenset({ROOT_KEY})) == [
        "meshlab:meshCaRootCertPem = (empty): set both meshlab:meshCaRootCertPem and meshlab:meshCaRootKeyPem, or "
        "neither to generate a root"
    ]


def test_a_malformed_pin_is_a_programming_error_not_a_settings_problem(stack_configs, monkeypatch):
    monkeypatch.setattr("config.versions.RKE2", "1.32.7")
    with pytest.raises(RuntimeError, match=r"^config/versions\.py pins a malformed RKE2 version '1\.32\.7'$"):
        problems(stack_configs, {"meshlab:rke2Version": "v1.32.7+rke2r1"})


def test_settings_errors_come_from_the_stack_config_unless_told():
    assert str(SettingsError([Problem("k", "v", "m")])) == "invalid meshlab settings in stack config:\n  - k = v: m"
