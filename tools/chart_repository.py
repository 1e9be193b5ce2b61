"""A Helm chart repository of the charts meshlab installs, packaged without a helm binary.

    entries = build_repository(chart_sources_folder(), dest)   # dest: NAME-VERSION.tgz + index.yaml

Packaging follows `helm package` (Helm's chart loader and chartutil.Save): the top .helmignore applies
to the whole tree, vendored subcharts (directories or .tgz) are written expanded under charts/NAME/,
files are 0644 under one folder named after the chart, with no directory entries. Unlike Helm,
Chart.yaml is kept as written (Helm re-serialises it) and timestamps are fixed, so an archive's
digest depends on its content only. Istio's sources get the edits Istio's release tooling makes
(../shared/chart-sources/README.md). index.yaml has the layout `helm repo index` writes.

The real-apply tier serves such a repository on loopback (tests/apply/chart_repository.py); `tools.images`
renders the charts of a chart-sources folder from it.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import re
import shutil
import tarfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from tools import fetch_reference

INDEX = "index.yaml"
HELMIGNORE = ".helmignore"
# Fixed member and gzip timestamps (Helm writes the packaging time): the same content gives the same digest.
MTIME = 0
# A source folder Istio's release tooling edits before packaging: istio-<chart>-<release>.
ISTIO_FOLDER = re.compile(r"istio-[a-z-]+-(?P<release>\d+\.\d+\.\d+)")
ISTIO_HUB = "docker.io/istio"
ISTIO_DEV_HUB = "gcr.io/istio-testing"
# Istio's charts that name images in their values (base installs CRDs and cluster resources only).
ISTIO_IMAGE_CHARTS = frozenset({"istiod", "cni", "ztunnel"})

# The fields of Helm's chart metadata, the only ones an index entry may carry: Helm reads an index
# strictly and refuses unknown fields.
METADATA_FIELDS = frozenset(
    {
        "name",
        "home",
        "sources",
        "version",
        "description",
        "keywords",
        "maintainers",
        "icon",
        "apiVersion",
        "condition",
        "tags",
        "appVersion",
        "deprecated",
        "annotations",
        "kubeVersion",
        "dependencies",
        "type",
    }
)
MAINTAINER_FIELDS = frozenset({"name", "email", "url"})
DEPENDENCY_FIELDS = frozenset(
    {"name", "version", "repository", "condition", "tags", "enabled", "import-values", "alias"}
)
# Free-text fields Helm normalises when it indexes a chart (whitespace to spaces, unprintables dropped).
SANITISED_FIELDS = ("name", "description", "home", "icon", "condition", "tags", "appVersion", "kubeVersion")


class ChartSourcesMissingError(RuntimeError):
    pass


@dataclass(frozen=True)
class ChartEntry:
    """One chart archive of the repository, as its index lists it."""

    name: str
    version: str
    file: str  # the archive's name in the repository folder (the index's relative URL)
    digest: str  # SHA-256 of the archive
    source: Path  # the chart directory or archive it was built from


def chart_sources_folder() -> Path:
    """../shared/chart-sources when it holds every pinned file, else the copy `make reference` fetched."""
    found = fetch_reference.chart_sources_folder()
    if found is None:
        raise ChartSourcesMissingError(
            "The Helm chart sources are missing. Looked for:\n"
            f"  {fetch_reference.CHART_SHARED}: the shared folder beside this clone (every file of "
            f"{fetch_reference.CHART_MANIFEST.name}), or\n"
            f"  {fetch_reference.CHART_CACHE}: the pinned copy `make reference` downloads (internet needed).\n"
            "Run `make reference`."
        )
    return found


# --- .helmignore -------------------------------------------------------------------------------------


def _go_glob(pattern: str) -> re.Pattern[str]:
    """Go's filepath.Match as a regular expression: `*` and `?` stop at `/`, `[^...]` negates, `\\` escapes."""
    out, i = [], 0
    while i < len(pattern):
        char = pattern[i]
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        elif char == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                raise ValueError(f"bad glob {pattern!r}: unterminated [")
            body = pattern[i + 1 : end]
            negated = body[:1] == "^"
            body = body[1:] if negated else body
            out.append(("[^" if negated else "[") + body + "]")
            i = end
        else:
            out.append(re.escape(char))
        i += 1
    return re.compile("".join(out) + r"\Z")


