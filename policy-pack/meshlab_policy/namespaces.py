"""Namespace Pod Security labels: every namespace says what it enforces, and looser levels say why."""

from __future__ import annotations

from meshlab_policy.kube import CORE_GROUP, Resource, text
from meshlab_policy.pod_security import Level
from meshlab_policy.settings import ENFORCE_LABEL, EXEMPT_NAMESPACES, REASON_ANNOTATION, PolicySettings


def validate_namespace_labels(resource: Resource, settings: PolicySettings) -> list[str]:
    if not resource.is_kind(CORE_GROUP, "Namespace"):
        return []
    name = resource.object_name
    exemption = settings.exempt_namespaces.get(name)
    expected = exemption.level if exemption else Level.RESTRICTED
    if resource.labels.get(ENFORCE_LABEL) is None:
        return [f'namespace "{name}" has no {ENFORCE_LABEL} label: set it to {expected}']
    enforce = text(resource.labels.get(ENFORCE_LABEL))
    if enforce not in {level.value for level in Level}:
        return [f'namespace "{name}" has {ENFORCE_LABEL}={enforce!r}, which is not a Pod Security level']
    violations = []
    level = Level(enforce)
    if exemption is None and level is not Level.RESTRICTED:
        violations.append(
            f'namespace "{name}" enforces {level} but is not in {EXEMPT_NAMESPACES}: '
            f"enforce restricted, or exempt it in the policy config with a reason"
        )
    elif exemption is not None and level is not exemption.level:
        # The pack checks this namespace's workloads at the exempt level; the cluster must agree.
        violations.append(
            f'namespace "{name}" enforces {level} but {EXEMPT_NAMESPACES} exempts it at {exemption.level}: '
            "make the label and the policy config agree"
        )
    if level is not Level.RESTRICTED and not text(resource.annotations.get(REASON_ANNOTATION)).strip():
        violations.append(
            f'namespace "{name}" enforces {level} without saying why: annotate it with {REASON_ANNOTATION}'
        )
    return violations
