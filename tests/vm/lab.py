"""Drive meshlab's own steps on real guests: the commands the program registers, run as Pulumi's
command provider runs them.

The QEMU stack is rendered in-process (tools.render, under mocks) and each step is taken from
what the program registered: a local step's script, environment and stdin are run with
`bash -c` inside the tier's network namespace, from the project root, as
pulumi-command's local.Command does; a remote step's command line is run over SSH, as
remote.Command does, and a CopyToRemote's text is written to its remote path. Nothing here is
a copy of a step: change a script and this tier runs the change.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from config.loader import StackConfig
from tests.vm.netns import NetworkNamespace
from tools.render import ROOT, Registration, Rendering, render

LOCAL = "command:local:Command"
REMOTE = "command:remote:Command"
COPY = "command:remote:CopyToRemote"
# A node of the stack, by backend: what its steps run on.
NODE_COMPONENTS = ("meshlab:hosts:QemuVm", "meshlab:hosts:ExistingHost")
# Host keys are checked as the command provider's connections check them: each guest must present the
# key its connection pins (VmLab.known_hosts).
SSH_OPTIONS = [
    "-o", "BatchMode=yes",
    "-o", "StrictHostKeyChecking=yes",
    "-o", "LogLevel=ERROR",
    "-o", "ConnectTimeout=10",
]  # fmt: skip
# What a rendering under mocks shows for a command's stdout (tools.render.LabMocks).
MOCK_STDOUT = "{} done"


def progress(message: str) -> None:
    """A line on the terminal even under pytest's capture: the tier takes minutes."""
    print(f"[vm tier {time.strftime('%H:%M:%S')}] {message}", file=sys.__stderr__, flush=True)


@dataclass
class StepRun:
    name: str
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def check(self) -> StepRun:
        assert self.returncode == 0, f"{self.name} failed ({self.returncode}):\n{self.stderr}\n{self.stdout}"
        return self