@dataclass(frozen=True)
class IgnoreRule:
    glob: re.Pattern[str]
    negate: bool
    directory_only: bool
    rooted: bool  # matched against the whole relative path, not the base name

    def matches(self, path: str) -> bool:
        return bool(self.glob.match(path if self.rooted else path.rsplit("/", 1)[-1]))


class HelmIgnore:
    """.helmignore as Helm reads it (its documented syntax, evaluated the way its loader evaluates it).

    One pattern a line; blank lines and `#` lines skipped; surrounding spaces trimmed; `**` refused.
    A trailing `/` matches directories only; a pattern with a `/` matches the path from the chart's top
    (a leading `/` is dropped), one without matches the base name. Rules are tried in order and the
    first match ignores the path. Helm's `!` is not gitignore's: a negated rule ignores every path it
    does NOT match and passes on the ones it does; reproduced here as Helm does it.
    """

    def __init__(self, text: str = "") -> None:
        self.rules: list[IgnoreRule] = []
        for line in [*text.splitlines(), "templates/.?*"]:  # Helm's default: hidden files in templates/
            pattern = line.strip()
            if not pattern or pattern.startswith("#"):
                continue
            if "**" in pattern:
                raise ValueError(f".helmignore: `**` is not supported by Helm: {line!r}")
            negate = pattern.startswith("!")
            pattern = pattern.removeprefix("!")
            directory_only = pattern.endswith("/")
            pattern = pattern.removesuffix("/")
            rooted = "/" in pattern
            self.rules.append(IgnoreRule(_go_glob(pattern.removeprefix("/")), negate, directory_only, rooted))

    def ignores(self, path: str, is_dir: bool) -> bool:
        for rule in self.rules:
            if rule.negate:
                if (rule.directory_only and not is_dir) or not rule.matches(path):
                    return True
                continue
            if rule.directory_only and not is_dir:
                continue
            if rule.matches(path):
                return True
        return False


# --- packaging -----------------------------------------------------------------------------------------


def _chart_files(folder: Path) -> dict[str, bytes]:
    """The files `helm package` takes from a chart folder: the top .helmignore applies to the whole tree."""
    ignore_file = folder / HELMIGNORE
    rules = HelmIgnore(ignore_file.read_text() if ignore_file.is_file() else "")
    files: dict[str, bytes] = {}
    for current, dirs, names in os.walk(folder, followlinks=True):
        base = Path(current).relative_to(folder).as_posix()
        prefix = "" if base == "." else f"{base}/"
        dirs[:] = sorted(d for d in dirs if not rules.ignores(prefix + d, is_dir=True))
        for name in sorted(names):
            path = prefix + name
            if rules.ignores(path, is_dir=False):
                continue
            if not (Path(current) / name).is_file():
                raise ValueError(f"{folder / path}: not a regular file; Helm refuses to package it")
            # Helm's loader drops a UTF-8 byte order mark.
            files[path] = (Path(current) / name).read_bytes().removeprefix(b"\xef\xbb\xbf")
    return files


def _read_archive(data: bytes, origin: str) -> tuple[str, dict[str, bytes]]:
    """(top folder, files under it) of a chart archive."""
    files: dict[str, bytes] = {}
    tops = set()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        for member in archive.getmembers():
            if not member.isfile():
                continue
            top, _, path = member.name.removeprefix("./").partition("/")
            if not top or not path or ".." in path.split("/"):
                raise ValueError(f"{origin}: unexpected member {member.name!r}")
            extracted = archive.extractfile(member)
            assert extracted is not None
            tops.add(top)
            files[path] = extracted.read()
    if len(tops) != 1 or "Chart.yaml" not in files:
        raise ValueError(f"{origin}: not a chart archive (one top folder holding Chart.yaml), found {sorted(tops)}")
    return tops.pop(), files


