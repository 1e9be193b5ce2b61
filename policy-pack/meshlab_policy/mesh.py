"""Istio ambient rules: STRICT mTLS everywhere, and L7 policy only where a waypoint can enforce it.

Facts behind the rules (lab-spec §5.2, §5.3):
- ambient ignores PeerAuthentication mode DISABLE; leaving ambient is the way to turn mTLS off;
- portLevelMtls only works on a workload-selector policy outside the root namespace, and
  selector-based policies in the root namespace are ignored;
- ztunnel enforces every AuthorizationPolicy not bound to a waypoint through targetRefs. It cannot
  see L7 attributes, so such a policy with L7 rules denies all traffic to its workloads;
- a namespace (or Service) labelled `istio.io/use-waypoint: NAME` needs a Gateway NAME of class
  istio-waypoint, and a waypoint's own namespace must be enrolled in ambient.

The stack policies see outputs, which a preview may not know yet (`Resource.knows`): a finding needs
known facts, and a resource that is not known yet neither breaks a rule nor satisfies one. Plaintext
modes are refused on a first preview all the same, by `peer-authentication-strict` on the inputs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from meshlab_policy.kube import CORE_GROUP, Resource, StackViolation, helm_chart_name, items, mapping, text
from meshlab_policy.settings import ISTIO_ROOT_NAMESPACE, MTLS_MIGRATION_ALLOW_LIST, PolicySettings

ISTIO_SECURITY_GROUP = "security.istio.io"
GATEWAY_API_GROUP = "gateway.networking.k8s.io"
STRICT = "STRICT"
PERMISSIVE = "PERMISSIVE"
DISABLE = "DISABLE"
UNSET = "UNSET"
PLAINTEXT_MODES = frozenset({PERMISSIVE, DISABLE})
AMBIENT_LABEL = "istio.io/dataplane-mode"
AMBIENT = "ambient"
USE_WAYPOINT_LABEL = "istio.io/use-waypoint"
USE_WAYPOINT_NAMESPACE_LABEL = "istio.io/use-waypoint-namespace"
NO_WAYPOINT = "none"
WAYPOINT_CLASS = "istio-waypoint"
L7_OPERATION_FIELDS = ("methods", "notMethods", "paths", "notPaths", "hosts", "notHosts")
L7_SOURCE_FIELDS = ("requestPrincipals", "notRequestPrincipals")
L7_CONDITION_PREFIX = "request."
# What an L7 policy may bind to (Istio accepts ServiceEntry for egress waypoints too).
L7_TARGETS = frozenset({(GATEWAY_API_GROUP, "Gateway"), ("", "Service"), ("networking.istio.io", "ServiceEntry")})
# The fields each check reads from an object's outputs.
IDENTITY = ("metadata.name", "metadata.namespace")
LABELLED = (*IDENTITY, "metadata.labels")
SPECIFIED = (*IDENTITY, "spec")


@dataclass(frozen=True)
class PeerAuthentication:
    resource: Resource
    namespace: str
    name: str
    has_selector: bool
    mode: str
    port_modes: Mapping[str, str]

    @property
    def label(self) -> str:
        return f'PeerAuthentication "{self.namespace}/{self.name}"'

    def effective_mode(self) -> str | None:
        """The mode this policy sets for its scope, or None when it inherits (unset or UNSET)."""
        return self.mode if self.mode and self.mode != UNSET else None


def peer_authentication(resource: Resource) -> PeerAuthentication | None:
    kube = resource.kube
    if kube is None or (kube.group, kube.kind) != (ISTIO_SECURITY_GROUP, "PeerAuthentication"):
        return None
    spec = resource.spec
    return PeerAuthentication(
        resource=resource,
        namespace=resource.namespace,
        name=resource.object_name,
        has_selector=bool(mapping(mapping(spec.get("selector")).get("matchLabels"))),
        mode=text(mapping(spec.get("mtls")).get("mode")).upper(),
        port_modes={
            str(port): text(mapping(setting).get("mode")).upper()
            for port, setting in mapping(spec.get("portLevelMtls")).items()
        },
    )


def validate_peer_authentication_strict(resource: Resource, settings: PolicySettings) -> list[str]:
    policy = peer_authentication(resource)
    if policy is None or policy.namespace in settings.mtls_migration:
        return []
    remedy = (
        f'use STRICT, or list namespace "{policy.namespace}" in {MTLS_MIGRATION_ALLOW_LIST} with a reason '
        "while it migrates"
    )
    violations = []
    if policy.mode in PLAINTEXT_MODES:
        violations.append(f"{policy.label} sets mtls.mode {policy.mode}, which accepts plaintext: {remedy}")
    plaintext_ports = [f"{port}={mode}" for port, mode in sorted(policy.port_modes.items()) if mode in PLAINTEXT_MODES]
    if plaintext_ports:
        violations.append(f"{policy.label} accepts plaintext on ports {', '.join(plaintext_ports)}: {remedy}")
    return violations


def validate_peer_authentication_effective(resource: Resource, settings: PolicySettings) -> list[str]:
    """PeerAuthentication settings Istio silently ignores."""
    policy = peer_authentication(resource)
    if policy is None:
        return []
    violations = []
    kube = resource.kube
    if kube is not None and kube.version != "v1":
        violations.append(f"{policy.label} uses {ISTIO_SECURITY_GROUP}/{kube.version}: use {ISTIO_SECURITY_GROUP}/v1")
    if policy.port_modes and not policy.has_selector:
        violations.append(
            f"{policy.label} sets portLevelMtls without a workload selector: Istio ignores port-level "
            "settings on namespace- and mesh-wide policies"
        )
    if policy.has_selector and policy.namespace == settings.istio_root_namespace:
        violations.append(
            f"{policy.label} has a workload selector in the root namespace ({ISTIO_ROOT_NAMESPACE} "
            f'"{settings.istio_root_namespace}"), where Istio ignores selector-based policies'
        )
    return violations


def _is_istiod_release(resource: Resource) -> bool:
    """A Helm release of the istiod chart ("istiod", "istio/istiod" or an OCI reference)."""
    return helm_chart_name(resource) == "istiod"


def istio_deployed(resources: Sequence[Resource]) -> bool:
    """An istiod Helm release, or any Istio security resource (its type alone says so), means the stack
    runs Istio."""
    return any(
        _is_istiod_release(resource) or (resource.kube is not None and resource.kube.group == ISTIO_SECURITY_GROUP)
        for resource in resources
    )


@dataclass(frozen=True)
class Known:
    """The resources of one kind whose fields a check reads are known, and whether that is all of them."""

    resources: list[Resource]
    complete: bool


def known(resources: Sequence[Resource], group: str, kind: str, fields: Sequence[str]) -> Known:
    of_kind = [r for r in resources if r.is_kind(group, kind)]
    found = [r for r in of_kind if r.knows(*fields)]
    return Known(found, len(found) == len(of_kind))


@dataclass(frozen=True)
class Namespaces:
    """The stack's Namespaces whose name and labels are known, by name; `complete` when no other exists."""

    by_name: Mapping[str, Resource]
    complete: bool

    def declared(self, name: str) -> Resource | None:
        return self.by_name.get(name)


