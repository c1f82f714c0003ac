"""A sample's BAM/CRAM against the reference and against the other samples' files.

- The header must describe the reference: every panel contig present, with the reference's length, and with
  its MD5 where the header gives one (`M5`). Reads aligned to another build would otherwise be counted at the
  wrong bases. `mrdtrack check` and every counting job run this check (a counting job before it reads a read).
- One file must not be listed under two sample_ids (by its path, or a copy of it: same size and same first and
  last bytes) unless the sheet marks the second as a technical replicate of the first (`replicate_of`), since a
  repeated file counts the same molecules twice in the background model.
"""

from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from collections.abc import Sequence
from functools import cache

import pandas as pd
import pysam

from mrdtrack.inputs.panel import contig_map
from mrdtrack.inputs.problems import Problem
from mrdtrack.logs import UserFacingError

# Bytes read from each end of a file to tell a copy from another file of the same size.
FINGERPRINT_BYTES = 1 << 16


class AlignmentInputError(UserFacingError):
    """An alignment file that cannot be counted as given (unreadable, wrong genome build)."""


def open_alignments(path: str, reference: str) -> pysam.AlignmentFile:
    """Open a BAM or CRAM (CRAM decoded with `reference`), with a message a person can act on when it fails."""
    try:
        return pysam.AlignmentFile(path, reference_filename=reference or None)
    except (OSError, ValueError) as error:
        raise AlignmentInputError(f"cannot read alignments from '{path}': {error}") from error


# --- the header against the reference --------------------------------------------------------------------------


def header_problems(
    sample_id: str,
    path: str,
    reference: str,
    contigs: Sequence[str],
    sheet: str = "",
    line: int | None = None,
    compare_md5: bool = True,
) -> list[Problem]:
    """Panel contigs must be in the BAM/CRAM header with the reference's length, and its MD5 where given.

    Parameters
    ----------
    sample_id, path
        The sample and its alignment file.
    reference
        The reference FASTA (indexed).
    contigs
        The panel's contigs, as the reference names them.
    sheet, line
        Where the sample is listed: problems are located at `sheet`:`line`:bam, else at the file.
    compare_md5
        Compare the header's `M5` with the reference sequence's MD5 (hashing each contig once per process).

    Returns
    -------
    list of Problem
        At most two, naming the sample and the fix: panel contigs missing from the header, and contigs whose
        length or MD5 differs (the first in full, then how many more).
    """

    def problem(message: str, fix: str) -> Problem:
        if sheet:
            return Problem(sheet, f"sample {sample_id}: {message}", fix, line, "bam")
        return Problem(path, f"sample {sample_id}: {message}", fix)

    try:
        differences = reference_differences(path, reference, contigs, compare_md5)
    except AlignmentInputError as error:
        return [problem(str(error), "re-create the file (and its index) or correct the path")]
    missing = [message for kind, message in differences if kind == "missing"]
    differ = [message for kind, message in differences if kind != "missing"]
    problems = []
    if missing:
        problems.append(problem(_first_and_more(missing), "align to the same reference as the panel"))
    if differ and path.lower().endswith(".cram"):
        problems.append(problem(f"{_first_and_more(differ)} ('{path}'): the CRAM was encoded against another "
                                "reference", "give the reference it was made with (its header's @SQ UR: names "
                                f"it), or re-create the CRAM from {reference}"))  # fmt: skip
    elif differ:
        problems.append(problem(f"{_first_and_more(differ)} ('{path}'): the reads were aligned to another genome "
                                f"build", f"re-align the sample to {reference}, or set `reference` to the FASTA it "
                                "was aligned to"))  # fmt: skip
    return problems


def _first_and_more(messages: list[str]) -> str:
    more = len(messages) - 1
    return messages[0] + (f" (and {more} more panel contig{'s' if more > 1 else ''})" if more else "")


def reference_differences(
    path: str, reference: str, contigs: Sequence[str], compare_md5: bool
) -> list[tuple[str, str]]:
    """How the header of `path` differs from `reference` at each panel contig, as (kind, message): kind is
    `missing`, `length` or `md5`."""
    with open_alignments(path, reference) as alignments, pysam.FastaFile(reference) as fasta:
        names = contig_map(contigs, alignments.references)
        sequences = {sq["SN"]: sq for sq in alignments.header.to_dict().get("SQ", [])}
        differences = []
        for contig in contigs:
            if contig not in names:
                differences.append(
                    ("missing", f"contig '{contig}' of the panel is not in the header of '{path}'")
                )
                continue
            found = _contig_difference(
                sequences.get(names[contig], {}), fasta, reference, contig, compare_md5
            )
            if found:
                differences.append(found)
    return differences


def _contig_difference(
    header: dict, fasta: pysam.FastaFile, reference: str, contig: str, compare_md5: bool
) -> tuple[str, str] | None:
    """How the header's line of `contig` differs from the reference (length first, then MD5), or None."""
    name, length = header.get("SN", contig), fasta.get_reference_length(contig)
    if header.get("LN") != length:
        return (
            "length",
            f"contig '{name}' is {header.get('LN')} bp in the alignment header but {length} bp in the reference",
        )
    given = str(header.get("M5", "")).lower()
    if compare_md5 and given and given != reference_md5(reference, contig):
        expected = reference_md5(reference, contig)
        return (
            "md5",
            f"contig '{name}' has MD5 {given} in the alignment header (M5) but {expected} in the reference",
        )
    return None


