"""The offline plan diff: a stack rendered at a git ref against the same stack in the working tree.

`tools.plan STACK --diff REF` is the command; this module renders both sides and compares them.
The ref is unpacked with `git archive` into a temporary directory (the working tree and the
index stay untouched) and rendered there, in a subprocess, by `tools/snapshot.py`: with the
ref's own program, settings and stack file (with this checkout's interpreter and installed
packages). The working tree is rendered in-process meanwhile.

What counts: resources (what a provider creates, updates or deletes), matched by URN and
compared by their inputs. meshlab's own components (`meshlab:<layer>:<Type>`) have no provider
operations; their inputs (e.g. IstioAmbient's `version`) are reported in a separate section, so
a version bump lists the releases it changes and nothing else. A changed URN (renamed, or moved
to another parent) reads as one removal and one addition, as `pulumi preview` shows it without
an alias.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any

from tools.graph import is_component
from tools.snapshot import EXIT_INVALID_CONFIG, SECRET_PREFIX, snapshot

ROOT = Path(__file__).resolve().parent.parent
SNAPSHOT_SCRIPT = ROOT / "tools" / "snapshot.py"
SECRET = "[secret]"
# Longest single-line value shown in Markdown, and most changed lines shown of a multi-line one.
MAX_VALUE_CHARS = 100
MAX_TEXT_LINES = 12
# Added or removed lists longer than this fold into a <details> block.
FOLD_AFTER = 15
# More resources than this with the very same changes are listed as one group.
GROUP_AFTER = 3


class DiffError(Exception):
    """A side of the diff that cannot be rendered: unknown ref, or invalid settings there."""


@dataclass(frozen=True)
class Secret:
    """A secret input: equal to another when their values were; always shown as "[secret]"."""

    digest: str


class _Absent:
    def __repr__(self) -> str:
        return "(absent)"


ABSENT: Any = _Absent()


@dataclass(frozen=True)
class InputChange:
    path: str
    old: Any
    new: Any


@dataclass(frozen=True)
class Entry:
    urn: str
    type: str
    name: str
    parent: str
    component: bool
    inputs: Any

    @property
    def component_name(self) -> str:
        """Name of the component this resource belongs to ("" at the stack's top level)."""
        parent = self.parent.rsplit("::", 1)[-1]
        return "" if self.parent.split("::")[-2].endswith("pulumi:pulumi:Stack") else parent


@dataclass(frozen=True)
class Changed:
    entry: Entry
    changes: tuple[InputChange, ...]


@dataclass
class PlanDiff:
    stack: str
    ref: str
    # What the ref is compared with: the working tree, or the config file given instead.
    against: str = "working tree"
    added: list[Entry] = field(default_factory=list)
    removed: list[Entry] = field(default_factory=list)
    changed: list[Changed] = field(default_factory=list)
    components_added: list[Entry] = field(default_factory=list)
    components_removed: list[Entry] = field(default_factory=list)
    components_changed: list[Changed] = field(default_factory=list)
    resources_after: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (
            self.added
            or self.removed
            or self.changed
            or self.components_added
            or self.components_removed
            or self.components_changed
        )


# --- rendering both sides -------------------------------------------------------------------


def _git(*args: str) -> bytes:
    result = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, check=False)
    if result.returncode != 0:
        raise DiffError(f"git {' '.join(args)}: {result.stderr.decode().strip()}")
    return result.stdout


def resolve_ref(ref: str) -> str:
    try:
        return _git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").decode().strip()
    except DiffError:
        raise DiffError(f"{ref!r} is not a commit of the repository at {ROOT}") from None


def unpack(commit: str, destination: Path) -> None:
    """The tree of `commit` into `destination`, without touching the working tree or the index."""
    archive = _git("archive", "--format=tar", commit)
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(destination, filter="data")


