"""RKE2 from the workstation's artifacts (meshlab:rke2Artifacts) on the QEMU guests, with the air-gap
settings a user sets: an artifact directory and a mirror for every registry.

Real RKE2 artifacts cannot be downloaded here, so the directory holds a STAND-IN artifact set: files of
the release's names and layout with random contents, a checksum file of the release's format, and a
STAND-IN install.sh that records how it was called and installs a stand-in `rke2` (it is not RKE2). The
mirror is the tier's stand-in HTTP server. What is real: meshlab's fetch step on the workstation, the
copies (scp, as the provider's SFTP), the node's checks and its install step, and the preflight in the
namespace, which has no route to github.com or any registry.

The tier's modules run in the order of their numbers and share one set of guests (conftest's
session-wide `vm_lab`): a later module needs what an earlier one brought up.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from config import versions
from config.loader import StackConfig
from tests.vm.conftest import HOST_IP, STANDIN_HTTP_PORT
from tests.vm.helpers import exported_value, lab_nodes, twice_remote
from tests.vm.lab import VmLab, progress
from tools.render import with_overrides

RELEASE = versions.Rke2Artifacts(versions.RKE2, "amd64")
STANDIN_LOG = "/var/log/meshlab-standin-rke2-installer.log"
STANDIN_INSTALLER = f"""\
#!/bin/sh
# STAND-IN for RKE2's install.sh (meshlab's VM tier): records how it was called, checks the tarball against
# the checksum file as the real one does, and installs a stand-in rke2 that reports the version it was given.
set -eu
{{
  echo "INSTALL_RKE2_ARTIFACT_PATH=${{INSTALL_RKE2_ARTIFACT_PATH:-}}"
  echo "INSTALL_RKE2_VERSION=${{INSTALL_RKE2_VERSION:-}}"
  echo "INSTALL_RKE2_TYPE=${{INSTALL_RKE2_TYPE:-}}"
}} >{STANDIN_LOG}
dir=$INSTALL_RKE2_ARTIFACT_PATH
expected=$(awk '$2 == "{RELEASE.tarball}" {{ print $1 }}' "$dir/{RELEASE.checksums}")
[ "$(sha256sum "$dir/{RELEASE.tarball}" | cut -d' ' -f1)" = "$expected" ]
mkdir -p /usr/local/bin /usr/local/share/rke2
printf '#!/bin/sh\\necho "rke2 version %s (stand-in)"\\n' "$INSTALL_RKE2_VERSION" >/usr/local/bin/rke2
printf '#!/bin/sh\\nrm -rf /usr/local/bin/rke2 /usr/local/share/rke2 %s %s\\n' \\
  /var/lib/rancher/rke2/agent/images {STANDIN_LOG} >/usr/local/bin/rke2-uninstall.sh
