"""The real-VM tier: QEMU guests booted by meshlab's own QEMU backend steps, inside a network
namespace this tier creates, from a Debian image built from Debian packages (the STAND-IN for
Ubuntu's cloud image, which is not reachable here). `make test-vm`; `make vm` builds the image.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from config.loader import StackConfig
from tests.vm.lab import VmLab, progress
from tests.vm.netns import NetworkNamespace
from tools.render import ROOT

STACK = "vmtier"
# TEST-NET-2 (RFC 5737): no private range, and it exists only inside the tier's namespace.
SUBNET = "198.51.100.0/24"
HOST_IP = "198.51.100.1"
STANDIN_HTTP_PORT = 8080
# A fourth guest, booted alongside the lab with a seed the tier breaks (its lab NIC's MAC wrong): its
# bring-up must fail. It is an agent of the stack so that the backend's own steps make it.
MISWIRED = "vm-miswired"
HOST_TOOLS = ("qemu-system-x86_64", "qemu-img", "ip", "ssh", "ssh-keygen", "curl", "mmdebstrap")


@pytest.fixture(scope="session")
def host_tools() -> None:
    """What the tier needs on this machine; `make vm` (tests/vm/bootstrap.sh) installs it."""
    missing = [tool for tool in HOST_TOOLS if not shutil.which(tool)]
    assert not missing, f"missing {', '.join(missing)}: run `make vm` (tests/vm/bootstrap.sh) first"
    assert os.geteuid() == 0, "the tier creates a network namespace, a bridge and taps: run it as root"


@pytest.fixture(scope="session")
def guest_image(host_tools: None) -> tuple[str, str]:
    """The stand-in guest image (path, SHA-256), built once and cached by its package list."""
    progress("STAND-IN: a Debian bookworm guest image built from Debian packages, in place of Ubuntu's cloud image")
    result = subprocess.run(
        ["bash", str(ROOT / "tests" / "vm" / "guest_image.sh")], stdout=subprocess.PIPE, text=True, check=False
    )
    assert result.returncode == 0, "building the guest image failed (its progress is above)"
    path, digest = result.stdout.strip().split("\t")
    return path, digest


@pytest.fixture(scope="session")
def ssh_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A key pair of the tier's own, given to the stack as meshlab:sshPublicKey/sshPrivateKey."""
    directory = tmp_path_factory.mktemp("ssh")
    key = directory / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key, key.with_suffix(".pub").read_text().strip()


def tier_config(image: tuple[str, str], public_key: str, private_key: str, cache: Path) -> StackConfig:
    """The lab stack on QEMU: three nodes (the first server exports NFS) and the miswired one, the
    stand-in image, the tier's subnet and NTP stand-in, hosts and cluster layers only (phase 1)."""
    base = yaml.safe_load((ROOT / "Pulumi.lab.yaml").read_text())["config"]
    values = {
        **base,
        "meshlab:rolloutPhase": 1,
        "meshlab:hypervisor": "qemu",
        "meshlab:imageFile": image[0],
        "meshlab:imageSha256": image[1],
        "meshlab:imageCacheDir": str(cache),
        "meshlab:servers": ["vm-server1=198.51.100.11"],
        "meshlab:agents": ["vm-agent1=198.51.100.21", "vm-agent2=198.51.100.22", f"{MISWIRED}=198.51.100.31"],
        # More than the existing-hosts tier stack asks to be free (20 GiB, the least meshlab accepts).
        "meshlab:serverDiskGib": 24,
        "meshlab:agentDiskGib": 24,
        "meshlab:agentMemoryMib": 2048,
        "meshlab:hostOnlyCidr": SUBNET,
        "meshlab:apiVip": "198.51.100.10",
        "meshlab:metallbPool": "198.51.100.200-198.51.100.250",
        "meshlab:ntpServers": [HOST_IP],
        "meshlab:sshPublicKey": public_key,
        "meshlab:sshPrivateKey": private_key,
    }
    values.pop("meshlab:ingressAddress", None)
    return StackConfig(values, frozenset({"meshlab:sshPrivateKey"}))


# The QEMU stack's settings that only VMs read: the existing-hosts stack on the same guests drops them.
VM_ONLY_KEYS = ("meshlab:sshPublicKey", "meshlab:ntpServers", "meshlab:imageFile", "meshlab:imageSha256")
EXISTING_STACK = "vmexisting"


def existing_config(tier: StackConfig, **overrides: object) -> StackConfig:
    """The tier's three lab guests as existing hosts: the same names, addresses and login (the key on its
    own), their lab NIC as meshlab:nodeInterface, and as sizes the least that meshlab accepts."""
    values = {key: value for key, value in tier.values.items() if key not in VM_ONLY_KEYS}
    agents = [agent for agent in tier.values["meshlab:agents"] if not agent.startswith(f"{MISWIRED}=")]
    values.update(
        {
            "meshlab:hypervisor": "existing",
            "meshlab:nodeInterface": "hostonly0",
            "meshlab:agents": agents,
            "meshlab:serverDiskGib": 20,
            "meshlab:agentDiskGib": 20,
            **overrides,
        }
    )
    return StackConfig({key: value for key, value in values.items() if value is not None}, tier.secret_keys)


@pytest.fixture(scope="session")
def vm_lab(
    guest_image: tuple[str, str], ssh_key: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[VmLab]:
    """The rendered tier stack and its namespace, for the whole session (the modules share the guests);
    on the way out, whatever the tests left running is stopped by the PIDs its VMs recorded, and the
    namespace is deleted."""
    key, public_key = ssh_key
    cache = tmp_path_factory.mktemp("meshlab-cache")
    netns = NetworkNamespace(f"meshlab-vm-{os.getpid()}")
    netns.create()
    lab = VmLab(tier_config(guest_image, public_key, key.read_text(), cache), STACK, netns, key, "meshlab")
    progress(f"the tier's guests: {', '.join(lab.vm_names())}")
    try:
        yield lab
    finally:
        for process in lab.processes:
            if process.poll() is None:
                process.terminate()
                process.wait(10)
        stop_leftovers(cache)
        netns.delete()
        slowest = sorted(lab.timings, key=lambda timing: -timing[1])[:8]
        progress("slowest steps: " + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in slowest))


def qemu_pids(cache: Path) -> list[int]:
    """The PIDs of the QEMU processes the VMs' pid files name that are still alive."""
    pids = []
    for pid_file in cache.glob("qemu/*/pid"):
        pid = int(pid_file.read_text().strip() or 0)
        if pid and Path(f"/proc/{pid}").exists():
            pids.append(pid)
    return pids


def stop_leftovers(cache: Path) -> None:
    for pid in qemu_pids(cache):
        progress(f"stopping QEMU process {pid} left by a failed test")
        os.kill(pid, 9)


@pytest.fixture(scope="session")
def existing_lab(vm_lab: VmLab) -> VmLab:
    """The existing-hosts stack over the QEMU stack's guests, in the same namespace, with the same key;
    the tier's own logins check the keys the guests' seeds installed."""
    return VmLab(
        existing_config(vm_lab.config),
        EXISTING_STACK,
        vm_lab.netns,
        vm_lab.private_key,
        vm_lab.user,
        guest_host_keys={node: vm_lab.host_key(node) for node in vm_lab.vm_names()},
    )
