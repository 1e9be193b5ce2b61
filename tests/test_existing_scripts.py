"""The existing-hosts preflight's two scripts against fakes: the check that runs on a node (a fake
node's root directory and commands), and the workstation side that runs it on every node at once
over a fake `ssh` and turns their findings into one list."""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from components.hosts.existing.scripts import render_script
from components.hosts.existing.ssh import openssh_host_key_algorithms
from config.settings import EXISTING_HOST_OS, EXISTING_MEMORY_PERCENT, RKE2_PORTS
from tools.mock_keys import key_pair

ROOT = Path(__file__).resolve().parents[1]
FAKE_NODE = ROOT / "tests" / "fakes" / "node" / "fake_node"
FAKE_SSH = ROOT / "tests" / "fakes" / "ssh" / "fake_ssh"
BASH = shutil.which("bash") or "/bin/bash"
NODE_COMMANDS = ("systemctl", "timedatectl", "ip", "swapon", "ss", "nproc", "uname", "sudo", "ping")
KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nfake\n-----END OPENSSH PRIVATE KEY-----\n"
UBUNTU = 'PRETTY_NAME="Ubuntu 24.04.1 LTS"\nID=ubuntu\nVERSION_ID="24.04"\n'


def node_bin(tmp_path: Path) -> Path:
    directory = tmp_path / "node-bin"
    if not directory.is_dir():
        directory.mkdir()
        for command in NODE_COMMANDS:
            (directory / command).symlink_to(FAKE_NODE)
    return directory


def fake_host_key(host: str, kind: str = "") -> str:
    """A key of the fake `ssh`'s host `host`: its default ED25519 key, or another named `kind`."""
    return key_pair(f"fake host {host}{kind}").public_openssh.strip()


