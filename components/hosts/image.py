"""`meshlab:hosts:BaseImage`: the cloud image every node boots, fetched once and verified.

The pinned Ubuntu image by default; a local file with its SHA-256 when the stack names one
(meshlab:imageFile), read through the same step (curl reads file:// URLs).
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Literal

import pulumi

from components.hosts.scripts import SCRIPTS
from components.hosts.steps import step_command
from config import versions
from config.settings import IMAGE_FORMATS, Settings

# The disk format each hypervisor's VMs copy or back onto.
BaseFormat = Literal["vdi", "qcow2"]


def cloud_image(settings: Settings) -> versions.CloudImage:
    """The image the stack's nodes boot: meshlab:imageFile if set, else the pinned Ubuntu image."""
    pinned = versions.UBUNTU_IMAGES[settings.topology.guest_arch]
    hosts = settings.hosts
    if not hosts.image_file:
        return pinned
    path = PurePosixPath(hosts.image_file)
    return versions.CloudImage(
        arch=pinned.arch,
        url=f"file://{path}",
        sha256=hosts.image_sha256,
        # Unknown until the file is read; the preflight's disk estimate counts the VMs only.
        size_bytes=0,
        disk_format=IMAGE_FORMATS[path.suffix],
        vbox_os_type=pinned.vbox_os_type,
    )


def base_disk_name(image: versions.CloudImage, base_format: BaseFormat = "vdi") -> str:
    if image.url.startswith("file://"):
        # A local image is named by its checksum: another file, another base disk.
        return f"local-{image.sha256[:16]}-{image.arch}-base.{base_format}"
    return f"ubuntu-{versions.UBUNTU_RELEASE}-{versions.UBUNTU_SERIAL}-{image.arch}-base.{base_format}"


class BaseImage(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        *,
        image: versions.CloudImage,
        cache_environment: dict[str, str],
        base_format: BaseFormat = "vdi",
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("meshlab:hosts:BaseImage", name, None, opts)
        self.image = image
        self.base_disk = base_disk_name(image, base_format)
        # No delete step: the cache outlives stacks (lab, staging and prod share one download).
        self.fetch = step_command(
            f"{name}-fetch",
            scripts=SCRIPTS,
            create="image_fetch",
            environment={
                "MESHLAB_IMAGE_URL": image.url,
                "MESHLAB_IMAGE_SHA256": image.sha256,
                "MESHLAB_IMAGE_FORMAT": image.disk_format,
                "MESHLAB_BASE_DISK": self.base_disk,
                **cache_environment,
            },
            parent=self,
        )
        self.register_outputs({"baseDisk": self.fetch.stdout})