@cache
def reference_md5(reference: str, contig: str) -> str:
    """The MD5 of a reference contig as SAM headers give it (M5: upper-case sequence, no line breaks)."""
    with pysam.FastaFile(reference) as fasta:
        return hashlib.md5(fasta.fetch(contig).upper().encode()).hexdigest()


def cram_reference_mismatch(path: str, reference: str, contigs: Sequence[str]) -> str | None:
    """Why a CRAM that htslib could not decode does not match `reference` (its header's M5), or None.

    htslib checks the MD5 of the reference bases under every CRAM slice it decodes and fails on a mismatch
    (`MD5 checksum reference mismatch`, on stderr); pysam then says only that reading failed. Comparing the
    header's M5 with the reference tells that case from a damaged file.
    """
    if not path.lower().endswith(".cram"):
        return None
    try:
        found = [
            message
            for kind, message in reference_differences(path, reference, contigs, True)
            if kind == "md5"
        ]
    except AlignmentInputError:
        return None
    if not found:
        return None
    return (
        f"'{path}' was encoded against another reference than '{reference}': htslib reports 'MD5 checksum "
        f"reference mismatch' while decoding it; {found[0]}. Give the reference the CRAM was made with (its "
        "header's @SQ UR: names it), or re-create the CRAM"
    )


# --- one file under two sample_ids -----------------------------------------------------------------------------


def shared_file_problems(samples: pd.DataFrame) -> list[Problem]:
    """Rows whose BAM/CRAM (the same path, or a copy) is already the file of an earlier row.

    A row is allowed to share the file of the sample it names in `replicate_of` (an intended technical
    replicate). Rows with a repeated sample_id are left to the duplicate check.
    """
    if samples.empty or "bam" not in samples.columns:
        return []
    owners: dict[str, list[int]] = defaultdict(list)
    for index, identity in _file_identities(samples).items():
        owners[identity].append(index)
    problems = []
    for rows in owners.values():
        first = samples.loc[rows[0]]
        for index in rows[1:]:
            row = samples.loc[index]
            if row.get("replicate_of", "") in set(samples.loc[rows, "sample_id"]) - {row["sample_id"]}:
                continue
            problems.append(_shared_file_problem(row, first))
    return problems + _replicate_of_problems(samples)


def _shared_file_problem(row: pd.Series, first: pd.Series) -> Problem:
    same = "is also" if row["bam"] == first["bam"] else f"is a copy of '{first['bam']}',"
    return Problem(
        str(row["sheet"]),
        f"'{row['bam']}' {same} the file of sample {first['sample_id']} ({first['sheet']}:{first['sheet_row']}); "
        "one file under two sample_ids counts its molecules twice",
        "give each sample its own BAM/CRAM; if this row is an intended technical replicate of "
        f"{first['sample_id']}, write {first['sample_id']} in its `replicate_of` column",
        int(row["sheet_row"]),
        "bam",
    )


def _replicate_of_problems(samples: pd.DataFrame) -> list[Problem]:
    if "replicate_of" not in samples.columns:
        return []
    known = set(samples["sample_id"])
    return [
        Problem(str(row.sheet), f"replicate_of names '{row.replicate_of}', which is not a sample_id of the run",
                "write the sample_id of the sample this one replicates, or leave the cell empty",
                int(row.sheet_row), "replicate_of")
        for row in samples.itertuples()
        if row.replicate_of and (row.replicate_of not in known or row.replicate_of == row.sample_id)
    ]  # fmt: skip


def _file_identities(samples: pd.DataFrame) -> dict[int, str]:
    """Per row with an existing file (and a sample_id not seen before), what identifies its content: the real
    path, or for files of equal size the size and a hash of both ends (read only when sizes collide)."""
    rows, seen_ids = {}, set()
    for index, sample_id, bam in zip(samples.index, samples["sample_id"], samples["bam"], strict=True):
        if sample_id in seen_ids or not bam or not os.path.isfile(bam):
            continue
        seen_ids.add(sample_id)
        rows[index] = os.path.realpath(bam)
    by_size: dict[int, set[str]] = defaultdict(set)
    for path in rows.values():
        if os.path.getsize(path):  # an empty file holds nothing to count twice (and fails when it is opened)
            by_size[os.path.getsize(path)].add(path)
    content = {path: _fingerprint(path) for paths in by_size.values() if len(paths) > 1 for path in paths}
    return {index: content.get(path, path) for index, path in rows.items()}


def _fingerprint(path: str) -> str:
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        head = handle.read(FINGERPRINT_BYTES)
        handle.seek(max(size - FINGERPRINT_BYTES, 0))
        tail = handle.read(FINGERPRINT_BYTES)
    return f"{size}:{hashlib.sha256(head + tail).hexdigest()}"