def _ssh_string(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


# An ECDSA P-256 host key line whose point is the curve's generator (SEC 2): a valid key, and not
# anyone's.
_P256_GENERATOR = bytes.fromhex(
    "04"
    "6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296"
    "4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5"
)
ECDSA_KEY = (
    "ecdsa-sha2-nistp256 "
    + base64.b64encode(
        _ssh_string(b"ecdsa-sha2-nistp256") + _ssh_string(b"nistp256") + _ssh_string(_P256_GENERATOR)
    ).decode()
)


class FakeHost:
    """One existing machine: a root directory (os-release, meminfo) and fake_node's state."""

    def __init__(self, base: Path, ip: str, interface: str = "eth0") -> None:
        self.ip = ip
        self.root = base / ip / "root"
        self.state = base / ip / "state"
        for directory in (self.root / "etc", self.root / "proc", self.root / "var/lib", self.state):
            directory.mkdir(parents=True)
        (self.root / "etc/os-release").write_text(UBUNTU)
        self.memory_mib(8000)
        self.set("interface", interface)
        self.set("ip", ip)

    def set(self, name: str, value: str = "") -> None:
        path = self.state / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(value)

    def host_keys(self, *keys: str) -> None:
        (self.root.parent / "host_keys").write_text("\n".join(keys) + "\n")

    def memory_mib(self, mib: int) -> None:
        (self.root / "proc/meminfo").write_text(f"MemTotal:       {mib * 1024} kB\nMemFree:        1000 kB\n")

    def install(self, path: str, text: str = "#!/bin/sh\n") -> None:
        binary = self.root / path.lstrip("/")
        binary.parent.mkdir(parents=True, exist_ok=True)
        binary.write_text(text)
        binary.chmod(0o755)


def check_inputs(ip: str, **overrides: str) -> dict[str, str]:
    inputs = {
        "MESHLAB_NODE_NAME": "prod-server1",
        "MESHLAB_NODE_IP": ip,
        "MESHLAB_ROLE": "server",
        "MESHLAB_CPUS": "4",
        "MESHLAB_MEMORY_MIB": "8192",
        "MESHLAB_DISK_GIB": "1",
        "MESHLAB_MEMORY_PERCENT": str(EXISTING_MEMORY_PERCENT),
        "MESHLAB_INTERFACE": "eth0",
        "MESHLAB_GUEST_ARCH": "amd64",
        "MESHLAB_SUPPORTED_OS": ",".join(EXISTING_HOST_OS),
        "MESHLAB_PORTS": " ".join(str(port) for port in RKE2_PORTS["server"]),
        "MESHLAB_TIME_SYNC_TIMEOUT_SECONDS": "0",
    }
    return {**inputs, **overrides}


def run_check(tmp_path: Path, host: FakeHost, **overrides: str) -> list[list[str]]:
    """The check's findings on `host`: [kind, ...fields] per line. It must exit 0 whatever it finds."""
    env = {
        "PATH": os.pathsep.join([str(node_bin(tmp_path)), os.defpath]),
        "MESHLAB_ROOT": str(host.root),
        "MESHLAB_POLL_SECONDS": "0",
        "FAKE_NODE_STATE": str(host.state),
        "FAKE_NODE_LOG": str(tmp_path / "calls.log"),
        **check_inputs(host.ip, **overrides),
    }
    result = subprocess.run(
        [BASH, "-c", render_script("existing_check")], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return [line.split("\t") for line in result.stdout.splitlines()]


def problems(findings: list[list[str]]) -> dict[str, tuple[str, str]]:
    return {fields[1]: (fields[2], fields[3]) for fields in findings if fields[0] == "problem"}


@pytest.fixture
def host(tmp_path: Path) -> FakeHost:
    return FakeHost(tmp_path / "hosts", "192.0.2.11")


# --- on the node ----------------------------------------------------------------------------------


def test_a_fit_host_has_no_problem_and_says_what_it_is(tmp_path, host):
    findings = run_check(tmp_path, host)
    assert problems(findings) == {}
    [fact] = [fields[1] for fields in findings if fields[0] == "fact"]
    assert fact.startswith("Ubuntu 24.04.1 LTS x86_64, 4 CPUs, 8000 MiB")
    assert fact.endswith("192.0.2.11 on eth0 (the cluster binds there)")


def test_every_problem_of_a_host_is_found_at_once(tmp_path, host):
    (host.root / "etc/os-release").write_text('PRETTY_NAME="CentOS Stream 9"\nID=centos\nVERSION_ID="9"\n')
    host.set("machine", "aarch64")
    host.set("cpus", "2")
    host.memory_mib(2000)
    host.set("ntp", "no")
    host.set("swap", "/swap.img 2G")
    host.set("ports-in-use", "6443 2379")
    host.install("/usr/bin/dockerd")
    host.install("/usr/local/bin/k3s")
    found = problems(run_check(tmp_path, host, MESHLAB_DISK_GIB="100000"))
    assert found["operating system"] == (
        "CentOS Stream 9",
        "one of: ubuntu 24.04, ubuntu 22.04, debian 12 (what the node steps support)",
    )
    assert found["architecture"] == ("aarch64", "amd64 (meshlab:guestArch)")
    assert found["CPUs"] == ("2", "at least 4 (meshlab:serverCpus)")
    needed = 8192 * EXISTING_MEMORY_PERCENT // 100
    assert found["memory"][0] == "2000 MiB (MemTotal)"
    assert found["memory"][1].startswith(
        f"at least {needed} MiB ({EXISTING_MEMORY_PERCENT} % of meshlab:serverMemoryMib 8192"
    )
    assert found["disk"][1] == "at least 100000 GiB free (meshlab:serverDiskGib)"
    assert "GiB free under /var/lib" in found["disk"][0]
    assert found["clock"][0].startswith("not NTP-synchronised")
    assert found["swap"][0] == "on (/swap.img 2G)"
    assert found["other Kubernetes or container runtime"][0] == "/usr/local/bin/k3s, /usr/bin/dockerd"
    assert found["port 6443/tcp"][0].startswith("in use (")
    assert found["port 2379/tcp"][1] == "free for RKE2"
    assert "port 9345/tcp" not in found
    assert len(found) == 10


@pytest.mark.parametrize("release", ['ID=debian\nVERSION_ID="12"\n', 'ID=ubuntu\nVERSION_ID="22.04"\n'])
def test_each_supported_release_passes(tmp_path, host, release):
    (host.root / "etc/os-release").write_text(release)
    assert "operating system" not in problems(run_check(tmp_path, host))


def test_memory_passes_at_the_allowance_and_fails_just_below(tmp_path, host):
    needed = 8192 * EXISTING_MEMORY_PERCENT // 100
    host.memory_mib(needed)
    assert "memory" not in problems(run_check(tmp_path, host))
    host.memory_mib(needed - 1)
    assert "memory" in problems(run_check(tmp_path, host))


def test_the_address_on_another_nic_names_that_nic(tmp_path, tmp_path_factory):
    host = FakeHost(tmp_path / "hosts", "192.0.2.11", interface="enp1s0")
    found = problems(run_check(tmp_path, host))
    assert found["interface"] == (
        "192.0.2.11 on enp1s0",
        "192.0.2.11 on meshlab:nodeInterface eth0 (kube-vip, Cilium and MetalLB bind there)",
    )


def test_an_address_the_host_does_not_have_lists_what_it_has(tmp_path, host):
    host.set("ip", "192.0.2.99")
    host.set("other-addresses", "wlan0 198.51.100.7/24")
    found, needed = problems(run_check(tmp_path, host))["node address"]
    assert found.startswith("192.0.2.11 on no interface (this host has: ")
    assert "eth0 192.0.2.99/24" in found and "wlan0 198.51.100.7/24" in found
    assert needed.startswith("192.0.2.11 on eth0")


def test_a_running_meshlab_rke2_is_a_re_run_not_a_problem(tmp_path, host):
    """After the cluster is up, a new node re-runs the preflight on every node: RKE2 holds its ports."""
    host.install("/usr/local/bin/rke2")
    config = host.root / "etc/rancher/rke2/config.yaml"
    config.parent.mkdir(parents=True)
    config.write_text("token: t\nnode-name: prod-server1\nnode-ip: 192.0.2.11\nprofile: cis\n")
    host.set("active/rke2-server")
    host.set("ports-in-use", "6443 9345 10250")
    assert problems(run_check(tmp_path, host)) == {}


def test_an_rke2_that_meshlab_did_not_configure_is_in_the_way(tmp_path, host):
    host.install("/usr/local/bin/rke2")
    config = host.root / "etc/rancher/rke2/config.yaml"
    config.parent.mkdir(parents=True)
    config.write_text("node-name: someone-elses\n")
    found = problems(run_check(tmp_path, host))
    assert found["other Kubernetes or container runtime"][0] == (
        "/usr/local/bin/rke2 (not configured by meshlab for prod-server1)"
    )


ANNOUNCED = "192.0.2.10=meshlab:apiVip 192.0.2.200=meshlab:metallbPool 192.0.2.250=meshlab:metallbPool"


def test_an_address_meshlab_will_announce_must_be_free_on_the_network(tmp_path, host):
    host.set("answering", "192.0.2.10")  # answers a ping
    host.set("neighbours", "192.0.2.250")  # drops ICMP, but answers ARP
    found = problems(run_check(tmp_path, host, MESHLAB_FREE_ADDRESSES=ANNOUNCED))
    assert found["address 192.0.2.10"] == (
        "in use on the network (by 02:00:5e:10:00:01)",
        "a free address for meshlab:apiVip (meshlab announces it by ARP)",
    )
    assert found["address 192.0.2.250"][1] == "a free address for meshlab:metallbPool (meshlab announces it by ARP)"
    assert "address 192.0.2.200" not in found
    # Once meshlab's RKE2 runs, kube-vip answers for the VIP itself: not a problem then.
    host.set("active/rke2-server")
    assert not [
        check
        for check in problems(run_check(tmp_path, host, MESHLAB_FREE_ADDRESSES=ANNOUNCED))
        if check.startswith("address")
    ]


def test_the_check_changes_nothing_on_the_host(tmp_path, host):
    before = sorted(str(path) for path in host.root.rglob("*"))
    run_check(tmp_path, host)
    assert sorted(str(path) for path in host.root.rglob("*")) == before
    calls = (tmp_path / "calls.log").read_text().splitlines()
    changing = [call for call in calls if call.split()[0] == "systemctl" and "is-active" not in call]
    assert changing == []


# --- on the workstation: every node at once over SSH ------------------------------------------------


def run_step(step: str, env: dict[str, str], stdin: str, *, timeout: float) -> subprocess.CompletedProcess[str]:
    """A workstation step of the existing-hosts backend, as local.Command runs it."""
    return subprocess.run(
        [BASH, "-c", render_script(step)], env=env, input=stdin, capture_output=True, text=True, timeout=timeout,
        check=False,
    )  # fmt: skip


class Workstation:
    def __init__(self, tmp_path: Path) -> None:
        self.hosts = tmp_path / "hosts"
        self.hosts.mkdir(exist_ok=True)
        self.ssh_log = tmp_path / "ssh.log"
        self.bin = tmp_path / "workstation-bin"
        self.bin.mkdir()
        (self.bin / "ssh").symlink_to(FAKE_SSH)
        (self.bin / "ssh-keyscan").symlink_to(FAKE_SSH)
        self.env = {
            "PATH": os.pathsep.join([str(self.bin), str(Path(sys.executable).parent), os.defpath]),
            "HOME": str(tmp_path),
            "FAKE_SSH_NODES": str(self.hosts),
            "FAKE_SSH_LOG": str(self.ssh_log),
            "FAKE_SSH_NODE_BIN": str(node_bin(tmp_path)),
        }

    def host(self, ip: str) -> FakeHost:
        return FakeHost(self.hosts, ip)

    def preflight(self, nodes: str, *, stdin: str = KEY, **overrides: str) -> subprocess.CompletedProcess[str]:
        pins = [f"{line.split()[0]} {fake_host_key(line.split()[1])}" for line in nodes.splitlines() if line.strip()]
        env = {
            **self.env,
            "MESHLAB_NODES": nodes,
            "MESHLAB_HOST_KEYS": "\n".join(pins),
            "MESHLAB_HOST_KEY_ALGORITHMS": openssh_host_key_algorithms(),
            "MESHLAB_SSH_USER": "ubuntu",
            "MESHLAB_SSH_AGENT": "false",
            "MESHLAB_INTERFACE": "eth0",
            "MESHLAB_GUEST_ARCH": "amd64",
            "MESHLAB_SUPPORTED_OS": ",".join(EXISTING_HOST_OS),
            "MESHLAB_MEMORY_PERCENT": str(EXISTING_MEMORY_PERCENT),
            "MESHLAB_SERVER_PORTS": " ".join(str(port) for port in RKE2_PORTS["server"]),
            "MESHLAB_AGENT_PORTS": " ".join(str(port) for port in RKE2_PORTS["agent"]),
            "MESHLAB_TIME_SYNC_TIMEOUT_SECONDS": "0",
            "MESHLAB_NODE_CHECK": render_script("existing_check"),
            **overrides,
        }
        return run_step("existing_preflight", env, stdin, timeout=120)

    def host_key(
        self, name: str, address: str, *, key_of: str = "node", previous: str = "", stdin: str = KEY, **overrides: str
    ) -> subprocess.CompletedProcess[str]:
        """The host-key step of one node (or the bastion); `previous` is its last output, as the provider
        hands it to the next run."""
        env = {
            **self.env,
            "MESHLAB_KEY_OF": key_of,
            "MESHLAB_NAME": name,
            "MESHLAB_ADDRESS": address,
            "MESHLAB_HOST_KEY_ALGORITHMS": openssh_host_key_algorithms(),
            "MESHLAB_SSH_USER": "ubuntu",
            "MESHLAB_SSH_AGENT": "false",
            **({"PULUMI_COMMAND_STDOUT": previous} if previous else {}),
            **overrides,
        }
        return run_step("existing_host_key", env, stdin, timeout=60)

    def ssh_calls(self) -> list[list[str]]:
        return [json.loads(line) for line in self.ssh_log.read_text().splitlines()]


NODES = "\n".join(
    (
        "prod-server1 192.0.2.11 server 4 8192 1",
        "prod-agent1 192.0.2.21 agent 2 4096 1",
        "prod-agent2 192.0.2.22 agent 2 4096 1",
    )
)


@pytest.fixture
def workstation(tmp_path: Path) -> Workstation:
    return Workstation(tmp_path)


def test_fit_hosts_pass_with_one_line_each(workstation):
    for ip in ("192.0.2.11", "192.0.2.21", "192.0.2.22"):
        workstation.host(ip)
    result = workstation.preflight(NODES)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "prod-server1 (192.0.2.11)", "prod-agent1 (192.0.2.21)", "prod-agent2 (192.0.2.22)",
    ]  # fmt: skip
    assert all(line.endswith("(the cluster binds there)") for line in lines)
    calls = workstation.ssh_calls()
    assert len(calls) == 3
    for call in calls:
        assert call[call.index("-i") + 1].endswith("/key")
        assert "BatchMode=yes" in call and "IdentitiesOnly=yes" in call
    assert {call[-2] for call in calls} == {"ubuntu@192.0.2.11", "ubuntu@192.0.2.21", "ubuntu@192.0.2.22"}


def test_the_problems_of_every_node_come_in_one_list(workstation):
    workstation.host("192.0.2.11")
    agent = workstation.host("192.0.2.21")
    agent.memory_mib(1900)
    agent.set("swap", "/swapfile 512M")
    agent.set("ports-in-use", "10250")
    # 192.0.2.22 does not answer at all.
    result = workstation.preflight(NODES)
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0] == (
        "meshlab existing-hosts preflight found 4 problem(s) on 2 of 3 node(s); nothing was changed on any:"
    )
    assert lines[1].startswith(
        "  - prod-agent1 (192.0.2.21) memory: found 1900 MiB (MemTotal); needs at least 3686 MiB"
    )
    assert lines[2] == (
        "  - prod-agent1 (192.0.2.21) swap: found on (/swapfile 512M); needs off (the kubelet refuses to start with"
        " swap: swapoff -a and remove it from /etc/fstab)"
    )
    assert lines[3].startswith("  - prod-agent1 (192.0.2.21) port 10250/tcp: found in use (")
    assert lines[4] == (
        "  - prod-agent2 (192.0.2.22) ssh: found no login as ubuntu (ssh: connect to host 192.0.2.22 port 22:"
        " Connection timed out); needs key login with meshlab:sshPrivateKey"
    )
    assert len(lines) == 5


