"""The QEMU stack's three lab guests used as existing hosts (`meshlab:hypervisor: existing`): the
existing backend's preflight over SSH, directly and through a bastion, and on a guest broken on
purpose; then the cluster layer's node steps of that stack, and its destroy, which must leave the
machines as they were but for the NFS data.

The tier's modules run in the order of their numbers and share one set of guests (conftest's
session-wide `vm_lab`): this one runs after the guests booted and before the QEMU stack's own node
steps, on machines nothing has changed yet.
"""

from __future__ import annotations

import re
import time

import pytest

from config.settings import EXISTING_MEMORY_PERCENT
from tests.vm.conftest import existing_config
from tests.vm.helpers import STANDIN_ENDPOINTS, copies_of, lab_nodes
from tests.vm.lab import StepRun, VmLab, progress

PREFLIGHT = "hosts-preflight-check"
# What a machine holds that meshlab's steps may touch; destroy must bring all of it back. shadow-utils'
# own backups (/etc/passwd- and the like) are rewritten by every useradd and userdel, so they are left out.
SNAPSHOT = (
    "sudo sh -c 'find /etc /home /srv /var/lib/meshlab /var/lib/rancher /usr/local/bin -xdev "
    '-printf "%p %y %m %s\\n" 2>/dev/null | grep -v -e "^/etc/resolv.conf " -e "^/etc/[a-z]*- " | sort; '
    "md5sum /etc/passwd /etc/group /etc/shadow /etc/gshadow'"
)
# Where the NFS export keeps the volumes: destroy keeps the data (docs/hosts.md says so).
NFS_DATA = ("/srv/nfs ", "/srv/nfs/kubedata ")
BROKEN = "vm-agent2"
SWAP_FILE = "/meshlab-vm-tier.swap"
SQUATTER = "meshlab-vm-tier-squatter"
TAKEN_PORT = 10250
# A STAND-IN for what rke2_install would have left (no internet here): a binary and an uninstaller
# that removes both and says it ran, as RKE2's own rke2-uninstall.sh removes RKE2.
RKE2_STANDIN = (
    'sudo sh -c \'printf "#!/bin/sh\\n" >/usr/local/bin/rke2 && '
    'printf "#!/bin/sh\\nrm -f /usr/local/bin/rke2 /usr/local/bin/rke2-uninstall.sh\\n'
    'date +%s >/run/meshlab-vm-tier-rke2-uninstalled\\n" >/usr/local/bin/rke2-uninstall.sh && '
    "chmod 0755 /usr/local/bin/rke2 /usr/local/bin/rke2-uninstall.sh'"
)


def learn_host_keys(lab: VmLab) -> dict[str, str]:
    """Each host-key step the stack registers (the bastion's first), as the engine runs them before the
    preflight: the key each host showed on first contact, by step."""
    steps = sorted(
        (r.name for r in lab.rendering.of_type("command:local:Command") if r.name.endswith("-host-key")),
        key=lambda name: name != "hosts-bastion-host-key",
    )
    assert len(steps) >= 3, steps
    return {name: lab.local_step(name, timeout=120).check().stdout for name in steps if name not in lab.outputs}


def preflight(lab: VmLab) -> StepRun:
    """The existing backend's preflight as local.Command runs it, after the host-key steps it pins: the
    key on its stdin (a secret, which a rendering under mocks shows as a placeholder)."""
    learn_host_keys(lab)
    return lab.local_step(PREFLIGHT, stdin=lab.private_key.read_text(), timeout=400)


def test_first_contact_learns_the_key_each_guests_seed_installed(existing_lab, vm_lab):
    """The real OpenSSH, asked in the provider's order, is shown the one key meshlab generated for the
    guest and its seed installed (cloud-init deleted the image's others)."""
    learned = learn_host_keys(existing_lab)
    for node in lab_nodes(existing_lab):
        assert learned[f"{node}-host-key"] == vm_lab.host_key(node), node
    keys = existing_lab.ssh_retrying(lab_nodes(existing_lab)[0], "ls /etc/ssh | grep -c '^ssh_host_.*key$'").check()
    assert keys.stdout == "1", "the guest has host keys besides meshlab's"


def test_a_guest_showing_another_key_than_the_pinned_one_is_refused_before_any_login(existing_lab, vm_lab):
    node = lab_nodes(existing_lab)[1]
    other = VmLab(existing_config(vm_lab.config), "vmexisting", vm_lab.netns, vm_lab.private_key, vm_lab.user)
    impostor_pin = vm_lab.host_key(lab_nodes(existing_lab)[0])  # another guest's key
    run = other.local_step(f"{node}-host-key", environment={"PULUMI_COMMAND_STDOUT": impostor_pin}, timeout=120)
    assert run.returncode == 1 and run.stdout == ""
    progress(f"a changed host key on {node}:\n{run.stderr}")
    assert f"{node} ({existing_lab.node_ip(node)}) presents a different ED25519 key SHA256:" in run.stderr
    assert "meshlab pinned on first contact; nothing was changed on it" in run.stderr
    assert f"'meshlab:sshHostKeys[N]' '{node}=TYPE BASE64'" in run.stderr


