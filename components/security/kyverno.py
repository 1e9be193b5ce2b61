"""`meshlab:security:Kyverno`: Kyverno, and the policy that hardens waypoint pods.

istiod already gives waypoints a RuntimeDefault seccomp profile (see the mesh layer); the
Kyverno mutation is the second line, so a waypoint still runs in a restricted namespace if
that istiod value is ever lost. It has to exist before any waypoint Gateway is created.

Being the second line, it must never stop a pod: its webhook is narrowed to waypoint pods (the
API server asks Kyverno about no other pod) and ignores Kyverno being down. A stack that requires
HA (prod) runs three admission replicas with a disruption budget.
"""

from __future__ import annotations

from typing import Any

import pulumi

from components.cluster.access import ClusterAccess
from components.helm import release
from components.kube import kube_object
from components.security.namespaces import KYVERNO
from config.settings import Settings

WAYPOINT_POLICY = "meshlab-harden-waypoints"
# The label istiod puts on the pods of waypoints it manages.
WAYPOINT_POD_LABEL = {"gateway.istio.io/managed": "istio.io-mesh-controller"}
# An HA admission controller needs at least three replicas (kyverno.io/docs/high-availability).
HA_REPLICAS = 3


def kyverno_values(settings: Settings) -> dict[str, Any]:
    ha = settings.topology.require_ha
    return {
        "admissionController": {
            "replicas": HA_REPLICAS if ha else 1,
            # The chart turns the budget on by itself above one replica; say so instead of relying on it.
            "podDisruptionBudget": {"enabled": ha},
        }
    }


def waypoint_pods_only() -> str:
    """CEL for the policy's webhook: only pods carrying the waypoint label. A DELETE has no object."""
    [(key, value)] = WAYPOINT_POD_LABEL.items()
    return (
        f"object != null && has(object.metadata.labels) && '{key}' in object.metadata.labels"
        f" && object.metadata.labels['{key}'] == '{value}'"
    )


def waypoint_policy() -> dict[str, Any]:
    return {
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {
            "name": WAYPOINT_POLICY,
            "annotations": {
                "policies.kyverno.io/title": "Harden Istio waypoint pods",
                "policies.kyverno.io/description": (
                    "Gives pods of istiod-managed waypoints a RuntimeDefault seccomp profile, so they pass "
                    "Pod Security restricted in ambient namespaces."
                ),
            },
        },
        "spec": {
            "background": False,
            # Kyverno 1.15 gives a policy with matchConditions a webhook of its own, with them (the rule's
            # label selector alone is checked inside Kyverno, after the API server has called it for every
            # pod). Ignore: a waypoint pod still gets istiod's seccomp profile when Kyverno is down.
            "webhookConfiguration": {
                "failurePolicy": "Ignore",
                "matchConditions": [{"name": "waypoint-pods-only", "expression": waypoint_pods_only()}],
            },
            "rules": [
                {
                    "name": "runtime-default-seccomp",
                    "match": {
                        "any": [{"resources": {"kinds": ["Pod"], "selector": {"matchLabels": WAYPOINT_POD_LABEL}}}]
                    },
                    "mutate": {
                        "patchStrategicMerge": {
                            "spec": {"securityContext": {"seccompProfile": {"type": "RuntimeDefault"}}}
                        }
                    },
                }
            ],
        },
    }


class Kyverno(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        *,
        access: ClusterAccess,
        namespace: pulumi.Resource,
        settings: Settings,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("meshlab:security:Kyverno", name, {"policies": [WAYPOINT_POLICY]}, opts)
        self.release = release(
            f"{name}-release",
            sources=access.sources,
            name="kyverno",
            chart="kyverno",
            namespace=KYVERNO,
            values=kyverno_values(settings),
            opts=access.options(self, [namespace]),
        )
        # Kyverno validates policies with its own webhook, which it configures once it runs.
        self.webhook = access.webhook_ready(
            f"{name}-webhook-ready",
            namespace=KYVERNO,
            service="kyverno-svc",
            webhook_configuration="validatingwebhookconfiguration/kyverno-policy-validating-webhook-cfg",
            parent=self,
            depends_on=[self.release],
        )
        self.waypoint_policy = kube_object(
            f"{name}-waypoint-policy", waypoint_policy(), access.options(self, [self.webhook])
        )
        self.register_outputs({"policies": [WAYPOINT_POLICY]})
