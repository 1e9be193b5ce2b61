"""`meshlab:security:Namespaces`: every namespace the lab creates, labelled for Pod Security first.

RKE2's CIS profile enforces `restricted` everywhere but kube-system. A namespace whose pods
need more (istio-cni and ztunnel, the MetalLB speaker, the NFS provisioner, node-exporter) is
labelled with the lowest level that works, before its chart goes in, and says why in an
annotation; every other namespace enforces `restricted`. The `default` ServiceAccount of each
namespace stops mounting its token (CIS 5.1.5).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pulumi

from components.cluster.access import ClusterAccess
from components.kube import kube_object, service_account_patch
from config import versions
from config.settings import Settings

Level = Literal["privileged", "baseline", "restricted"]
# Read by the policy pack's namespace-label policy (policy-pack/meshlab_policy/settings.py).
REASON_ANNOTATION = "meshlab.dev/pod-security-reason"
# Which stack's cluster a namespace belongs to (meshlab-<stack>): an existing cluster's preflight takes a
# namespace without it, or with another stack's, for somebody else's.
OWNER_LABEL = "meshlab.dev/owner"
PSA_PREFIX = "pod-security.kubernetes.io"
# Pin the profile to the cluster's minor version, so a Kubernetes upgrade cannot tighten or loosen it unseen.
PSA_VERSION = "v" + ".".join(versions.KUBERNETES.lstrip("v").split(".")[:2])

ISTIO_SYSTEM = "istio-system"
METALLB_SYSTEM = "metallb-system"
NFS_PROVISIONER = "nfs-provisioner"
MONITORING = "monitoring"
KYVERNO = "kyverno"


@dataclass(frozen=True)
class NamespaceSpec:
    name: str
    level: Level
    reason: str = ""
    labels: dict[str, str] = field(default_factory=dict)

    def document(self) -> dict[str, Any]:
        labels: dict[str, str] = {f"{PSA_PREFIX}/{mode}": self.level for mode in ("enforce", "audit", "warn")}
        labels |= {f"{PSA_PREFIX}/{mode}-version": PSA_VERSION for mode in ("enforce", "audit", "warn")}
        metadata: dict[str, Any] = {"name": self.name, "labels": {**labels, **self.labels}}
        if self.reason:
            metadata["annotations"] = {REASON_ANNOTATION: self.reason}
        return {"apiVersion": "v1", "kind": "Namespace", "metadata": metadata}


# The rollout phase from which each system namespace exists (see components/lab.py).
NAMESPACE_PHASES = {ISTIO_SYSTEM: 2, METALLB_SYSTEM: 3, NFS_PROVISIONER: 4, MONITORING: 4, KYVERNO: 4}


def namespace_specs(settings: Settings) -> list[NamespaceSpec]:
    """The system namespaces of the settings' rollout phase."""
    monitoring = (
        NamespaceSpec(
            MONITORING, "privileged", "node-exporter reads the host through hostNetwork, hostPID and hostPath"
        )
        if settings.platform.node_exporter_enabled
        else NamespaceSpec(MONITORING, "restricted")
    )
    specs = [
        NamespaceSpec(
            ISTIO_SYSTEM,
            "privileged",
            "istio-cni and ztunnel run as root with NET_ADMIN, SYS_ADMIN and hostPath mounts to redirect pod traffic",
        ),
        NamespaceSpec(METALLB_SYSTEM, "privileged", "the MetalLB speaker answers ARP with hostNetwork and NET_RAW"),
        NamespaceSpec(NFS_PROVISIONER, "baseline", "the provisioner mounts the NFS export as an inline nfs volume"),
        monitoring,
        NamespaceSpec(KYVERNO, "restricted"),
    ]
    # An existing cluster without meshlab:nfsServer has no NFS storage, so no provisioner namespace.
    storage = not settings.cluster.existing or bool(settings.cluster.nfs_server)
    return [
        spec
        for spec in specs
        if NAMESPACE_PHASES[spec.name] <= settings.apps.rollout_phase and (storage or spec.name != NFS_PROVISIONER)
    ]


class Namespaces(pulumi.ComponentResource):
    def __init__(
        self, name: str, *, access: ClusterAccess, settings: Settings, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        specs = namespace_specs(settings)
        super().__init__(
            "meshlab:security:Namespaces", name, {"namespaces": {spec.name: spec.level for spec in specs}}, opts
        )
        self.namespaces: dict[str, pulumi.Resource] = {
            spec.name: labelled_namespace(f"{name}-{spec.name}", spec, access, self) for spec in specs
        }
        self.register_outputs({"namespaces": list(self.namespaces)})

    def __getitem__(self, name: str) -> pulumi.Resource:
        return self.namespaces[name]


def labelled_namespace(
    name: str,
    spec: NamespaceSpec,
    access: ClusterAccess,
    parent: pulumi.Resource,
    depends_on: Sequence[pulumi.Resource] = (),
) -> pulumi.Resource:
    """The namespace, labelled as this stack's, and its default ServiceAccount told not to mount a token
    (CIS 5.1.5)."""
    document = spec.document()
    document["metadata"]["labels"][OWNER_LABEL] = access.name
    namespace = kube_object(name, document, access.options(parent, depends_on))
    service_account_patch(
        f"{name}-default-sa",
        metadata={
            "name": "default",
            "namespace": spec.name,
            # The service-account controller owns this object; take over just this field.
            "annotations": {"pulumi.com/patchForce": "true"},
        },
        automount_service_account_token=False,
        opts=access.options(parent, [namespace]),
    )
    return namespace
