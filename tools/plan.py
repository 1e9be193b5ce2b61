"""Offline plan: run the real program under mocks for a stack and show what it would register.

    python -m tools.plan STACK [--json] [--config-file FILE] [--policy [--policy-config FILE]]
    python -m tools.plan STACK --diff REF [--json] [--config-file FILE] [--policy-config FILE]
    python -m tools.plan STACK --graph

Reads `Pulumi.STACK.yaml` (or FILE). Prints the resource tree, or with --json a
deterministic document {"stack", "resources": [{urn, type, name, parent, dependencies,
inputs}]} with every secret replaced by "[secret]". Invalid settings: exit code 2, the
validation message on stderr, nothing on stdout. No cluster, VirtualBox or Pulumi CLI needed.

With --policy it runs the policy pack instead: every resource policy on every rendered resource
and the stack policies over the whole set, with the stack's policy config
(`policy-pack/config/STACK.json`, or --policy-config). It prints the violations grouped by policy
(with --json: {"stack", "violations": [{policy, enforcement, urn, message}]}) and exits 1 if a
mandatory policy is violated, 0 otherwise.

With --diff REF it compares the stack at git ref REF (rendered from that commit's own program and
stack file, without touching the working tree) with the working tree (or FILE): resources added,
removed and changed with each changed input's old -> new value, in Markdown (with --json:
{"stack", "ref", "against", "summary", "added", "removed", "changed", "components", "notes",
"policy"}),
followed by the policy check of the new state; exit 1 if that violates a mandatory policy, 2 if
REF is unknown or a side's settings are invalid. See tools/diff.py for what counts as a change.

With --graph it prints the stack's component graph as a Mermaid flowchart (tools/graph.py).
"""

from __future__ import annotations

import atexit
import gc

if __name__ == "__main__":
    # A process that imports a thousand modules, builds one large object graph, prints it and
    # ends: the cyclic garbage collector's passes over all that, and the full collection the
    # interpreter runs on its way out, find next to nothing to free and cost a fifth of a plan's
    # CPU time. The collector stays off from here on, and whatever is left at exit is frozen, out
    # of that last collection's reach. (Before the imports, which are a third of that time.)
    gc.disable()
    atexit.register(gc.freeze)

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from config.loader import read_stack_file, settings_from_config
from config.validation import SettingsError
from tools import cli
from tools.cli import counted
from tools.render import ROOT, Registration, Rendering, render

# The policy pack, the diff and the graph are imported by the modes that use them: a plain plan,
# the most frequent run, does not pay for them.
if TYPE_CHECKING:
    from meshlab_policy.engine import ResolvedPolicy, Violation
    from meshlab_policy.kube import Resource

EXIT_POLICY_VIOLATIONS = 1
EXIT_INVALID_CONFIG = 2


def plan_document(rendering: Rendering) -> dict[str, object]:
    return {"stack": rendering.stack, "resources": [r.as_json() for r in rendering.resources()]}


def tree_lines(rendering: Rendering) -> list[str]:
    resources = rendering.resources()
    children: dict[str, list[Registration]] = {}
    for resource in resources:
        children.setdefault(resource.parent, []).append(resource)
    known = {resource.urn for resource in resources}
    roots = [resource for resource in resources if resource.parent not in known]
    lines = [f"stack {rendering.stack}: {counted(len(resources), 'resource')}"]

    def walk(nodes: list[Registration], prefix: str) -> None:
        ordered = sorted(nodes, key=lambda r: (r.name, r.type))
        for index, node in enumerate(ordered):
            last = index == len(ordered) - 1
            lines.append(f"{prefix}{'└─ ' if last else '├─ '}{node.name}  [{node.type}]")
            walk(children.get(node.urn, []), prefix + ("   " if last else "│  "))

    walk(roots, "")
    return lines


def policy_resources(rendering: Rendering) -> list[Resource]:
    """The rendered resources as the policy pack sees them: type, name, URN and inputs."""
    import tools.policy  # noqa: F401, PLC0415 - puts policy-pack on sys.path

    # isort: split
    from meshlab_policy.kube import Resource  # noqa: PLC0415

    return [Resource(type=r.type, name=r.name, urn=r.urn, props=r.inputs) for r in rendering.resources()]


def policy_config_for(stack: str, path: Path | None) -> tuple[list[ResolvedPolicy], str]:
    """The stack's resolved policies and where their config came from: `path` if given, else the
    stack's file in policy-pack/config, else the pack's defaults."""
    import tools.policy  # noqa: F401, PLC0415 - puts policy-pack on sys.path

    # isort: split
    from meshlab_policy.engine import load_pack_config, resolve, stack_config_path  # noqa: PLC0415

    if path is None and not stack_config_path(stack).is_file():
        return resolve(None), "the pack's defaults"
    path = path or stack_config_path(stack)
    return resolve(load_pack_config(path)), str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)


