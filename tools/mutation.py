"""Mutation testing of the core modules with Cosmic Ray, each module against the tests that cover it.

    python -m tools.mutation [--module NAME ...] [--jobs N] [--timeout S] [--fail-under PERCENT]

(`make mutation`.) For every target module, Cosmic Ray (cosmic-ray on PyPI) lists the mutants of the
file; each one is written into the file, the module's tests run (`pytest -x` on the test files TARGETS
names, the fastest first), and the file is put back. A mutant some test fails on is killed; one every
test passes survived: behaviour that can break with every test green. Prints one line per module
(score, killed, survived, inert) and every survivor.

Cosmic Ray mutates the file in place, so the run works on copies of the work tree in a temporary folder,
one per job: the tree being edited, and test runs others start in it, never see a mutant. The copies see
the reference data (../shared/reference or .cache/reference) and .cache/cloud-init through symlinks.
Each copy has a warm runner (_SERVER): a process that imported the tests' third-party libraries once and
forks one pytest run per mutant. Results go to .cache/mutation/: a Cosmic Ray session per module
(`cr-report .cache/mutation/NAME.sqlite` reads it) and NAME.survivors.txt with the diff of every survivor.

Operators: Cosmic Ray's core set (binary, comparison, unary and boolean operator replacements, an added
`not`, numbers +/- 1, break/continue swapped, exception types replaced, decorators removed, loops run
zero times) and three of ours, registered as the provider `meshlab` through Cosmic Ray's
operator-provider interface: `meshlab/ReplaceString` (a string literal gets XX at both ends, an empty
one becomes "XX", an f-string starts with XX), `meshlab/DeleteStatement` (a call, augmented assignment,
yield, raise, break or continue statement becomes `pass`) and `meshlab/ReplaceMembership` (`in` and
`not in` swapped). Mutants that cannot change behaviour by construction are skipped before any test
runs ("inert"): those inside annotations (postponed by `from __future__ import annotations`),
`Literal[...]` type aliases and docstrings, and the bare `*` or `/` of a signature. Survivors that are
equivalent are listed in docs/testing.md.

Exit status: 1 when a module scores below --fail-under (90 by default), 2 when a module's tests fail
before any mutation (a red baseline would count every mutant as killed).
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import cosmic_ray.plugins  # type: ignore[import-untyped]
import parso.python.tree
from cosmic_ray.commands import init  # type: ignore[import-untyped]
from cosmic_ray.mutating import use_mutation  # type: ignore[import-untyped]
from cosmic_ray.operators.operator import Example, Operator  # type: ignore[import-untyped]
from cosmic_ray.work_db import WorkDB, use_db  # type: ignore[import-untyped]
from cosmic_ray.work_item import TestOutcome, WorkerOutcome, WorkResult  # type: ignore[import-untyped]
from parso.python.tree import Keyword

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / ".cache" / "mutation"
# Cache folders the tests read, seen by the copies through symlinks.
SHARED_CACHES = (".cache/reference", ".cache/cloud-init")
COPY_IGNORE = shutil.ignore_patterns(
    "venv", ".git", ".cache", "__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".meshlab"
)
DEFAULT_FAIL_UNDER = 90.0
PROGRESS_EVERY = 50


@dataclass(frozen=True)
class Target:
    """A module to mutate and the pytest arguments (test files) that cover it."""

    path: str
    tests: tuple[str, ...]

    @property
    def name(self) -> str:
        return Path(self.path).stem


TARGETS = (
    Target(
        "policy-pack/meshlab_policy/pod_security.py",
        (
            "tests/test_policy_pod_security_checks.py",
            "tests/test_policy_pod_security.py",
            "tests/test_policy_config.py",
        ),
    ),
    Target(
        "policy-pack/meshlab_policy/mesh.py",
        ("tests/test_policy_mesh.py", "tests/test_policy_rules.py", "tests/test_policy_bridge.py"),
    ),
    Target(
        "config/validation.py", ("tests/test_validation.py", "tests/test_settings.py", "tests/test_qemu_backend.py")
    ),
    Target("components/cluster/files.py", ("tests/test_cluster_files.py", "tests/test_cluster_layer.py")),
    Target("config/loader.py", ("tests/test_loader.py", "tests/test_stack_file.py", "tests/test_settings.py")),
    Target("policy-pack/meshlab_policy/settings.py", ("tests/test_policy_settings.py", "tests/test_policy_config.py")),
    # Every file that feeds the reader a stack file of its own and asserts on what it reads (the rest of the
    # suite reads only the committed stacks, which test_stack_file reads too).
    Target(
        "config/stack_yaml.py",
        (
            "tests/test_loader.py",
            "tests/test_destroy_guard.py",
            "tests/test_stack_file.py",
            "tests/test_settings_traps.py",
            "tests/test_promote.py",
        ),
    ),
    # Every file that asserts on what the existing-hosts backend registers (prod runs on it, so other suites
    # render it too, and assert nothing of it; tests/test_existing_scripts.py runs the preflight's scripts only,
    # and tests/test_diff.py needs the git history, which the tree copies leave out).
    Target(
        "components/hosts/existing/hosts.py",
        ("tests/test_component_outputs.py", "tests/test_promote.py", "tests/test_existing_backend.py"),
    ),
)


# Our operators ---------------------------------------------------------------------------------

_STRING = re.compile(r"^(?P<prefix>[A-Za-z]*)(?P<quote>'''|\"\"\"|'|\")")
MARK = "XX"


def marked_string(literal: str) -> str:
    """A string literal's source with MARK at both ends of its text ("" becomes "XX")."""
    match = _STRING.match(literal)
    if match is None:
        raise ValueError(f"not a string literal: {literal!r}")
    quote = match["quote"]
    body = literal[match.end() : len(literal) - len(quote)]
    text = f"{MARK}{body}{MARK}" if body else MARK
    return f"{match['prefix']}{quote}{text}{quote}"


