"""A fake running QEMU VM for the checkpoint tests: its QMP monitor on a socket whose path DIR/qmp
records, as qemu_vm_create records it (QEMU Machine Protocol: a greeting, then one JSON command and
one JSON reply a line), and its qcow2 overlay's snapshot table in DIR/disk.qcow2 (JSON, which
tests/fakes/qemu/qemu-img reads).

The guest's "memory" is a string: savevm keeps it with the snapshot, loadvm brings it back; a test
changes it between the two. Commands served: qmp_capabilities, query-status, stop, cont and the HMP
commands savevm, loadvm and delvm (through human-monitor-command, which answers with text only on
failure, as QEMU's HMP does). Every command is appended to the shared `calls` as (vm, command).
"""

from __future__ import annotations

import json
import shutil
import socket
import tempfile
import threading
from pathlib import Path
from typing import Any


class FakeQemuVm:
    def __init__(self, directory: Path, name: str, calls: list[tuple[str, str]], memory: str = "booted") -> None:
        self.directory, self.name, self.calls = directory, name, calls
        self.running = True
        self.memory = memory
        self.fail_savevm = ""
        directory.mkdir(parents=True, exist_ok=True)
        self.disk = directory / "disk.qcow2"
        self.disk.write_text("{}")
        # A short path, as qemu_vm_create takes one when DIR/qmp.sock would be too long for a socket.
        self.socket_path = Path(tempfile.mkdtemp(prefix="qmp-")) / "qmp.sock"
        (directory / "qmp").write_text(f"{self.socket_path}\n")
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(self.socket_path))
        self.server.listen(4)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    # --- the snapshot table ------------------------------------------------------------------

    def snapshots(self) -> dict[str, Any]:
        table: dict[str, Any] = json.loads(self.disk.read_text())
        return table

    def _write(self, table: dict[str, Any]) -> None:
        self.disk.write_text(json.dumps(table))

    # --- the monitor -------------------------------------------------------------------------

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            with connection, connection.makefile("rw", encoding="utf-8", newline="\n") as stream:
                stream.write(json.dumps({"QMP": {"version": {"qemu": {"major": 8}}, "capabilities": []}}) + "\n")
                stream.flush()
                for line in stream:
                    request = json.loads(line)
                    reply = self._execute(request["execute"], request.get("arguments", {}))
                    stream.write(json.dumps(reply) + "\n")
                    stream.flush()

    def _execute(self, command: str, arguments: dict[str, Any]) -> dict[str, Any]:
        if command == "human-monitor-command":
            command = arguments["command-line"]
        self.calls.append((self.name, command))
        if command == "qmp_capabilities":
            return {"return": {}}
        if command == "query-status":
            return {"return": {"running": self.running, "status": "running" if self.running else "paused"}}
        if command in ("stop", "cont"):
            self.running = command == "cont"
            return {"return": {}}
        verb, _, tag = command.partition(" ")
        table = self.snapshots()
        if verb == "savevm":
            if self.fail_savevm:
                return {"return": self.fail_savevm + "\r\n"}
            table[tag] = {"info": {"vm-state-size": 1024 * 1024 * (len(table) + 3)}, "memory": self.memory}
            self._write(table)
            return {"return": ""}
        if tag not in table:
            return {"return": f"Error: Snapshot '{tag}' does not exist in one or more devices\r\n"}
        if verb == "loadvm":
            self.memory = table[tag]["memory"]
            return {"return": ""}
        if verb == "delvm":
            del table[tag]
            self._write(table)
            return {"return": ""}
        return {"error": {"class": "CommandNotFound", "desc": f"The command {command} has not been found"}}

    def close(self) -> None:
        self.server.close()
        shutil.rmtree(self.socket_path.parent, ignore_errors=True)
