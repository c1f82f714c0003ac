"""Flank positions: the reference positions around a sample's own panel loci, counted by the same molecule rules.

The reads that cover a panel locus also cover tens of reference bases on either side of it. Those bases carry
no tumor variant of the patient (every patient's panel loci, and the bases next to them, are left out), so
their non-reference molecules are this sample's own sequencing and PCR noise, in the sample's own library,
context by context. The calling step draws the sample's own null panels from them (mrdtrack.calling.own_null).

Each flank position is counted as a panel locus is, by the same engine with the same read, base, family and
mate rules (a `Locus` whose ALT is one of the three other bases: the engines report every molecule's base, so
one pass gives all three substitutions). The compiled engine builds the templates and families of a cluster of
flank positions once for all of them and counts them there (flank_kernel), with the molecules that counting each
position on its own gives, in the same pass of the file as the panel loci. The table has one row per covered
position, with the molecules of each of its four bases (`flanks` contract, docs/tables.md);
`mrdtrack.flank_layout.flank_rows` gives its rows per ALT base.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import overload

import numpy as np
import pandas as pd
import pysam

from mrdtrack.counting.molecules import DISCORDANT, Locus, LocusMolecules
from mrdtrack.flank_layout import BASE_INDEX, BASES, compact_table
from mrdtrack.inputs.panel import contig_map


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
    columns = ["chrom", "pos", "ref", "context"]
    if window.window <= 0 or own.empty:
        return pd.DataFrame(columns=columns)
    names = contig_map(panel["chrom"].unique(), fasta.references)
    panel_by_chrom = dict(tuple(panel.groupby("chrom", sort=False, observed=True)))
    frames = []
    for chrom, group in own.groupby("chrom", sort=False, observed=True):
        if chrom not in names:
            continue
        wanted = _window_positions(group["pos"].to_numpy(dtype=np.int64), window.window)
        positions = wanted[~_near_panel_loci(panel_by_chrom[chrom], window.gap, wanted)]
        frames.append(_with_reference(chrom, names[chrom], positions, fasta))
    frames = [frame for frame in frames if len(frame)]
    if not frames:
        return pd.DataFrame([], columns=columns)
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def _window_positions(centres: np.ndarray, window: int) -> np.ndarray:
    """The positions within `window` bp of any of `centres`, sorted, each once (windows that do not overlap, as
    a genome-wide signature's seldom do, need no search for repeats)."""
    wanted = (np.sort(centres)[:, None] + np.arange(-window, window + 1)).ravel()
    return np.unique(wanted) if (np.diff(wanted) <= 0).any() else wanted


def _near_panel_loci(loci: pd.DataFrame, gap: int, positions: np.ndarray) -> np.ndarray:
    """Whether each of `positions` is within `gap` bp of one of `loci` (its whole REF span)."""
    starts = loci["pos"].to_numpy(dtype=np.int64) - gap
    ends = starts + gap + loci["ref"].str.len().to_numpy(dtype=np.int64) + gap  # past the last one left out
    order = np.argsort(starts, kind="stable")
    starts, reach = starts[order], np.maximum.accumulate(ends[order])
    last = np.searchsorted(starts, positions, side="right") - 1  # the last locus starting at or before
    return (last >= 0) & (reach[np.maximum(last, 0)] > positions)


def _with_reference(
    chrom: str, fasta_chrom: str, positions: np.ndarray, fasta: pysam.FastaFile
) -> pd.DataFrame:
    """The positions (sorted) with their reference base and trinucleotide; those at a contig's ends, or whose
    trinucleotide holds anything but A, C, G, T, left out. One array pass, not a string slice per position."""
    length = fasta.get_reference_length(fasta_chrom)
    positions = positions[(positions >= 2) & (positions <= length - 1)]
    if not positions.size:
        return pd.DataFrame([], columns=["chrom", "pos", "ref", "context"])
    sequence, first = _reference_around(fasta, fasta_chrom, positions)
    codes = np.stack([BASE_INDEX[sequence[first + k]] for k in range(3)], axis=1)
    clean = (codes >= 0).all(axis=1)
    codes, positions = codes[clean], positions[clean]
    # the 64 trinucleotides' and 4 bases' texts shared, not a new str per position
    context = _TRINUCLEOTIDE_TEXT[codes[:, 0] * 16 + codes[:, 1] * 4 + codes[:, 2]]
    return pd.DataFrame(
        {"chrom": chrom, "pos": positions, "ref": _BASE_TEXT[codes[:, 1]], "context": context}
    )


# Flank positions further apart than this are fetched from the reference separately: a genome-wide signature's
# loci, tens of kb apart, would otherwise fetch whole contigs (chr1: 250 MB of text, three times over).
FETCH_GAP = 4096


def _reference_around(
    fasta: pysam.FastaFile, fasta_chrom: str, positions: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The reference bases (ASCII, upper case) around sorted 1-based `positions` (each at least 2, and below the
    contig's end), and where each position's trinucleotide starts in them. Fetched in stretches of positions
    closer than FETCH_GAP to one another."""
    cuts = np.flatnonzero(np.diff(positions) > FETCH_GAP) + 1
    firsts, lasts = positions[np.r_[0, cuts]], positions[np.r_[cuts, len(positions)] - 1]
    stretches = [fasta.fetch(fasta_chrom, int(a) - 2, int(b) + 1) for a, b in zip(firsts, lasts, strict=True)]
    sequence = np.frombuffer("".join(stretches).upper().encode(), dtype=np.uint8)
    offsets = np.cumsum([0, *(len(stretch) for stretch in stretches[:-1])])
    stretch = np.repeat(np.arange(len(firsts)), np.diff(np.r_[0, cuts, len(positions)]))
    return sequence, offsets[stretch] + positions - firsts[stretch]


_TRINUCLEOTIDE_TEXT = np.array([a + b + c for a in BASES for b in BASES for c in BASES], dtype=object)
_BASE_TEXT = np.array(list(BASES), dtype=object)  # base index -> the base


@dataclass(frozen=True)
class FlankCluster:
    """A cluster of flank positions as arrays, not one Python object per position (a genome-wide signature has
    about a million): 1-based positions (sorted), REF bases (ASCII codes, int64 as the engine takes them) and
    reference trinucleotides, on a contig as the alignment file spells it. Indexed or iterated, it gives each
    position as a `Locus` with a fixed ALT (the engines report every molecule's base, whatever ALT is asked
    for), for the reference engine; sliced, a cluster of some of its positions."""

    bam_chrom: str
    pos: np.ndarray
    ref: np.ndarray
    context: np.ndarray

    def __len__(self) -> int:
        return len(self.pos)

    @overload
    def __getitem__(self, index: int) -> Locus: ...
    @overload
    def __getitem__(self, index: slice) -> FlankCluster: ...
    def __getitem__(self, index: int | slice) -> Locus | FlankCluster:
        if isinstance(index, slice):
            return FlankCluster(self.bam_chrom, self.pos[index], self.ref[index], self.context[index])
        ref = chr(self.ref[index])
        return Locus(self.bam_chrom, int(self.pos[index]), ref, _some_other_base(ref))

    def __iter__(self) -> Iterator[Locus]:
        return (self[i] for i in range(len(self)))

    @classmethod
    def joined(cls, clusters: Sequence[FlankCluster]) -> FlankCluster:
        """The positions of consecutive clusters of one contig as one cluster."""
        if len(clusters) == 1:
            return clusters[0]
        return cls(
            clusters[0].bam_chrom,
            *(np.concatenate([getattr(c, name) for c in clusters]) for name in ("pos", "ref", "context")),
        )

    @classmethod
    def of_loci(cls, loci: list[Locus], context: list[str]) -> FlankCluster:
        """The cluster of positions given as `Locus` (one contig) and their trinucleotides."""
        return cls(
            loci[0].chrom if loci else "",
            np.array([locus.pos for locus in loci], dtype=np.int64),
            _ascii_codes(locus.ref for locus in loci),
            np.array(context, dtype=object),
        )


def _ascii_codes(bases: Iterable[str]) -> np.ndarray:
    """Single bases as their ASCII codes, int64 as the engine takes them."""
    return np.frombuffer("".join(bases).encode(), dtype=np.uint8).astype(np.int64)


def flank_loci(positions: pd.DataFrame, names: dict[str, str]) -> list[tuple[str, str, FlankCluster]]:
    """The flank positions as clusters (`FlankCluster`; contig as the table and the alignment file spell it):
    split where positions are further apart than FLANK_GAP, and into pieces of at most FLANK_CLUSTER."""
    units = []
    for chrom, group in positions.groupby("chrom", sort=False):
        pos = group["pos"].to_numpy(dtype=np.int64)
        ref = _ascii_codes(group["ref"])
        context = group["context"].to_numpy(dtype=object)
        gaps = np.flatnonzero(np.diff(pos) > FLANK_GAP) + 1
        for begin, end in zip(np.r_[0, gaps], np.r_[gaps, len(pos)], strict=True):
            units.extend(
                (
                    chrom,
                    names[chrom],
                    FlankCluster(names[chrom], pos[at:stop], ref[at:stop], context[at:stop]),
                )
                for at in range(begin, end, FLANK_CLUSTER)
                for stop in [min(at + FLANK_CLUSTER, end)]
            )
    return units


# Flank positions further apart than this (bp) are split into clusters of their own: a short read seldom spans
# the gap, so the compiled engine completes a cluster without holding reads that already reached the next one
# (panel loci are fetched together up to molecules.CLUSTER_GAP, 1 kb: with a genome-wide signature's loci a
# few hundred bp apart, cutting their flanks there into pieces of FLANK_CLUSTER cut windows in two, and
# completing each piece meant moving the next piece's observations; 0.75 s of a 6 s job). The compiled engine
# joins clusters whose reads are few again (bamscan.joined_flank_clusters).
FLANK_GAP = 200
# Flank positions per cluster at most. Dense panel loci (closer than FLANK_GAP, as a genome-wide signature's can
# be) would otherwise join all their flanks in one cluster, whose observations (one per read and position) the
# compiled engine holds at once. A position's molecules do not depend on its cluster, and the compiled engine
# parses a read that reaches the next cluster once for both.
FLANK_CLUSTER = 64


def _some_other_base(ref: str) -> str:
    return "C" if ref == "A" else "A"


@dataclass
class FlankTally:
    """The molecules of one cluster of flank positions, counted: what the compiled engine gives for a cluster of
    flanks (flank_kernel). Per position of the cluster: its molecules of each base (A, C, G, T; `counts`), those
    of them with read 1 forward (`f1r2`) and its discordant molecules; and each non-reference molecule as a row
    (position index, base index, fragment length) of `non_reference`."""

    counts: np.ndarray
    f1r2: np.ndarray
    discordant: np.ndarray
    non_reference: np.ndarray


def flank_table(
    context: Mapping[tuple[str, int], str], found: Iterable[tuple[str, Locus, LocusMolecules]]
) -> pd.DataFrame:
    """One row per covered flank position (`flanks` contract) from each position's molecules, position by
    position; `context` gives each position's (chrom, pos) its reference trinucleotide (`flank_contexts`).

    Tallied many positions at a time: their molecules are joined into flat arrays and counted with np.bincount
    by (position, base) and (position, base, read orientation), so a position costs a few list appends, not a
    loop over its bases; the table's columns are taken from those counts whole. The molecules are tallied in
    batches of about TALLY_BATCH, so that memory holds a batch, never a sample's flanks. The table's rows per
    position and ALT base (`mrdtrack.flank_layout.flank_rows`), in their order, are those of the per-position
    reference tally kept in tests/test_flank_tally.py.
    """
    return _batched(
        (chrom, FlankCluster.of_loci([locus], [context[(chrom, locus.pos)]]), molecules)
        for chrom, locus, molecules in found
    )


def cluster_flank_table(
    found: Iterable[tuple[str, FlankCluster, list[LocusMolecules] | FlankTally]],
) -> pd.DataFrame:
    """`flank_table` from each cluster's molecules: those of the compiled engine (one `FlankTally` per cluster,
    no Python object per position) or of the reference engine (one `LocusMolecules` per position)."""
    return _batched(_cluster_parts(found))


def _cluster_parts(
    found: Iterable[tuple[str, FlankCluster, list[LocusMolecules] | FlankTally]],
) -> Iterator[tuple[str, FlankCluster, LocusMolecules | FlankTally]]:
    for chrom, cluster, molecules in found:
        if isinstance(molecules, FlankTally):
            yield chrom, cluster, molecules
        else:
            yield from ((chrom, cluster[i : i + 1], at) for i, at in enumerate(molecules))


def _batched(parts: Iterable[tuple[str, FlankCluster, LocusMolecules | FlankTally]]) -> pd.DataFrame:
    """The flank table of the molecules of parts of one or more positions, tallied batch by batch."""
    frames = []
    batch = _Batch()
    for chrom, cluster, molecules in parts:
        if isinstance(molecules, FlankTally) or molecules.bases.size:
            batch.add(chrom, cluster, molecules)
            if batch.size >= TALLY_BATCH:
                frames.append(batch.tally())
                batch = _Batch()
    if batch.clusters:
        frames.append(batch.tally())
    if not frames:
        return _no_rows()
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


TALLY_BATCH = 1 << 18  # molecules tallied at once (their arrays and the tally's take about 15 MB)


class _Batch:
    """Clusters of positions (with the contig as the table spells it), and their molecules' arrays or their
    tallies, waiting to be tallied together."""

    def __init__(self) -> None:
        self.chroms: list[str] = []
        self.clusters: list[FlankCluster] = []
        self.arrays: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self.tallies: list[tuple[int, FlankTally]] = []
        self.positions = 0
        self.size = 0

    def add(self, chrom: str, cluster: FlankCluster, molecules: LocusMolecules | FlankTally) -> None:
        """Add the molecules of the cluster's positions (one position for a `LocusMolecules`). Keep copies: the
        engine's arrays can be views of a whole cluster's molecule table."""
        first = self.positions
        self.chroms.append(chrom)
        self.clusters.append(cluster)
        self.positions += len(cluster)
        if isinstance(molecules, FlankTally):
            self.tallies.append((first, molecules))
            self.size += len(molecules.non_reference) + len(cluster)
            return
        position = np.full(molecules.bases.size, first, dtype=np.int64)
        self.arrays.append(
            (position, molecules.bases.copy(), molecules.read1_forward.copy(), molecules.lengths.copy())
        )
        self.size += molecules.bases.size

    def tally(self) -> pd.DataFrame:
        ref_of = BASE_INDEX[np.concatenate([cluster.ref for cluster in self.clusters])]
        arrays = self.arrays or [tuple(np.zeros(0, dtype=np.int64) for _ in range(4))]
        position, bases, forward, lengths = (np.concatenate(column) for column in zip(*arrays, strict=True))
        counted = _counted(ref_of, position, bases, forward.astype(bool), lengths)
        _add_tallies(counted, self.tallies)
        return _frame(self._where(ref_of), counted)

    def _where(self, ref_of: np.ndarray) -> pd.DataFrame:
        """The batch's positions: chrom, pos, ref, context."""
        sizes = [len(cluster) for cluster in self.clusters]
        return pd.DataFrame({
            "chrom": np.repeat(np.array(self.chroms, dtype=object), sizes),
            "pos": np.concatenate([cluster.pos for cluster in self.clusters]),
            "ref": _BASE_TEXT[ref_of],
            "context": np.concatenate([cluster.context for cluster in self.clusters]),
        })  # fmt: skip


@dataclass
class _Counted:
    """Per position: molecules of each base index, those with read 1 forward, discordant ones; and the cells
    (position * 4 + base index) and fragment lengths of the non-reference molecules."""

    molecules: np.ndarray
    f1r2: np.ndarray
    discordant: np.ndarray
    cells: list[np.ndarray]
    lengths: list[np.ndarray]


def _counted(
    ref_of: np.ndarray, position: np.ndarray, bases: np.ndarray, forward: np.ndarray, lengths: np.ndarray
) -> _Counted:
    """The counts of positions (REF index `ref_of` each) from every molecule's position index, base (ASCII),
    read 1 orientation and fragment length."""
    n = len(ref_of)
    base = BASE_INDEX[bases]
    informative = base >= 0
    cell = position[informative] * 4 + base[informative]
    non_reference = base[informative] != ref_of[position[informative]]
    return _Counted(
        np.bincount(cell, minlength=4 * n).reshape(n, 4),
        np.bincount(cell[forward[informative]], minlength=4 * n).reshape(n, 4),
        np.bincount(position[bases == ord(DISCORDANT)], minlength=n),
        [cell[non_reference]],
        [lengths[informative][non_reference]],
    )


def _add_tallies(counted: _Counted, tallies: list[tuple[int, FlankTally]]) -> None:
    """The clusters' tallies, each one's positions from its index `first` of the batch, added at once (not a few
    small array operations per cluster: a genome-wide sample has ~20,000 clusters)."""
    if not tallies:
        return
    firsts = np.array([first for first, _ in tallies], dtype=np.int64)
    sizes = np.array([len(tally.discordant) for _, tally in tallies], dtype=np.int64)
    # the clusters' positions are distinct rows of the batch, so that fancy-indexed adds are exact
    rows = np.repeat(firsts - (np.cumsum(sizes) - sizes), sizes) + np.arange(sizes.sum())
    counted.molecules[rows] += np.concatenate([tally.counts for _, tally in tallies])
    counted.f1r2[rows] += np.concatenate([tally.f1r2 for _, tally in tallies])
    counted.discordant[rows] += np.concatenate([tally.discordant for _, tally in tallies])
    non_reference = np.concatenate([tally.non_reference for _, tally in tallies])
    first = np.repeat(firsts, [len(tally.non_reference) for _, tally in tallies])
    counted.cells.append((first + non_reference[:, 0]) * 4 + non_reference[:, 1])
    counted.lengths.append(non_reference[:, 2])


def _frame(where: pd.DataFrame, counted: _Counted) -> pd.DataFrame:
    """The flank table of the covered positions of `where` (chrom, pos, ref, context per position) from their
    counts: its columns are the count arrays' columns, taken at the covered positions."""
    # A position with discordant molecules only has no row.
    covered = np.flatnonzero(counted.molecules.sum(axis=1))
    if not covered.size:
        return _no_rows()
    positions = where if covered.size == len(where) else where.take(covered)
    lengths = _lengths(np.concatenate(counted.cells), np.concatenate(counted.lengths), covered, len(where))
    return compact_table(
        positions, counted.molecules[covered], counted.f1r2[covered], counted.discordant[covered], lengths
    )


def _lengths(cell: np.ndarray, lengths: np.ndarray, covered: np.ndarray, n: int) -> np.ndarray:
    """The sorted, comma-joined fragment lengths of the non-reference molecules of each covered position and base
    (covered positions x 4; "" for REF and bases without molecules), from each non-reference molecule's cell
    (position * 4 + base index) and length. They are few (sequencing errors, and a germline site's half), so one
    sort of them all is cheap."""
    text = np.full((len(covered), 4), "", dtype=object)
    if not cell.size:
        return text
    order = np.lexsort((lengths, cell))
    cell, lengths = cell[order], lengths[order]
    bounds = np.flatnonzero(np.diff(cell)) + 1
    cells = cell[np.concatenate([[0], bounds])]
    row_of = np.full(n, -1, dtype=np.int64)
    row_of[covered] = np.arange(len(covered))
    # A non-reference molecule's position is covered (it is one of the position's informative molecules).
    text[row_of[cells // 4], cells % 4] = [
        ",".join(map(str, group.tolist())) for group in np.split(lengths, bounds)
    ]
    return text


def _no_rows() -> pd.DataFrame:
    """The flank table without rows, its count columns typed as a table with rows has them."""
    return compact_table(
        pd.DataFrame({"chrom": [], "pos": [], "ref": [], "context": []}),
        np.zeros((0, 4), dtype=np.int64),
        np.zeros((0, 4), dtype=np.int64),
        np.zeros(0, dtype=np.int64),
        np.full((0, 4), "", dtype=object),
    )


def flank_contexts(positions: pd.DataFrame) -> dict[tuple[str, int], str]:
    """Each flank position's (chrom, pos) -> its reference trinucleotide."""
    keys = zip(positions["chrom"], positions["pos"].astype(int).tolist(), strict=True)
    return dict(zip(keys, positions["context"], strict=True))


def no_flanks() -> pd.DataFrame:
    """An empty flank table (a sample without panel loci of its own, or `counting.flank_window: 0`)."""
    return _no_rows()


@dataclass
class FlankWork:
    """What counting the flanks of one sample is: the clusters of flank positions to count (contig as the table
    and the file spell it), each with its positions' trinucleotide contexts."""

    units: list[tuple[str, str, FlankCluster]]

    def in_order(self, table: pd.DataFrame) -> pd.DataFrame:
        """A flank table of these units counted contig by contig in another order (the panel loci's, with which
        they are read), with its contigs back in the units' order."""
        rank = {chrom: i for i, chrom in enumerate(dict.fromkeys(unit[0] for unit in self.units))}
        contigs = table["chrom"].map(rank).to_numpy()
        if len(contigs) < 2 or (np.diff(contigs) >= 0).all():
            return table
        return table.iloc[np.argsort(contigs, kind="stable")].reset_index(drop=True)


def flank_work(
    alignments: pysam.AlignmentFile,
    reference: str,
    panel: pd.DataFrame,
    patient_id: str | None,
    window: FlankWindow,
) -> FlankWork:
    """The flank positions of one sample, as units of work for the counting engine.

    Parameters
    ----------
    alignments : pysam.AlignmentFile
        The sample's open BAM/CRAM (its contig names).
    reference : str
        The reference FASTA.
    panel : pandas.DataFrame
        The cohort panel.
    patient_id : str or None
        The sample's patient (None or a patient without panel loci: no flanks).
    window : FlankWindow
        Which positions are flanks.

    Returns
    -------
    FlankWork
        The clusters of flank positions and their contexts; no units when there are no flanks.
    """
    if not patient_id or window.window <= 0:
        return FlankWork([])
    with pysam.FastaFile(reference) as fasta:
        positions = flank_positions(panel, patient_id, fasta, window)
    if positions.empty:
        return FlankWork([])
    names = contig_map(positions["chrom"].unique(), alignments.references)
    positions = positions[positions["chrom"].isin(names)]
    return FlankWork(flank_loci(positions, names))


def joined_flanks(parts: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """The flank tables of consecutive parts of a sample's units as one table (the same as counting them all)."""
    tables = [part for part in parts if len(part)]
    if not tables:
        return no_flanks()
    return pd.concat(tables, ignore_index=True) if len(tables) > 1 else tables[0]
