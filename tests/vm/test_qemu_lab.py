"""Three QEMU guests brought up, used and torn down by meshlab's own steps, in order.

The tests of this module run in file order and share one lab (a later one needs what an earlier
one brought up); each step runs twice and the second run must change nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import yaml

from config.settings import HOST_ONLY_INTERFACE
from tests.test_cluster_layer import exported
from tests.vm.conftest import HOST_IP, MISWIRED, STANDIN_HTTP_PORT, qemu_pids
from tests.vm.lab import VmLab, progress, seed_with
from tools.render import ROOT

# Stand-ins for the internet endpoints the node preflight reaches (RKE2's installer, the
# registries): the tier has no internet. A URL with a port, as a proxy or mirror would be.
STANDIN_ENDPOINTS = f"http://{HOST_IP}:{STANDIN_HTTP_PORT}/get.rke2.io http://{HOST_IP}:{STANDIN_HTTP_PORT}/registry"

WRONG_MAC = "02:00:5e:00:53:01"  # from the documentation range (RFC 7042)
BOOTED_TIMEOUT_SECONDS = 900

# What the node steps may change on a node; the second run of a step must leave all of it as it was.
FINGERPRINT = (
    "sudo sh -c 'find /etc /var/lib/rancher /srv /home -xdev \\( -type f -o -type d \\) "
    "-newer /run/meshlab-vm-tier-mark 2>/dev/null | grep -v -e ^/etc/resolv.conf -e /.ssh/ -e ^/home/[^/]*$ "
    "| sort; systemctl show -p ActiveEnterTimestamp systemd-networkd nfs-server'"
)


def running(pid: int) -> bool:
    """Whether process `pid` runs (a zombie has ended; only its parent has not collected it yet)."""
    try:
        return "\nState:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False


def lab_nodes(lab: VmLab) -> list[str]:
    """The three nodes the lab's steps run on (the miswired one aside), the server first."""
    return [node for node in lab.vm_names() if node != MISWIRED]


def wrong_lab_mac(stdin: str) -> str:
    """A seed step's stdin with the lab NIC's MAC changed to one no VM of ours has."""
    network = yaml.safe_load(json.loads(stdin)["network-config"])
    match = network["ethernets"][HOST_ONLY_INTERFACE]["match"]
    assert match["macaddress"] != WRONG_MAC
    match["macaddress"] = WRONG_MAC
    return seed_with(stdin, network_config=yaml.safe_dump(network))


def mark(lab: VmLab, node: str) -> None:
    lab.ssh_retrying(node, "sudo touch /run/meshlab-vm-tier-mark && sleep 1").check()


def changed_since_mark(lab: VmLab, node: str) -> str:
    return lab.ssh_retrying(node, FINGERPRINT).check().stdout


def twice_remote(lab: VmLab, name: str, node: str, **kwargs: object) -> None:
    """Run remote step `name`, then again: the second run must succeed and change nothing."""
    lab.remote_step(name, **kwargs).check()  # type: ignore[arg-type]
    mark(lab, node)
    before = changed_since_mark(lab, node)
    lab.remote_step(name, **kwargs).check()  # type: ignore[arg-type]
    after = changed_since_mark(lab, node)
    new = sorted(set(after.splitlines()) - set(before.splitlines()))
    assert not new, f"the second run of {name} changed {new}"


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
        # growpart grew the root into the 20 GiB disk (the image's root is well under 2 GiB).
        assert int(facts[3].strip().rstrip("G")) >= 18


def test_the_guests_reach_each_other_and_the_host_over_the_bridge(vm_lab):
    nodes = lab_nodes(vm_lab)
    for node in nodes:
        others = [vm_lab.node_ip(other) for other in nodes if other != node] + [HOST_IP]
        command = " && ".join(f"ping -c 1 -W 5 {ip} >/dev/null" for ip in others)
        vm_lab.ssh_retrying(node, command).check()


def test_node_preflight_passes_with_stand_ins_and_twice(vm_lab):
    for node in lab_nodes(vm_lab):
        twice_remote(vm_lab, f"cluster-{node}-preflight", node, replace={"MESHLAB_ENDPOINTS": STANDIN_ENDPOINTS})


