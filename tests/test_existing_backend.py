"""The existing-hosts backend (`meshlab:hypervisor: existing`) as the real program registers it,
under mocks: prod runs on it. Nothing is created for the machines but a preflight and a read of each
one's identity; the cluster layer reaches them at the given addresses with the given login, and
every node step's delete runs on destroy (the machines outlive the stack)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from components.cluster.node import staging_dir
from components.hosts.existing.scripts import render_script
from config.loader import StackConfig, read_stack_file, settings_from_config
from config.settings import promotable_keys
from config.validation import SettingsError
from tests.conftest import STACKS, VM_STACKS, waits_for
from tests.test_cluster_layer import exported
from tools.mock_keys import key_pair
from tools.render import SECRET, Rendering, stack_file, with_overrides

LOCAL = "command:local:Command"
REMOTE = "command:remote:Command"
COPY = "command:remote:CopyToRemote"
KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nprods-own\n-----END OPENSSH PRIVATE KEY-----"
WITH_KEY = {"meshlab:sshAgent": None, "meshlab:sshPrivateKey": KEY}
SECRET_KEY = frozenset({"meshlab:sshPrivateKey"})
_ED25519_KEY = key_pair("a host").public_openssh.strip()


def _hypervisor(stack: str) -> str:
    return str(yaml.safe_load(stack_file(stack).read_text())["config"].get("meshlab:hypervisor", "virtualbox"))


def test_prod_runs_on_existing_hosts_and_the_other_stacks_on_vms():
    """The promotion path: laptop VMs -> staging VMs -> real servers."""
    assert {stack: _hypervisor(stack) for stack in STACKS} == {
        **{stack: "virtualbox" for stack in VM_STACKS},
        "prod": "existing",
    }


def _hosts_tree(rendering: Rendering) -> list[Any]:
    [hosts] = [r for r in rendering.resources() if r.name == "hosts" and r.type.startswith("meshlab:hosts:")]
    return [hosts, *rendering.descendants(hosts.urn)]


def test_existing_hosts_get_a_preflight_and_an_identity_read_and_nothing_else(rendered, stack_configs):
    rendering = rendered["prod"]
    nodes = settings_from_config(stack_configs["prod"]).topology.nodes
    tree = _hosts_tree(rendering)
    types: dict[str, list[str]] = {}
    for resource in tree:
        types.setdefault(resource.type, []).append(resource.name)
    assert {key: sorted(names) for key, names in types.items()} == {
        "meshlab:hosts:ExistingHosts": ["hosts"],
        "meshlab:hosts:ExistingPreflight": ["hosts-preflight"],
        LOCAL: sorted(["hosts-preflight-check", *(f"{node.name}-host-key" for node in nodes)]),
        "meshlab:hosts:ExistingHost": sorted(node.name for node in nodes),
        REMOTE: sorted(f"{node.name}-identity" for node in nodes),
    }
    # What a preview and the pull-request diff show of each machine, and of the backend.
    hosts = {r.name: r.inputs for r in tree if r.type == "meshlab:hosts:ExistingHost"}
    assert hosts == {node.name: {"host": node.name, "ip": str(node.ip), "role": node.role} for node in nodes}
    assert [r.inputs for r in tree if r.type == "meshlab:hosts:ExistingHosts"] == [{"hypervisor": "existing"}]
    identities = [r for r in tree if r.type == REMOTE]
    assert len(identities) == 6
    assert all(r.inputs["create"] == "cat /etc/machine-id" and "delete" not in r.inputs for r in identities)
    # No VM, disk, image, seed, network or generated key anywhere in the stack.
    everything = {r.type for r in rendering.resources()}
    assert not {t for t in everything if t.startswith("meshlab:hosts:") and "Existing" not in t}
    assert not [r for r in rendering.of_type("tls:index/privateKey:PrivateKey") if r.name == "hosts-ssh-key"]
    assert len(rendering.of_type(LOCAL)) == 1 + len(nodes)


def _node_steps(rendering: Rendering) -> list[Any]:
    return [r for r in rendering.resources() if r.type in (REMOTE, COPY) and r.name.startswith("cluster-")]


def _node_of(name: str, nodes: list[str]) -> str:
    for node in nodes:
        if name.startswith(f"cluster-{node}-"):
            return node
    return nodes[0]  # the NFS export, the readiness wait and the kubeconfig read: on the first server


def test_the_cluster_layer_logs_in_to_the_given_addresses_with_the_given_key(render_with, stack_configs):
    rendering = render_with(WITH_KEY, secret_keys=SECRET_KEY, stack="prod")
    addresses = {node.name: str(node.ip) for node in settings_from_config(stack_configs["prod"]).topology.nodes}
    steps = _node_steps(rendering) + [r for r in rendering.of_type(REMOTE) if r.name.endswith("-identity")]
    assert len(steps) > 50
    for step in steps:
        node = step.name.removesuffix("-identity") if step.name.endswith("-identity") else None
        node = node or _node_of(step.name, list(addresses))
        connection = step.revealed_inputs["connection"]
        assert step.inputs["connection"] == SECRET, step.name
        assert (connection["host"], connection["user"], connection["privateKey"]) == (addresses[node], "ubuntu", KEY)
        # Pinned to the key its node's host-key step learned (the mock's stdout stands for it).
        assert connection["hostKey"] == f"{node}-host-key done", step.name
        assert "proxy" not in connection, step.name
    for resource in rendering.resources():
        assert "prods-own" not in json.dumps(resource.inputs), resource.name


def test_the_ssh_agent_logs_in_without_a_key_in_the_stack(rendered):
    steps = _node_steps(rendered["prod"])
    assert steps
    for step in steps:
        assert "privateKey" not in step.revealed_inputs["connection"], step.name
    outputs = rendered["prod"].stack_outputs()
    assert "sshPrivateKey" not in outputs and outputs["sshUser"] == "ubuntu"


def test_a_bastion_carries_every_connection_and_the_preflight(render_with):
    rendering = render_with(
        {**WITH_KEY, "meshlab:sshBastionHost": "bastion.example.com:2222", "meshlab:sshBastionUser": "jump"},
        secret_keys=SECRET_KEY,
        stack="prod",
    )
    steps = _node_steps(rendering)
    assert steps
    for step in steps:
        proxy = step.revealed_inputs["connection"]["proxy"]
        assert (proxy["host"], proxy["port"], proxy["user"], proxy["privateKey"]) == (
            "bastion.example.com",
            2222,
            "jump",
            KEY,
        )
    check = _local(rendering, "hosts-preflight-check")
    assert check.inputs["environment"]["MESHLAB_BASTION"] == "jump@bastion.example.com:2222"


def _local(rendering: Rendering, name: str) -> Any:
    [step] = [r for r in rendering.of_type(LOCAL) if r.name == name]
    return step


def _ed25519(name: str) -> str:
    return key_pair(name).public_openssh.strip()


def test_every_connection_pins_its_host_key_and_the_bastion_key_is_learned_once(render_with, stack_configs):
    """Without keys in the stack: each node's key and the bastion's are learned by a step of their own
    (trust on first use), every connection and the preflight pin them, and a node's key step logs in
    through the bastion pinned to its key."""
    rendering = render_with(
        {**WITH_KEY, "meshlab:sshBastionHost": "bastion.example.com:2222", "meshlab:sshBastionUser": "jump"},
        secret_keys=SECRET_KEY,
        stack="prod",
    )
    nodes = settings_from_config(stack_configs["prod"]).topology.nodes
    bastion = _local(rendering, "hosts-bastion-host-key")
    assert bastion.inputs["environment"]["MESHLAB_KEY_OF"] == "bastion"
    assert bastion.inputs["environment"]["MESHLAB_ADDRESS"] == "bastion.example.com:2222"
    assert "stdin" not in bastion.inputs, "the bastion's key is read without a login"
    for node in nodes:
        step = _local(rendering, f"{node.name}-host-key")
        environment = step.inputs["environment"]
        assert (environment["MESHLAB_KEY_OF"], environment["MESHLAB_ADDRESS"]) == ("node", str(node.ip))
        assert environment["MESHLAB_BASTION_HOST_KEY"] == "hosts-bastion-host-key done"
        assert environment["MESHLAB_HOST_KEY_ALGORITHMS"].split(",")[-1] == "ssh-ed25519"
        assert step.revealed_inputs["stdin"] == KEY and "stdin" in step.secret_paths
        assert step.inputs["create"] == render_script("existing_host_key")
    for step in _node_steps(rendering):
        connection = step.revealed_inputs["connection"]
        owner = _node_of(step.name, [n.name for n in nodes])
        assert connection["hostKey"] == f"{owner}-host-key done", step.name
        assert connection["proxy"]["hostKey"] == "hosts-bastion-host-key done", step.name
    pins = _local(rendering, "hosts-preflight-check").inputs["environment"]["MESHLAB_HOST_KEYS"].splitlines()
    assert pins == [f"{node.name} {node.name}-host-key done" for node in nodes]


def test_host_keys_from_the_stack_are_pinned_without_learning(render_with, stack_configs):
    nodes = settings_from_config(stack_configs["prod"]).topology.nodes
    given, learned = nodes[0], nodes[1:]
    bastion_key = _ed25519("bastion")
    rendering = render_with(
        {
            **WITH_KEY,
            "meshlab:sshBastionHost": "bastion.example.com",
            "meshlab:sshBastionUser": "jump",
            "meshlab:sshBastionHostKey": f"{bastion_key} root@bastion",
            "meshlab:sshHostKeys": [f"{given.name}={_ed25519(given.name)} root@{given.name}"],
        },
        secret_keys=SECRET_KEY,
        stack="prod",
    )
    names = {r.name for r in rendering.of_type(LOCAL)}
    assert names == {"hosts-preflight-check", *(f"{node.name}-host-key" for node in learned)}
    for step in _node_steps(rendering):
        connection = step.revealed_inputs["connection"]
        node = _node_of(step.name, [n.name for n in nodes])
        # The comment is dropped: a connection pins "TYPE BASE64".
        expected = _ed25519(given.name) if node == given.name else f"{node}-host-key done"
        assert connection["hostKey"] == expected, step.name
        assert connection["proxy"]["hostKey"] == bastion_key, step.name
    pins = _local(rendering, "hosts-preflight-check").inputs["environment"]["MESHLAB_HOST_KEYS"].splitlines()
    assert pins[0] == f"{given.name} {_ed25519(given.name)}"


def test_vm_connections_pin_the_host_key_their_seed_installs(rendered):
    """Each VM's key is generated for it: the seed installs it and every connection to it pins it."""
    rendering = rendered["lab"]
    remotes = [r for r in rendering.resources() if r.type in (REMOTE, COPY)]
    vms = [r.name for r in rendering.of_type("meshlab:hosts:VirtualBoxVm")]
    assert len(vms) == 6 and len(remotes) > 60
    for step in remotes:
        node = step.name.removesuffix("-cloud-init") if step.name.endswith("-cloud-init") else _node_of(step.name, vms)
        seed = json.loads(_local(rendering, f"{node}-seed").revealed_inputs["stdin"])
        installed = yaml.safe_load(seed["user-data"])["ssh_keys"]["ed25519_public"]
        assert step.revealed_inputs["connection"]["hostKey"] == installed == _ed25519(f"{node}-host-key"), step.name