def _chart_yaml(data: bytes, origin: str) -> dict[str, Any]:
    metadata = yaml.safe_load(data)
    if not isinstance(metadata, dict) or not metadata.get("name") or not metadata.get("version"):
        raise ValueError(f"{origin}: Chart.yaml has no name or version")
    return metadata


def _vendor_subcharts(files: dict[str, bytes], origin: str) -> dict[str, bytes]:
    """Subcharts as Helm writes them into a package: charts/X.tgz unpacked to charts/NAME/, recursively."""
    out: dict[str, bytes] = {}
    subcharts: dict[str, dict[str, bytes]] = {}
    for path, data in files.items():
        parts = path.split("/", 2)
        if parts[0] != "charts" or len(parts) == 1 or path.endswith(".prov"):
            out[path] = data
        elif len(parts) == 2 and parts[1].endswith(".tgz"):
            _, members = _read_archive(data, f"{origin}/{path}")
            name = str(_chart_yaml(members["Chart.yaml"], f"{origin}/{path}")["name"])
            subcharts[name] = members
        elif len(parts) == 3:
            subcharts.setdefault(parts[1], {})[parts[2]] = data
        # else a stray file directly in charts/: Helm's loader takes it for no chart and drops it
    for name, members in subcharts.items():
        if name[:1] in "_.":  # Helm skips these names in charts/
            continue
        for path, data in _vendor_subcharts(members, f"{origin}/charts/{name}").items():
            out[f"charts/{name}/{path}"] = data
    return out


def _replace_line(text: str, pattern: str, replacement: str, origin: str, expected: int) -> str:
    edited, count = re.subn(pattern, replacement, text, flags=re.MULTILINE)
    if count != expected:
        raise ValueError(
            f"{origin}: expected {expected} line(s) matching {pattern!r} for Istio's release edit, found {count}; "
            "the chart's layout changed: check the edits in ../shared/chart-sources/README.md"
        )
    return edited


def _istio_release_edits(files: dict[str, bytes], release: str, origin: str) -> dict[str, bytes]:
    """What Istio's release tooling changes before packaging: the version and appVersion, the image hub and tag."""
    chart = files["Chart.yaml"].decode()
    for field in ("version", "appVersion"):
        chart = _replace_line(chart, rf"^{field}:[ \t]*\S+[ \t]*$", f"{field}: {release}", f"{origin}/Chart.yaml", 1)
    name = str(_chart_yaml(chart.encode(), origin)["name"])
    values = files["values.yaml"].decode()
    expected = 1 if name in ISTIO_IMAGE_CHARTS else 0
    where = f"{origin}/values.yaml"
    values = _replace_line(
        values, rf"^([ \t]*)hub: {re.escape(ISTIO_DEV_HUB)}[ \t]*$", rf"\g<1>hub: {ISTIO_HUB}", where, expected
    )
    values = _replace_line(values, r"^([ \t]*)tag: latest[ \t]*$", rf"\g<1>tag: {release}", where, expected)
    if ISTIO_DEV_HUB in values:
        raise ValueError(f"{where}: {ISTIO_DEV_HUB} is still named after the release edits, in a line of another form")
    return {**files, "Chart.yaml": chart.encode(), "values.yaml": values.encode()}


