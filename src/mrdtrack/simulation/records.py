"""What a simulation gives: its settings, every SAM record of a sample as parallel arrays, and the sample
with its per-locus truth; the SAM flags and the few record helpers the simulator, the BAM writers and the
counting oracle share."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields

import numpy as np
import pandas as pd

from mrdtrack.vocabulary import LOCUS_KEY

#: One SNV of a panel: (chrom, 1-based pos, ref, alt).
LocusKey = tuple[str, int, str, str]
# The simulator's name in the headers of the files it writes (##source of panel VCFs, @PG of BAMs).
SIMULATOR = "mrdtrack.simulation.cfdna"

# SAM flag bits (SAM specification, section 1.4).
PAIRED, PROPER, UNMAPPED, MATE_UNMAPPED = 0x1, 0x2, 0x4, 0x8
REVERSE, MATE_REVERSE, READ1, READ2 = 0x10, 0x20, 0x40, 0x80
SECONDARY, QCFAIL, DUPLICATE, SUPPLEMENTARY = 0x100, 0x200, 0x400, 0x800


@dataclass
class SimulationSettings:
    """Everything that shapes one simulated library (defaults: a deep-ish UMI cfDNA capture panel).

    Rates are probabilities; "pairs" are read pairs, "molecules" unique cfDNA fragments (a PCR family).

    Parameters
    ----------
    molecules_per_locus : float
        Mean unique molecules at a locus of capture efficiency 1 (Poisson around it times the efficiency).
    capture_sd : float
        Log-scale spread of per-locus capture efficiency (fixed per locus, GC-driven).
    family_size_mean : float
        Mean read pairs per molecule: 1 + a negative binomial.
    family_size_shape : float
        The negative binomial's shape: smaller means more over-dispersed PCR.
    read_length : int
        Sequenced bases per read.
    umi_lengths : tuple of int
        Bases of each UMI part; the RX tag joins the parts with '-' (default duplex-style 2x5).
    umi_error_rate : float
        Probability that a PCR copy's UMI has one sequencing error (at most one per family).
    min_umi_distance : int
        Molecules sharing coordinates get UMIs at least this many bases (Hamming) apart.
    normal_fragment_mode, tumor_fragment_mode : float
        Mononucleosome peak of the fragment lengths (bp) of non-tumor and tumor-derived DNA.
    min_fragment_length, max_fragment_length : int
        Shortest and longest fragment (bp); the longest must stay below the loci spacing so that a fragment
        spans one locus.
    dinucleosome_fraction : float
        Share of fragments from the dinucleosome peak.
    substitution_rate : float
        Polymerase errors per base per molecule, any base.
    cpg_deamination_rate : float
        C>T (G>A on the other strand) per CpG C (or G) per molecule.
    oxog_rate : float
        8-oxoG damage: G>T per G on the read-1 strand per molecule.
    locus_noise : dict of LocusKey to float
        Noisy locus -> extra probability that a molecule shows its ALT.
    deletion_fraction : float
        Share of molecules with a 1-3 bp deletion over their locus.
    low_quality_segments : float
        Mean runs of lower-quality bases (Q23, Q12, Q2) per read.
    quality_tail_fraction : float
        Share of reads whose 3' end degrades to Q23, then Q12.
    q2_tail_fraction : float
        Share of reads ending in a run of Q2 bases.
    q2_clip_fraction : float
        Of those, the share whose Q2 run the aligner soft-clips.
    adapter_readthrough_fraction : float
        Share of reads of fragments shorter than the read that keep some adapter (soft-clipped).
    reduced_mapq_fraction : float
        Share of molecules whose reads have MAPQ 21-57.
    low_mapq_fraction : float
        Share of molecules whose reads have MAPQ below 20 (with no ALT implied).
    duplicate_marked : bool
        Whether flag 0x400 marks every pair of a family but the best one, as a duplicate marker does.
    n_mapq0, n_qcfail : int
        Artifact pairs carrying the ALT at a locus with MAPQ 0, and with the QC-fail flag (0x200).
    n_secondary, n_supplementary : int
        Artifact records carrying the ALT at a locus while their read's primary alignment lies elsewhere,
        flagged secondary (0x100) and supplementary (0x800).
    n_unmapped_pairs : int
        Pairs where neither mate aligned (at the end of the file).
    n_mate_unmapped : int
        Pairs with one unaligned mate, placed at its mate's position near (not over) a locus.
    library : str
        The read group's library (LB).
    platform_unit : str
        The read group's platform unit (PU).
    """

    molecules_per_locus: float = 150.0
    capture_sd: float = 0.3
    family_size_mean: float = 2.5
    family_size_shape: float = 1.5
    read_length: int = 100
    umi_lengths: tuple[int, ...] = (5, 5)
    umi_error_rate: float = 0.02
    min_umi_distance: int = 4
    normal_fragment_mode: float = 167.0
    tumor_fragment_mode: float = 145.0
    min_fragment_length: int = 40
    max_fragment_length: int = 450
    dinucleosome_fraction: float = 0.03
    substitution_rate: float = 2e-5
    cpg_deamination_rate: float = 3e-4
    oxog_rate: float = 2e-4
    locus_noise: dict[LocusKey, float] = field(default_factory=dict)
    deletion_fraction: float = 0.004
    low_quality_segments: float = 0.3
    quality_tail_fraction: float = 0.15
    q2_tail_fraction: float = 0.03
    q2_clip_fraction: float = 0.5
    adapter_readthrough_fraction: float = 0.03
    reduced_mapq_fraction: float = 0.02
    low_mapq_fraction: float = 0.004
    duplicate_marked: bool = False
    n_mapq0: int = 3
    n_qcfail: int = 3
    n_secondary: int = 3
    n_supplementary: int = 3
    n_unmapped_pairs: int = 4
    n_mate_unmapped: int = 2
    library: str = "lib1"
    platform_unit: str = "SIMFLOW:1"

    def replace(self, **changes: object) -> SimulationSettings:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return SimulationSettings(**values)  # type: ignore[arg-type]


@dataclass
class Records:
    """Every SAM record of a sample, as parallel arrays (reference-orientation SEQ/QUAL matrices).

    CIGAR is [cl S][m1 M][dlen D][m2 M][cr S], with `hclip` hard-clipped bases in front (supplementary).
    `pos`/`mpos` are 0-based; `tid`/`mtid` -1 when unmapped.
    """

    qid: np.ndarray
    flag: np.ndarray
    tid: np.ndarray
    pos: np.ndarray
    mapq: np.ndarray
    cl: np.ndarray
    m1: np.ndarray
    dlen: np.ndarray
    m2: np.ndarray
    cr: np.ndarray
    hclip: np.ndarray
    mtid: np.ndarray
    mpos: np.ndarray
    tlen: np.ndarray
    length: np.ndarray
    seq: np.ndarray
    qual: np.ndarray
    umi: np.ndarray  # RX strings (object)
    sa: np.ndarray  # SA tag strings, '' when absent (object)
    mate_rec: np.ndarray  # index of the primary mate record, -1 when none

    def __len__(self) -> int:
        return int(self.qid.size)

    def take(self, index: np.ndarray) -> Records:
        """Records reordered/subset by `index` (mate_rec re-pointed)."""
        inverse = np.full(len(self), -1, dtype=np.int64)
        inverse[index] = np.arange(index.size)
        parts = {f.name: getattr(self, f.name)[index] for f in fields(self)}
        mate = parts["mate_rec"]
        parts["mate_rec"] = np.where(mate >= 0, inverse[np.maximum(mate, 0)], -1)
        return Records(**parts)

    @staticmethod
    def concat(items: Sequence[Records]) -> Records:
        """Blocks joined in order; their `mate_rec` must already index the joined array."""
        return Records(
            **{f.name: np.concatenate([getattr(r, f.name) for r in items]) for f in fields(Records)}
        )

    def aligned_span(self) -> np.ndarray:
        return self.m1 + self.dlen + self.m2


@dataclass
class SimulatedSample:
    """A simulated library: its records (sorted like a coordinate-sorted BAM) and per-locus truth.

    Parameters
    ----------
    sample_id : str
        The sample's name (read group SM).
    tf : float
        Tumor fraction: the probability that a molecule is tumor-derived.
    settings : SimulationSettings
        What shaped the library.
    reference_names : tuple of str
        The contigs, in the reference's order (BAM header).
    reference_offsets : numpy.ndarray
        Each contig's start in the reference's concatenated base codes (global positions).
    loci : pandas.DataFrame
        One row per simulated locus in reference order: chrom, 1-based pos, ref, alt, tumor `weight`,
        `chip_vaf`, extra ALT rate `noise`, capture `efficiency`, and the contig index, global 0-based position
        and base codes the layers use.
    molecules : pandas.DataFrame
        One row per simulated molecule, artifacts included (`kind`: real, mapq0, qcfail): its locus, whether it
        is tumor-derived, carries the ALT or a CHIP variant, its length, start, deletion, orientation, family
        size and base at the locus.
    records : Records
        Every SAM record of the sample, as parallel arrays.
    qname_prefix : str
        Read names are `{qname_prefix}:{number}`.
    """

    sample_id: str
    tf: float
    settings: SimulationSettings
    reference_names: tuple[str, ...]
    reference_offsets: np.ndarray
    loci: pd.DataFrame
    molecules: pd.DataFrame
    records: Records
    qname_prefix: str = "SIM"

    def qname(self, qid: int) -> str:
        return f"{self.qname_prefix}:{qid}"

    def truth(self) -> pd.DataFrame:
        """Per-locus biological truth: molecules simulated and tumor-derived ALT molecules among them."""
        real = self.molecules[self.molecules["kind"] == "real"]
        grouped = real.groupby("locus")
        out = self.loci[LOCUS_KEY].copy()
        out["true_molecules"] = grouped.size().reindex(range(len(out)), fill_value=0).to_numpy()
        tumor_alt = real["tumor"] & real["alt"]
        out["true_tumor_alt_molecules"] = (
            tumor_alt.groupby(real["locus"]).sum().reindex(range(len(out)), fill_value=0).to_numpy()
        )
        return out


def blank_records(n: int, width: int) -> dict[str, np.ndarray]:
    ints = {
        f.name: np.zeros(n, np.int64) for f in fields(Records) if f.name not in ("seq", "qual", "umi", "sa")
    }
    return {
        **ints,
        "seq": np.full((n, width), 4, np.uint8),
        "qual": np.zeros((n, width), np.uint8),
        "umi": np.full(n, "", dtype=object),
        "sa": np.full(n, "", dtype=object),
    }


def flat_ranges(rows: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flatten runs [start, start+length) per row into (row, column) index arrays."""
    lengths = np.maximum(lengths, 0)
    r = np.repeat(rows, lengths)
    first = np.concatenate([[0], np.cumsum(lengths)[:-1]]) if lengths.size else lengths
    c = np.repeat(starts, lengths) + np.arange(r.size) - np.repeat(first, lengths)
    return r, c


def coordinate_order(records: Records) -> np.ndarray:
    """Coordinate order (unmapped last); ties by strand, mate position and name, so PCR copies of a molecule
    sit together, as after most sorters."""
    tid = np.where(records.tid < 0, np.iinfo(np.int64).max, records.tid)
    return np.lexsort(
        (records.flag, records.qid, records.tlen, records.mpos, records.flag & REVERSE, records.pos, tid)
    )


def cigar_strings(records: Records) -> list[str]:
    out = []
    for flag, h, cl, m1, d, m2, cr in zip(
        records.flag.tolist(), records.hclip.tolist(), records.cl.tolist(), records.m1.tolist(),
        records.dlen.tolist(), records.m2.tolist(), records.cr.tolist(), strict=True,
    ):  # fmt: skip
        if flag & UNMAPPED:
            out.append("*")
            continue
        cigar = (f"{h}H" if h else "") + (f"{cl}S" if cl else "") + f"{m1}M"
        cigar += (f"{d}D{m2}M" if d else "") + (f"{cr}S" if cr else "")
        out.append(cigar)
    return out
