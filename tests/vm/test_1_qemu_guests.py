"""Four QEMU guests brought up by meshlab's own QEMU backend steps: the host preflight, the bridge and
the image, the boot of three lab nodes and of one whose seed is broken on purpose.

The tier's modules run in the order of their numbers and share one set of guests (conftest's
session-wide `vm_lab`): a later module needs what an earlier one brought up.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import yaml

from config.settings import HOST_ONLY_INTERFACE
from tests.vm.conftest import HOST_IP, MISWIRED, STANDIN_HTTP_PORT
from tests.vm.helpers import lab_nodes
from tests.vm.lab import VmLab, progress, seed_with
from tools.render import ROOT

WRONG_MAC = "02:00:5e:00:53:01"  # from the documentation range (RFC 7042)
BRIDGE = "meshlab-vmtier"
BOOTED_TIMEOUT_SECONDS = 900


def forward_rules(lab: VmLab) -> list[str]:
    """iptables' FORWARD chain in the tier's namespace, as `iptables -S` prints it."""
    done = lab.netns.run(["iptables", "-S", "FORWARD"], capture_output=True, check=True)
    return done.stdout.splitlines()


def wrong_lab_mac(stdin: str) -> str:
    """A seed step's stdin with the lab NIC's MAC changed to one no VM of ours has."""
    network = yaml.safe_load(json.loads(stdin)["network-config"])
    match = network["ethernets"][HOST_ONLY_INTERFACE]["match"]
    assert match["macaddress"] != WRONG_MAC
    match["macaddress"] = WRONG_MAC
    return seed_with(stdin, network_config=yaml.safe_dump(network))


def test_the_host_preflight_passes_and_says_how_the_guests_run(vm_lab):
    run = vm_lab.local_step("hosts-preflight-check").check()
    assert run.stdout.startswith("host preflight passed: 4 VMs, 10240 MiB, QEMU with ")
    progress(run.stdout)


def test_the_bridge_and_the_image_are_made_once(vm_lab):
    # Bridged frames pass iptables in the tier's namespace too (bridge-nf-call-iptables is 1 there, as on a
    # host with Docker): the step lets the bridge's own traffic through FORWARD.
    bridge = vm_lab.local_step("hosts-bridge-bridge").check()
    assert bridge.stdout == f"{BRIDGE} created forward-accept"
    assert vm_lab.local_step("hosts-bridge-bridge").check().stdout == f"{BRIDGE} created forward-accept"
    assert forward_rules(vm_lab).count(f"-A FORWARD -i {BRIDGE} -o {BRIDGE} -j ACCEPT") == 1
    addresses = vm_lab.netns.run(["ip", "-4", "-o", "addr", "show", "dev", "meshlab-vmtier"], capture_output=True)
    assert f" {HOST_IP}/24 " in addresses.stdout
    image = vm_lab.local_step("hosts-image-fetch").check()
    assert image.stdout.endswith("-amd64-base.qcow2") and Path(image.stdout).is_file()
    again = vm_lab.local_step("hosts-image-fetch").check()
    assert again.stdout == image.stdout and again.seconds < 5
    # The stand-ins listen on the bridge's address, so they start once the bridge exists.
    standins = subprocess.Popen(
        vm_lab.netns.argv([sys.executable, "-m", "tests.vm.standins", HOST_IP, str(STANDIN_HTTP_PORT)]),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    vm_lab.processes.append(standins)
    assert standins.stdout and "stand-ins ready" in standins.stdout.readline()
    progress(f"STAND-IN NTP and HTTP endpoints on {HOST_IP} (no internet in the tier)")


def test_three_guests_boot_from_their_seeds_and_answer_on_ssh(vm_lab):
    nodes = lab_nodes(vm_lab)
    assert len(nodes) == 3
    for node in [*nodes, MISWIRED]:
        stdin = vm_lab.registration("command:local:Command", f"{node}-seed").revealed_inputs["stdin"]
        vm_lab.local_step(f"{node}-seed", stdin=wrong_lab_mac(stdin) if node == MISWIRED else None).check()
        machine = vm_lab.local_step(f"{node}-vm").check()
        progress(f"{node}: QEMU started ({machine.stdout}); {machine.stderr.strip()}")
    for node in nodes:
        ready = vm_lab.local_step(f"{node}-ssh").check()
        progress(f"{ready.stdout} after {ready.seconds:.0f} s")
    for node in nodes:
        cloud_init = vm_lab.remote_step(f"{node}-cloud-init").check()
        assert cloud_init.stdout.endswith(f"cloud-init done on {node}")
    # A second create leaves a running VM as it is: the same machine, the same UUID.
    for node in nodes:
        first = vm_lab.outputs[f"{node}-vm"]
        assert vm_lab.local_step(f"{node}-vm").check().stdout == first


def test_a_guest_whose_seed_names_the_wrong_mac_fails_its_bring_up(vm_lab):
    """Breaking the seed must fail the bring-up, not pass by luck: the guest boots, but its lab NIC
    takes no address, and the backend's SSH wait fails with its own message."""
    console = (
        Path(vm_lab.config.values["meshlab:imageCacheDir"]) / "qemu" / f"meshlab-vmtier-{MISWIRED}" / "console.log"
    )
    deadline = time.monotonic() + BOOTED_TIMEOUT_SECONDS
    while "login:" not in console.read_text(errors="replace"):
        assert time.monotonic() < deadline, f"{MISWIRED} did not boot within {BOOTED_TIMEOUT_SECONDS} s; see {console}"
        time.sleep(5)
    wait = vm_lab.local_step(f"{MISWIRED}-ssh", environment={"MESHLAB_TIMEOUT_SECONDS": "30"})
    assert wait.returncode != 0
    ip = vm_lab.node_ip(MISWIRED)
    assert f"timed out after 30s waiting for SSH on meshlab-vmtier-{MISWIRED} ({ip}:22)" in wait.stderr
    assert "console.log" in wait.stderr, "the message says where to look"
    vm_lab.local_step(f"{MISWIRED}-vm", delete=True).check()
    vm_lab.local_step(f"{MISWIRED}-seed", delete=True).check()


