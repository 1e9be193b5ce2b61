"""Settings that used to pass validation and fail later (or be refused for the wrong reason): each
case is a stack changed in one way, with the problems it must get exactly, each as `KEY = VALUE:
MESSAGE`, or none."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from config.loader import StackConfig, load_stack_file, read_stack_file, settings_from_config
from config.validation import SettingsError
from tests.conftest import ROOT
from tools import cli
from tools.render import with_overrides

PRIVATE = "meshlab:sshPrivateKey"
KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEA\n-----END OPENSSH PRIVATE KEY-----\n"
PEM_KEY = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----\n"
PUBLIC = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG me@laptop"
# prod's existing hosts with a key instead of the ssh-agent.
WITH_KEY = {"meshlab:sshAgent": None, PRIVATE: KEY}
QEMU = {"meshlab:hypervisor": "qemu"}
# A one-node lab on 10.0.0.0/16, which holds 10.0.2.0/24.
TEN_NETWORK = {
    "meshlab:hostOnlyCidr": "10.0.0.0/16",
    "meshlab:servers": ["master1=10.0.1.11"],
    "meshlab:agents": [],
    "meshlab:apiVip": "10.0.1.10",
    "meshlab:metallbPool": "10.0.1.200-10.0.1.250",
}
# The same lab on 10.0.2.0/24 itself.
SLIRP_NETWORK = {
    "meshlab:hostOnlyCidr": "10.0.2.0/24",
    "meshlab:servers": ["master1=10.0.2.11"],
    "meshlab:agents": [],
    "meshlab:apiVip": "10.0.2.10",
    "meshlab:metallbPool": "10.0.2.200-10.0.2.250",
}


def problems(stack_configs: dict[str, StackConfig], stack: str, overrides: dict[str, Any]) -> list[str]:
    """Every problem `stack` with `overrides` has, as printed (none: the stack is valid). The private
    key is stored encrypted, as `pulumi config set --secret` stores it, and the program sees its text."""
    config = with_overrides(stack_configs[stack], overrides)
    try:
        settings_from_config(StackConfig(config.values, config.secret_keys | {PRIVATE}))
    except SettingsError as error:
        return [str(problem) for problem in error.problems]
    return []


def test_the_stacks_the_cases_change_are_valid(stack_configs):
    assert problems(stack_configs, "lab", {}) == []
    assert problems(stack_configs, "prod", WITH_KEY) == []
    assert problems(stack_configs, "lab", {**QEMU, **TEN_NETWORK, "meshlab:hostOnlyCidr": "10.0.1.0/24"}) == []


# 1. The host-only subnet of a QEMU lab and QEMU's user-mode network ------------------------------------

QEMU_USER = "overlaps QEMU's user-mode network (10.0.2.0/24)"


@pytest.mark.parametrize(
    ("case", "overrides", "expected"),
    [
        ("the user network itself", SLIRP_NETWORK, [f"meshlab:hostOnlyCidr = 10.0.2.0/24: {QEMU_USER}"]),
        ("a subnet holding it", TEN_NETWORK, [f"meshlab:hostOnlyCidr = 10.0.0.0/16: {QEMU_USER}"]),
        ("a subnet beside it", {**TEN_NETWORK, "meshlab:hostOnlyCidr": "10.0.1.0/24"}, []),
    ],
    ids=["the user network itself", "a subnet holding it", "a subnet beside it"],
)
def test_a_qemu_lab_keeps_its_host_only_subnet_off_the_user_network(stack_configs, case, overrides, expected):
    assert problems(stack_configs, "lab", {**QEMU, **overrides}) == expected, case


def test_a_virtualbox_lab_keeps_its_host_only_subnet_off_the_nat_network(stack_configs):
    """Only possible with the allowed ranges widened: VirtualBox's default range is 192.168.56.0/21."""
    overrides = {**TEN_NETWORK, "meshlab:vboxAllowedRanges": ["10.0.0.0/8"]}
    assert problems(stack_configs, "lab", overrides) == [
        "meshlab:hostOnlyCidr = 10.0.0.0/16: overlaps the VirtualBox NAT network (10.0.2.0/24)"
    ]


# 2. meshlab:sshPrivateKey holds a private key --------------------------------------------------------

