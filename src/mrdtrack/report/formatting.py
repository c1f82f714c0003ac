"""Numbers and producers' notes as the short text captions, hovers and tables show."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

DASH = "\u2013"
# A URL ends at white space, at closing punctuation, or at a capital when the next sentence was glued to it
# (lifelines' convergence advice ends "...-modelA singular matrix detected").
URL = re.compile(r"https?://\S*?(?=[A-Z][a-z]* [a-z]|[\s)\];,]|[.:](?:\s|$)|$)")


def fmt_number(value: Any, spec: str = ".3g", missing: str = "\u2013") -> str:
    """`value` formatted with `spec`, or `missing` when it is not a number."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return missing
    return missing if math.isnan(number) else format(number, spec)


def count_noun(n: float, noun: str, plural: str = "") -> str:
    """'1 event', '3 events'."""
    n = int(n)
    return f"{n} {noun if n == 1 else (plural or noun + 's')}"


def fmt_p(p: float | None) -> str:
    """A p-value as '< 0.001' or two significant digits."""
    if p is None or math.isnan(p):
        return "not available"
    return "< 0.001" if p < 0.001 else f"{p:.2g}"


def p_text(p: float | None, name: str = "p") -> str:
    """'p = 0.012', 'p < 0.001' or 'p not available': the relation belongs to the value, not to the label."""
    value = fmt_p(p)
    if value.startswith("<"):
        return f"{name} {value}"
    return f"{name} {value}" if value == "not available" else f"{name} = {value}"


def fmt_percent(value: Any, missing: str = DASH) -> str:
    """A proportion as a whole percentage ('70%'), or `missing` when it is not a number."""
    return fmt_number(100 * float(value), ".0f", missing) + "%" if _is_number(value) else missing


def percent_ci(estimate: Any, low: Any, high: Any, level: str = "95% CI") -> str:
    """'70% (95% CI 53–82%)'; the estimate alone when the interval is missing; 'not estimable' without it."""
    if not _is_number(estimate):
        return "not estimable"
    if not (_is_number(low) and _is_number(high)):
        return fmt_percent(estimate)
    prefix = f"{level} " if level else ""
    return f"{fmt_percent(estimate)} ({prefix}{fmt_number(100 * float(low), '.0f')}{DASH}{fmt_percent(high)})"


def _is_number(value: Any) -> bool:
    try:
        return not math.isnan(float(value))
    except (TypeError, ValueError):
        return False


def plain(value: Any) -> str:
    """A config or summary value as text (lists comma-separated, floats to 4 significant digits, Yes/No)."""
    if is_bool(value):
        return yes_no(value)
    if isinstance(value, float):
        return fmt_number(value, ".4g")
    if isinstance(value, list | tuple):
        return ", ".join(plain(v) for v in value)
    return "" if value is None else str(value)


def is_bool(value: Any) -> bool:
    """True for a Python or numpy boolean (numpy's is not a subclass of bool)."""
    return isinstance(value, bool) or type(value).__name__ == "bool_"


def yes_no(value: Any) -> str:
    """A boolean as a reader says it: Yes / No."""
    return "Yes" if value else "No"


def text_or(row: Any, name: str, default: str) -> str:
    """Attribute `name` of a row as text, or `default` when it is missing or empty."""
    value = getattr(row, name, None)
    return (
        default
        if value is None or (isinstance(value, float) and math.isnan(value)) or value == ""
        else str(value)
    )


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as one level of dotted keys ('design.selected.p0')."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def slug(text: str) -> str:
    """`text` as a safe id part: lower case, non-alphanumerics as '_'."""
    return "".join(c if c.isalnum() else "_" for c in str(text).lower()).strip("_") or "x"


def short_note(note: str, limit: int = 240) -> str:
    """A producer's note without the fitting library's advice and links, at most `limit` characters."""
    note = re.sub(r"\s*Please see [^:]*:\s*", " ", note)
    note = URL.sub("", note)
    note = re.sub(r"\s+", " ", note).strip()
    return note if len(note) <= limit else note[: limit - 1].rstrip() + "\u2026"


def mutant_evidence_text(row: Any) -> str:
    """'<br>mutant fragments 3 at 2 loci' for a sample's hover, or '' when calls.tsv has no such columns."""
    try:
        fragments, loci = float(row.mutant_fragments), float(row.mutant_loci)
    except (AttributeError, TypeError, ValueError):
        return ""
    if math.isnan(fragments) or math.isnan(loci):
        return ""
    return f"<br>mutant fragments {fragments:.0f} at {count_noun(loci, 'locus', 'loci')}"


def positive_float(value: Any) -> float | None:
    """`value` as a finite float > 0, else None."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number > 0 else None


def link_segments(text: str) -> list[tuple[str, str]]:
    """`text` as ("text", ...) and ("url", ...) pieces, so a URL can be shown as a link; a sentence glued to a
    URL is set apart from it by a space."""
    segments: list[tuple[str, str]] = []
    end = 0
    for match in [*URL.finditer(text), None]:
        piece = text[end : match.start() if match else len(text)]
        if segments and piece[:1].isalnum():
            piece = " " + piece
        segments.append(("text", piece))
        if match:
            segments.append(("url", match.group()))
            end = match.end()
    return [(kind, piece) for kind, piece in segments if piece]
