"""components.kube registers some objects without pulumi_kubernetes' generated classes (importing
those costs a third of a plan's CPU time). The engine must not see a difference: each helper's
registration request equals the one the generated class sends, field by field."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format

from config.loader import StackConfig
from tools.render import LabMocks, RecordingMonitor, render

# The same object registered twice under each name: by the generated class ("typed-*") and by our
# helper ("ours-*"). Only the names differ.
PROGRAM = textwrap.dedent(
    """
    import pulumi
    import pulumi_kubernetes as k8s
    from components import kube

    provider = k8s.Provider("cluster", kubeconfig="{}")
    opts = pulumi.ResourceOptions(provider=provider)
    metadata = {"name": "cacerts", "namespace": "istio-system"}
    data = {"ca-cert.pem": pulumi.Output.secret("pem")}
    k8s.core.v1.Secret("typed-secret", metadata=metadata, type="Opaque", string_data=data, opts=opts)
    kube.secret("ours-secret", metadata=metadata, type="Opaque", string_data=data, opts=opts)
    sa = {"name": "default", "namespace": "apps"}
    k8s.core.v1.ServiceAccountPatch(
        "typed-sa", metadata=sa, automount_service_account_token=False, opts=opts
    )
    kube.service_account_patch("ours-sa", metadata=sa, automount_service_account_token=False, opts=opts)
    url = "https://example.test/standard-install.yaml"
    k8s.yaml.v2.ConfigFile("typed-crds", file=url, opts=opts)
    kube.config_file("ours-crds", file=url, opts=opts)
    chart = {"chart": "kiali-server", "version": "2.14.0", "namespace": "istio-system", "timeout": 900}
    repo = "https://kiali.org/helm-charts"
    values = {"auth": {"strategy": "anonymous"}, "server_port": 20001, "secret": pulumi.Output.secret("x")}
    k8s.helm.v3.Release(
        "typed-release", name="kiali", repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=repo),
        values=values, opts=opts, **chart
    )
    kube.helm_release("ours-release", release_name="kiali", repository=repo, values=values, opts=opts, **chart)
    """
)


class RequestMonitor(RecordingMonitor):
    """Keeps every registration request whole, not only the fields a Registration holds."""

    def __init__(self) -> None:
        super().__init__(LabMocks())
        self.requests: dict[str, dict[str, Any]] = {}

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        self.requests[request.name] = json_format.MessageToDict(request)
        return super().RegisterResource(request)


@pytest.fixture(scope="module")
def requests(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    program = tmp_path_factory.mktemp("program") / "__main__.py"
    program.write_text(PROGRAM)
    monitor = RequestMonitor()
    render(StackConfig({}, frozenset()), "lab", main=Path(program), monitor=monitor)
    return monitor.requests


def without_names(request: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in request.items() if key not in {"name", "aliasSpecs", "aliases"}}


@pytest.mark.parametrize("kind", ["secret", "sa", "crds", "release"])
def test_a_helper_sends_what_the_generated_class_sends(requests, kind):
    typed, ours = requests[f"typed-{kind}"], requests[f"ours-{kind}"]
    # Guard against comparing two empty requests: each carries its type, inputs and provider.
    assert typed["type"].startswith("kubernetes:") and typed["object"] and typed["provider"]
    assert without_names(ours) == without_names(typed)


def test_the_secret_keeps_its_data_secret(requests):
    secret = requests["ours-secret"]
    assert sorted(secret["additionalSecretOutputs"]) == ["data", "stringData"]
    # The string data travels as a secret value (the wire's secret signature), not as plain text.
    assert "1b47061264138c4ac30d75fd1eb44270" in str(secret["object"]["stringData"])
    assert secret.get("version"), "the provider version the generated classes name is sent"


def test_the_crds_are_a_remote_component(requests):
    crds = requests["ours-crds"]
    assert crds["type"] == "kubernetes:yaml/v2:ConfigFile"
    assert crds.get("remote") is True and not crds.get("custom")
