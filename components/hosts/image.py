"""`meshlab:hosts:BaseImage`: the pinned Ubuntu cloud image, downloaded once and verified."""

from __future__ import annotations

import pulumi

from components.hosts.steps import step_command
from config import versions


def base_disk_name(image: versions.CloudImage) -> str:
    return f"ubuntu-{versions.UBUNTU_RELEASE}-{versions.UBUNTU_SERIAL}-{image.arch}-base.vdi"


class BaseImage(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        *,
        image: versions.CloudImage,
        cache_environment: dict[str, str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("meshlab:hosts:BaseImage", name, None, opts)
        self.image = image
        self.base_disk = base_disk_name(image)
        # No delete step: the cache outlives stacks (lab, staging and prod share one download).
        self.fetch = step_command(
            f"{name}-fetch",
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
