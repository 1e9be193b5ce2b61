"""Which container images, and so which registries, a lab pulls from.

The charts' images are not written here by hand: `python -m tools.images --write-lock` renders every
pinned chart with meshlab's values (`helm template`) and records what they run in `config/images.lock`;
the real-apply tier checks that file against the pods the real charts create. The images meshlab pins
itself are in config/versions.py. Registry mirrors (registries.yaml), the embedded mirror and the node
preflight all read the registry list from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from config import versions

LOCK_FILE = Path(__file__).with_name("images.lock")
# An image reference without a registry is Docker Hub's (the first path part is a registry only when it
# has a dot or a colon, or is "localhost").
DOCKER_HUB = "docker.io"
# Where containerd reaches Docker Hub (its default endpoint for docker.io).
DOCKER_HUB_ENDPOINT = "registry-1.docker.io"


@dataclass(frozen=True)
class LockedImage:
    """One image a pinned chart runs: the release (a key of versions.CHARTS), the chart version it was
    rendered from, and the full image reference."""

    release: str
    chart_version: str
    image: str


class LockError(ValueError):
    """config/images.lock is malformed."""


def registry_of(image: str) -> str:
    """The registry host of an image reference: docker.io for Docker Hub's short forms."""
    first, slash, _rest = image.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return "docker.io" if first in ("index.docker.io", DOCKER_HUB_ENDPOINT) else first
    return DOCKER_HUB


def registry_endpoint(registry: str) -> str:
    """The URL containerd pulls `registry`'s images from when no mirror is configured."""
    host = DOCKER_HUB_ENDPOINT if registry == DOCKER_HUB else registry
    return f"https://{host}/v2/"


def parse_lock(text: str) -> list[LockedImage]:
    images = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 3:
            raise LockError(f"{LOCK_FILE.name} line {number}: expected 'RELEASE CHART-VERSION IMAGE', got {line!r}")
        images.append(LockedImage(*parts))
    return images


@cache
def locked_images() -> tuple[LockedImage, ...]:
    """What config/images.lock records (read once)."""
    return tuple(parse_lock(LOCK_FILE.read_text()))


def pinned_images() -> tuple[str, ...]:
    """The images meshlab pins itself (config/versions.py): kube-vip, the test app, the clients, and the
    proxy istiod starts for every Gateway (ingress and waypoints)."""
    return (
        versions.KUBE_VIP_IMAGE,
        versions.TEST_APP_IMAGE,
        versions.CURL_IMAGE,
        versions.FORTIO_IMAGE,
        versions.istio_proxy_image(versions.ISTIO),
    )


def lab_registries() -> tuple[str, ...]:
    """Every registry a built lab pulls from, sorted: RKE2's system images, the charts' (the lock) and
    meshlab's own."""
    images = [*pinned_images(), *(locked.image for locked in locked_images())]
    return tuple(sorted({versions.RKE2_IMAGE_REGISTRY, *(registry_of(image) for image in images)}))
