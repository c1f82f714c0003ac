"""Each stage package has a public face: `__all__` lists the entry points the workflow scripts, the tests and the
benchmarks use, each documents its parameters and what it returns (numpydoc), and callers import them from the
package, so splitting a module inside a stage breaks no caller.

A face may also export a value (a table's column names, a default, a type alias): it has no docstring of its own
(it would show its type's), so the module defining it documents it with a `#:` comment right above its assignment,
the comment Sphinx's autodoc reads for a module attribute."""

from __future__ import annotations

import ast
import importlib
import inspect
import re

import pytest

from conftest import REPO

FACES = (
    "mrdtrack.inputs", "mrdtrack.counting", "mrdtrack.calling", "mrdtrack.outcomes", "mrdtrack.report",
    "mrdtrack.simulation",
)  # fmt: skip
CALLERS = ("workflow/scripts", "tests", "benchmarks")


def entry_points() -> list[tuple[str, str]]:
    return [(face, name) for face in FACES for name in importlib.import_module(face).__all__]


def is_value(entry: object) -> bool:
    """A constant or a type alias rather than a class or a function."""
    return not (inspect.isclass(entry) or inspect.isroutine(entry))


def imported_from(face: str, name: str) -> str:
    """The module a face's `__init__` imports `name` from (a value carries no `__module__` of its own)."""
    tree = ast.parse(inspect.getsource(importlib.import_module(face)))
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and any((a.asname or a.name) == name for a in node.names):
            return node.module or ""
    raise AssertionError(f"{face} does not import {name}")


def defined_in(face: str, name: str) -> str:
    entry = getattr(importlib.import_module(face), name)
    return imported_from(face, name) if is_value(entry) else entry.__module__


def value_comment(source: str, name: str) -> str:
    """The `#:` comment lines right above the module-level assignment of `name` ('' when there are none)."""
    lines = source.splitlines()
    for node in ast.parse(source).body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            above = lines[: node.lineno - 1]
            comment = []
            while above and above[-1].lstrip().startswith("#:"):
                comment.insert(0, above.pop().lstrip().removeprefix("#:").strip())
            return " ".join(comment).strip()
    raise AssertionError(f"no module-level assignment of {name}")


def section(doc: str, heading: str) -> str:
    """The text of a numpydoc section ('' when absent)."""
    match = re.search(rf"^{heading}\n-+\n(.*?)(?=^\w[\w ]*\n-+\n|\Z)", doc, flags=re.M | re.S)
    return match.group(1) if match else ""


def documented_names(parameters: str) -> set[str]:
    """The names a numpydoc Parameters section describes (`name : type`, or `a, b : type` for several)."""
    heads = [line.split(" : ")[0] for line in parameters.splitlines() if line and not line[0].isspace()]
    return {name.strip() for head in heads for name in head.split(",")}


def parameters_of(entry: object) -> list[str]:
    try:
        signature = inspect.signature(entry)
    except ValueError:  # a builtin exception's constructor
        return []
    plain = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [p.name for p in signature.parameters.values() if p.kind in plain]


@pytest.mark.parametrize("face", FACES)
def test_a_face_exports_only_names_of_its_own_stage(face):
    package = importlib.import_module(face)
    assert package.__all__ == sorted(package.__all__) and package.__all__
    for name in package.__all__:
        assert defined_in(face, name).startswith(f"{face}."), name


@pytest.mark.parametrize(("face", "name"), entry_points())
def test_every_entry_point_documents_its_parameters_and_returns(face, name):
    entry = getattr(importlib.import_module(face), name)
    if is_value(entry):
        source = inspect.getsource(importlib.import_module(defined_in(face, name)))
        assert value_comment(source, name), f"{face}.{name} has no `#:` comment above its assignment"
        return
    doc = inspect.getdoc(entry) or ""
    assert doc, f"{face}.{name} has no docstring"
    missing = set(parameters_of(entry)) - documented_names(section(doc, "Parameters"))
    assert not missing, f"{face}.{name}: Parameters does not describe {sorted(missing)}"
    if inspect.isfunction(entry) and inspect.signature(entry).return_annotation not in ("None", None):
        assert section(doc, "Returns").strip(), f"{face}.{name} has no Returns section"


def test_the_docstring_check_sees_a_parameter_left_out():
    def half_documented(a: int, b: int) -> int:
        """Sum.

        Parameters
        ----------
        a : int
            One.
        """
        return a + b

    doc = inspect.getdoc(half_documented) or ""
    assert set(parameters_of(half_documented)) - documented_names(section(doc, "Parameters")) == {"b"}
    assert section(doc, "Returns") == ""


def test_the_value_check_reads_only_a_comment_right_above_the_assignment():
    source = """
#: Column names of a table.
COLUMNS = ("a", "b")
# A plain comment documents nothing.
PLAIN = 1
#: Separated from its assignment by a blank line.

LOOSE = 2
#: Weights, one per name
#: (they add up to 1).
WEIGHTS: dict[str, float] = {"a": 0.5, "b": 0.5}
"""
    assert value_comment(source, "COLUMNS") == "Column names of a table."
    assert value_comment(source, "PLAIN") == value_comment(source, "LOOSE") == ""
    assert value_comment(source, "WEIGHTS") == "Weights, one per name (they add up to 1)."
    assert is_value(["a", "b"]) and is_value(dict[str, int]) and not is_value(value_comment)


def imports_past_a_face(path) -> list[str]:
    """`from mrdtrack.<stage>.<module> import X` where X is an entry point of the stage's face."""
    faces = {face: set(importlib.import_module(face).__all__) for face in FACES}
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            for face, names in faces.items():
                if node.module.startswith(f"{face}."):
                    found += [f"{node.module}.{a.name}" for a in node.names if a.name in names]
    return found


def test_scripts_tests_and_benchmarks_take_entry_points_from_the_face():
    files = sorted(path for folder in CALLERS for path in (REPO / folder).glob("*.py"))
    assert len(files) > 20
    offenders = {str(path.relative_to(REPO)): imports_past_a_face(path) for path in files}
    assert {path: names for path, names in offenders.items() if names} == {}