def _tar_gz(top: str, files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    # filename="" and mtime: no file name and no time in the gzip header.
    with (
        gzip.GzipFile(filename="", fileobj=buffer, mode="wb", mtime=MTIME) as zipped,
        tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as archive,
    ):
        # Chart.yaml first, as Helm writes it; the rest in a stable order.
        for path in sorted(files, key=lambda p: (p != "Chart.yaml", p)):
            info = tarfile.TarInfo(f"{top}/{path}")
            info.size, info.mode, info.mtime = len(files[path]), 0o644, MTIME
            archive.addfile(info, io.BytesIO(files[path]))
    return buffer.getvalue()


def package_chart(folder: Path) -> tuple[str, bytes, dict[str, Any]]:
    """(archive name NAME-VERSION.tgz, archive, Chart.yaml) of a chart folder, as `helm package` would make it."""
    files = _chart_files(folder)
    if "Chart.yaml" not in files:
        raise ValueError(f"{folder}: no Chart.yaml")
    release = ISTIO_FOLDER.fullmatch(folder.name)
    if release:
        files = _istio_release_edits(files, release["release"], str(folder))
    metadata = _chart_yaml(files["Chart.yaml"], str(folder / "Chart.yaml"))
    name, version = str(metadata["name"]), str(metadata["version"])
    if name != Path(name).name or name in {".", ".."}:
        raise ValueError(f"{folder}: invalid chart name {name!r}")
    return f"{name}-{version}.tgz", _tar_gz(name, _vendor_subcharts(files, str(folder))), metadata


# --- the index -----------------------------------------------------------------------------------------


def _empty(value: object) -> bool:
    return value is None or value is False or (isinstance(value, str | list | dict) and not value)


def _sanitised(value: str) -> str:
    return "".join(" " if char.isspace() else char for char in value if char.isspace() or char.isprintable())


def index_entry(metadata: dict[str, Any], file: str, digest: str, created: str) -> dict[str, Any]:
    """One chart version of index.yaml: the chart's metadata (Helm's fields only) plus urls, digest, created."""
    # Helm leaves out empty fields (Go's omitempty).
    entry = {key: value for key, value in metadata.items() if key in METADATA_FIELDS and not _empty(value)}
    for key in ("version", "appVersion"):
        if key in entry:
            entry[key] = str(entry[key])
    for key in SANITISED_FIELDS:
        if isinstance(entry.get(key), str):
            entry[key] = _sanitised(entry[key])
    for key in ("sources", "keywords"):
        if key in entry:
            entry[key] = [_sanitised(str(item)) for item in entry[key]]
    if "maintainers" in entry:
        entry["maintainers"] = [
            {k: _sanitised(str(v)) for k, v in m.items() if k in MAINTAINER_FIELDS} for m in entry["maintainers"]
        ]
    if "dependencies" in entry:
        entry["dependencies"] = [{k: v for k, v in d.items() if k in DEPENDENCY_FIELDS} for d in entry["dependencies"]]
    entry.setdefault("apiVersion", "v1")  # Helm's default for a Chart.yaml without one
    return {**entry, "urls": [file], "digest": digest, "created": created}


def _version_key(version: str) -> tuple[int, ...]:
    release = re.split(r"[-+]", version, maxsplit=1)[0]  # prereleases and build data do not order here
    return tuple(int(part) for part in re.findall(r"\d+", release))


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def build_repository(sources: Path, dest: Path, now: datetime | None = None) -> list[ChartEntry]:
    """Package every chart of `sources` (folders, and .tgz archives copied as they are) into `dest`, with index.yaml."""
    dest.mkdir(parents=True, exist_ok=True)
    created = _timestamp(now or datetime.now(UTC))
    built: list[tuple[ChartEntry, dict[str, Any]]] = []
    for source in sorted(sources.iterdir()):
        if source.is_dir():
            file, data, metadata = package_chart(source)
            (dest / file).write_bytes(data)
        elif source.is_file() and source.name.endswith(".tgz"):
            file, data = source.name, source.read_bytes()
            _, members = _read_archive(data, str(source))
            metadata = _chart_yaml(members["Chart.yaml"], f"{source}#Chart.yaml")
            shutil.copyfile(source, dest / file)
        else:
            continue  # the folder's README, the fetch marker
        digest = hashlib.sha256(data).hexdigest()
        entry = ChartEntry(str(metadata["name"]), str(metadata["version"]), file, digest, source)
        if any((e.name, e.version) == (entry.name, entry.version) for e, _ in built):
            raise ValueError(f"{source}: a second chart {entry.name} {entry.version} in {sources}")
        built.append((entry, metadata))
    entries: dict[str, list[dict[str, Any]]] = {}
    for entry, metadata in built:
        entries.setdefault(entry.name, []).append(index_entry(metadata, entry.file, entry.digest, created))
    for versions in entries.values():  # newest first, as Helm sorts them
        versions.sort(key=lambda v: _version_key(v["version"]), reverse=True)
    index = {"apiVersion": "v1", "entries": entries, "generated": created}
    (dest / INDEX).write_text(yaml.safe_dump(index, sort_keys=True, default_flow_style=False, width=1 << 16))
    return [entry for entry, _ in built]