def policy_report_lines(stack: str, source: str, resources: list[Resource], violations: list[Violation]) -> list[str]:
    names = {resource.urn: f"{resource.type} {resource.name}" for resource in resources}
    lines = [f"policy check of stack {stack} ({source}): {counted(len(resources), 'resource')}"]
    by_policy: dict[str, list[Violation]] = {}
    for violation in violations:
        by_policy.setdefault(violation.policy, []).append(violation)
    for policy, found in by_policy.items():
        lines.append(f"{policy} [{found[0].enforcement}]: {len(found)} violation{'s' if len(found) > 1 else ''}")
        lines += [f"  {names.get(v.urn or '', 'stack')}: {v.message}" for v in found]
    mandatory = sum(violation.mandatory for violation in violations)
    lines.append(f"{mandatory} mandatory and {len(violations) - mandatory} advisory violations")
    return lines


def run_diff(
    stack: str, ref: str, config_file: Path | None, policies: list[ResolvedPolicy], source: str, *, as_json: bool
) -> int:
    """Print the plan diff of `stack` against `ref`, with the policy check of the new state."""
    import tools.policy  # noqa: F401, PLC0415 - puts policy-pack on sys.path

    # isort: split
    from meshlab_policy.engine import run_policies  # noqa: PLC0415
    from meshlab_policy.kube import Resource  # noqa: PLC0415

    from tools import diff as plan_diff  # noqa: PLC0415
    from tools.diff import code  # noqa: PLC0415

    try:
        old, new = plan_diff.render_both(stack, ref, config_file)
    except plan_diff.DiffError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_INVALID_CONFIG
    result = plan_diff.compare(old, new, ref, against=code(str(config_file)) if config_file else "working tree")
    resources = [
        Resource(type=entry.type, name=entry.name, urn=entry.urn, props=plan_diff.plain(entry.inputs))
        for entry in plan_diff.entries(new).values()
    ]
    violations = run_policies(resources, policies)
    if as_json:
        document = plan_diff.diff_document(result)
        document["policy"] = {
            "source": source,
            "mandatory": sum(v.mandatory for v in violations),
            "violations": [asdict(v) for v in violations],
        }
        json.dump(document, sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(plan_diff.markdown(result, policy_report_lines(stack, source, resources, violations)))
    return EXIT_POLICY_VIOLATIONS if any(v.mandatory for v in violations) else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.plan", description=__doc__.split("\n\n")[0])
    parser.add_argument("stack", help="stack name, e.g. lab, staging, prod")
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")
    parser.add_argument("--config-file", type=Path, help="stack config file (default: Pulumi.STACK.yaml)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--policy", action="store_true", help="run the policy pack over the rendered stack")
    mode.add_argument("--diff", metavar="REF", help="compare with the stack at git ref REF (e.g. HEAD, origin/main)")
    mode.add_argument("--graph", action="store_true", help="print the component graph as a Mermaid flowchart")
    parser.add_argument(
        "--policy-config", type=Path, help="CrossGuard policy config (default: policy-pack/config/STACK.json)"
    )
    args = parser.parse_args(argv)
    if args.graph and args.json:
        parser.error("--graph prints Mermaid; it has no --json form")
    checks_policy = args.policy or args.diff is not None

    try:
        path = cli.stack_config_file(args.stack, args.config_file)
    except cli.UnknownStackError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_INVALID_CONFIG
    # A settings error, and in the policy modes a policy config error: invalid input, exit status 2.
    invalid_input: tuple[type[Exception], ...] = (SettingsError,)
    if checks_policy:
        import tools.policy  # noqa: F401, PLC0415 - puts policy-pack on sys.path

        # isort: split
        from meshlab_policy.settings import PolicyConfigError  # noqa: PLC0415

        invalid_input = (SettingsError, PolicyConfigError)
    try:
        config = read_stack_file(path, stack=args.stack)
        settings_from_config(config, source=str(path))
        policies, policy_source = policy_config_for(args.stack, args.policy_config) if checks_policy else ([], "")
    except invalid_input as error:
        print(error, file=sys.stderr)
        return EXIT_INVALID_CONFIG

    if args.diff is not None:
        return run_diff(args.stack, args.diff, args.config_file, policies, policy_source, as_json=args.json)
    rendering = render(config, args.stack)
    if args.graph:
        from tools.graph import mermaid  # noqa: PLC0415

        sys.stdout.write(mermaid(rendering.resources()))
        return 0
    if args.policy:
        from meshlab_policy.engine import run_policies  # noqa: PLC0415

        resources = policy_resources(rendering)
        violations = run_policies(resources, policies)
        if args.json:
            document = {"stack": args.stack, "violations": [asdict(v) for v in violations]}
            json.dump(document, sys.stdout, indent=2, sort_keys=True)
            sys.stdout.write("\n")
        else:
            print("\n".join(policy_report_lines(args.stack, policy_source, resources, violations)))
        return EXIT_POLICY_VIOLATIONS if any(v.mandatory for v in violations) else 0
    if args.json:
        json.dump(plan_document(rendering), sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
    else:
        print("\n".join(tree_lines(rendering)))
    return 0


if __name__ == "__main__":
    from tools.cli import run

    run(main)