def namespaces(resources: Sequence[Resource]) -> Namespaces:
    found = known(resources, CORE_GROUP, "Namespace", LABELLED)
    return Namespaces({r.object_name: r for r in found.resources}, found.complete)


def is_ambient(namespace: Resource) -> bool:
    return text(namespace.labels.get(AMBIENT_LABEL)) == AMBIENT


def validate_mesh_mtls(resources: Sequence[Resource], settings: PolicySettings) -> list[StackViolation]:
    if not istio_deployed(resources):
        return []
    root = settings.istio_root_namespace
    found = known(resources, ISTIO_SECURITY_GROUP, "PeerAuthentication", SPECIFIED)
    policies = [p for p in map(peer_authentication, found.resources) if p is not None]
    mesh_wide = [p for p in policies if p.namespace == root and not p.has_selector]
    violations = []
    if not mesh_wide:
        if found.complete:  # else the one not known yet may be it
            violations.append(
                StackViolation(
                    f'Istio is deployed but there is no mesh-wide PeerAuthentication (no selector) in "{root}": '
                    "add one with mtls.mode STRICT"
                )
            )
    elif len(mesh_wide) > 1:
        violations += [
            StackViolation(
                f'{p.label} is one of {len(mesh_wide)} mesh-wide PeerAuthentications in "{root}": '
                "Istio honours only the oldest, keep exactly one",
                p.resource.urn,
            )
            for p in mesh_wide
        ]
    elif mesh_wide[0].effective_mode() != STRICT:
        violations.append(
            StackViolation(
                f"{mesh_wide[0].label} is mesh-wide with mtls.mode {mesh_wide[0].mode or 'unset'}: set it to STRICT",
                mesh_wide[0].resource.urn,
            )
        )
    mesh_mode = mesh_wide[0].effective_mode() if len(mesh_wide) == 1 else None
    ambient = {name: ns for name, ns in namespaces(resources).by_name.items() if is_ambient(ns)}
    for name, namespace in sorted(ambient.items()):
        # A PeerAuthentication not known yet may be the one that covers (or uncovers) the namespace.
        if name in settings.mtls_migration or not found.complete:
            continue
        namespace_wide = [p for p in policies if p.namespace == name and not p.has_selector and p.effective_mode()]
        mode = namespace_wide[0].effective_mode() if namespace_wide else mesh_mode
        if mode != STRICT:
            origin = "its namespace-wide PeerAuthentication" if namespace_wide else "the mesh-wide PeerAuthentication"
            violations.append(
                StackViolation(
                    f'ambient namespace "{name}" is not covered by STRICT mTLS '
                    f"({origin} gives {mode or 'no mode, which means PERMISSIVE'}): "
                    f"make it STRICT, or list the namespace in {MTLS_MIGRATION_ALLOW_LIST} while it migrates",
                    namespace.urn,
                )
            )
    violations += [
        StackViolation(
            f'{p.label} sets DISABLE in ambient namespace "{p.namespace}": ambient does not support DISABLE '
            f"and ignores the policy; to turn mTLS off, take the namespace out of ambient ({AMBIENT_LABEL})",
            p.resource.urn,
        )
        for p in policies
        if p.mode == DISABLE and p.namespace in ambient
    ]
    return violations