def test_the_announced_addresses_are_looked_for_from_the_first_node_only(workstation):
    for ip in ("192.0.2.11", "192.0.2.21", "192.0.2.22"):
        workstation.host(ip).set("answering", "192.0.2.10")
    result = workstation.preflight(NODES, MESHLAB_FREE_ADDRESSES="192.0.2.10=meshlab:apiVip")
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines[0].startswith("meshlab existing-hosts preflight found 1 problem(s) on 1 of 3 node(s)")
    assert lines[1] == (
        "  - prod-server1 (192.0.2.11) address 192.0.2.10: found in use on the network (by 02:00:5e:10:00:01); "
        "needs a free address for meshlab:apiVip (meshlab announces it by ARP)"
    )


def test_a_node_without_passwordless_sudo_says_so(workstation):
    workstation.host("192.0.2.11").set("sudo-password")
    result = workstation.preflight("prod-server1 192.0.2.11 server 4 8192 1")
    assert result.returncode == 1
    assert "prod-server1 (192.0.2.11) sudo: found a password prompt for " in result.stderr
    assert "needs passwordless sudo (NOPASSWD) for it" in result.stderr


def test_the_key_is_written_private_and_removed_afterwards(workstation, tmp_path):
    workstation.host("192.0.2.11")
    spy = workstation.bin / "ssh"
    spy.unlink()
    # Records the key file's mode and text while ssh runs, then behaves as the fake.
    spy.write_text(
        f'#!/bin/sh\nfor a; do case "$prev" in -i) stat -c %a "$a" >"{tmp_path}/mode"; cp "$a" "{tmp_path}/seen";;'
        f' esac; prev=$a; done\nexec {FAKE_SSH} "$@"\n'
    )
    spy.chmod(spy.stat().st_mode | stat.S_IEXEC)
    result = workstation.preflight("prod-server1 192.0.2.11 server 4 8192 1")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "mode").read_text().strip() == "600"
    assert (tmp_path / "seen").read_text() == KEY
    [call] = workstation.ssh_calls()
    assert not Path(call[call.index("-i") + 1]).exists(), "the key file must be gone"


