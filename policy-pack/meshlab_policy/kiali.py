"""Kiali: a UI that lets anyone in must not be able to change the mesh.

With `auth.strategy: anonymous` and view-only mode off, the kiali-server chart binds Kiali's
ServiceAccount to its full ClusterRole (create, patch and delete on the Istio API groups), and the
UI acts with it for whoever opens the page: an AuthorizationPolicy deleted or a PeerAuthentication
set to PERMISSIVE by anyone who reaches the ingress. View-only mode hides the UI's write actions and
makes the chart bind the read-only `kiali-viewer` role instead.
"""

from __future__ import annotations

from meshlab_policy.kube import Resource, helm_chart_name, mapping, text
from meshlab_policy.settings import PolicySettings

KIALI_CHART = "kiali-server"
ANONYMOUS = "anonymous"


def validate_kiali_view_only(resource: Resource, _settings: PolicySettings) -> list[str]:
    if helm_chart_name(resource) != KIALI_CHART:
        return []
    values = mapping(resource.props.get("values"))
    if text(mapping(values.get("auth")).get("strategy")) != ANONYMOUS:
        return []  # a login: each user acts with their own RBAC (the chart's default strategy is one too)
    # Strictly the boolean: the chart's templates read any non-empty string (even "false") as true.
    if mapping(values.get("deployment")).get("view_only_mode") is True:
        return []
    release = text(resource.props.get("name")) or resource.name
    namespace = text(resource.props.get("namespace"))
    where = f"{namespace}/{release}" if namespace else release
    return [
        f'Kiali release "{where}" lets anyone in (auth.strategy anonymous) without '
        "deployment.view_only_mode: true, so every visitor may change Istio configuration with Kiali's "
        "writable ClusterRole: set deployment.view_only_mode: true, or use a login strategy (token, openid)"
    ]
