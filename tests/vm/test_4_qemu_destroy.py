"""The QEMU stack's destroy: no process, disk, seed, tap or bridge is left.

The tier's modules run in the order of their numbers and share one set of guests (conftest's
session-wide `vm_lab`): a later module needs what an earlier one brought up.
"""

from __future__ import annotations

from pathlib import Path

from tests.vm.conftest import qemu_pids
from tests.vm.helpers import lab_nodes, running


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
    forward = vm_lab.netns.run(["iptables", "-S", "FORWARD"], capture_output=True, check=True).stdout
    assert "meshlab-vmtier" not in forward, f"the bridge's FORWARD rule must go with it:\n{forward}"
