"""Helm releases, always from a chart pinned in config/versions.py, from its upstream repository or a mirror."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi

from components.kube import helm_release
from components.sources import Sources
from config import versions

# Generous: a lab on a laptop pulls every image for the first time.
RELEASE_TIMEOUT_SECONDS = 900


def release(
    resource_name: str,
    *,
    name: str,
    chart: str,
    namespace: str,
    values: Mapping[str, Any] | pulumi.Output[Mapping[str, Any]],
    sources: Sources,
    opts: pulumi.ResourceOptions,
    version: str | None = None,
) -> pulumi.CustomResource:
    """`helm upgrade --install` of the pinned chart `chart` (a key of versions.CHARTS) as release `name`
    in `namespace`, registered as `resource_name`. `version` overrides the pin where a setting
    chooses it (Istio's charts follow meshlab:istioVersion). `sources` says which repository serves it:
    the chart's upstream one, or the site's mirror (meshlab:chartRepository).

    Pulumi waits until the release's workloads are ready, so whatever depends on it (a pool after
    MetalLB's webhook, istio-cni after istiod) starts against a working service."""
    pinned = versions.CHARTS[chart]
    return helm_release(
        resource_name,
        release_name=name,
        chart=pinned.name,
        version=version or pinned.version,
        repository=sources.repository(chart),
        namespace=namespace,
        values=values,
        timeout=RELEASE_TIMEOUT_SECONDS,
        opts=opts,
    )