def l7_fields(spec: Mapping[str, Any]) -> list[str]:
    """The L7 attributes an AuthorizationPolicy's rules match on."""
    found: set[str] = set()
    for rule in map(mapping, items(spec.get("rules"))):
        for target in map(mapping, items(rule.get("to"))):
            operation = mapping(target.get("operation"))
            found.update(field for field in L7_OPERATION_FIELDS if items(operation.get(field)))
        for origin in map(mapping, items(rule.get("from"))):
            source = mapping(origin.get("source"))
            found.update(field for field in L7_SOURCE_FIELDS if items(source.get(field)))
        for condition in map(mapping, items(rule.get("when"))):
            key = text(condition.get("key"))
            if key.startswith(L7_CONDITION_PREFIX):
                found.add(f"when {key}")
    return sorted(found)


def _target_refs(spec: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    refs = [mapping(ref) for ref in items(spec.get("targetRefs"))]
    single = spec.get("targetRef")  # the deprecated single form
    return refs + ([mapping(single)] if single is not None else [])


def _uses_sidecars(namespace: Resource | None) -> bool:
    if namespace is None:
        return False
    return text(namespace.labels.get("istio-injection")) == "enabled" or bool(namespace.labels.get("istio.io/rev"))


def _authorization_violations(resources: Sequence[Resource], declared: Namespaces) -> list[StackViolation]:
    violations = []
    for resource in known(resources, ISTIO_SECURITY_GROUP, "AuthorizationPolicy", SPECIFIED).resources:
        l7 = l7_fields(resource.spec)
        home = declared.declared(resource.namespace)
        if not l7 or _uses_sidecars(home) or (home is None and not declared.complete):
            continue
        label = f'AuthorizationPolicy "{resource.namespace}/{resource.object_name}"'
        refs = _target_refs(resource.spec)
        if not refs:
            attachment = "a selector" if mapping(resource.spec.get("selector")) else "no targetRefs (namespace-wide)"
            violations.append(
                StackViolation(
                    f"{label} matches L7 attributes ({', '.join(l7)}) but attaches through {attachment}, so ztunnel "
                    "enforces it and denies all traffic: bind it to the waypoint with targetRefs "
                    f"(group {GATEWAY_API_GROUP}, kind Gateway) or to a Service",
                    resource.urn,
                )
            )
            continue
        wrong = [
            f"{text(ref.get('kind'))}/{text(ref.get('name'))}"
            for ref in refs
            if (text(ref.get("group")), text(ref.get("kind"))) not in L7_TARGETS
        ]
        if wrong:
            violations.append(
                StackViolation(
                    f"{label} targets {', '.join(wrong)}: L7 policy binds to a waypoint Gateway "
                    f"({GATEWAY_API_GROUP}) or a Service",
                    resource.urn,
                )
            )
    return violations


def _waypoint_violations(resources: Sequence[Resource], declared: Namespaces) -> list[StackViolation]:
    found = known(resources, GATEWAY_API_GROUP, "Gateway", SPECIFIED)
    gateways = {(r.namespace, r.object_name): r for r in found.resources}
    violations = []
    users = [*declared.by_name.values(), *known(resources, CORE_GROUP, "Service", LABELLED).resources]
    for user in users:
        waypoint = text(user.labels.get(USE_WAYPOINT_LABEL))
        if not waypoint or waypoint == NO_WAYPOINT:
            continue
        is_namespace = user.is_kind(CORE_GROUP, "Namespace")
        home = user.object_name if is_namespace else user.namespace
        waypoint_namespace = text(user.labels.get(USE_WAYPOINT_NAMESPACE_LABEL)) or home
        label = f'namespace "{home}"' if is_namespace else f'Service "{home}/{user.object_name}"'
        gateway = gateways.get((waypoint_namespace, waypoint))
        if gateway is None and not found.complete:
            continue  # it may be the Gateway not known yet
        if gateway is None:
            violations.append(
                StackViolation(
                    f'{label} uses waypoint "{waypoint}" but the stack has no Gateway "{waypoint}" in namespace '
                    f'"{waypoint_namespace}": create it (gatewayClassName {WAYPOINT_CLASS})',
                    user.urn,
                )
            )
        elif text(gateway.spec.get("gatewayClassName")) != WAYPOINT_CLASS:
            violations.append(
                StackViolation(
                    f'{label} uses waypoint "{waypoint}", but Gateway "{waypoint_namespace}/{waypoint}" has '
                    f"gatewayClassName {text(gateway.spec.get('gatewayClassName'))!r}, not {WAYPOINT_CLASS}",
                    user.urn,
                )
            )
    for (namespace, name), gateway in sorted(gateways.items()):
        enclosing = declared.declared(namespace)
        is_waypoint = text(gateway.spec.get("gatewayClassName")) == WAYPOINT_CLASS
        if is_waypoint and enclosing is not None and not is_ambient(enclosing):
            violations.append(
                StackViolation(
                    f'waypoint Gateway "{namespace}/{name}" lives in namespace "{namespace}", which is not '
                    f"enrolled in ambient: label it {AMBIENT_LABEL}={AMBIENT}",
                    gateway.urn,
                )
            )
    return violations


def validate_ambient_waypoints(resources: Sequence[Resource], _settings: PolicySettings) -> list[StackViolation]:
    declared = namespaces(resources)
    return _authorization_violations(resources, declared) + _waypoint_violations(resources, declared)
