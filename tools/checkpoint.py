"""Lab checkpoints: save every VM of a stack at one moment, and bring them all back to it.

    python -m tools.checkpoint STACK save NAME      # make checkpoint NAME=...
    python -m tools.checkpoint STACK restore NAME   # make restore NAME=...
    python -m tools.checkpoint STACK list           # make checkpoints
    python -m tools.checkpoint STACK delete NAME
    python -m tools.checkpoint STACK discard [--dry-run]   # what `make destroy` drops

A checkpoint pauses every VM of the stack first, then snapshots each (disk and memory: VirtualBox
`VBoxManage snapshot take` of a paused VM, QEMU `savevm` through its QMP monitor), then resumes them
all, so the three etcd members, the kube-vip VIP holder and the agents come back from one moment. It
keeps the stack's Pulumi state and configuration as they were, beside it: a restore brings the VMs
back, then the state that describes them (the later state is kept in the checkpoint's folder), and
waits until the cluster is Ready again with the cluster layer's own readiness step.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from config.loader import read_stack_file, settings_from_config
from config.settings import NAMESPACE, Settings
from config.validation import SettingsError
from tools.cli import ROOT, UnknownStackError, counted, run, stack_config_file

# A checkpoint's name is a snapshot's name in VirtualBox and QEMU, and a folder's name.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
# VirtualBox snapshots and QEMU internal snapshots carry this prefix: only meshlab's are listed or touched.
TAG_PREFIX = "meshlab-"
METADATA = "checkpoint.json"
STATE = "state.json"
CONFIG = "config.yaml"


class CheckpointError(RuntimeError):
    """What stops a checkpoint command, said so that the user knows what to do."""


# --- the hypervisors -------------------------------------------------------------------------------


class Hypervisor(Protocol):
    """What a checkpoint needs of a hypervisor, for one VM at a time."""

    name: str

    def running(self, vm: str) -> bool: ...
    def pause(self, vm: str) -> None: ...
    def resume(self, vm: str) -> None: ...
    def save(self, vm: str, tag: str) -> None: ...
    def load(self, vm: str, tag: str) -> None: ...
    def delete(self, vm: str, tag: str) -> None: ...
    def tags(self, vm: str) -> dict[str, int]: ...  # tag -> bytes of saved memory state (0 when unknown)
    def folders(self, vm: str) -> list[Path]: ...  # where the VM's disks and saved states are


def _run(command: Sequence[str], what: str) -> str:
    try:
        result = subprocess.run(list(command), capture_output=True, text=True, check=False)
    except FileNotFoundError as error:
        raise CheckpointError(f"{what}: {command[0]} is not on PATH") from error
    if result.returncode != 0:
        detail = (result.stderr.strip() or result.stdout.strip()).splitlines()
        raise CheckpointError(f"{what}: {shlex.join(command)} failed: {detail[-1] if detail else result.returncode}")
    return result.stdout


class VirtualBox:
    """VBoxManage: a snapshot of a paused VM holds its saved state (memory) and differencing disks;
    a restore needs the VM powered off, and starting it resumes from the saved state."""

    name = "VirtualBox"

    def _state(self, vm: str) -> str:
        info = _run(["VBoxManage", "showvminfo", vm, "--machinereadable"], f"{vm}: reading its state")
        found = re.search(r'^VMState="([^"]*)"', info, re.MULTILINE)
        return found.group(1) if found else ""

    def running(self, vm: str) -> bool:
        return self._state(vm) == "running"

    def folders(self, vm: str) -> list[Path]:
        info = _run(["VBoxManage", "showvminfo", vm, "--machinereadable"], f"{vm}: reading its folder")
        found = re.search(r'^CfgFile="([^"]+)"', info, re.MULTILINE)
        return [Path(found.group(1)).parent] if found else []

    def pause(self, vm: str) -> None:
        _run(["VBoxManage", "controlvm", vm, "pause"], f"{vm}: pausing")

    def resume(self, vm: str) -> None:
        if self._state(vm) == "paused":
            _run(["VBoxManage", "controlvm", vm, "resume"], f"{vm}: resuming")
        else:  # restored: saved state, started from it
            _run(["VBoxManage", "startvm", vm, "--type", "headless"], f"{vm}: starting from its snapshot")

    def save(self, vm: str, tag: str) -> None:
        _run(["VBoxManage", "snapshot", vm, "take", tag, "--description", "meshlab checkpoint"], f"{vm}: snapshot")

    def load(self, vm: str, tag: str) -> None:
        if self._state(vm) in ("running", "paused"):
            _run(["VBoxManage", "controlvm", vm, "poweroff"], f"{vm}: powering off for the restore")
        _run(["VBoxManage", "snapshot", vm, "restore", tag], f"{vm}: restoring {tag}")

    def delete(self, vm: str, tag: str) -> None:
        _run(["VBoxManage", "snapshot", vm, "delete", tag], f"{vm}: deleting snapshot {tag}")

    def tags(self, vm: str) -> dict[str, int]:
        result = subprocess.run(
            ["VBoxManage", "snapshot", vm, "list", "--machinereadable"], capture_output=True, text=True, check=False
        )
        if result.returncode != 0:  # "This machine does not have any snapshots", or no such VM
            return {}
        names = re.findall(r'^SnapshotName(?:-[\d-]+)?="([^"]*)"', result.stdout, re.MULTILINE)
        return {name: 0 for name in names if name.startswith(TAG_PREFIX)}


class Qmp:
    """A QMP client (QEMU Machine Protocol: one JSON object a line over the VM's monitor socket)."""

    def __init__(self, path: Path, timeout: float = 600) -> None:
        self.path = path
        try:
            self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.socket.settimeout(timeout)
            self.socket.connect(str(path))
        except OSError as error:
            raise CheckpointError(f"cannot reach the QEMU monitor {path}: {error}") from error
        self.stream = self.socket.makefile("rw", encoding="utf-8", newline="\n")
        greeting = self._read()
        if "QMP" not in greeting:
            raise CheckpointError(f"{path} is not a QMP monitor (it said {greeting})")
        self.execute("qmp_capabilities")

    def _read(self) -> dict[str, Any]:
        line = self.stream.readline()
        if not line:
            raise CheckpointError(f"the QEMU monitor {self.path} closed the connection")
        message: dict[str, Any] = json.loads(line)
        return message

    def execute(self, command: str, **arguments: Any) -> Any:
        request: dict[str, Any] = {"execute": command}
        if arguments:
            request["arguments"] = arguments
        self.stream.write(json.dumps(request) + "\n")
        self.stream.flush()
        while True:
            reply = self._read()
            if "event" in reply:
                continue
            if "error" in reply:
                raise CheckpointError(f"QEMU refused {command}: {reply['error'].get('desc', reply['error'])}")
            return reply.get("return")

    def human(self, command_line: str) -> None:
        """An HMP command: savevm and loadvm answer with text only when they fail."""
        output = str(self.execute("human-monitor-command", **{"command-line": command_line}) or "").strip()
        if output:
            raise CheckpointError(f"QEMU: {command_line}: {output}")

    def close(self) -> None:
        self.stream.close()
        self.socket.close()


class Qemu:
    """QEMU: internal snapshots in each VM's qcow2 overlay (disk and memory), taken and loaded through
    its QMP monitor while it runs; `qemu-img info` lists them with the size of their memory state."""

    name = "QEMU"

    def __init__(self, cache: Path) -> None:
        self.cache = cache

    def directory(self, vm: str) -> Path:
        return self.cache / "qemu" / vm

    def folders(self, vm: str) -> list[Path]:
        return [self.directory(vm)]

    def monitor_path(self, vm: str) -> Path | None:
        """Where the VM's QMP socket is: qemu_vm_create records it in the VM's folder (`qmp`)."""
        record = self.directory(vm) / "qmp"
        return Path(record.read_text().strip()) if record.exists() else None

    def _monitor(self, vm: str) -> Qmp:
        path = self.monitor_path(vm)
        if path is None or not path.exists():
            raise CheckpointError(
                f"{vm} has no QMP monitor ({self.directory(vm) / 'qmp'}): it is not running, or an older meshlab "
                "started it; restart it once (pulumi up --replace on its NODE-vm step) to take checkpoints"
            )
        return Qmp(path)

    def _execute(self, vm: str, command: str, **arguments: Any) -> Any:
        monitor = self._monitor(vm)
        try:
            return monitor.execute(command, **arguments)
        finally:
            monitor.close()

    def _hmp(self, vm: str, command_line: str) -> None:
        monitor = self._monitor(vm)
        try:
            monitor.human(command_line)
        finally:
            monitor.close()

    def running(self, vm: str) -> bool:
        path = self.monitor_path(vm)
        if path is None or not path.exists():
            return False
        return bool(self._execute(vm, "query-status").get("running"))

    def pause(self, vm: str) -> None:
        self._execute(vm, "stop")

    def resume(self, vm: str) -> None:
        self._execute(vm, "cont")

    def save(self, vm: str, tag: str) -> None:
        self._hmp(vm, f"savevm {tag}")

    def load(self, vm: str, tag: str) -> None:
        # The caller paused every VM already; loadvm leaves this one stopped until `cont`.
        self._hmp(vm, f"loadvm {tag}")

    def delete(self, vm: str, tag: str) -> None:
        self._hmp(vm, f"delvm {tag}")

    def tags(self, vm: str) -> dict[str, int]:
        disk = self.directory(vm) / "disk.qcow2"
        if not disk.exists():
            return {}
        # -U: the running QEMU holds the image's lock; reading its snapshot table is safe.
        info = json.loads(_run(["qemu-img", "info", "-U", "--output=json", str(disk)], f"{vm}: listing snapshots"))
        return {
            snapshot["name"]: int(snapshot.get("vm-state-size", 0))
            for snapshot in info.get("snapshots", [])
            if snapshot["name"].startswith(TAG_PREFIX)
        }


# --- Pulumi's view of the stack --------------------------------------------------------------------


class PulumiStack:
    """The stack as the Pulumi CLI sees it (the Makefile's backend: $PULUMI_BACKEND_URL)."""

    def __init__(self, stack: str, cli: str = "pulumi") -> None:
        self.stack = stack
        self.cli = cli

    def _pulumi(self, *args: str) -> str:
        return _run([self.cli, *args, "--stack", self.stack, "--non-interactive"], f"pulumi {args[0]} {args[1]}")

    def export(self) -> dict[str, Any]:
        exported: dict[str, Any] = json.loads(self._pulumi("stack", "export"))
        return exported

    def import_state(self, path: Path) -> None:
        self._pulumi("stack", "import", "--file", str(path))

    def outputs(self) -> dict[str, Any]:
        outputs: dict[str, Any] = json.loads(self._pulumi("stack", "output", "--json", "--show-secrets"))
        return outputs


def last_update(state: dict[str, Any]) -> str:
    """When the state was last written by an update: its manifest's time ('' for an empty stack)."""
    return str(state.get("deployment", {}).get("manifest", {}).get("time", ""))


def vm_identities(state: dict[str, Any]) -> dict[str, str]:
    """Each VM step's output in the state (the VM's UUID), by step name: a replaced VM has another."""
    found = {}
    for resource in state.get("deployment", {}).get("resources", []) or []:
        urn = str(resource.get("urn", ""))
        if resource.get("type") == "command:local:Command" and urn.endswith("-vm"):
            found[urn.rsplit("::", 1)[-1]] = str(resource.get("outputs", {}).get("stdout", ""))
    return found


# --- checkpoints -----------------------------------------------------------------------------------


@dataclass
class Checkpoint:
    name: str
    stack: str
    hypervisor: str
    created: str
    vms: list[str]
    seconds: float
    state_time: str
    vm_identities: dict[str, str]
    config_sha256: str
    memory_bytes: dict[str, int] = field(default_factory=dict)
    disk_bytes: int = 0

    @property
    def tag(self) -> str:
        return TAG_PREFIX + self.name


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _allocated_bytes(paths: Sequence[Path]) -> int:
    """What the files under `paths` take on disk (allocated blocks: disks are sparse)."""
    return sum(f.stat().st_blocks * 512 for path in paths if path.exists() for f in path.rglob("*") if f.is_file())


def _size(size: int) -> str:
    """`512 B`, `3.4 MiB`, `1.0 GiB`."""
    if size < 1024:
        return f"{size} B"
    value, unit = size / 1024, "KiB"
    for bigger in ("MiB", "GiB"):
        if value < 1024:
            break
        value, unit = value / 1024, bigger
    return f"{value:.1f} {unit}"


@dataclass
class Lab:
    """One stack's VMs, its hypervisor, its Pulumi view and where its checkpoints live."""

    stack: str
    settings: Settings
    hypervisor: Hypervisor
    pulumi: PulumiStack
    home: Path
    config_file: Path
    wait_ready: Callable[[Lab], float]
    say: Callable[[str], None] = print

    @property
    def vms(self) -> list[str]:
        return [f"{NAMESPACE}-{self.stack}-{node.name}" for node in self.settings.topology.nodes]

    def folder(self, name: str) -> Path:
        return self.home / name

    def checkpoints(self) -> list[Checkpoint]:
        found = []
        for metadata in sorted(self.home.glob(f"*/{METADATA}")):
            found.append(Checkpoint(**json.loads(metadata.read_text())))
        return sorted(found, key=lambda checkpoint: checkpoint.created)

    def get(self, name: str) -> Checkpoint:
        for checkpoint in self.checkpoints():
            if checkpoint.name == name:
                return checkpoint
        names = ", ".join(c.name for c in self.checkpoints()) or "none"
        raise CheckpointError(f"stack {self.stack} has no checkpoint {name} (it has: {names})")

    def missing(self, checkpoint: Checkpoint, tags: dict[str, dict[str, int]] | None = None) -> list[str]:
        """The VMs that no longer hold the checkpoint's snapshot (rebuilt or deleted since); `tags`, each
        VM's snapshots when already read."""
        tags = tags if tags is not None else {vm: self.hypervisor.tags(vm) for vm in checkpoint.vms}
        return [vm for vm in checkpoint.vms if checkpoint.tag not in tags.get(vm, {})]

    # --- save --------------------------------------------------------------------------------

    def save(self, name: str) -> Checkpoint:
        if not _NAME.match(name):
            raise CheckpointError(f"checkpoint name {name!r}: letters, digits, '.', '_' and '-', at most 63")
        if (self.folder(name) / METADATA).exists():
            raise CheckpointError(f"stack {self.stack} has a checkpoint {name} already: delete it first")
        stopped = [vm for vm in self.vms if not self.hypervisor.running(vm)]
        if stopped:
            raise CheckpointError(f"not running: {', '.join(stopped)}; a checkpoint saves running VMs (make up)")
        state = self.pulumi.export()
        tag = TAG_PREFIX + name
        folders = [folder for vm in self.vms for folder in self.hypervisor.folders(vm)]
        before = _allocated_bytes(folders)
        started = time.monotonic()
        paused: list[str] = []
        try:
            # Every VM stops before any is saved: all of them come back from the same moment.
            for vm in self.vms:
                self.hypervisor.pause(vm)
                paused.append(vm)
            for vm in self.vms:
                self.say(f"{vm}: saving")
                self.hypervisor.save(vm, tag)
        finally:
            for vm in paused:
                self.hypervisor.resume(vm)
        seconds = time.monotonic() - started
        folder = self.folder(name)
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o700)
        # Encrypted secrets stay encrypted: the export holds what the stack file's passphrase protects.
        (folder / STATE).write_text(json.dumps(state, indent=2) + "\n")
        (folder / CONFIG).write_bytes(self.config_file.read_bytes())
        memory = {vm: self.hypervisor.tags(vm).get(tag, 0) for vm in self.vms}
        checkpoint = Checkpoint(
            name=name,
            stack=self.stack,
            hypervisor=self.hypervisor.name,
            created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            vms=self.vms,
            seconds=round(seconds, 1),
            state_time=last_update(state),
            vm_identities=vm_identities(state),
            config_sha256=_sha256(self.config_file),
            memory_bytes=memory,
            disk_bytes=max(0, _allocated_bytes(folders) - before),
        )
        (folder / METADATA).write_text(json.dumps(asdict(checkpoint), indent=2) + "\n")
        self.say(
            f"checkpoint {name} of stack {self.stack}: {counted(len(self.vms), 'VM')} saved in {seconds:.1f} s "
            f"({_size(sum(memory.values()))} of memory state)"
        )
        return checkpoint

    # --- restore -----------------------------------------------------------------------------

    def restore(self, name: str) -> float:
        checkpoint = self.get(name)
        state = self.pulumi.export()
        replaced = sorted(
            step
            for step, identity in vm_identities(state).items()
            if checkpoint.vm_identities.get(step, identity) != identity
        )
        missing = self.missing(checkpoint)
        if replaced or missing:
            gone = ", ".join(replaced or missing)
            raise CheckpointError(
                f"checkpoint {name} cannot come back: {gone} was rebuilt since it was taken (its snapshot is gone); "
                f"delete it (python -m tools.checkpoint {self.stack} delete {name})"
            )
        started = time.monotonic()
        # Every VM stops before any is loaded: none runs on while another is already back.
        for vm in self.vms:
            if self.hypervisor.running(vm):
                self.hypervisor.pause(vm)
        for vm in self.vms:
            self.say(f"{vm}: restoring")
            self.hypervisor.load(vm, checkpoint.tag)
        for vm in self.vms:
            self.hypervisor.resume(vm)
        restored = time.monotonic() - started
        self.say(f"{counted(len(self.vms), 'VM')} back at checkpoint {name} in {restored:.1f} s")
        self._restore_state(checkpoint, state)
        ready = self.wait_ready(self)
        self.say(f"the cluster is Ready {ready:.0f} s later; {restored + ready:.0f} s in all")
        return restored + ready

    def _restore_state(self, checkpoint: Checkpoint, state: dict[str, Any]) -> None:
        """The Pulumi state that describes the VMs as they are again, and what to run after."""
        folder = self.folder(checkpoint.name)
        if last_update(state) == checkpoint.state_time:
            self.say(f"the Pulumi state is the one checkpoint {checkpoint.name} was taken with")
        else:
            kept = folder / f"state-before-restore-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
            kept.write_text(json.dumps(state, indent=2) + "\n")
            self.pulumi.import_state(folder / STATE)
            self.say(
                f"the Pulumi state described a later update ({last_update(state) or 'none'}) than the checkpoint "
                f"({checkpoint.state_time or 'none'}): the checkpoint's state is back, the later one is kept in {kept}"
            )
        if _sha256(self.config_file) != checkpoint.config_sha256:
            self.say(
                f"{self.config_file.name} changed since the checkpoint: run `make up STACK={self.stack}` to apply "
                f"it again (its checkpoint copy: {folder / CONFIG})"
            )

    # --- list, delete, discard ---------------------------------------------------------------

    def listing(self) -> list[str]:
        lines = []
        checkpoints = self.checkpoints()
        # One read of each VM's snapshots for the whole list.
        tags = {vm: self.hypervisor.tags(vm) for vm in sorted({vm for c in checkpoints for vm in c.vms})}
        for checkpoint in checkpoints:
            memory = sum(checkpoint.memory_bytes.values())
            missing = self.missing(checkpoint, tags)
            note = f"  BROKEN: {', '.join(missing)} lost its snapshot (rebuilt?)" if missing else ""
            lines.append(
                f"{checkpoint.name}  {checkpoint.created}  {counted(len(checkpoint.vms), 'VM')}  "
                f"memory state {_size(memory)}; {_size(checkpoint.disk_bytes)} more on disk at creation, growing "
                f"as the VMs write  "
                f"(saved in {checkpoint.seconds:.0f} s){note}"
            )
        return lines

    def delete(self, name: str) -> None:
        checkpoint = self.get(name)
        for vm in checkpoint.vms:
            if checkpoint.tag in self.hypervisor.tags(vm):
                self.hypervisor.delete(vm, checkpoint.tag)
        self._forget(checkpoint)
        self.say(f"checkpoint {name} deleted")

    def _forget(self, checkpoint: Checkpoint) -> None:
        shutil.rmtree(self.folder(checkpoint.name))

    def discard(self, *, dry_run: bool) -> list[str]:
        """What `make destroy` drops: every checkpoint of the stack (the VMs take their snapshots with them)."""
        names = [c.name for c in self.checkpoints()]
        if names and dry_run:
            self.say(f"destroying stack {self.stack} discards its checkpoints: {', '.join(names)}")
        elif names:
            for checkpoint in self.checkpoints():
                self._forget(checkpoint)
            self.say(f"discarded the checkpoints of stack {self.stack}: {', '.join(names)}")
        return names


