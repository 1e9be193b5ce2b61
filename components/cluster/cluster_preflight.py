"""The cluster preflight of an existing cluster (meshlab:kubeconfig): every problem at once, before anything
is created, through the Kubernetes API alone (no SSH, no kubectl on the workstation).

It asks the API server what the platform layers rely on the cluster layer for when meshlab builds the
cluster itself: a reachable, authorised API at a Kubernetes version the pinned charts support; Cilium as
the CNI, configured the way Istio ambient needs it (the settings meshlab's RKE2 layer writes); no other
Istio control plane; and no namespace meshlab creates already there under another owner. Each problem
says what was found and what is needed.

The checks read a `ClusterApi` (GET and POST of JSON), so they run offline against a fake; `KubeconfigApi`
is the real one, built from the kubeconfig's current context.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import subprocess
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from components.security.namespaces import OWNER_LABEL
from config import versions
from config.kubeconfig import current_context

CILIUM_CONFIG = "/api/v1/namespaces/kube-system/configmaps/cilium-config"
# What Istio ambient needs of Cilium, as cilium-config spells it, and why (lab-spec §3; the RKE2 layer's
# cilium_values writes the same three).
CILIUM_REQUIREMENTS: dict[str, tuple[str, str]] = {
    "cni-exclusive": (
        "false",
        "with an exclusive CNI Cilium deletes istio-cni's entry from the CNI configuration (Istio's platform "
        "prerequisites; Cilium's Istio page): Helm value cni.exclusive=false",
    ),
    "bpf-lb-sock-hostns-only": (
        "true",
        "socket load-balancing in pod namespaces translates Service addresses before ztunnel and waypoints see "
        "them, bypassing the mesh (Cilium's Istio page): Helm value socketLB.hostNamespaceOnly=true",
    ),
    "kube-proxy-replacement": (
        "true",
        "meshlab's platform runs on Cilium's kube-proxy replacement, as its RKE2 layer configures it: Helm value "
        "kubeProxyReplacement=true",
    ),
}
TIMEOUT_SECONDS = 15


class ClusterApi(Protocol):
    """GET or POST a path of the API server: (HTTP status, decoded JSON body or None)."""

    endpoint: str

    def get(self, path: str) -> tuple[int, Any]: ...
    def post(self, path: str, body: dict[str, Any]) -> tuple[int, Any]: ...


class UnreachableError(Exception):
    """The API server did not answer at all (connection, TLS, timeout)."""


@dataclass
class KubeconfigApi:
    """The API server of a kubeconfig's current context, with its credentials: client certificate, bearer
    token (or token file), basic auth, or an exec credential plugin."""

    endpoint: str
    context: ssl.SSLContext
    headers: dict[str, str]

    @classmethod
    def from_kubeconfig(cls, text: str, scratch: Path) -> KubeconfigApi:
        """`scratch` (a private directory) holds the client key while the context loads it."""
        context = current_context(text)
        cluster, user = context.cluster, context.user
        # The cluster's own CA, when the kubeconfig names one, is the only one trusted (as kubectl does): the
        # system's CAs come in only without it.
        ca_data = cluster.get("certificate-authority-data")
        tls = ssl.create_default_context(
            cadata=base64.b64decode(ca_data).decode() if ca_data else None,
            cafile=None if ca_data else cluster.get("certificate-authority") or None,
        )
        if cluster.get("insecure-skip-tls-verify"):
            tls.check_hostname, tls.verify_mode = False, ssl.CERT_NONE
        if user.get("exec"):
            user = {**user, **_exec_credential(user["exec"])}
        headers = {"Accept": "application/json"}
        cert, key = _pem(user, "client-certificate"), _pem(user, "client-key")
        if cert and key:
            scratch.chmod(0o700)
            (scratch / "client.crt").write_bytes(cert)
            (scratch / "client.key").write_bytes(key)
            (scratch / "client.key").chmod(0o600)
            tls.load_cert_chain(scratch / "client.crt", scratch / "client.key")
        token = user.get("token") or (Path(user["tokenFile"]).read_text().strip() if user.get("tokenFile") else "")
        if token:
            headers["Authorization"] = f"Bearer {token}"
        elif user.get("username"):
            basic = base64.b64encode(f"{user['username']}:{user.get('password', '')}".encode()).decode()
            headers["Authorization"] = f"Basic {basic}"
        return cls(str(cluster["server"]).rstrip("/"), tls, headers)

    def _call(self, request: urllib.request.Request) -> tuple[int, Any]:
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS, context=self.context) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            body = error.read()
            try:
                return error.code, json.loads(body or b"null")
            except json.JSONDecodeError:
                return error.code, None
        except (urllib.error.URLError, OSError, ssl.SSLError) as error:
            reason = getattr(error, "reason", error)
            raise UnreachableError(str(reason)) from None

    def get(self, path: str) -> tuple[int, Any]:
        return self._call(urllib.request.Request(self.endpoint + path, headers=self.headers))

    def post(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        data = json.dumps(body).encode()
        headers = {**self.headers, "Content-Type": "application/json"}
        return self._call(urllib.request.Request(self.endpoint + path, data=data, headers=headers, method="POST"))


def _pem(user: dict[str, Any], field: str) -> bytes:
    if user.get(f"{field}-data"):
        return base64.b64decode(user[f"{field}-data"])
    if user.get(field):
        return Path(user[field]).read_bytes()
    return b""


def _exec_credential(spec: dict[str, Any]) -> dict[str, Any]:
    """Run a client-go credential plugin (the ExecCredential protocol) and return its credentials in the
    kubeconfig's own field names."""
    env = {item["name"]: item["value"] for item in spec.get("env") or []}
    request = {"apiVersion": spec.get("apiVersion", "client.authentication.k8s.io/v1"), "kind": "ExecCredential"}
    done = subprocess.run(
        [spec["command"], *(spec.get("args") or [])],
        env={**os.environ, **env, "KUBERNETES_EXEC_INFO": json.dumps({**request, "spec": {"interactive": False}})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        raise UnreachableError(f"the kubeconfig's exec plugin {spec['command']} failed: {done.stderr.strip()[:300]}")
    status = json.loads(done.stdout).get("status", {})
    credentials: dict[str, Any] = {}
    if status.get("token"):
        credentials["token"] = status["token"]
    if status.get("clientCertificateData") and status.get("clientKeyData"):
        credentials["client-certificate-data"] = base64.b64encode(status["clientCertificateData"].encode()).decode()
        credentials["client-key-data"] = base64.b64encode(status["clientKeyData"].encode()).decode()
    return credentials


def _minor(git_version: str) -> tuple[int, int] | None:
    parts = git_version.lstrip("v").split(".")
    try:
        return int(parts[0]), int("".join(ch for ch in parts[1] if ch.isdigit()))
    except (IndexError, ValueError):
        return None


def refused_credentials(api: ClusterApi, status: int) -> str:
    return f"the API server at {api.endpoint} refuses the kubeconfig's credentials (HTTP {status}): needed, valid ones"


def check_api(api: ClusterApi) -> Iterator[str]:
    """Reachable, authorised (cluster-admin), at a supported Kubernetes version. Stops at the first of the
    three that fails: nothing else can be asked then."""
    try:
        status, body = api.get("/version")
    except UnreachableError as error:
        yield f"cannot reach the API server at {api.endpoint} ({error}): needed, reachable from this workstation"
        return
    if status in (401, 403):
        yield refused_credentials(api, status)
        return
    lowest, highest = versions.KUBERNETES_SUPPORTED
    found = _minor(str((body or {}).get("gitVersion", ""))) if status == 200 else None
    if found is None:
        yield f"the API server at {api.endpoint} answered /version with HTTP {status}: needed, a Kubernetes API server"
        return
    if not lowest <= found <= highest:
        yield (
            f"Kubernetes {body['gitVersion']}: needed, {lowest[0]}.{lowest[1]} to {highest[0]}.{highest[1]} "
            "(what the pinned Istio and Kyverno releases support)"
        )
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": {"verb": "*", "group": "*", "resource": "*"}},
    }
    status, body = api.post("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", review)
    if status == 401:
        yield refused_credentials(api, status)
    elif status != 201 or not (body or {}).get("status", {}).get("allowed"):
        yield (
            "the kubeconfig's user is not a cluster admin (may not do everything everywhere): needed, cluster-admin "
            "(meshlab installs CRDs, admission webhooks and cluster roles)"
        )


def check_cilium(api: ClusterApi) -> Iterator[str]:
    status, body = api.get(CILIUM_CONFIG)
    if status == 404:
        yield (
            "no Cilium (no kube-system/cilium-config ConfigMap): needed, Cilium as the cluster's CNI, configured "
            f"for Istio ambient ({', '.join(f'{k}: {v[0]}' for k, v in CILIUM_REQUIREMENTS.items())})"
        )
        return
    if status != 200:
        yield f"cannot read kube-system/cilium-config (HTTP {status}): needed, read access to it"
        return
    data = (body or {}).get("data") or {}
    for key, (wanted, why) in CILIUM_REQUIREMENTS.items():
        found = data.get(key)
        if found != wanted:
            shown = "unset" if found is None else f'"{found}"'
            yield f'Cilium\'s cilium-config has {key} {shown}: needed, "{wanted}"; {why}'


def check_istio(api: ClusterApi, namespace: str) -> Iterator[str]:
    status, body = api.get("/apis/apps/v1/deployments?labelSelector=" + urllib.parse.quote("app=istiod"))
    if status != 200:
        yield f"cannot list Deployments (HTTP {status}): needed, read access to them"
        return
    for item in (body or {}).get("items") or []:
        metadata = item.get("metadata", {})
        if metadata.get("namespace") != namespace:
            yield (
                f"an Istio control plane already runs: Deployment {metadata.get('namespace')}/{metadata.get('name')}; "
                f"needed, no other Istio (meshlab installs its own istiod in {namespace}): uninstall that one first"
            )


def check_namespaces(api: ClusterApi, namespaces: Sequence[str], owner: str) -> Iterator[str]:
    """Each namespace the platform creates: absent, or already this stack's (labelled `owner_label: owner`)."""
    for name in namespaces:
        status, body = api.get(f"/api/v1/namespaces/{name}")
        if status == 404:
            continue
        if status != 200:
            yield f"cannot read namespace {name} (HTTP {status}): needed, read access to namespaces"
            continue
        labels = (body or {}).get("metadata", {}).get("labels") or {}
        found = labels.get(OWNER_LABEL)
        if found != owner:
            whose = f"{OWNER_LABEL}={found}" if found else f"no {OWNER_LABEL} label"
            yield (
                f"namespace {name} already exists ({whose}): needed, no such namespace or one of this stack's "
                f"({OWNER_LABEL}={owner}); meshlab would take it over: delete it, or use another cluster"
            )


def cluster_problems(api: ClusterApi, namespaces: Sequence[str], istio_namespace: str, owner: str) -> list[str]:
    """Every problem of the cluster behind `api`, or none. `owner`: the stack's cluster name (meshlab-<stack>)."""
    problems = list(check_api(api))
    if problems:
        return problems
    return [*check_cilium(api), *check_istio(api, istio_namespace), *check_namespaces(api, namespaces, owner)]


def preflight(kubeconfig: str, namespaces: Sequence[str], istio_namespace: str, owner: str) -> list[str]:
    """The preflight of the cluster `kubeconfig` names (validation has checked its shape)."""
    with tempfile.TemporaryDirectory(prefix="meshlab-preflight-") as scratch:
        try:
            api = KubeconfigApi.from_kubeconfig(kubeconfig, Path(scratch))
        except (UnreachableError, OSError, ssl.SSLError, ValueError, KeyError) as error:
            return [f"cannot use the kubeconfig's credentials ({type(error).__name__}: {error}): needed, usable ones"]
        return cluster_problems(api, namespaces, istio_namespace, owner)
