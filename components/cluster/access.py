"""`ClusterAccess`: what every layer above the cluster receives, whoever made the cluster (meshlab's RKE2
layer, or a kubeconfig of an existing one), and the in-cluster wait for an admission webhook.

The wait is a Job the Kubernetes provider awaits (it waits for a Job to complete), so it needs no SSH and
no kubectl on the workstation, on every backend. Its pod asks the API server, with a ServiceAccount that may
read just the two objects concerned, until the webhook's Service has a ready endpoint and its configuration
carries a CA bundle: objects the webhook validates are refused until then (the chart being ready is not
enough: the CA comes later).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.cluster.nfs import NfsExport
from components.kube import RESTRICTED_CONTAINER, kube_object
from components.sources import Sources
from config import versions

WAIT_NAME = "meshlab-webhook-wait"
# The pod's script: POSIX sh and curl only (the pinned curl image). Its inputs come as environment variables.
WAIT_SCRIPT = """\
set -eu
account=${ACCOUNT:-/var/run/secrets/kubernetes.io/serviceaccount}
get() {
  curl -sf --max-time 10 --cacert "$account/ca.crt" -H "Authorization: Bearer $(cat "$account/token")" \\
    "${API:-https://kubernetes.default.svc}$1" | tr -d ' \\n'
}
endpoints=/apis/discovery.k8s.io/v1/namespaces/$NAMESPACE/endpointslices
webhook=/apis/admissionregistration.k8s.io/v1/$WEBHOOK_RESOURCE/$WEBHOOK_NAME
deadline=$(( $(date +%s) + TIMEOUT_SECONDS ))
give_up() { [ "$(date +%s)" -lt "$deadline" ] || { echo "$1 after ${TIMEOUT_SECONDS}s" >&2; exit 1; }; }
until get "$endpoints?labelSelector=kubernetes.io%2Fservice-name%3D$SERVICE" | grep -q '"ready":true'; do
  give_up "service $NAMESPACE/$SERVICE has no ready endpoint"
  sleep 2
done
until get "$webhook" | grep -q '"caBundle":"[^"]'; do
  give_up "$WEBHOOK_RESOURCE/$WEBHOOK_NAME has no CA bundle"
  sleep 2
done
echo "the webhook behind $NAMESPACE/$SERVICE is ready"
"""
WEBHOOK_RESOURCES = {
    "validatingwebhookconfiguration": "validatingwebhookconfigurations",
    "mutatingwebhookconfiguration": "mutatingwebhookconfigurations",
}


@dataclass(frozen=True)
class ClusterAccess:
    """What the layers above need from the cluster layer."""

    name: str
    provider: k8s.Provider
    api_endpoint: pulumi.Input[str]
    kubeconfig: pulumi.Output[str]  # always a secret
    # The cluster is usable (a built one: every node Ready and Cilium rolled out): whatever needs a
    # working cluster waits for it.
    ready: pulumi.Resource
    # Where dynamic volumes live; None when there is no NFS storage (an existing cluster without meshlab:nfsServer).
    nfs: NfsExport | None
    # The NIC the nodes' addresses are on (MetalLB answers ARP there); empty: any (an existing cluster).
    node_interface: str
    sources: Sources
    timeout_seconds: int

    def options(
        self, parent: pulumi.Resource, depends_on: Sequence[pulumi.Input[pulumi.Resource]] = ()
    ) -> pulumi.ResourceOptions:
        """Options for a Kubernetes object or Helm release: through this cluster's provider."""
        return pulumi.ResourceOptions(parent=parent, provider=self.provider, depends_on=list(depends_on))

    def webhook_ready(
        self,
        name: str,
        *,
        namespace: str,
        service: str,
        webhook_configuration: str,
        parent: pulumi.Resource,
        depends_on: Sequence[pulumi.Resource],
    ) -> pulumi.Resource:
        """A bounded wait until the admission webhook behind `service` answers: the Job (returned), its
        ServiceAccount and grants, children of `parent`. Create what the webhook validates after the Job.
        `webhook_configuration` is KIND/NAME (validatingwebhookconfiguration/...)."""
        *grants, job = wait_objects(namespace, service, webhook_configuration, self.timeout_seconds)
        suffixes = ("sa", "role", "role-binding", "cluster-role", "cluster-role-binding")
        created = [
            kube_object(f"{name}-{suffix}", document, self.options(parent, depends_on))
            for suffix, document in zip(suffixes, grants, strict=True)
        ]
        # The provider waits 10 minutes for a Job by default; this one may wait as long as the cluster's timeout.
        timeout = f"{self.timeout_seconds + 120}s"
        waiting = pulumi.ResourceOptions(custom_timeouts=pulumi.CustomTimeouts(create=timeout, update=timeout))
        return kube_object(
            f"{name}-job", job, pulumi.ResourceOptions.merge(self.options(parent, [*depends_on, *created]), waiting)
        )


def wait_objects(
    namespace: str, service: str, webhook_configuration: str, timeout_seconds: int
) -> list[dict[str, Any]]:
    """The wait's objects: its ServiceAccount, the two read-only grants it needs, and the Job."""
    kind, _, webhook_name = webhook_configuration.partition("/")
    resource = WEBHOOK_RESOURCES[kind.lower()]
    cluster_role = f"{WAIT_NAME}-{namespace}"
    labels = {"app.kubernetes.io/name": WAIT_NAME, "app.kubernetes.io/part-of": "meshlab"}
    metadata = {"name": WAIT_NAME, "namespace": namespace, "labels": labels}
    subject = [{"kind": "ServiceAccount", "name": WAIT_NAME, "namespace": namespace}]
    env = {
        "NAMESPACE": namespace,
        "SERVICE": service,
        "WEBHOOK_RESOURCE": resource,
        "WEBHOOK_NAME": webhook_name,
        "TIMEOUT_SECONDS": str(timeout_seconds),
    }
    pod_spec = {
        "serviceAccountName": WAIT_NAME,
        "automountServiceAccountToken": True,  # the pod reads the API with it
        "restartPolicy": "Never",
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": versions.CURL_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": "wait",
                "image": versions.CURL_IMAGE,
                "command": ["sh", "-c", WAIT_SCRIPT],
                "env": [{"name": key, "value": value} for key, value in env.items()],
                "securityContext": RESTRICTED_CONTAINER,
                "resources": {
                    "requests": {"cpu": "5m", "memory": "8Mi"},
                    "limits": {"cpu": "100m", "memory": "32Mi"},
                },
            }
        ],
    }
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata, "automountServiceAccountToken": False},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": metadata,
            "rules": [{"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list"]}],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": metadata,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": WAIT_NAME},
            "subjects": subject,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": cluster_role, "labels": labels},
            "rules": [
                {
                    "apiGroups": ["admissionregistration.k8s.io"],
                    "resources": [resource],
                    "resourceNames": [webhook_name],
                    "verbs": ["get"],
                }
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": cluster_role, "labels": labels},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_role},
            "subjects": subject,
        },
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            # A wait that failed (timed out) is run again by the next `pulumi up`, not awaited as it was.
            "metadata": {**metadata, "annotations": {"pulumi.com/replaceUnready": "true"}},
            "spec": {
                # One try, bounded: the script waits itself; a failed wait fails the update with its message.
                "backoffLimit": 0,
                "activeDeadlineSeconds": timeout_seconds + 60,
                "template": {"metadata": {"labels": labels}, "spec": pod_spec},
            },
        },
    ]