def test_each_guest_is_the_node_its_seed_describes(vm_lab):
    for node in lab_nodes(vm_lab):
        facts = (
            vm_lab.ssh_retrying(
                node,
                "hostname; ip -o -4 addr show dev hostonly0; ip -o link show dev nat0 >/dev/null && echo nat0; "
                "df -BG --output=size / | tail -1",
            )
            .check()
            .stdout.splitlines()
        )
        assert facts[0] == node
        assert f" {vm_lab.node_ip(node)}/24 " in facts[1]
        assert facts[2] == "nat0"
        # growpart grew the root into the 24 GiB disk (the image's root is well under 2 GiB).
        assert int(facts[3].strip().rstrip("G")) >= 22


def test_the_guests_reach_each_other_and_the_host_over_the_bridge(vm_lab):
    nodes = lab_nodes(vm_lab)
    for node in nodes:
        others = [vm_lab.node_ip(other) for other in nodes if other != node] + [HOST_IP]
        command = " && ".join(f"ping -c 1 -W 5 {ip} >/dev/null" for ip in others)
        vm_lab.ssh_retrying(node, command).check()


def test_a_host_whose_firewall_drops_forwarded_traffic_still_connects_the_guests(vm_lab):
    """Docker sets FORWARD's policy to DROP, and with bridged frames passing iptables the guests could not
    reach each other: the first server comes up, the others never join. The rest of the tier runs so."""
    proc = vm_lab.netns.run(["cat", "/proc/sys/net/bridge/bridge-nf-call-iptables"], capture_output=True)
    assert proc.stdout.strip() == "1", "the namespace must filter bridged traffic for this test to mean anything"
    vm_lab.netns.run(["iptables", "-P", "FORWARD", "DROP"], check=True)
    server, agent = lab_nodes(vm_lab)[:2]
    ping = f"ping -c 1 -W 3 {vm_lab.node_ip(agent)} >/dev/null"
    vm_lab.ssh_retrying(server, ping).check()
    # Without meshlab's rule the trap is real ...
    vm_lab.netns.run(["iptables", "-D", "FORWARD", "-i", BRIDGE, "-o", BRIDGE, "-j", "ACCEPT"], check=True)
    assert vm_lab.ssh_retrying(server, ping).returncode != 0
    # ... and the bridge step, run again as `pulumi up` runs it, puts the rule back.
    assert vm_lab.local_step("hosts-bridge-bridge").check().stdout == f"{BRIDGE} created forward-accept"
    vm_lab.ssh_retrying(server, ping).check()
    assert "-P FORWARD DROP" in forward_rules(vm_lab)
