"""Download the reference data the offline tests check against, verified by SHA-256.

    python3 tools/fetch_reference.py                    # into .cache/reference (what `make reference` runs)
    python3 tools/fetch_reference.py --mirror URL       # from a mirror laid out as URL/HOST/PATH

The tests read ../shared/reference when it exists beside the clone (the meshlab environment), else
the copy this script writes. Every file is pinned in tools/reference.manifest; a file whose checksum
differs is not written. Files already present with the right checksum are not downloaded again, and
the copy counts as complete (tests use it) only once every file is there.
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
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "tools" / "reference.manifest"
CACHE = ROOT / ".cache" / "reference"
SHARED = ROOT.parent / "shared" / "reference"
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


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def mirrored(url: str, mirror: str | None) -> str:
    """`https://HOST/PATH` as served by a mirror laid out as MIRROR/HOST/PATH."""
    if not mirror:
        return url
    _, _, rest = url.partition("://")
    return f"{mirror.rstrip('/')}/{rest}"


class Fetcher:
    def __init__(self, mirror: str | None) -> None:
        self.mirror = mirror
        self.downloads: dict[str, bytes] = {}

    def download(self, url: str) -> bytes:
        if url not in self.downloads:
            with urllib.request.urlopen(mirrored(url, self.mirror), timeout=TIMEOUT_SECONDS) as response:
                self.downloads[url] = response.read()
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


def fetch(dest: Path, mirror: str | None, manifest: Path = MANIFEST) -> list[str]:
    """Bring `dest` up to date with the manifest; returns the problems (empty on success)."""
    entries = read_manifest(manifest)
    fetcher, problems, fetched = Fetcher(mirror), [], 0
    (dest / COMPLETE).unlink(missing_ok=True)
    for entry in entries:
        target = dest / entry.path
        if target.is_file() and sha256(target.read_bytes()) == entry.sha256:
            continue
        source = mirrored(entry.url, mirror)
        try:
            data = fetcher.content(entry)
        except (urllib.error.HTTPError, KeyError, tarfile.TarError) as error:
            problems.append(f"{entry.path}: could not download {source}: {error}")
            continue
        except OSError as error:  # no connection, a timeout: the rest would only wait in turn
            problems.append(f"{entry.path}: could not download {source}: {error}; stopped there")
            break
        if sha256(data) != entry.sha256:
            problems.append(
                f"{entry.path}: checksum mismatch for {source}: expected sha256 {entry.sha256}, got {sha256(data)}"
            )
            continue
        write_atomically(target, data)
        fetched += 1
    if not problems:
        write_atomically(dest / COMPLETE, manifest.read_bytes())
        print(f"reference data in {dest}: {len(entries)} files ({fetched} downloaded)")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tools/fetch_reference.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dest", type=Path, default=CACHE, help=f"target folder (default: {CACHE})")
    parser.add_argument(
        "--mirror",
        default=os.environ.get("MESHLAB_REFERENCE_MIRROR"),
        help="base URL of a mirror laid out as MIRROR/HOST/PATH (default: $MESHLAB_REFERENCE_MIRROR, else upstream)",
    )
    parser.add_argument("--manifest", type=Path, default=MANIFEST, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    problems = fetch(args.dest, args.mirror, args.manifest)
    if problems:
        print(f"fetch_reference: {len(problems)} of the reference files could not be fetched:", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
