"""The policies of the meshlab pack: name, description, remediation, default enforcement, config
keys and validator. CrossGuard (`policies`) and the offline runs (`engine`) both read this list, so
the two can never disagree on what a policy checks."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from meshlab_policy import hygiene, kiali, mesh, namespaces, remote, workloads
from meshlab_policy.kube import Resource, StackViolation
from meshlab_policy.settings import (
    ENFORCE_LABEL,
    EXEMPT_NAMESPACES,
    ISTIO_ROOT_NAMESPACE,
    MTLS_MIGRATION_ALLOW_LIST,
    REASON_ANNOTATION,
    RELAX_USER_NAMESPACE_PODS,
    PolicySettings,
)

PACK_NAME = "meshlab"


class Enforcement(StrEnum):
    """CrossGuard's enforcement levels (the values of pulumi_policy.EnforcementLevel)."""

    ADVISORY = "advisory"
    MANDATORY = "mandatory"
    REMEDIATE = "remediate"
    DISABLED = "disabled"


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


ResourceValidator = Callable[[Resource, PolicySettings], list[str]]
StackValidator = Callable[[Sequence[Resource], PolicySettings], list[StackViolation]]


@dataclass(frozen=True)
class PolicySpec:
    name: str
    description: str
    remediation: str
    enforcement: Enforcement
    severity: Severity
    config_keys: tuple[str, ...]
    validate_resource: ResourceValidator | None = None
    validate_stack: StackValidator | None = None


