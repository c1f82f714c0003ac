"""A problem found in the inputs, located by file, line and column with its fix, and the list of them a person reads.

Every check of the inputs collects Problems instead of stopping at the first, so that a lab person sees the whole
list at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from mrdtrack.logs import UserFacingError


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input, located as precisely as possible.

    Parameters
    ----------
    file : str
        The file at fault.
    message : str
        What is wrong.
    fix : str
        What to do about it.
    row : int or None
        The line in the file, counting every line (the header is line 1 unless blank or comment lines precede it).
    column : str or None
        The column at fault.
    severity : str
        `error` stops the run; anything else is a warning.
    """

    file: str
    message: str
    fix: str = ""
    row: int | None = None
    column: str | None = None
    severity: str = "error"

    def __str__(self) -> str:
        where = self.file
        if self.row is not None:
            where += f":{self.row}"
        if self.column:
            where += f":{self.column}"
        text = f"{where}: {self.message}"
        return f"{text}. Fix: {self.fix}" if self.fix else text


class InputError(UserFacingError):
    """Raised with every problem found in the inputs.

    Parameters
    ----------
    problems : sequence of Problem
        Every problem found; the message lists them all.
    """

    def __init__(self, problems: Sequence[Problem]):
        self.problems = list(problems)
        super().__init__(format_problems(self.problems))


def format_problems(problems: Iterable[Problem]) -> str:
    """Errors first, then warnings, one per line; the header line says nothing was run when there are errors."""
    problems = list(problems)
    errors = [p for p in problems if p.severity == "error"]
    warnings = [p for p in problems if p.severity != "error"]
    lines = []
    if errors:
        lines.append(f"mrdtrack found {len(errors)} problem(s) in the inputs; nothing was run:")
        lines += [f"  - {p}" for p in errors]
    if warnings:
        lines.append(f"{len(warnings)} warning(s):")
        lines += [f"  - {p}" for p in warnings]
    return "\n".join(lines)


def in_file_order(problems: Iterable[Problem], files: Sequence[str] = ()) -> list[Problem]:
    """Problems grouped by file (the order of `files`, then first appearance) and by row within a file.

    The checks run one kind at a time (schema, dates, cross-sheet), so without this a sheet's row 9 can be
    listed before its row 2; a lab person fixes a sheet top to bottom. Whole-file problems (no row) come first.
    """
    problems = list(problems)
    rank = {file: i for i, file in enumerate(dict.fromkeys([*files, *(p.file for p in problems)]))}
    return sorted(problems, key=lambda p: (rank[p.file], -1 if p.row is None else p.row))
