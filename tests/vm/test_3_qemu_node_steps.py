"""The cluster layer's node steps of the QEMU stack on its guests, each run twice: the second run must
change nothing.

The tier's modules run in the order of their numbers and share one set of guests (conftest's
session-wide `vm_lab`): a later module needs what an earlier one brought up.
"""

from __future__ import annotations

from tests.vm.helpers import STANDIN_ENDPOINTS, copies_of, exported_value, lab_nodes, twice_remote


def test_node_preflight_passes_with_stand_ins_and_twice(vm_lab):
    for node in lab_nodes(vm_lab):
        twice_remote(vm_lab, f"cluster-{node}-preflight", node, replace={"MESHLAB_ENDPOINTS": STANDIN_ENDPOINTS})


def test_node_prepare_twice(vm_lab):
    for node in lab_nodes(vm_lab):
        twice_remote(vm_lab, f"cluster-{node}-prepare", node)
    server = lab_nodes(vm_lab)[0]
    etcd = vm_lab.ssh_retrying(server, "getent passwd etcd && getent group etcd").check()
    assert etcd.stdout.count("etcd") >= 2


def test_files_are_placed_twice_and_removed(vm_lab):
    for node in lab_nodes(vm_lab):
        copies = copies_of(vm_lab, node)
        assert copies, f"{node} has no files to place"
        for copy in copies:
            vm_lab.copy_step(copy).check()
        twice_remote(vm_lab, f"cluster-{node}-files", node)
        step = vm_lab.registration("command:remote:Command", f"cluster-{node}-files")
        destinations = [line.split()[1] for line in exported_value(step.inputs["create"], "MESHLAB_FILES").splitlines()]
        assert len(destinations) == len(copies)
        placed = " && ".join(f"sudo test -f {path}" for path in destinations)
        vm_lab.ssh_retrying(node, placed).check()
    node = lab_nodes(vm_lab)[-1]
    step = vm_lab.registration("command:remote:Command", f"cluster-{node}-files")
    destinations = [line.split()[1] for line in exported_value(step.inputs["create"], "MESHLAB_FILES").splitlines()]
    for _ in range(2):  # a second delete finds nothing and is fine
        vm_lab.remote_step(f"cluster-{node}-files", delete=True).check()
    gone = " && ".join(f"! sudo test -e {path}" for path in destinations)
    vm_lab.ssh_retrying(node, gone).check()


def test_the_first_server_exports_nfs_and_another_node_mounts_it(vm_lab):
    server, client = lab_nodes(vm_lab)[0], lab_nodes(vm_lab)[1]
    twice_remote(vm_lab, "cluster-nfs-export", server)
    export = exported_value(
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
