"""`make up`, `make preview` and `make destroy` check the machine's tools before they build the venv.

A fresh clone without the Pulumi CLI used to spend minutes installing the dev environment before
saying so. These tests run the real Makefile with a PATH that has no pulumi and no VBoxManage and a
stand-in Python that records being asked to build a venv.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tools" / "prerequisites.sh"
BASH = shutil.which("bash") or "/bin/bash"
MAKE = shutil.which("make")
# Everything make and the check itself run; pulumi and VBoxManage are left out on purpose.
TOOLS = ("bash", "sh", "env", "sed", "head", "tr", "uname", "mkdir", "cat", "grep", "touch", "rm")


@pytest.fixture
def bare_path(tmp_path: Path) -> Path:
    """A bin directory with only the basic tools, and a python3 that logs its arguments and builds nothing."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in TOOLS:
        found = shutil.which(tool)
        assert found, f"{tool} is needed to run these tests"
        (bin_dir / tool).symlink_to(found)
    python = bin_dir / "python3"
    python.write_text(
        f'#!{BASH}\necho "$*" >>"{tmp_path}/python.log"\n[ "$1" = -c ] || exit 1\nexec "{sys.executable}" "$@"\n'
    )
    python.chmod(0o755)
    return bin_dir


def stub(bin_dir: Path, name: str) -> None:
    (bin_dir / name).write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / name).chmod(0o755)


def make(target: str, bin_dir: Path, tmp_path: Path, **variables: str) -> subprocess.CompletedProcess[str]:
    assert MAKE, "GNU make is needed to run these tests"
    assignments = [f"{key}={value}" for key, value in {"VENV": str(tmp_path / "venv"), **variables}.items()]
    return subprocess.run(
        [MAKE, "--no-print-directory", target, *assignments, f"PYTHON={bin_dir / 'python3'}"],
        cwd=ROOT,
        env={"PATH": str(bin_dir), "HOME": str(tmp_path), "MESHLAB_STATE": str(tmp_path / "state")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def venv_built(tmp_path: Path) -> bool:
    log = tmp_path / "python.log"
    return (tmp_path / "venv").exists() or (log.exists() and "-m venv" in log.read_text())


def test_make_up_names_every_missing_tool_before_it_builds_the_venv(bare_path: Path, tmp_path: Path) -> None:
    result = make("up", bare_path, tmp_path)

    assert result.returncode != 0
    assert "pulumi is not on PATH" in result.stderr and "https://www.pulumi.com/docs/install/" in result.stderr
    assert "VBoxManage is not on PATH" in result.stderr
    assert not venv_built(tmp_path), result.stdout + result.stderr


def test_make_preview_needs_only_pulumi(bare_path: Path, tmp_path: Path) -> None:
    result = make("preview", bare_path, tmp_path)

    assert result.returncode != 0
    assert "pulumi is not on PATH" in result.stderr
    assert "VBoxManage" not in result.stderr
    assert not venv_built(tmp_path)


def test_make_destroy_needs_the_hypervisor_too(bare_path: Path, tmp_path: Path) -> None:
    stub(bare_path, "pulumi")

    result = make("destroy", bare_path, tmp_path)

    assert result.returncode != 0
    assert "VBoxManage is not on PATH" in result.stderr and "pulumi is not on PATH" not in result.stderr
    assert not venv_built(tmp_path)


def check(command: str, stack_file: Path, bin_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BASH, str(SCRIPT), command, str(stack_file)],
        env={"PATH": str(bin_dir), "PYTHON": str(bin_dir / "python3")},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_the_stacks_hypervisor_decides_which_tool_is_needed(bare_path: Path, tmp_path: Path) -> None:
    stub(bare_path, "pulumi")
    stub(bare_path, "VBoxManage")
    qemu = tmp_path / "Pulumi.qemu.yaml"
    qemu.write_text("config:\n  meshlab:hypervisor: qemu  # this workstation has KVM\n")

    assert check("up", ROOT / "Pulumi.lab.yaml", bare_path).returncode == 0  # no key: VirtualBox
    result = check("up", qemu, bare_path)

    assert result.returncode == 1
    assert "qemu-img is not on PATH" in result.stderr and "VBoxManage" not in result.stderr
    missing = tmp_path / "Pulumi.none.yaml"
    assert check("up", missing, bare_path).returncode == 0  # a new stack without a file: the default


def test_an_old_python_is_refused_before_the_venv(bare_path: Path, tmp_path: Path) -> None:
    stub(bare_path, "pulumi")
    stub(bare_path, "VBoxManage")
    (bare_path / "python3").write_text("#!/bin/sh\necho 'Python 3.9.18'\nexit 1\n")

    result = check("up", ROOT / "Pulumi.lab.yaml", bare_path)

    assert result.returncode == 1
    assert "Python 3.11 or newer" in result.stderr


def test_the_check_passes_shellcheck() -> None:
    from tests.test_host_scripts import assert_shellcheck_clean  # noqa: PLC0415

    assert_shellcheck_clean(SCRIPT)
    assert os.access(SCRIPT, os.R_OK)
