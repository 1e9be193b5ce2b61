"""Run the real meshlab program in-process under Pulumi mocks and record what it registers.

The shared harness of the offline plan (`tools.plan`) and the test suite. A recording
monitor keeps every RegisterResource request as the engine would receive it: type, name,
parent, dependencies, property dependencies, which inputs are secret, and the inputs
themselves (with secrets replaced by "[secret]").
"""

from __future__ import annotations

import gc
import json
import runpy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from google.protobuf import json_format
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import resource as runtime_resource
from pulumi.runtime import settings as runtime_settings
from pulumi.runtime.proto import source_pb2
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from config.loader import StackConfig
from tools.mock_keys import key_pair

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "meshlab"
SECRET = "[secret]"
UNKNOWN = "[unknown]"
# Markers of the Pulumi wire format (sdk/python/lib/pulumi/runtime/rpc.py).
_SIG_KEY = "4dabf18193072939515e22adb298388d"
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
_RESOURCE_SIG = "5cf8f73096256a8f31e491e813e4eb8e"
_UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"

# Values a mock provider returns for outputs the program reads; shaped like the real ones.
MOCK_TOKEN = "mocktoken" * 7 + "m"
# What RKE2 writes to /etc/rancher/rke2/rke2.yaml, with the credentials cut short.
MOCK_KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- cluster:
    certificate-authority-data: bW9jaw==
    server: https://127.0.0.1:6443
  name: default
contexts:
- context:
    cluster: default
    user: default
  name: default
current-context: default
users:
- name: default
  user:
    client-certificate-data: bW9jaw==
    client-key-data: bW9jaw==