def test_the_preflight_passes_on_the_guests_and_says_what_each_is(existing_lab):
    run = preflight(existing_lab).check()
    progress("existing-hosts preflight:\n" + run.stdout)
    lines = run.stdout.splitlines()
    nodes = lab_nodes(existing_lab)
    assert [line.split(" (")[0] for line in lines] == nodes
    for node, line in zip(nodes, lines, strict=True):
        assert line.startswith(
            f"{node} ({existing_lab.node_ip(node)}): Debian GNU/Linux 12 (bookworm) x86_64, 2 CPUs, "
        )
        assert line.endswith(f"{existing_lab.node_ip(node)} on hostonly0 (the cluster binds there)")
        free = int(re.search(r", (\d+) GiB free under /var/lib", line).group(1))  # type: ignore[union-attr]
        assert free >= 20


def test_the_preflight_reaches_the_nodes_through_a_bastion(existing_lab, vm_lab):
    """The first server as the bastion: every node's login comes from its address, not the host's
    (on the bastion itself the host's logins are the jumps, and the node's login comes from itself)."""
    server = lab_nodes(existing_lab)[0]
    bastion_ip = existing_lab.node_ip(server)
    through = VmLab(
        existing_config(vm_lab.config, **{"meshlab:sshBastionHost": bastion_ip, "meshlab:sshBastionUser": "meshlab"}),
        "vmexisting",
        vm_lab.netns,
        vm_lab.private_key,
        vm_lab.user,
        guest_host_keys=existing_lab.guest_host_keys,
    )
    started = int(time.time()) - 1
    preflight(through).check()
    # The journal is read over a direct login too: only what sshd logged before that counts.
    until = int(time.time()) + 1
    time.sleep(2)
    for node in lab_nodes(through):
        journal = existing_lab.ssh_retrying(
            node, f"sudo journalctl -q --no-pager -u ssh --since @{started} --until @{until}"
        ).check()
        accepted = [line for line in journal.stdout.splitlines() if "Accepted publickey for meshlab" in line]
        through_bastion = [line for line in accepted if f" from {bastion_ip} " in line]
        assert through_bastion, f"no login on {node} from the bastion since the preflight started:\n{journal.stdout}"
        if node != server:
            assert through_bastion == accepted, f"{node} was reached directly: {accepted}"
        progress(f"{node}: logged in through the bastion {bastion_ip}")
    # The cluster layer's connections go the same way (checked offline, in tests/test_existing_backend.py).


def test_each_node_has_its_own_identity(existing_lab):
    identities = {node: existing_lab.remote_step(f"{node}-identity").check().stdout for node in lab_nodes(existing_lab)}
    assert all(re.fullmatch(r"[0-9a-f]{32}", identity) for identity in identities.values()), identities
    assert len(set(identities.values())) == len(identities)


@pytest.fixture
def broken_guest(existing_lab):
    """vm-agent2 with swap on, RKE2's kubelet port taken and the API VIP as an address of its own (as
    another machine on a real network might have it), put back afterwards."""
    vip = existing_lab.config.values["meshlab:apiVip"]
    listener = (
        f'import socket, time; s = socket.socket(); s.bind(("0.0.0.0", {TAKEN_PORT})); s.listen(); time.sleep(3600)'
    )
    setup = (
        f"sudo fallocate -l 64M {SWAP_FILE} && sudo chmod 0600 {SWAP_FILE} && sudo mkswap -q {SWAP_FILE} && "
        f"sudo swapon {SWAP_FILE} && sudo systemd-run --quiet --unit={SQUATTER} python3 -c '{listener}' "
        f"&& sudo ip addr add {vip}/32 dev hostonly0 "
        f"&& for _ in $(seq 50); do ss -Htln 'sport = :{TAKEN_PORT}' | grep -q . && exit 0; sleep 0.2; done; exit 1"
    )
    existing_lab.ssh_retrying(BROKEN, setup).check()
    try:
        yield BROKEN
    finally:
        existing_lab.ssh_retrying(
            BROKEN,
            f"sudo systemctl stop {SQUATTER}; sudo swapoff {SWAP_FILE}; sudo rm -f {SWAP_FILE}; "
            f"sudo ip addr del {vip}/32 dev hostonly0",
        ).check()


