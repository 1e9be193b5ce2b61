"""Policy configuration: the CrossGuard config schema, its lab defaults, and its parsed form.

CrossGuard hands every policy its own config object (the properties its schema declares, with the
schema's defaults filled in by the Pulumi CLI). The same keys mean the same thing in every policy
that declares them:

- `exemptNamespaces`: namespaces allowed a looser Pod Security level than restricted, each with
  the level and the reason. Workloads there are checked at that level; the Namespace must enforce
  exactly that level and carry the reason annotation `REASON_ANNOTATION`.
- `mtlsMigrationAllowList`: namespaces allowed PERMISSIVE (or DISABLE) PeerAuthentication while
  they migrate to STRICT, each with the reason.
- `istioRootNamespace`: Istio's root namespace, where the mesh-wide PeerAuthentication lives.
- `relaxUserNamespacePods`: mirror the UserNamespacesPodSecurityStandards feature gate (off by
  default in Kubernetes 1.32) that relaxes runAsNonRoot, runAsUser and procMount for pods with
  `hostUsers: false`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from meshlab_policy.kube import mapping
from meshlab_policy.pod_security import Level

ENFORCE_LABEL = "pod-security.kubernetes.io/enforce"
# The annotation that states why a namespace enforces privileged or baseline instead of restricted.
REASON_ANNOTATION = "meshlab.dev/pod-security-reason"
DEFAULT_ISTIO_ROOT_NAMESPACE = "istio-system"

EXEMPT_NAMESPACES = "exemptNamespaces"
MTLS_MIGRATION_ALLOW_LIST = "mtlsMigrationAllowList"
ISTIO_ROOT_NAMESPACE = "istioRootNamespace"
RELAX_USER_NAMESPACE_PODS = "relaxUserNamespacePods"
EXEMPTABLE_LEVELS = (Level.PRIVILEGED, Level.BASELINE)


class PolicyConfigError(ValueError):
    """Policy configuration that does not fit the schema."""


@dataclass(frozen=True)
class NamespaceExemption:
    namespace: str
    level: Level
    reason: str


@dataclass(frozen=True)
class MigrationAllowance:
    namespace: str
    reason: str


# The lab's namespaces whose components cannot run restricted (lab-spec §5.1 and §6). A stack that
# turns on node-exporter (meshlab:nodeExporterEnabled) adds `monitoring` at privileged in its config.
DEFAULT_EXEMPT_NAMESPACES = (
    NamespaceExemption("kube-system", Level.PRIVILEGED, "RKE2 control plane, Cilium and kube-vip run here"),
    NamespaceExemption(
        "istio-system",
        Level.PRIVILEGED,
        "istio-cni and ztunnel run as root with NET_ADMIN, SYS_ADMIN and hostPath mounts",
    ),
    NamespaceExemption("metallb-system", Level.PRIVILEGED, "the MetalLB speaker uses hostNetwork and NET_RAW"),
    NamespaceExemption("nfs-provisioner", Level.BASELINE, "the NFS provisioner mounts an inline nfs volume"),
)


CONFIG_SCHEMA: dict[str, dict[str, Any]] = {
    EXEMPT_NAMESPACES: {
        "type": "array",
        "description": "Namespaces allowed a Pod Security level looser than restricted, with the reason.",
        "items": {
            "type": "object",
            "properties": {
                "namespace": {"type": "string", "minLength": 1},
                "level": {"type": "string", "enum": [level.value for level in EXEMPTABLE_LEVELS]},
                "reason": {"type": "string", "minLength": 1},
            },
            "required": ["namespace", "level", "reason"],
            "additionalProperties": False,
        },
        "default": [
            {"namespace": e.namespace, "level": e.level.value, "reason": e.reason} for e in DEFAULT_EXEMPT_NAMESPACES
        ],
    },
    MTLS_MIGRATION_ALLOW_LIST: {
        "type": "array",
        "description": "Namespaces allowed PERMISSIVE or DISABLE PeerAuthentication while migrating, with the reason.",
        "items": {
            "type": "object",
            "properties": {
                "namespace": {"type": "string", "minLength": 1},
                "reason": {"type": "string", "minLength": 1},
            },
            "required": ["namespace", "reason"],
            "additionalProperties": False,
        },
        "default": [],
    },
    ISTIO_ROOT_NAMESPACE: {
        "type": "string",
        "minLength": 1,
        "description": "Istio's root namespace, home of the mesh-wide PeerAuthentication.",
        "default": DEFAULT_ISTIO_ROOT_NAMESPACE,
    },
    RELAX_USER_NAMESPACE_PODS: {
        "type": "boolean",
        "description": "Relax runAsNonRoot, runAsUser and procMount for hostUsers: false pods, like the "
        "UserNamespacesPodSecurityStandards feature gate (off by default in Kubernetes 1.32).",
        "default": False,
    },
}


@dataclass(frozen=True)
class PolicySettings:
    """One policy's parsed configuration; keys it does not declare keep their defaults."""

    exempt_namespaces: Mapping[str, NamespaceExemption] = field(
        default_factory=lambda: {e.namespace: e for e in DEFAULT_EXEMPT_NAMESPACES}
    )
    mtls_migration: Mapping[str, MigrationAllowance] = field(default_factory=dict)
    istio_root_namespace: str = DEFAULT_ISTIO_ROOT_NAMESPACE
    relax_user_namespace_pods: bool = False
    # Offline only (tools.policy --level): check every namespace at this level.
    fixed_level: Level | None = None

    def level_for(self, namespace: str) -> Level:
        if self.fixed_level is not None:
            return self.fixed_level
        exemption = self.exempt_namespaces.get(namespace)
        return exemption.level if exemption else Level.RESTRICTED


