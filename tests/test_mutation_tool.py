"""The mutation driver's own parts (tools/mutation.py): its operators make the mutants they say, through
Cosmic Ray's machinery, and what it skips as inert is only what cannot change behaviour."""

from __future__ import annotations

import pytest
from cosmic_ray.mutating import mutate_code  # type: ignore[import-untyped]

from tools import mutation
from tools.mutation import DeleteStatement, ReplaceMembership, ReplaceString, inert_spans, is_inert, marked_string


@pytest.mark.parametrize("operator", [ReplaceString, DeleteStatement, ReplaceMembership])
def test_each_operator_makes_its_examples(operator):
    for example in operator.examples():
        mutated = mutate_code(example.pre_mutation_code, operator(), example.occurrence)
        assert mutated == example.post_mutation_code, example


@pytest.mark.parametrize(
    ("literal", "marked"),
    [
        ('"a"', '"XXaXX"'),
        ("''", "'XX'"),
        ('b"\\n"', 'b"XX\\nXX"'),
        ('"""doc"""', '"""XXdocXX"""'),
        ("R'x'", "R'XXxXX'"),
    ],
)
def test_a_marked_string_keeps_its_prefix_and_quotes(literal, marked):
    assert marked_string(literal) == marked
    assert compile(marked, "<mutant>", "eval")  # still a valid literal


def test_statements_that_only_bind_or_return_are_not_deleted():
    code = "def f(x):\n    y = g(x)\n    return y\n"
    assert mutate_code(code, DeleteStatement(), 0) is None
    assert (
        mutate_code("def f():\n    g()\n    return 1\n", DeleteStatement(), 0) == "def f():\n    pass\n    return 1\n"
    )


def test_the_membership_operator_swaps_each_test_once():
    code = "x = a in b and c not in d\n"
    assert mutate_code(code, ReplaceMembership(), 0) == "x = a not in b and c not in d\n"
    assert mutate_code(code, ReplaceMembership(), 1) == "x = a in b and c in d\n"
    assert mutate_code(code, ReplaceMembership(), 2) is None


SOURCE = '''"""Module docstring."""
from typing import Literal

Role = Literal["a", "b"]
LIMIT: int = 3


def f(x: str | None, *, y: int = 1) -> str | None:
    """Function docstring."""
    return x if y > LIMIT else "z"


def g(a="é", b: int = 2): ...
'''


def test_only_annotations_literal_aliases_docstrings_and_signature_markers_are_inert():
    spans = inert_spans(SOURCE)
    lines = SOURCE.splitlines()

    def inert(line: int, text: str) -> bool:
        return is_inert((line, lines[line - 1].index(text)), spans)

    assert inert(1, '"""Module')
    assert inert(4, '"a"')
    assert inert(5, "int")
    assert inert(8, "str |") and inert(8, "str | None:")  # the parameter's and the return annotation
    assert inert(8, "*,")
    assert inert(9, '"""Function')
    # Behaviour stays mutable: the default, the comparison, the constant's value and the strings.
    assert not inert(8, "1)")
    assert not inert(10, ">")
    assert not inert(5, "3")
    assert not inert(10, '"z"')
    # Columns count characters, as Cosmic Ray's positions do, not UTF-8 bytes ("é" is two).
    assert inert(13, "int")
    assert not inert(13, '"é"') and not inert(13, "2)")


def test_every_target_names_its_module_and_existing_test_files():
    names = [target.name for target in mutation.TARGETS]
    assert len(names) == len(set(names)) == 8
    for target in mutation.TARGETS:
        assert (mutation.ROOT / target.path).is_file(), target.path
        assert target.tests and all((mutation.ROOT / test).is_file() for test in target.tests), target.path