def start_snapshot(tree: Path, stack: str) -> subprocess.Popen[str]:
    """Render `stack` from `tree` in a subprocess that imports nothing from this working tree."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    return subprocess.Popen(
        [sys.executable, str(SNAPSHOT_SCRIPT), str(tree), stack],
        cwd=tree,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish_snapshot(process: subprocess.Popen[str], where: str) -> dict[str, Any]:
    stdout, stderr = process.communicate()
    if process.returncode == EXIT_INVALID_CONFIG:
        raise DiffError(f"at {where}: {stderr.strip()}")
    if process.returncode != 0:
        if re.search(r"No module named '(tools|config)(\.render|\.loader)?'", stderr):
            raise DiffError(f"{where} predates the offline renderer (tools/render.py): compare with a later commit")
        tail = "\n".join(stderr.strip().splitlines()[-20:])
        raise DiffError(f"cannot render the stack at {where}:\n{tail}")
    document: dict[str, Any] = json.loads(stdout)
    return document


def render_both(stack: str, ref: str, config_file: Path | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(old, new) snapshots: `stack` at `ref`, and in the working tree (or with `config_file`).

    Raises DiffError for an unknown ref or settings that are invalid at the ref, and the working
    tree's SettingsError for settings invalid in the working tree."""
    commit = resolve_ref(ref)
    with tempfile.TemporaryDirectory(prefix="meshlab-diff-") as tree:
        unpack(commit, Path(tree))
        process = start_snapshot(Path(tree), stack)
        try:
            new = snapshot(stack, config_file)
        except BaseException:
            process.kill()
            process.communicate()
            raise
        old = finish_snapshot(process, ref)
    return old, new


# --- comparing ------------------------------------------------------------------------------


