"""The control plane `make kube` builds (tests/kube/bootstrap.sh): where it is and what it lacks."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
BOOTSTRAP = HERE / "bootstrap.sh"
VERSIONS = HERE / "versions.env"

ETCD = "etcd"
APISERVER = "kube-apiserver"
CONTROLLER_MANAGER = "kube-controller-manager"
KUBECTL = "kubectl"
ALL = (ETCD, APISERVER, CONTROLLER_MANAGER, KUBECTL)


def read_versions(path: Path = VERSIONS) -> dict[str, str]:
    """KEY=VALUE lines of versions.env (comments and blank lines skipped)."""
    versions: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            versions[key] = value
    return versions


def cache_dir() -> Path:
    """The cache directory of the current versions (it may not exist yet)."""
    out = subprocess.run(["bash", str(BOOTSTRAP), "--dir"], check=True, capture_output=True, text=True)
    return Path(out.stdout.strip())


@dataclass(frozen=True)
class Component:
    name: str
    version: str
    state: str
    detail: str


def read_status(directory: Path) -> dict[str, Component]:
    """bootstrap.sh's status.tsv: what was built, and why anything is missing."""
    status: dict[str, Component] = {}
    path = directory / "status.tsv"
    if path.exists():
        for line in path.read_text().splitlines():
            name, version, state, detail = [*line.split("\t"), "", "", ""][:4]
            status[name] = Component(name, version, state, detail)
    return status


def missing(directory: Path, names: tuple[str, ...] = ALL) -> list[str]:
    """One line for each binary of `names` that is not in the cache, with bootstrap's reason."""
    status = read_status(directory)
    lines = []
    for name in names:
        binary = directory / "bin" / name
        if binary.is_file() and os.access(binary, os.X_OK):
            continue
        known = status.get(name)
        why = f"{known.state}: {known.detail}" if known else "not built: run `make kube`"
        lines.append(f"{binary} ({why})")
    return lines
