"""A clone outside this environment: the reference data (`make reference`, and what the tests read), and what
the README's two commands install and fetch by themselves.

tools/fetch_reference.py downloads the pinned upstream files into .cache/reference, and the chart
sources into .cache/chart-sources. Here it runs against a mirror on 127.0.0.1 (python -m http.server,
stopped by its PID) that serves copies of both at their upstream URLs: the chart sources as they are,
the reference files' chart archives rebuilt around their members unless a chart source is that archive.
No connection at all is 127.0.0.1:9, where nothing listens. A clone without ../shared beside it is a copy
of the working tree in a temporary folder (copy_of_the_project).
"""

from __future__ import annotations

import hashlib
import importlib
import io
import re
import shutil
import subprocess
import sys
import tarfile
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import REFERENCE, ROOT, _uses_chart_sources, _uses_reference
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
NO_CONNECTION = "http://127.0.0.1:9"
# One test that needs no reference data, and two modules that do (the second only through tests.kube.manifests).
NEEDS_NONE = "tests/test_prerequisites.py::test_the_check_passes_shellcheck"
NEED_IT = ("tests/test_kube_manifests.py", "tests/test_versions.py")


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
    from tools.chart_repository import build_repository  # noqa: PLC0415 - only this test packages

    fetched = build_repository(charts, tmp_path / "from-cache")
    shared = build_repository(CHART_SOURCES, tmp_path / "from-shared")
    assert len(fetched) == 10
    assert [(e.file, e.digest) for e in fetched] == [(e.file, e.digest) for e in shared]


def test_a_tampered_chart_source_is_not_written_and_the_message_names_it(mirror: str, tmp_path: Path) -> None:
    dest, charts = tmp_path / "reference", tmp_path / "chart-sources"

    result = fetch(dest, f"{mirror}/bad-chart", charts)

    assert result.returncode == 1
    expected = next(entry.sha256 for entry in read_manifest(CHART_MANIFEST) if entry.path == TAMPERED_CHART)
    total = len(read_manifest(CHART_MANIFEST))
    assert f"fetch_reference: 1 of the {total} chart source files could not be fetched:" in result.stderr
    assert f"  - {TAMPERED_CHART}: checksum mismatch" in result.stderr and expected in result.stderr
    assert "/charts/alertmanager/values.yaml" in result.stderr  # the URL it came from
    assert not (charts / TAMPERED_CHART).exists()
    assert not (charts / COMPLETE).exists()
    assert (charts / "prometheus-27.31.0/charts/alertmanager/Chart.yaml").is_file()  # the others were fetched
    assert chart_sources_folder(shared=tmp_path / "no-shared", cache=charts) is None
    assert reference_folder(shared=tmp_path / "no-shared", cache=dest) == dest  # the reference files are fine


def test_without_a_connection_every_missing_file_is_counted_and_the_message_says_what_to_run(tmp_path: Path) -> None:
    dest, charts = tmp_path / "reference", tmp_path / "chart-sources"
    references, chart_sources = read_manifest(), read_manifest(CHART_MANIFEST)
    for entry in references[:5]:  # a copy that was started: those five are not missing
        (dest / entry.path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REFERENCE / entry.path, dest / entry.path)

    result = fetch(dest, NO_CONNECTION, charts)

    assert result.returncode == 1
    missing = len(references) - 5
    assert f"fetch_reference: {missing} of the {len(references)} reference files could not be fetched:" in result.stderr
    assert f"  - {missing - 1} more not tried: no connection to 127.0.0.1:9" in result.stderr
    total = len(chart_sources)
    assert f"fetch_reference: {total} of the {total} chart source files could not be fetched:" in result.stderr
    assert f"  - {total} not tried: no connection to 127.0.0.1:9" in result.stderr
    assert "MESHLAB_REFERENCE_MIRROR=URL make reference" in result.stderr
    assert len(result.stderr.splitlines()) == 6  # not a line per file
    assert reference_folder(shared=tmp_path / "no-shared", cache=dest) is None


def test_the_mirror_option_is_documented_where_a_user_looks() -> None:
    for doc in ("README.md", "docs/air-gapped.md"):
        text = (ROOT / doc).read_text()
        assert "MESHLAB_REFERENCE_MIRROR" in text and "--mirror URL" in text, doc
        assert "URL/HOST/PATH" in text and "tools/fetch_reference.py" in text, doc


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