def test_the_preflight_lists_every_problem_of_every_node_at_once(existing_lab, vm_lab, broken_guest):
    """Too little memory on both agents (the stack asks for twice what they have), on one of them swap
    on and a port taken, and the API VIP answered by that one (seen from the first server): one list,
    node by node, each with what was found and what is needed."""
    hungry = VmLab(
        existing_config(vm_lab.config, **{"meshlab:agentMemoryMib": 4096}),
        "vmexisting",
        vm_lab.netns,
        vm_lab.private_key,
        vm_lab.user,
        guest_host_keys=existing_lab.guest_host_keys,
    )
    run = preflight(hungry)
    assert run.returncode == 1
    progress("existing-hosts preflight on a broken guest:\n" + run.stderr)
    lines = run.stderr.strip().splitlines()
    assert lines[0] == (
        "meshlab existing-hosts preflight found 5 problem(s) on 3 of 3 node(s); nothing was changed on any:"
    )
    vip, server = hungry.config.values["meshlab:apiVip"], lab_nodes(hungry)[0]
    assert re.fullmatch(
        rf"  - {server} \({hungry.node_ip(server)}\) address {vip}: found in use on the network \(by "
        r"[0-9a-f:]{17}\); needs a free address for meshlab:apiVip \(meshlab announces it by ARP\)",
        lines[1],
    ), lines[1]
    needed = 4096 * EXISTING_MEMORY_PERCENT // 100
    agent1, agent2 = (f"  - {node} ({hungry.node_ip(node)})" for node in ("vm-agent1", broken_guest))
    memory = re.compile(
        rf"(.*) memory: found \d+ MiB \(MemTotal\); needs at least {needed} MiB \({EXISTING_MEMORY_PERCENT} % of "
        r"meshlab:agentMemoryMib 4096: MemTotal leaves out what the kernel keeps\)"
    )
    assert [match.group(1) for line in lines[1:] if (match := memory.fullmatch(line))] == [agent1, agent2]
    assert f"{agent2} swap: found on ({SWAP_FILE} 64M); needs off (the kubelet refuses to start with swap: " in (
        "\n".join(lines)
    )
    [port] = [line for line in lines if line.startswith(f"{agent2} port {TAKEN_PORT}/tcp: ")]
    assert re.fullmatch(r'.*: found in use \(users:\(\("python3",pid=\d+,fd=\d+\)\)\); needs free for RKE2', port)
    assert len(lines) == 6
    assert run.stdout == ""


def snapshot(lab: VmLab, node: str) -> set[str]:
    return set(lab.ssh_retrying(node, SNAPSHOT).check().stdout.splitlines())


def test_the_node_steps_run_on_existing_hosts_and_destroy_puts_the_machines_back(existing_lab):
    nodes = lab_nodes(existing_lab)
    server = nodes[0]
    before = {node: snapshot(existing_lab, node) for node in nodes}
    for node in nodes:
        existing_lab.remote_step(f"cluster-{node}-preflight", replace={"MESHLAB_ENDPOINTS": STANDIN_ENDPOINTS}).check()
        existing_lab.remote_step(f"cluster-{node}-prepare").check()
        for copy in copies_of(existing_lab, node):
            existing_lab.copy_step(copy).check()
        existing_lab.remote_step(f"cluster-{node}-files").check()
        existing_lab.ssh_retrying(node, "sudo test -f /etc/rancher/rke2/config.yaml").check()
        existing_lab.ssh_retrying(node, RKE2_STANDIN).check()
    existing_lab.remote_step("cluster-nfs-export").check()
    existing_lab.ssh_retrying(server, "getent passwd etcd && test -f /etc/exports.d/meshlab.exports").check()
    placed = snapshot(existing_lab, server) - before[server]
    assert any(line.startswith("/etc/systemd/networkd.conf.d/60-meshlab-cilium.conf ") for line in placed), placed

    # pulumi destroy, in reverse dependency order: the export, then each node's files, RKE2, preparation.
    existing_lab.remote_step("cluster-nfs-export", delete=True).check()
    for node in reversed(nodes):
        for step in ("files", "install", "prepare"):
            run = existing_lab.remote_step(f"cluster-{node}-{step}", delete=True).check()
            progress(f"{node} destroy {step}: {run.stdout.splitlines()[-1] if run.stdout else '(nothing)'}")
        existing_lab.ssh_retrying(node, "test -s /run/meshlab-vm-tier-rke2-uninstalled").check()
    for node in nodes:
        after = snapshot(existing_lab, node)
        kept = {line for line in after - before[node] if line.startswith(NFS_DATA)} if node == server else set()
        assert after - before[node] == kept, f"{node} keeps {sorted(after - before[node] - kept)}"
        assert before[node] - after == set(), f"{node} lost {sorted(before[node] - after)}"
        if node == server:
            assert len(kept) == 2, "the NFS data directory stays on the server"