def _loaded(value: Any) -> Any:
    """Snapshot values with each "[secret:DIGEST]" turned into a Secret."""
    if isinstance(value, str) and value.startswith(SECRET_PREFIX) and value.endswith("]"):
        return Secret(value[len(SECRET_PREFIX) : -1])
    if isinstance(value, dict):
        return {key: _loaded(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_loaded(item) for item in value]
    return value


def entries(document: Mapping[str, Any]) -> dict[str, Entry]:
    return {
        r["urn"]: Entry(
            r["urn"], r["type"], r["name"], r["parent"], is_component(r["type"], r["custom"]), _loaded(r["inputs"])
        )
        for r in document.get("resources", [])
    }


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def input_changes(old: Any, new: Any, path: str = "") -> Iterator[InputChange]:
    """Every leaf where `old` and `new` differ; key order never matters, list order does."""
    if old == new:
        return
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            yield from input_changes(old.get(key, ABSENT), new.get(key, ABSENT), _join(path, key))
    elif isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for index, (old_item, new_item) in enumerate(zip(old, new, strict=True)):
            yield from input_changes(old_item, new_item, f"{path}[{index}]")
    else:
        yield InputChange(path or "(inputs)", old, new)


# The backends' components before they showed meshlab:hypervisor in their inputs (older refs).
_BACKEND_OF_COMPONENT = {"meshlab:hosts:LabHosts": "virtualbox", "meshlab:hosts:QemuHosts": "qemu"}


def hosts_backend(side: Mapping[str, Entry]) -> str | None:
    """What the stack's nodes run on (meshlab:hypervisor), from its hosts component."""
    for entry in side.values():
        if entry.component and entry.name == "hosts" and entry.type.startswith("meshlab:hosts:"):
            backend = entry.inputs.get("hypervisor") or _BACKEND_OF_COMPONENT.get(entry.type, entry.type)
            return str(backend)
    return None


def backend_notes(before: Mapping[str, Entry], after: Mapping[str, Entry]) -> list[str]:
    """The hosts backend, always: a change of it moves every node to other machines."""
    old, new = hosts_backend(before), hosts_backend(after)
    if new is None:
        return []
    if old is not None and old != new:
        return [
            f"hosts backend: {old} -> {new}: every node moves to other machines, and every node step runs again there"
        ]
    return [f"hosts backend: {new}"]


def compare(old: Mapping[str, Any], new: Mapping[str, Any], ref: str, against: str = "working tree") -> PlanDiff:
    before, after = entries(old), entries(new)
    result = PlanDiff(stack=str(new.get("stack", old.get("stack", ""))), ref=ref, against=against)
    result.resources_after = sum(not entry.component for entry in after.values())
    if old.get("absent"):
        result.notes.append(f"the stack has no stack file at {ref}: everything is new")
    result.notes += backend_notes(before, after)
    for urn in sorted(set(after) - set(before)):
        (result.components_added if after[urn].component else result.added).append(after[urn])
    for urn in sorted(set(before) - set(after)):
        (result.components_removed if before[urn].component else result.removed).append(before[urn])
    for urn in sorted(set(before) & set(after)):
        changes = tuple(input_changes(before[urn].inputs, after[urn].inputs))
        if changes:
            target = result.components_changed if after[urn].component else result.changed
            target.append(Changed(after[urn], changes))
    return result


# --- presenting -----------------------------------------------------------------------------


def plain(value: Any) -> Any:
    """A value as JSON shows it: secrets as "[secret]", absent as None."""
    if isinstance(value, Secret):
        return SECRET
    if value is ABSENT:
        return None
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def _entry_json(entry: Entry) -> dict[str, str]:
    return {"urn": entry.urn, "type": entry.type, "name": entry.name}


def _change_json(change: InputChange) -> dict[str, Any]:
    item: dict[str, Any] = {"path": change.path}
    if change.old is not ABSENT:
        item["old"] = plain(change.old)
    if change.new is not ABSENT:
        item["new"] = plain(change.new)
    if isinstance(change.old, Secret) or isinstance(change.new, Secret):
        item["secret"] = True
    return item


def _changed_json(changed: Changed) -> dict[str, Any]:
    return {**_entry_json(changed.entry), "changes": [_change_json(c) for c in changed.changes]}


def diff_document(diff: PlanDiff) -> dict[str, Any]:
    return {
        "stack": diff.stack,
        "ref": diff.ref,
        "against": diff.against,
        "summary": {
            "add": len(diff.added),
            "remove": len(diff.removed),
            "change": len(diff.changed),
            "resources": diff.resources_after,
        },
        "added": [_entry_json(e) for e in diff.added],
        "removed": [_entry_json(e) for e in diff.removed],
        "changed": [_changed_json(c) for c in diff.changed],
        "components": {
            "added": [_entry_json(e) for e in diff.components_added],
            "removed": [_entry_json(e) for e in diff.components_removed],
            "changed": [_changed_json(c) for c in diff.components_changed],
        },
        "notes": diff.notes,
    }


def code(text: str) -> str:
    """`text` as a Markdown code span, whatever backticks it holds."""
    fence = "`"
    while fence in text:
        fence += "`"
    padding = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{padding}{text}{padding}{fence}"


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(plain(value), sort_keys=True)


def shown(value: Any) -> str:
    if value is ABSENT:
        return "(absent)"
    if isinstance(value, Secret):
        return code(SECRET)
    text = _text(value)
    if len(text) > MAX_VALUE_CHARS:
        text = text[: MAX_VALUE_CHARS - 1] + "…"
    return code(text)


def shown_pair(old: Any, new: Any) -> tuple[str, str]:
    """Both values; when one is too long to show whole, the part where they differ, with some context."""
    if isinstance(old, Secret | _Absent) or isinstance(new, Secret | _Absent):
        return shown(old), shown(new)
    old_text, new_text = _text(old), _text(new)
    if max(len(old_text), len(new_text)) <= MAX_VALUE_CHARS:
        return shown(old), shown(new)
    prefix = 0
    while prefix < min(len(old_text), len(new_text)) and old_text[prefix] == new_text[prefix]:
        prefix += 1
    suffix = 0
    while (
        suffix < min(len(old_text), len(new_text)) - prefix
        and old_text[len(old_text) - 1 - suffix] == new_text[len(new_text) - 1 - suffix]
    ):
        suffix += 1
    context = 20
    start = max(prefix - context, 0)

    def window(text: str) -> str:
        end = min(len(text) - suffix + context, len(text))
        part = text[start:end]
        if len(part) > MAX_VALUE_CHARS:
            part = part[: MAX_VALUE_CHARS - 1] + "…"
        return code(("…" if start else "") + part + ("…" if end < len(text) else ""))

    return window(old_text), window(new_text)


def _change_lines(change: InputChange, indent: str) -> list[str]:
    old, new = change.old, change.new
    if isinstance(old, str) and isinstance(new, str) and ("\n" in old or "\n" in new):
        changed = [
            line
            for line in difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=0)
            if not line.startswith(("---", "+++", "@@"))
        ]
        more = len(changed) - MAX_TEXT_LINES
        body = changed[:MAX_TEXT_LINES] + ([f"... {more} more changed lines"] if more > 0 else [])
        fence = "```"
        while any(fence in line for line in body):
            fence += "`"
        return [
            f"{indent}- {code(change.path)}: text changed",
            "",
            f"{indent}  {fence}diff",
            *(f"{indent}  {line}" for line in body),
            f"{indent}  {fence}",
            "",
        ]
    note = " (the secret's value changed)" if isinstance(old, Secret) and isinstance(new, Secret) else ""
    old_shown, new_shown = shown_pair(old, new)
    return [f"{indent}- {code(change.path)}: {old_shown} -> {new_shown}{note}"]