PRIVATE_KEY_CASES = [
    (
        "a path under home",
        "~/.ssh/id_ed25519",
        "looks like a file path: the setting holds the key itself (pulumi config set --secret "
        "meshlab:sshPrivateKey < KEYFILE)",
    ),
    (
        "an absolute path",
        "/home/u/.ssh/id_rsa",
        "looks like a file path: the setting holds the key itself (pulumi config set --secret "
        "meshlab:sshPrivateKey < KEYFILE)",
    ),
    (
        "an openssh public key",
        PUBLIC,
        "looks like a public key (OpenSSH): give its private half, the key file without .pub (pulumi config set "
        "--secret meshlab:sshPrivateKey < KEYFILE)",
    ),
    (
        "a pem public key",
        "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n",
        "looks like a public key (PEM): give its private half, the key file without .pub (pulumi config set "
        "--secret meshlab:sshPrivateKey < KEYFILE)",
    ),
    (
        "a putty key",
        "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\n",
        "looks like a PuTTY key (.ppk): convert it to OpenSSH (puttygen KEY.ppk -O private-openssh -o KEYFILE) and "
        "set that file (pulumi config set --secret meshlab:sshPrivateKey < KEYFILE)",
    ),
    (
        "a key cut short",
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEA",
        "the key is cut short: no '-----END ... PRIVATE KEY-----' line after its '-----BEGIN' line",
    ),
    (
        "something else",
        "hunter2 hunter2",
        "not a private key: no '-----BEGIN ... PRIVATE KEY-----' line (a PEM or OpenSSH key file)",
    ),
]


@pytest.mark.parametrize(("case", "value", "message"), PRIVATE_KEY_CASES, ids=[case[0] for case in PRIVATE_KEY_CASES])
def test_a_private_key_that_is_not_one_is_refused_without_quoting_it(stack_configs, case, value, message):
    on_existing = problems(stack_configs, "prod", {**WITH_KEY, PRIVATE: value})
    assert on_existing == [f"meshlab:sshPrivateKey = [secret]: {message}"], case
    # On VMs the key pair is the user's own (both halves given): the same rule.
    on_vms = problems(stack_configs, "lab", {"meshlab:sshPublicKey": PUBLIC, PRIVATE: value})
    assert on_vms == [f"meshlab:sshPrivateKey = [secret]: {message}"], case
    assert value.splitlines()[-1] not in "\n".join(on_existing + on_vms)


@pytest.mark.parametrize("key", [KEY, PEM_KEY, "-----BEGIN PRIVATE KEY-----\nMC4CAQA\n-----END PRIVATE KEY-----"])
def test_pem_and_openssh_private_keys_are_accepted(stack_configs, key):
    assert problems(stack_configs, "prod", {**WITH_KEY, PRIVATE: key}) == []
    assert problems(stack_configs, "lab", {"meshlab:sshPublicKey": PUBLIC, PRIVATE: key}) == []


def test_an_encrypted_key_the_tools_cannot_read_is_not_judged(stack_configs):
    """Offline tools see `[secret]` for an encrypted value: only the program run by the CLI sees the key."""
    assert problems(stack_configs, "prod", {**WITH_KEY, PRIVATE: "[secret]"}) == []
    assert problems(stack_configs, "prod", {**WITH_KEY, PRIVATE: "[secret 0123abcd]"}) == []


# 3. meshlab:vboxAllowedRanges is VirtualBox's only --------------------------------------------------


def test_the_virtualbox_ranges_are_refused_on_existing_hosts_and_qemu(stack_configs):
    ranges = {"meshlab:vboxAllowedRanges": ["192.168.56.0/21", "10.20.0.0/16"]}
    message = (
        "meshlab:vboxAllowedRanges = 192.168.56.0/21, 10.20.0.0/16: is read only with meshlab:hypervisor virtualbox"
    )
    assert problems(stack_configs, "prod", {**WITH_KEY, **ranges}) == [message]
    assert problems(stack_configs, "lab", {**QEMU, **ranges}) == [message]
    assert problems(stack_configs, "lab", ranges) == []
    # The CLI hands the program every declared key with its default: the default is no setting.
    assert problems(stack_configs, "prod", {**WITH_KEY, "meshlab:vboxAllowedRanges": ["192.168.56.0/21"]}) == []


