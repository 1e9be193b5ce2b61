"""The QEMU hosts backend (meshlab:hypervisor qemu) as the real program registers it, under mocks.

It must be a sibling of the VirtualBox backend: its own components and steps, the same seed and
image, and the same `HostsOutput`, so nothing above the hosts layer changes.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.hosts.image import cloud_image
from components.hosts.qemu.vm import tap_name
from config import versions
from config.loader import StackConfig, settings_from_config
from config.settings import HOST_ONLY_INTERFACE, NAT_INTERFACE, promotable_keys
from config.validation import SettingsError
from tests.conftest import RenderWith, expected_resource_count
from tests.test_host_scripts import env, run  # noqa: F401 - env is a fixture
from tools.render import ROOT, Registration, Rendering, with_overrides

QEMU = {"meshlab:hypervisor": "qemu"}
VIRTUALBOX_TYPES = {
    "meshlab:hosts:LabHosts",
    "meshlab:hosts:HostPreflight",
    "meshlab:hosts:HostOnlyNetwork",
    "meshlab:hosts:VirtualBoxVm",
}
LOCAL = "command:local:Command"


@pytest.fixture(scope="module")
def qemu_lab(render_with: RenderWith) -> Rendering:
    return render_with(QEMU)


def _command(rendering: Rendering, name: str) -> Registration:
    [command] = [r for r in rendering.of_type(LOCAL) if r.name == name]
    return command


def test_a_qemu_lab_has_its_own_hosts_components_and_no_virtualbox_one(qemu_lab, stack_configs):
    settings = settings_from_config(with_overrides(stack_configs["lab"], QEMU))
    types = {r.type for r in qemu_lab.resources()}
    assert not types & VIRTUALBOX_TYPES
    [hosts] = qemu_lab.of_type("meshlab:hosts:QemuHosts")
    assert hosts.name == "hosts"
    assert len(qemu_lab.of_type("meshlab:hosts:QemuPreflight")) == 1
    assert len(qemu_lab.of_type("meshlab:hosts:QemuBridge")) == 1
    vms = qemu_lab.of_type("meshlab:hosts:QemuVm")
    assert {vm.name: vm.inputs["ip"] for vm in vms} == {n.name: str(n.ip) for n in settings.topology.nodes}
    # One for one, the VirtualBox stack's resources: the same count, so the same layers above.
    topology = settings.topology
    assert len(qemu_lab.resources()) == expected_resource_count(
        len(topology.servers), len(topology.agents), plugged_ca=settings.mesh.mesh_plugged_ca
    )


def _above_hosts(rendering: Rendering) -> dict[str, tuple[str, Any]]:
    hosts = {r.urn for r in rendering.resources() if r.name.startswith("hosts") or "meshlab:hosts:" in r.urn}
    return {
        r.name: (r.type, r.inputs)
        for r in rendering.resources()
        if r.urn not in hosts and r.type not in {"pulumi:pulumi:Stack"}
    }


def test_nothing_above_the_hosts_layer_changes(qemu_lab, rendered):
    virtualbox, qemu = _above_hosts(rendered["lab"]), _above_hosts(qemu_lab)
    assert len(virtualbox) > 100, "the comparison must cover the cluster and the layers above it"
    assert qemu == virtualbox


def test_the_cluster_steps_wait_for_the_qemu_vms(qemu_lab):
    vms = qemu_lab.of_type("meshlab:hosts:QemuVm")
    assert len(vms) == 6
    for vm in vms:
        [cloud_init] = [r for r in qemu_lab.descendants(vm.urn) if r.name == f"{vm.name}-cloud-init"]
        [machine] = [r for r in qemu_lab.descendants(vm.urn) if r.name == f"{vm.name}-vm"]
        steps = [r for r in qemu_lab.resources() if r.name.startswith(f"cluster-{vm.name}-")]
        assert len(steps) >= 6
        for step in steps:
            assert step.deleted_with == machine.urn, step.name
        [prepare] = [r for r in steps if r.name == f"cluster-{vm.name}-prepare"]
        assert cloud_init.urn in prepare.dependencies


def test_each_vm_boots_the_seed_that_matches_its_nics(qemu_lab):
    for vm in qemu_lab.of_type("meshlab:hosts:QemuVm"):
        machine = _command(qemu_lab, f"{vm.name}-vm")
        environment = machine.inputs["environment"]
        seed = _command(qemu_lab, f"{vm.name}-seed")
        network = yaml.safe_load(json.loads(seed.revealed_inputs["stdin"])["network-config"])
        ethernets = network["ethernets"]
        # The seed matches NICs by MAC without colons or with; QEMU takes them with colons.
        mac = {name: nic["match"]["macaddress"].replace(":", "") for name, nic in ethernets.items()}
        assert re.fullmatch(r"([0-9a-f]{2}:){5}[0-9a-f]{2}", environment["MESHLAB_MAC_LAB"])
        assert environment["MESHLAB_MAC_NAT"].replace(":", "") == mac[NAT_INTERFACE]
        assert environment["MESHLAB_MAC_LAB"].replace(":", "") == mac[HOST_ONLY_INTERFACE]
        assert environment["MESHLAB_BRIDGE"] == "meshlab-lab"
        assert environment["MESHLAB_TAP"] == tap_name(vm.inputs["vmName"])
        assert environment["MESHLAB_BASE_DISK"].endswith(".qcow2")
        assert machine.inputs["create"] != machine.inputs["delete"]
        own_body = machine.inputs["create"].split("# --- qemu_vm_create ---")[1]
        assert "qemu-system" in machine.inputs["create"] and "VBoxManage" not in own_body


def test_tap_names_fit_linux_and_differ_per_vm():
    names = {tap_name(f"meshlab-{stack}-{node}") for stack in ("lab", "staging") for node in ("server1", "agent1")}
    assert len(names) == 4
    assert all(len(name) <= 15 for name in names)


def test_the_bridge_step_is_deleted_only_by_its_own_script(qemu_lab):
    bridge = _command(qemu_lab, "hosts-bridge-bridge")
    assert bridge.inputs["environment"] == {
        "MESHLAB_BRIDGE": "meshlab-lab",
        "MESHLAB_HOST_IP": "192.168.56.1",
        "MESHLAB_PREFIX": "24",
    }
    assert "ip link add name" in bridge.inputs["create"]
    assert "ip link delete" in bridge.inputs["delete"]
    assert bridge.inputs["addPreviousOutputInEnv"] is True


def test_the_settings_choose_the_bridge_accelerator_and_image(render_with):
    image = "/srv/images/debian.qcow2"
    digest = "ab" * 32
    rendering = render_with(
        {
            **QEMU,
            "meshlab:qemuBridge": "br-lab",
            "meshlab:qemuAccelerator": "tcg",
            "meshlab:imageFile": image,
            "meshlab:imageSha256": digest,
        }
    )
    fetch = _command(rendering, "hosts-image-fetch").inputs["environment"]
    assert fetch["MESHLAB_IMAGE_URL"] == f"file://{image}"
    assert fetch["MESHLAB_IMAGE_SHA256"] == digest
    assert fetch["MESHLAB_IMAGE_FORMAT"] == "qcow2"
    assert fetch["MESHLAB_BASE_DISK"] == f"local-{digest[:16]}-amd64-base.qcow2"
    vm = _command(rendering, "master1-vm").inputs["environment"]
    assert (vm["MESHLAB_BRIDGE"], vm["MESHLAB_ACCELERATOR"]) == ("br-lab", "tcg")
    assert vm["MESHLAB_BASE_DISK"] == fetch["MESHLAB_BASE_DISK"]


def test_the_virtualbox_image_stays_the_pinned_download(stack_configs):
    settings = settings_from_config(stack_configs["lab"])
    assert cloud_image(settings) == versions.UBUNTU_IMAGES["amd64"]


def _problems(stack_configs: dict[str, StackConfig], overrides: dict[str, Any]) -> list[str]:
    try:
        settings_from_config(with_overrides(stack_configs["lab"], overrides))
    except SettingsError as error:
        return [str(problem) for problem in error.problems]
    return []


HOSTS_CASES: list[tuple[str, dict[str, Any], list[str]]] = [
    (
        "a bridge on VirtualBox",
        {"meshlab:qemuBridge": "br0"},
        ["meshlab:qemuBridge = br0: is read only with meshlab:hypervisor qemu"],
    ),
    (
        "an accelerator on VirtualBox",
        {"meshlab:qemuAccelerator": "kvm"},
        ["meshlab:qemuAccelerator = kvm: is read only with meshlab:hypervisor qemu"],
    ),
    (
        "a bridge name Linux refuses",
        {**QEMU, "meshlab:qemuBridge": "meshlab-bridge-lab"},
        ["meshlab:qemuBridge = meshlab-bridge-lab: not a Linux interface name (letters, digits, _.-; 15 at most)"],
    ),
    (
        "an image without its checksum",
        {"meshlab:imageFile": "/srv/a.qcow2"},
        [
            "meshlab:imageFile = /srv/a.qcow2: set both meshlab:imageFile and meshlab:imageSha256, "
            "or neither to use the pinned Ubuntu image"
        ],
    ),
    (
        "a checksum without its image",
        {"meshlab:imageSha256": "0" * 64},
        [
            f"meshlab:imageSha256 = {'0' * 64}: set both meshlab:imageFile and meshlab:imageSha256, "
            "or neither to use the pinned Ubuntu image"
        ],
    ),
    (
        "a relative image path of an unknown format",
        {"meshlab:imageFile": "a.raw", "meshlab:imageSha256": "0" * 64},
        [
            "meshlab:imageFile = a.raw: must be an absolute path",
            "meshlab:imageFile = a.raw: must end in one of .qcow2, .img, .vmdk (the format is read from it)",
        ],
    ),
    (
        "a checksum that is no SHA-256",
        {"meshlab:imageFile": "/srv/a.img", "meshlab:imageSha256": "ABC"},
        ["meshlab:imageSha256 = ABC: must be 64 lowercase hexadecimal digits"],
    ),
]


@pytest.mark.parametrize(("case", "overrides", "expected"), HOSTS_CASES, ids=[c[0] for c in HOSTS_CASES])
def test_invalid_hosts_settings_get_exactly_their_problems(stack_configs, case, overrides, expected):
    assert _problems(stack_configs, overrides) == expected


def test_an_unknown_hypervisor_is_refused_by_name(stack_configs):
    [problem] = _problems(stack_configs, {"meshlab:hypervisor": "vmware"})
    assert problem.startswith("meshlab:hypervisor = vmware: ")
    assert "'virtualbox', 'qemu' or 'existing'" in problem


def test_a_qemu_bridge_takes_a_subnet_virtualbox_would_refuse(stack_configs):
    subnet = {
        "meshlab:hostOnlyCidr": "198.51.100.0/24",
        "meshlab:servers": ["lab-server1=198.51.100.11", "lab-server2=198.51.100.12", "lab-server3=198.51.100.13"],
        "meshlab:agents": ["lab-agent1=198.51.100.21", "lab-agent2=198.51.100.22", "lab-agent3=198.51.100.23"],
        "meshlab:apiVip": "198.51.100.10",
        "meshlab:metallbPool": "198.51.100.200-198.51.100.250",
        "meshlab:ingressAddress": "198.51.100.200",
    }
    refused = _problems(stack_configs, subnet)
    assert any("VirtualBox only allows host-only networks" in problem for problem in refused)
    assert _problems(stack_configs, {**QEMU, **subnet}) == []


def test_the_hosts_backend_is_never_promoted():
    backend_keys = {
        "meshlab:hypervisor",
        "meshlab:qemuBridge",
        "meshlab:qemuAccelerator",
        "meshlab:imageFile",
        "meshlab:imageSha256",
    }
    promoted = set(promotable_keys())
    assert promoted, "promotion must carry something"
    assert not backend_keys & promoted


def test_a_qemu_lab_passes_the_policy_pack(tmp_path):
    stack = yaml.safe_load((ROOT / "Pulumi.lab.yaml").read_text())
    stack["config"]["meshlab:hypervisor"] = "qemu"
    path = tmp_path / "Pulumi.lab.yaml"
    path.write_text(yaml.safe_dump(stack))
    result = subprocess.run(
        [sys.executable, "-m", "tools.plan", "lab", "--config-file", str(path), "--policy", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["violations"] == []


# The image step, run for real against the fake VBoxManage, reads a local image through its file:// URL.


def test_a_local_image_is_verified_and_converted(env, tmp_path):  # noqa: F811 - env is the fixture
    image = tmp_path / "local.vmdk"
    image.write_bytes(b"not really a vmdk")
    digest = hashlib.sha256(image.read_bytes()).hexdigest()
    step = {"MESHLAB_IMAGE_URL": f"file://{image}", "MESHLAB_IMAGE_FORMAT": "vmdk", "MESHLAB_BASE_DISK": "local.vdi"}
    wrong = run("image_fetch", {**env, **step}, MESHLAB_IMAGE_SHA256="0" * 64)
    assert wrong.returncode != 0
    assert f"SHA-256 mismatch for file://{image}: expected {'0' * 64}, got {digest}" in wrong.stderr
    done = run("image_fetch", {**env, **step}, MESHLAB_IMAGE_SHA256=digest)
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()).is_file()
    assert done.stdout.strip().endswith("/images/local.vdi")


def test_the_vm_steps_keep_what_real_guests_taught(qemu_lab):
    """Found by the real-VM tier: cloud kernels (Debian's linux-image-cloud) have no AHCI, so the seed
    CD must be on virtio-scsi; and a QEMU process's command line empties before it ends, so a delete
    must wait for the process itself, not for its command line."""
    machine = _command(qemu_lab, "master1-vm")
    create = machine.inputs["create"].split("# --- qemu_vm_create ---")[1]
    assert "-device virtio-scsi-pci" in create and '"scsi-cd,drive=seed"' in create
    assert "media=cdrom" in create and "if=none" in create
    delete = machine.inputs["delete"].split("# --- qemu_vm_delete ---")[1]
    assert 'pid_alive "$pid" || break' in delete
    assert '! pid_alive "$pid" || die' in delete


def test_every_vm_starts_with_the_qmp_monitor_checkpoints_use(qemu_lab, tmp_path):
    """tools/checkpoint.py pauses, saves and loads a VM through its QMP monitor, at the path the create
    step records in the VM's folder: a short one when the folder's own would not fit a UNIX socket."""
    create = _command(qemu_lab, "master1-vm").inputs["create"]
    assert '-qmp "unix:${monitor//,/,,},server=on,wait=off"' in create
    assert 'printf \'%s\\n\' "$monitor" >"$dir/qmp"' in create
    from components.hosts.scripts import SCRIPTS  # noqa: PLC0415

    helpers = SCRIPTS.render("wait_ssh").split("# --- wait_ssh ---")[0]
    for directory, short in ((tmp_path / "qemu" / "meshlab-lab-master1", False), (tmp_path / ("d" * 120), True)):
        path = subprocess.run(
            ["bash", "-c", helpers + f'qemu_monitor_path "{directory}"'], capture_output=True, text=True, check=True
        ).stdout
        assert len(path) <= 107 and path.endswith(".sock")
        assert path.startswith(str(directory)) != short