def _label(entry: Entry) -> str:
    where = f" in {code(entry.component_name)}" if entry.component_name else ""
    return f"{code(entry.name)} ({entry.type}){where}"


def _entry_list(title: str, items: Sequence[Entry]) -> list[str]:
    if not items:
        return []
    lines = [f"- {_label(entry)}" for entry in items]
    if len(items) > FOLD_AFTER:
        return [f"<details><summary>{title} ({len(items)})</summary>", "", *lines, "", "</details>", ""]
    return [f"#### {title} ({len(items)})", "", *lines, ""]


def _changed_list(title: str, items: Sequence[Changed]) -> list[str]:
    """Each changed resource with its changes; many with the same changes (a rotated key that
    every remote step logs in with) as one group."""
    if not items:
        return []
    groups: dict[tuple[str, ...], list[Changed]] = {}
    for changed in items:
        key = tuple(line for change in changed.changes for line in _change_lines(change, "  "))
        groups.setdefault(key, []).append(changed)
    lines = [f"#### {title} ({len(items)})", ""]
    for changed in items:
        key = tuple(line for change in changed.changes for line in _change_lines(change, "  "))
        members = groups[key]
        if len(members) > GROUP_AFTER:
            if members[0] is not changed:
                continue
            types = Counter(member.entry.type for member in members)
            kinds = ", ".join(f"{count} {type_token}" for type_token, count in sorted(types.items()))
            lines.append(f"- {len(members)} resources with the same changes ({kinds}):")
            lines.append("  " + ", ".join(code(member.entry.name) for member in members))
        else:
            lines.append(f"- {_label(changed.entry)}")
        lines += key
    return [*lines, ""]


def markdown(diff: PlanDiff, policy_lines: Sequence[str] = ()) -> str:
    """The diff as the Markdown a pull-request comment shows."""
    lines = [f"### Stack {code(diff.stack)}: {code(diff.ref)} -> {diff.against}", ""]
    lines += [f"_{note}_" for note in diff.notes]
    if diff.notes:
        lines.append("")
    if diff.empty:
        lines += ["No changes.", ""]
    else:
        lines += [
            f"**{len(diff.added)} to add, {len(diff.changed)} to change, {len(diff.removed)} to remove** "
            f"({diff.resources_after} resources after the change).",
            "",
        ]
        lines += _changed_list("Changed", diff.changed)
        lines += _entry_list("Added", diff.added)
        lines += _entry_list("Removed", diff.removed)
        component_lines = (
            _changed_list("Components with changed inputs", diff.components_changed)
            + _entry_list("Components added", diff.components_added)
            + _entry_list("Components removed", diff.components_removed)
        )
        if component_lines:
            lines += [
                "<details><summary>Components (groupings of the resources above; no provider acts on them)</summary>",
                "",
                *component_lines,
                "</details>",
                "",
            ]
    if policy_lines:
        lines += ["#### Policy check of the new state", "", "```", *policy_lines, "```", ""]
    return "\n".join(lines).rstrip() + "\n"