# 4. Each backend's own guest network ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("backend", "stack", "overrides", "expected"),
    [
        (
            "virtualbox",
            "lab",
            {},
            ["meshlab:clusterCidr = 10.0.0.0/16: overlaps the VirtualBox NAT network (10.0.2.0/24)"],
        ),
        ("qemu", "lab", QEMU, [f"meshlab:clusterCidr = 10.0.0.0/16: {QEMU_USER}"]),
        ("existing", "prod", WITH_KEY, []),
    ],
)
def test_the_pod_cidr_is_checked_against_its_own_backends_guest_network(
    stack_configs, backend, stack, overrides, expected
):
    assert problems(stack_configs, stack, {**overrides, "meshlab:clusterCidr": "10.0.0.0/16"}) == expected, backend


@pytest.mark.parametrize(
    ("backend", "stack", "overrides", "expected"),
    [
        (
            "virtualbox",
            "lab",
            {},
            ["meshlab:serviceCidr = 10.0.2.0/24: overlaps the VirtualBox NAT network (10.0.2.0/24)"],
        ),
        ("qemu", "lab", QEMU, [f"meshlab:serviceCidr = 10.0.2.0/24: {QEMU_USER}"]),
        ("existing", "prod", WITH_KEY, []),
    ],
)
def test_the_service_cidr_is_checked_against_its_own_backends_guest_network(
    stack_configs, backend, stack, overrides, expected
):
    assert problems(stack_configs, stack, {**overrides, "meshlab:serviceCidr": "10.0.2.0/24"}) == expected, backend


def test_existing_hosts_may_live_on_10_0_2_0(stack_configs):
    """Their own network: nothing of QEMU's or VirtualBox's is there."""
    servers = [f"prod-server{n}=10.0.2.1{n}" for n in (1, 2, 3)]
    agents = [f"prod-agent{n}=10.0.2.2{n}" for n in (1, 2, 3)]
    overrides = {
        **WITH_KEY,
        **SLIRP_NETWORK,
        "meshlab:servers": servers,
        "meshlab:agents": agents,
    }
    assert problems(stack_configs, "prod", overrides) == []


# 5. The bastion's port -------------------------------------------------------------------------------

BASTION_CASES = [
    ("port 0", "bastion.example.com:0", "port 0 is not a TCP port (1 to 65535)"),
    ("a port too high", "bastion.example.com:99999", "port 99999 is not a TCP port (1 to 65535)"),
    ("a port with a letter", "bastion.example.com:22a", "port 22a is not a number (1 to 65535)"),
    ("a colon and no port", "bastion.example.com:", "no port after ':' (write HOST alone for port 22)"),
    ("a second colon", "203.0.113.5:22:22", "port 22:22 is not a number (1 to 65535)"),
]


@pytest.mark.parametrize(("case", "bastion", "message"), BASTION_CASES, ids=[case[0] for case in BASTION_CASES])
def test_a_bastion_port_outside_1_to_65535_is_refused(stack_configs, case, bastion, message):
    overrides = {**WITH_KEY, "meshlab:sshBastionHost": bastion, "meshlab:sshBastionUser": "jump"}
    assert problems(stack_configs, "prod", overrides) == [f"meshlab:sshBastionHost = {bastion}: {message}"], case


@pytest.mark.parametrize("bastion", ["bastion.example.com", "bastion.example.com:1", "203.0.113.5:65535"])
def test_a_bastion_with_a_port_in_range_is_accepted(stack_configs, bastion):
    overrides = {**WITH_KEY, "meshlab:sshBastionHost": bastion, "meshlab:sshBastionUser": "jump"}
    assert problems(stack_configs, "prod", overrides) == []


# 6. The small ones --------------------------------------------------------------------------------------


