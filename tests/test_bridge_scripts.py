"""The QEMU backend's bridge steps on a host that filters bridged traffic (br_netfilter with
bridge-nf-call-iptables=1, as Docker, ufw and firewalld set it): the lab bridge's own traffic is let
through iptables' FORWARD chain, once, and the rule goes with the bridge. Against a fake `ip` and
`iptables` (tests/fakes/bridge/fake_net) and a fake /proc/sys; the VM tier does the same for real in
its network namespace, with FORWARD's policy at DROP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from components.hosts.qemu.scripts import render_script
from tests.test_host_scripts import BASH

FAKE = Path(__file__).parent / "fakes" / "bridge" / "fake_net"
BRIDGE = "meshlab-lab"
RULE = ["-i", BRIDGE, "-o", BRIDGE, "-j", "ACCEPT"]
INPUTS = {"MESHLAB_BRIDGE": BRIDGE, "MESHLAB_HOST_IP": "192.168.56.1", "MESHLAB_PREFIX": "24"}


class Host:
    def __init__(self, tmp_path: Path, *, filtered: bool, iptables: bool = True) -> None:
        self.state = tmp_path / "net.json"
        self.log = tmp_path / "calls.log"
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        for command in ("ip", *(["iptables"] if iptables else [])):
            (bin_dir / command).symlink_to(FAKE)
        proc = tmp_path / "proc-sys" / "net" / "bridge"
        proc.mkdir(parents=True)
        (proc / "bridge-nf-call-iptables").write_text("1\n" if filtered else "0\n")
        self.env = {
            "PATH": os.pathsep.join([str(bin_dir), str(Path(sys.executable).parent), "/usr/bin", "/bin"]),
            "FAKE_NET_STATE": str(self.state),
            "FAKE_NET_LOG": str(self.log),
            "MESHLAB_PROC_SYS": str(tmp_path / "proc-sys"),
        }

    def run(self, step: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [BASH, "-c", render_script(step)],
            env={**self.env, **INPUTS, **extra},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    def forward(self) -> list[list[str]]:
        rules: list[list[str]] = json.loads(self.state.read_text())["forward"]
        return rules


def test_a_filtering_host_gets_one_forward_rule_for_the_bridge_and_destroy_takes_it(tmp_path):
    host = Host(tmp_path, filtered=True)
    created = host.run("bridge_create")
    assert created.returncode == 0, created.stderr
    assert created.stdout == f"{BRIDGE} created forward-accept\n"
    assert host.forward() == [RULE]
    again = host.run("bridge_create", PULUMI_COMMAND_STDOUT=created.stdout)
    assert again.stdout == created.stdout
    assert host.forward() == [RULE], "a second run adds no second rule"

    deleted = host.run("bridge_delete", PULUMI_COMMAND_STDOUT=created.stdout)
    assert deleted.returncode == 0, deleted.stderr
    assert host.forward() == []
    assert json.loads(host.state.read_text())["links"] == {}
    assert host.run("bridge_delete", PULUMI_COMMAND_STDOUT=created.stdout).returncode == 0


def test_an_adopted_bridge_keeps_existing_but_loses_meshlabs_rule(tmp_path):
    host = Host(tmp_path, filtered=True)
    host.state.write_text(json.dumps({"links": {BRIDGE: ["192.168.56.1/24"]}, "forward": []}))
    adopted = host.run("bridge_create")
    assert adopted.stdout == f"{BRIDGE} existing forward-accept\n"
    host.run("bridge_delete", PULUMI_COMMAND_STDOUT=adopted.stdout)
    assert host.forward() == []
    assert BRIDGE in json.loads(host.state.read_text())["links"]


@pytest.mark.parametrize("iptables", [True, False])
def test_a_host_that_does_not_filter_bridged_traffic_gets_no_rule(tmp_path, iptables):
    host = Host(tmp_path, filtered=False, iptables=iptables)
    created = host.run("bridge_create")
    assert created.stdout == f"{BRIDGE} created\n"
    assert "iptables" not in host.log.read_text()


def test_a_bridge_made_before_this_version_is_deleted_as_before(tmp_path):
    """A state written by the create step before the rule existed: "BRIDGE created", no third field."""
    host = Host(tmp_path, filtered=True)
    host.run("bridge_create")
    host.state.write_text(json.dumps({"links": {BRIDGE: ["192.168.56.1/24"]}, "forward": [["-i", "other"]]}))
    deleted = host.run("bridge_delete", PULUMI_COMMAND_STDOUT=f"{BRIDGE} created")
    assert deleted.returncode == 0, deleted.stderr
    assert host.forward() == [["-i", "other"]]
    assert json.loads(host.state.read_text())["links"] == {}