def test_the_preflight_checks_every_node_against_its_role_before_any_step(rendered, stack_configs):
    rendering = rendered["prod"]
    settings = settings_from_config(stack_configs["prod"])
    check = _local(rendering, "hosts-preflight-check")
    environment = check.inputs["environment"]
    lines = environment["MESHLAB_NODES"].splitlines()
    assert len(lines) == len(settings.topology.nodes) == 6
    topology = settings.topology
    for node, line in zip(settings.topology.nodes, lines, strict=True):
        size = (
            (topology.server_cpus, topology.server_memory_mib, topology.server_disk_gib)
            if node.role == "server"
            else (topology.agent_cpus, topology.agent_memory_mib, topology.agent_disk_gib)
        )
        assert line.split() == [node.name, str(node.ip), node.role, *(str(value) for value in size)]
    assert environment["MESHLAB_INTERFACE"] == "eth0"
    assert environment["MESHLAB_SSH_USER"] == "ubuntu"
    assert environment["MESHLAB_SSH_AGENT"] == "true"
    assert environment["MESHLAB_NODE_CHECK"] == render_script("existing_check")
    network = settings.network
    assert environment["MESHLAB_FREE_ADDRESSES"].split() == [
        f"{network.api_vip}=meshlab:apiVip",
        f"{network.metallb_pool.first}=meshlab:metallbPool",
        f"{network.metallb_pool.last}=meshlab:metallbPool",
    ]
    # RKE2's ports, the embedded registry mirror's among them (on by default), must be free on every node.
    assert environment["MESHLAB_SERVER_PORTS"].split() == ["6443", "9345", "10250", "2379", "2380", "2381", "5001"]
    assert environment["MESHLAB_AGENT_PORTS"].split() == ["10250", "5001"]
    assert check.inputs["triggers"] == [environment["MESHLAB_NODES"]]
    # Every node step waits for the check of all nodes, through its node's identity read.
    identities = {
        r.name.removesuffix("-identity"): r for r in rendering.of_type(REMOTE) if r.name.endswith("-identity")
    }
    assert all(identity.depends_on(check) for identity in identities.values())
    names = [node.name for node in settings.topology.nodes]  # the first server first
    for step in _node_steps(rendering):
        owner = _node_of(step.name, names)
        assert identities[owner].urn in waits_for(rendering, step), step.name


