"""Hygiene: container images and Helm charts pinned to exact versions."""

from __future__ import annotations

import re

from meshlab_policy.kube import Resource, items, mapping, text
from meshlab_policy.pod_security import CONTAINER_LISTS
from meshlab_policy.settings import PolicySettings
from meshlab_policy.workloads import pod_template


def image_problem(image: str) -> str | None:
    """Why an image reference is not pinned, or None when a tag (not latest) or a digest pins it."""
    if not image:
        return "has no image"
    name, at, digest = image.partition("@")
    if at:
        return None if digest else "has an empty digest"
    last_segment = name.rsplit("/", 1)[-1]
    _, colon, tag = last_segment.rpartition(":")
    if not colon:
        return "has no tag, so it floats on latest"
    if tag == "latest":
        return "uses the floating latest tag"
    return None if tag else "has an empty tag"


def validate_images_pinned(resource: Resource, _settings: PolicySettings) -> list[str]:
    template = pod_template(resource)
    if template is None:
        return []
    violations = []
    for field, role in zip(CONTAINER_LISTS, ("init container", "container", "ephemeral container"), strict=True):
        for container in map(mapping, items(template.spec.get(field))):
            image = text(container.get("image"))
            problem = image_problem(image)
            if problem:
                violations.append(
                    f'{role} "{text(container.get("name"))}" image "{image}" {problem}: pin a version tag or digest'
                )
    return violations


# A chart version pins a release when it is one exact semantic version; anything else is a range
# (Helm reads "1.2" as 1.2.x, "^1", "~1.2", ">=1", "1.x" and "*" as constraints).
EXACT_CHART_VERSION = re.compile(r"^v?\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")
# helm.sh/v3 Chart is a component without inputs to check; its v4 successor and Release carry `version`.
VERSIONED_CHART_TYPES = {"kubernetes:helm.sh/v3:Release", "kubernetes:helm.sh/v4:Chart"}


def validate_chart_pinned(resource: Resource, _settings: PolicySettings) -> list[str]:
    if resource.type not in VERSIONED_CHART_TYPES:
        return []
    chart = text(resource.props.get("chart"))
    if chart.startswith(("./", "../", "/")):
        return []  # a chart from a local path is pinned by the repository that holds it
    version = text(resource.props.get("version"))
    if not version:
        return [f'chart "{chart}" has no version, so it installs whatever is newest: pin an exact version']
    if not EXACT_CHART_VERSION.match(version):
        return [f'chart "{chart}" version "{version}" is a range, not one exact version: pin it, e.g. 1.2.3']
    return []
