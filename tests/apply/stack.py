"""The apply tier's stack and engine: the lab's settings at phase 4, the benchmark and the demos on, deployed onto
the tier's cluster through `meshlab:kubeconfig`, with every chart from the loopback repository
(`meshlab:chartRepository`) and the Gateway API manifest from there too (`meshlab:gatewayApiCrdsUrl`).

The stack is `lab`, so the policy pack gets the lab's config exactly as `make up` passes it. Its file in the
project copy holds everything but the kubeconfig, which goes in with `pulumi config set --secret`. A second
copy of it with the kubeconfig as an encrypted placeholder is what tools.snapshot renders offline (the plan
each step is compared with).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from config.loader import read_stack_file, structured
from config.settings import built_cluster_fields, config_key
from tests.apply.cluster import AGENTS
from tests.engine.toolchain import Engine, copy_project, type_and_name
from tools.diff import PlanDiff, compare
from tools.snapshot import snapshot

STACK = "lab"
GATEWAY_MANIFEST = "gateway-api-standard-install.yaml"
NFS_SERVER = "nfs.apply.test"  # never mounted: no container runs on fake nodes
POLICY = ("--policy-pack", "policy-pack", "--policy-pack-config", f"policy-pack/config/{STACK}.json")
# seconds per step, printed at the end of the tier
TIMINGS: dict[str, float] = {}
# What the provider registers itself (the Gateway API ConfigFile's CRDs) or the engine adds (default
# providers): not in an offline plan.
ENGINE_ONLY_TYPES = ("pulumi:pulumi:Stack",)


def apply_config(repository: str) -> dict[str, Any]:
    """The lab stack's settings without what only a cluster meshlab builds reads, plus the tier's own."""
    lab = read_stack_file(Path(__file__).resolve().parents[2] / f"Pulumi.{STACK}.yaml")
    built = {config_key(name) for _, name in built_cluster_fields()}
    values: dict[str, Any] = {key: structured(value) for key, value in lab.values.items() if key not in built}
    values |= {
        config_key("chart_repository"): repository,
        config_key("gateway_api_crds_url"): f"{repository}/{GATEWAY_MANIFEST}",
        config_key("nfs_server"): NFS_SERVER,
        config_key("rollout_phase"): 4,
        config_key("benchmark"): "on",
        config_key("benchmark_nodes"): list(AGENTS[:2]),
        config_key("demo_ambient"): "after",
        config_key("demo_l7_routing"): True,
        config_key("demo_principal_policy"): True,
    }
    return values


def phase_config(values: dict[str, Any], phase: int) -> dict[str, Any]:
    """`values` at rollout phase `phase`: what needs phase 3 goes off below it, as a user would turn it off."""
    changed = {**values, config_key("rollout_phase"): phase}
    if phase < 3:
        changed |= {
            config_key("benchmark"): "off",
            config_key("demo_l7_routing"): False,
            config_key("demo_principal_policy"): False,
        }
    return changed


@dataclass
class Run:
    """One CLI run: its exit code, output and wall time."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    slowest: list[tuple[float, str, str]] = field(default_factory=list)  # (seconds, op, URN)

    def check(self) -> Run:
        if self.returncode != 0:
            raise AssertionError(
                f"pulumi {' '.join(self.args)} failed ({self.returncode}) after {self.seconds:.0f}s:\n"
                + "\n".join(self.messages())
                + f"\n--- stderr\n{self.stderr[-3000:]}"
            )
        return self

    def messages(self) -> list[str]:
        """The engine's error diagnostics and policy violations, from a `--json` preview or update."""
        try:
            documents = [json.loads(self.stdout)]
        except ValueError:
            documents = list(_events(self.stdout.splitlines()))
        found = []
        for document in documents:
            for diagnostic in document.get("diagnostics", []):
                if diagnostic.get("severity") == "error":
                    found.append(str(diagnostic.get("message", "")).strip())
            for event in (document.get("diagnosticEvent"), document.get("policyEvent")):
                if event and (event.get("severity") in ("error", None) or "enforcementLevel" in event):
                    found.append(str(event.get("message", "")).strip())
            for violation in document.get("policies", []) if isinstance(document.get("policies"), list) else []:
                found.append(json.dumps(violation))
        return found or [self.stdout[-4000:]]

    def violations(self) -> dict[str, list[str]]:
        """Mandatory policy violations of a `--json` update: policy name -> messages."""
        found: dict[str, list[str]] = {}
        for event in _events(self.stdout.splitlines()):
            policy = event.get("policyEvent")
            if policy and policy.get("enforcementLevel") == "mandatory":
                found.setdefault(str(policy["policyName"]), []).append(str(policy.get("message", "")))
        return found

    def steps(self) -> list[dict[str, Any]]:
        """The steps of a `--json` preview or update."""
        document = json.loads(self.stdout)
        return list(document.get("steps", []))