class ReplaceString(Operator):  # type: ignore[misc]
    """A string literal with MARK at both ends; an f-string with MARK at its start."""

    def mutation_positions(self, node: Any) -> Iterator[tuple[tuple[int, int], tuple[int, int]]]:
        if node.type in ("string", "fstring_start"):
            yield node.start_pos, node.end_pos

    def mutate(self, node: Any, index: int) -> Any:
        node.value = marked_string(node.value) if node.type == "string" else node.value + MARK
        return node

    @classmethod
    def examples(cls) -> tuple[Any, ...]:
        return (
            Example('x = "ab"', 'x = "XXabXX"'),
            Example("x = ''", "x = 'XX'"),
            Example('x = r"^a$"', 'x = r"XX^a$XX"'),
            Example('x = f"a{b}"', 'x = f"XXa{b}"'),
        )


_AUGMENTED = re.compile(r"^[-+*/%&|^@<>]{1,3}=$")


def _deletable(node: Any) -> bool:
    if node.parent is None or node.parent.type not in ("simple_stmt", "file_input"):
        return False
    if node.type == "atom_expr":  # a call whose value is dropped
        last = node.children[-1]
        return bool(last.type == "trailer" and last.children[0].value == "(")
    if node.type == "expr_stmt":
        return bool(_AUGMENTED.match(getattr(node.children[1], "value", "")))
    if node.type == "keyword":
        return bool(node.value in ("break", "continue"))
    return bool(node.type in ("yield_expr", "raise_stmt"))


class DeleteStatement(Operator):  # type: ignore[misc]
    """A statement that only acts (a call, `x += y`, a yield, raise, break or continue) becomes `pass`."""

    def mutation_positions(self, node: Any) -> Iterator[tuple[tuple[int, int], tuple[int, int]]]:
        if _deletable(node):
            yield node.start_pos, node.end_pos

    def mutate(self, node: Any, index: int) -> Any:
        return Keyword("pass", node.start_pos, prefix=node.get_first_leaf().prefix)

    @classmethod
    def examples(cls) -> tuple[Any, ...]:
        return (
            Example("found.append(x)\n", "pass\n"),
            Example("count += 1\n", "pass\n"),
            Example("def f():\n    yield from g()\n", "def f():\n    pass\n"),
        )