def test_the_key_goes_to_the_preflight_on_stdin_as_a_secret(render_with):
    check = _local(render_with(WITH_KEY, secret_keys=SECRET_KEY, stack="prod"), "hosts-preflight-check")
    assert check.inputs["stdin"] == SECRET and "stdin" in check.secret_paths
    assert check.revealed_inputs["stdin"] == KEY
    assert "environment" not in check.secret_paths
    assert "prods-own" not in json.dumps(check.inputs["environment"])


def test_destroy_runs_every_node_steps_delete_on_existing_hosts(rendered):
    """Nothing is deleted with a machine that stays: RKE2 is uninstalled and meshlab's files go."""
    prod = rendered["prod"]
    assert all(not r.deleted_with for r in prod.resources())
    deletes = {
        r.name.removeprefix("cluster-prod-server1-"): exported(r.inputs["delete"])
        for r in _node_steps(prod)
        if r.name.startswith("cluster-prod-server1-") and "delete" in r.inputs
    }
    assert sorted(deletes) == ["files", "install", "prepare"]
    assert deletes["prepare"]["MESHLAB_STAGING_DIR"] == staging_dir("ubuntu")
    nfs = [r for r in prod.of_type(REMOTE) if r.name == "cluster-nfs-export"]
    assert nfs and "delete" in nfs[0].inputs
    for stack in VM_STACKS:  # on VMs the same steps are deleted with the machine, deletes unrun
        steps = _node_steps(rendered[stack])
        assert steps and all(r.deleted_with for r in steps)