@dataclass
class VmLab:
    """A rendered stack (on QEMU, or on the QEMU guests as existing hosts) and the namespace its steps run in."""

    config: StackConfig
    stack: str
    netns: NetworkNamespace
    private_key: Path
    user: str
    rendering: Rendering = field(init=False)
    # The last stdout of each local step, as the provider keeps it for the next run and the delete.
    outputs: dict[str, str] = field(default_factory=dict)
    timings: list[tuple[str, float]] = field(default_factory=list)
    # Processes the tests start besides the steps (the stand-ins), stopped by PID on the way out.
    processes: list[subprocess.Popen[str]] = field(default_factory=list)
    # The guests' real host keys by node, where the stack's own pins are learned by its steps (existing
    # hosts); None: the keys every connection of the stack pins (a VM's generated key).
    guest_host_keys: dict[str, str] | None = None

    def __post_init__(self) -> None:
        self.rendering = render(self.config, self.stack)

    # --- what the program registered ---------------------------------------------------------

    def registration(self, type_token: str, name: str) -> Registration:
        found = [r for r in self.rendering.of_type(type_token) if r.name == name]
        assert len(found) == 1, f"the program registers no single {type_token} named {name}"
        return found[0]

    def _nodes(self) -> list[Registration]:
        """The node components of whichever backend the stack uses (QEMU VMs, or existing hosts)."""
        nodes = [r for token in NODE_COMPONENTS for r in self.rendering.of_type(token)]
        assert nodes, f"the stack registers none of {', '.join(NODE_COMPONENTS)}"
        return nodes

    def vm_names(self) -> list[str]:
        """The node components (node names): servers first, each role by name."""
        return [r.name for r in sorted(self._nodes(), key=lambda r: (r.inputs["role"] != "server", r.name))]

    def node_ip(self, node: str) -> str:
        [found] = [r for r in self._nodes() if r.name == node]
        return str(found.inputs["ip"])

    # --- local steps ----------------------------------------------------------------------

    def local_step(
        self,
        name: str,
        *,
        delete: bool = False,
        environment: Mapping[str, str] | None = None,
        stdin: str | None = None,
        timeout: float = 900,
    ) -> StepRun:
        """Run local step `name`'s create (or delete) script as local.Command would."""
        step = self.registration(LOCAL, name)
        script = step.inputs["delete" if delete else "create"]
        inputs = {key: self.with_outputs(value) for key, value in step.inputs.get("environment", {}).items()}
        env = {**os.environ, **inputs, **(environment or {})}
        if step.inputs.get("addPreviousOutputInEnv") and name in self.outputs:
            env["PULUMI_COMMAND_STDOUT"] = self.outputs[name]
        started = time.monotonic()
        result = self.netns.run(
            [*step.inputs["interpreter"], script],
            env=env,
            cwd=ROOT,
            input=stdin if stdin is not None else step.revealed_inputs.get("stdin"),
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        run = StepRun(name, result.returncode, result.stdout.strip(), result.stderr, time.monotonic() - started)
        if result.returncode == 0 and not delete:
            self.outputs[name] = run.stdout
        self.timings.append((f"{name}{' (delete)' if delete else ''}", run.seconds))
        return run

    def with_outputs(self, value: str) -> str:
        """An input with each step output the rendering shows as a mock value replaced by what that
        step printed when this tier ran it: how Pulumi hands one step's output to the next."""
        for name, output in self.outputs.items():
            value = value.replace(MOCK_STDOUT.format(name), output)
        return value

    # --- host keys ------------------------------------------------------------------------

    def host_key(self, node: str) -> str:
        """The host key `node` must present: the guest's own, or the one its connections pin."""
        if self.guest_host_keys is not None:
            return self.guest_host_keys[node]
        # Every VM's first remote step, the wait for cloud-init, pins the key its seed installs.
        return str(self.registration(REMOTE, f"{node}-cloud-init").revealed_inputs["connection"]["hostKey"])

    def known_hosts(self, node: str) -> Path:
        """A known_hosts file that holds only `node`'s key."""
        path = self.private_key.parent / f"known_hosts.{self.stack}.{node}"
        path.write_text(f"{self.node_ip(node)} {self.host_key(node)}\n")
        return path

    # --- remote steps ---------------------------------------------------------------------

    def ssh(self, node: str, command: str, *, stdin: str | None = None, timeout: float = 600) -> StepRun:
        """Run a command line on `node` over SSH as the login user, as remote.Command does."""
        started = time.monotonic()
        target = f"{self.user}@{self.node_ip(node)}"
        pinned = ["-o", f"UserKnownHostsFile={self.known_hosts(node)}"]
        result = self.netns.run(
            ["ssh", *SSH_OPTIONS, *pinned, "-i", str(self.private_key), target, command],
            input=stdin,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        return StepRun(node, result.returncode, result.stdout.strip(), result.stderr, time.monotonic() - started)

    def ssh_retrying(self, node: str, command: str, *, stdin: str | None = None, attempts: int = 12) -> StepRun:
        """cloud-init restarts sshd after key login already works: a connection may fail (exit 255)."""
        for _ in range(attempts - 1):
            run = self.ssh(node, command, stdin=stdin)
            if run.returncode != 255:
                return run
            time.sleep(5)
        return self.ssh(node, command, stdin=stdin)

    def remote_step(
        self, name: str, *, delete: bool = False, replace: Mapping[str, str] | None = None, type_token: str = REMOTE
    ) -> StepRun:
        """Run remote step `name`'s create (or delete) command on its node. `replace` swaps the value of
        an exported input (a stand-in for an internet endpoint), which the caller names as such."""
        step = self.registration(type_token, name)
        command = str(step.inputs["delete" if delete else "create"])
        if replace:
            command = with_inputs(command, replace)
        started = time.monotonic()
        run = self.ssh_retrying(self.node_of(step), command)
        run = StepRun(name, run.returncode, run.stdout, run.stderr, time.monotonic() - started)
        self.timings.append((f"{name}{' (delete)' if delete else ''}", run.seconds))
        return run

    def copy_step(self, name: str) -> StepRun:
        """A CopyToRemote: its text written to its remote path as the login user, or its file copied there
        with scp (the parent directories made first, as the provider does)."""
        step = self.registration(COPY, name)
        source: Any = step.inputs["source"]
        if isinstance(source, dict) and "path" in source:
            return self._copy_file(step, source["path"], step.inputs["remotePath"])
        # A secret source (the RKE2 config holds the join token) is "[secret]" in a rendering under
        # mocks; the files step moves whatever is staged, so a placeholder exercises it the same way.
        text = source.get("text", "") if isinstance(source, dict) else f"# meshlab vm tier: placeholder for {source}\n"
        path = step.inputs["remotePath"]
        return self.ssh_retrying(self.node_of(step), f"cat > {shlex.quote(path)}", stdin=text)

    def _copy_file(self, step: Registration, local_path: str, remote_path: str) -> StepRun:
        node = self.node_of(step)
        parent = remote_path.rsplit("/", 1)[0]
        self.ssh_retrying(node, f"mkdir -p {shlex.quote(parent)}").check()
        started = time.monotonic()
        target = f"{self.user}@{self.node_ip(node)}:{remote_path}"
        result = self.netns.run(
            [
                "scp",
                "-q",
                *SSH_OPTIONS,
                "-o",
                f"UserKnownHostsFile={self.known_hosts(node)}",
                "-i",
                str(self.private_key),
                local_path,
                target,
            ],
            capture_output=True,
            timeout=600,
            check=False,
        )
        seconds = time.monotonic() - started
        self.timings.append((step.name, seconds))
        return StepRun(step.name, result.returncode, result.stdout.strip(), result.stderr, seconds)

    def node_of(self, step: Registration) -> str:
        """The node a step runs on: `NODE-...` in the hosts layer, `cluster-NODE-...` in the cluster
        layer, and the NFS export on the first server."""
        for node in self.vm_names():
            if step.name.startswith((f"{node}-", f"cluster-{node}-")):
                return node
        if step.name.startswith("cluster-nfs"):
            return self.vm_names()[0]
        raise AssertionError(f"{step.name} names no node")


def with_inputs(command: str, replace: Mapping[str, str]) -> str:
    """`sudo -n bash -c SCRIPT` with some of SCRIPT's `export NAME=value` lines given new values."""
    words = shlex.split(command)
    assert words[:4] == ["sudo", "-n", "bash", "-c"], words[:4]
    lines = words[4].split("\n")
    for name, value in replace.items():
        indexes = [i for i, line in enumerate(lines) if line.startswith(f"export {name}=")]
        assert len(indexes) == 1, f"the step exports no single {name}"
        lines[indexes[0]] = f"export {name}={shlex.quote(value)}"
    return shlex.join([*words[:4], "\n".join(lines)])


def seed_with(stdin: str, **documents: str) -> str:
    """A seed step's stdin (the NoCloud documents as JSON) with some documents replaced."""
    seed = json.loads(stdin)
    seed.update({key.replace("_", "-"): value for key, value in documents.items()})
    return json.dumps(seed, sort_keys=True)
