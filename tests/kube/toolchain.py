"""The control plane `make kube` builds (tests/kube/bootstrap.sh): where it is and what it lacks."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.engine import toolchain as engine_toolchain
from tests.engine.toolchain import read_status  # bootstrap.sh writes the engine tier's status.tsv format

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
BOOTSTRAP = HERE / "bootstrap.sh"
VERSIONS = HERE / "versions.env"

ETCD = "etcd"
APISERVER = "kube-apiserver"
CONTROLLER_MANAGER = "kube-controller-manager"
KUBECTL = "kubectl"
ALL = (ETCD, APISERVER, CONTROLLER_MANAGER, KUBECTL)
# The real-apply tier (tests/apply) adds a scheduler and fake nodes.
SCHEDULER = "kube-scheduler"
KWOK = "kwok"
APPLY = (*ALL, SCHEDULER, KWOK)
KWOK_STAGES = "kwok-stages"


def read_versions(path: Path = VERSIONS) -> dict[str, str]:
    """KEY=VALUE lines of this tier's versions.env (the engine tier's format)."""
    return engine_toolchain.read_versions(path)


def cache_dir() -> Path:
    """The cache directory of the current versions (it may not exist yet)."""
    out = subprocess.run(["bash", str(BOOTSTRAP), "--dir"], check=True, capture_output=True, text=True)
    return Path(out.stdout.strip())


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
