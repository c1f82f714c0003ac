"""Hand-made samples for unit tests of counters: exactly the SAM records a test writes, with no truth."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mrdtrack.simulation.molecules import locus_table
from mrdtrack.simulation.records import (
    READ1,
    READ2,
    SECONDARY,
    SUPPLEMENTARY,
    Records,
    SimulatedSample,
    SimulationSettings,
    blank_records,
    coordinate_order,
)
from mrdtrack.simulation.reference import ENCODE, Reference


@dataclass
class ReadSpec:
    """One SAM record written by hand (for `sample_from_reads`); positions 1-based as in SAM.

    Parameters
    ----------
    qname : int
        Read number: the record is named `SIM:{qname}`, and records with the same number are one template
        (mates pair up by it).
    flag : int
        SAM FLAG bits (paired, read 1/2, reverse, secondary, ...).
    chrom : str
        The contig the record aligns to (its mate is placed on the same one).
    pos : int
        1-based leftmost aligned position.
    cigar : str
        `[nH][nS]nM[nDnM][nS]` only: optional hard and soft clips around one or two aligned blocks with a
        deletion between them.
    seq : str
        The bases as stored in SAM (reference orientation), soft-clipped ones included.
    qual : int or sequence of int
        Base quality (Phred) of every base, or one per base.
    mapq : int
        Mapping quality.
    mate_pos : int
        1-based position of the mate (0 when none).
    tlen : int
        Template length (TLEN), signed as in SAM.
    umi : str
        The UMI, written as the RX tag (empty by default).
    """

    qname: int
    flag: int
    chrom: str
    pos: int
    cigar: str
    seq: str
    qual: int | Sequence[int] = 37
    mapq: int = 60
    mate_pos: int = 0
    tlen: int = 0
    umi: str = ""


def sample_from_reads(
    reference: Reference, loci: pd.DataFrame, reads: Sequence[ReadSpec], sample_id: str = "handmade"
) -> SimulatedSample:
    """A sample made of exactly `reads` (mates pair up by qname), for hand-computed `expected_counts` cases or
    tiny BAMs. Truth columns are zero: nothing was simulated.

    Parameters
    ----------
    reference
        The genome the reads are placed on.
    loci
        The loci the sample covers (chrom, 1-based pos, ref, alt).
    reads
        The records, one `ReadSpec` each.
    sample_id
        The sample's name.

    Returns
    -------
    SimulatedSample
        The records in coordinate order.
    """
    width = max(len(r.seq) for r in reads)
    cols = blank_records(len(reads), width)
    for i, r in enumerate(reads):
        h, cl, m1, d, m2, cr = _parse_cigar(r.cigar)
        tid = reference.tid(r.chrom)
        values = {
            "qid": r.qname, "flag": r.flag, "tid": tid, "pos": r.pos - 1, "mapq": r.mapq, "cl": cl, "m1": m1,
            "dlen": d, "m2": m2, "cr": cr, "hclip": h, "mtid": tid, "mpos": r.mate_pos - 1, "tlen": r.tlen,
            "length": len(r.seq),
        }  # fmt: skip
        for name, value in values.items():
            cols[name][i] = value
        cols["seq"][i, : len(r.seq)] = ENCODE[np.frombuffer(r.seq.encode(), np.uint8)]
        cols["qual"][i, : len(r.seq)] = r.qual
        cols["umi"][i] = r.umi
    cols["mate_rec"] = np.array([_mate_index(reads, i) for i in range(len(reads))], dtype=np.int64)
    records = Records(**cols)
    table = locus_table(reference, loci, None, {}, SimulationSettings())
    molecules = pd.DataFrame({"locus": [], "kind": [], "tumor": [], "alt": []})
    sample = SimulatedSample(
        sample_id, 0.0, SimulationSettings(), reference.names, reference.offsets, table, molecules, records
    )
    sample.records = records.take(coordinate_order(records))
    return sample


def _parse_cigar(cigar: str) -> tuple[int, int, int, int, int, int]:
    match = re.fullmatch(r"(?:(\d+)H)?(?:(\d+)S)?(\d+)M(?:(\d+)D(\d+)M)?(?:(\d+)S)?", cigar)
    if match is None:
        raise ValueError(f"unsupported CIGAR {cigar!r}: use [nH][nS]nM[nDnM][nS]")
    h, cl, m1, d, m2, cr = (int(g) if g else 0 for g in match.groups())
    return h, cl, m1, d, m2, cr


def _mate_index(reads: Sequence[ReadSpec], i: int) -> int:
    """The primary record of the other segment with the same name (a secondary record's mate is primary too)."""
    mate_bit = READ2 if reads[i].flag & READ1 else READ1
    for j, other in enumerate(reads):
        primary = not other.flag & (SECONDARY | SUPPLEMENTARY)
        if j != i and other.qname == reads[i].qname and primary and other.flag & mate_bit:
            return j
    return -1
