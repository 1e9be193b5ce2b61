"""Lab checkpoints (tools/checkpoint.py) on the tier's QEMU guests: every guest paused, saved with
`savevm` through its own QMP monitor and resumed; each guest then changed (a file written, a service
stopped); the checkpoint restored with `loadvm`; every guest back as it was and reachable over SSH,
pinned to its host key. Checkpoint and restore are timed.

STAND-INS, named as such: the tier has no Pulumi state (a fake `pulumi` serves one holding the VM
steps' real outputs, the guests' UUIDs) and no Kubernetes cluster (the readiness wait is every guest
answering over SSH, not the cluster layer's step, which tests/test_checkpoint.py covers against fakes).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from config.loader import StackConfig, settings_from_config
from tests.vm.conftest import MISWIRED
from tests.vm.helpers import lab_nodes
from tests.vm.lab import VmLab, progress
from tools.checkpoint import Lab, PulumiStack, Qemu
from tools.cli import ROOT

PROBE = "/var/tmp/meshlab-checkpoint-probe"
SERVICE = "systemd-timesyncd"


@pytest.fixture(scope="module")
def checkpoint_lab(vm_lab: VmLab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    work = tmp_path_factory.mktemp("checkpoint")
    values = dict(vm_lab.config.values)
    values["meshlab:agents"] = [agent for agent in values["meshlab:agents"] if not agent.startswith(f"{MISWIRED}=")]
    config_file = work / f"Pulumi.{vm_lab.stack}.yaml"
    config_file.write_text(yaml.safe_dump({"config": values}))
    settings = settings_from_config(StackConfig(values, vm_lab.config.secret_keys))
    # STAND-IN Pulumi state: the VM steps' outputs as the tier's own run of them left them.
    resources = [
        {"urn": f"urn:pulumi:{vm_lab.stack}::meshlab::x::{node}-vm", "type": "command:local:Command",
         "outputs": {"stdout": vm_lab.outputs[f"{node}-vm"]}}
        for node in lab_nodes(vm_lab)
    ]  # fmt: skip
    state = {"version": 3, "deployment": {"manifest": {"time": "2026-12-06T00:00:00Z"}, "resources": resources}}
    (work / f"{vm_lab.stack}.state.json").write_text(json.dumps(state))
    fake_pulumi = ROOT / "tests" / "fakes" / "pulumi" / "fake_pulumi"

    def every_guest_answers(lab: Lab) -> float:  # STAND-IN readiness: no cluster in the tier
        started = time.monotonic()
        for node in lab_nodes(vm_lab):
            vm_lab.ssh_retrying(node, "true").check()
        return time.monotonic() - started

    os.environ["FAKE_PULUMI_DIR"] = str(work)
    os.environ["FAKE_PULUMI_LOG"] = str(work / "pulumi.log")
    yield Lab(
        stack=vm_lab.stack,
        settings=settings,
        hypervisor=Qemu(Path(values["meshlab:imageCacheDir"])),
        pulumi=PulumiStack(vm_lab.stack, cli=str(fake_pulumi)),
        home=work / "checkpoints",
        config_file=config_file,
        wait_ready=every_guest_answers,
        say=progress,
    )
    for name in ("FAKE_PULUMI_DIR", "FAKE_PULUMI_LOG"):
        os.environ.pop(name, None)


def test_a_checkpoint_brings_every_guest_back_to_its_moment(vm_lab, checkpoint_lab):
    nodes = lab_nodes(vm_lab)
    assert checkpoint_lab.vms == [f"meshlab-{vm_lab.stack}-{node}" for node in nodes]
    for node in nodes:
        vm_lab.ssh_retrying(node, f"sudo rm -f {PROBE} && systemctl is-active {SERVICE}").check()
    started = time.monotonic()
    saved = checkpoint_lab.save("vmtier")
    saving = time.monotonic() - started
    progress(f"checkpoint of {len(nodes)} guests: {saving:.1f} s; memory state {saved.memory_bytes}")
    assert all(size > 0 for size in saved.memory_bytes.values()), saved.memory_bytes
    # The memory state is stored in each overlay: what the checkpoint costs on disk at creation.
    assert saved.disk_bytes >= sum(saved.memory_bytes.values()) // 2, (saved.disk_bytes, saved.memory_bytes)
    for node in nodes:  # the guests run on after the checkpoint
        vm_lab.ssh_retrying(
            node, f"echo changed | sudo tee {PROBE} >/dev/null && sudo systemctl stop {SERVICE}"
        ).check()
        assert vm_lab.ssh(node, f"systemctl is-active {SERVICE}").stdout == "inactive"
    started = time.monotonic()
    checkpoint_lab.restore("vmtier")
    restoring = time.monotonic() - started
    progress(f"restore of {len(nodes)} guests, until each answers over SSH: {restoring:.1f} s")
    for node in nodes:
        back = vm_lab.ssh_retrying(node, f"test ! -e {PROBE} && systemctl is-active {SERVICE} && hostname").check()
        assert back.stdout.splitlines() == ["active", node], back.stdout
    [line] = checkpoint_lab.listing()
    assert line.startswith("vmtier ") and "BROKEN" not in line
    progress(f"checkpoints: {line}")
    checkpoint_lab.delete("vmtier")
    assert all("meshlab-vmtier" not in checkpoint_lab.hypervisor.tags(vm) for vm in checkpoint_lab.vms)
    assert checkpoint_lab.listing() == []
