"""Lab checkpoints (tools/checkpoint.py) against fakes: QEMU VMs with a fake QMP monitor and
`qemu-img`, VirtualBox VMs in the fake VBoxManage, and the Pulumi CLI's state in a fake `pulumi`.
What is called, in which order (every VM paused before any is saved or loaded), what comes back,
and how the Pulumi state is kept in step with the VMs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from config.loader import read_stack_file, settings_from_config
from tests.fakes.qemu.monitor import FakeQemuVm
from tools import checkpoint
from tools.checkpoint import CheckpointError, Lab, PulumiStack, Qemu, VirtualBox, lab_for, main
from tools.cli import ROOT
from tools.render import with_overrides

FAKES = ROOT / "tests" / "fakes"
STATE = {"deployment": {"manifest": {"time": "2026-12-06T10:00:00Z"}, "resources": []}}


def _state(time: str, identities: dict[str, str]) -> dict[str, Any]:
    prefix = "urn:pulumi:lab::meshlab::meshlab:hosts:QemuVm$command:local:Command::"
    resources = [
        {"urn": prefix + step, "type": "command:local:Command", "outputs": {"stdout": uuid}}
        for step, uuid in identities.items()
    ]
    return {"version": 3, "deployment": {"manifest": {"time": time}, "resources": resources}}


class Harness:
    """A stack (lab's topology) on fake VMs, with the fake tools first on PATH."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hypervisor: str) -> None:
        self.tmp = tmp_path
        self.calls: list[tuple[str, str]] = []
        self.bin = tmp_path / "bin"
        self.bin.mkdir()
        for name, fake in (
            ("qemu-img", FAKES / "qemu" / "qemu-img"),
            ("VBoxManage", FAKES / "VBoxManage"),
            ("pulumi", FAKES / "pulumi" / "fake_pulumi"),
        ):
            # This interpreter, not `env python3`: a version manager's shim costs 100 ms a call.
            (self.bin / name).write_text(f'#!/bin/sh\nexec "{sys.executable}" "{fake}" "$@"\n')
            (self.bin / name).chmod(0o755)
        self.pulumi_home = tmp_path / "pulumi"
        self.pulumi_home.mkdir()
        for name, value in {
            "PATH": f"{self.bin}{os.pathsep}{os.environ['PATH']}",
            "FAKE_QEMU_LOG": str(tmp_path / "qemu.log"),
            "FAKE_PULUMI_DIR": str(self.pulumi_home),
            "FAKE_PULUMI_LOG": str(tmp_path / "pulumi.log"),
            "FAKE_VBOX_STATE": str(tmp_path / "vbox.json"),
            "FAKE_VBOX_LOG": str(tmp_path / "vbox.log"),
        }.items():
            monkeypatch.setenv(name, value)
        self.config_file = tmp_path / "Pulumi.lab.yaml"
        shutil.copyfile(ROOT / "Pulumi.lab.yaml", self.config_file)
        config = read_stack_file(self.config_file, "lab")
        # Three VMs: enough to see every one paused before any is saved, and quick with the fakes.
        three = {
            "meshlab:hypervisor": hypervisor,
            "meshlab:servers": ["master1=192.168.56.11"],
            "meshlab:agents": ["worker1=192.168.56.21", "worker2=192.168.56.22"],
        }
        self.settings = settings_from_config(with_overrides(config, three))
        self.cache = tmp_path / "cache"
        self.ready_waits: list[str] = []
        self.said: list[str] = []
        self.identities = {f"{node.name}-vm": f"uuid-{node.name}" for node in self.settings.topology.nodes}
        self.set_state("2026-12-06T10:00:00Z")
        self.qemu_vms: dict[str, FakeQemuVm] = {}
        hypervisor_object: Any
        if hypervisor == "qemu":
            qemu = Qemu(self.cache)
            hypervisor_object = qemu
            for vm in self.vm_names:
                self.qemu_vms[vm] = FakeQemuVm(qemu.directory(vm), vm, self.calls, memory=f"{vm} as booted")
        else:
            hypervisor_object = VirtualBox()
            vbox: dict[str, Any] = {
                "hostonlyifs": [],
                "hostonlynets": [],
                "dhcpservers": [],
                "media": [],
                "sizes": {},
                "vms": {},
            }
            for vm in self.vm_names:
                vbox["vms"][vm] = {
                    "name": vm, "uuid": f"uuid-{vm}", "cfg_file": str(tmp_path / "VirtualBox VMs" / vm / f"{vm}.vbox"),
                    "groups": "/", "ostype": "Ubuntu_64",
                    "state": "running", "settings": {}, "controllers": [], "attachments": {},
                    "memory": f"{vm} as booted",
                }  # fmt: skip
            (tmp_path / "vbox.json").write_text(json.dumps(vbox))
        self.lab = Lab(
            stack="lab",
            settings=self.settings,
            hypervisor=hypervisor_object,
            pulumi=PulumiStack("lab"),
            home=self.cache / "checkpoints" / "lab",
            config_file=self.config_file,
            wait_ready=self.wait_ready,
            say=self.said.append,
        )

    @property
    def vm_names(self) -> list[str]:
        return [f"meshlab-lab-{node.name}" for node in self.settings.topology.nodes]

    def set_state(self, time: str, identities: dict[str, str] | None = None) -> None:
        state = _state(time, identities or self.identities)
        (self.pulumi_home / "lab.state.json").write_text(json.dumps(state))

    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = json.loads((self.pulumi_home / "lab.state.json").read_text())
        return state

    def wait_ready(self, lab: Lab) -> float:
        self.ready_waits.append(lab.stack)
        return 12.0

    def memory(self, vm: str) -> str:
        if self.qemu_vms:
            return self.qemu_vms[vm].memory
        return str(json.loads((self.tmp / "vbox.json").read_text())["vms"][vm]["memory"])

    def set_memory(self, vm: str, memory: str) -> None:
        if self.qemu_vms:
            self.qemu_vms[vm].memory = memory
            return
        state = json.loads((self.tmp / "vbox.json").read_text())
        state["vms"][vm]["memory"] = memory
        (self.tmp / "vbox.json").write_text(json.dumps(state))

    def vbox_calls(self) -> list[str]:
        return (self.tmp / "vbox.log").read_text().splitlines()

    def close(self) -> None:
        for vm in self.qemu_vms.values():
            vm.close()


@pytest.fixture(params=["qemu", "virtualbox"])
def harness(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Iterator[Harness]:
    lab = Harness(tmp_path, monkeypatch, request.param)
    yield lab
    lab.close()


@pytest.fixture
def qemu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    lab = Harness(tmp_path, monkeypatch, "qemu")
    yield lab
    lab.close()


def _acts(harness: Harness, *verbs: str) -> list[tuple[str, str]]:
    """The hypervisor calls that change a VM, as (vm, verb), in the order they were made."""
    if harness.qemu_vms:
        return [(vm, command.split()[0]) for vm, command in harness.calls if command.split()[0] in verbs]
    found = []
    for line in harness.vbox_calls():
        words = line.split()
        if words[0] in ("controlvm", "snapshot") and words[2] in verbs:
            found.append((words[1], words[2]))
        elif words[0] == "startvm" and "startvm" in verbs:
            found.append((words[1], "startvm"))
    return found


def test_a_checkpoint_pauses_every_vm_before_saving_any_and_resumes_them_all(harness):
    vms = harness.vm_names
    saved = harness.lab.save("before-strict")
    pause, take, resume = ("stop", "savevm", "cont") if harness.qemu_vms else ("pause", "take", "resume")
    acts = _acts(harness, pause, take, resume)
    assert acts == [(vm, pause) for vm in vms] + [(vm, take) for vm in vms] + [(vm, resume) for vm in vms]
    assert saved.vms == vms and saved.hypervisor == ("QEMU" if harness.qemu_vms else "VirtualBox")
    assert saved.state_time == "2026-12-06T10:00:00Z" and saved.vm_identities == harness.identities
    assert all(harness.lab.hypervisor.running(vm) for vm in vms)
    folder = harness.lab.folder("before-strict")
    assert json.loads((folder / "state.json").read_text()) == harness.state()
    assert (folder / "config.yaml").read_bytes() == harness.config_file.read_bytes()
    assert oct(folder.stat().st_mode & 0o777) == "0o700"
    if harness.qemu_vms:  # the memory state's size, as qemu-img reads it from each overlay
        assert set(saved.memory_bytes) == set(vms) and all(
            size >= 3 * 1024 * 1024 for size in saved.memory_bytes.values()
        )


def test_a_restore_brings_every_vm_back_to_the_moment_and_waits_for_the_cluster(harness):
    vms = harness.vm_names
    harness.lab.save("good")
    for vm in vms:
        harness.set_memory(vm, f"{vm} broken by an experiment")
    harness.calls.clear()
    (harness.tmp / "vbox.log").write_text("")
    total = harness.lab.restore("good")
    assert [harness.memory(vm) for vm in vms] == [f"{vm} as booted" for vm in vms]
    assert all(harness.lab.hypervisor.running(vm) for vm in vms)
    if harness.qemu_vms:
        acts = _acts(harness, "stop", "loadvm", "cont")
        first_load = acts.index((vms[0], "loadvm"))
        assert {vm for vm, verb in acts[:first_load] if verb == "stop"} == set(vms), "a VM ran on while another loaded"
        assert [verb for _, verb in acts[-len(vms) :]] == ["cont"] * len(vms)
    else:
        acts = _acts(harness, "pause", "poweroff", "restore", "startvm")
        assert acts[: len(vms)] == [(vm, "pause") for vm in vms]
        assert [verb for _, verb in acts[-len(vms) :]] == ["startvm"] * len(vms)
    assert harness.ready_waits == ["lab"] and total >= 12.0
    assert any(line.startswith("the cluster is Ready 12 s later") for line in harness.said)
    assert "the Pulumi state is the one checkpoint good was taken with" in harness.said


def test_a_failed_save_resumes_every_paused_vm_and_records_nothing(qemu):
    qemu.qemu_vms[qemu.vm_names[2]].fail_savevm = "Error: Device 'seed' is writable but does not support snapshots"
    with pytest.raises(CheckpointError, match="Device 'seed' is writable but does not support snapshots"):
        qemu.lab.save("half")
    assert all(vm.running for vm in qemu.qemu_vms.values())
    assert not (qemu.lab.folder("half") / "checkpoint.json").exists()


def test_after_a_later_update_the_checkpoints_state_comes_back_and_the_later_one_is_kept(qemu):
    qemu.lab.save("base")
    taken = qemu.state()
    qemu.set_state("2026-12-06T11:00:00Z")
    qemu.config_file.write_text(qemu.config_file.read_text() + "  meshlab:meshMtlsMode: PERMISSIVE\n")
    qemu.lab.restore("base")
    assert qemu.state() == taken
    [kept] = qemu.lab.folder("base").glob("state-before-restore-*.json")
    assert json.loads(kept.read_text())["deployment"]["manifest"]["time"] == "2026-12-06T11:00:00Z"
    said = "\n".join(qemu.said)
    assert "described a later update (2026-12-06T11:00:00Z) than the checkpoint (2026-12-06T10:00:00Z)" in said
    assert "Pulumi.lab.yaml changed since the checkpoint: run `make up STACK=lab`" in said


def test_a_vm_rebuilt_since_the_checkpoint_stops_the_restore_before_anything_changes(qemu):
    qemu.lab.save("base")
    first = qemu.settings.topology.nodes[0].name
    qemu.set_state("2026-12-06T11:00:00Z", {**qemu.identities, f"{first}-vm": "a-new-uuid"})
    qemu.calls.clear()
    with pytest.raises(CheckpointError, match=f"{first}-vm was rebuilt since it was taken"):
        qemu.lab.restore("base")
    assert _acts(qemu, "stop", "loadvm") == []
    # A VM that lost the snapshot (rebuilt by hand) is named the same way, and listed as broken.
    qemu.set_state("2026-12-06T10:00:00Z")
    vm = qemu.vm_names[1]
    qemu.qemu_vms[vm].disk.write_text("{}")
    with pytest.raises(CheckpointError, match=f"{vm} was rebuilt since"):
        qemu.lab.restore("base")
    [line] = qemu.lab.listing()
    assert line.endswith(f"BROKEN: {vm} lost its snapshot (rebuilt?)")


def test_list_delete_and_the_discard_of_destroy(harness):
    harness.lab.save("one")
    harness.lab.save("two")
    lines = harness.lab.listing()
    assert [line.split()[0] for line in lines] == ["one", "two"]
    assert all(f"{len(harness.vm_names)} VMs" in line and "memory state " in line for line in lines)
    harness.lab.delete("one")
    assert [line.split()[0] for line in harness.lab.listing()] == ["two"]
    assert all("meshlab-one" not in harness.lab.hypervisor.tags(vm) for vm in harness.vm_names)
    assert all("meshlab-two" in harness.lab.hypervisor.tags(vm) for vm in harness.vm_names)
    assert harness.lab.discard(dry_run=True) == ["two"] and harness.lab.listing()
    assert harness.said[-1] == "destroying stack lab discards its checkpoints: two"
    assert harness.lab.discard(dry_run=False) == ["two"] and harness.lab.listing() == []
    with pytest.raises(CheckpointError, match="stack lab has no checkpoint two"):
        harness.lab.restore("two")


@pytest.mark.parametrize("name", ["", "a b", "../x", "-x", "x" * 64])
def test_names_that_are_not_a_snapshot_or_folder_name_are_refused(qemu, name):
    with pytest.raises(CheckpointError, match="letters, digits"):
        qemu.lab.save(name)
    assert qemu.calls == []


def test_a_stopped_vm_or_an_existing_checkpoint_is_refused_before_anything_pauses(qemu):
    qemu.qemu_vms[qemu.vm_names[0]].running = False
    with pytest.raises(CheckpointError, match=f"not running: {qemu.vm_names[0]}"):
        qemu.lab.save("x")
    assert _acts(qemu, "stop") == []
    qemu.qemu_vms[qemu.vm_names[0]].running = True
    qemu.lab.save("x")
    with pytest.raises(CheckpointError, match="has a checkpoint x already"):
        qemu.lab.save("x")


def test_existing_hosts_and_existing_clusters_cannot_be_checkpointed(capsys):
    assert main(["prod", "list"]) == 1
    error = capsys.readouterr().err
    assert "stack prod runs on existing hosts: meshlab does not own those machines" in error
    assert "RKE2's etcd snapshots" in error and "meshlab:etcdSnapshotSchedule" in error
    # `make destroy` of such a stack asks what it discards: nothing, quietly.
    assert main(["prod", "discard", "--dry-run"]) == 0 and capsys.readouterr() == ("", "")


def test_an_unknown_or_unreadable_stack_is_named(capsys, tmp_path, monkeypatch):
    assert main(["nosuch", "list"]) == 1
    assert "no stack config file" in capsys.readouterr().err
    monkeypatch.setattr(checkpoint, "stack_config_file", lambda stack, _file=None: tmp_path / "Pulumi.bad.yaml")
    (tmp_path / "Pulumi.bad.yaml").write_text("config:\n  meshlab:servers: [master1=not-an-ip]\n")
    assert main(["bad", "list"]) == 2
    assert "checkpoint: cannot read stack bad: " in capsys.readouterr().err


def test_a_vm_without_a_monitor_says_how_to_get_one(tmp_path):
    with pytest.raises(CheckpointError, match=r"has no QMP monitor .*pulumi up --replace"):
        Qemu(tmp_path).pause("meshlab-lab-master1")


def test_the_command_line_picks_each_backend_and_its_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("MESHLAB_CACHE_DIR", str(tmp_path))
    lab = lab_for("lab")
    assert isinstance(lab.hypervisor, VirtualBox) and lab.home == tmp_path / "checkpoints" / "lab"
    assert lab.vms[0] == "meshlab-lab-master1" and lab.wait_ready is checkpoint.wait_ready_over_ssh


def test_the_readiness_wait_runs_the_cluster_layers_step_on_the_first_server_pinned_to_its_key(qemu, tmp_path):
    """The same readiness `pulumi up` waits for: the program's cluster-ready command, over SSH with the
    stack's own key and the first server's pinned host key (stack outputs sshPrivateKey, sshKnownHosts)."""
    from tools.render import render  # noqa: PLC0415

    first = qemu.settings.topology.servers[0]
    known = (
        f"{first.ip} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFirst\n10.9.9.9 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOther\n"
    )
    outputs = {
        "sshUser": "meshlab",
        "sshPrivateKey": "-----BEGIN OPENSSH PRIVATE KEY-----\nk\n",
        "sshKnownHosts": known,
    }
    (qemu.pulumi_home / "lab.outputs.json").write_text(json.dumps(outputs))
    record = tmp_path / "ssh.json"
    fake_ssh = qemu.bin / "ssh"
    fake_ssh.write_text(
        f"#!{sys.executable}\nimport json, pathlib, sys\n"
        "args = sys.argv[1:]\nfiles = [a.split('=', 1)[1] for a in args if a.startswith('UserKnownHostsFile=')]\n"
        "key = args[args.index('-i') + 1]\n"
        f"pathlib.Path({str(record)!r}).write_text(json.dumps({{'args': args,"
        " 'known': pathlib.Path(files[0]).read_text(), 'key': pathlib.Path(key).read_text()}))\n"
        "sys.exit(int(__import__('os').environ.get('FAKE_SSH_EXIT', '0')))\n"
    )
    fake_ssh.chmod(0o755)
    qemu.lab.config_file = ROOT / "Pulumi.lab.yaml"
    assert checkpoint.wait_ready_over_ssh(qemu.lab) >= 0
    seen = json.loads(record.read_text())
    [ready] = [r for r in render(read_stack_file(ROOT / "Pulumi.lab.yaml"), "lab").of_type("command:remote:Command")
               if r.name == "cluster-ready"]  # fmt: skip
    assert seen["args"][-2:] == [f"meshlab@{first.ip}", ready.inputs["create"]]
    assert "StrictHostKeyChecking=yes" in seen["args"]
    assert seen["known"] == f"{first.ip} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFirst\n"
    assert seen["key"] == outputs["sshPrivateKey"]
    os.environ["FAKE_SSH_EXIT"] = "1"
    try:
        with pytest.raises(CheckpointError, match="the cluster did not become Ready after the restore"):
            checkpoint.wait_ready_over_ssh(qemu.lab)
    finally:
        del os.environ["FAKE_SSH_EXIT"]


def test_deleting_a_qemu_vm_names_the_checkpoints_its_disk_takes_with_it(qemu, tmp_path):
    """What a replacement or `make destroy` says: the VM's own delete step names them; its monitor's
    socket goes too."""
    from components.hosts.qemu.scripts import render_script  # noqa: PLC0415

    vm = qemu.vm_names[0]
    qemu.lab.save("before-strict")
    qemu.lab.save("base")
    (qemu.bin / "ip").symlink_to(FAKES / "bridge" / "fake_net")
    socket_path = qemu.qemu_vms[vm].socket_path
    env = {
        **os.environ,
        "MESHLAB_CACHE_DIR": str(qemu.cache),
        "MESHLAB_VM_NAME": vm,
        "MESHLAB_TAP": "mltap-test",
        "FAKE_NET_STATE": str(tmp_path / "net.json"),
        "FAKE_NET_LOG": str(tmp_path / "net.log"),
    }
    result = subprocess.run(
        ["bash", "-c", render_script("qemu_vm_delete")], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert f"meshlab: VM {vm} takes its lab checkpoints with it: before-strict, base" in result.stderr
    assert not qemu.lab.hypervisor.directory(vm).exists() and not socket_path.exists()
