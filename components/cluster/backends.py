"""Where the stack's cluster comes from, behind the one `ClusterAccess` contract: RKE2 on the hosts layer's
machines (built by meshlab), or an existing cluster (meshlab:kubeconfig). Chosen once, here."""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
from pulumi.runtime import mocks
from pulumi.runtime import settings as runtime_settings

from components.cluster.access import ClusterAccess
from components.cluster.cluster_preflight import preflight
from components.cluster.existing_cluster import ExistingCluster
from components.cluster.rke2_cluster import Rke2Cluster
from components.hosts.backends import lab_hosts
from components.hosts.output import HostsOutput
from config.settings import Settings, cluster_name, config_key


class ClusterPreflightError(pulumi.RunError):
    """The existing cluster cannot take the platform: every reason, before anything is created."""


def _offline() -> bool:
    """A render under mocks (tools.plan, the offline tests) has no cluster to ask."""
    return isinstance(runtime_settings.get_monitor(), mocks.MockMonitor)


def cluster_layer(
    settings: Settings, stack: str, *, namespaces: Sequence[str], istio_namespace: str
) -> tuple[HostsOutput | None, ClusterAccess]:
    """The hosts (None on an existing cluster) and the access every layer above uses. On an existing cluster
    the preflight runs first (it needs to know the namespaces the platform will create)."""
    if not settings.cluster.existing:
        hosts = lab_hosts(settings, stack)
        return hosts, Rke2Cluster("cluster", hosts=hosts, settings=settings, stack=stack).access
    if not _offline():
        owner = cluster_name(stack)
        problems = preflight(settings.cluster.kubeconfig.get_secret_value(), namespaces, istio_namespace, owner)
        if problems:
            lines = "\n".join(f"  - {problem}" for problem in problems)
            raise ClusterPreflightError(
                f"the cluster {config_key('kubeconfig')} names cannot take meshlab's platform:\n{lines}"
            )
    return None, ExistingCluster("cluster", settings=settings, stack=stack).access