def make(project: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    assert MAKE, "GNU make is needed to run this test"
    return subprocess.run(
        [MAKE, "--no-print-directory", *args, f"PYTHON={sys.executable}"],
        cwd=project,
        env={"PATH": "/usr/bin:/bin", **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


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

    # Read from .cache/reference: tests/test_kube_manifests.py's offline copies too.
    cached = pytest_in(project, "tests/test_policy_pod_security.py", *NEED_IT)
    assert cached.returncode == 0, cached.stdout + cached.stderr


def advice(output: str) -> list[str]:
    """The options the guard's message gives to leave the modules that need the reference data out."""
    found = re.search(r"^out of this run: (.*)$", output, flags=re.MULTILINE)
    assert found, output
    return found[1].split()


def test_with_workers_a_clone_without_reference_data_stops_with_the_message_before_any_worker_starts(
    tmp_path: Path,
) -> None:
    """pytest-xdist's workers cannot pass the guard's UsageError on (pytest-xdist#109): `make test-offline`'s
    `pytest -n auto` ended in INTERNALERROR lines and "no tests ran"."""
    project = copy_of_the_project(tmp_path / "meshlab")

    missing = pytest_in(project, "-n", "2", *NEED_IT, NEEDS_NONE)

    output = missing.stdout + missing.stderr
    assert missing.returncode == pytest.ExitCode.USAGE_ERROR, output
    assert "INTERNALERROR" not in output and "[gw0]" not in output and "created: 2/2 workers" not in output
    assert output.count("the reference data") == 1
    assert f"the reference data that {', '.join(NEED_IT)} check against is missing" in output
    assert str(tmp_path / "shared" / "reference") in output and str(project / ".cache" / "reference") in output

    # The advice works, with workers or without: those modules are left out, the rest runs.
    for workers in (["-n", "2"], []):
        rest = pytest_in(project, *workers, *NEED_IT, NEEDS_NONE, *advice(output))
        assert rest.returncode == 0, rest.stdout + rest.stderr
        assert "1 passed" in rest.stdout and "the reference data" not in rest.stdout + rest.stderr

    # Tests that need no reference data run with -n 2 too, on one core (no workers without the data).
    unrelated = pytest_in(project, "-n", "2", NEEDS_NONE)
    assert unrelated.returncode == 0, unrelated.stdout + unrelated.stderr
    assert "run without pytest-xdist workers" in unrelated.stdout


def test_the_guard_finds_every_module_that_reads_the_reference_data_however_indirectly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Derived from what each module holds and uses, not a list: tests/test_kube_manifests.py reads the data only
    through tests.kube.manifests' offline copies, and was missed (its tests failed one by one instead)."""
    assert _uses_reference(importlib.import_module("tests.test_kube_manifests"))
    assert _uses_reference(importlib.import_module("tests.test_versions"))
    assert not _uses_reference(importlib.import_module("tests.test_prerequisites"))

    def module(name: str, source: str) -> ModuleType:
        made = ModuleType(f"tests.{name}")
        made.__file__ = str(ROOT / "tests" / f"{name}.py")
        monkeypatch.setitem(sys.modules, made.__name__, made)
        exec(compile(source, made.__file__, "exec"), vars(made))  # the sources are the lines below
        return made

    module(
        "reference_probe_helpers",
        "from functools import cache\n"
        "from tests.conftest import REFERENCE, STACKS\n"
        "FILES = (REFERENCE / 'crds' / 'a.yaml',)\n"
        "@cache\n"
        "def documents():\n    return [path.name for path in FILES]\n"
        "def through_documents():\n    return documents()\n"
        "def stacks():\n    return STACKS\n",
    )
    reads = module("reference_probe_reads", "from tests.reference_probe_helpers import through_documents\n")
    reads_none = module("reference_probe_none", "from tests.reference_probe_helpers import stacks\n")
    assert _uses_reference(reads)  # a function, through a cached one, through a tuple of paths
    assert not _uses_reference(reads_none)  # the same module's helper that reads nothing; STACKS is conftest's

    # The chart sources (`make reference` fetches them too): tools.chart_repository's lookup is found through the
    # package attribute a function names; a package's other submodules, loaded by anyone, are not.
    assert _uses_chart_sources(importlib.import_module("tests.test_chart_repository"))
    assert not _uses_chart_sources(importlib.import_module("tests.test_prerequisites"))
    importlib.import_module("tools.chart_repository")
    sources = module(
        "reference_probe_sources", "import tools.chart_repository\ndef sources():\n    return tools.chart_repository\n"
    )
    policy = module("reference_probe_policy", "import tools.policy\ndef policies():\n    return tools.policy\n")
    assert _uses_chart_sources(sources) and not _uses_chart_sources(policy)


def stand_in_tools(project: Path, tmp_path: Path) -> tuple[list[str], Path]:
    """`make test-offline`'s arguments for a run without the test toolchain: a venv whose two stamps are up to
    date, cloud-init's validator in place, and ruff, mypy, shellcheck and a python that only record what ran,
    pytest with whether the reference data was there by then. Returns the arguments and the record."""
    venv, record = tmp_path / "venv", tmp_path / "ran.txt"
    (venv / "bin").mkdir(parents=True)
    (venv / ".installed-runtime").touch()
    (venv / ".installed-dev").touch()
    (project / ".cache" / "cloud-init" / "usr" / "lib" / "python3" / "dist-packages" / "cloudinit").mkdir(parents=True)
    for tool in ("ruff", "mypy", "shellcheck", "python"):
        script = venv / "bin" / tool
        script.write_text(
            "#!/bin/sh\n"
            "data=missing; [ -f .cache/reference/.manifest ] && [ -f .cache/chart-sources/.manifest ] && data=there\n"
            f'echo "{tool} $* (reference data $data)" >> "{record}"\n'
        )
        script.chmod(0o755)
    return ["test-offline", f"VENV={venv}"], record


def test_make_test_offline_on_a_clone_fetches_the_reference_data_once_itself(mirror: str, tmp_path: Path) -> None:
    """The README's second command on a clone from GitHub: no `make reference` first."""
    project = copy_of_the_project(tmp_path / "meshlab")
    arguments, record = stand_in_tools(project, tmp_path)

    first = make(project, *arguments, env={"MESHLAB_REFERENCE_MIRROR": f"{mirror}/good"})

    assert first.returncode == 0, first.stdout + first.stderr
    assert record.read_text().splitlines()[-1] == "python -m pytest -n auto (reference data there)"
    assert f"reference data in {project / '.cache' / 'reference'}: " in first.stdout
    assert reference_folder(shared=tmp_path / "shared" / "reference", cache=project / ".cache" / "reference")

    # Once: the next run needs no connection, and downloads nothing.
    again = make(project, *arguments, env={"MESHLAB_REFERENCE_MIRROR": NO_CONNECTION})
    assert again.returncode == 0, again.stdout + again.stderr
    assert "fetch_reference" not in again.stdout + again.stderr
    assert record.read_text().count("python -m pytest -n auto (reference data there)") == 2


def test_make_test_offline_without_a_connection_says_so_in_one_sentence_and_runs_no_tests(tmp_path: Path) -> None:
    project = copy_of_the_project(tmp_path / "meshlab")
    arguments, record = stand_in_tools(project, tmp_path)

    offline = make(project, *arguments, env={"MESHLAB_REFERENCE_MIRROR": NO_CONNECTION})

    assert offline.returncode != 0
    assert "pytest" not in record.read_text()
    message = offline.stderr.split("fetch_reference: ", 1)[1]
    sentence, command = message.split(" run:\n", 1)
    assert sentence.count(". ") == 1  # what is missing and why, then where to run what
    assert str(tmp_path / "shared") in sentence and "no connection to 127.0.0.1:9" in sentence
    assert command.splitlines()[0].strip() == "make reference"
    assert "could not be fetched" not in offline.stderr  # no list of every file


@pytest.mark.parametrize("target", ["up", "preview", "destroy", "plan"])
def test_deploying_installs_the_programs_requirements_not_the_test_tools(target: str, tmp_path: Path) -> None:
    venv = tmp_path / "venv"

    dry = make(ROOT, "-n", target, f"VENV={venv}")

    assert dry.returncode == 0, dry.stderr
    installs = [line for line in dry.stdout.splitlines() if "/bin/pip install " in line]
    assert installs == [
        f"{venv}/bin/pip install --quiet --disable-pip-version-check -r requirements.txt "
        "-r policy-pack/requirements.txt"
    ]
    assert "requirements-dev.txt" not in dry.stdout


def test_the_test_targets_add_the_test_tools_to_the_same_venv(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    fresh = make(ROOT, "-n", "lint", f"VENV={venv}")
    assert [line.split(" -r ", 1)[1] for line in fresh.stdout.splitlines() if "/bin/pip install " in line] == [
        "requirements.txt -r policy-pack/requirements.txt",
        "requirements-dev.txt",
    ]

    # After `make up`, a test target installs only what the deploying kind lacks.
    venv.mkdir()
    (venv / ".installed-runtime").touch()
    after_up = make(ROOT, "-n", "lint", f"VENV={venv}")
    assert [line.split(" -r ", 1)[1] for line in after_up.stdout.splitlines() if "/bin/pip install " in line] == [
        "requirements-dev.txt"
    ]
    assert f"-m venv {venv}" not in after_up.stdout
