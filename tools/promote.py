"""Promote one stack's settings to the next: lab -> staging -> prod.

    python -m tools.promote SRC DST            # show what would change in DST, and check the result
    python -m tools.promote SRC DST --write    # ... and write it
    python -m tools.promote SRC DST --check    # exit 1 if DST lags SRC on any promotable setting

What moves, and what stays:
- `Pulumi.DST.yaml`: every promotable key (`promotable_keys()` in config/settings.py: pinned
  versions, component and mesh settings) becomes what `Pulumi.SRC.yaml` says. A promotable key
  that SRC does not set means the default, so it is removed from DST. Every other key (addresses,
  node counts and sizes, hostnames, secrets) and every comment stays as it is; a key that comes
  or goes brings or takes the comment lines right above it.
  Between a cluster meshlab builds and an existing one (`meshlab:kubeconfig`, never promoted: it is
  a secret), the settings only a built cluster reads (`built_cluster_fields()`: RKE2's version, etcd
  snapshots, Cilium's operator) are left out, with a note: an existing cluster refuses them, and
  has none to hand on to a built one.
- `policy-pack/config/DST.json`: each policy's settings (exemption and allow lists, the Istio
  root namespace, ...) become SRC's: they describe the components both stacks run. Enforcement
  levels (a policy's `enforcementLevel` or plain level, and `all`) are the environment's own:
  prod makes the advisory policies mandatory on purpose.

Before anything is written the result must pass: the settings validation (`config.loader
.settings_from_config`), then the policy pack with DST's resulting policy config over the program
rendered with DST's resulting settings, as `tools.plan DST --policy` does. Otherwise it refuses,
exit code 1, with the reason; nothing is written.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config.loader import read_stack_file, settings_from_config
from config.settings import built_cluster_fields, config_key, promotable_keys
from config.stack_yaml import config_values
from config.validation import SettingsError
from tools.plan import policy_report_lines, policy_resources
from tools.policy import ROOT  # noqa: F401 - importing tools.policy puts policy-pack on sys.path
from tools.render import render, stack_file

# isort: split
from meshlab_policy.engine import ENFORCEMENT_LEVEL, load_pack_config, resolve, run_policies, stack_config_path
from meshlab_policy.settings import PolicyConfigError

EXIT_REFUSED = 1
_ABSENT: Any = object()
_KEY_LINE = re.compile(r"^(?P<indent>\s*)(?P<quote>[\"']?)(?P<key>[^\s\"'#][^\"'#]*?)(?P=quote):(\s|$)")


class PromotionError(Exception):
    """A promotion that must not happen, with the reason."""


@dataclass(frozen=True)
class Change:
    where: str  # "meshlab:istioVersion", or "policy-name.propertyName"
    old: Any
    new: Any

    def line(self) -> str:
        if self.old is _ABSENT:
            return f"  + {self.where}: {_shown(self.new)}"
        if self.new is _ABSENT:
            return f"  - {self.where}: {_shown(self.old)} (unset: the default from now on)"
        return f"  ~ {self.where}: {_shown(self.old)} -> {_shown(self.new)}"


def _shown(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


# --- the stack file, edited line by line so comments and layout survive ------------------------


@dataclass(frozen=True)
class _Entry:
    key: str
    start: int  # first line of the comment block right above the key (or the key line)
    key_line: int
    end: int  # one past the entry's last line


@dataclass(frozen=True)
class _ConfigBlock:
    lines: list[str]
    indent: str
    entries: dict[str, _Entry]
    end: int  # one past the block's last entry


def _indent_of(line: str) -> int:
    return len(line) - len(line.lstrip())


def _parse_config_block(text: str) -> _ConfigBlock:
    """The entries of the top-level `config:` mapping of a stack file."""
    lines = text.splitlines(keepends=True)
    header = next((index for index, line in enumerate(lines) if re.match(r"^config:\s*(#.*)?$", line)), None)
    if header is None:
        return _ConfigBlock(lines, "  ", {}, len(lines))
    entries: dict[str, _Entry] = {}
    indent: int | None = None
    index, end, comments_from = header + 1, header + 1, None
    while index < len(lines):
        line = lines[index]
        stripped = line.strip()
        if not stripped:
            comments_from = None
            index += 1
            continue
        if stripped.startswith("#"):
            comments_from = index if comments_from is None else comments_from
            index += 1
            continue
        if _indent_of(line) == 0:
            break  # the next top-level key
        match = _KEY_LINE.match(line)
        indent = _indent_of(line) if indent is None else indent
        if match is None or _indent_of(line) != indent:
            raise PromotionError(f"cannot read line {index + 1} of the config block: {line.rstrip()!r}")
        key_line = index
        index += 1
        while index < len(lines) and _continues(lines, index, indent):
            index += 1
        start = comments_from if comments_from is not None else key_line
        entries[match["key"]] = _Entry(match["key"], start, key_line, index)
        end, comments_from = index, None
    return _ConfigBlock(lines, " " * (indent if indent is not None else 2), entries, end)


def _continues(lines: list[str], index: int, indent: int) -> bool:
    """Whether line `index` still belongs to the value of an entry whose key is indented `indent`:
    deeper lines, sequence items at the key's own indent, and blank lines inside a block scalar."""
    line = lines[index]
    if line.strip():
        return _indent_of(line) > indent or (_indent_of(line) == indent and line.lstrip().startswith("- "))
    for following in lines[index + 1 :]:
        if following.strip():
            return _indent_of(following) > indent and not following.lstrip().startswith("#")
    return False


