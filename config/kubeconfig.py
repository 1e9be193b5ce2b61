"""A kubeconfig's current context: the one cluster and user meshlab:kubeconfig points meshlab at. Validation,
the existing cluster's component and its preflight all read it through `current_context`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml


class KubeconfigError(ValueError):
    """Why a kubeconfig names no usable cluster and user. Never quotes the text: it holds credentials."""


@dataclass(frozen=True)
class CurrentContext:
    name: str
    cluster: dict[str, Any]  # server, certificate-authority(-data), insecure-skip-tls-verify
    user: dict[str, Any]  # token, client certificate and key, basic auth or exec


def current_context(text: str) -> CurrentContext:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise KubeconfigError(f"not YAML ({type(error).__name__} at {getattr(error, 'problem_mark', '?')})") from None
    if not isinstance(document, dict) or document.get("kind", "Config") != "Config":
        raise KubeconfigError("not a kubeconfig (expected a YAML mapping of kind Config)")
    current = document.get("current-context")
    if not current:
        raise KubeconfigError(
            "the kubeconfig has no current-context: meshlab deploys to the cluster that context names"
        )

    def named(kind: str, name: object) -> dict[str, Any] | None:
        for entry in document.get(kind) or []:
            if isinstance(entry, dict) and entry.get("name") == name and isinstance(entry.get(kind[:-1]), dict):
                return dict(entry[kind[:-1]])
        return None

    context = named("contexts", current)
    if context is None:
        raise KubeconfigError(f"current-context {current!r} is not among the kubeconfig's contexts")
    cluster = named("clusters", context.get("cluster"))
    if cluster is None or not str(cluster.get("server", "")).startswith("https://"):
        raise KubeconfigError(f"context {current!r} names no cluster with an https:// server")
    user = named("users", context.get("user"))
    if user is None:
        raise KubeconfigError(f"context {current!r} names no user")
    return CurrentContext(str(current), cluster, user)