# --- readiness -------------------------------------------------------------------------------------


def wait_ready_over_ssh(lab: Lab) -> float:
    """Run the cluster layer's readiness step (every node Ready, Cilium rolled out) on the first server,
    as the program registers it, with the stack's own login and pinned host key; its duration."""
    from tools.render import render  # noqa: PLC0415 - renders the program: only when restoring

    remote = render(read_stack_file(lab.config_file), lab.stack).of_type("command:remote:Command")
    [ready] = [r for r in remote if r.name == "cluster-ready"]
    outputs = lab.pulumi.outputs()
    first = lab.settings.topology.servers[0]
    known = dict(line.split(" ", 1) for line in str(outputs.get("sshKnownHosts", "")).splitlines() if " " in line)
    if str(first.ip) not in known or "sshPrivateKey" not in outputs:
        raise CheckpointError("the stack's outputs lack sshKnownHosts or sshPrivateKey: run `make up` once first")
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as work:
        key, hosts = Path(work) / "key", Path(work) / "known_hosts"
        key.write_text(str(outputs["sshPrivateKey"]))
        key.chmod(0o600)
        hosts.write_text(f"{first.ip} {known[str(first.ip)]}\n")
        command = [
            "ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={hosts}",
            "-o", "ConnectTimeout=10", "-i", str(key), f"{outputs.get('sshUser', 'meshlab')}@{first.ip}",
            str(ready.inputs["create"]),
        ]  # fmt: skip
        # sshd answers a little after the VM resumes: ssh's own failure (255) is tried again.
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        for _ in range(29):
            if result.returncode != 255:
                break
            time.sleep(2)
            result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise CheckpointError(f"the cluster did not become Ready after the restore: {result.stderr.strip()}")
    return time.monotonic() - started