def _membership_tests(node: Any) -> Iterator[tuple[int, Any]]:
    if node.type == "comparison":
        for index in range(1, len(node.children), 2):
            if node.children[index].get_code().strip() in ("in", "not in"):
                yield index, node.children[index]


class ReplaceMembership(Operator):  # type: ignore[misc]
    """`in` becomes `not in` and `not in` becomes `in` (Cosmic Ray's comparison operators leave both alone)."""

    def mutation_positions(self, node: Any) -> Iterator[tuple[tuple[int, int], tuple[int, int]]]:
        for _, operator in _membership_tests(node):
            yield operator.start_pos, operator.end_pos

    def mutate(self, node: Any, index: int) -> Any:
        position, operator = list(_membership_tests(node))[index]
        prefix = operator.get_first_leaf().prefix
        if operator.get_code().strip() == "in":
            keywords = [
                Keyword("not", operator.start_pos, prefix=prefix),
                Keyword("in", operator.start_pos, prefix=" "),
            ]
            node.children[position] = parso.python.tree.PythonNode("comp_op", keywords)  # type: ignore[no-untyped-call]
        else:
            node.children[position] = Keyword("in", operator.start_pos, prefix=prefix)
        return node

    @classmethod
    def examples(cls) -> tuple[Any, ...]:
        return (Example("x = a in b", "x = a not in b"), Example("x = a not in b", "x = a in b"))


class MeshlabOperators:
    """Cosmic Ray operator provider `meshlab`."""

    OPERATORS: ClassVar[dict[str, type]] = {
        "ReplaceString": ReplaceString,
        "DeleteStatement": DeleteStatement,
        "ReplaceMembership": ReplaceMembership,
    }

    def __iter__(self) -> Iterator[str]:
        return iter(self.OPERATORS)

    def __getitem__(self, name: str) -> type:
        return self.OPERATORS[name]


def register_operators() -> None:
    cosmic_ray.plugins.OPERATOR_PROVIDERS["meshlab"] = MeshlabOperators()


# Mutants skipped before any test runs ----------------------------------------------------------

Position = tuple[int, int]  # (line from 1, column in characters), as Cosmic Ray (parso) gives them


def _position(lines: Sequence[bytes], line: int, byte_column: int) -> Position:
    """ast's (line, UTF-8 byte offset) as (line, character offset)."""
    return line, len(lines[line - 1][:byte_column].decode())


def inert_spans(source: str) -> list[tuple[Position, Position]]:
    """Where a mutation cannot change behaviour: annotations, `Literal[...]`, docstrings, and the bare `*`
    or `/` of a signature (no operator at all)."""
    lines = source.encode().splitlines()
    nodes: list[ast.AST] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            arguments = node.args
            every = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]
            every += [arg for arg in (arguments.vararg, arguments.kwarg) if arg is not None]
            nodes += [arg.annotation for arg in every if arg.annotation is not None]
            nodes += [node.returns] if node.returns is not None else []
        elif isinstance(node, ast.AnnAssign):
            nodes.append(node.annotation)
        elif isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == "Literal":
            nodes.append(node)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                nodes.append(first)
    tree = parso.parse(source)  # type: ignore[no-untyped-call]
    spans = [(leaf.start_pos, leaf.end_pos) for leaf in _leaves(tree) if _is_signature_marker(leaf)]
    for node in nodes:
        end_line, end_column = getattr(node, "end_lineno", None), getattr(node, "end_col_offset", None)
        if end_line is None or end_column is None:  # pragma: no cover - every node here has an end
            continue
        spans.append(
            (
                _position(lines, getattr(node, "lineno", 1), getattr(node, "col_offset", 0)),
                _position(lines, end_line, end_column),
            )
        )
    return spans


