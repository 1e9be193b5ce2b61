"""The real-apply tier's Helm chart repository (tests/apply/chart_repository.py) and its pinned chart sources.

The repository is built once from the chart sources (../shared/chart-sources, or the copy `make reference`
fetched) and checked against config/versions.py, the layout `helm package` and `helm repo index` write,
and the release edits ../shared/chart-sources/README.md lists for Istio.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import socket
import tarfile
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from config import versions
from tests.apply.chart_repository import serve
from tools import fetch_reference
from tools.chart_repository import (
    INDEX,
    METADATA_FIELDS,
    ChartEntry,
    ChartSourcesMissingError,
    HelmIgnore,
    build_repository,
    chart_sources_folder,
)

ISTIO_CHARTS = {"base", "istiod", "cni", "ztunnel"}
# The values.yaml lines Istio's release tooling edits (hub, tag), as ../shared/chart-sources/README.md numbers them.
ISTIO_EDITED_VALUES_LINES = {"istiod": {255, 257}, "cni": {141, 144}, "ztunnel": {5, 7}, "base": set()}
# Chart.yaml's version and appVersion lines in Istio's charts.
ISTIO_EDITED_CHART_LINES = {5, 6}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def members(archive: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(archive, "r:gz") as tar:
        return {member.name: member for member in tar.getmembers()}


def read_member(archive: Path, name: str) -> bytes:
    with tarfile.open(archive, "r:gz") as tar:
        extracted = tar.extractfile(name)
        assert extracted is not None, name
        return extracted.read()


def source_files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def sources() -> Path:
    return chart_sources_folder()


@pytest.fixture(scope="module")
def repository(sources: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[ChartEntry]]:
    dest = tmp_path_factory.mktemp("charts")
    return dest, build_repository(sources, dest)


@pytest.fixture(scope="module")
def by_name(repository: tuple[Path, list[ChartEntry]]) -> dict[str, ChartEntry]:
    return {entry.name: entry for entry in repository[1]}


def test_the_repository_holds_exactly_the_pinned_charts(repository: tuple[Path, list[ChartEntry]]) -> None:
    dest, entries = repository
    pinned = {(chart.name, chart.version) for chart in versions.CHARTS.values()}

    assert len(entries) == len(versions.CHARTS) == 10
    assert {(entry.name, entry.version) for entry in entries} == pinned
    assert {entry.version for entry in entries if entry.name in ISTIO_CHARTS} == {versions.ISTIO}
    assert sorted(p.name for p in dest.iterdir()) == sorted([INDEX, *(entry.file for entry in entries)])
    assert all(entry.file == f"{entry.name}-{entry.version}.tgz" for entry in entries)


def test_the_index_has_the_layout_helm_repo_index_writes(repository: tuple[Path, list[ChartEntry]]) -> None:
    dest, entries = repository
    index = yaml.safe_load((dest / INDEX).read_text())

    assert index["apiVersion"] == "v1"
    assert datetime.fromisoformat(index["generated"]).tzinfo is not None
    assert set(index) == {"apiVersion", "entries", "generated"}
    assert set(index["entries"]) == {entry.name for entry in entries}
    for entry in entries:
        [version] = index["entries"][entry.name]
        data = (dest / entry.file).read_bytes()
        assert version["digest"] == sha256(data) == entry.digest, entry.name
        assert version["urls"] == [entry.file]  # relative to the repository's URL
        assert (version["name"], version["version"]) == (entry.name, entry.version)
        assert datetime.fromisoformat(version["created"]).tzinfo is not None
        # Helm reads an index strictly: a field its chart metadata lacks fails the whole repository.
        assert set(version) <= METADATA_FIELDS | {"urls", "digest", "created"}, entry.name
        assert version["apiVersion"] in {"v1", "v2"}
    assert index["entries"]["istiod"][0]["appVersion"] == versions.ISTIO


def test_every_archive_is_one_folder_named_after_its_chart_holding_chart_yaml(
    repository: tuple[Path, list[ChartEntry]],
) -> None:
    dest, entries = repository
    for entry in entries:
        archive = dest / entry.file
        found = members(archive)
        assert len(found) > 3, entry.name
        assert all(name.startswith(f"{entry.name}/") and ".." not in name.split("/") for name in found), entry.name
        assert all(member.isfile() for member in found.values()), entry.name
        chart = yaml.safe_load(read_member(archive, f"{entry.name}/Chart.yaml"))
        assert (chart["name"], str(chart["version"])) == (entry.name, entry.version)
        if entry.source.is_file():  # a published archive: served as it is
            assert archive.read_bytes() == entry.source.read_bytes()
        else:
            assert {member.mode for member in found.values()} == {0o644}, entry.name
            assert next(iter(found)) == f"{entry.name}/Chart.yaml"  # first, as Helm writes it


def test_packaging_takes_every_file_but_what_the_top_helmignore_excludes_and_unpacks_tgz_subcharts(
    repository: tuple[Path, list[ChartEntry]], by_name: dict[str, ChartEntry]
) -> None:
    dest, entries = repository
    packaged = [entry for entry in entries if entry.source.is_dir()]
    assert len(packaged) == 8
    for entry in packaged:
        expected = source_files(entry.source)
        if entry.name == "prometheus":
            # Its .helmignore has `ci/`: a directory named ci anywhere, its vendored subcharts' too. The
            # subcharts' own .helmignore files are not read (Helm reads the top one only).
            ignored = {path for path in expected if "ci" in path.split("/")[:-1]}
            assert len(ignored) > 20 and any(path.startswith("charts/") for path in ignored)
            expected = {path: data for path, data in expected.items() if path not in ignored}
            assert "charts/alertmanager/unittests/ingress_test.yaml" in expected
        if entry.name == "metallb":
            subchart = expected.pop("charts/frr-k8s-0.0.20.tgz")
            with tarfile.open(fileobj=io.BytesIO(subchart), mode="r:gz") as tar:
                for member in tar.getmembers():
                    extracted = tar.extractfile(member)
                    assert extracted is not None
                    expected["charts/" + member.name] = extracted.read()  # members are under frr-k8s/
        archive = dest / entry.file
        found = {name.removeprefix(f"{entry.name}/") for name in members(archive)}
        assert found == set(expected), entry.name
        for path, data in expected.items():
            if entry.name in ISTIO_CHARTS and path in {"Chart.yaml", "values.yaml"}:
                continue  # edited, checked below
            assert read_member(archive, f"{entry.name}/{path}") == data, (entry.name, path)
    assert "grafana/ci/default-values.yaml" in members(dest / by_name["grafana"].file)  # not in its .helmignore
    assert "metallb/charts/frr-k8s/charts/crds/Chart.yaml" in members(dest / by_name["metallb"].file)


def test_istio_archives_carry_the_edits_istio_release_tooling_makes_and_nothing_else(
    repository: tuple[Path, list[ChartEntry]], by_name: dict[str, ChartEntry]
) -> None:
    dest, _ = repository
    for name, edited_lines in ISTIO_EDITED_VALUES_LINES.items():
        entry = by_name[name]
        archive = dest / entry.file
        values = read_member(archive, f"{name}/values.yaml").decode()
        original = (entry.source / "values.yaml").read_text()
        changed = {
            number
            for number, (new, old) in enumerate(zip(values.splitlines(), original.splitlines(), strict=True), 1)
            if new != old
        }
        assert changed == edited_lines, name
        assert "gcr.io/istio-testing" not in values
        if edited_lines:
            assert values.count("hub: docker.io/istio\n") == 1 and values.count(f"tag: {versions.ISTIO}\n") == 1
            assert yaml.safe_load(values)  # still YAML
        chart = read_member(archive, f"{name}/Chart.yaml").decode()
        source_chart = (entry.source / "Chart.yaml").read_text().splitlines()
        changed = {n for n, (a, b) in enumerate(zip(chart.splitlines(), source_chart, strict=True), 1) if a != b}
        assert changed == ISTIO_EDITED_CHART_LINES, name
        metadata = yaml.safe_load(chart)
        assert (str(metadata["version"]), str(metadata["appVersion"])) == (versions.ISTIO, versions.ISTIO)


@pytest.mark.parametrize(
    ("file", "edit", "message"),
    [
        ("values.yaml", ("  hub: gcr.io/istio-testing\n", '  hub: "gcr.io/istio-testing"\n'), "found 0"),
        ("values.yaml", ("  tag: latest\n", '  tag: "latest"\n'), "found 0"),
        ("values.yaml", ("  tag: latest\n", "  tag: latest\n  # tag: latest\n  tag: latest\n"), "found 2"),
        ("Chart.yaml", ("appVersion: 1.0.0\n", "appVersion:\n  1.0.0\n"), "appVersion"),
    ],
)
def test_an_unexpected_istio_chart_layout_fails_loudly_naming_the_file(
    sources: Path, tmp_path: Path, file: str, edit: tuple[str, str], message: str
) -> None:
    old, new = edit
    charts = tmp_path / "sources"
    chart = charts / "istio-ztunnel-1.27.0"
    shutil.copytree(sources / chart.name, chart)
    target = chart / file
    target.chmod(0o644)  # the shared copies are read-only
    text = target.read_text()
    assert old in text
    target.write_text(text.replace(old, new, 1))

    with pytest.raises(ValueError, match=message) as failure:
        build_repository(charts, tmp_path / "repository")

    assert str(target) in str(failure.value)


def test_archives_depend_on_their_content_only(sources: Path, tmp_path: Path) -> None:
    first = build_repository(sources, tmp_path / "a", now=datetime(2025, 1, 1, tzinfo=UTC))
    second = build_repository(sources, tmp_path / "b", now=datetime(2026, 1, 1, tzinfo=UTC))

    assert len(first) == 10
    assert [entry.digest for entry in first] == [entry.digest for entry in second]
    assert (tmp_path / "a" / INDEX).read_text() != (tmp_path / "b" / INDEX).read_text()  # only `created` differs


@pytest.mark.parametrize(
    ("rules", "path", "is_dir", "ignored"),
    [
        # The examples of Helm's documentation of .helmignore.
        (".git", ".git", True, True),
        ("*.txt", "docs/notes.txt", False, True),
        ("mydir/", "a/mydir", True, True),
        ("mydir/", "a/mydir", False, False),  # a file named mydir
        ("/*.txt", "notes.txt", False, True),
        ("/*.txt", "docs/notes.txt", False, False),
        ("/foo.txt", "foo.txt", False, True),
        ("a[b-d].txt", "ac.txt", False, True),
        ("a[b-d].txt", "ae.txt", False, False),
        ("*/temp*", "dir/tempfile", False, True),
        ("*/temp*", "dir/sub/tempfile", False, False),  # `*` stops at /
        ("temp?", "x/temp1", False, True),
        # The lines these charts use.
        ("ci/", "charts/alertmanager/ci", True, True),
        ("*.swp", "templates/a.swp", False, True),
        ("OWNERS", "OWNERS", False, True),
        ("# comment\n\n  *.bak  ", "values.bak", False, True),
        ("*.bak", "values.yaml", False, False),
        # Helm's default rule: hidden files in the top templates/.
        ("", "templates/.hidden", False, True),
        ("", "charts/sub/templates/.hidden", False, False),
    ],
)
def test_helmignore_follows_helms_documented_rules(rules: str, path: str, is_dir: bool, ignored: bool) -> None:
    assert HelmIgnore(rules).ignores(path, is_dir=is_dir) is ignored


def test_helmignore_refuses_double_star_as_helm_does() -> None:
    with pytest.raises(ValueError, match=r"\*\*"):
        HelmIgnore("**/tmp")


def test_the_server_serves_the_index_and_archives_on_loopback_until_stopped(
    repository: tuple[Path, list[ChartEntry]],
) -> None:
    dest, entries = repository
    entry = entries[0]

    with serve(dest) as server:
        assert server.url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(f"{server.url}/{INDEX}", timeout=10) as response:
            index = yaml.safe_load(response.read())
        with urllib.request.urlopen(f"{server.url}/{entry.file}", timeout=10) as response:
            archive = response.read()
        with pytest.raises(urllib.error.HTTPError) as listing:
            urllib.request.urlopen(f"{server.url}/", timeout=10)
        listing.value.close()
        port = server.port

    assert len(index["entries"]) == 10
    assert sha256(archive) == index["entries"][entry.name][0]["digest"] == entry.digest
    assert listing.value.code == 404  # no directory listings
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()

    # A later run can take the same URL again (the Releases' inputs name it).
    with serve(dest, port=port) as again:
        assert again.url == f"http://127.0.0.1:{port}"
        with urllib.request.urlopen(f"{again.url}/{INDEX}", timeout=10) as response:
            assert response.status == 200
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_the_chart_manifest_pins_every_chart_source_file_once_with_its_checksum(sources: Path) -> None:
    entries = fetch_reference.read_manifest(fetch_reference.CHART_MANIFEST)
    paths = [entry.path for entry in entries]
    files = {
        p.relative_to(sources).as_posix(): p
        for p in sources.rglob("*")
        if p.is_file() and p.relative_to(sources).as_posix() not in fetch_reference.NOT_UPSTREAM
    }

    assert len(paths) == len(set(paths)) == len(files) > 300
    assert set(paths) == set(files)
    assert all(sha256(files[entry.path].read_bytes()) == entry.sha256 for entry in entries)
    assert all(entry.url.startswith("https://raw.githubusercontent.com/") for entry in entries)
    assert all(entry.archive is None for entry in entries)  # whole files, archives too
    # The two published archives, at the checksums ../shared/chart-sources/README.md gives.
    pinned = {entry.path: entry.sha256 for entry in entries}
    assert pinned["kyverno-3.5.3.tgz"] == "906cda805cff9551730701dd4c40e34cb5a4fe7e8991d578de0f6c71b862b34e"
    assert pinned["kiali-server-2.14.0.tgz"] == "cf24b452bc7c9abf4fac8f9aed5d12fcf78e2f8ee168bc8d14c872136fa9eb19"


def test_the_chart_manifest_is_what_its_generator_writes_and_follows_the_provenance_table() -> None:
    shared = fetch_reference.CHART_SHARED
    if not (shared / "README.md").is_file():
        pytest.skip(f"{shared} is not beside this clone: the manifest is generated from it")

    assert fetch_reference.chart_manifest(shared) == fetch_reference.CHART_MANIFEST.read_text()

    readme = (shared / "README.md").read_text()
    for source in fetch_reference.CHART_PROVENANCE:
        assert source.repository in readme and source.commit in readme, source
        assert f"`{source.upstream}" in readme or source.upstream == "charts/", source
    urls = {entry.path: entry.url for entry in fetch_reference.read_manifest(fetch_reference.CHART_MANIFEST)}
    commit = "0ec2d0e3d0312070e2dc267a3ce77b4298a16cdd"
    subchart = urls["prometheus-27.31.0/charts/alertmanager/values.yaml"]
    assert subchart.endswith(f"{commit}/charts/alertmanager/values.yaml")
    assert urls["prometheus-27.31.0/values.yaml"].endswith(f"{commit}/charts/prometheus/values.yaml")
    assert urls["metallb-0.15.2/charts/frr-k8s-0.0.20.tgz"].endswith("/charts/metallb/charts/frr-k8s-0.0.20.tgz")


def test_chart_sources_folder_prefers_a_complete_shared_folder_then_a_complete_cache(tmp_path: Path) -> None:
    shared, cache = tmp_path / "shared", tmp_path / "cache"
    manifest = tmp_path / "chart.manifest"
    manifest.write_text(f"{'0' * 64}  a/Chart.yaml  https://raw.githubusercontent.com/o/r/c/Chart.yaml\n")
    (shared / "a").mkdir(parents=True)

    assert fetch_reference.chart_sources_folder(shared, cache, manifest) is None  # shared lacks a file
    (cache / "a").mkdir(parents=True)
    (cache / fetch_reference.COMPLETE).write_text(manifest.read_text())
    assert fetch_reference.chart_sources_folder(shared, cache, manifest) == cache
    (shared / "a" / "Chart.yaml").write_text("name: a\n")
    assert fetch_reference.chart_sources_folder(shared, cache, manifest) == shared


def test_without_chart_sources_the_error_says_to_run_make_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fetch_reference, "chart_sources_folder", lambda: None)

    with pytest.raises(ChartSourcesMissingError, match="make reference") as missing:
        chart_sources_folder()

    assert str(fetch_reference.CHART_SHARED) in str(missing.value)
    assert str(fetch_reference.CHART_CACHE) in str(missing.value)