def test_a_bastion_carries_every_connection(workstation):
    workstation.host("192.0.2.11")
    result = workstation.preflight(
        "prod-server1 192.0.2.11 server 4 8192 1",
        MESHLAB_BASTION="jump@bastion.example:2222",
        MESHLAB_BASTION_HOST_KEY=fake_host_key("bastion.example"),
    )
    assert result.returncode == 0, result.stderr
    [call] = workstation.ssh_calls()
    [proxy] = [option for option in call if option.startswith("ProxyCommand=")]
    assert proxy.startswith("ProxyCommand=ssh ")
    assert proxy.endswith("-p 2222 -W %h:%p jump@bastion.example")
    assert "-i " in proxy and "BatchMode=yes" in proxy


def test_the_ssh_agent_is_used_instead_of_a_key(workstation):
    workstation.host("192.0.2.11")
    node = "prod-server1 192.0.2.11 server 4 8192 1"
    result = workstation.preflight(node, stdin="", MESHLAB_SSH_AGENT="true")
    assert result.returncode == 1
    assert "meshlab:sshAgent is true but SSH_AUTH_SOCK is not set" in result.stderr
    result = workstation.preflight(node, stdin="", MESHLAB_SSH_AGENT="true", SSH_AUTH_SOCK="/tmp/agent.sock")
    assert result.returncode == 0, result.stderr
    [call] = workstation.ssh_calls()
    assert "-i" not in call


