"""Run the pack offline: resolve a CrossGuard policy config file the way the Pulumi CLI reads it, then
run every resource policy on every resource and every stack policy over the whole set."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from meshlab_policy.catalog import CATALOG, Enforcement, PolicySpec
from meshlab_policy.kube import Resource, mapping
from meshlab_policy.pod_security import Level
from meshlab_policy.settings import (
    EXEMPT_NAMESPACES,
    ISTIO_ROOT_NAMESPACE,
    MTLS_MIGRATION_ALLOW_LIST,
    RELAX_USER_NAMESPACE_PODS,
    PolicyConfigError,
    PolicySettings,
    settings_from_config,
)

# Per-stack policy config files, passed to the CLI as --policy-pack-config.
CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"
ALL_POLICIES = "all"  # CrossGuard's key for the enforcement level of every policy
ENFORCEMENT_LEVEL = "enforcementLevel"
# The settings field each shared config key fills; policies that share a key must agree on it.
SETTING_OF_KEY = {
    EXEMPT_NAMESPACES: "exempt_namespaces",
    MTLS_MIGRATION_ALLOW_LIST: "mtls_migration",
    ISTIO_ROOT_NAMESPACE: "istio_root_namespace",
    RELAX_USER_NAMESPACE_PODS: "relax_user_namespace_pods",
}


@dataclass(frozen=True)
class ResolvedPolicy:
    spec: PolicySpec
    enforcement: Enforcement
    settings: PolicySettings


@dataclass(frozen=True)
class Violation:
    policy: str
    enforcement: Enforcement
    message: str
    urn: str | None

    @property
    def mandatory(self) -> bool:
        return self.enforcement is Enforcement.MANDATORY


def stack_config_path(stack: str) -> Path:
    return CONFIG_DIR / f"{stack}.json"


def load_pack_config(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise PolicyConfigError(f"cannot read policy config {path}: {error}") from error
    if not isinstance(document, dict):
        raise PolicyConfigError(f"policy config {path} must be a JSON object keyed by policy name")
    return document


def _enforcement(value: object, where: str) -> Enforcement:
    if value not in {level.value for level in Enforcement}:
        raise PolicyConfigError(f"{where}: enforcement level {value!r} is not one of {', '.join(Enforcement)}")
    return Enforcement(str(value))


def resolve(
    pack_config: Mapping[str, Any] | None = None, catalog: Sequence[PolicySpec] = CATALOG
) -> list[ResolvedPolicy]:
    """Each policy's enforcement level and settings from a pack config (None: the pack's defaults).

    Like the Pulumi CLI: a policy's entry is a level or an object of `enforcementLevel` plus the config
    properties its schema declares; `all` sets the level of every policy without its own."""
    config = mapping(pack_config)
    unknown = set(config) - {spec.name for spec in catalog} - {ALL_POLICIES}
    if unknown:
        raise PolicyConfigError(f"policy config names unknown policies: {', '.join(sorted(unknown))}")
    everything = config.get(ALL_POLICIES)
    if isinstance(everything, Mapping):
        everything = everything.get(ENFORCEMENT_LEVEL)
    default = _enforcement(everything, ALL_POLICIES) if everything is not None else None
    resolved = []
    for spec in catalog:
        entry = config.get(spec.name)
        enforcement = default or spec.enforcement
        properties: dict[str, Any] = {}
        if isinstance(entry, str):
            enforcement = _enforcement(entry, spec.name)
        elif isinstance(entry, Mapping):
            properties = {key: value for key, value in entry.items() if key != ENFORCEMENT_LEVEL}
            extra = set(properties) - set(spec.config_keys)
            if extra:
                takes = ", ".join(spec.config_keys) or "no properties"
                raise PolicyConfigError(f"{spec.name}: unknown config {', '.join(sorted(extra))} (it takes {takes})")
            if ENFORCEMENT_LEVEL in entry:
                enforcement = _enforcement(entry[ENFORCEMENT_LEVEL], spec.name)
        elif entry is not None:
            raise PolicyConfigError(f"{spec.name}: expected an enforcement level or an object, not {entry!r}")
        try:
            settings = settings_from_config(properties)
        except PolicyConfigError as error:
            raise PolicyConfigError(f"{spec.name}: {error}") from error
        resolved.append(ResolvedPolicy(spec, enforcement, settings))
    _require_agreement(resolved)
    return resolved


def _require_agreement(resolved: Sequence[ResolvedPolicy]) -> None:
    """Policies sharing a config key must get the same value, or they would judge one stack two ways
    (e.g. workloads checked at baseline in a namespace the label policy expects to be restricted)."""
    for key, field in SETTING_OF_KEY.items():
        holders = [policy for policy in resolved if key in policy.spec.config_keys]
        values = {repr(getattr(policy.settings, field)) for policy in holders}
        if len(values) > 1:
            names = ", ".join(policy.spec.name for policy in holders)
            raise PolicyConfigError(f"{key} must be the same for {names}")


def with_fixed_level(resolved: Sequence[ResolvedPolicy], level: Level) -> list[ResolvedPolicy]:
    """Check every namespace's workloads at `level`, whatever the exemption list says."""
    return [replace(policy, settings=replace(policy.settings, fixed_level=level)) for policy in resolved]


def run_policies(
    resources: Sequence[Resource], resolved: Sequence[ResolvedPolicy], *, stack_policies: bool = True
) -> list[Violation]:
    violations = []
    for policy in resolved:
        if policy.enforcement is Enforcement.DISABLED:
            continue
        # CrossGuard reports a remediation that still violates as mandatory; this pack remediates nothing.
        enforcement = Enforcement.MANDATORY if policy.enforcement is Enforcement.REMEDIATE else policy.enforcement
        validate_resource, validate_stack = policy.spec.validate_resource, policy.spec.validate_stack
        if validate_resource is not None:
            violations += [
                Violation(policy.spec.name, enforcement, message, resource.urn)
                for resource in resources
                for message in validate_resource(resource, policy.settings)
            ]
        if validate_stack is not None and stack_policies:
            violations += [
                Violation(policy.spec.name, enforcement, finding.message, finding.urn)
                for finding in validate_stack(resources, policy.settings)
            ]
    return violations