def test_the_cluster_binds_to_the_node_interface(rendered):
    prod = rendered["prod"]
    preflights = [r for r in _node_steps(prod) if r.name.endswith("-preflight")]
    assert len(preflights) == 6
    assert {exported(r.inputs["create"])["MESHLAB_INTERFACE"] for r in preflights} == {"eth0"}
    [start] = [r for r in prod.of_type(REMOTE) if r.name == "cluster-prod-server1-start"]
    assert exported(start.inputs["create"])["MESHLAB_INTERFACE"] == "eth0"
    [kube_vip] = [r for r in prod.of_type(COPY) if r.name == "cluster-prod-server1-copy-kube-vip"]
    pod = yaml.safe_load(kube_vip.inputs["source"]["text"])
    env = {item["name"]: item.get("value") for item in pod["spec"]["containers"][0]["env"]}
    assert env["vip_interface"] == "eth0"
    assert prod.stack_outputs()["hostOnlyInterface"] == "eth0"
    [l2] = [r for r in prod.resources() if r.name.endswith("-l2") and r.type.startswith("kubernetes:")]
    assert l2.inputs["spec"]["interfaces"] == ["eth0"]


# --- settings ---------------------------------------------------------------------------------------


def _problems(stack_configs: dict[str, Any], stack: str, overrides: dict[str, Any]) -> list[str]:
    config = with_overrides(stack_configs[stack], overrides)
    try:
        settings_from_config(StackConfig(config.values, config.secret_keys | SECRET_KEY))
    except SettingsError as error:
        return [str(problem) for problem in error.problems]
    return []


