"""Check plain Kubernetes YAML manifests against the meshlab policy pack, with no cluster or Pulumi.

    python -m tools.policy [--level restricted|baseline|privileged] [--policy-config FILE]
                           [--stack-policies] FILE...

Reads every document of every FILE (multi-document files and `kind: List` are expanded) and runs
the pack's resource policies on each object: the same validators `pulumi preview --policy-pack
policy-pack` runs. Workloads are checked at their namespace's level as the lab labels it (the
exemption list of the policy config; restricted for every other namespace), or at --level.
--stack-policies also runs the stack policies (mesh-wide mTLS, waypoints) over all files as one
stack; leave it off for app manifests that join the lab's mesh.

Prints one line per violation, `FILE: Kind/name: policy [enforcement]: message`, and a summary on
stderr. Exit status: 1 if any mandatory policy is violated, 0 otherwise, 2 if a file or the policy
config cannot be read.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tools.cli import counted

ROOT = Path(__file__).resolve().parent.parent
POLICY_PACK_DIR = ROOT / "policy-pack"
# "policy-pack" is no valid package name, so its module is imported from inside the directory.
if str(POLICY_PACK_DIR) not in sys.path:
    sys.path.insert(0, str(POLICY_PACK_DIR))

from meshlab_policy.engine import (  # noqa: E402
    ResolvedPolicy,
    Violation,
    load_pack_config,
    resolve,
    run_policies,
    with_fixed_level,
)
from meshlab_policy.kube import Resource, items, mapping, text, type_of_manifest  # noqa: E402
from meshlab_policy.pod_security import Level  # noqa: E402
from meshlab_policy.settings import PolicyConfigError  # noqa: E402

EXIT_VIOLATIONS = 1
EXIT_UNREADABLE = 2


class ManifestError(Exception):
    """A file that is not readable YAML of Kubernetes objects."""


@dataclass(frozen=True)
class Manifest:
    path: Path
    kind: str
    resource: Resource

    @property
    def label(self) -> str:
        return f"{self.kind}/{self.resource.object_name}"


def _objects(document: object) -> list[Mapping[str, Any]]:
    """The objects of one YAML document: itself, or the items of a List (nested lists too)."""
    if document is None:
        return []
    if not isinstance(document, Mapping):
        raise ManifestError(f"expected a Kubernetes object, found {type(document).__name__}")
    if text(document.get("kind")).endswith("List") and "items" in document:
        return [obj for item in items(document.get("items")) for obj in _objects(item)]
    return [document]


def read_manifests(path: Path) -> list[Manifest]:
    try:
        documents = list(yaml.safe_load_all(path.read_text()))
    except (OSError, yaml.YAMLError) as error:
        raise ManifestError(f"{path}: {error}") from error
    manifests: list[Manifest] = []
    for document in documents:
        try:
            objects = _objects(document)
        except ManifestError as error:
            raise ManifestError(f"{path}: {error}") from error
        for obj in objects:
            api_version, kind = text(obj.get("apiVersion")), text(obj.get("kind"))
            if not api_version or not kind:
                raise ManifestError(f"{path}: an object without apiVersion or kind: {dict(obj)!r:.120}")
            name = text(mapping(obj.get("metadata")).get("name")) or f"unnamed-{len(manifests)}"
            resource = Resource(
                type=type_of_manifest(api_version, kind).token(),
                name=name,
                urn=f"{path}#{len(manifests)}:{kind}/{name}",
                props=obj,
            )
            manifests.append(Manifest(path, kind, resource))
    return manifests


def violation_lines(violations: Sequence[Violation], manifests: Sequence[Manifest]) -> list[str]:
    by_urn = {manifest.resource.urn: manifest for manifest in manifests}
    lines = []
    for violation in violations:
        manifest = by_urn.get(violation.urn or "")
        where = f"{manifest.path}: {manifest.label}" if manifest else "(all files): stack"
        lines.append(f"{where}: {violation.policy} [{violation.enforcement}]: {violation.message}")
    return lines


def check_manifests(
    manifests: Sequence[Manifest], resolved: Sequence[ResolvedPolicy], *, stack_policies: bool = False
) -> list[Violation]:
    return run_policies([m.resource for m in manifests], resolved, stack_policies=stack_policies)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.policy", description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="Kubernetes YAML manifests")
    parser.add_argument(
        "--level", choices=[level.value for level in Level], help="check every workload at this Pod Security level"
    )
    parser.add_argument("--policy-config", type=Path, help="CrossGuard policy config JSON (default: the pack's)")
    parser.add_argument("--stack-policies", action="store_true", help="also run the stack policies over all files")
    args = parser.parse_args(argv)

    try:
        resolved = resolve(load_pack_config(args.policy_config) if args.policy_config else None)
        manifests = [manifest for path in args.files for manifest in read_manifests(path)]
    except (PolicyConfigError, ManifestError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_UNREADABLE
    if args.level:
        resolved = with_fixed_level(resolved, Level(args.level))

    violations = check_manifests(manifests, resolved, stack_policies=args.stack_policies)
    for line in violation_lines(violations, manifests):
        print(line)
    mandatory = sum(violation.mandatory for violation in violations)
    print(
        f"{counted(len(manifests), 'object')} in {counted(len(args.files), 'file')}: {mandatory} mandatory and "
        f"{len(violations) - mandatory} advisory violations",
        file=sys.stderr,
    )
    return EXIT_VIOLATIONS if mandatory else 0


if __name__ == "__main__":
    from tools.cli import run

    run(main)
