"""A network namespace of the tier's own: the bridge, the taps and every guest NIC live in it, so
nothing the tier does touches this machine's network."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path


class NetworkNamespace:
    def __init__(self, name: str) -> None:
        self.name = name

    def create(self) -> None:
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        self.run(["ip", "link", "set", "lo", "up"], check=True)

    def argv(self, command: Sequence[str]) -> list[str]:
        """`command` run inside the namespace."""
        return ["ip", "netns", "exec", self.name, *command]

    def run(self, command: Sequence[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        kwargs.setdefault("check", False)
        return subprocess.run(self.argv(command), text=True, **kwargs)  # type: ignore[call-overload, no-any-return]  # noqa: PLW1510

    def links(self) -> list[str]:
        """The names of the namespace's network interfaces."""
        out = self.run(["ip", "-o", "link", "show"], capture_output=True, check=True).stdout
        return [line.split(": ")[1].split("@")[0] for line in out.splitlines()]

    def exists(self) -> bool:
        return Path(f"/run/netns/{self.name}").exists()

    def delete(self) -> None:
        if self.exists():
            subprocess.run(["ip", "netns", "delete", self.name], check=True)