def _entries(config: Mapping[str, Any], key: str, fields: tuple[str, ...]) -> list[dict[str, str]]:
    """The entries of a list-of-objects setting, each with exactly `fields` as non-empty strings."""
    value = config[key]
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise PolicyConfigError(f"{key} must be a list of objects with {', '.join(fields)}, not {value!r}")
    entries = []
    seen: set[str] = set()
    for index, raw in enumerate(value):
        entry = mapping(raw)
        values = {name: entry.get(name) for name in fields}
        if set(entry) != set(fields) or not all(isinstance(v, str) and v.strip() for v in values.values()):
            raise PolicyConfigError(f"{key}[{index}] needs exactly {', '.join(fields)} as non-empty strings: {raw!r}")
        namespace = str(values["namespace"])
        if namespace in seen:
            raise PolicyConfigError(f"{key} lists namespace {namespace!r} twice")
        seen.add(namespace)
        entries.append({name: str(v) for name, v in values.items()})
    return entries


def _exemptions(config: Mapping[str, Any]) -> dict[str, NamespaceExemption]:
    exemptions = {}
    for entry in _entries(config, EXEMPT_NAMESPACES, ("namespace", "level", "reason")):
        if entry["level"] not in {level.value for level in EXEMPTABLE_LEVELS}:
            raise PolicyConfigError(
                f"{EXEMPT_NAMESPACES}: namespace {entry['namespace']!r} has level {entry['level']!r}; "
                "an exemption is privileged or baseline"
            )
        exemptions[entry["namespace"]] = NamespaceExemption(entry["namespace"], Level(entry["level"]), entry["reason"])
    return exemptions


def settings_from_config(config: Mapping[str, Any] | None) -> PolicySettings:
    """Parse one policy's CrossGuard config; raise PolicyConfigError when it does not fit the schema."""
    config = mapping(config)
    unknown = set(config) - set(CONFIG_SCHEMA) - {"enforcementLevel"}
    if unknown:
        raise PolicyConfigError(f"unknown policy config keys: {', '.join(sorted(unknown))}")
    defaults = PolicySettings()
    root = config.get(ISTIO_ROOT_NAMESPACE, defaults.istio_root_namespace)
    if not isinstance(root, str) or not root:
        raise PolicyConfigError(f"{ISTIO_ROOT_NAMESPACE} must be a namespace name, not {root!r}")
    relax = config.get(RELAX_USER_NAMESPACE_PODS, defaults.relax_user_namespace_pods)
    if not isinstance(relax, bool):
        raise PolicyConfigError(f"{RELAX_USER_NAMESPACE_PODS} must be true or false, not {relax!r}")
    return PolicySettings(
        exempt_namespaces=_exemptions(config) if EXEMPT_NAMESPACES in config else defaults.exempt_namespaces,
        mtls_migration=(
            {
                entry["namespace"]: MigrationAllowance(entry["namespace"], entry["reason"])
                for entry in _entries(config, MTLS_MIGRATION_ALLOW_LIST, ("namespace", "reason"))
            }
            if MTLS_MIGRATION_ALLOW_LIST in config
            else defaults.mtls_migration
        ),
        istio_root_namespace=root,
        relax_user_namespace_pods=relax,
    )