@dataclass
class ApplyEngine:
    engine: Engine
    plan_files: Path
    values: dict[str, Any]
    kubeconfig: str
    plans: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def create(cls, bin_dir: Path, root: Path, *, repository: str, kubeconfig: str) -> ApplyEngine:
        project = copy_project(root / "project")
        for directory in ("home", "backend", "plans"):
            (root / directory).mkdir()
        engine = Engine(bin_dir=bin_dir, home=root / "home", backend=root / "backend", project=project)
        engine.install_providers()
        applied = cls(engine, root / "plans", apply_config(repository), kubeconfig)
        applied.write_config(applied.values)
        engine.init_stack(STACK)
        done = engine.run("config", "set", "--secret", "--stack", STACK, config_key("kubeconfig"), kubeconfig)
        if done.returncode != 0:
            raise RuntimeError(f"pulumi config set --secret meshlab:kubeconfig: {done.stderr}")
        return applied

    @property
    def stack_file(self) -> Path:
        return self.engine.project / f"Pulumi.{STACK}.yaml"

    def write_config(self, values: dict[str, Any]) -> None:
        """The stack file's settings (its encryption salt and the encrypted kubeconfig are kept)."""
        document: dict[str, Any] = {}
        if self.stack_file.exists():
            document = yaml.safe_load(self.stack_file.read_text()) or {}
        kept = {k: v for k, v in (document.get("config") or {}).items() if k == config_key("kubeconfig")}
        document["config"] = {**values, **kept}
        self.stack_file.write_text(yaml.safe_dump(document, sort_keys=False))
        self.values = values

    def allow_permissive(self, namespaces: list[str]) -> None:
        """The lab's policy config with `namespaces` on both mTLS policies' migration allow-list, as
        docs/rollout.md tells a user to do for phase 2 (empty: as committed)."""
        path = self.engine.project / "policy-pack" / "config" / f"{STACK}.json"
        committed = json.loads((Path(__file__).resolve().parents[2] / "policy-pack" / "config" / path.name).read_text())
        if namespaces:
            allow = [{"namespace": n, "reason": "rollout phase 2: workloads joining the mesh"} for n in namespaces]
            for policy in ("peer-authentication-strict", "mesh-mtls-strict"):
                committed[policy] = {"enforcementLevel": "mandatory", "mtlsMigrationAllowList": allow}
        path.write_text(json.dumps(committed, indent=2))

    def plan(self, values: dict[str, Any]) -> dict[str, Any]:
        """tools.snapshot's offline rendering of `values` (the kubeconfig as an encrypted value)."""
        key = json.dumps(values, sort_keys=True)
        if key not in self.plans:
            path = self.plan_files / f"Pulumi.{STACK}.{len(self.plans)}.yaml"
            document = {"config": {**values, config_key("kubeconfig"): {"secure": "AAAA"}}}
            path.write_text(yaml.safe_dump(document, sort_keys=False))
            self.plans[key] = snapshot(STACK, path)
        return self.plans[key]

    def predicted(self, before: dict[str, Any], after: dict[str, Any]) -> PlanDiff:
        """What `tools.plan lab --diff` says the change from `before` to `after` does."""
        return compare(self.plan(before), self.plan(after), "before")

    def pulumi(self, *args: str, timeout: float = 900) -> Run:
        start = time.monotonic()
        done = self.engine.run(*args, timeout=timeout)
        return Run(args, done.returncode, done.stdout, done.stderr, time.monotonic() - start)

    def up(self, *extra: str) -> Run:
        """`pulumi up --json`: its output is the engine's events, one JSON object a line; its slowest
        operations go to `slowest`."""
        run = self.pulumi("up", "--yes", "--skip-preview", "--json", "--stack", STACK, *POLICY, *extra)
        run.slowest = slowest_operations(run.stdout.splitlines())
        return run

    def preview(self, *extra: str) -> Run:
        return self.pulumi("preview", "--stack", STACK, *POLICY, *extra)

    def destroy(self) -> Run:
        run = self.pulumi("destroy", "--yes", "--skip-preview", "--json", "--stack", STACK)
        run.slowest = slowest_operations(run.stdout.splitlines())
        return run

    def interrupted_up(self, after_created: int, timeout: float = 600) -> tuple[Run, int]:
        """`pulumi up` sent SIGINT (Ctrl-C) once `after_created` resources are created; (the run, how many
        were created when the signal went)."""
        argv = [
            str(self.engine.bin_dir / "pulumi"),
            "up", "--yes", "--skip-preview", "--json", "--stack", STACK, *POLICY, "--non-interactive",
        ]  # fmt: skip
        start = time.monotonic()
        with tempfile.TemporaryFile("w+") as errors:
            process = subprocess.Popen(
                argv, cwd=self.engine.project, env=self.engine.env(), stdout=subprocess.PIPE, stderr=errors, text=True
            )
            assert process.stdout is not None
            lines: list[str] = []
            created, signalled = 0, False
            for line in process.stdout:  # the engine's events as they happen
                lines.append(line)
                if not signalled and _created([line]):
                    created += 1
                    if created >= after_created:
                        os.kill(process.pid, signal.SIGINT)
                        signalled = True
            process.wait(timeout=timeout)
            errors.seek(0)
            stderr = errors.read()
        return Run(tuple(argv[1:]), process.returncode, "".join(lines), stderr, time.monotonic() - start), created

    def state(self) -> dict[str, Any]:
        done = self.pulumi("stack", "export", "--stack", STACK).check()
        return dict(json.loads(done.stdout)["deployment"])


