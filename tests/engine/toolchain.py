"""The Pulumi toolchain `make engine` builds (tests/engine/bootstrap.sh), and running the real CLI with it.

Every run gets its own PULUMI_HOME (the providers installed with `pulumi plugin install --file`), a
local file backend, a test passphrase, and no update checks or automatic plugin downloads. The
project is copied to a temporary directory first: `pulumi stack init` writes the passphrase salt
into the stack's config file, and the tests change stack config, neither of which may touch the
repository.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
BOOTSTRAP = HERE / "bootstrap.sh"
VERSIONS = HERE / "versions.env"
PASSPHRASE = "meshlab-engine-tests"  # the stack files hold no encrypted value; any passphrase works

CLI = "pulumi"
LANGUAGE_HOST = "pulumi-language-python"
PROVIDERS = ("kubernetes", "command", "random", "tls")
STANDIN_PROVIDERS = ("command", "random", "tls")  # tests/engine/plugins/standin-provider
ALL = (CLI, LANGUAGE_HOST, *(f"pulumi-resource-{p}" for p in PROVIDERS))


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
    version: str  # the plugin version (engine) or the pinned version (kube) it was built as
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


def missing(directory: Path, names: tuple[str, ...]) -> list[str]:
    """One line for each component of `names` that is not in the cache, with bootstrap's reason."""
    status = read_status(directory)
    lines = []
    for name in names:
        binary = directory / ("providers" if name.startswith("pulumi-resource-") else "bin") / name
        extra = [directory / "bin" / f"{name}-exec"] if name == LANGUAGE_HOST else []
        if binary.is_file() and os.access(binary, os.X_OK) and all(p.is_file() for p in extra):
            continue
        known = status.get(name)
        why = f"{known.state}: {known.detail}" if known else "not built: run `make engine`"
        lines.append(f"{name} ({why})")
    return lines


def copy_project(dest: Path, edits: Mapping[str, tuple[str, str]] | None = None) -> Path:
    """The program, its stack files and the policy pack, as git tracks them, with ./venv linked in.

    `edits` maps a file to (old, new): a variant of the program with `old` replaced by `new` once, which
    must occur exactly once (so a variant cannot silently stop applying when the code changes)."""
    files = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO,
            check=True,
            capture_output=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for rel in files:
        if not rel or rel.startswith("tests/") or not (REPO / rel).is_file():
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, target)
    for rel, (old, new) in (edits or {}).items():
        path = dest / rel
        source = path.read_text()
        if source.count(old) != 1:
            raise ValueError(f"{rel}: expected {old!r} exactly once, found it {source.count(old)} times")
        path.write_text(source.replace(old, new))
    (dest / "venv").symlink_to(REPO / "venv")
    return dest


@dataclass
class Engine:
    """The real CLI, with a private PULUMI_HOME and file backend, run in a copy of the project."""

    bin_dir: Path  # the CLI and the language host
    home: Path
    backend: Path
    project: Path
    versions: dict[str, str] = field(default_factory=read_versions)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PULUMI_", "VIRTUAL_ENV"))}
        env.update(
            PULUMI_HOME=str(self.home),
            PULUMI_BACKEND_URL=f"file://{self.backend}",
            PULUMI_CONFIG_PASSPHRASE=PASSPHRASE,
            PULUMI_SKIP_UPDATE_CHECK="true",
            PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION="true",
            PULUMI_SKIP_CONFIRMATIONS="true",
            # The CLI finds the language host on PATH; the host takes the virtualenv from Pulumi.yaml
            # (and the policy pack's from PulumiPolicy.yaml), so no venv is activated here.
            PATH=os.pathsep.join([str(self.bin_dir), env.get("PATH", "")]),
            NO_COLOR="1",
        )
        return env

    def run(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        flags = [] if args[0] == "plugin" else ["--non-interactive"]
        return subprocess.run(
            [str(self.bin_dir / CLI), *args, *flags],
            cwd=self.project,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def install_providers(self) -> None:
        for name in PROVIDERS:
            binary = self.bin_dir.parent / "providers" / f"pulumi-resource-{name}"
            if binary.exists():
                version = self.versions[f"{name.upper()}_PLUGIN_VERSION"]
                done = self.run("plugin", "install", "resource", name, version, "--file", str(binary))
                if done.returncode != 0:
                    raise RuntimeError(f"pulumi plugin install {name} {version}: {done.stdout}{done.stderr}")

    def init_stack(self, stack: str) -> None:
        done = self.run("stack", "init", stack)
        if done.returncode != 0:
            raise RuntimeError(f"pulumi stack init {stack}: {done.stdout}{done.stderr}")

    def preview(self, stack: str, *extra: str) -> subprocess.CompletedProcess[str]:
        return self.run(
            "preview",
            "--stack",
            stack,
            "--policy-pack",
            "policy-pack",
            "--policy-pack-config",
            f"policy-pack/config/{stack}.json",
            *extra,
        )


def preview_steps(stdout: str) -> list[dict[str, object]]:
    """The steps of `pulumi preview --json`."""
    steps = json.loads(stdout).get("steps", [])
    assert isinstance(steps, list)
    return steps


def type_and_name(urn: str) -> tuple[str, str]:
    """(type, name) of a URN: urn:pulumi:STACK::PROJECT::[PARENT$]TYPE::NAME."""
    _, _, qualified_type, name = urn.split("::", 3)
    return qualified_type.split("$")[-1], name
