"""RKE2 from the workstation's artifacts: the fetch step on the workstation (a directory of the user's, and
downloads from a loopback server), and the node's install from the copies, against a STAND-IN artifact
set: files of the real release's names and layout whose contents are random bytes, with a checksum file
of the real format (real RKE2 artifacts cannot be downloaded here)."""

from __future__ import annotations

import hashlib
import http.server
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from components.cluster.scripts import SCRIPTS
from config import versions
from tests.test_cluster_scripts import BASH, OLD, Node


@pytest.fixture
def node(tmp_path: Path) -> Node:
    return Node(tmp_path)


RELEASE = versions.Rke2Artifacts(OLD, "amd64")
RELEASE_FILES = (RELEASE.tarball, *RELEASE.image_archives)
# A stand-in installer of the real one's interface: it records how it was called and what it found in the
# artifact directory, and installs a fake rke2 (as the fake node's get.rke2.io installer does).
STANDIN_INSTALLER = """\
#!/bin/sh
# STAND-IN for RKE2's install.sh (records its arguments; installs a fake rke2 under MESHLAB_ROOT).
set -eu
echo "installer $INSTALL_RKE2_VERSION $INSTALL_RKE2_TYPE artifacts=$INSTALL_RKE2_ARTIFACT_PATH" >>"$FAKE_NODE_LOG"
test -f "$INSTALL_RKE2_ARTIFACT_PATH/rke2.linux-amd64.tar.gz"
test -f "$INSTALL_RKE2_ARTIFACT_PATH/sha256sum-amd64.txt"
mkdir -p "$MESHLAB_ROOT/usr/local/bin" "$MESHLAB_ROOT/usr/local/share/rke2"
printf '#!/bin/sh\\necho "rke2 version %s (fake)"\\n' "$INSTALL_RKE2_VERSION" >"$MESHLAB_ROOT/usr/local/bin/rke2"
chmod +x "$MESHLAB_ROOT/usr/local/bin/rke2"
printf 'vm.panic_on_oom=0\\n' >"$MESHLAB_ROOT/usr/local/share/rke2/rke2-cis-sysctl.conf"
"""


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def standin_release(directory: Path, *, unlisted: str = "") -> dict[str, str]:
    """A stand-in release in `directory`: each file random, the checksum file listing all but `unlisted`
    (plus a file the nodes do not need, as the real one lists dozens). Returns name -> SHA-256."""
    directory.mkdir(parents=True, exist_ok=True)
    sums = {}
    for name in RELEASE_FILES:
        (directory / name).write_bytes(os.urandom(4096))
        sums[name] = sha256(directory / name)
    (directory / "rke2.windows-amd64.tar.gz").write_bytes(os.urandom(64))
    listed = {**sums, "rke2.windows-amd64.tar.gz": sha256(directory / "rke2.windows-amd64.tar.gz")}
    (directory / RELEASE.checksums).write_text(
        "".join(f"{digest}  {name}\n" for name, digest in listed.items() if name != unlisted)
    )
    (directory / RELEASE.INSTALLER).write_text(STANDIN_INSTALLER)
    return sums


def fetch_env(directory: Path, manifest: Path, **extra: str) -> dict[str, str]:
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(manifest.parent),
        "MESHLAB_RKE2_VERSION": OLD,
        "MESHLAB_ARTIFACT_DIR": str(directory),
        "MESHLAB_ARTIFACT_MANIFEST": str(manifest),
        "MESHLAB_ARTIFACT_CHECKSUMS": RELEASE.checksums,
        "MESHLAB_ARTIFACT_RELEASE_FILES": " ".join(RELEASE_FILES),
        "MESHLAB_ARTIFACT_INSTALLER": RELEASE.INSTALLER,
        **extra,
    }