CASES: list[tuple[str, str, dict[str, Any], list[str]]] = [
    (
        "no key and no agent",
        "prod",
        {"meshlab:sshAgent": None},
        [
            "meshlab:sshPrivateKey = (unset): required with meshlab:hypervisor existing: the key that logs in to the "
            "nodes as meshlab:sshUser ubuntu (pulumi config set --secret meshlab:sshPrivateKey < KEYFILE), or set "
            "meshlab:sshAgent true to use your ssh-agent"
        ],
    ),
    (
        "a key and the agent",
        "prod",
        {"meshlab:sshPrivateKey": KEY},
        ["meshlab:sshAgent = True: choose one: meshlab:sshPrivateKey or the ssh-agent, not both"],
    ),
    (
        "no node interface",
        "prod",
        {"meshlab:nodeInterface": None},
        [
            "meshlab:nodeInterface = (unset): required with meshlab:hypervisor existing: the NIC that holds each "
            "node's address (e.g. eth0), the same name on every node; the preflight says which NIC holds it if "
            "this is wrong"
        ],
    ),
    (
        "an interface name Linux refuses",
        "prod",
        {"meshlab:nodeInterface": "eth0 eth1"},
        ["meshlab:nodeInterface = eth0 eth1: not a Linux interface name (letters, digits, _.-)"],
    ),
    (
        "a bastion without a user",
        "prod",
        {"meshlab:sshBastionHost": "bastion.example.com"},
        [
            "meshlab:sshBastionUser = (unset): required with meshlab:sshBastionHost bastion.example.com: the login "
            "user there"
        ],
    ),
    (
        "a bastion user without a bastion",
        "prod",
        {"meshlab:sshBastionUser": "jump"},
        ["meshlab:sshBastionUser = jump: set meshlab:sshBastionHost too, or neither for direct SSH"],
    ),
    (
        "a bastion port out of range",
        "prod",
        {"meshlab:sshBastionHost": "203.0.113.5:70000", "meshlab:sshBastionUser": "jump"},
        ["meshlab:sshBastionHost = 203.0.113.5:70000: port 70000 is not a TCP port (1 to 65535)"],
    ),
    (
        "a bastion that is no host name",
        "prod",
        {"meshlab:sshBastionHost": "jump@bastion:22", "meshlab:sshBastionUser": "jump"},
        ["meshlab:sshBastionHost = jump@bastion:22: not HOST or HOST:PORT (a DNS name or IPv4 address)"],
    ),
    (
        "host keys that are not keys, of no node, twice, and a bastion key without a bastion",
        "prod",
        {
            "meshlab:sshHostKeys": [
                "prod-server1",
                "prod-server2=ssh-ed25519",
                "prod-server3=ssh-dss AAAAB3NzaC1kc3M=",
                "prod-agent1=ssh-ed25519 not*base64",
                f"prod-agent2=ssh-rsa {_ED25519_KEY.split()[1]}",
                f"prod-agent3={_ED25519_KEY}",
                f"prod-agent3={_ED25519_KEY}",
                f"prod-agent9={_ED25519_KEY}",
            ],
            "meshlab:sshBastionHostKey": _ED25519_KEY,
        },
        [
            "meshlab:sshHostKeys = prod-server1: not NAME=KEY (a node's name, then its public host key: "
            "server1=ssh-ed25519 AAAA...)",
            "meshlab:sshHostKeys = prod-server2=ssh-ed25519: not an OpenSSH public key line: TYPE BASE64 "
            "(e.g. ssh-ed25519 AAAAC3Nza...)",
            "meshlab:sshHostKeys = prod-server3=ssh-dss AAAAB3NzaC1kc3M=: key type ssh-dss is not one of "
            "ecdsa-sha2-nistp256, ecdsa-sha2-nistp384, ecdsa-sha2-nistp521, ssh-rsa, ssh-ed25519",
            "meshlab:sshHostKeys = prod-agent1=ssh-ed25519 not*base64: the key is not base64",
            f"meshlab:sshHostKeys = prod-agent2=ssh-rsa {_ED25519_KEY.split()[1]}: the key's data is not a ssh-rsa key",
            f"meshlab:sshHostKeys = prod-agent3={_ED25519_KEY}: a second key for prod-agent3: give each node one key",
            f"meshlab:sshHostKeys = prod-agent9={_ED25519_KEY}: prod-agent9 is not a node of this stack "
            "(prod-server1, prod-server2, prod-server3, prod-agent1, prod-agent2, prod-agent3)",
            f"meshlab:sshBastionHostKey = {_ED25519_KEY}: set meshlab:sshBastionHost too: this is the bastion's key",
        ],
    ),
    (
        "settings that only VMs read",
        "prod",
        {
            "meshlab:sshPublicKey": "ssh-ed25519 AAAA me@laptop",
            "meshlab:ntpServers": ["192.168.58.1"],
            "meshlab:hostOnlyHostIp": "192.168.58.1",
            "meshlab:qemuBridge": "br0",
        },
        [
            "meshlab:qemuBridge = br0: is read only with meshlab:hypervisor qemu",
            "meshlab:sshPublicKey = ssh-ed25519 AAAA me@laptop: is not read with meshlab:hypervisor existing: the "
            "hosts already authorize your key; only the private key is read",
            "meshlab:ntpServers = ['192.168.58.1']: is not read with meshlab:hypervisor existing: the hosts keep "
            "their own time service (the preflight checks it is synced)",
            "meshlab:hostOnlyHostIp = 192.168.58.1: is not read with meshlab:hypervisor existing: the hosts are on "
            "your own network, not a host-only one",
        ],
    ),
    (
        "settings that only existing hosts read, on VirtualBox",
        "lab",
        {
            "meshlab:nodeInterface": "eth0",
            "meshlab:sshBastionHost": "bastion",
            "meshlab:sshAgent": True,
            "meshlab:sshHostKeys": [f"master1={_ED25519_KEY}"],
        },
        [
            "meshlab:nodeInterface = eth0: is read only with meshlab:hypervisor existing",
            "meshlab:sshBastionHost = bastion: is read only with meshlab:hypervisor existing",
            f"meshlab:sshHostKeys = ['master1={_ED25519_KEY}']: is read only with meshlab:hypervisor existing",
            "meshlab:sshAgent = True: is read only with meshlab:hypervisor existing",
        ],
    ),
]