def _entry_text(block: _ConfigBlock, key: str, indent: str, with_comments: bool) -> list[str]:
    """An entry's lines (and those of the comment above it), re-indented to `indent`."""
    entry = block.entries[key]
    lines = block.lines[entry.start if with_comments else entry.key_line : entry.end]
    own = len(block.indent)
    return [indent + line[own:] if line.strip() else line for line in lines]


def promoted_stack_text(source_text: str, target_text: str, keys: Sequence[str]) -> str:
    """`target_text` with each of `keys` set as in `source_text` (or removed when the source lacks it)."""
    source, target = _parse_config_block(source_text), _parse_config_block(target_text)
    lines = list(target.lines)
    if not any(re.match(r"^config:", line) for line in lines):
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        lines.append("config:\n")
        target = _ConfigBlock(lines, target.indent, {}, len(lines))
    replacements: list[tuple[int, int, list[str]]] = []
    appended: list[str] = []
    for key in keys:
        if key in target.entries:
            entry = target.entries[key]
            if key in source.entries:
                new = _entry_text(source, key, target.indent, with_comments=False)
                if lines[entry.key_line : entry.end] != new:
                    replacements.append((entry.key_line, entry.end, new))
            else:
                replacements.append((entry.start, entry.end, []))
        elif key in source.entries:
            appended += _entry_text(source, key, target.indent, with_comments=True)
    for start, end, new in sorted(replacements, reverse=True):
        lines[start:end] = new
    if appended:
        insert_at = target.end - sum(end - start - len(new) for start, end, new in replacements if start < target.end)
        if insert_at > 0 and not lines[insert_at - 1].endswith("\n"):
            lines[insert_at - 1] += "\n"
        lines[insert_at:insert_at] = appended
    return "".join(lines)


def _config(text: str) -> dict[str, Any]:
    return config_values(text)


def stack_changes(source_text: str, target_text: str, keys: Sequence[str]) -> list[Change]:
    source, target = _config(source_text), _config(target_text)
    secret = [key for key in keys if isinstance(source.get(key), dict) and "secure" in source[key]]
    if secret:
        raise PromotionError(f"{', '.join(secret)}: encrypted values belong to one stack and cannot be promoted")
    return [
        Change(key, target.get(key, _ABSENT), source.get(key, _ABSENT))
        for key in keys
        if source.get(key, _ABSENT) != target.get(key, _ABSENT)
    ]