def test_the_cli_refusal_names_the_stack_asked_for_not_the_files_stem(tmp_path):
    """`tools.plan lab --config-file ci.yaml`: the CLI (`pulumi preview -s lab --config-file ci.yaml`) says 'lab'."""
    lab = (ROOT / "Pulumi.lab.yaml").read_text().replace("meshlab:agentCpus: 2", "meshlab:agentCpus: two")
    path = tmp_path / "ci.yaml"
    path.write_text(lab)
    refusal = (
        "meshlab:agentCpus = two: Pulumi.yaml declares it integer: the Pulumi CLI refuses the stack "
        "(\"Stack 'lab' with configuration key 'meshlab:agentCpus' must be of type 'integer'\")"
    )
    assert [str(problem) for problem in read_stack_file(path, stack="lab").problems] == [refusal]
    with pytest.raises(SettingsError) as raised:
        load_stack_file(path, stack="lab")
    assert [str(problem) for problem in raised.value.problems] == [refusal]
    # Without a stack, a file named as the CLI names stack files names its own.
    named = tmp_path / "Pulumi.lab.yaml"
    named.write_text(lab)
    assert [str(problem) for problem in read_stack_file(named).problems] == [refusal]


def test_an_unknown_stack_lists_the_known_ones(tmp_path):
    for stack in ("lab", "prod", "staging"):
        (tmp_path / f"Pulumi.{stack}.yaml").write_text("config: {}\n")
    (tmp_path / "Pulumi.yaml").write_text("name: meshlab\n")
    assert cli.known_stacks(tmp_path) == ["lab", "prod", "staging"]
    with pytest.raises(cli.UnknownStackError) as raised:
        cli.stack_config_file("nosuch", root=tmp_path)
    assert str(raised.value) == (
        f"no stack config file {tmp_path / 'Pulumi.nosuch.yaml'}: the known stacks are lab, prod, staging "
        "(Pulumi.STACK.yaml); or give one with --config-file"
    )
    assert cli.stack_config_file("lab", root=tmp_path) == tmp_path / "Pulumi.lab.yaml"
    given = tmp_path / "ci.yaml"
    with pytest.raises(cli.UnknownStackError) as raised:
        cli.stack_config_file("lab", given, root=tmp_path)
    assert str(raised.value) == f"no stack config file {given}"
    given.write_text("config: {}\n")
    assert cli.stack_config_file("lab", given, root=tmp_path) == given


def test_the_repositorys_stacks_are_the_known_ones():
    assert cli.known_stacks() == sorted(path.name.split(".")[1] for path in ROOT.glob("Pulumi.*.yaml"))


@pytest.mark.parametrize("tool", ["tools.plan", "tools.images"])
def test_a_tool_asked_for_an_unknown_stack_lists_the_known_ones(tool):
    done = subprocess.run([sys.executable, "-m", tool, "nosuch"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 2
    known = ", ".join(sorted(path.name.split(".")[1] for path in ROOT.glob("Pulumi.*.yaml")))
    assert done.stderr == (
        f"error: no stack config file {ROOT / 'Pulumi.nosuch.yaml'}: the known stacks are {known} "
        "(Pulumi.STACK.yaml); or give one with --config-file\n"
    )


def test_a_derived_setting_is_not_blamed_for_a_node_outside_the_subnet(stack_configs):
    """meshlab:nfsAllowedCidr, unset, is the host-only subnet: a node outside it is the node's problem,
    already listed, not one of a setting the user never wrote."""
    servers = ["master1=10.1.1.1", "master2=192.168.56.12", "master3=192.168.56.13"]
    assert problems(stack_configs, "lab", {"meshlab:servers": servers}) == [
        "meshlab:servers[0] = master1=10.1.1.1: 10.1.1.1 is outside the host-only subnet meshlab:hostOnlyCidr = "
        "192.168.56.0/24"
    ]
    # Set by the user, it is judged on its own.
    assert problems(stack_configs, "lab", {"meshlab:nfsAllowedCidr": "192.168.56.0/28"}) == [
        "meshlab:nfsAllowedCidr = 192.168.56.0/28: nodes worker1, worker2, worker3 could not mount the export; "
        "include every node IP"
    ]


def test_problems_read_from_a_file_name_the_file(tmp_path):
    path = tmp_path / "Pulumi.lab.yaml"
    path.write_text((ROOT / "Pulumi.lab.yaml").read_text() + f"  {PRIVATE}: ~/.ssh/id_ed25519\n")
    with pytest.raises(SettingsError) as raised:
        load_stack_file(Path(path))
    assert str(raised.value).startswith(f"invalid meshlab settings in {path}:\n")
    assert "~/.ssh" not in str(raised.value)
