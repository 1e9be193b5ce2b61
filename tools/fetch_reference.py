"""Download the reference data and chart sources the tests check against, verified by SHA-256.

    python3 tools/fetch_reference.py                    # into .cache/reference and .cache/chart-sources
    python3 tools/fetch_reference.py --mirror URL       # from a mirror laid out as URL/HOST/PATH
                                                        # (default: $MESHLAB_REFERENCE_MIRROR, else upstream)
    python3 tools/fetch_reference.py --if-missing       # only what the tests would not find (make test-offline)
    python3 -m tools.fetch_reference --write-chart-manifest   # regenerate tools/chart-sources.manifest

The tests read ../shared/reference and ../shared/chart-sources when they exist beside the clone (the
meshlab environment), else the copies this script writes (what `make reference` runs). Every file is
pinned in tools/reference.manifest or tools/chart-sources.manifest; a file whose checksum differs is
not written, whichever host it came from. Files already present with the right checksum are not
downloaded again, and a copy counts as complete (tests use it) only once every file of its manifest is
there. Without a connection it stops at the first failure and counts every file still missing.
Standard library only: it runs before the virtualenv exists.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import sys
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "tools" / "reference.manifest"
CACHE = ROOT / ".cache" / "reference"
SHARED = ROOT.parent / "shared" / "reference"
# The whole charts of the Helm releases, for the real-apply tier's chart repository (tests/apply).
CHART_MANIFEST = ROOT / "tools" / "chart-sources.manifest"
CHART_CACHE = ROOT / ".cache" / "chart-sources"
CHART_SHARED = ROOT.parent / "shared" / "chart-sources"
# Written last, a copy of the manifest the folder was completed against.
COMPLETE = ".manifest"
TIMEOUT_SECONDS = 60


@dataclass(frozen=True)
class Entry:
    sha256: str
    path: str
    url: str

    @property
    def archive(self) -> tuple[str, str] | None:
        """(archive URL, member) for a file inside a published chart archive."""
        if "#" not in self.url:
            return None
        url, member = self.url.split("#", 1)
        return url, member


def read_manifest(manifest: Path = MANIFEST) -> list[Entry]:
    entries = []
    for number, line in enumerate(manifest.read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) != 3 or len(fields[0]) != 64:
            raise ValueError(f"{manifest}:{number}: expected `SHA256 PATH URL`, got {line!r}")
        entries.append(Entry(*fields))
    return entries


def complete(folder: Path, manifest: Path = MANIFEST) -> bool:
    """Whether `folder` holds every file of the manifest as it is now."""
    marker = folder / COMPLETE
    return marker.is_file() and marker.read_text() == manifest.read_text()


def reference_folder(shared: Path = SHARED, cache: Path = CACHE, manifest: Path = MANIFEST) -> Path | None:
    """The reference data the tests use: the shared folder if it exists, else a complete cache, else None."""
    if shared.is_dir():
        return shared
    return cache if complete(cache, manifest) else None


def chart_sources_folder(
    shared: Path = CHART_SHARED, cache: Path = CHART_CACHE, manifest: Path = CHART_MANIFEST
) -> Path | None:
    """The chart sources: the shared folder if it holds every pinned file, else a complete cache, else None."""
    if shared.is_dir() and all((shared / entry.path).is_file() for entry in read_manifest(manifest)):
        return shared
    return cache if complete(cache, manifest) else None


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def mirrored(url: str, mirror: str | None) -> str:
    """`https://HOST/PATH` as served by a mirror laid out as MIRROR/HOST/PATH."""
    if not mirror:
        return url
    _, _, rest = url.partition("://")
    return f"{mirror.rstrip('/')}/{rest}"


class UnreachableError(OSError):
    """The mirror or upstream host could not be reached: later downloads are not tried."""


class Fetcher:
    def __init__(self, mirror: str | None) -> None:
        self.mirror = mirror
        self.downloads: dict[str, bytes] = {}
        # The first connection failure (no network, no DNS, a timeout): every later download fails with it at
        # once instead of waiting for its own timeout.
        self.unreachable: str | None = None

    def download(self, url: str) -> bytes:
        if self.unreachable is not None:
            raise UnreachableError(self.unreachable)
        if url not in self.downloads:
            try:
                with urllib.request.urlopen(mirrored(url, self.mirror), timeout=TIMEOUT_SECONDS) as response:
                    self.downloads[url] = response.read()
            except urllib.error.HTTPError:
                raise
            except OSError as error:  # URLError (no DNS, refused), a timeout, a reset
                host = urllib.parse.urlsplit(mirrored(url, self.mirror)).netloc
                self.unreachable = f"no connection to {host}: {error}"
                raise UnreachableError(self.unreachable) from error
        return self.downloads[url]

    def content(self, entry: Entry) -> bytes:
        if entry.archive is None:
            return self.download(entry.url)
        url, member = entry.archive
        with tarfile.open(fileobj=io.BytesIO(self.download(url)), mode="r:gz") as archive:
            extracted = archive.extractfile(member)
            if extracted is None:
                raise KeyError(f"{member} is not a file in {url}")
            return extracted.read()


def write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as stream:
        stream.write(data)
    Path(stream.name).replace(path)


@dataclass
class Outcome:
    """What one fetch left behind: `missing` files of `total` are still not there (failed, or not tried
    once the host was unreachable), each failure in `problems`."""

    files: str  # "reference files", "chart source files"
    dest: Path
    total: int
    downloaded: int = 0
    missing: int = 0
    problems: list[str] = field(default_factory=list)
    unreachable: str | None = None

    def report(self) -> list[str]:
        """The lines that say what is missing and why (none when nothing is)."""
        if not self.missing:
            return []
        lines = [f"fetch_reference: {self.missing} of the {self.total} {self.files} could not be fetched:"]
        lines += [f"  - {problem}" for problem in self.problems]
        not_tried = self.missing - len(self.problems)
        if not_tried:
            lines.append(f"  - {not_tried} {'more ' if self.problems else ''}not tried: {self.unreachable}")
        return lines


def fetch(
    dest: Path,
    mirror: str | None,
    manifest: Path = MANIFEST,
    what: str = "reference data",
    fetcher: Fetcher | None = None,
) -> Outcome:
    """Bring `dest` up to date with the manifest; the outcome counts what is still missing."""
    entries = read_manifest(manifest)
    fetcher = fetcher or Fetcher(mirror)
    files = {"reference data": "reference files", "chart sources": "chart source files"}.get(what, f"{what} files")
    outcome = Outcome(files, dest, len(entries))
    (dest / COMPLETE).unlink(missing_ok=True)
    for entry in entries:
        target = dest / entry.path
        if target.is_file() and sha256(target.read_bytes()) == entry.sha256:
            continue
        outcome.missing += 1
        if fetcher.unreachable is not None:  # counted, not tried: the rest would fail the same way
            continue
        source = mirrored(entry.url, mirror)
        try:
            data = fetcher.content(entry)
        except UnreachableError:
            outcome.problems.append(f"{entry.path}: could not download {source}: {fetcher.unreachable}")
            continue
        except (urllib.error.HTTPError, KeyError, tarfile.TarError) as error:
            outcome.problems.append(f"{entry.path}: could not download {source}: {error}")
            continue
        if sha256(data) != entry.sha256:
            outcome.problems.append(
                f"{entry.path}: checksum mismatch for {source}: expected sha256 {entry.sha256}, got {sha256(data)}"
            )
            continue
        write_atomically(target, data)
        outcome.downloaded += 1
        outcome.missing -= 1
    outcome.unreachable = fetcher.unreachable
    if not outcome.missing:
        write_atomically(dest / COMPLETE, manifest.read_bytes())
        print(f"{what} in {dest}: {len(entries)} files ({outcome.downloaded} downloaded)")
    return outcome


@dataclass(frozen=True)
class Provenance:
    """Where the files under `local` in the chart sources come from: `upstream` in a GitHub repository."""

    local: str  # a folder (ending in /) or a file under the chart sources
    repository: str  # OWNER/NAME
    commit: str
    upstream: str  # the same folder or file in that repository at that commit

    def url(self, path: str) -> str:
        rest = path[len(self.local) :]
        return f"https://raw.githubusercontent.com/{self.repository}/{self.commit}/{self.upstream}{rest}"


_ISTIO = ("istio/istio", "7359d8be2504f2b191f7d94156af08e6590d2d1c")
_PROMETHEUS = ("prometheus-community/helm-charts", "0ec2d0e3d0312070e2dc267a3ce77b4298a16cdd")
# The provenance table of ../shared/chart-sources/README.md. The longest matching `local` wins, so
# prometheus's vendored subcharts map to the same commit's charts/<name>/ folders, not charts/prometheus/.
CHART_PROVENANCE = (
    Provenance("istio-base-1.27.0/", *_ISTIO, "manifests/charts/base/"),
    Provenance("istio-istiod-1.27.0/", *_ISTIO, "manifests/charts/istio-control/istio-discovery/"),
    Provenance("istio-cni-1.27.0/", *_ISTIO, "manifests/charts/istio-cni/"),
    Provenance("istio-ztunnel-1.27.0/", *_ISTIO, "manifests/charts/ztunnel/"),
    # Its charts/crds/ subchart and charts/frr-k8s-0.0.20.tgz are in the repository under charts/metallb/.
    Provenance("metallb-0.15.2/", "metallb/metallb", "942c2fe54a75ac6353d3099eeebff33b6b8fe3f0", "charts/metallb/"),
    Provenance(
        "nfs-subdir-external-provisioner-4.0.18/",
        "kubernetes-sigs/nfs-subdir-external-provisioner",
        "c2a2d5d544781e3d3e4d7a7e2d21a8e64cf6d9d1",
        "charts/nfs-subdir-external-provisioner/",
    ),
    Provenance("grafana-9.3.2/", "grafana/helm-charts", "ac7ea2dbc5fb843c5462b5e6f03421aebe37d48f", "charts/grafana/"),
    Provenance("prometheus-27.31.0/", *_PROMETHEUS, "charts/prometheus/"),
    Provenance("prometheus-27.31.0/charts/", *_PROMETHEUS, "charts/"),
    # The published archives themselves (kyverno's from its gh-pages branch).
    Provenance("kyverno-3.5.3.tgz", "kyverno/kyverno", "ffe99cd42a9c043aa54fb8193c9017230a8f7fee", "kyverno-3.5.3.tgz"),
    Provenance(
        "kiali-server-2.14.0.tgz",
        "kiali/helm-charts",
        "e02e14e3321a555acd31efc9277752713b77e2d9",
        "docs/kiali-server-2.14.0.tgz",
    ),
)
# Files of the chart sources folder that are not upstream chart files: its own README (the provenance
# table) and the marker this script writes.
NOT_UPSTREAM = ("README.md", COMPLETE)

CHART_MANIFEST_HEADER = """\
# The whole charts of the Helm releases meshlab installs, for the real-apply tier's chart repository
# (tests/apply/chart_repository.py). `make reference` downloads them into .cache/chart-sources
# (tools/fetch_reference.py) for a clone that has no ../shared/chart-sources beside it. Where each
# chart comes from: ../shared/chart-sources/README.md. Istio's are the unedited sources at the tag:
# the release edits (version, hub, tag) are made when packaging, so these checksums are of the sources.
#
# One file per line: SHA-256, path under the chart sources folder, upstream URL at a pinned commit.
# Generated by `python -m tools.fetch_reference --write-chart-manifest`; do not edit by hand.
"""


def chart_manifest(folder: Path) -> str:
    """The chart manifest for every upstream file under `folder`, mapped through CHART_PROVENANCE."""
    lines = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        relative = path.relative_to(folder).as_posix()
        if relative in NOT_UPSTREAM:
            continue
        matches = [p for p in CHART_PROVENANCE if relative == p.local or relative.startswith(p.local.rstrip("/") + "/")]
        if not matches:
            raise ValueError(f"{path}: no provenance for this file in CHART_PROVENANCE (tools/fetch_reference.py)")
        source = max(matches, key=lambda p: len(p.local))
        lines.append(f"{sha256(path.read_bytes())}  {relative}  {source.url(relative)}\n")
    return CHART_MANIFEST_HEADER + "".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tools/fetch_reference.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dest", type=Path, default=CACHE, help=f"reference data folder (default: {CACHE})")
    parser.add_argument(
        "--charts-dest", type=Path, default=CHART_CACHE, help=f"chart sources folder (default: {CHART_CACHE})"
    )
    parser.add_argument(
        "--mirror",
        default=os.environ.get("MESHLAB_REFERENCE_MIRROR"),
        help="base URL of a mirror laid out as MIRROR/HOST/PATH (default: $MESHLAB_REFERENCE_MIRROR, else upstream)",
    )
    parser.add_argument(
        "--write-chart-manifest",
        action="store_true",
        help=f"write {CHART_MANIFEST.relative_to(ROOT)} from the chart sources in {CHART_SHARED}, download nothing",
    )
    parser.add_argument(
        "--if-missing",
        action="store_true",
        help="only what the tests would not find (beside the clone, or complete in the cache): `make test-offline`",
    )
    parser.add_argument("--manifest", type=Path, default=MANIFEST, help=argparse.SUPPRESS)
    parser.add_argument("--chart-manifest", type=Path, default=CHART_MANIFEST, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.write_chart_manifest:
        text = chart_manifest(CHART_SHARED)
        args.chart_manifest.write_text(text)
        print(f"{args.chart_manifest}: {len(read_manifest(args.chart_manifest))} files of {CHART_SHARED}")
        return 0
    # What to bring up to date: both copies (`make reference`), or with --if-missing (`make test-offline`) only
    # those the tests would not find, beside the clone or complete in the cache.
    wanted = {
        "reference data": (args.dest, args.manifest, reference_folder(cache=args.dest, manifest=args.manifest)),
        "chart sources": (
            args.charts_dest,
            args.chart_manifest,
            chart_sources_folder(cache=args.charts_dest, manifest=args.chart_manifest),
        ),
    }
    if args.if_missing:
        wanted = {what: folders for what, folders in wanted.items() if folders[2] is None}
        if not wanted:
            return 0
        print(f"fetch_reference: no {' and no '.join(wanted)} beside this clone or in .cache: downloading them once")
    # One fetcher: a URL both manifests name (a published chart archive) is downloaded once.
    fetcher = Fetcher(args.mirror)
    outcomes = [fetch(dest, args.mirror, manifest, what, fetcher) for what, (dest, manifest, _) in wanted.items()]
    if fetcher.unreachable is not None and args.if_missing:
        # The host could not be reached: one sentence and the command, not a line per file.
        print(
            f"fetch_reference: the tests check against the {' and '.join(wanted)}, which are neither beside this "
            f"clone ({SHARED.parent}) nor complete in {args.dest.parent}, and could not be downloaded "
            f"({fetcher.unreachable}). Where that host is reachable, or with a mirror of it "
            "(MESHLAB_REFERENCE_MIRROR=URL, see docs/air-gapped.md), run:\n    make reference",
            file=sys.stderr,
        )
        return 1
    for outcome in outcomes:
        for line in outcome.report():
            print(line, file=sys.stderr)
    if fetcher.unreachable is not None:
        print(
            "fetch_reference: run `make reference` where that host is reachable, or point it at a mirror laid out as "
            "URL/HOST/PATH: `MESHLAB_REFERENCE_MIRROR=URL make reference` (or --mirror URL).",
            file=sys.stderr,
        )
    return 1 if any(outcome.missing for outcome in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