# --- the policy config ----------------------------------------------------------------------


def _properties(entry: Any) -> dict[str, Any]:
    """A policy entry's settings: everything but its enforcement level."""
    if isinstance(entry, Mapping):
        return {key: value for key, value in entry.items() if key != ENFORCEMENT_LEVEL}
    return {}


def _level(entry: Any) -> Any:
    if isinstance(entry, Mapping):
        return entry.get(ENFORCEMENT_LEVEL, _ABSENT)
    return entry if entry is not None else _ABSENT


def promoted_policy_config(source: Mapping[str, Any], target: Mapping[str, Any]) -> dict[str, Any]:
    """`target` with each policy's settings taken from `source`; enforcement levels stay `target`'s."""
    result: dict[str, Any] = {}
    for name in [*target, *(name for name in source if name not in target)]:
        properties = _properties(source.get(name))
        level = _level(target.get(name))
        if not properties:
            if level is not _ABSENT:
                result[name] = level if not isinstance(target.get(name), Mapping) else {ENFORCEMENT_LEVEL: level}
            continue
        result[name] = {**({ENFORCEMENT_LEVEL: level} if level is not _ABSENT else {}), **properties}
    for name, entry in result.items():
        # An object holding nothing but a level reads better in the plain form the files use.
        if isinstance(entry, dict) and set(entry) == {ENFORCEMENT_LEVEL}:
            result[name] = entry[ENFORCEMENT_LEVEL]
    return result


def policy_changes(source: Mapping[str, Any], target: Mapping[str, Any]) -> list[Change]:
    changes = []
    for name in sorted(set(source) | set(target)):
        old, new = _properties(target.get(name)), _properties(source.get(name))
        for key in sorted(set(old) | set(new)):
            if old.get(key, _ABSENT) != new.get(key, _ABSENT):
                changes.append(Change(f"{name}.{key}", old.get(key, _ABSENT), new.get(key, _ABSENT)))
    return changes


def _read_policy_config(stack: str) -> dict[str, Any]:
    path = stack_config_path(stack)
    return load_pack_config(path) if path.is_file() else {}


# --- the promotion --------------------------------------------------------------------------


@dataclass(frozen=True)
class Promotion:
    source: str
    target: str
    stack_text: str
    new_stack_text: str
    stack_changes: list[Change]
    policy_config: dict[str, Any]
    new_policy_config: dict[str, Any]
    policy_changes: list[Change]
    # Why a promotable setting that differs was left out.
    notes: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.stack_changes or self.policy_changes)

    def report(self) -> list[str]:
        if self.empty:
            return [f"{self.target} has every promotable setting of {self.source}: nothing to promote", *self.notes]
        lines = [f"promote {self.source} -> {self.target}:"]
        if self.stack_changes:
            lines += [f"{stack_file(self.target).name}:", *(change.line() for change in self.stack_changes)]
        if self.policy_changes:
            path = stack_config_path(self.target)
            lines += [f"policy-pack/config/{path.name}:", *(change.line() for change in self.policy_changes)]
        return [*lines, *self.notes]


def _existing_cluster(text: str) -> bool:
    """Whether a stack file targets an existing cluster (sets meshlab:kubeconfig, encrypted or not)."""
    return _config(text).get(config_key("kubeconfig")) not in (None, "")


def _promoted_keys(source: str, source_text: str, target: str, target_text: str) -> tuple[list[str], list[str]]:
    """The keys to promote, and a note for each one left out that differs: settings only a cluster meshlab
    builds reads never move to or from an existing cluster."""
    keys = promotable_keys()
    existing = [stack for stack, text in ((source, source_text), (target, target_text)) if _existing_cluster(text)]
    if not existing or len(existing) == 2:
        return keys, []
    built_only = {config_key(name) for _, name in built_cluster_fields()}
    left_out = [
        change.where for change in stack_changes(source_text, target_text, [k for k in keys if k in built_only])
    ]
    why = (
        f"only a cluster meshlab builds reads it, and {existing[0]} is an existing cluster ({config_key('kubeconfig')})"
    )
    notes = [f"  not promoted: {key}: {why}" for key in left_out]
    return [key for key in keys if key not in built_only], notes