def _leaves(node: Any) -> Iterator[Any]:
    if hasattr(node, "children"):
        for child in node.children:
            yield from _leaves(child)
    else:
        yield node


def _is_signature_marker(leaf: Any) -> bool:
    """The bare `*` or `/` of a signature, which Cosmic Ray's binary operators take for a multiplication."""
    return bool(leaf.type == "operator" and leaf.value in ("*", "/") and leaf.parent.type == "parameters")


def is_inert(start: Position, spans: Sequence[tuple[Position, Position]]) -> bool:
    return any(first <= start < last for first, last in spans)


# The run ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Survivor:
    line: int
    operator: str
    before: str
    after: str
    diff: str


@dataclass(frozen=True)
class Score:
    target: Target
    killed: int
    survived: int
    incompetent: int
    skipped: int
    seconds: float
    survivors: tuple[Survivor, ...]

    @property
    def tested(self) -> int:
        return self.killed + self.survived

    @property
    def percent(self) -> float:
        return 100.0 * self.killed / self.tested if self.tested else 100.0


def copy_tree(destination: Path) -> Path:
    """A copy of the work tree at destination/main, with what the tests read from outside it linked in."""
    tree = destination / "main"
    shutil.copytree(ROOT, tree, ignore=COPY_IGNORE, symlinks=True)
    shared = ROOT.parent / "shared"
    if shared.is_dir():
        (destination / "shared").symlink_to(shared, target_is_directory=True)
    for cache in SHARED_CACHES:
        if (ROOT / cache).is_dir():
            (tree / cache).parent.mkdir(parents=True, exist_ok=True)
            (tree / cache).symlink_to(ROOT / cache, target_is_directory=True)
    return tree


# Run with `python -c` in a tree copy: imports the suite's third-party libraries once (none of the
# project's modules), then forks a child per test run that runs pytest as `python -m pytest` would from
# the tree, so each run pays for importing the project only. One JSON request per line on stdin.
_SERVER = r"""
import json, os, signal, sys, time
for name in sys.argv[1].split(","):
    __import__(name)
sys.dont_write_bytecode = True
sys.stdout.write("ready\n")
sys.stdout.flush()
for line in sys.stdin:
    request = json.loads(line)
    pid = os.fork()
    if pid == 0:
        code = 3
        try:
            os.setsid()
            null = os.open(os.devnull, os.O_RDONLY)
            log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(null, 0)
            os.dup2(log, 1)
            os.dup2(log, 2)
            import pytest
            code = int(pytest.main(request["args"]))
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)
    deadline = time.monotonic() + request["timeout"]
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            answer = {"exit": os.waitstatus_to_exitcode(status)}
            break
        if time.monotonic() > deadline:
            os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            answer = {"exit": None}
            break
        time.sleep(0.005)
    try:
        os.killpg(pid, signal.SIGKILL)  # whatever the tests left running
    except ProcessLookupError:
        pass
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()
"""
# What the tests import from outside the project (loaded once per runner, before any fork).
PRELOAD = (
    "pytest",
    "yaml",
    "pydantic",
    "jsonschema",
    "kubernetes_validate",
    "pulumi",
    "pulumi_kubernetes",
    "pulumi_command",
    "pulumi_random",
    "pulumi_tls",
    "pulumi_policy",
)
OUTPUT_KEPT = 4000


