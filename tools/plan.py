"""Offline plan: run the real program under mocks for a stack and show what it would register.

    python -m tools.plan STACK [--json] [--config-file FILE]

Reads `Pulumi.STACK.yaml` (or FILE). Prints the resource tree, or with --json a
deterministic document {"stack", "resources": [{urn, type, name, parent, dependencies,
inputs}]} with every secret replaced by "[secret]". Invalid settings: exit code 2, the
validation message on stderr, nothing on stdout. No cluster, VirtualBox or Pulumi CLI needed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from config.loader import read_stack_file, settings_from_config
from config.validation import SettingsError
from tools.render import Registration, Rendering, render, stack_file

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
    lines = [f"stack {rendering.stack}: {len(resources)} resources"]

    def walk(nodes: list[Registration], prefix: str) -> None:
        ordered = sorted(nodes, key=lambda r: (r.name, r.type))
        for index, node in enumerate(ordered):
            last = index == len(ordered) - 1
            lines.append(f"{prefix}{'└─ ' if last else '├─ '}{node.name}  [{node.type}]")
            walk(children.get(node.urn, []), prefix + ("   " if last else "│  "))

    walk(roots, "")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.plan", description=__doc__.split("\n\n")[0])
    parser.add_argument("stack", help="stack name, e.g. lab, staging, prod")
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")
    parser.add_argument("--config-file", type=Path, help="stack config file (default: Pulumi.STACK.yaml)")
    args = parser.parse_args(argv)

    path = args.config_file or stack_file(args.stack)
    if not path.is_file():
        print(f"error: no stack config file {path}", file=sys.stderr)
        return EXIT_INVALID_CONFIG
    try:
        config = read_stack_file(path)
        settings_from_config(config, source=str(path))
    except SettingsError as error:
        print(error, file=sys.stderr)
        return EXIT_INVALID_CONFIG

    rendering = render(config, args.stack)
    if args.json:
        json.dump(plan_document(rendering), sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
    else:
        print("\n".join(tree_lines(rendering)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