def plan_promotion(source: str, target: str) -> Promotion:
    if source == target:
        raise PromotionError("the source and the target are the same stack")
    for stack in (source, target):
        if not stack_file(stack).is_file():
            raise PromotionError(f"no stack file {stack_file(stack).name}")
    source_text, target_text = stack_file(source).read_text(), stack_file(target).read_text()
    keys, notes = _promoted_keys(source, source_text, target, target_text)
    changes = stack_changes(source_text, target_text, keys)
    new_text = promoted_stack_text(source_text, target_text, keys) if changes else target_text
    expected = {key: value for key, value in _config(target_text).items() if key not in keys}
    expected |= {key: value for key, value in _config(source_text).items() if key in keys}
    if _config(new_text) != expected:  # the line editor must never get a stack file wrong
        raise PromotionError(f"cannot edit {stack_file(target).name} safely; copy these keys by hand")
    try:
        source_policy, target_policy = _read_policy_config(source), _read_policy_config(target)
    except PolicyConfigError as error:
        raise PromotionError(str(error)) from None
    return Promotion(
        source=source,
        target=target,
        stack_text=target_text,
        new_stack_text=new_text,
        stack_changes=changes,
        policy_config=target_policy,
        new_policy_config=promoted_policy_config(source_policy, target_policy),
        policy_changes=policy_changes(source_policy, target_policy),
        notes=tuple(notes),
    )


def verify(promotion: Promotion) -> list[str]:
    """Refuse a result that fails validation or a mandatory policy; else the policy report."""
    with tempfile.TemporaryDirectory(prefix="meshlab-promote-") as folder:
        path = Path(folder) / stack_file(promotion.target).name
        path.write_text(promotion.new_stack_text)
        config = read_stack_file(path)
    try:
        settings_from_config(config, source=f"{stack_file(promotion.target).name} after the promotion")
    except SettingsError as error:
        raise PromotionError(str(error)) from None
    try:
        policies = resolve(promotion.new_policy_config)
    except PolicyConfigError as error:
        raise PromotionError(f"the promoted policy config is invalid: {error}") from None
    resources = policy_resources(render(config, promotion.target))
    violations = run_policies(resources, policies)
    report = policy_report_lines(promotion.target, "the promoted policy config", resources, violations)
    if any(violation.mandatory for violation in violations):
        raise PromotionError("the promoted stack violates a mandatory policy:\n" + "\n".join(report))
    return report


def write(promotion: Promotion) -> None:
    if promotion.stack_changes:
        stack_file(promotion.target).write_text(promotion.new_stack_text)
    if promotion.policy_changes:
        stack_config_path(promotion.target).write_text(json.dumps(promotion.new_policy_config, indent=2) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.promote", description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="the stack to promote from, e.g. lab")
    parser.add_argument("target", help="the stack to promote to, e.g. staging")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="write the promoted files (after the checks pass)")
    mode.add_argument("--check", action="store_true", help="exit 1 if TARGET lags SOURCE on a promotable setting")
    args = parser.parse_args(argv)
    try:
        promotion = plan_promotion(args.source, args.target)
        print("\n".join(promotion.report()))
        if args.check:
            if not promotion.empty:
                print(f"{args.target} lags {args.source}: run `python -m tools.promote {args.source} {args.target}`")
            return 0 if promotion.empty else EXIT_REFUSED
        if promotion.empty:
            return 0
        print("\n".join(verify(promotion)))
    except PromotionError as error:
        print(f"refused: {error}", file=sys.stderr)
        return EXIT_REFUSED
    if args.write:
        write(promotion)
        print(f"wrote {args.target}'s files")
    else:
        print(f"dry run: `python -m tools.promote {args.source} {args.target} --write` writes it")
    return 0


if __name__ == "__main__":
    from tools.cli import run

    run(main)
