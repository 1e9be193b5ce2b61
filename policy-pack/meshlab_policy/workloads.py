"""Pod Security on every pod a resource creates: Pods and the pod templates of their controllers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from meshlab_policy.kube import CORE_GROUP, Resource, mapping
from meshlab_policy.pod_security import evaluate_pod
from meshlab_policy.settings import PolicySettings

# Where each pod-creating kind keeps its pod template (the kinds Pod Security Admission warns on).
TEMPLATE_PATHS: dict[tuple[str, str], tuple[str, ...]] = {
    (CORE_GROUP, "Pod"): (),
    (CORE_GROUP, "ReplicationController"): ("spec", "template"),
    ("apps", "Deployment"): ("spec", "template"),
    ("apps", "ReplicaSet"): ("spec", "template"),
    ("apps", "StatefulSet"): ("spec", "template"),
    ("apps", "DaemonSet"): ("spec", "template"),
    ("batch", "Job"): ("spec", "template"),
    ("batch", "CronJob"): ("spec", "jobTemplate", "spec", "template"),
}


@dataclass(frozen=True)
class PodTemplate:
    path: str
    metadata: Mapping[str, Any]
    spec: Mapping[str, Any]


def pod_template(resource: Resource) -> PodTemplate | None:
    """The pod a Pod is, or the template a controller stamps pods from; None for other kinds."""
    kube = resource.kube
    path = TEMPLATE_PATHS.get((kube.group, kube.kind)) if kube else None
    if path is None:
        return None
    template: Mapping[str, Any] = resource.props
    for key in path:
        template = mapping(template.get(key))
    return PodTemplate(".".join(path), mapping(template.get("metadata")), mapping(template.get("spec")))


def validate_pod_security(resource: Resource, settings: PolicySettings) -> list[str]:
    template = pod_template(resource)
    if template is None:
        return []
    level = settings.level_for(resource.namespace)
    where = f" in {template.path}" if template.path else ""
    return [
        f'{level} Pod Security (namespace "{resource.namespace}"){where}: {finding}'
        for finding in evaluate_pod(
            template.metadata, template.spec, level, relax_user_namespace_pods=settings.relax_user_namespace_pods
        )
    ]
