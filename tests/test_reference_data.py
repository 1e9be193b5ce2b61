"""The reference data outside this environment: `make reference` and what the tests read.

tools/fetch_reference.py downloads the pinned upstream files into .cache/reference, and the chart
sources into .cache/chart-sources. Here it runs against a mirror on 127.0.0.1 (python -m http.server,
stopped by its PID) that serves copies of both at their upstream URLs: the chart sources as they are,
the reference files' chart archives rebuilt around their members unless a chart source is that archive.
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
from tools.fetch_reference import (
    CHART_MANIFEST,
    COMPLETE,
    chart_sources_folder,
    mirrored,
    read_manifest,
    reference_folder,
)

SCRIPT = ROOT / "tools" / "fetch_reference.py"
MAKE = shutil.which("make")
TAMPERED = "charts/grafana-9.3.2/values.yaml"
# A file of a vendored subchart: its URL is the same commit's charts/alertmanager/, not charts/prometheus/.
TAMPERED_CHART = "prometheus-27.31.0/charts/alertmanager/values.yaml"
CHART_SOURCES = chart_sources_folder()


def build_mirror(root: Path, tamper: str | None = None, tamper_chart: str | None = None) -> None:
    """Lay out copies of the reference files and chart sources as root/HOST/PATH, the way their URLs name them.

    Both manifests name some URLs (a chart's values.yaml, a published archive): tampering with one
    changes what either fetch gets from that URL, as upstream would.
    """
    assert CHART_SOURCES, "the chart sources are missing: run `make reference`"
    files: dict[str, bytes] = {}
    for entry in read_manifest(CHART_MANIFEST):
        data = (CHART_SOURCES / entry.path).read_bytes()
        files[entry.url] = data + b"# changed upstream\n" if entry.path == tamper_chart else data
    archives: dict[str, dict[str, bytes]] = defaultdict(dict)
    for entry in read_manifest():
        data = (REFERENCE / entry.path).read_bytes()
        if entry.path == tamper:
            data += b"# changed upstream\n"
        if entry.archive:
            url, member = entry.archive
            archives[url][member] = data
        elif entry.url not in files or entry.path == tamper:
            files[entry.url] = data
    for url, members in archives.items():
        if url in files:  # the published archive itself is a chart source: its members are the same files
            continue
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
            for member, data in members.items():
                info = tarfile.TarInfo(member)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
        files[url] = buffer.getvalue()
    for url, data in files.items():
        target = root / mirrored(url, "x").removeprefix("x/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of a loopback HTTP server with a faithful mirror at /good, one bad reference file at /bad
    and one bad chart source file at /bad-chart."""
    served = tmp_path_factory.mktemp("mirror")
    build_mirror(served / "good")
    build_mirror(served / "bad", tamper=TAMPERED)
    build_mirror(served / "bad-chart", tamper_chart=TAMPERED_CHART)
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


def fetch(dest: Path, mirror_url: str, charts: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The fetch script as `make reference` runs it, with no site-packages: standard library only.

    The chart sources go to `charts`, by default a folder beside `dest`."""
    charts = charts or dest.parent / "chart-sources"
    arguments = ["--dest", str(dest), "--charts-dest", str(charts), "--mirror", mirror_url]
    return subprocess.run(
        [sys.executable, "-I", "-S", str(SCRIPT), *arguments],
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


def test_fetch_writes_every_chart_source_verified_and_the_copy_packages_into_the_same_repository(
    mirror: str, tmp_path: Path
) -> None:
    charts = tmp_path / "chart-sources"
    entries = read_manifest(CHART_MANIFEST)
    assert CHART_SOURCES and len(entries) > 300

    result = fetch(tmp_path / "reference", f"{mirror}/good", charts)

    assert result.returncode == 0, result.stderr
    assert f"chart sources in {charts}: {len(entries)} files ({len(entries)} downloaded)" in result.stdout
    for entry in entries:
        assert (charts / entry.path).read_bytes() == (CHART_SOURCES / entry.path).read_bytes(), entry.path
    assert chart_sources_folder(shared=tmp_path / "no-shared", cache=charts) == charts
    assert chart_sources_folder(shared=CHART_SOURCES, cache=charts) == CHART_SOURCES  # the shared folder wins

    # What the real-apply tier serves is the same from either copy: archives depend on content only.
    from tests.apply.chart_repository import build_repository  # noqa: PLC0415 - only this test packages

    fetched = build_repository(charts, tmp_path / "from-cache")
    shared = build_repository(CHART_SOURCES, tmp_path / "from-shared")
    assert len(fetched) == 10
    assert [(e.file, e.digest) for e in fetched] == [(e.file, e.digest) for e in shared]


def test_a_tampered_chart_source_is_not_written_and_the_message_names_it(mirror: str, tmp_path: Path) -> None:
    dest, charts = tmp_path / "reference", tmp_path / "chart-sources"

    result = fetch(dest, f"{mirror}/bad-chart", charts)

    assert result.returncode == 1
    expected = next(entry.sha256 for entry in read_manifest(CHART_MANIFEST) if entry.path == TAMPERED_CHART)
    assert "fetch_reference: 1 of the chart source files could not be fetched:" in result.stderr
    assert f"  - {TAMPERED_CHART}: checksum mismatch" in result.stderr and expected in result.stderr
    assert "/charts/alertmanager/values.yaml" in result.stderr  # the URL it came from
    assert not (charts / TAMPERED_CHART).exists()
    assert not (charts / COMPLETE).exists()
    assert (charts / "prometheus-27.31.0/charts/alertmanager/Chart.yaml").is_file()  # the others were fetched
    assert chart_sources_folder(shared=tmp_path / "no-shared", cache=charts) is None
    assert reference_folder(shared=tmp_path / "no-shared", cache=dest) == dest  # the reference files are fine


def test_where_both_manifests_name_one_upstream_file_they_pin_the_same_content() -> None:
    assert CHART_SOURCES
    charts = {entry.url: entry for entry in read_manifest(CHART_MANIFEST)}
    same_file = same_archive = 0
    for entry in read_manifest():
        if entry.url in charts:
            assert entry.sha256 == charts[entry.url].sha256, (entry.path, charts[entry.url].path)
            same_file += 1
        elif entry.archive and entry.archive[0] in charts:
            url, member = entry.archive
            with tarfile.open(CHART_SOURCES / charts[url].path, "r:gz") as archive:
                extracted = archive.extractfile(member)
                assert extracted is not None, member
                assert hashlib.sha256(extracted.read()).hexdigest() == entry.sha256, entry.path
            same_archive += 1
    assert same_file >= 19 and same_archive == 2


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
    fetched = project / ".cache" / "chart-sources"
    assert chart_sources_folder(shared=tmp_path / "shared" / "chart-sources", cache=fetched) == fetched

    cached = pytest_in(project, "tests/test_versions.py", "tests/test_policy_pod_security.py")
    assert cached.returncode == 0, cached.stdout + cached.stderr