def test_node_prepare_twice(vm_lab):
    for node in lab_nodes(vm_lab):
        twice_remote(vm_lab, f"cluster-{node}-prepare", node)
    server = lab_nodes(vm_lab)[0]
    etcd = vm_lab.ssh_retrying(server, "getent passwd etcd && getent group etcd").check()
    assert etcd.stdout.count("etcd") >= 2


def _copies(vm_lab: VmLab, node: str) -> list[str]:
    return [
        r.name for r in vm_lab.rendering.of_type("command:remote:CopyToRemote") if r.name.startswith(f"cluster-{node}-")
    ]


def test_files_are_placed_twice_and_removed(vm_lab):
    for node in lab_nodes(vm_lab):
        copies = _copies(vm_lab, node)
        assert copies, f"{node} has no files to place"
        for copy in copies:
            vm_lab.copy_step(copy).check()
        twice_remote(vm_lab, f"cluster-{node}-files", node)
        step = vm_lab.registration("command:remote:Command", f"cluster-{node}-files")
        destinations = [line.split()[1] for line in _exported(step.inputs["create"], "MESHLAB_FILES").splitlines()]
        assert len(destinations) == len(copies)
        placed = " && ".join(f"sudo test -f {path}" for path in destinations)
        vm_lab.ssh_retrying(node, placed).check()
    node = lab_nodes(vm_lab)[-1]
    step = vm_lab.registration("command:remote:Command", f"cluster-{node}-files")
    destinations = [line.split()[1] for line in _exported(step.inputs["create"], "MESHLAB_FILES").splitlines()]
    for _ in range(2):  # a second delete finds nothing and is fine
        vm_lab.remote_step(f"cluster-{node}-files", delete=True).check()
    gone = " && ".join(f"! sudo test -e {path}" for path in destinations)
    vm_lab.ssh_retrying(node, gone).check()


def _exported(command: str, name: str) -> str:
    """The value a remote step's script exports as `name`."""
    return exported(command)[name]


def test_the_first_server_exports_nfs_and_another_node_mounts_it(vm_lab):
    server, client = lab_nodes(vm_lab)[0], lab_nodes(vm_lab)[1]
    twice_remote(vm_lab, "cluster-nfs-export", server)
    export = _exported(
        vm_lab.registration("command:remote:Command", "cluster-nfs-export").inputs["create"], "MESHLAB_EXPORT_PATH"
    )
    mount = (
        f"sudo mkdir -p /mnt/meshlab && sudo mount -t nfs4 {vm_lab.node_ip(server)}:{export} /mnt/meshlab "
        "&& echo from-the-client | sudo tee /mnt/meshlab/vm-tier.txt >/dev/null && sudo umount /mnt/meshlab"
    )
    vm_lab.ssh_retrying(client, mount).check()
    seen = vm_lab.ssh_retrying(server, f"sudo cat {export}/vm-tier.txt").check()
    assert seen.stdout == "from-the-client"
    vm_lab.remote_step("cluster-nfs-export", delete=True).check()


def test_destroy_leaves_nothing(vm_lab):
    nodes = lab_nodes(vm_lab)
    cache = Path(vm_lab.config.values["meshlab:imageCacheDir"])
    pids = qemu_pids(cache)
    assert len(pids) == 3
    for node in nodes:
        for _ in range(2):  # a second delete finds nothing and is fine
            vm_lab.local_step(f"{node}-vm", delete=True).check()
            vm_lab.local_step(f"{node}-seed", delete=True).check()
    for _ in range(2):
        vm_lab.local_step("hosts-bridge-bridge", delete=True).check()
    for process in vm_lab.processes:
        process.terminate()
        process.wait(10)
    assert [pid for pid in pids if running(pid)] == [], "every QEMU process must have ended"
    assert list(cache.glob("qemu/*")) == []
    assert list(cache.glob("seeds/*")) == []
    assert vm_lab.netns.links() == ["lo"], "no tap or bridge may be left"
