"""`meshlab:cluster:Rke2Artifacts`: the pinned RKE2 release's files, on the workstation, verified once.

With meshlab:rke2Artifacts set, no node downloads RKE2: the workstation downloads the release's
tarball, checksum file, core and Cilium image archives and the tag's install.sh once into a
per-version cache outside the repository (`download`), or takes them from a directory of the user's
(an absolute path: air gap), checks them against the release's sha256sum file, and every node gets
copies that it checks again before installing from them (components/cluster/node.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pulumi
from pulumi_command import local

from components.cluster.scripts import SCRIPTS
from config import versions
from config.settings import Settings
from config.validation import RKE2_ARTIFACTS_DOWNLOAD

MANIFEST = "meshlab-artifacts.sha256"


def cache_root(settings: Settings) -> Path:
    """meshlab's cache on the workstation, where the VM images live too: meshlab:imageCacheDir, else
    $MESHLAB_CACHE_DIR (as the hosts' scripts read it), else ~/.cache/meshlab."""
    configured = settings.access.image_cache_dir or os.environ.get("MESHLAB_CACHE_DIR", "")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "meshlab"


def release_cache(settings: Settings, root: Path | None = None) -> Path:
    """The per-release cache of RKE2's artifacts on the workstation (under `root`, meshlab's cache unless
    given): one directory per version and guest arch."""
    release = f"{settings.cluster.rke2_version}-{settings.topology.guest_arch}"
    return (root or cache_root(settings)) / "rke2" / release


@dataclass(frozen=True)
class ArtifactPlan:
    """Where a stack's RKE2 artifacts are read from, and where their manifest is written."""

    release: versions.Rke2Artifacts
    directory: Path
    manifest: Path
    download: bool

    @staticmethod
    def of(settings: Settings) -> ArtifactPlan | None:
        mode = settings.sources.rke2_artifacts
        if not mode:
            return None
        release = versions.Rke2Artifacts(settings.cluster.rke2_version, settings.topology.guest_arch)
        cached = release_cache(settings)
        download = mode == RKE2_ARTIFACTS_DOWNLOAD
        # A user's directory may be read-only: the manifest always goes to the cache.
        return ArtifactPlan(release, cached if download else Path(mode), cached / MANIFEST, download)

    @property
    def node_files(self) -> tuple[Path, ...]:
        """Local paths of what every node receives: the release's files and the manifest."""
        return (*(self.directory / name for name in self.release.node_files), self.manifest)


class Rke2Artifacts(pulumi.ComponentResource):
    def __init__(self, name: str, *, plan: ArtifactPlan, opts: pulumi.ResourceOptions | None = None) -> None:
        release = plan.release
        super().__init__(
            "meshlab:cluster:Rke2Artifacts",
            name,
            {"version": release.version, "arch": release.arch, "directory": str(plan.directory)},
            opts,
        )
        self.plan = plan
        release_files = (release.tarball, *release.image_archives)
        environment = {
            "MESHLAB_RKE2_VERSION": release.version,
            "MESHLAB_ARTIFACT_DIR": str(plan.directory),
            "MESHLAB_ARTIFACT_MANIFEST": str(plan.manifest),
            "MESHLAB_ARTIFACT_CHECKSUMS": release.checksums,
            "MESHLAB_ARTIFACT_RELEASE_FILES": " ".join(release_files),
            "MESHLAB_ARTIFACT_INSTALLER": release.INSTALLER,
        }
        if plan.download:
            environment |= {
                "MESHLAB_ARTIFACT_BASE_URL": release.url("").rstrip("/"),
                "MESHLAB_ARTIFACT_INSTALLER_URL": release.installer_url,
            }
        # No delete step: the cache outlives stacks, and a user's directory is theirs.
        self.fetch = local.Command(
            f"{name}-fetch",
            create=SCRIPTS.render("rke2_artifacts_fetch"),
            environment=environment,
            interpreter=["bash", "-c"],
            opts=pulumi.ResourceOptions(parent=self),
        )
        # What the nodes check their copies against; known once the fetch has run.
        self.manifest: pulumi.Output[str] = self.fetch.stdout
        self.register_outputs({"directory": str(plan.directory), "manifest": self.manifest})
