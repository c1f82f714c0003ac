"""Flank positions: the reference positions around a sample's own panel loci, counted by the same molecule rules.

The reads that cover a panel locus also cover tens of reference bases on either side of it. Those bases carry
no tumor variant of the patient (every patient's panel loci, and the bases next to them, are left out), so
their non-reference molecules are this sample's own sequencing and PCR noise, in the sample's own library,
context by context. The calling step draws the sample's own null panels from them (mrdtrack.calling.own_null).

Each flank position is counted as a panel locus is, by the same engine with the same read, base, family and
mate rules (a `Locus` whose ALT is one of the three other bases: the engines report every molecule's base, so
one pass gives all three substitutions). The table has one row per covered position and ALT base
(`flanks` contract, docs/tables.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pysam

from mrdtrack.counting.molecules import DISCORDANT, Locus, LocusMolecules, ReadStats, loci_clusters
from mrdtrack.inputs.panel import contig_map
from mrdtrack.tables import columns_of

FLANK_COLUMNS = columns_of("flanks")  # mrdtrack.tables.CONTRACTS
BASES = "ACGT"


@dataclass(frozen=True)
class FlankWindow:
    """Which positions around a panel locus are flanks.

    Attributes
    ----------
    window : int
        Positions up to this many bp either side of each of the sample's panel loci (0: no flanks).
    gap : int
        Positions within this many bp of any patient's panel locus (its whole REF span) are left out: a
        variant's neighbour can carry its alignment artefacts or a phased tumor variant.
    """

    window: int = 25
    gap: int = 2


def flank_positions(
    panel: pd.DataFrame, patient_id: str, fasta: pysam.FastaFile, window: FlankWindow
) -> pd.DataFrame:
    """The flank positions around `patient_id`'s panel loci: chrom, pos, ref, context (reference trinucleotide).

    Left out: positions near any patient's panel locus (`window.gap`), positions whose reference base or
    trinucleotide holds anything but A, C, G, T, and positions beyond a contig's ends.

    Parameters
    ----------
    panel : pandas.DataFrame
        The cohort panel (`panel_loci` contract).
    patient_id : str
        The sample's patient; no flanks when the patient has no panel loci.
    fasta : pysam.FastaFile
        The reference.
    window : FlankWindow
        How far the flanks reach and how close to a panel locus they may come.

    Returns
    -------
    pandas.DataFrame
        One row per flank position, sorted by contig (panel order) and position.
    """
    own = panel[panel["patient_id"] == patient_id]
    if window.window <= 0 or own.empty:
        return pd.DataFrame(columns=["chrom", "pos", "ref", "context"])
    names = contig_map(panel["chrom"].unique(), fasta.references)
    rows = []
    for chrom, group in own.groupby("chrom", sort=False):
        if chrom not in names:
            continue
        blocked = _near_panel_loci(panel[panel["chrom"] == chrom], window.gap)
        wanted = set()
        for pos in group["pos"].astype(int):
            wanted.update(range(pos - window.window, pos + window.window + 1))
        positions = np.array(sorted(wanted - blocked), dtype=np.int64)
        rows.extend(_with_reference(chrom, names[chrom], positions, fasta))
    return pd.DataFrame(rows, columns=["chrom", "pos", "ref", "context"])


def _near_panel_loci(loci: pd.DataFrame, gap: int) -> set[int]:
    blocked: set[int] = set()
    for pos, ref in zip(loci["pos"].astype(int), loci["ref"], strict=True):
        blocked.update(range(pos - gap, pos + len(ref) + gap))
    return blocked


def _with_reference(
    chrom: str, fasta_chrom: str, positions: np.ndarray, fasta: pysam.FastaFile
) -> Iterator[tuple]:
    length = fasta.get_reference_length(fasta_chrom)
    positions = positions[(positions >= 2) & (positions <= length - 1)]
    if not positions.size:
        return
    start, end = int(positions[0]) - 2, int(positions[-1]) + 1  # 0-based, the trinucleotides of all
    sequence = fasta.fetch(fasta_chrom, start, end).upper()
    for pos in positions:
        context = sequence[pos - 2 - start : pos + 1 - start]
        if all(base in BASES for base in context):
            yield chrom, int(pos), context[1], context


def flank_loci(positions: pd.DataFrame, names: dict[str, str]) -> list[tuple[str, str, list[Locus]]]:
    """The flank positions as clusters of `Locus` (contig as the table and the alignment file spell it), each
    with a fixed ALT: the engines report every molecule's base, whatever ALT is asked for."""
    units = []
    for chrom, group in positions.groupby("chrom", sort=False):
        loci = [
            Locus(names[chrom], int(p), r, _some_other_base(r))
            for p, r in zip(group["pos"], group["ref"], strict=True)
        ]
        units.extend((chrom, names[chrom], cluster) for cluster in loci_clusters(loci))
    return units