POD_SECURITY = PolicySpec(
    name="pod-security-restricted",
    description=(
        "Pods and the pod templates of Deployments, ReplicaSets, StatefulSets, DaemonSets, Jobs, CronJobs and "
        "ReplicationControllers meet the Kubernetes v1.32 restricted Pod Security Standard, or the level their "
        "namespace is exempted to."
    ),
    remediation=(
        "Run as non-root (runAsNonRoot: true, no runAsUser 0), set seccompProfile.type RuntimeDefault, set "
        "allowPrivilegeEscalation: false and drop ALL capabilities on every container, and use only configMap, csi, "
        "downwardAPI, emptyDir, ephemeral, persistentVolumeClaim, projected and secret volumes. If a component truly "
        f"needs more, exempt its namespace in {EXEMPT_NAMESPACES} with a level and a reason."
    ),
    enforcement=Enforcement.MANDATORY,
    severity=Severity.HIGH,
    config_keys=(EXEMPT_NAMESPACES, RELAX_USER_NAMESPACE_PODS),
    validate_resource=workloads.validate_pod_security,
)
NAMESPACE_LABELS = PolicySpec(
    name="namespace-pod-security-labels",
    description=(
        f"Every Namespace sets {ENFORCE_LABEL}: restricted, unless it is exempted, and then exactly its exempt "
        "level with the reason stated."
    ),
    remediation=(
        f"Label the namespace {ENFORCE_LABEL}=restricted. For a namespace in {EXEMPT_NAMESPACES}, use its exempt "
        f"level and annotate {REASON_ANNOTATION} with the reason."
    ),
    enforcement=Enforcement.MANDATORY,
    severity=Severity.HIGH,
    config_keys=(EXEMPT_NAMESPACES,),
    validate_resource=namespaces.validate_namespace_labels,
)
PEER_AUTHENTICATION_STRICT = PolicySpec(
    name="peer-authentication-strict",
    description="No PeerAuthentication accepts plaintext (PERMISSIVE or DISABLE, at top level or per port).",
    remediation=(
        f"Set mtls.mode STRICT and drop plaintext portLevelMtls entries. While a namespace migrates, list it in "
        f"{MTLS_MIGRATION_ALLOW_LIST} with a reason."
    ),
    enforcement=Enforcement.MANDATORY,
    severity=Severity.CRITICAL,
    config_keys=(MTLS_MIGRATION_ALLOW_LIST,),
    validate_resource=mesh.validate_peer_authentication_strict,
)
MESH_MTLS = PolicySpec(
    name="mesh-mtls-strict",
    description=(
        "When Istio is deployed, a mesh-wide STRICT PeerAuthentication exists in the root namespace, every ambient "
        "namespace is covered by STRICT mTLS, and no ambient namespace relies on the unsupported DISABLE mode."
    ),
    remediation=(
        f"Create one PeerAuthentication without a selector in {ISTIO_ROOT_NAMESPACE} with mtls.mode STRICT, and "
        "remove namespace-wide policies that weaken it. To turn mTLS off for a namespace, take it out of ambient."
    ),
    enforcement=Enforcement.MANDATORY,
    severity=Severity.CRITICAL,
    config_keys=(MTLS_MIGRATION_ALLOW_LIST, ISTIO_ROOT_NAMESPACE),
    validate_stack=mesh.validate_mesh_mtls,
)
AMBIENT_WAYPOINTS = PolicySpec(
    name="ambient-waypoint-attachment",
    description=(
        "AuthorizationPolicies with L7 rules bind to a waypoint or Service through targetRefs (ztunnel denies all "
        "traffic for L7 rules attached by selector), and every istio.io/use-waypoint label names an existing "
        "waypoint in an ambient namespace."
    ),
    remediation=(
        "Replace the selector with targetRefs to the waypoint Gateway (group gateway.networking.k8s.io, kind "
        "Gateway) or a Service; create the named waypoint Gateway (gatewayClassName istio-waypoint) in an ambient "
        "namespace."
    ),
    enforcement=Enforcement.MANDATORY,
    severity=Severity.HIGH,
    config_keys=(),
    validate_stack=mesh.validate_ambient_waypoints,
)
KIALI_VIEW_ONLY = PolicySpec(
    name="kiali-anonymous-view-only",
    description=(
        "A Kiali Helm release (kiali-server chart) that lets anyone in without a login (auth.strategy anonymous) "
        "runs in view-only mode, so neither the UI nor the ClusterRole the chart binds it to can change Istio "
        "configuration."
    ),
    remediation=(
        "Set deployment.view_only_mode: true in the release's values (the chart then binds the read-only "
        "kiali-viewer ClusterRole), or use a login strategy (token, openid) so each user acts with their own RBAC."
    ),
    enforcement=Enforcement.MANDATORY,
    severity=Severity.HIGH,
    config_keys=(),
    validate_resource=kiali.validate_kiali_view_only,
)
PEER_AUTHENTICATION_EFFECTIVE = PolicySpec(
    name="peer-authentication-effective",
    description=(
        "PeerAuthentications use security.istio.io/v1 and no setting Istio ignores (portLevelMtls without a "
        "selector, selector-based policies in the root namespace)."
    ),
    remediation=(
        "Use apiVersion security.istio.io/v1; put portLevelMtls only on a workload-selector policy outside the root "
        "namespace."
    ),
    enforcement=Enforcement.ADVISORY,
    severity=Severity.MEDIUM,
    config_keys=(ISTIO_ROOT_NAMESPACE,),
    validate_resource=mesh.validate_peer_authentication_effective,
)
IMAGES_PINNED = PolicySpec(
    name="images-pinned",
    description="Every container image is pinned to a version tag or a digest, never latest or untagged.",
    remediation="Reference images as registry/name:version or registry/name@sha256:digest.",
    enforcement=Enforcement.ADVISORY,
    severity=Severity.LOW,
    config_keys=(),
    validate_resource=hygiene.validate_images_pinned,
)
CHARTS_PINNED = PolicySpec(
    name="helm-charts-pinned",
    description="Every Helm release installs one exact chart version, not a range or the newest.",
    remediation="Set the release's version to an exact chart version (e.g. 1.27.0), pinned in config/versions.py.",
    enforcement=Enforcement.ADVISORY,
    severity=Severity.LOW,
    config_keys=(),
    validate_resource=hygiene.validate_chart_pinned,
)
SSH_HOST_KEYS_PINNED = PolicySpec(
    name="ssh-host-keys-pinned",
    description="Every SSH connection of a remote command pins the host key of the machine (and bastion) it talks to.",
    remediation="Give the connection hostKey (and proxy.hostKey): meshlab pins each VM's generated key and each "
    "existing host's key from meshlab:sshHostKeys or its first contact.",
    enforcement=Enforcement.MANDATORY,
    severity=Severity.HIGH,
    config_keys=(),
    validate_resource=remote.validate_ssh_host_key_pinned,
)

CATALOG: tuple[PolicySpec, ...] = (
    POD_SECURITY,
    NAMESPACE_LABELS,
    PEER_AUTHENTICATION_STRICT,
    MESH_MTLS,
    AMBIENT_WAYPOINTS,
    KIALI_VIEW_ONLY,
    PEER_AUTHENTICATION_EFFECTIVE,
    IMAGES_PINNED,
    CHARTS_PINNED,
    SSH_HOST_KEYS_PINNED,
)