class Runner:
    """A warm pytest runner for one tree copy (see _SERVER)."""

    def __init__(self, tree: Path) -> None:
        self.tree = tree
        self.log = tree.parent / "pytest.log"
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        self.process = subprocess.Popen(
            [sys.executable, "-c", _SERVER, ",".join(PRELOAD)],
            cwd=tree,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        if self._read() != "ready":
            raise RuntimeError(f"the test runner in {tree} did not start")

    def _read(self) -> str:
        assert self.process.stdout is not None
        return self.process.stdout.readline().strip()

    def run(self, args: Sequence[str], timeout: float) -> tuple[Any, str]:
        """(Cosmic Ray's test outcome, the end of pytest's output) of `pytest ARGS` in the tree."""
        assert self.process.stdin is not None
        request = {"args": list(args), "timeout": timeout, "log": str(self.log)}
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        answer = json.loads(self._read())
        output = self.log.read_text(errors="replace")[-OUTPUT_KEPT:]
        if answer["exit"] is None:
            return TestOutcome.KILLED, f"timeout after {timeout:.0f} s\n{output}"
        return (TestOutcome.SURVIVED if answer["exit"] == 0 else TestOutcome.KILLED), output

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=60)


def pytest_args(target: Target) -> list[str]:
    """Stop at the first failure; plain asserts: only the verdict counts, and rewriting every test module
    on every run (no bytecode is written) costs more than the tests of a small module."""
    return ["-x", "-q", "--no-header", "--assert=plain", "-p", "no:cacheprovider", *target.tests]


def _diff(original: str, mutated: str, path: str) -> str:
    lines = difflib.unified_diff(
        original.split("\n"), mutated.split("\n"), fromfile=f"a/{path}", tofile=f"b/{path}", lineterm=""
    )
    return "\n".join(lines)


def try_mutant(item: Any, runner: Runner, target: Target, timeout: float) -> Any:
    """Cosmic Ray's WorkResult of one mutant, written into the runner's tree for the duration of the run."""
    mutation = item.mutations[0]
    operator = cosmic_ray.plugins.get_operator(mutation.operator_name)(**mutation.operator_args)
    path = runner.tree / target.path
    try:
        with use_mutation(path, operator, mutation.occurrence) as (original, mutated):
            if mutated is None:
                return WorkResult(worker_outcome=WorkerOutcome.NO_TEST)
            outcome, output = runner.run(pytest_args(target), timeout)
    except Exception:  # an operator that cannot make its mutant (as mutate_and_test reports it)
        return WorkResult(
            worker_outcome=WorkerOutcome.EXCEPTION, test_outcome=TestOutcome.INCOMPETENT, output=traceback.format_exc()
        )
    return WorkResult(
        worker_outcome=WorkerOutcome.NORMAL,
        test_outcome=outcome,
        output=output,
        diff=_diff(original, mutated, target.path),
    )


def _survivor(item: Any, result: Any, source_lines: Sequence[str]) -> Survivor:
    mutation = item.mutations[0]
    line = int(mutation.start_pos[0])
    diff = str(result.diff or "")
    added = [text[1:].strip() for text in diff.splitlines() if text.startswith("+") and not text.startswith("++")]
    return Survivor(
        line=line,
        operator=str(mutation.operator_name),
        before=source_lines[line - 1].strip(),
        after=" / ".join(added) or "(no change shown)",
        diff=diff,
    )