def _some_other_base(ref: str) -> str:
    return "C" if ref == "A" else "A"


def flank_table(positions: pd.DataFrame, found: Iterable[tuple[str, Locus, LocusMolecules]]) -> pd.DataFrame:
    """One row per covered flank position and ALT base (`flanks` contract) from each position's molecules."""
    context = dict(
        zip(
            zip(positions["chrom"], positions["pos"].astype(int), strict=True),
            positions["context"],
            strict=True,
        )
    )
    rows = []
    for chrom, locus, molecules in found:
        rows.extend(_rows(chrom, locus, context[(chrom, locus.pos)], molecules))
    frame = pd.DataFrame(rows, columns=FLANK_COLUMNS)
    return frame.astype({c: np.int64 for c in FLANK_COLUMNS if c.endswith(("_molecules", "_f1r2", "_f2r1"))})


def _rows(chrom: str, locus: Locus, context: str, molecules: LocusMolecules) -> Iterator[tuple]:
    bases = molecules.bases
    if not bases.size:
        return
    forward = molecules.read1_forward
    is_ref = bases == ord(locus.ref)
    informative = np.isin(bases, [ord(b) for b in BASES])
    if not informative.any():
        return
    ref_f1r2 = int(np.count_nonzero(forward[is_ref]))
    ref_n = int(np.count_nonzero(is_ref))
    discordant = int(np.count_nonzero(bases == ord(DISCORDANT)))
    for alt in BASES:
        if alt == locus.ref:
            continue
        is_alt = bases == ord(alt)
        alt_n = int(np.count_nonzero(is_alt))
        alt_f1r2 = int(np.count_nonzero(forward[is_alt]))
        other = int(np.count_nonzero(informative & ~is_ref & ~is_alt))
        lengths = ",".join(str(n) for n in np.sort(molecules.lengths[is_alt]))
        yield (
            chrom, locus.pos, locus.ref, alt, context, ref_n, alt_n, other, discordant,
            alt_f1r2, alt_n - alt_f1r2, ref_f1r2, ref_n - ref_f1r2, lengths,
        )  # fmt: skip


def no_flanks() -> pd.DataFrame:
    """An empty flank table (a sample without panel loci of its own, or `counting.flank_window: 0`)."""
    return flank_table(pd.DataFrame(columns=["chrom", "pos", "ref", "context"]), [])


def count_flanks(
    alignments: pysam.AlignmentFile,
    reference: str,
    panel: pd.DataFrame,
    patient_id: str | None,
    window: FlankWindow,
    molecules_of: Callable[[list, ReadStats], Iterable[tuple[str, Locus, LocusMolecules]]],
) -> pd.DataFrame:
    """Count the flanks of one sample (`flanks` contract).

    Parameters
    ----------
    alignments : pysam.AlignmentFile
        The sample's open BAM/CRAM.
    reference : str
        The reference FASTA.
    panel : pandas.DataFrame
        The cohort panel.
    patient_id : str or None
        The sample's patient (None or a patient without panel loci: no flanks).
    window : FlankWindow
        Which positions are flanks.
    molecules_of : callable
        (units, stats) -> iterable of (chrom, locus, LocusMolecules): the counting engine, as panel loci use it.

    Returns
    -------
    pandas.DataFrame
        The flank table; empty when there are no flanks.
    """
    if not patient_id:
        return no_flanks()
    with pysam.FastaFile(reference) as fasta:
        positions = flank_positions(panel, patient_id, fasta, window)
    if positions.empty:
        return no_flanks()
    names = contig_map(positions["chrom"].unique(), alignments.references)
    positions = positions[positions["chrom"].isin(names)]
    units = flank_loci(positions, names)
    return flank_table(positions, molecules_of(units, ReadStats()))  # read statistics: the panel loci's only