def _events(lines: list[str]) -> Iterator[dict[str, Any]]:
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue  # not an event (a line still being written, a message)
        if isinstance(event, dict):
            yield event


def slowest_operations(lines: list[str], count: int = 5) -> list[tuple[float, str, str]]:
    """The `count` longest resource operations of an update: (seconds, op, URN), from its engine events."""
    started: dict[str, float] = {}
    took: list[tuple[float, str, str]] = []
    for event in _events(lines):
        pre, done = event.get("resourcePreEvent"), event.get("resOutputsEvent") or event.get("resOpFailedEvent")
        if pre:
            started[pre["metadata"]["urn"]] = float(event["timestamp"])
        elif done and "metadata" in done and done["metadata"]["urn"] in started:
            if done["metadata"].get("type") == "pulumi:pulumi:Stack":
                continue  # the whole update, not one operation
            urn = done["metadata"]["urn"]
            took.append((float(event["timestamp"]) - started[urn], str(done["metadata"].get("op")), urn))
    return sorted(took, reverse=True)[:count]


def _created(lines: list[str]) -> int:
    """Resources the engine has finished creating, from its events (one JSON object a line)."""
    count = 0
    for event in _events(lines):
        outputs = event.get("resOutputsEvent")
        if (
            outputs
            and outputs.get("metadata", {}).get("op") == "create"
            and outputs["metadata"].get("type") != ("pulumi:pulumi:Stack")
        ):
            count += 1
    return count


def normal_urn(urn: str) -> str:
    """A URN as the engine writes it: under mocks the SDK qualifies top-level resources' types with the root
    stack's (`pulumi:pulumi:Stack$TYPE`), the engine does not."""
    return urn.replace("::pulumi:pulumi:Stack$", "::")


def resource_keys(resources: list[dict[str, Any]]) -> dict[str, str]:
    """URN -> type of the program's own resources (what an offline plan lists)."""
    keys = {}
    for item in resources:
        urn, kind = normal_urn(str(item["urn"])), str(item["type"])
        if kind in ENGINE_ONLY_TYPES or (kind.startswith("pulumi:providers:") and "::default" in urn):
            continue
        if "$kubernetes:yaml/v2:ConfigFile$" in urn:
            continue  # the provider registers the manifest's objects itself
        keys[urn] = kind
    return keys


def step_ops(steps: list[dict[str, Any]]) -> dict[str, set[str]]:
    """URNs by what happened to them: created, deleted, updated (replacements count as updates)."""
    ops: dict[str, set[str]] = {"created": set(), "deleted": set(), "updated": set()}
    for step in steps:
        urn, op = str(step.get("urn")), str(step.get("op"))
        if not resource_keys([{"urn": urn, "type": type_and_name(urn)[0]}]):
            continue
        if op == "create":
            ops["created"].add(urn)
        elif op == "delete":
            ops["deleted"].add(urn)
        elif op in ("update", "replace", "create-replacement", "delete-replaced"):
            ops["updated"].add(urn)
    return ops
