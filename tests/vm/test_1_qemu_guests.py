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
from tests.vm.lab import progress, seed_with
from tools.render import ROOT

WRONG_MAC = "02:00:5e:00:53:01"  # from the documentation range (RFC 7042)
BOOTED_TIMEOUT_SECONDS = 900


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
    bridge = vm_lab.local_step("hosts-bridge-bridge").check()
    assert bridge.stdout == "meshlab-vmtier created"
    assert vm_lab.local_step("hosts-bridge-bridge").check().stdout == "meshlab-vmtier created"
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
        stdin = vm_lab.registration("command:local:Command", f"{node}-seed").inputs["stdin"]
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