"""


@dataclass(frozen=True)
class Registration:
    urn: str
    type: str
    name: str
    parent: str
    custom: bool
    dependencies: list[str]
    property_dependencies: dict[str, list[str]]
    additional_secret_outputs: list[str]
    inputs: dict[str, Any]
    secret_paths: list[str]
    delete_before_replace: bool
    deleted_with: str = ""
    ignore_changes: tuple[str, ...] = ()
    # "URN::ID" of the provider resource the request names explicitly, or "".
    provider: str = ""
    # The request's inputs as sent (wire markers and all), for `revealed_inputs`.
    wire_inputs: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def revealed_inputs(self) -> dict[str, Any]:
        """The inputs with each secret's own value in place of "[secret]": for tests that check what
        a secret holds (an SSH connection's host and key). Never printed: as_json() shows `inputs`."""
        revealed: dict[str, Any] = _strip_wire_markers(self.wire_inputs, "", [], reveal=True)
        return revealed

    def depends_on(self, other: Registration) -> bool:
        """Whether this registration names `other` among its dependencies."""
        return other.urn in self.dependencies

    def as_json(self) -> dict[str, Any]:
        return {
            "urn": self.urn,
            "type": self.type,
            "name": self.name,
            "parent": self.parent,
            "dependencies": self.dependencies,
            "inputs": self.inputs,
        }


def _strip_wire_markers(value: Any, path: str, secret_paths: list[str], *, reveal: bool = False) -> Any:
    """Plain JSON from wire values: secrets become "[secret]" (their paths recorded; with `reveal`,
    their own value), resource references their URN, unknowns "[unknown]", and whole doubles ints again."""
    if isinstance(value, dict):
        signature = value.get(_SIG_KEY)
        if signature == _SECRET_SIG:
            secret_paths.append(path)
            return _strip_wire_markers(value.get("value"), path, [], reveal=True) if reveal else SECRET
        if signature == _RESOURCE_SIG:
            return value.get("urn", "")
        return {
            key: _strip_wire_markers(item, f"{path}.{key}" if path else key, secret_paths, reveal=reveal)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [
            _strip_wire_markers(item, f"{path}[{index}]", secret_paths, reveal=reveal)
            for index, item in enumerate(value)
        ]
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # protobuf carries every number as a double
    return UNKNOWN if value == _UNKNOWN else value


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """A MockMonitor that keeps each registration request."""

    def __init__(self, mocks: pulumi_mocks.Mocks) -> None:
        super().__init__(mocks)
        self.registrations: list[Registration] = []
        # Outputs each resource registered (the stack's are its exports), secrets as "[secret]".
        self.outputs: dict[str, dict[str, Any]] = {}

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        secret_paths: list[str] = []
        raw = json_format.MessageToDict(request.object, preserving_proto_field_name=True)
        inputs = _strip_wire_markers(raw, "", secret_paths)
        self.registrations.append(
            Registration(
                urn=response.urn,
                type=request.type,
                name=request.name,
                parent=request.parent,
                custom=request.custom,
                dependencies=sorted(request.dependencies),
                property_dependencies={
                    key: sorted(value.urns) for key, value in sorted(request.propertyDependencies.items())
                },
                additional_secret_outputs=sorted(request.additionalSecretOutputs),
                inputs=inputs,
                secret_paths=sorted(secret_paths),
                delete_before_replace=request.deleteBeforeReplace,
                deleted_with=request.deletedWith,
                ignore_changes=tuple(request.ignoreChanges),
                provider=request.provider,
                wire_inputs=raw,
            )
        )
        return response

    def RegisterResourceOutputs(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        raw = json_format.MessageToDict(request.outputs, preserving_proto_field_name=True)
        self.outputs[request.urn] = _strip_wire_markers(raw, "", [])
        return super().RegisterResourceOutputs(request)  # type: ignore[no-untyped-call]


class LabMocks(pulumi_mocks.Mocks):
    """Echo inputs back as outputs, plus the computed outputs the program reads."""

    def new_resource(self, args: pulumi_mocks.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        outputs = dict(args.inputs)
        if args.typ == "tls:index/privateKey:PrivateKey":
            # Real keys: a VM tier guest's sshd must load the host key its seed installs.
            keys = key_pair(args.name)
            outputs.update(
                publicKeyOpenssh=keys.public_openssh,
                privateKeyOpenssh=keys.private_openssh,
                privateKeyPem=keys.private_openssh,
            )
        if args.typ in ("tls:index/selfSignedCert:SelfSignedCert", "tls:index/locallySignedCert:LocallySignedCert"):
            outputs.update(certPem=f"-----BEGIN CERTIFICATE-----\n{args.name}\n-----END CERTIFICATE-----\n")
        if args.typ == "tls:index/certRequest:CertRequest":
            outputs.update(
                certRequestPem=f"-----BEGIN CERTIFICATE REQUEST-----\n{args.name}\n-----END CERTIFICATE REQUEST-----\n"
            )
        if args.typ == "random:index/randomPassword:RandomPassword":
            outputs.update(result=MOCK_TOKEN)
        if args.typ.startswith("command:"):
            # The cluster layer's kubeconfig step is the one command whose output the program parses.
            stdout = MOCK_KUBECONFIG if args.name.endswith("-kubeconfig") else f"{args.name} done"
            outputs.update(stdout=stdout, stderr="")
        return f"{args.name}-id", outputs

    def call(self, args: pulumi_mocks.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None


@dataclass
class Rendering:
    stack: str
    registrations: list[Registration]
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def stack_outputs(self) -> dict[str, Any]:
        [stack] = [r.urn for r in self.registrations if r.type == "pulumi:pulumi:Stack"]
        return self.outputs.get(stack, {})

    def resources(self) -> list[Registration]:
        """Everything but the root stack, in deterministic (URN) order."""
        return sorted((r for r in self.registrations if r.type != "pulumi:pulumi:Stack"), key=lambda r: r.urn)

    def named(self, name: str) -> Registration:
        """The one registration called `name`."""
        found = [r for r in self.resources() if r.name == name]
        if len(found) != 1:
            raise LookupError(f"{len(found)} registrations are named {name!r}")
        return found[0]

    def of_type(self, type_token: str) -> list[Registration]:
        return [r for r in self.resources() if r.type == type_token]

    def by_urn(self) -> dict[str, Registration]:
        return {r.urn: r for r in self.registrations}

    def descendants(self, urn: str) -> list[Registration]:
        children: dict[str, list[Registration]] = {}
        for resource in self.resources():
            children.setdefault(resource.parent, []).append(resource)

        def walk(parent: str) -> Iterator[Registration]:
            for child in children.get(parent, []):
                yield child
                yield from walk(child.urn)

        return list(walk(urn))


def _config_wire_value(value: Any) -> str:
    """Config as the Pulumi language host hands it to a program: strings, JSON for structures."""
    if isinstance(value, str):
        return value
    return json.dumps(value)


def _no_stack_trace() -> source_pb2.StackTrace:
    return source_pb2.StackTrace()


def render(
    config: StackConfig, stack: str, main: Path = ROOT / "__main__.py", monitor: RecordingMonitor | None = None
) -> Rendering:
    """Run `main` for `stack` with `config` under mocks; return every registration.

    Pass `monitor` to inspect what was registered even when the program raises."""
    monitor = monitor or RecordingMonitor(LabMocks())
    runtime_settings.ROOT.set(None)
    pulumi.runtime.set_mocks(LabMocks(), project=PROJECT, stack=stack, preview=False, monitor=monitor)
    pulumi.runtime.set_all_config(
        {key: _config_wire_value(value) for key, value in config.values.items()}, list(config.secret_keys)
    )
    runtime_settings.SETTINGS.rpc_manager.clear()
    runtime_settings.SETTINGS.outputs.clear()

    def program() -> None:
        runpy.run_path(str(main), run_name="__main__")
        # Under mocks the root stack registers its outputs before the program runs; register the
        # exports again, as the engine would see them at the end of a run.
        root = runtime_settings.get_root_resource()
        if isinstance(root, pulumi.runtime.stack.Stack):
            root.register_outputs(dict(root.outputs))

    # Two costs of a real run that a render under mocks does without, each a sixth of its time:
    # - The SDK walks the Python stack for every resource it registers (traceback.extract_stack, a
    #   file URI per frame) for the request's source position and stack trace, what the engine shows
    #   next to an error. The recording monitor keeps neither, so the SDK sends an empty trace here,
    #   as it does when it finds no caller frame.
    # - The program allocates objects by the hundred thousand (outputs, futures, tasks) and frees
    #   few while it runs, so the cyclic garbage collector's passes find next to nothing; their
    #   cost grows with the stack (a third of the time at 60 nodes). It is off until the render
    #   ends, then collects as usual.
    stack_trace = runtime_resource._get_stack_trace
    runtime_resource._get_stack_trace = _no_stack_trace
    collecting = gc.isenabled()
    gc.disable()
    try:
        _sync_await(run_pulumi_func(program))
    finally:
        runtime_resource._get_stack_trace = stack_trace
        if collecting:
            gc.enable()
    return Rendering(stack=stack, registrations=list(monitor.registrations), outputs=dict(monitor.outputs))


def stack_file(stack: str) -> Path:
    return ROOT / f"Pulumi.{stack}.yaml"


def with_overrides(config: StackConfig, overrides: Mapping[str, Any]) -> StackConfig:
    values = {**config.values, **overrides}
    return StackConfig({k: v for k, v in values.items() if v is not None}, config.secret_keys)
