"""Run the real cluster-layer step scripts against a temporary root and fake system commands.

Each test gets a node root directory (MESHLAB_ROOT) and a bin directory of symlinks to
tests/fakes/node/fake_node, which stands in for systemctl, apt-get, kubectl, curl and the
rest, keeps its state in files and logs every call. Steps that change a node run twice to
show the second run changes nothing.
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from components.cluster.scripts import STEPS, render_script
from tests.test_host_scripts import assert_shellcheck_clean

REPO = Path(__file__).resolve().parents[1]
FAKE = REPO / "tests" / "fakes" / "node" / "fake_node"
SCRIPTS_DIR = REPO / "components" / "cluster" / "scripts"
BASH = shutil.which("bash") or "/bin/bash"
FAKED = (
    "systemctl", "journalctl", "apt-get", "dpkg-query", "groupadd", "useradd", "groupdel", "userdel", "chown",
    "exportfs", "curl", "timedatectl", "getent", "ip", "swapon", "ss",
)  # fmt: skip
OLD, NEW = "v1.32.7+rke2r1", "v1.32.8+rke2r1"
STAGING = "/home/meshlab/.meshlab-staging"


class Node:
    """A fake node: its root directory, the fakes' state, and a way to run steps on it."""

    def __init__(self, tmp_path: Path) -> None:
        self.root = tmp_path / "root"
        self.state = tmp_path / "state"
        self.log_file = tmp_path / "calls.log"
        bin_dir = tmp_path / "bin"
        for directory in (self.root / "etc", self.state, bin_dir, self.root / "var/lib/rancher/rke2/bin"):
            directory.mkdir(parents=True)
        (self.root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
        (self.root / "etc/group").write_text("root:x:0:\n")
        for command in FAKED:
            (bin_dir / command).symlink_to(FAKE)
        (self.root / "var/lib/rancher/rke2/bin/kubectl").symlink_to(FAKE)
        self.env = {
            "PATH": os.pathsep.join([str(bin_dir), str(Path(sys.executable).parent), os.defpath]),
            "HOME": str(tmp_path),
            "LANG": "C.UTF-8",
            "MESHLAB_ROOT": str(self.root),
            "MESHLAB_POLL_SECONDS": "0",
            "FAKE_NODE_STATE": str(self.state),
            "FAKE_NODE_LOG": str(self.log_file),
        }
        self.set("node-name", "master1")

    def set(self, name: str, value: str = "") -> None:
        path = self.state / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(value)

    def run(self, step: str, **inputs: str) -> subprocess.CompletedProcess[str]:
        """Run the step as Pulumi does: its rendered script, inputs exported at the top."""
        return subprocess.run(
            [BASH, "-c", render_script(step, inputs)],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def ok(self, step: str, **inputs: str) -> str:
        result = self.run(step, **inputs)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    def fails(self, step: str, **inputs: str) -> str:
        result = self.run(step, **inputs)
        assert result.returncode != 0, result.stdout
        return result.stderr

    def calls(self, command: str | None = None) -> list[str]:
        lines = self.log_file.read_text().splitlines() if self.log_file.exists() else []
        return [line for line in lines if command is None or line.split(" ", 1)[0] == command]

    def forget_calls(self) -> None:
        self.log_file.write_text("")


@pytest.fixture
def node(tmp_path: Path) -> Node:
    return Node(tmp_path)


def count(calls: list[str], predicate: Callable[[str], bool]) -> int:
    return sum(1 for call in calls if predicate(call))


# --- shellcheck -------------------------------------------------------------------------------


@pytest.mark.parametrize("step", STEPS)
def test_rendered_script_passes_shellcheck(step: str) -> None:
    assert_shellcheck_clean(render_script(step, {"MESHLAB_FILES": "a.yaml /etc/a.yaml 0600\nb.yaml /etc/b.yaml 0644"}))


@pytest.mark.parametrize("path", sorted(SCRIPTS_DIR.glob("*.sh")), ids=lambda path: path.name)
def test_script_file_passes_shellcheck(path: Path) -> None:
    assert_shellcheck_clean(path)


def test_every_script_file_is_a_known_step() -> None:
    assert {path.stem for path in SCRIPTS_DIR.glob("*.sh")} == {"common", *STEPS}


def test_inputs_reach_the_script_verbatim_and_are_never_evaluated(node: Node) -> None:
    marker = node.root / "evaluated"
    tricky = f'it\'s "quoted" $(touch {marker}) `touch {marker}`\nsecond line'
    header = render_script("files_remove", {"MESHLAB_FILES": tricky}).split("#!/usr/bin/env bash")[0]
    echoed = subprocess.run(
        [BASH, "-c", header + 'printf %s "$MESHLAB_FILES"'], capture_output=True, text=True, check=False
    )
    assert echoed.returncode == 0 and echoed.stdout == tricky
    node.ok("files_remove", MESHLAB_FILES=f"x /etc/x$(touch {marker}) 0600")
    assert not marker.exists()


# --- node_preflight ----------------------------------------------------------------------------

PREFLIGHT = {
    "MESHLAB_NODE_NAME": "master1",
    "MESHLAB_NODE_IP": "192.168.56.11",
    "MESHLAB_INTERFACE": "hostonly0",
    "MESHLAB_PORTS": "6443 9345 10250",
    "MESHLAB_ENDPOINTS": "https://get.rke2.io https://ghcr.io/v2/",
    "MESHLAB_TIME_SYNC_TIMEOUT_SECONDS": "0",
}


def test_preflight_passes_on_a_fit_node(node: Node) -> None:
    assert "preflight passed on master1" in node.ok("node_preflight", **PREFLIGHT)
    assert len(node.calls("curl")) == 2


def test_preflight_reports_every_problem_at_once(node: Node) -> None:
    node.set("ntp", "no")
    node.set("nodns", "get.rke2.io")
    node.set("unreachable", "ghcr.io")
    node.set("ip", "10.0.2.15")
    node.set("swap", "/swap.img file 2G 0B -2")
    node.set("ports-in-use", "9345")
    message = node.fails("node_preflight", **PREFLIGHT)
    assert "found 6 problem(s)" in message
    for expected in (
        "not NTP-synchronised",
        "DNS cannot resolve get.rke2.io",
        "https://ghcr.io/v2/ is not reachable",
        "does not carry the configured node IP 192.168.56.11 (it has: 10.0.2.15/24)",
        "swap is on",
        "port 9345/tcp is already in use",
    ):
        assert expected in message


@pytest.mark.parametrize(
    ("endpoint", "resolved"),
    [
        ("http://mirror.example:8080/rke2/", "mirror.example"),
        ("https://user@registry.example:5000/v2/", "registry.example"),
        ("https://get.rke2.io", "get.rke2.io"),
    ],
)
def test_preflight_resolves_the_host_of_an_endpoint_with_a_port(node: Node, endpoint: str, resolved: str) -> None:
    node.ok("node_preflight", **{**PREFLIGHT, "MESHLAB_ENDPOINTS": endpoint})
    assert node.calls("getent") == [f"getent hosts {resolved}"]
    assert node.calls("curl")[0].endswith(endpoint)


# Found on real guests (tests/vm): `getent hosts ADDRESS` looks the address up in reverse and fails
# without a PTR record, so a mirror given by its address was reported as a DNS failure.
@pytest.mark.parametrize(
    "endpoint", ["http://198.51.100.1:8080/rke2/", "http://[2001:db8::1]:8080/", "https://203.0.113.7"]
)
def test_preflight_reaches_an_endpoint_given_by_its_address_without_dns(node: Node, endpoint: str) -> None:
    node.ok("node_preflight", **{**PREFLIGHT, "MESHLAB_ENDPOINTS": endpoint})
    assert node.calls("getent") == []
    assert node.calls("curl")[0].endswith(endpoint)


def test_preflight_ignores_ports_rke2_itself_holds(node: Node) -> None:
    node.set("ports-in-use", "6443 9345")
    node.set("active/rke2-server")
    node.ok("node_preflight", **PREFLIGHT)
    assert node.calls("ss") == []


# --- node_prepare ------------------------------------------------------------------------------

PREPARE = {"MESHLAB_SSH_USER": "meshlab", "MESHLAB_STAGING_DIR": STAGING}


def test_prepare_sets_up_a_server_once(node: Node) -> None:
    node.set("active/systemd-networkd")
    node.ok("node_prepare", MESHLAB_ROLE="server", **PREPARE)
    assert "etcd:" in (node.root / "etc/passwd").read_text()
    assert "etcd:" in (node.root / "etc/group").read_text()
    dropin = (node.root / "etc/systemd/networkd.conf.d/60-meshlab-cilium.conf").read_text()
    assert "ManageForeignRoutes=no" in dropin and "ManageForeignRoutingPolicyRules=no" in dropin
    assert (node.root / STAGING.lstrip("/")).is_dir()
    assert stat.S_IMODE((node.root / STAGING.lstrip("/")).stat().st_mode) == 0o700
    assert node.calls("chown") == [f"chown meshlab:meshlab {node.root}{STAGING}"]
    first = node.calls()
    assert count(first, lambda c: c.startswith("apt-get") and " install " in c and "nfs-common" in c) == 1
    assert "systemctl restart systemd-networkd" in first

    node.forget_calls()
    node.ok("node_prepare", MESHLAB_ROLE="server", **PREPARE)
    second = node.calls()
    assert not [c for c in second if c.startswith(("apt-get", "useradd", "groupadd", "systemctl restart"))], second
    assert (node.root / "etc/passwd").read_text().count("etcd:") == 1


def test_prepare_starts_no_networkd_on_a_host_that_does_not_run_it(node: Node) -> None:
    """An existing Debian server may use ifupdown: the drop-in is written, networkd stays off."""
    node.ok("node_prepare", MESHLAB_ROLE="agent", **PREPARE)
    assert (node.root / "etc/systemd/networkd.conf.d/60-meshlab-cilium.conf").exists()
    assert [c for c in node.calls("systemctl") if "restart" in c or "start" in c.split()] == []


def _passwd_and_group(node: Node) -> tuple[str, str]:
    return (node.root / "etc/passwd").read_text(), (node.root / "etc/group").read_text()


def test_unprepare_undoes_prepare_and_is_safe_to_repeat(node: Node) -> None:
    node.set("active/systemd-networkd")
    before = _passwd_and_group(node)
    node.ok("node_prepare", MESHLAB_ROLE="server", **PREPARE)
    assert _passwd_and_group(node) != before
    node.forget_calls()
    for _ in range(2):
        node.ok("node_unprepare", MESHLAB_ROLE="server", **PREPARE)
    assert _passwd_and_group(node) == before
    assert not (node.root / "etc/systemd/networkd.conf.d").exists()
    assert not (node.root / STAGING.lstrip("/")).exists()
    assert not (node.root / "var/lib/meshlab").exists()
    # networkd drops the setting once: restarted on the first run only.
    assert node.calls("systemctl").count("systemctl restart systemd-networkd") == 1
    assert node.calls("apt-get") == [], "packages stay installed"


def test_unprepare_keeps_an_etcd_user_meshlab_did_not_create(node: Node) -> None:
    (node.root / "etc/passwd").write_text("root:x:0:0::/root:/bin/bash\netcd:x:120:120::/var/lib/etcd:/bin/false\n")
    (node.root / "etc/group").write_text("root:x:0:\netcd:x:120:\n")
    node.ok("node_prepare", MESHLAB_ROLE="server", **PREPARE)
    node.ok("node_unprepare", MESHLAB_ROLE="server", **PREPARE)
    assert "etcd:x:120" in (node.root / "etc/passwd").read_text()
    assert "etcd:x:120" in (node.root / "etc/group").read_text()
    assert node.calls("userdel") == node.calls("groupdel") == []


def test_unprepare_removes_nothing_but_a_staging_directory(node: Node) -> None:
    home = node.root / "home/meshlab"
    home.mkdir(parents=True)
    error = node.fails("node_unprepare", MESHLAB_SSH_USER="meshlab", MESHLAB_STAGING_DIR="/home/meshlab")
    assert "refusing to remove /home/meshlab" in error
    assert home.is_dir()


def _tree(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*")}


def test_destroy_on_a_machine_that_stays_leaves_no_directory_meshlab_made(node: Node) -> None:
    """Found on real guests: files_place and nfs_export made /etc/rancher, /var/lib/rancher/... and
    /etc/exports.d, and removing the files left those directories behind on an existing host."""
    node.set("active/systemd-networkd")
    (node.root / "etc/ssh").mkdir()  # something of the machine's own under /etc
    before = _tree(node.root)
    node.ok("node_prepare", MESHLAB_ROLE="server", **PREPARE)
    stage(node, "rke2-config.yaml", "token: t\n")
    stage(node, "kube-vip.yaml", "kind: Pod\n")
    node.ok("files_place", MESHLAB_STAGING_DIR=STAGING, MESHLAB_FILES=FILES)
    export = {"MESHLAB_EXPORT_PATH": "/srv/nfs/kubedata", "MESHLAB_ALLOWED_CIDR": "192.168.56.0/24"}
    node.ok("nfs_export", **export)
    assert {"etc/rancher/rke2", "etc/exports.d", "var/lib/rancher/rke2/agent/pod-manifests"} <= _tree(node.root)
    # pulumi destroy: each step's delete, the preparation's last (every other step waits for it).
    node.ok("files_remove", MESHLAB_FILES=FILES)
    node.ok("nfs_unexport", **export)
    node.ok("rke2_uninstall")
    node.ok("node_unprepare", MESHLAB_ROLE="server", **PREPARE)
    # The export's data stays (volumes may hold data someone needs); nothing else of meshlab's does.
    # (var/lib/rancher/rke2/bin is the fake's own kubectl, there from the start.)
    assert _tree(node.root) - before == {"srv", "srv/nfs", "srv/nfs/kubedata"}
    assert before - _tree(node.root) == set()


def test_prepare_creates_no_etcd_user_on_an_agent(node: Node) -> None:
    node.ok("node_prepare", MESHLAB_ROLE="agent", **PREPARE)
    assert "etcd" not in (node.root / "etc/passwd").read_text()
    assert node.calls("useradd") == node.calls("groupadd") == []


# --- install_packages: apt on a first boot ------------------------------------------------------


def test_packages_install_while_unattended_upgrades_holds_the_dpkg_lock(node: Node) -> None:
    """Ubuntu runs unattended-upgrades on a new VM's first boot; it holds dpkg's lock for minutes."""
    node.set("dpkg-lock-seconds", "300")
    node.ok("node_prepare", MESHLAB_ROLE="agent", **PREPARE)
    assert (node.state / "packages" / "nfs-common").exists()
    apt = node.calls("apt-get")
    assert apt and all("-o DPkg::Lock::Timeout=" in call for call in apt), apt


def test_packages_install_after_apt_daily_releases_the_lists_lock(node: Node) -> None:
    """apt waits for dpkg's lock only: a held lists lock fails `apt-get update` at once, so it is retried."""
    node.set("lists-lock-calls", "2")
    node.ok("nfs_export", MESHLAB_EXPORT_PATH="/srv/nfs/kubedata", MESHLAB_ALLOWED_CIDR="192.168.56.0/24")
    assert (node.state / "packages" / "nfs-kernel-server").exists()
    assert count(node.calls("apt-get"), lambda c: " update" in c) == 3


def test_packages_give_up_with_apts_own_message_when_the_lock_stays_held(node: Node) -> None:
    node.set("dpkg-lock-seconds", "100000")
    error = node.fails("node_prepare", MESHLAB_ROLE="agent", MESHLAB_APT_LOCK_SECONDS="1", **PREPARE)
    assert "/var/lib/dpkg/lock-frontend. It is held by process 1234 (unattended-upgr)" in error
    assert not (node.state / "packages" / "nfs-common").exists()


# --- rke2_install / rke2_uninstall -------------------------------------------------------------


def install_inputs(version: str = OLD, kind: str = "server") -> dict[str, str]:
    return {
        "MESHLAB_RKE2_VERSION": version,
        "MESHLAB_RKE2_TYPE": kind,
        "MESHLAB_RKE2_INSTALL_URL": "https://get.rke2.io",
    }


def test_install_pins_the_version_and_applies_the_cis_sysctls_once(node: Node) -> None:
    out = node.ok("rke2_install", **install_inputs(kind="agent"))
    assert f"RKE2 {OLD} is installed (agent)" in out
    assert node.calls("installer") == [f"installer {OLD} agent"]
    sysctl = (node.root / "etc/sysctl.d/60-rke2-cis.conf").read_text()
    assert "vm.overcommit_memory=1" in sysctl and "kernel.panic_on_oops=1" in sysctl
    assert node.calls("systemctl") == ["systemctl restart systemd-sysctl"]

    node.forget_calls()
    assert "already installed" in node.ok("rke2_install", **install_inputs(kind="agent"))
    assert node.calls("installer") == [] and node.calls("systemctl") == []


def test_install_never_downgrades(node: Node) -> None:
    node.ok("rke2_install", **install_inputs(NEW))
    message = node.fails("rke2_install", **install_inputs(OLD))
    assert f"RKE2 {NEW} is installed" in message and f"refusing to downgrade to {OLD}" in message
    assert node.calls("installer") == [f"installer {NEW} server"]


def test_install_reports_a_failed_download(node: Node) -> None:
    node.set("unreachable", "get.rke2.io")
    assert "cannot download the RKE2 installer from https://get.rke2.io" in node.fails(
        "rke2_install", **install_inputs()
    )


def test_uninstall_removes_rke2_and_tolerates_a_clean_node(node: Node) -> None:
    node.ok("rke2_uninstall")
    assert node.calls("rke2-uninstall") == []
    node.ok("rke2_install", **install_inputs())
    node.ok("rke2_uninstall")
    assert node.calls("rke2-uninstall") == ["rke2-uninstall"]
    assert not (node.root / "etc/sysctl.d/60-rke2-cis.conf").exists()


# --- files_place / files_remove ----------------------------------------------------------------

FILES = (
    "rke2-config.yaml /etc/rancher/rke2/config.yaml 0600\n"
    "kube-vip.yaml /var/lib/rancher/rke2/agent/pod-manifests/kube-vip.yaml 0600"
)


def stage(node: Node, name: str, text: str) -> None:
    staged = node.root / STAGING.lstrip("/") / name
    staged.parent.mkdir(parents=True, exist_ok=True)
    staged.write_text(text)


def test_files_are_placed_with_their_mode_and_only_when_changed(node: Node) -> None:
    stage(node, "rke2-config.yaml", "token: t\n")
    stage(node, "kube-vip.yaml", "kind: Pod\n")
    out = node.ok("files_place", MESHLAB_STAGING_DIR=STAGING, MESHLAB_FILES=FILES)
    config = node.root / "etc/rancher/rke2/config.yaml"
    assert config.read_text() == "token: t\n"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert out.count("installed /") == 2

    out = node.ok("files_place", MESHLAB_STAGING_DIR=STAGING, MESHLAB_FILES=FILES)
    assert out.count("is up to date") == 2 and "installed /" not in out

    stage(node, "rke2-config.yaml", "token: t\nnode-ip: 192.168.56.11\n")
    out = node.ok("files_place", MESHLAB_STAGING_DIR=STAGING, MESHLAB_FILES=FILES)
    assert "installed /etc/rancher/rke2/config.yaml" in out and "node-ip" in config.read_text()

    node.ok("files_remove", MESHLAB_FILES=FILES)
    node.ok("files_remove", MESHLAB_FILES=FILES)
    assert not config.exists()
    assert not (node.root / "var/lib/rancher/rke2/agent/pod-manifests/kube-vip.yaml").exists()


def test_files_place_names_a_missing_staged_file(node: Node) -> None:
    message = node.fails("files_place", MESHLAB_STAGING_DIR=STAGING, MESHLAB_FILES=FILES)
    assert f"staged file {node.root}{STAGING}/rke2-config.yaml is missing" in message


# --- rke2_start --------------------------------------------------------------------------------


def start_inputs(digest: str = "d1", **extra: str) -> dict[str, str]:
    return {
        "MESHLAB_SERVICE": "rke2-server",
        "MESHLAB_NODE_NAME": "master1",
        "MESHLAB_CONFIG_DIGEST": digest,
        "MESHLAB_TIMEOUT_SECONDS": "0",
        **extra,
    }


def test_start_enables_starts_and_waits_until_the_node_is_ready(node: Node) -> None:
    node.ok("rke2_install", **install_inputs())
    node.forget_calls()
    out = node.ok("rke2_start", **start_inputs())
    assert "node master1 is Ready" in out
    assert node.calls("systemctl")[:3] == [
        "systemctl enable rke2-server",
        "systemctl is-active --quiet rke2-server",
        "systemctl start --no-block rke2-server",
    ]
    assert (node.root / "var/lib/meshlab/rke2-config.digest").read_text() == "d1\n"

    node.forget_calls()
    node.ok("rke2_start", **start_inputs())
    assert not [c for c in node.calls("systemctl") if " start " in c or " restart " in c]

    node.ok("rke2_start", **start_inputs("d2"))
    assert "systemctl restart --no-block rke2-server" in node.calls("systemctl")
    assert (node.root / "var/lib/meshlab/rke2-config.digest").read_text() == "d2\n"


def test_start_times_out_with_a_clear_message(node: Node) -> None:
    node.set("never-ready")
    message = node.fails("rke2_start", **start_inputs())
    assert "timed out after 0s waiting for node master1 to be Ready" in message
    assert "journalctl -u rke2-server" in message
    assert not (node.root / "var/lib/meshlab/rke2-config.digest").exists()


def test_start_reports_a_failed_service_with_its_journal(node: Node) -> None:
    node.set("fail-start", "rke2-server")
    message = node.fails("rke2_start", **{**start_inputs(), "MESHLAB_TIMEOUT_SECONDS": "5"})
    assert "rke2-server failed on master1" in message and "fatal: something went wrong" in message


def free_loopback_address() -> str:
    """A loopback address whose port 9345 is free, for a stand-in VIP."""
    for last in range(77, 120):
        address = f"127.0.0.{last}"
        with socket.socket() as probe:
            if probe.connect_ex((address, 9345)) != 0:
                return address
    pytest.fail("no free loopback address for a fake VIP")


def test_first_server_waits_for_the_vip(node: Node) -> None:
    vip = free_loopback_address()
    message = node.fails("rke2_start", **start_inputs(MESHLAB_WAIT_FOR_VIP=vip, MESHLAB_INTERFACE="hostonly0"))
    assert f"the API VIP {vip} does not answer on 9345" in message and "kube-vip" in message
    assert not (node.root / "var/lib/meshlab/rke2-config.digest").exists()

    with socket.socket() as listener:
        listener.bind((vip, 9345))
        listener.listen()
        out = node.ok("rke2_start", **start_inputs(MESHLAB_WAIT_FOR_VIP=vip, MESHLAB_INTERFACE="hostonly0"))
    assert f"the API VIP {vip} answers" in out


# --- rke2_upgrade ------------------------------------------------------------------------------


def upgrade_inputs(version: str) -> dict[str, str]:
    return {
        **install_inputs(version),
        "MESHLAB_SERVICE": "rke2-server",
        "MESHLAB_NODE_NAME": "master1",
        "MESHLAB_TIMEOUT_SECONDS": "0",
    }


def test_upgrade_installs_restarts_and_waits_for_the_new_version(node: Node) -> None:
    node.ok("rke2_install", **install_inputs(OLD))
    node.ok("rke2_start", **start_inputs())
    node.forget_calls()
    out = node.ok("rke2_upgrade", **upgrade_inputs(NEW))
    assert node.calls("installer") == [f"installer {NEW} server"]
    assert "systemctl restart --no-block rke2-server" in node.calls("systemctl")
    assert f"node master1 is Ready on {NEW}" in out

    node.forget_calls()
    node.ok("rke2_upgrade", **upgrade_inputs(NEW))
    assert node.calls("installer") == []
    assert "systemctl restart --no-block rke2-server" not in node.calls("systemctl")


def test_upgrade_refuses_to_downgrade(node: Node) -> None:
    node.ok("rke2_install", **install_inputs(NEW))
    node.ok("rke2_start", **start_inputs())
    node.forget_calls()
    assert "refusing to downgrade" in node.fails("rke2_upgrade", **upgrade_inputs(OLD))
    assert node.calls("installer") == [] and "restart" not in " ".join(node.calls("systemctl"))


# --- cluster_ready -----------------------------------------------------------------------------

READY = {
    "MESHLAB_NODES": "master1 worker1",
    "MESHLAB_TIMEOUT_SECONDS": "0",
    "MESHLAB_WORKLOADS": "daemonset/cilium deployment/cilium-operator",
}


def test_cluster_ready_checks_every_node_and_workload(node: Node) -> None:
    node.set("ready/master1")
    node.set("ready/worker1")
    out = node.ok("cluster_ready", **READY)
    assert "all 2 nodes are Ready and Cilium is healthy" in out
    rollouts = [c for c in node.calls("kubectl") if "rollout" in c]
    assert [c.split()[-2] for c in rollouts] == ["daemonset/cilium", "deployment/cilium-operator"]


def test_cluster_ready_names_the_nodes_that_are_not_ready(node: Node) -> None:
    node.set("ready/master1")
    message = node.fails("cluster_ready", **READY)
    assert "not every node is Ready after 0s" in message and "master1=Ready" in message


def test_cluster_ready_names_a_missing_or_unready_workload(node: Node) -> None:
    node.set("ready/master1")
    node.set("ready/worker1")
    node.set("missing-workloads", "deployment/cilium-operator")
    assert "kube-system deployment/cilium-operator does not exist" in node.fails("cluster_ready", **READY)
    node.set("missing-workloads", "")
    node.set("unready-workloads", "daemonset/cilium")
    assert "kube-system daemonset/cilium did not become ready" in node.fails("cluster_ready", **READY)


# --- nfs_export / nfs_unexport -----------------------------------------------------------------


def test_nfs_export_serves_the_directory_once_and_unexport_keeps_the_data(node: Node) -> None:
    inputs = {"MESHLAB_EXPORT_PATH": "/srv/nfs/kubedata", "MESHLAB_ALLOWED_CIDR": "192.168.56.0/24"}
    node.ok("nfs_export", **inputs)
    exports = node.root / "etc/exports.d/meshlab.exports"
    assert exports.read_text() == "/srv/nfs/kubedata 192.168.56.0/24(rw,sync,no_subtree_check,root_squash)\n"
    assert (node.root / "srv/nfs/kubedata").is_dir()
    assert node.calls("exportfs") == ["exportfs -ra"]
    assert count(node.calls("apt-get"), lambda c: "install" in c and "nfs-kernel-server" in c) == 1

    node.forget_calls()
    node.ok("nfs_export", **inputs)
    assert node.calls("apt-get") == []

    (node.root / "srv/nfs/kubedata/pvc-1").mkdir()
    out = node.ok("nfs_unexport", **inputs)
    assert not exports.exists() and (node.root / "srv/nfs/kubedata/pvc-1").is_dir()
    assert "data kept in /srv/nfs/kubedata" in out