@pytest.mark.parametrize(("case", "stack", "overrides", "expected"), CASES, ids=[c[0] for c in CASES])
def test_invalid_existing_hosts_settings_get_exactly_their_problems(stack_configs, case, stack, overrides, expected):
    assert _problems(stack_configs, stack, overrides) == expected


def test_a_node_may_take_the_first_address_of_its_own_network(stack_configs):
    """On VMs the first address is the workstation's; on the user's own network it may be a node's."""
    first = {
        "meshlab:servers": ["prod-server1=192.168.58.1", "prod-server2=192.168.58.12", "prod-server3=192.168.58.13"]
    }
    assert _problems(stack_configs, "prod", first) == []
    on_vms = _problems(
        stack_configs,
        "prod",
        {**first, "meshlab:hypervisor": "virtualbox", "meshlab:nodeInterface": None, "meshlab:sshAgent": None},
    )
    assert (
        "meshlab:servers[0] = prod-server1=192.168.58.1: 192.168.58.1 is the host's own address on the host-only "
        "network" in on_vms
    )


def test_a_key_on_its_own_is_enough_for_existing_hosts(stack_configs):
    assert _problems(stack_configs, "prod", WITH_KEY) == []
    config = with_overrides(read_stack_file(stack_file("prod")), WITH_KEY)
    settings = settings_from_config(StackConfig(config.values, SECRET_KEY))
    assert settings.access.ssh_public_key == ""


# --- promotion across backends ----------------------------------------------------------------------


def test_no_setting_of_the_existing_backend_is_promoted():
    existing_keys = {
        "meshlab:hypervisor",
        "meshlab:nodeInterface",
        "meshlab:sshBastionHost",
        "meshlab:sshBastionUser",
        "meshlab:sshAgent",
        "meshlab:sshUser",
        "meshlab:sshPrivateKey",
    }
    assert not existing_keys & set(promotable_keys())
