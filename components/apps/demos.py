"""The seed's demo scenarios, each switched on in settings (see docs/rollout.md for the commands).

1. `meshlab:demoAmbient` (`before` | `after`): a `demo` namespace with a client and a server,
   outside the mesh or enrolled in ambient - the same curl, with and without mTLS underneath.
2. `meshlab:demoL7Routing`: the test app's waypoint sends `/v2` to a second version of the app.
3. `meshlab:demoPrincipalPolicy`: an `api-client` identity may GET and POST under `/api/`; any
   other caller gets 403 there.
"""

from __future__ import annotations

from typing import Any

import pulumi

from components.apps.web_test import (
    APP,
    CONTAINER_PORT,
    NAMESPACE,
    SERVICE,
    SERVICE_PORT,
    deployment_document,
    pod_template,
)
from components.cluster.access import ClusterAccess
from components.kube import RESTRICTED_CONTAINER, kube_object
from components.security.namespaces import NamespaceSpec, labelled_namespace
from config import versions
from config.settings import Settings

DEMO_NAMESPACE = "demo"
V2 = f"{APP}-v2"
API_CLIENT = "api-client"
V2_PREFIX = "/v2"
API_PATHS = ["/api", "/api/*"]


def client_deployment(name: str, namespace: str, service_account: str | None = None) -> dict[str, Any]:
    """A curl client that idles, for `kubectl exec ... -- curl ...`."""
    labels = {"app": name}
    container = {
        "name": "curl",
        "image": versions.CURL_IMAGE,
        "command": ["sleep", "infinity"],
        "securityContext": RESTRICTED_CONTAINER,
        "resources": {"requests": {"cpu": "5m", "memory": "8Mi"}, "limits": {"cpu": "100m", "memory": "32Mi"}},
    }
    spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": versions.CURL_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
    }
    if service_account:
        spec["serviceAccountName"] = service_account
    return deployment_document(name, namespace, labels, {"metadata": {"labels": labels}, "spec": spec})


def server(
    name: str, namespace: str, labels: dict[str, str], image: str, page: str | None = None
) -> list[dict[str, Any]]:
    """A Deployment and a ClusterIP Service of the test app's image; `page` replaces its index.html."""
    template = pod_template(labels, image)
    documents: list[dict[str, Any]] = []
    if page is not None:
        documents.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": f"{name}-page", "namespace": namespace},
                "data": {"index.html": page},
            }
        )
        template["spec"]["volumes"].append({"name": "page", "configMap": {"name": f"{name}-page"}})
        template["spec"]["containers"][0]["volumeMounts"].append(
            {"name": "page", "mountPath": "/usr/share/nginx/html", "readOnly": True}
        )
    documents.append(deployment_document(name, namespace, labels, template))
    documents.append(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {
                "selector": labels,
                "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": CONTAINER_PORT}],
            },
        }
    )
    return documents


def ambient_demo_namespace(enrolled: bool) -> NamespaceSpec:
    return NamespaceSpec(
        DEMO_NAMESPACE, "restricted", labels={"istio.io/dataplane-mode": "ambient"} if enrolled else {}
    )


def v2_route() -> dict[str, Any]:
    """Mesh routing bound to the app's Service: its waypoint sends /v2 to v2 and the rest to v1."""
    service = {"group": "", "kind": "Service", "name": SERVICE, "port": SERVICE_PORT}
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": f"{APP}-v2-split", "namespace": NAMESPACE},
        "spec": {
            "parentRefs": [service],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": V2_PREFIX}}],
                    "filters": [
                        {
                            "type": "URLRewrite",
                            "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}},
                        }
                    ],
                    "backendRefs": [{"name": V2, "port": SERVICE_PORT}],
                },
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                    "backendRefs": [{"name": SERVICE, "port": SERVICE_PORT}],
                },
            ],
        },
    }


def extra_rules(settings: Settings) -> list[dict[str, Any]]:
    """What the demos add to the test app's AuthorizationPolicy."""
    apps, rules = settings.apps, []
    if apps.demo_l7_routing:
        rules.append({"to": [{"operation": {"methods": ["GET"], "paths": [V2_PREFIX, f"{V2_PREFIX}/*"]}}]})
    if apps.demo_principal_policy:
        rules.append(
            {
                "from": [{"source": {"principals": [f"cluster.local/ns/{NAMESPACE}/sa/{API_CLIENT}"]}}],
                "to": [{"operation": {"methods": ["GET", "POST"], "paths": API_PATHS}}],
            }
        )
    return rules


class AmbientDemo(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        *,
        access: ClusterAccess,
        settings: Settings,
        depends_on: list[pulumi.Resource],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        enrolled = settings.apps.demo_ambient == "after"
        super().__init__("meshlab:apps:AmbientDemo", name, {"namespace": DEMO_NAMESPACE, "ambient": enrolled}, opts)
        namespace = labelled_namespace(f"{name}-namespace", ambient_demo_namespace(enrolled), access, self, depends_on)
        inside = access.options(self, [namespace])
        for document in server("demo-server", DEMO_NAMESPACE, {"app": "demo-server"}, settings.apps.test_app_image):
            kube_object(f"{name}-{document['kind'].lower()}-server", document, inside)
        kube_object(f"{name}-client", client_deployment("demo-client", DEMO_NAMESPACE), inside)
        self.register_outputs({"namespace": DEMO_NAMESPACE, "ambient": enrolled})


class L7RoutingDemo(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        *,
        access: ClusterAccess,
        settings: Settings,
        depends_on: list[pulumi.Resource],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("meshlab:apps:L7RoutingDemo", name, {"prefix": V2_PREFIX, "backend": V2}, opts)
        options = access.options(self, depends_on)
        labels = {"app": APP, "version": "v2"}
        for document in server(V2, NAMESPACE, labels, settings.apps.test_app_image, page="web-test v2\n"):
            kube_object(f"{name}-{document['kind'].lower()}", document, options)
        kube_object(f"{name}-route", v2_route(), options)
        self.register_outputs({"prefix": V2_PREFIX})


class PrincipalDemo(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        *,
        access: ClusterAccess,
        depends_on: list[pulumi.Resource],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("meshlab:apps:PrincipalDemo", name, {"principal": API_CLIENT, "paths": API_PATHS}, opts)
        options = access.options(self, depends_on)
        account = kube_object(
            f"{name}-service-account",
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": API_CLIENT, "namespace": NAMESPACE},
                "automountServiceAccountToken": False,
            },
            options,
        )
        kube_object(
            f"{name}-client",
            client_deployment(API_CLIENT, NAMESPACE, service_account=API_CLIENT),
            access.options(self, [account, *depends_on]),
        )
        self.register_outputs({"principal": API_CLIENT})