def test_something_that_is_not_a_key_is_refused_before_any_login(workstation):
    workstation.host("192.0.2.11")
    result = workstation.preflight("prod-server1 192.0.2.11 server 4 8192 1", stdin="ssh-ed25519 AAAA me@laptop\n")
    assert result.returncode == 1
    assert "meshlab:sshPrivateKey is not a private key" in result.stderr
    assert not workstation.ssh_log.exists()


def test_a_workstation_without_coreutils_timeout_still_checks_every_node(workstation, tmp_path):
    """macOS has no `timeout`: the preflight runs there too, bounded by ssh's keepalives instead."""
    workstation.host("192.0.2.11")
    no_timeout = tmp_path / "no-timeout-bin"
    no_timeout.mkdir()
    for directory in ("/usr/local/bin", "/usr/bin", "/bin"):
        for tool in Path(directory).iterdir() if Path(directory).is_dir() else ():
            target = no_timeout / tool.name
            if tool.name != "timeout" and not target.exists() and os.access(tool, os.X_OK):
                target.symlink_to(tool)
    env_path = os.pathsep.join([str(workstation.bin), str(Path(sys.executable).parent), str(no_timeout)])
    assert shutil.which("timeout", path=env_path) is None
    workstation.env["PATH"] = env_path
    result = workstation.preflight("prod-server1 192.0.2.11 server 4 8192 1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("prod-server1 (192.0.2.11): Ubuntu 24.04.1 LTS")


# --- host keys -------------------------------------------------------------------------------------


def test_first_contact_learns_the_key_the_provider_will_be_shown(workstation):
    """Asked in the provider's order (ECDSA before ED25519), a host with both shows its ECDSA key."""
    workstation.host("192.0.2.11")
    learned = workstation.host_key("prod-server1", "192.0.2.11")
    assert learned.returncode == 0, learned.stderr
    assert learned.stdout == fake_host_key("192.0.2.11") + "\n"
    workstation.host("192.0.2.12").host_keys(fake_host_key("192.0.2.12"), ECDSA_KEY)
    learned = workstation.host_key("prod-server2", "192.0.2.12")
    assert learned.returncode == 0, learned.stderr
    assert learned.stdout == ECDSA_KEY + "\n"
    [*_, call] = workstation.ssh_calls()
    assert "StrictHostKeyChecking=accept-new" in call and "HostKeyAlgorithms=" + openssh_host_key_algorithms() in call


def test_a_pinned_key_that_changed_is_refused_with_both_fingerprints_and_how_to_accept(workstation):
    host = workstation.host("192.0.2.11")
    pinned = fake_host_key("192.0.2.11")
    assert workstation.host_key("prod-server1", "192.0.2.11", previous=pinned + "\n").stdout == pinned + "\n"
    host.host_keys(fake_host_key("192.0.2.11", " reinstalled"))
    refused = workstation.host_key("prod-server1", "192.0.2.11", previous=pinned + "\n")
    assert refused.returncode == 1 and refused.stdout == ""
    fingerprints = [
        subprocess.run(
            ["ssh-keygen", "-lf", "-"], input=key, capture_output=True, text=True, check=True
        ).stdout.split()[1]
        for key in (pinned, fake_host_key("192.0.2.11", " reinstalled"))
    ]
    assert f"prod-server1 (192.0.2.11) presents a different ED25519 key {fingerprints[1]}" in refused.stderr
    assert f"not the ssh-ed25519 key {fingerprints[0]} meshlab pinned on first contact" in refused.stderr
    assert "pulumi config set --path 'meshlab:sshHostKeys[N]' 'prod-server1=TYPE BASE64'" in refused.stderr
    # Refused before the login: nothing ran on the host.
    assert not (host.root.parent / "calls.log").exists()


def test_the_preflight_refuses_a_node_that_shows_another_key_and_checks_the_others(workstation):
    workstation.host("192.0.2.11").host_keys(fake_host_key("192.0.2.11", " impostor"))
    workstation.host("192.0.2.21")
    result = workstation.preflight("prod-server1 192.0.2.11 server 4 8192 1\nprod-agent1 192.0.2.21 agent 2 4096 1")
    assert result.returncode == 1
    [problem] = [line for line in result.stderr.splitlines() if line.startswith("  - ")]
    assert problem.startswith("  - prod-server1 (192.0.2.11) host key: found a different ED25519 key SHA256:")
    assert "needs the pinned ssh-ed25519 key SHA256:" in problem
    calls = workstation.ssh_calls()
    assert len(calls) == 2 and all("StrictHostKeyChecking=yes" in call for call in calls)


def test_a_pinned_key_of_a_type_the_host_does_not_show_first_is_refused(workstation):
    """The host also has an ECDSA key, which the provider asks for first: the ED25519 pin would fail there."""
    workstation.host("192.0.2.11").host_keys(fake_host_key("192.0.2.11"), ECDSA_KEY)
    result = workstation.preflight("prod-server1 192.0.2.11 server 4 8192 1")
    assert result.returncode == 1
    assert "host key: found a ECDSA key first, of another type than the pinned one" in result.stderr


def test_the_bastion_key_is_read_without_a_login_and_pinned_on_the_jump(workstation):
    workstation.host("bastion.example").host_keys(fake_host_key("bastion.example"), ECDSA_KEY)
    learned = workstation.host_key("bastion", "bastion.example:2222", key_of="bastion", stdin="")
    assert learned.returncode == 0, learned.stderr
    assert learned.stdout == ECDSA_KEY + "\n"
    refused = workstation.host_key(
        "bastion", "bastion.example:2222", key_of="bastion", stdin="", previous=fake_host_key("bastion.example")
    )
    assert refused.returncode == 1
    assert "the bastion bastion.example:2222 presents a different SSH host key" in refused.stderr
    assert "pulumi config set meshlab:sshBastionHostKey" in refused.stderr
    # Through the bastion, the jump itself is checked strictly against the pinned bastion key.
    workstation.host("192.0.2.11")
    result = workstation.preflight(
        "prod-server1 192.0.2.11 server 4 8192 1",
        MESHLAB_BASTION="jump@bastion.example:2222",
        MESHLAB_BASTION_HOST_KEY=ECDSA_KEY,
    )
    assert result.returncode == 0, result.stderr
    [*_, call] = workstation.ssh_calls()
    [proxy] = [option for option in call if option.startswith("ProxyCommand=")]
    assert "StrictHostKeyChecking=yes" in proxy and "bastion_known_hosts" in proxy
