"""The error class of a panel locus, which the background model pools loci by.

An SNV is classed on the pyrimidine strand (G>T at AGC is C>A at GCT): 6 substitution classes x 16
trinucleotide contexts, each shrunk toward its substitution (C>N at CpG on its own: methylated cytosines
deaminate far more often). An indel is classed by type x length (`del1`, `del2`, `del3-4`, `del5+`, `ins1`,
...) and its context by the copies of the repeat unit it sits in (`rep0`, `rep1`, `rep2-3`, ...), which drive
polymerase slippage.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from mrdtrack.logs import UserFacingError
from mrdtrack.vocabulary import SUBSTITUTIONS

COMPLEMENT = str.maketrans("ACGTN", "TGCAN")


def reverse_complement(seq: str) -> str:
    return seq.translate(COMPLEMENT)[::-1]


def pyrimidine_class(ref: str, alt: str, context: str) -> tuple[str, str, bool]:
    """(substitution, context, flipped) on the pyrimidine strand: G>T at AGC is C>A at GCT, flipped."""
    if ref in "CT":
        return f"{ref}>{alt}", context, False
    return f"{ref.translate(COMPLEMENT)}>{alt.translate(COMPLEMENT)}", reverse_complement(context), True


def rate_group(substitution: str, context: str) -> str:
    """The class-level group a context is shrunk toward: its substitution, with C>N at CpG on its own.

    CpG cytosines are methylated and deaminate (C>T) far more often than other cytosines, so pooling them
    with the other contexts of their class would give neither a fair prior.
    """
    return f"{substitution} CpG" if substitution[0] == "C" and context[2:] == "G" else substitution


def all_context_classes() -> pd.DataFrame:
    """The 96 pyrimidine-centred classes: substitution x (5' base, 3' base)."""
    rows = [(sub, f"{left}{sub[0]}{right}") for sub in SUBSTITUTIONS for left in "ACGT" for right in "ACGT"]
    return pd.DataFrame(rows, columns=["substitution", "context"])


GROUPS = tuple(sorted({rate_group(s, c) for s, c in all_context_classes().itertuples(index=False)}))


# Indel classes. The panel writes an indel's context as `{del|ins}{length}:{unit}x{copies}` (mrdtrack.inputs.panel).
INDEL_CONTEXT = re.compile(r"^(del|ins)(\d+):([ACGTN]+)x(\d+)$")
INDEL_LENGTHS = ((1, "1"), (2, "2"), (4, "3-4"), (None, "5+"))  # (largest length, label)
REPEAT_COPIES = ((0, "0"), (1, "1"), (3, "2-3"), (5, "4-5"), (7, "6-7"), (None, "8+"))  # (most copies, label)


def _binned(value: int, bins: tuple[tuple[int | None, str], ...]) -> str:
    return next(label for upper, label in bins if upper is None or value <= upper)


def indel_class(context: str) -> tuple[str, str]:
    """(class, context) of an indel from its panel context: `del1:Ax6` -> (`del1`, `rep6-7`).

    The class is the indel type and length class; the context adds the copies of the repeat unit in the
    reference (for a deletion including the deleted ones), which drive polymerase slippage.
    """
    found = INDEL_CONTEXT.match(context)
    if found is None:
        raise ValueError(f"indel context {context!r} is not of the form del1:Ax6")
    kind, length, _unit, copies = found.groups()
    return f"{kind}{_binned(int(length), INDEL_LENGTHS)}", f"rep{_binned(int(copies), REPEAT_COPIES)}"


def all_indel_classes() -> pd.DataFrame:
    """The indel classes: type x length class x repeat-copies class (a deletion has at least one copy)."""
    rows = [
        (f"{kind}{length}", f"rep{copies}")
        for kind in ("del", "ins")
        for _, length in INDEL_LENGTHS
        for _, copies in REPEAT_COPIES
        if not (kind == "del" and copies == "0")
    ]
    return pd.DataFrame(rows, columns=["substitution", "context"])


INDEL_GROUPS = tuple(dict.fromkeys(all_indel_classes()["substitution"]))


@dataclass(frozen=True)
class ClassScheme:
    """How loci of one kind are classed: the grid of context classes and the group each is shrunk toward."""

    kind: str  # the `kind` of `annotate_classes`
    classes: Callable[[], pd.DataFrame]  # substitution, context: the rows every context table has
    group_of: Callable[[str, str], str]  # (substitution, context) -> group
    groups: tuple[str, ...]


SNV_SCHEME = ClassScheme("snv", all_context_classes, rate_group, GROUPS)
INDEL_SCHEME = ClassScheme(
    "indel", all_indel_classes, lambda substitution, _context: substitution, INDEL_GROUPS
)
SCHEMES = (SNV_SCHEME, INDEL_SCHEME)


def locus_class(ref: str, alt: str, context: str) -> tuple[str, str, bool, str, str]:
    """(substitution, context, flipped, group, kind) of a locus: an SNV's pyrimidine-centred class or an
    indel's class (never flipped: slippage has no strand to fold)."""
    if len(ref) == 1 and len(alt) == 1:
        substitution, pyrimidine_context, flipped = pyrimidine_class(ref, alt, context)
        return substitution, pyrimidine_context, flipped, rate_group(substitution, pyrimidine_context), "snv"
    if len(ref) != len(alt) and ref[0] == alt[0]:
        indel, repeat = indel_class(context)
        return indel, repeat, False, indel, "indel"
    raise ValueError(f"{ref}>{alt} is neither an SNV nor an anchored indel")


def annotate_classes(loci: pd.DataFrame) -> pd.DataFrame:
    """Add `substitution`, `pyrimidine_context`, `flipped` (purine reference: strand-swapped), `group` and
    `kind` (`snv` or `indel`)."""
    classes = []
    for chrom, pos, ref, alt, context in zip(
        loci["chrom"], loci["pos"], loci["ref"], loci["alt"], loci["context"], strict=True
    ):
        try:
            classes.append(locus_class(ref, alt, context))
        except ValueError as error:
            raise UserFacingError(
                f"count-table locus {chrom}:{pos} {ref}>{alt}: {error}; the count tables must come from "
                "the current panel (results/panel/loci.tsv)"
            ) from None
    out = loci.copy()
    names = ("substitution", "pyrimidine_context", "flipped", "group", "kind")
    for i, name in enumerate(names):
        out[name] = [c[i] for c in classes]
    return out