# --- the command line ------------------------------------------------------------------------------


class NotOurMachinesError(CheckpointError):
    """The stack runs on machines meshlab did not create: there is nothing to snapshot (or discard)."""


def lab_for(stack: str, config_file: Path | None = None) -> Lab:
    path = stack_config_file(stack, config_file)
    settings = settings_from_config(read_stack_file(path, stack))
    if settings.cluster.existing or settings.hosts.existing:
        what = "an existing cluster" if settings.cluster.existing else "existing hosts"
        raise NotOurMachinesError(
            f"stack {stack} runs on {what}: meshlab does not own those machines and cannot snapshot them. Use RKE2's "
            "etcd snapshots instead (meshlab schedules them: meshlab:etcdSnapshotSchedule); docs/hosts.md, "
            "'Checkpoints', says how to restore one"
        )
    from components.cluster.artifacts import cache_root  # noqa: PLC0415 - the program's modules load slowly

    cache = cache_root(settings)
    hypervisor: Hypervisor = Qemu(cache) if settings.hosts.hypervisor == "qemu" else VirtualBox()
    return Lab(
        stack=stack,
        settings=settings,
        hypervisor=hypervisor,
        pulumi=PulumiStack(stack),
        home=cache / "checkpoints" / stack,
        config_file=path,
        wait_ready=wait_ready_over_ssh,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.checkpoint", description=__doc__.split("\n\n")[0])
    parser.add_argument("stack")
    commands = parser.add_subparsers(dest="command", required=True)
    for command in ("save", "restore", "delete"):
        commands.add_parser(command).add_argument("name")
    commands.add_parser("list")
    commands.add_parser("discard").add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)
    os.chdir(ROOT)
    try:
        lab = lab_for(args.stack)
        if args.command == "save":
            lab.save(args.name)
        elif args.command == "restore":
            lab.restore(args.name)
        elif args.command == "delete":
            lab.delete(args.name)
        elif args.command == "discard":
            lab.discard(dry_run=args.dry_run)
        else:
            lines = lab.listing()
            print("\n".join(lines) if lines else f"stack {args.stack} has no checkpoints")
    except NotOurMachinesError as error:
        if args.command == "discard":
            return 0  # `make destroy` of such a stack: it never had checkpoints
        print(f"checkpoint: {error}", file=sys.stderr)
        return 1
    except (CheckpointError, UnknownStackError) as error:
        print(f"checkpoint: {error}", file=sys.stderr)
        return 1
    except (OSError, SettingsError) as error:
        print(f"checkpoint: cannot read stack {args.stack}: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    run(main)