def run_fetch(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BASH, "-c", SCRIPTS.render("rke2_artifacts_fetch")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# --- the workstation: a directory of the user's (air gap) ----------------------------------------


def test_a_complete_directory_is_verified_and_its_manifest_lists_what_nodes_receive(tmp_path: Path) -> None:
    sums = standin_release(tmp_path / "airgap")
    manifest = tmp_path / "cache" / "meshlab-artifacts.sha256"
    result = run_fetch(fetch_env(tmp_path / "airgap", manifest))
    assert result.returncode == 0, result.stderr
    lines = {name: digest for digest, name in (line.split("  ") for line in manifest.read_text().splitlines())}
    assert set(lines) == {*RELEASE_FILES, RELEASE.checksums, RELEASE.INSTALLER}
    assert all(lines[name] == digest for name, digest in sums.items())
    assert lines[RELEASE.INSTALLER] == sha256(tmp_path / "airgap" / RELEASE.INSTALLER)
    assert result.stdout == manifest.read_text()
    # Nothing is written into the user's directory.
    assert sorted(path.name for path in (tmp_path / "airgap").iterdir()) == sorted(
        [*RELEASE_FILES, RELEASE.checksums, RELEASE.INSTALLER, "rke2.windows-amd64.tar.gz"]
    )


def test_a_damaged_file_is_refused_with_both_checksums(tmp_path: Path) -> None:
    sums = standin_release(tmp_path / "airgap")
    archive = tmp_path / "airgap" / RELEASE.image_archives[0]
    archive.write_bytes(archive.read_bytes()[:-1] + b"!")
    result = run_fetch(fetch_env(tmp_path / "airgap", tmp_path / "m"))
    assert result.returncode != 0
    assert f"{archive} does not match RKE2 {OLD}'s checksum ({sums[archive.name]}" in result.stderr
    assert f"got {sha256(archive)}" in result.stderr and "replace it with the release's file" in result.stderr
    assert not (tmp_path / "m").exists()


def test_a_directory_lacking_files_names_every_missing_one(tmp_path: Path) -> None:
    standin_release(tmp_path / "airgap")
    for name in (RELEASE.image_archives[1], RELEASE.INSTALLER):
        (tmp_path / "airgap" / name).unlink()
    result = run_fetch(fetch_env(tmp_path / "airgap", tmp_path / "m"))
    assert result.returncode != 0
    assert f"lacks {RELEASE.image_archives[1]} {RELEASE.INSTALLER} of RKE2 {OLD}" in result.stderr


def test_a_checksum_file_of_another_release_is_refused(tmp_path: Path) -> None:
    standin_release(tmp_path / "airgap", unlisted=RELEASE.tarball)
    result = run_fetch(fetch_env(tmp_path / "airgap", tmp_path / "m"))
    assert result.returncode != 0
    assert f"does not list {RELEASE.tarball}" in result.stderr


def test_a_missing_directory_says_what_it_must_hold(tmp_path: Path) -> None:
    result = run_fetch(fetch_env(tmp_path / "nowhere", tmp_path / "m"))
    assert result.returncode != 0
    assert f"meshlab:rke2Artifacts: {tmp_path / 'nowhere'} is not a directory" in result.stderr
    assert RELEASE.tarball in result.stderr


# --- the workstation: download once into the cache -------------------------------------------------


class _Release(http.server.SimpleHTTPRequestHandler):
    requests: list[str]

    def log_message(self, format: str, *args: object) -> None:
        type(self).requests.append(self.path)


@pytest.fixture
def release_server(tmp_path: Path) -> Iterator[tuple[str, Path, list[str]]]:
    """A loopback HTTP server of a stand-in release directory: (base URL, directory, requested paths)."""
    served = tmp_path / "served"
    standin_release(served)
    requests: list[str] = []
    handler = type("Handler", (_Release,), {"requests": requests})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *args: handler(*args, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", served, requests
    finally:
        server.shutdown()
        server.server_close()


def test_download_mode_downloads_once_verifies_and_records_the_installer(
    tmp_path: Path, release_server: tuple[str, Path, list[str]]
) -> None:
    base, served, requests = release_server
    cache = tmp_path / "cache" / "rke2" / f"{OLD}-amd64"
    env = fetch_env(
        cache,
        cache / "meshlab-artifacts.sha256",
        MESHLAB_ARTIFACT_BASE_URL=base,
        MESHLAB_ARTIFACT_INSTALLER_URL=f"{base}/install.sh",
    )
    result = run_fetch(env)
    assert result.returncode == 0, result.stderr
    assert sorted(requests) == sorted(f"/{name}" for name in (*RELEASE_FILES, RELEASE.checksums, "install.sh"))
    for name in RELEASE_FILES:
        assert sha256(cache / name) == sha256(served / name)
    assert (cache / "install.sh.sha256").read_text().strip() == sha256(served / "install.sh")

    requests.clear()
    again = run_fetch(env)
    assert again.returncode == 0, again.stderr
    assert requests == [] and again.stdout == result.stdout

    # A changed installer in the cache is not used silently.
    (cache / "install.sh").write_text("#!/bin/sh\necho changed\n")
    changed = run_fetch(env)
    assert changed.returncode != 0 and "changed since it was downloaded" in changed.stderr


def test_a_download_that_does_not_match_the_release_checksum_is_removed(
    tmp_path: Path, release_server: tuple[str, Path, list[str]]
) -> None:
    base, served, _requests = release_server
    (served / RELEASE.tarball).write_bytes(b"tampered on the way")
    cache = tmp_path / "cache"
    installer = f"{base}/install.sh"
    env = fetch_env(cache, cache / "m", MESHLAB_ARTIFACT_BASE_URL=base, MESHLAB_ARTIFACT_INSTALLER_URL=installer)
    result = run_fetch(env)
    assert result.returncode != 0
    assert f"the download of {RELEASE.tarball} does not match RKE2 {OLD}'s checksum" in result.stderr
    assert not (cache / RELEASE.tarball).exists()


def test_an_unreachable_release_says_how_to_install_without_the_internet(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    # Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
    env = fetch_env(cache, cache / "m", MESHLAB_ARTIFACT_BASE_URL="http://127.0.0.1:9/rke2")
    result = run_fetch(env)
    assert result.returncode != 0
    assert f"could not download http://127.0.0.1:9/rke2/{RELEASE.checksums}" in result.stderr
    assert "meshlab:rke2Artifacts to a directory" in result.stderr


# --- the node: install from the copies -----------------------------------------------------------

ARTIFACT_DIR = f"/home/meshlab/.meshlab-staging/rke2-{OLD}"


def copy_to_node(node: Node, tmp_path: Path) -> Path:
    """The workstation's verified set, copied into the node's staging directory (as the copy steps do)."""
    source, cache = tmp_path / "release", tmp_path / "cache"
    standin_release(source)
    result = run_fetch(fetch_env(source, cache / "meshlab-artifacts.sha256"))
    assert result.returncode == 0, result.stderr
    target = node.root / ARTIFACT_DIR.lstrip("/")
    target.mkdir(parents=True)
    for name in (*RELEASE.node_files, "meshlab-artifacts.sha256"):
        origin = cache / name if name == "meshlab-artifacts.sha256" else source / name
        (target / name).write_bytes(origin.read_bytes())
    return target


def artifact_inputs(kind: str = "server") -> dict[str, str]:
    return {"MESHLAB_RKE2_VERSION": OLD, "MESHLAB_RKE2_TYPE": kind, "MESHLAB_RKE2_ARTIFACTS": ARTIFACT_DIR}


def test_install_from_artifacts_downloads_nothing_and_places_the_image_archives(node: Node, tmp_path: Path) -> None:
    copies = copy_to_node(node, tmp_path)
    out = node.ok("rke2_install", **artifact_inputs("agent"))
    assert f"installing RKE2 {OLD} (agent) from the copied artifacts" in out
    assert node.calls("installer") == [f"installer {OLD} agent artifacts={node.root}{ARTIFACT_DIR}"]
    assert node.calls("curl") == []
    images = node.root / "var/lib/rancher/rke2/agent/images"
    assert sorted(path.name for path in images.iterdir()) == sorted(RELEASE.image_archives)
    for name in RELEASE.image_archives:
        assert (images / name).read_bytes() == (copies / name).read_bytes()
    # The tarball is the installer's, not an image archive.
    assert not (images / RELEASE.tarball).exists()

    node.forget_calls()
    assert "already installed" in node.ok("rke2_install", **artifact_inputs("agent"))
    assert node.calls("installer") == []


def test_a_damaged_copy_is_refused_before_the_installer_runs(node: Node, tmp_path: Path) -> None:
    copies = copy_to_node(node, tmp_path)
    damaged = copies / RELEASE.image_archives[1]
    damaged.write_bytes(b"\0" * 10)
    message = node.fails("rke2_install", **artifact_inputs())
    assert f"{ARTIFACT_DIR}/{damaged.name}" in message and "does not match the workstation's checksum" in message
    assert "pulumi up --replace" in message
    assert node.calls("installer") == []
    assert not (node.root / "var/lib/rancher/rke2/agent/images").exists()


def test_artifacts_that_never_arrived_are_named(node: Node) -> None:
    message = node.fails("rke2_install", **artifact_inputs())
    assert f"{ARTIFACT_DIR}/meshlab-artifacts.sha256 is missing" in message
    assert node.calls("installer") == []