chmod +x /usr/local/bin/rke2 /usr/local/bin/rke2-uninstall.sh
printf 'vm.panic_on_oom=0\\nvm.overcommit_memory=1\\n' >/usr/local/share/rke2/rke2-cis-sysctl.conf
"""
FETCH = "cluster-rke2-artifacts-fetch"


def standin_artifacts(directory: Path) -> dict[str, str]:
    """The STAND-IN set: name -> SHA-256 of each release file (a few MiB: a copy takes measurable time)."""
    directory.mkdir(parents=True)
    sums = {}
    for name, size in ((RELEASE.tarball, 1 << 20), *((archive, 4 << 20) for archive in RELEASE.image_archives)):
        (directory / name).write_bytes(os.urandom(size))
        sums[name] = hashlib.sha256((directory / name).read_bytes()).hexdigest()
    listed = {**sums, "rke2.linux-arm64.tar.gz": "0" * 64}  # the real file lists other assets too
    (directory / RELEASE.checksums).write_text("".join(f"{digest}  {name}\n" for name, digest in listed.items()))
    (directory / RELEASE.INSTALLER).write_text(STANDIN_INSTALLER)
    return sums


@pytest.fixture(scope="module")
def airgap(vm_lab: VmLab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[VmLab, Path, dict[str, str]]]:
    """The tier's stack with the two air-gap settings: RKE2's artifacts from a directory, and a mirror (the
    stand-in HTTP server) for every registry the lab pulls from."""
    directory = tmp_path_factory.mktemp("airgap") / "rke2"
    sums = standin_artifacts(directory)
    overrides = {
        "meshlab:rke2Artifacts": str(directory),
        "meshlab:registryMirrors": [f"*=http://{HOST_IP}:{STANDIN_HTTP_PORT}/registry"],
    }
    config = with_overrides(vm_lab.config, overrides)
    config = StackConfig(config.values, vm_lab.config.secret_keys)
    lab = VmLab(config, vm_lab.stack, vm_lab.netns, vm_lab.private_key, vm_lab.user)
    yield lab, directory, sums
    vm_lab.timings.extend(lab.timings)


def test_the_workstation_verifies_the_set_once_and_refuses_a_damaged_file(airgap):
    lab, directory, sums = airgap
    run = lab.local_step(FETCH).check()
    manifest = {name: digest for digest, name in (line.split("  ") for line in run.stdout.splitlines())}
    assert set(manifest) == set(RELEASE.node_files)
    assert all(manifest[name] == digest for name, digest in sums.items())
    progress(f"the workstation verified the stand-in artifact set in {run.seconds:.1f} s")

    archive = directory / RELEASE.image_archives[1]
    original = archive.read_bytes()
    archive.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    damaged = lab.local_step(FETCH)
    assert damaged.returncode != 0
    assert f"{archive} does not match RKE2 {versions.RKE2}'s checksum ({sums[archive.name]}" in damaged.stderr
    archive.write_bytes(original)
    lab.local_step(FETCH).check()


def test_the_preflight_needs_no_route_to_github_or_a_registry_in_air_gap_mode(airgap, vm_lab):
    lab, _directory, _sums = airgap
    node = lab_nodes(lab)[0]
    # The stack that downloads RKE2 on the nodes needs the internet, which this namespace has not.
    online = vm_lab.remote_step(f"cluster-{node}-preflight")
    assert online.returncode != 0 and "get.rke2.io" in online.stderr and "github.com" in online.stderr
    preflight = lab.registration("command:remote:Command", f"cluster-{node}-preflight").inputs["create"]
    endpoints = exported_value(preflight, "MESHLAB_ENDPOINTS")
    assert endpoints == f"http://{HOST_IP}:{STANDIN_HTTP_PORT}/registry"
    for node in lab_nodes(lab):
        lab.remote_step(f"cluster-{node}-preflight").check()


def copies_of_artifacts(lab: VmLab, node: str) -> list[str]:
    return [
        registration.name
        for registration in lab.rendering.of_type("command:remote:CopyToRemote")
        if registration.name.startswith(f"cluster-{node}-artifact-")
    ]


def test_a_damaged_copy_is_refused_on_the_node_before_anything_is_installed(airgap):
    lab, _directory, _sums = airgap
    node = lab_nodes(lab)[-1]
    copies = copies_of_artifacts(lab, node)
    assert len(copies) == len(RELEASE.node_files) + 1  # and the manifest
    for copy in copies:
        lab.copy_step(copy).check()
    install = lab.registration("command:remote:Command", f"cluster-{node}-install").inputs["create"]
    directory = exported_value(install, "MESHLAB_RKE2_ARTIFACTS")
    damaged = f"{directory}/{RELEASE.image_archives[0]}"
    lab.ssh_retrying(node, f"printf x >>{damaged}").check()
    refused = lab.remote_step(f"cluster-{node}-install")
    assert refused.returncode != 0
    assert f"{damaged} on {node} does not match the workstation's checksum" in refused.stderr
    assert lab.ssh_retrying(node, f"test ! -e {STANDIN_LOG} && test ! -e /usr/local/bin/rke2").returncode == 0
    # Copied again, it installs.
    lab.copy_step(f"cluster-{node}-artifact-{RELEASE.image_archives[0]}").check()
    lab.remote_step(f"cluster-{node}-install").check()


def test_every_node_installs_from_its_copies_once(airgap):
    lab, _directory, sums = airgap
    for node in lab_nodes(lab):
        for copy in copies_of_artifacts(lab, node):
            lab.copy_step(copy).check()
        install = lab.registration("command:remote:Command", f"cluster-{node}-install").inputs["create"]
        artifacts = exported_value(install, "MESHLAB_RKE2_ARTIFACTS")
        kind = exported_value(install, "MESHLAB_RKE2_TYPE")
        twice_remote(lab, f"cluster-{node}-install", node)
        recorded = lab.ssh_retrying(node, f"sudo cat {STANDIN_LOG}").check().stdout.splitlines()
        assert recorded == [
            f"INSTALL_RKE2_ARTIFACT_PATH={artifacts}",
            f"INSTALL_RKE2_VERSION={versions.RKE2}",
            f"INSTALL_RKE2_TYPE={kind}",
        ]
        placed = lab.ssh_retrying(node, "cd /var/lib/rancher/rke2/agent/images && sudo sha256sum *").check().stdout
        assert {line.split()[1]: line.split()[0] for line in placed.splitlines()} == {
            name: sums[name] for name in RELEASE.image_archives
        }
        assert (
            lab.ssh_retrying(node, "/usr/local/bin/rke2 --version")
            .check()
            .stdout.startswith(f"rke2 version {versions.RKE2}")
        )
    slowest = max((seconds for name, seconds in lab.timings if "-artifact-" in name), default=0.0)
    progress(f"artifact copies: the slowest took {slowest:.1f} s (9 MiB a node in all)")
    # The next module finds the guests as it expects: RKE2's stand-in removed again.
    for node in lab_nodes(lab):
        lab.remote_step(f"cluster-{node}-install", delete=True).check()
        lab.ssh_retrying(node, f"test ! -e /usr/local/bin/rke2 && test ! -e {STANDIN_LOG}").check()
