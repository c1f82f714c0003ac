"""What a simulation gives: its settings, every SAM record of a sample as parallel arrays, and the sample
with its per-locus truth; the SAM flags and the few record helpers the simulator, the BAM writers and the
counting oracle share."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields

import numpy as np
import pandas as pd

from mrdtrack.vocabulary import LOCUS_KEY

LocusKey = tuple[str, int, str, str]  # chrom, 1-based pos, ref, alt: one SNV of a panel
# The simulator's name in the headers of the files it writes (##source of panel VCFs, @PG of BAMs).
SIMULATOR = "mrdtrack.simulation.cfdna"

# SAM flag bits (SAM specification, section 1.4).
PAIRED, PROPER, UNMAPPED, MATE_UNMAPPED = 0x1, 0x2, 0x4, 0x8
REVERSE, MATE_REVERSE, READ1, READ2 = 0x10, 0x20, 0x40, 0x80
SECONDARY, QCFAIL, DUPLICATE, SUPPLEMENTARY = 0x100, 0x200, 0x400, 0x800


@dataclass
class SimulationSettings:
    """Everything that shapes one simulated library (defaults: a deep-ish UMI cfDNA capture panel)."""

    molecules_per_locus: float = 150.0  # mean unique molecules at a locus of capture efficiency 1
    capture_sd: float = 0.3  # log-scale spread of per-locus capture efficiency (fixed per locus, GC-driven)
    family_size_mean: float = 2.5  # mean read pairs per molecule (1 + negative binomial)
    family_size_shape: float = 1.5  # negative-binomial shape: smaller = more over-dispersed PCR
    read_length: int = 100
    umi_lengths: tuple[int, ...] = (5, 5)  # RX is the parts joined by '-' (duplex-style 2x5)
    umi_error_rate: float = 0.02  # chance that a duplicate copy's UMI has one sequencing error
    min_umi_distance: int = 4  # molecules sharing coordinates get UMIs at least this far apart
    normal_fragment_mode: float = 167.0
    tumor_fragment_mode: float = 145.0
    min_fragment_length: int = 40
    max_fragment_length: int = 450  # must stay below the loci spacing so a fragment spans one locus
    dinucleosome_fraction: float = 0.03
    substitution_rate: float = 2e-5  # per base per molecule (polymerase errors), any base
    cpg_deamination_rate: float = 3e-4  # per CpG C (or G) per molecule: C>T / G>A
    oxog_rate: float = 2e-4  # per G on the read-1 strand per molecule: G>T
    locus_noise: dict[LocusKey, float] = field(default_factory=dict)  # extra ALT rate at noisy loci
    deletion_fraction: float = 0.004  # molecules with a 1-3 bp deletion over their locus
    low_quality_segments: float = 0.3  # mean runs of lower-quality bases per read
    quality_tail_fraction: float = 0.15  # reads whose 3' end degrades to Q23/Q12
    q2_tail_fraction: float = 0.03  # reads ending in a Q2 run
    q2_clip_fraction: float = 0.5  # of those, the aligner soft-clips the Q2 run
    adapter_readthrough_fraction: float = 0.03  # reads of short fragments keeping some adapter (soft-clipped)
    reduced_mapq_fraction: float = 0.02  # molecules' reads with MAPQ 20-59
    low_mapq_fraction: float = 0.004  # molecules' reads with MAPQ below 20 (no ALT implied)
    duplicate_marked: bool = False  # flag 0x400 on all pairs of a family but the best one
    n_mapq0: int = 3  # artifact pairs carrying the ALT, MAPQ 0
    n_qcfail: int = 3  # artifact pairs carrying the ALT, flag 0x200
    n_secondary: int = 3  # artifact records carrying the ALT, flag 0x100
    n_supplementary: int = 3  # artifact records carrying the ALT, flag 0x800
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
    """A simulated library: its records (sorted like a coordinate-sorted BAM) and per-locus truth."""

    sample_id: str
    tf: float
    settings: SimulationSettings
    reference_names: tuple[str, ...]
    reference_offsets: np.ndarray
    loci: pd.DataFrame  # chrom, pos, ref, alt, weight, chip_vaf, noise, efficiency
    molecules: pd.DataFrame  # one row per simulated molecule (artifacts included, kind column)
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
