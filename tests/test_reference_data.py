"""The reference data outside this environment: `make reference` and what the tests read.

tools/fetch_reference.py downloads the pinned upstream files into .cache/reference. Here it runs
against a mirror on 127.0.0.1 (python -m http.server, stopped by its PID) that serves copies of the
reference files at their upstream URLs, chart archives rebuilt around their members.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import sys
import tarfile
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REFERENCE, ROOT
from tools.fetch_reference import mirrored, read_manifest, reference_folder

SCRIPT = ROOT / "tools" / "fetch_reference.py"
MAKE = shutil.which("make")
TAMPERED = "charts/grafana-9.3.2/values.yaml"


def build_mirror(root: Path, tamper: str | None = None) -> None:
    """Lay out copies of the reference files as root/HOST/PATH, the way their URLs name them."""
    archives: dict[str, dict[str, bytes]] = defaultdict(dict)
    for entry in read_manifest():
        data = (REFERENCE / entry.path).read_bytes()
        if entry.path == tamper:
            data += b"# changed upstream\n"
        if entry.archive:
            url, member = entry.archive
            archives[url][member] = data
            continue
        target = root / mirrored(entry.url, "x").removeprefix("x/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    for url, members in archives.items():
        target = root / mirrored(url, "x").removeprefix("x/")
        target.parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(target, "w:gz") as archive:
            for member, data in members.items():
                info = tarfile.TarInfo(member)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of a loopback HTTP server with a faithful mirror at /good and one bad file at /bad."""
    served = tmp_path_factory.mktemp("mirror")
    build_mirror(served / "good")
    build_mirror(served / "bad", tamper=TAMPERED)
    server = subprocess.Popen(
        [sys.executable, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory", str(served)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert server.stdout is not None
        banner = server.stdout.readline()  # "Serving HTTP on 127.0.0.1 port 40123 (http://127.0.0.1:40123/) ..."
        assert " port " in banner, banner
        yield f"http://127.0.0.1:{banner.split(' port ')[1].split()[0]}"
    finally:
        server.terminate()
        server.wait(timeout=10)


def fetch(dest: Path, mirror_url: str) -> subprocess.CompletedProcess[str]:
    """The fetch script as `make reference` runs it, with no site-packages: standard library only."""
    return subprocess.run(
        [sys.executable, "-I", "-S", str(SCRIPT), "--dest", str(dest), "--mirror", mirror_url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_manifest_pins_every_reference_file_with_its_checksum() -> None:
    pinned = {entry.path: entry.sha256 for entry in read_manifest()}
    files = {str(p.relative_to(REFERENCE)) for p in REFERENCE.rglob("*") if p.is_file() and p.suffix != ".md"}
    assert set(pinned) == files - {".manifest"}
    assert all(sha256(REFERENCE / path) == digest for path, digest in pinned.items())
    assert all(entry.url.startswith("https://raw.githubusercontent.com/") for entry in read_manifest())


def test_fetch_writes_every_file_verified_and_the_copy_then_counts_as_complete(mirror: str, tmp_path: Path) -> None:
    dest = tmp_path / "reference"

    result = fetch(dest, f"{mirror}/good")

    assert result.returncode == 0, result.stderr
    for entry in read_manifest():
        assert (dest / entry.path).read_bytes() == (REFERENCE / entry.path).read_bytes(), entry.path
    assert reference_folder(shared=tmp_path / "no-shared", cache=dest) == dest
    assert reference_folder(shared=REFERENCE, cache=dest) == REFERENCE  # the shared folder wins

    # Everything is there: a second run downloads nothing, so it needs no network at all.
    again = fetch(dest, "http://127.0.0.1:9")
    assert again.returncode == 0, again.stderr
    assert "(0 downloaded)" in again.stdout


def test_a_checksum_mismatch_writes_nothing_for_that_file_and_leaves_the_copy_incomplete(
    mirror: str, tmp_path: Path
) -> None:
    dest = tmp_path / "reference"

    result = fetch(dest, f"{mirror}/bad")

    assert result.returncode == 1
    expected = next(entry.sha256 for entry in read_manifest() if entry.path == TAMPERED)
    assert f"{TAMPERED}: checksum mismatch" in result.stderr and expected in result.stderr
    assert not (dest / TAMPERED).exists()
    assert (dest / "charts/grafana-9.3.2/Chart.yaml").is_file()  # the others were fetched
    assert reference_folder(shared=tmp_path / "no-shared", cache=dest) is None

    repaired = fetch(dest, f"{mirror}/good")
    assert repaired.returncode == 0, repaired.stderr
    assert "(1 downloaded)" in repaired.stdout
    assert reference_folder(shared=tmp_path / "no-shared", cache=dest) == dest


def copy_of_the_project(target: Path) -> Path:
    """The working tree, as a clone elsewhere would have it: no ../shared, no .cache, no venv."""
    ignore = shutil.ignore_patterns("venv", ".git", ".cache", "__pycache__", ".*_cache")
    shutil.copytree(ROOT, target, ignore=ignore)
    return target


def pytest_in(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_a_clone_without_reference_data_says_where_it_comes_from_then_uses_make_reference(
    mirror: str, tmp_path: Path
) -> None:
    assert MAKE, "GNU make is needed to run this test"
    project = copy_of_the_project(tmp_path / "meshlab")

    missing = pytest_in(project, "tests/test_versions.py", "tests/test_policy_pod_security.py")

    output = missing.stdout + missing.stderr
    assert missing.returncode == pytest.ExitCode.USAGE_ERROR, output
    assert output.count("the reference data") == 1 and "FAILED" not in output
    assert str(tmp_path / "shared" / "reference") in output
    assert str(project / ".cache" / "reference") in output
    assert "make reference" in output and "tests/test_versions.py" in output

    # Tests that need no reference data still run.
    unrelated = pytest_in(project, "tests/test_prerequisites.py::test_the_check_passes_shellcheck")
    assert unrelated.returncode == 0, unrelated.stdout + unrelated.stderr

    made = subprocess.run(
        [MAKE, "--no-print-directory", "reference", f"PYTHON={sys.executable}"],
        cwd=project,
        env={"PATH": "/usr/bin:/bin", "MESHLAB_REFERENCE_MIRROR": f"{mirror}/good"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert made.returncode == 0, made.stdout + made.stderr
    assert reference_folder(shared=tmp_path / "shared" / "reference", cache=project / ".cache" / "reference")

    cached = pytest_in(project, "tests/test_versions.py", "tests/test_policy_pod_security.py")
    assert cached.returncode == 0, cached.stdout + cached.stderr