def run_target(target: Target, runners: Sequence[Runner], timeout: float | None) -> Score:
    started = time.monotonic()
    module = ROOT / target.path
    missing = [test for test in target.tests if not (ROOT / test).is_file()]
    if missing:
        raise SystemExit(f"{target.path}: test files missing: {', '.join(missing)}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    database = RESULTS / f"{target.name}.sqlite"
    database.unlink(missing_ok=True)

    baseline_started = time.monotonic()
    outcome, output = runners[0].run(pytest_args(target), 900)
    baseline = time.monotonic() - baseline_started
    if outcome != TestOutcome.SURVIVED:
        print(output, file=sys.stderr)
        print(f"{target.path}: the tests fail before any mutation; fix them first", file=sys.stderr)
        raise SystemExit(2)
    limit = timeout or max(60.0, 5 * baseline)

    source = module.read_text()
    spans = inert_spans(source)
    with use_db(str(database), WorkDB.Mode.create) as db:
        init([module], db, {})
        pending = list(db.pending_work_items)
        work: list[Any] = []
        for item in pending:
            if is_inert(tuple(item.mutations[0].start_pos), spans):
                db.set_result(
                    item.job_id, WorkResult(worker_outcome=WorkerOutcome.SKIPPED, output="inert: annotation, docstring")
                )
            else:
                work.append(item)
        print(
            f"{target.path}: {len(work)} mutants ({len(pending) - len(work)} inert, skipped), "
            f"tests {' '.join(target.tests)} ({baseline:.1f} s unmutated)",
            flush=True,
        )

        free: queue.Queue[Runner] = queue.Queue()
        for runner in runners:
            free.put(runner)

        def test_one(item: Any) -> tuple[str, Any]:
            runner = free.get()
            try:
                return str(item.job_id), try_mutant(item, runner, target, limit)
            finally:
                free.put(runner)

        done = 0
        with ThreadPoolExecutor(max_workers=len(runners)) as pool:
            futures = [pool.submit(test_one, item) for item in work]
            for future in as_completed(futures):
                job_id, result = future.result()
                db.set_result(job_id, result)
                done += 1
                if done % PROGRESS_EVERY == 0:
                    print(f"  {target.name}: {done}/{len(work)}", flush=True)

        killed = survived = incompetent = skipped = 0
        survivors = []
        source_lines = source.splitlines()
        for item, result in db.completed_work_items:
            if result.worker_outcome in (WorkerOutcome.SKIPPED, WorkerOutcome.NO_TEST):
                skipped += 1
            elif result.worker_outcome != WorkerOutcome.NORMAL or result.test_outcome == TestOutcome.INCOMPETENT:
                incompetent += 1
            elif result.test_outcome == TestOutcome.SURVIVED:
                survived += 1
                survivors.append(_survivor(item, result, source_lines))
            else:
                killed += 1
    survivors.sort(key=lambda s: (s.line, s.operator))
    report = RESULTS / f"{target.name}.survivors.txt"
    report.write_text("".join(f"line {s.line} {s.operator}\n{s.diff}\n\n" for s in survivors))
    return Score(target, killed, survived, incompetent, skipped, time.monotonic() - started, tuple(survivors))


def _format(score: Score) -> str:
    extra = f", {score.incompetent} incompetent" if score.incompetent else ""
    return (
        f"{score.target.path}: {score.percent:.1f} % killed ({score.killed} of {score.tested}; "
        f"{score.survived} survived{extra}; {score.skipped} inert skipped) in {score.seconds:.0f} s"
    )


def _report(score: Score) -> Score:
    print(_format(score))
    for survivor in score.survivors:
        print(f"  survived: line {survivor.line} {survivor.operator}: {survivor.before}  ->  {survivor.after}")
    sys.stdout.flush()
    return score


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--module", action="append", default=[], help="a target's file stem, e.g. mesh (repeatable)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="mutants tested at once")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per mutant (default: 5x the baseline)")
    parser.add_argument("--fail-under", type=float, default=DEFAULT_FAIL_UNDER, help="minimum score per module")
    args = parser.parse_args(argv)
    known = {target.name: target for target in TARGETS}
    unknown = [name for name in args.module if name not in known]
    if unknown:
        parser.error(f"unknown module {', '.join(unknown)}; targets: {', '.join(known)}")
    targets = [known[name] for name in args.module] or list(TARGETS)

    register_operators()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="meshlab-mutation-") as temporary:
        trees = [copy_tree(Path(temporary) / f"job{index}") for index in range(max(1, args.jobs))]
        runners = [Runner(tree) for tree in trees]
        try:
            scores = [_report(run_target(target, runners, args.timeout)) for target in targets]
        finally:
            for runner in runners:
                runner.close()
    print(f"\nmutation scores ({time.monotonic() - started:.0f} s, {max(1, args.jobs)} jobs):")
    for score in scores:
        print(f"  {score.percent:5.1f} %  {score.target.path}")
    low = [score for score in scores if score.percent < args.fail_under]
    if low:
        print(f"below {args.fail_under:g} %: {', '.join(score.target.path for score in low)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
