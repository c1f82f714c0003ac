"""Simulated cell-free DNA targeted sequencing with a known truth (tests, benchmarks, the bundled demo data).

One sample is simulated in four layers, each vectorised with numpy so that hundreds of samples over hundreds
of loci take minutes:

1. molecules: cfDNA fragments captured around each panel locus. A molecule is tumor-derived with probability
   TF (shorter fragments); at the tumor's own loci it carries the ALT with probability w/2. Molecule-level
   errors (PCR / damage) are shared by every copy: a flat substitution rate, C>T at CpG, and 8-oxoG G>T on the
   strand sequenced as read 1 (so G>T in F1R2 pairs and C>A in F2R1 pairs, in reference terms).
2. read pairs: PCR duplicates of each molecule, all with the molecule's UMI (RX); one copy occasionally has a
   one-base UMI error.
3. reads: paired-end, adapter-trimmed (read length = fragment length below the read length), Illumina-binned
   base qualities with per-read sequencing errors at the matching rates, a few 3' soft clips and deletions.
4. artifacts that must never be counted (MAPQ 0, secondary, supplementary, QC-fail records carrying the ALT),
   unmapped pairs and pairs with an unmapped mate.

`expected_counts` re-derives, from these records (not from a BAM), what a counter that follows the project's
counting rules must report, so the simulated files double as a test oracle.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import pandas as pd
import pysam
from numba import njit

from mrdtrack import __version__
from mrdtrack.inputs.panel import WEIGHT_BOUNDS

LocusKey = tuple[str, int, str, str]

BASES = "ACGT"
_BASE_BYTES = np.frombuffer(b"ACGTN", dtype=np.uint8)
_ENCODE = np.full(256, 4, dtype=np.uint8)
for _i, _b in enumerate(b"ACGT"):
    _ENCODE[_b] = _i
    _ENCODE[_b + 32] = _i  # lower case (soft-masked) input
_COMPLEMENT = np.array([3, 2, 1, 0, 4], dtype=np.uint8)
# Residual Illumina adapter seen when the trimmer misses a read-through (the read-1 adapter start).
ADAPTER = "AGATCGGAAGAGCACACGTCTGAACTCCAGTCAC"

# SAM flags used here.
PAIRED, PROPER, UNMAPPED, MATE_UNMAPPED = 0x1, 0x2, 0x4, 0x8
REVERSE, MATE_REVERSE, READ1, READ2 = 0x10, 0x20, 0x40, 0x80
SECONDARY, QCFAIL, DUPLICATE, SUPPLEMENTARY = 0x100, 0x200, 0x400, 0x800

# Illumina binned qualities (NovaSeq RTA3 style) and the error probability each one stands for.
QUALITY_BINS = (2, 12, 23, 37)
_ERROR_PROB = np.zeros(64, np.float32)
_ERROR_PROB[list(QUALITY_BINS)] = [0.63, 10**-1.2, 10**-2.3, 10**-3.7]

# Pyrimidine-centred SNV spectrum of the simulated tumors (C>T dominant, as in breast cancer).
DEFAULT_SPECTRUM: dict[str, float] = {
    "C>A": 0.10,
    "C>G": 0.15,
    "C>T": 0.45,
    "T>A": 0.08,
    "T>C": 0.15,
    "T>G": 0.07,
}
DEFAULT_CONTIGS: dict[str, int] = {"chr1": 120_000, "chr2": 95_000, "chr3": 70_000}


# --------------------------------------------------------------------------------------------------------------
# Reference
# --------------------------------------------------------------------------------------------------------------
@dataclass
class Reference:
    """Contigs as one concatenated array of base codes (A=0, C=1, G=2, T=3) with per-contig offsets."""

    names: tuple[str, ...]
    lengths: tuple[int, ...]
    codes: np.ndarray
    fasta_path: Path | None = None
    # Derived arrays (context sites, padded codes) computed once per reference.
    cache: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    @property
    def offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.lengths)[:-1]]).astype(np.int64)

    def tid(self, chrom: str) -> int:
        return self.names.index(chrom)

    def fetch(self, chrom: str, start: int, end: int) -> str:
        """Sequence of `chrom` over the 0-based half-open interval [start, end)."""
        offset = int(self.offsets[self.tid(chrom)])
        return _BASE_BYTES[self.codes[offset + start : offset + end]].tobytes().decode()

    def md5(self, chrom: str) -> str:
        return hashlib.md5(self.fetch(chrom, 0, self.lengths[self.tid(chrom)]).encode()).hexdigest()


def make_reference(
    rng: np.random.Generator,
    contigs: Mapping[str, int] | None = None,
    gc: float = 0.41,
    cpg_ratio: float = 0.25,
) -> Reference:
    """Random contigs with GC content `gc` and CpG depleted to `cpg_ratio` of its expected frequency."""
    contigs = dict(contigs or DEFAULT_CONTIGS)
    depletion = 1.0 - cpg_ratio
    # Depletion turns C/G into T/A, so start a little GC-richer to land on the requested GC content.
    gc0 = gc + depletion * (gc / 2) ** 2
    probs = [(1 - gc0) / 2, gc0 / 2, gc0 / 2, (1 - gc0) / 2]
    parts = []
    for length in contigs.values():
        seq = rng.choice(4, size=length, p=probs).astype(np.uint8)
        # Methylated CpGs deaminate over evolution (C>T, or G>A on the other strand): the human CpG deficit.
        cpg = np.flatnonzero((seq[:-1] == 1) & (seq[1:] == 2))
        hit = cpg[rng.random(cpg.size) < depletion]
        on_g = rng.random(hit.size) < 0.5
        seq[hit[~on_g]] = 3
        seq[hit[on_g] + 1] = 0
        parts.append(seq)
    return Reference(tuple(contigs), tuple(contigs.values()), np.concatenate(parts))


def write_reference(reference: Reference, path: str | Path, line_width: int = 60) -> Path:
    """Write a bgzipped FASTA with .fai and .gzi indexes; remember the path for CRAM encoding."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    plain = path.with_name(path.name + ".tmp.fa")
    with plain.open("w") as handle:
        for chrom, length in zip(reference.names, reference.lengths, strict=True):
            seq = reference.fetch(chrom, 0, length)
            handle.write(f">{chrom}\n")
            handle.writelines(seq[i : i + line_width] + "\n" for i in range(0, length, line_width))
    pysam.tabix_compress(str(plain), str(path), force=True)
    plain.unlink()
    for stale in (path.with_name(path.name + ".fai"), path.with_name(path.name + ".gzi")):
        stale.unlink(missing_ok=True)
    pysam.faidx(str(path))
    reference.fasta_path = path
    return path


def read_reference(path: str | Path) -> Reference:
    """Load a FASTA (plain or bgzipped, indexed) written by `write_reference` or any other tool."""
    with pysam.FastaFile(str(path)) as fasta:
        names = tuple(fasta.references)
        lengths = tuple(fasta.lengths)
        codes = np.concatenate([_ENCODE[np.frombuffer(fasta.fetch(n).encode(), np.uint8)] for n in names])
    return Reference(names, lengths, codes, Path(path))


# --------------------------------------------------------------------------------------------------------------
# Panels
# --------------------------------------------------------------------------------------------------------------
def make_panel(
    reference: Reference,
    n_loci: int,
    rng: np.random.Generator,
    *,
    avoid: Sequence[tuple[str, int]] = (),
    min_spacing: int = 600,
    margin: int = 500,
    spectrum: Mapping[str, float] | None = None,
    with_ccf: bool = False,
) -> pd.DataFrame:
    """Draw `n_loci` SNVs (1-based `pos`) at least `min_spacing` from each other and from `avoid`.

    Columns: chrom, pos, ref, alt [, ccf]. C>T at CpG is favoured as in real tumors (clock-like signature).
    """
    spectrum = dict(spectrum or DEFAULT_SPECTRUM)
    offsets = reference.offsets
    taken = [int(offsets[reference.tid(c)]) + p - 1 for c, p in avoid]
    rows: list[tuple[str, int, str, str]] = []
    classes, weights = list(spectrum), np.array(list(spectrum.values()))
    attempts = 0
    while len(rows) < n_loci:
        attempts += 1
        if attempts > 200 * n_loci + 1000:
            raise ValueError(f"cannot place {n_loci} loci {min_spacing} bp apart: make the reference larger")
        sub = classes[rng.choice(len(classes), p=weights / weights.sum())]
        site = _draw_site(reference, sub, rng, margin)
        if site is None:
            continue
        gpos, ref, alt = site
        if taken and np.min(np.abs(np.asarray(taken) - gpos)) < min_spacing:
            continue
        taken.append(gpos)
        tid = int(np.searchsorted(offsets, gpos, side="right") - 1)
        rows.append((reference.names[tid], gpos - int(offsets[tid]) + 1, ref, alt))
    panel = pd.DataFrame(rows, columns=["chrom", "pos", "ref", "alt"])
    panel = _sort_loci(panel, reference)
    if with_ccf:
        clonal = rng.random(len(panel)) < 0.7
        ccf = np.where(clonal, rng.uniform(0.9, 1.0, len(panel)), rng.uniform(0.25, 0.8, len(panel)))
        panel["ccf"] = np.round(ccf, 2)
    return panel


def _draw_site(
    reference: Reference, sub: str, rng: np.random.Generator, margin: int
) -> tuple[int, str, str] | None:
    """A random position whose reference base fits substitution class `sub` (either strand)."""
    lengths = np.asarray(reference.lengths)
    tid = int(rng.choice(len(lengths), p=lengths / lengths.sum()))
    start = int(reference.offsets[tid]) + margin
    end = int(reference.offsets[tid]) + int(lengths[tid]) - margin
    gpos = int(rng.integers(start, end))
    pyr_ref, pyr_alt = sub.split(">")
    purine = rng.random() < 0.5
    want = BASES.index(pyr_ref) if not purine else 3 - BASES.index(pyr_ref)
    # Most C>T in tumors sit at CpG: ask for a CpG half of the time.
    need_cpg = sub == "C>T" and rng.random() < 0.5
    window = reference.codes[gpos : min(gpos + 200, end)]
    ok = window == want
    if need_cpg:
        nxt = reference.codes[gpos + 1 : gpos + 1 + window.size]
        prv = reference.codes[gpos - 1 : gpos - 1 + window.size]
        ok &= (nxt == 2) if not purine else (prv == 1)
    hits = np.flatnonzero(ok)
    if hits.size == 0:
        return None
    gpos += int(hits[0])
    ref = BASES[want]
    alt = pyr_alt if not purine else BASES[3 - BASES.index(pyr_alt)]
    return gpos, ref, alt


def _sort_loci(frame: pd.DataFrame, reference: Reference) -> pd.DataFrame:
    order = frame["chrom"].map({c: i for i, c in enumerate(reference.names)})
    return frame.assign(_o=order).sort_values(["_o", "pos"]).drop(columns="_o").reset_index(drop=True)


def panel_weights(panel: pd.DataFrame) -> np.ndarray:
    """Clonality weight w per panel row: the CCF when given, else 1."""
    if "weight" in panel:
        return panel["weight"].to_numpy(float)
    if "ccf" in panel:
        return panel["ccf"].fillna(1.0).to_numpy(float)
    return np.ones(len(panel))


def spread_weights(
    rng: np.random.Generator, weights: np.ndarray, spread: float, cap: float = WEIGHT_BOUNDS[1]
) -> np.ndarray:
    """The tumor's real per-locus weights when they scatter around the panel's (subclonal variants, copy
    numbers the panel does not record): each panel weight times a log-normal factor (`spread`: sd on the log
    scale), at most `cap`, and of mean exactly 1 after that cap. A factor of mean 1 before the cap would make
    the real weights smaller than the panel's on average (by 3% at spread 0.5), a bias no caller could see or
    be blamed for."""
    weights = np.asarray(weights, dtype=float)
    z = rng.standard_normal(len(weights))  # drawn at any spread: the rest of a simulation draws the same
    if spread <= 0:
        return weights.copy()
    out = np.minimum(weights, cap)
    for weight in np.unique(weights[weights < cap]):
        rows = weights == weight
        factor_cap = cap / weight
        out[rows] = weight * np.minimum(
            np.exp(_mean_one_log_mean(spread, factor_cap) + spread * z[rows]), factor_cap
        )
    return out


def _mean_one_log_mean(spread: float, cap: float) -> float:
    """The log-scale mean mu with E[min(exp(mu + spread Z), cap)] = 1 (cap > 1)."""
    from scipy import optimize, stats

    def capped_mean(mu: float) -> float:
        below = np.exp(mu + spread**2 / 2) * stats.norm.cdf((np.log(cap) - mu - spread**2) / spread)
        return float(below + cap * stats.norm.sf((np.log(cap) - mu) / spread)) - 1

    return float(optimize.brentq(capped_mean, -(spread**2) / 2 - 5, np.log(cap)))


def write_panel_vcf(
    panel: pd.DataFrame, path: str | Path, reference: Reference, compress: bool = False
) -> Path:
    """Sites-only VCF 4.2; `compress` gives a bgzipped file with a tabix index (`path` should end in .gz)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    has_ccf = "ccf" in panel
    lines = ["##fileformat=VCFv4.2", "##source=mrdtrack.simulation.cfdna", "##reference=genome.fa.gz"]
    lines += [
        f"##contig=<ID={c},length={n}>" for c, n in zip(reference.names, reference.lengths, strict=True)
    ]
    lines.append('##INFO=<ID=SOMATIC,Number=0,Type=Flag,Description="Somatic mutation in the primary tumor">')
    if has_ccf:
        lines.append(
            '##INFO=<ID=CCF,Number=1,Type=Float,Description="Cancer cell fraction of the variant (0-1)">'
        )
    lines.append('##FILTER=<ID=PASS,Description="All filters passed">')
    lines.append("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO")
    for row in _sort_loci(panel, reference).itertuples(index=False):
        info = "SOMATIC" + (f";CCF={row.ccf:.2f}" if has_ccf else "")
        lines.append(f"{row.chrom}\t{row.pos}\t.\t{row.ref}\t{row.alt}\t.\tPASS\t{info}")
    text = "\n".join(lines) + "\n"
    if not compress:
        path.write_text(text)
        return path
    plain = path.with_name(path.name + ".tmp.vcf")
    plain.write_text(text)
    pysam.tabix_compress(str(plain), str(path), force=True)
    plain.unlink()
    pysam.tabix_index(str(path), preset="vcf", force=True)
    return path


def make_panels(
    reference: Reference,
    n_loci: Mapping[str, int],
    rng: np.random.Generator,
    with_ccf: Mapping[str, bool] | bool = False,
) -> dict[str, pd.DataFrame]:
    """One panel per patient (in the order of `n_loci`), each kept `make_panel`'s spacing from the others'."""
    panels: dict[str, pd.DataFrame] = {}
    taken: list[tuple[str, int]] = []
    for patient, size in n_loci.items():
        ccf = with_ccf if isinstance(with_ccf, bool) else with_ccf[patient]
        panel = make_panel(reference, size, rng, avoid=taken, with_ccf=ccf)
        taken += list(zip(panel["chrom"], panel["pos"], strict=True))
        panels[patient] = panel
    return panels


def locus_key(row: pd.Series) -> LocusKey:
    return (str(row["chrom"]), int(row["pos"]), str(row["ref"]), str(row["alt"]))


def best_captured_locus(
    reference: Reference, panel: pd.DataFrame, substitutions: Sequence[str] = ()
) -> LocusKey:
    """The panel locus with the highest capture efficiency, among `substitutions` (e.g. "CT", "GA": REF+ALT)
    when the panel has any: a designed feature placed there shows even at shallow depth."""
    candidates = panel[(panel["ref"] + panel["alt"]).isin(list(substitutions))] if substitutions else panel
    candidates = candidates if len(candidates) else panel
    return locus_key(candidates.iloc[int(np.argmax(capture_efficiency(reference, candidates)))])


def locus_truth_table(
    panels: Mapping[str, pd.DataFrame], chip: Mapping[LocusKey, float], noise: Mapping[LocusKey, float]
) -> pd.DataFrame:
    """Every panel row with its weight, and whether it carries CHIP (at `chip`'s VAF) or extra noise."""
    frames = [panel.assign(patient_id=pid, weight=panel_weights(panel)) for pid, panel in panels.items()]
    table = pd.concat(frames, ignore_index=True)
    keys = [locus_key(row) for _, row in table.iterrows()]
    table["special"] = ["chip" if k in chip else "noisy" if k in noise else "" for k in keys]
    table["chip_vaf"] = [float(chip.get(k, 0.0)) for k in keys]
    table["noise_rate"] = [float(noise.get(k, 0.0)) for k in keys]
    return table[["patient_id", "chrom", "pos", "ref", "alt", "weight", "special", "chip_vaf", "noise_rate"]]


def plasma_yield(rng: np.random.Generator) -> tuple[float, float]:
    """Plasma volume (mL) and cfDNA mass (ng) of one blood draw: about 3 ng of cfDNA per mL, varying."""
    plasma_ml = round(float(rng.uniform(3.5, 9.0)), 1)
    return plasma_ml, round(plasma_ml * float(rng.lognormal(np.log(3.0), 0.4)), 1)


# --------------------------------------------------------------------------------------------------------------
# Settings and results
# --------------------------------------------------------------------------------------------------------------
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
        out = self.loci[["chrom", "pos", "ref", "alt"]].copy()
        out["true_molecules"] = grouped.size().reindex(range(len(out)), fill_value=0).to_numpy()
        tumor_alt = real["tumor"] & real["alt"]
        out["true_tumor_alt_molecules"] = (
            tumor_alt.groupby(real["locus"]).sum().reindex(range(len(out)), fill_value=0).to_numpy()
        )
        return out


# --------------------------------------------------------------------------------------------------------------
# Fragment lengths
# --------------------------------------------------------------------------------------------------------------
def fragment_length_pmf(mode: float, settings: SimulationSettings, tumor: bool = False) -> np.ndarray:
    """Probability of each fragment length 0..max: a mononucleosome peak at `mode` whose left shoulder has the
    ~10.4 bp helical periodicity of nucleosome-protected DNA, a short-fragment tail and a dinucleosome peak."""
    length = np.arange(settings.max_fragment_length + 1, dtype=float)
    sd_left, sd_right = (20.0, 14.0) if tumor else (14.0, 12.0)
    z = np.where(length <= mode, (length - mode) / sd_left, (length - mode) / sd_right)
    peak = np.exp(-0.5 * z**2)
    short = (0.15 if tumor else 0.05) * np.exp(-0.5 * ((length - mode + 45) / 30.0) ** 2)
    # The ripple grows with distance below the mode so it never out-tops the mononucleosome peak itself.
    depth = np.clip((mode - length) / 40.0, 0.0, 1.0)
    ripple = 1.0 + 0.35 * depth * np.cos(2 * np.pi * (length - mode) / 10.4)
    mono = (peak + short) * ripple
    di = np.exp(-0.5 * ((length - 2 * mode - 10) / 25.0) ** 2)
    pmf = (
        mono / mono.sum() * (1 - settings.dinucleosome_fraction)
        + di / di.sum() * settings.dinucleosome_fraction
    )
    pmf[: settings.min_fragment_length] = 0.0
    return pmf / pmf.sum()


# --------------------------------------------------------------------------------------------------------------
# Simulation
# --------------------------------------------------------------------------------------------------------------
def simulate_sample(
    reference: Reference,
    loci: pd.DataFrame,
    tumor_loci: pd.DataFrame | None,
    tf: float,
    settings: SimulationSettings,
    rng: np.random.Generator,
    *,
    sample_id: str = "sample",
    chip: Mapping[LocusKey, float] | None = None,
) -> SimulatedSample:
    """Simulate one library over `loci` (chrom, pos 1-based, ref, alt; duplicates collapsed).

    `tumor_loci` (rows of the sample's patient panel, optional `ccf`/`weight`) carry tumor signal at `tf`;
    `chip` maps loci to a clonal-hematopoiesis VAF present in the non-tumor molecules.
    """
    table = _locus_table(reference, loci, tumor_loci, chip or {}, settings)
    mol = _draw_molecules(reference, table, tf, settings, rng)
    variants = _molecule_variants(reference, table, mol, settings, rng)
    pairs = _draw_pairs(mol, settings, rng)
    reads, read_locus = _build_reads(reference, mol, pairs, variants, settings, rng)
    split = _split_artifacts(reference, table, reads, read_locus, settings, rng)
    unmapped = _unmapped_records(
        reference, table, settings, rng, int(pairs.qid.size), len(reads) + len(split)
    )
    records = Records.concat([reads, split, unmapped])
    records = records.take(_coordinate_order(records))
    molecules = _molecule_frame(mol, pairs)
    return SimulatedSample(
        sample_id, float(tf), settings, reference.names, reference.offsets, table, molecules, records
    )


def _locus_table(
    reference: Reference,
    loci: pd.DataFrame,
    tumor_loci: pd.DataFrame | None,
    chip: Mapping[LocusKey, float],
    settings: SimulationSettings,
) -> pd.DataFrame:
    table = _sort_loci(loci[["chrom", "pos", "ref", "alt"]].drop_duplicates(), reference)
    keys = list(zip(table["chrom"], table["pos"].astype(int), table["ref"], table["alt"], strict=True))
    weight = dict.fromkeys(keys, 0.0)
    if tumor_loci is not None and len(tumor_loci):
        tumor_keys = zip(
            tumor_loci["chrom"],
            tumor_loci["pos"].astype(int),
            tumor_loci["ref"],
            tumor_loci["alt"],
            strict=True,
        )
        for key, w in zip(tumor_keys, panel_weights(tumor_loci), strict=True):
            if key not in weight:
                raise ValueError(f"tumor locus {key} is not among the simulated loci")
            weight[key] = float(w)
    table["weight"] = [weight[k] for k in keys]
    table["chip_vaf"] = [float(chip.get(k, 0.0)) for k in keys]
    table["noise"] = [float(settings.locus_noise.get(k, 0.0)) for k in keys]
    table["tid"] = [reference.tid(c) for c in table["chrom"]]
    table["gpos"] = reference.offsets[table["tid"].to_numpy()] + table["pos"].to_numpy() - 1
    table["ref_code"] = [BASES.index(b) for b in table["ref"]]
    table["alt_code"] = [BASES.index(b) for b in table["alt"]]
    table["efficiency"] = capture_efficiency(reference, table, settings.capture_sd)
    return table


def capture_efficiency(reference: Reference, loci: pd.DataFrame, sd: float = 0.3) -> np.ndarray:
    """Relative capture efficiency per locus, a property of the assay and the locus alone (the same in every
    sample and whatever other loci are simulated): a GC penalty around 45% GC times a log-normal locus factor
    seeded by the position. About 0.95 on average for a 41% GC genome."""
    tid = np.array([reference.tid(c) for c in loci["chrom"]], dtype=np.int64)
    gpositions = reference.offsets[tid] + loci["pos"].to_numpy(np.int64) - 1
    gc = _gc_fractions(reference, gpositions)
    out = np.empty(len(loci))
    for i, gpos in enumerate(gpositions):
        factor = np.random.default_rng(int(gpos)).standard_normal()
        out[i] = np.exp(-0.5 * ((gc[i] - 0.45) / 0.15) ** 2 + sd * factor - sd**2 / 2)
    return out


def _gc_fractions(reference: Reference, gpositions: np.ndarray) -> np.ndarray:
    """GC share of the 160 bp around each global position (clipped at the genome's ends), from a cached
    running count: exactly the mean of the window's G/C indicators (counts and lengths are exact integers)."""
    if "gc_count" not in reference.cache:
        reference.cache["gc_count"] = np.concatenate([[0], np.cumsum(np.isin(reference.codes, (1, 2)))])
    count = reference.cache["gc_count"]
    start = np.maximum(gpositions - 80, 0)
    end = np.minimum(gpositions + 80, reference.codes.size)
    return (count[end] - count[start]) / (end - start)


@dataclass
class _Molecules:
    locus: np.ndarray
    kind: np.ndarray  # 0 real, 1 mapq0 artifact, 2 qcfail artifact
    tumor: np.ndarray
    alt: np.ndarray  # carries the ALT biologically (tumor, CHIP or artifact)
    chip: np.ndarray
    length: np.ndarray  # molecule length (bases)
    gstart: np.ndarray  # global 0-based reference start
    span: np.ndarray  # reference span = length + dlen
    del_at: np.ndarray  # molecule offset where the deletion starts (== length when none)
    dlen: np.ndarray
    f1r2: np.ndarray  # read 1 on the forward strand
    umi: np.ndarray  # (n, umi_len) codes
    mapq_left: np.ndarray
    mapq_right: np.ndarray
    locus_base: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint8))


def _draw_molecules(
    reference: Reference,
    table: pd.DataFrame,
    tf: float,
    settings: SimulationSettings,
    rng: np.random.Generator,
) -> _Molecules:
    n_loci = len(table)
    counts = rng.poisson(settings.molecules_per_locus * table["efficiency"].to_numpy())
    n_art = settings.n_mapq0 + settings.n_qcfail
    art_locus = rng.integers(0, n_loci, n_art) if n_loci else np.zeros(0, int)
    locus = np.concatenate([np.repeat(np.arange(n_loci), counts), art_locus]).astype(np.int64)
    kind = np.concatenate([np.zeros(counts.sum()), np.ones(settings.n_mapq0), np.full(settings.n_qcfail, 2)])
    n = locus.size
    real = kind == 0
    tumor = (rng.random(n) < tf) & real
    normal_len = rng.choice(
        settings.max_fragment_length + 1, n, p=fragment_length_pmf(settings.normal_fragment_mode, settings)
    )
    tumor_len = rng.choice(
        settings.max_fragment_length + 1,
        n,
        p=fragment_length_pmf(settings.tumor_fragment_mode, settings, True),
    )
    length = np.where(tumor, tumor_len, normal_len).astype(np.int64)
    weight = table["weight"].to_numpy()[locus]
    alt = tumor & (rng.random(n) < weight / 2)
    chip = ~tumor & real & (rng.random(n) < table["chip_vaf"].to_numpy()[locus])
    has_del = (rng.random(n) < settings.deletion_fraction) & real
    dlen = np.where(has_del, rng.integers(1, 4, n), 0)
    alt = (alt | chip | ~real) & ~has_del
    del_at = np.where(has_del, rng.integers(1, np.maximum(length, 2)), length)
    inside = np.floor(rng.random(n) * np.maximum(dlen, 1)).astype(np.int64)
    offset = np.where(has_del, del_at + inside, np.floor(rng.random(n) * length).astype(np.int64))
    gstart = table["gpos"].to_numpy()[locus] - offset
    f1r2 = rng.random(n) < 0.5
    umi = rng.integers(0, 4, (n, sum(settings.umi_lengths)), dtype=np.uint8)
    mapq_left, mapq_right = _draw_mapq(n, settings, rng), _draw_mapq(n, settings, rng)
    mapq_left[kind == 1] = 0
    mapq_right[kind == 1] = 0
    mol = _Molecules(
        locus,
        kind.astype(np.int8),
        tumor,
        alt,
        chip,
        length,
        gstart,
        length + dlen,
        del_at,
        dlen,
        f1r2,
        umi,
        mapq_left,
        mapq_right,
    )
    mol = _drop_off_contig(reference, table, mol)
    _separate_umis(mol, settings, rng)
    return mol


def _draw_mapq(n: int, settings: SimulationSettings, rng: np.random.Generator) -> np.ndarray:
    u = rng.random(n)
    mapq = np.full(n, 60, dtype=np.int64)
    reduced = u < settings.reduced_mapq_fraction
    low = (u >= settings.reduced_mapq_fraction) & (
        u < settings.reduced_mapq_fraction + settings.low_mapq_fraction
    )
    mapq[reduced] = rng.choice([21, 25, 27, 33, 39, 40, 46, 52, 57], reduced.sum())
    mapq[low] = rng.choice([0, 1, 3, 6, 9, 12, 15, 19], low.sum())
    return mapq


def _drop_off_contig(reference: Reference, table: pd.DataFrame, mol: _Molecules) -> _Molecules:
    """Fragments hanging over a contig end cannot exist; loci near ends just get fewer molecules."""
    tid = table["tid"].to_numpy()[mol.locus]
    lo = reference.offsets[tid]
    hi = lo + np.asarray(reference.lengths)[tid]
    keep = (mol.gstart >= lo) & (mol.gstart + mol.span <= hi)
    if keep.all():
        return mol
    return _Molecules(**{f.name: getattr(mol, f.name)[keep] for f in fields(mol) if f.name != "locus_base"})


def _coordinate_groups(mol: _Molecules) -> np.ndarray:
    """Group id per molecule: same start and span = same duplicate coordinates (either strand, as counted)."""
    key = mol.gstart * 1024 + mol.span
    _, inverse = np.unique(key, return_inverse=True)
    return inverse


def _separate_umis(mol: _Molecules, settings: SimulationSettings, rng: np.random.Generator) -> None:
    """Distinct molecules at identical coordinates get UMIs far apart (as a real UMI design guarantees with
    high probability), so a one-error UMI copy can never be mistaken for another molecule."""
    groups = _coordinate_groups(mol)
    sizes = np.bincount(groups)
    for g in np.flatnonzero(sizes > 1):
        members = np.flatnonzero(groups == g)
        while True:
            umis = mol.umi[members]
            dist = (umis[:, None, :] != umis[None, :, :]).sum(axis=2)
            np.fill_diagonal(dist, umis.shape[1])
            if dist.min() >= settings.min_umi_distance:
                break
            mol.umi[members[1:]] = rng.integers(0, 4, (members.size - 1, umis.shape[1]), dtype=np.uint8)


@dataclass
class _Variants:
    mol: np.ndarray
    gpos: np.ndarray
    base: np.ndarray


def _molecule_variants(
    reference: Reference,
    table: pd.DataFrame,
    mol: _Molecules,
    settings: SimulationSettings,
    rng: np.random.Generator,
) -> _Variants:
    """Bases in which a molecule differs from the reference: its biological ALT, then PCR/damage errors."""
    n = mol.locus.size
    idx = np.arange(n)
    locus_g = table["gpos"].to_numpy()[mol.locus]
    noise = rng.random(n) < table["noise"].to_numpy()[mol.locus]
    at_locus = (mol.alt | noise) & (mol.dlen == 0)
    parts = [
        (idx[at_locus], locus_g[at_locus], table["alt_code"].to_numpy()[mol.locus][at_locus].astype(np.uint8))
    ]
    parts.append(_flat_errors(reference, mol, settings.substitution_rate, rng))
    cpg_c, cpg_g = _context_sites(reference)
    parts.append(_site_errors(mol, np.ones(n, bool), cpg_c, 3, settings.cpg_deamination_rate, rng))
    parts.append(_site_errors(mol, np.ones(n, bool), cpg_g, 0, settings.cpg_deamination_rate, rng))
    g_sites, c_sites = _base_sites(reference, 2), _base_sites(reference, 1)
    parts.append(_site_errors(mol, mol.f1r2, g_sites, 3, settings.oxog_rate, rng))
    parts.append(_site_errors(mol, ~mol.f1r2, c_sites, 0, settings.oxog_rate, rng))
    m = np.concatenate([p[0] for p in parts])
    g = np.concatenate([p[1] for p in parts])
    b = np.concatenate([p[2] for p in parts]).astype(np.uint8)
    # A later variant at the same base wins (an error on top of the ALT); keep positions outside deletions.
    offset = g - mol.gstart[m]
    in_del = (offset >= mol.del_at[m]) & (offset < mol.del_at[m] + mol.dlen[m])
    m, g, b = m[~in_del], g[~in_del], b[~in_del]
    _, last = np.unique(np.stack([m, g])[:, ::-1], axis=1, return_index=True)
    keep = np.sort(m.size - 1 - last)
    variants = _Variants(m[keep], g[keep], b[keep])
    mol.locus_base = _locus_bases(reference, table, mol, variants)
    return variants


def _flat_errors(
    reference: Reference, mol: _Molecules, rate: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n_err = rng.poisson(rate * mol.length)
    m = np.repeat(np.arange(mol.locus.size), n_err)
    offset = np.floor(rng.random(m.size) * mol.length[m]).astype(np.int64)
    g = mol.gstart[m] + offset + (offset >= mol.del_at[m]) * mol.dlen[m]
    ref = reference.codes[g]
    transition = rng.random(m.size) < 0.5
    # A<->G and C<->T are transitions (code xor 2); otherwise one of the two transversions.
    transversion = np.where(rng.random(m.size) < 0.5, ref ^ 1, 3 - ref)
    return m, g, np.where(transition, ref ^ 2, transversion).astype(np.uint8)


def _site_errors(
    mol: _Molecules,
    eligible: np.ndarray,
    sites: np.ndarray,
    new_base: int,
    rate: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Errors at context sites (sorted global positions) inside each eligible molecule, `rate` per site."""
    lo = np.searchsorted(sites, mol.gstart)
    hi = np.searchsorted(sites, mol.gstart + mol.span)
    n_err = rng.poisson(rate * (hi - lo) * eligible)
    m = np.repeat(np.arange(mol.locus.size), n_err)
    pick = lo[m] + np.floor(rng.random(m.size) * (hi - lo)[m]).astype(np.int64)
    return m, sites[pick], np.full(m.size, new_base, np.uint8)


def _context_sites(reference: Reference) -> tuple[np.ndarray, np.ndarray]:
    """Global positions of CpG cytosines and of their guanines (contig joins cannot be CpGs in practice)."""
    if "cpg" not in reference.cache:
        c = reference.codes
        reference.cache["cpg"] = np.flatnonzero((c[:-1] == 1) & (c[1:] == 2))
    cpg = reference.cache["cpg"]
    return cpg, cpg + 1


def _base_sites(reference: Reference, code: int) -> np.ndarray:
    if BASES[code] not in reference.cache:
        reference.cache[BASES[code]] = np.flatnonzero(reference.codes == code)
    return reference.cache[BASES[code]]


def _locus_bases(
    reference: Reference, table: pd.DataFrame, mol: _Molecules, variants: _Variants
) -> np.ndarray:
    """Each molecule's true base at its locus (4 when deleted), after all molecule-level changes."""
    locus_g = table["gpos"].to_numpy()[mol.locus]
    base = reference.codes[locus_g].copy()
    base[mol.dlen > 0] = 4
    hit = variants.gpos == locus_g[variants.mol]
    base[variants.mol[hit]] = variants.base[hit]
    return base


@dataclass
class _Pairs:
    mol: np.ndarray
    copy: np.ndarray
    umi: np.ndarray  # (n_pairs, umi_len) codes
    qid: np.ndarray


def _draw_pairs(mol: _Molecules, settings: SimulationSettings, rng: np.random.Generator) -> _Pairs:
    n = mol.locus.size
    extra = settings.family_size_mean - 1
    shape = settings.family_size_shape
    fam = 1 + (rng.negative_binomial(shape, shape / (shape + extra), n) if extra > 0 else np.zeros(n, int))
    fam[mol.kind != 0] = 1
    pair_mol = np.repeat(np.arange(n), fam)
    first = np.concatenate([[0], np.cumsum(fam)[:-1]])
    copy = np.arange(pair_mol.size) - first[pair_mol]
    umi = mol.umi[pair_mol].copy()
    # At most one mis-read UMI per family: a second one would make the truth depend on clustering order.
    p_err = 1 - (1 - settings.umi_error_rate) ** np.maximum(fam - 1, 0)
    err_mol = np.flatnonzero(rng.random(n) < p_err)
    err_pair = first[err_mol] + 1 + np.floor(rng.random(err_mol.size) * (fam[err_mol] - 1)).astype(np.int64)
    col = rng.integers(0, umi.shape[1], err_pair.size)
    umi[err_pair, col] = (umi[err_pair, col] + rng.integers(1, 4, err_pair.size)) % 4
    # Names follow molecule order (read names carry no meaning); numbering a molecule's copies together keeps
    # them adjacent in the sorted file, which makes the BAM about 15% smaller than random names do.
    qid = np.arange(pair_mol.size)
    return _Pairs(pair_mol, copy, umi, qid)


def _ranges(rows: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flatten runs [start, start+length) per row into (row, column) index arrays."""
    lengths = np.maximum(lengths, 0)
    r = np.repeat(rows, lengths)
    first = np.concatenate([[0], np.cumsum(lengths)[:-1]]) if lengths.size else lengths
    c = np.repeat(starts, lengths) + np.arange(r.size) - np.repeat(first, lengths)
    return r, c


def _qualities(
    total: np.ndarray, width: int, settings: SimulationSettings, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Binned base qualities in sequencing orientation (mostly Q37, short runs of lower quality, 3' decay, Q2
    tails) and the length of each read's Q2 tail. Runs rather than independent draws keep BAMs compressible,
    as real binned qualities are."""
    n = total.size
    qual = np.full((n, width), 37, np.uint8)
    rows = np.repeat(np.arange(n), rng.poisson(settings.low_quality_segments, n))
    seg_len = rng.geometric(1 / 3, rows.size)
    starts = np.floor(rng.random(rows.size) * total[rows]).astype(np.int64)
    values = rng.choice(np.array([23, 12, 2], np.uint8), rows.size, p=[0.6, 0.3, 0.1])
    r, c = _ranges(rows, starts, seg_len)
    v = np.repeat(values, seg_len)
    ok = c < total[r]
    qual[r[ok], c[ok]] = v[ok]
    tail = np.flatnonzero(rng.random(n) < settings.quality_tail_fraction)
    k = np.minimum(4 + rng.geometric(0.1, tail.size), total[tail])
    r, c = _ranges(tail, total[tail] - k, k)
    qual[r, c] = np.minimum(qual[r, c], np.where(c >= total[r] - 3, 12, 23)).astype(np.uint8)
    q2 = rng.random(n) < settings.q2_tail_fraction
    q2len = np.where(q2, np.minimum(rng.integers(3, 26, n), total // 2), 0)
    rows = np.flatnonzero(q2len)
    r, c = _ranges(rows, total[rows] - q2len[rows], q2len[rows])
    qual[r, c] = 2
    qual[np.arange(width)[None, :] >= total[:, None]] = 0
    return qual, q2len


def _umi_strings(codes: np.ndarray, parts: Sequence[int]) -> np.ndarray:
    """UMI code rows -> RX strings, parts joined by '-' (SAM convention for multi-part UMIs)."""
    chunks, start = [], 0
    for size in parts:
        chunks.append(_BASE_BYTES[codes[:, start : start + size]])
        chunks.append(np.full((codes.shape[0], 1), ord("-"), np.uint8))
        start += size
    joined = np.ascontiguousarray(np.concatenate(chunks[:-1], axis=1))
    return joined.view(f"S{joined.shape[1]}").ravel().astype(str).astype(object)


@dataclass
class _ReadLayout:
    """Where each read's bases come from: molecule offsets, adapter bases and 3' clips."""

    mol: np.ndarray
    right: np.ndarray  # reverse-strand read at the fragment's right end
    rl: np.ndarray  # molecule bases read
    s0: np.ndarray  # first molecule offset read
    ka: np.ndarray  # adapter bases appended (soft-clipped)
    kb: np.ndarray  # Q2 tail bases soft-clipped
    total: np.ndarray  # SEQ length


def _read_layout(
    mol: _Molecules, pairs: _Pairs, settings: SimulationSettings, rng: np.random.Generator
) -> _ReadLayout:
    width = settings.read_length
    m = np.repeat(pairs.mol, 2)
    right = np.tile(np.array([False, True]), pairs.mol.size)
    length = mol.length[m]
    rl = np.minimum(length, width)
    s0 = np.where(right, length - rl, 0)
    room = np.minimum(width - rl, 20)
    through = (rng.random(m.size) < settings.adapter_readthrough_fraction) & (room > 0) & (mol.kind[m] == 0)
    ka = np.where(through, 1 + np.floor(rng.random(m.size) * np.maximum(room, 1)).astype(np.int64), 0)
    return _ReadLayout(m, right, rl, s0, ka, np.zeros(m.size, np.int64), rl + ka)


def _read_sequences(reference: Reference, mol: _Molecules, lay: _ReadLayout, width: int) -> np.ndarray:
    """Reference-orientation SEQ of every read before molecule variants and sequencing errors."""
    padded = _padded_codes(reference, width)
    lead = np.where(lay.right, lay.ka, 0)
    # Most reads copy a contiguous reference window: take rows of a sliding-window view (a memcpy each).
    first = mol.gstart[lay.mol] + lay.s0 - lead + width
    seq = np.lib.stride_tricks.sliding_window_view(padded, width)[first]
    gapped = np.flatnonzero((mol.dlen[lay.mol] > 0) & (mol.del_at[lay.mol] < lay.s0 + lay.rl))
    if gapped.size:
        seq[gapped] = _gapped_sequences(reference, mol, lay, gapped, width)
    clipped = np.flatnonzero(lay.ka > 0)
    if clipped.size:
        seq[clipped] = _adapter_sequences(seq[clipped], lay, clipped, width)
    seq[np.arange(width)[None, :] >= lay.total[:, None]] = 4
    return seq


def _padded_codes(reference: Reference, width: int) -> np.ndarray:
    key = f"padded{width}"
    if key not in reference.cache:
        pad = np.full(width, 4, np.uint8)
        reference.cache[key] = np.concatenate([pad, reference.codes.astype(np.uint8), pad])
    return reference.cache[key]


def _gapped_sequences(
    reference: Reference, mol: _Molecules, lay: _ReadLayout, rows: np.ndarray, width: int
) -> np.ndarray:
    """Reads of molecules with a deletion: map each molecule offset to the reference across the gap."""
    m = lay.mol[rows]
    col = np.arange(width, dtype=np.int64)[None, :]
    lead = np.where(lay.right[rows], lay.ka[rows], 0)[:, None]
    offset = np.clip(lay.s0[rows][:, None] + col - lead, 0, (mol.length[m] - 1)[:, None])
    after = offset >= mol.del_at[m][:, None]
    return reference.codes[mol.gstart[m][:, None] + offset + after * mol.dlen[m][:, None]]


def _adapter_sequences(seq: np.ndarray, lay: _ReadLayout, rows: np.ndarray, width: int) -> np.ndarray:
    """Append the missed adapter at each read's 3' end (left of a reverse read in reference orientation)."""
    adapter = _ENCODE[np.frombuffer(ADAPTER.encode(), np.uint8)]
    col = np.arange(width)[None, :]
    total, rl = lay.total[rows][:, None], lay.rl[rows][:, None]
    right, ka = lay.right[rows][:, None], lay.ka[rows][:, None]
    fwd = ~right & (col >= rl) & (col < total)
    seq = np.where(fwd, adapter[np.clip(col - rl, 0, adapter.size - 1)], seq)
    rev = right & (col < ka)
    return np.where(rev, _COMPLEMENT[adapter[np.clip(total - 1 - col - rl, 0, adapter.size - 1)]], seq)


def _apply_variants(
    seq: np.ndarray, mol: _Molecules, pairs: _Pairs, lay: _ReadLayout, variants: _Variants
) -> None:
    """Write molecule-level variants into every read (every PCR copy) that covers them."""
    fam = np.bincount(pairs.mol, minlength=mol.locus.size)
    first_read = 2 * np.concatenate([[0], np.cumsum(fam)[:-1]])
    vi, r = _ranges(np.arange(variants.mol.size), first_read[variants.mol], 2 * fam[variants.mol])
    m = variants.mol[vi]
    offset = variants.gpos[vi] - mol.gstart[m]
    offset = np.where(offset >= mol.del_at[m] + mol.dlen[m], offset - mol.dlen[m], offset)
    inside = offset - lay.s0[r]
    ok = (inside >= 0) & (inside < lay.rl[r])
    col = inside + np.where(lay.right[r], lay.ka[r], 0)
    seq[r[ok], col[ok]] = variants.base[vi[ok]]


def _to_reference_orientation(qual: np.ndarray, lay: _ReadLayout) -> np.ndarray:
    """Reverse reads store their qualities right-to-left; full-length reads just flip."""
    out = qual.copy()
    width = qual.shape[1]
    full = lay.right & (lay.total == width)
    out[full] = qual[full, ::-1]
    part = np.flatnonzero(lay.right & (lay.total < width))
    col = np.arange(width)[None, :]
    src = np.clip(lay.total[part][:, None] - 1 - col, 0, width - 1)
    out[part] = np.where(col < lay.total[part][:, None], np.take_along_axis(qual[part], src, axis=1), 0)
    return out


def _sequencing_errors(seq: np.ndarray, qual: np.ndarray, rng: np.random.Generator) -> None:
    """Per-read substitution errors at the rate each base quality promises. Q37 errors (the bulk of bases,
    rate 2e-4) are placed by Poisson thinning instead of one random draw per base, which is 5x faster."""
    flat_qual = qual.reshape(-1)
    low = np.flatnonzero((flat_qual > 0) & (flat_qual < 37))
    hit_low = low[rng.random(low.size, dtype=np.float32) < _ERROR_PROB[flat_qual[low]]]
    candidates = rng.integers(0, flat_qual.size, rng.poisson(_ERROR_PROB[37] * flat_qual.size))
    hits = np.unique(np.concatenate([hit_low, candidates[flat_qual[candidates] == 37]]))
    row, col = np.divmod(hits, qual.shape[1])
    seq[row, col] = (seq[row, col] + rng.integers(1, 4, hits.size)) % 4


def _build_reads(
    reference: Reference,
    mol: _Molecules,
    pairs: _Pairs,
    variants: _Variants,
    settings: SimulationSettings,
    rng: np.random.Generator,
) -> tuple[Records, np.ndarray]:
    """Every read of every molecule, and the locus index each read was captured for."""
    width = settings.read_length
    lay = _read_layout(mol, pairs, settings, rng)
    seq = _read_sequences(reference, mol, lay, width)
    _apply_variants(seq, mol, pairs, lay, variants)
    qual_read, q2len = _qualities(lay.total, width, settings, rng)
    qual = _to_reference_orientation(qual_read, lay)
    _sequencing_errors(seq, qual, rng)
    _clip_q2_tails(mol, lay, q2len, settings, rng)
    return _read_records(reference, mol, pairs, lay, seq, qual, settings), mol.locus[lay.mol]


def _clip_q2_tails(
    mol: _Molecules,
    lay: _ReadLayout,
    q2len: np.ndarray,
    settings: SimulationSettings,
    rng: np.random.Generator,
) -> None:
    """The aligner soft-clips some error-rich Q2 tails (3' end, so fragment coordinates do not move)."""
    a0 = lay.s0
    has_del = (mol.dlen[lay.mol] > 0) & (mol.del_at[lay.mol] > a0) & (mol.del_at[lay.mol] < a0 + lay.rl)
    clip = (rng.random(a0.size) < settings.q2_clip_fraction) & (lay.ka == 0) & ~has_del
    clip &= (q2len > 0) & (q2len <= lay.rl - 30) & (mol.kind[lay.mol] == 0)
    lay.kb = np.where(clip, q2len, 0)


def _read_records(
    reference: Reference,
    mol: _Molecules,
    pairs: _Pairs,
    lay: _ReadLayout,
    seq: np.ndarray,
    qual: np.ndarray,
    settings: SimulationSettings,
) -> Records:
    m = lay.mol
    a0 = lay.s0 + np.where(lay.right, lay.kb, 0)
    n_al = lay.rl - lay.kb
    del_at, dlen = mol.del_at[m], mol.dlen[m]
    has_del = (dlen > 0) & (del_at > a0) & (del_at < a0 + n_al)
    m1 = np.where(has_del, del_at - a0, n_al)
    gpos = mol.gstart[m] + a0 + (a0 >= del_at) * dlen
    tid = np.searchsorted(reference.offsets, mol.gstart[m], side="right") - 1
    pos = gpos - reference.offsets[tid]
    n = m.size
    mate = np.arange(n) ^ 1  # reads 2p and 2p+1 are mates
    read1 = lay.right != mol.f1r2[m]
    flag = PAIRED | PROPER | np.where(lay.right, REVERSE, MATE_REVERSE) | np.where(read1, READ1, READ2)
    flag = flag | np.where(mol.kind[m] == 2, QCFAIL, 0)
    if settings.duplicate_marked:
        flag = flag | np.where(np.repeat(_duplicate_pairs(pairs, qual), 2), DUPLICATE, 0)
    umi = _umi_strings(pairs.umi, settings.umi_lengths)
    zeros = np.zeros(n, np.int64)
    return Records(
        qid=np.repeat(pairs.qid, 2).astype(np.int64),
        flag=flag.astype(np.int64),
        tid=tid.astype(np.int64),
        pos=pos.astype(np.int64),
        mapq=np.where(lay.right, mol.mapq_right[m], mol.mapq_left[m]).astype(np.int64),
        cl=np.where(lay.right, lay.ka + lay.kb, 0).astype(np.int64),
        m1=m1.astype(np.int64),
        dlen=np.where(has_del, dlen, 0).astype(np.int64),
        m2=(n_al - m1).astype(np.int64),
        cr=np.where(lay.right, 0, lay.ka + lay.kb).astype(np.int64),
        hclip=zeros,
        mtid=tid.astype(np.int64)[mate],
        mpos=pos.astype(np.int64)[mate],
        tlen=np.where(lay.right, -mol.span[m], mol.span[m]).astype(np.int64),
        length=lay.total.astype(np.int64),
        seq=seq,
        qual=qual,
        umi=np.repeat(umi, 2),
        sa=np.full(n, "", dtype=object),
        mate_rec=mate.astype(np.int64),
    )


def _duplicate_pairs(pairs: _Pairs, qual: np.ndarray) -> np.ndarray:
    """True for every pair but the best one of its family (highest summed base quality, as Picard keeps)."""
    qsum = qual.reshape(pairs.mol.size, -1).sum(axis=1, dtype=np.int64)
    order = np.lexsort((pairs.copy, -qsum, pairs.mol))
    best = np.ones(pairs.mol.size, bool)
    best[order[1:]] = pairs.mol[order[1:]] != pairs.mol[order[:-1]]
    return ~best


def _blank_records(n: int, width: int) -> dict[str, np.ndarray]:
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


def _split_artifacts(
    reference: Reference,
    table: pd.DataFrame,
    reads: Records,
    read_locus: np.ndarray,
    settings: SimulationSettings,
    rng: np.random.Generator,
) -> Records:
    """Secondary and supplementary records that carry the ALT at a locus while their read's primary alignment
    lies at another locus: what a multi-mapping or chimeric read looks like. They must never be counted."""
    kinds = [SECONDARY] * settings.n_secondary + [SUPPLEMENTARY] * settings.n_supplementary
    width = settings.read_length
    cols = _blank_records(len(kinds), width)
    primaries = np.flatnonzero((reads.flag & QCFAIL) == 0)
    for k, kind in enumerate(kinds):
        locus = int(rng.integers(len(table)))
        candidates = primaries[read_locus[primaries] != locus]
        if candidates.size == 0:
            candidates = primaries
        p = int(candidates[rng.integers(candidates.size)])
        _fill_split_record(reference, table, reads, cols, k, kind, locus, p, width, rng)
    return Records(**cols)


def _fill_split_record(
    reference: Reference,
    table: pd.DataFrame,
    reads: Records,
    cols: dict[str, np.ndarray],
    k: int,
    kind: int,
    locus: int,
    p: int,
    width: int,
    rng: np.random.Generator,
) -> None:
    aligned = width if kind == SECONDARY else int(rng.integers(40, 71))
    tid = int(table["tid"].iloc[locus])
    lo = int(reference.offsets[tid])
    gpos = int(table["gpos"].iloc[locus])
    start = int(np.clip(gpos - rng.integers(5, aligned - 5), lo, lo + reference.lengths[tid] - aligned))
    seq = reference.codes[start : start + aligned].copy()
    seq[gpos - start] = int(table["alt_code"].iloc[locus])
    mate = int(reads.mate_rec[p])
    reverse = rng.random() < 0.5
    flag = PAIRED | kind | (int(reads.flag[p]) & (READ1 | READ2)) | (REVERSE if reverse else 0)
    flag |= MATE_REVERSE if reads.flag[mate] & REVERSE else 0
    flag |= int(reads.flag[p]) & DUPLICATE  # a marker flags every record of a duplicate read, as Picard does
    values = {
        "qid": reads.qid[p], "flag": flag, "tid": tid, "pos": start - lo, "mapq": 60, "m1": aligned,
        "hclip": width - aligned, "mtid": reads.tid[mate], "mpos": reads.pos[mate], "length": aligned,
        "mate_rec": mate,
    }  # fmt: skip
    for name, value in values.items():
        cols[name][k] = value
    cols["seq"][k, :aligned] = seq
    cols["qual"][k, :aligned] = 37
    cols["umi"][k] = reads.umi[p]
    if kind == SUPPLEMENTARY:
        strand = "-" if reads.flag[p] & REVERSE else "+"
        chrom = reference.names[int(reads.tid[p])]
        cigar = _cigar_strings(reads.take(np.array([p])))[0]
        cols["sa"][k] = f"{chrom},{int(reads.pos[p]) + 1},{strand},{cigar},{int(reads.mapq[p])},0;"


def _unmapped_records(
    reference: Reference,
    table: pd.DataFrame,
    settings: SimulationSettings,
    rng: np.random.Generator,
    first_qid: int,
    offset: int,
) -> Records:
    """Pairs where neither mate aligned (stored at the end of the file) and pairs with one unaligned mate,
    placed at its mate's position near (not over) a locus."""
    width = settings.read_length
    n_pairs = settings.n_unmapped_pairs + settings.n_mate_unmapped
    n = 2 * n_pairs
    cols = _blank_records(n, width)
    cols["qid"] = np.repeat(np.arange(first_qid, first_qid + n_pairs), 2)
    cols["mate_rec"] = offset + (np.arange(n) ^ 1)
    cols["length"] = np.full(n, width)
    cols["seq"] = rng.integers(0, 4, (n, width), dtype=np.uint8)
    cols["qual"] = _qualities(cols["length"], width, settings, rng)[0]
    cols["umi"] = np.repeat(
        _umi_strings(
            rng.integers(0, 4, (n_pairs, sum(settings.umi_lengths)), dtype=np.uint8), settings.umi_lengths
        ),
        2,
    )
    mates = np.tile([READ1, READ2], n_pairs)
    cols["flag"] = PAIRED | UNMAPPED | MATE_UNMAPPED | mates
    cols["tid"][:] = cols["pos"][:] = cols["mtid"][:] = cols["mpos"][:] = -1
    for j in range(settings.n_mate_unmapped):
        _place_half_mapped(reference, table, cols, 2 * (settings.n_unmapped_pairs + j), width, rng)
    return Records(**cols)


def _place_half_mapped(
    reference: Reference,
    table: pd.DataFrame,
    cols: dict[str, np.ndarray],
    i: int,
    width: int,
    rng: np.random.Generator,
) -> None:
    locus = int(rng.integers(len(table)))
    tid = int(table["tid"].iloc[locus])
    lo = int(reference.offsets[tid])
    start = min(
        int(table["gpos"].iloc[locus]) + int(rng.integers(200, 300)), lo + reference.lengths[tid] - width
    )
    cols["seq"][i] = reference.codes[start : start + width]
    cols["flag"][i] = PAIRED | MATE_UNMAPPED | READ1
    cols["flag"][i + 1] = PAIRED | UNMAPPED | READ2
    cols["mapq"][i] = 60
    cols["m1"][i] = width
    # SAM convention: the unaligned mate takes its partner's position so both sort and index together.
    cols["tid"][i : i + 2] = cols["mtid"][i : i + 2] = tid
    cols["pos"][i : i + 2] = cols["mpos"][i : i + 2] = start - lo


def _coordinate_order(records: Records) -> np.ndarray:
    """Coordinate order (unmapped last); ties by strand, mate position and name, so PCR copies of a molecule
    sit together, as after most sorters."""
    tid = np.where(records.tid < 0, np.iinfo(np.int64).max, records.tid)
    return np.lexsort(
        (records.flag, records.qid, records.tlen, records.mpos, records.flag & REVERSE, records.pos, tid)
    )


def _molecule_frame(mol: _Molecules, pairs: _Pairs) -> pd.DataFrame:
    kinds = np.array(["real", "mapq0", "qcfail"])
    return pd.DataFrame(
        {
            "locus": mol.locus,
            "kind": kinds[mol.kind],
            "tumor": mol.tumor,
            "alt": mol.alt,
            "chip": mol.chip,
            "length": mol.length,
            "gstart": mol.gstart,
            "span": mol.span,
            "deletion": mol.dlen,
            "orientation": np.where(mol.f1r2, "F1R2", "F2R1"),
            "family_size": np.bincount(pairs.mol, minlength=mol.locus.size),
            "locus_base": _BASE_BYTES[mol.locus_base].view("S1").astype(str),
        }
    )


# --------------------------------------------------------------------------------------------------------------
# Hand-made samples (unit tests of counters)
# --------------------------------------------------------------------------------------------------------------
@dataclass
class ReadSpec:
    """One SAM record written by hand; positions 1-based as in SAM. CIGAR: [H][S]M[DM][S] only."""

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
    tiny BAMs. Truth columns are zero: nothing was simulated."""
    width = max(len(r.seq) for r in reads)
    cols = _blank_records(len(reads), width)
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
        cols["seq"][i, : len(r.seq)] = _ENCODE[np.frombuffer(r.seq.encode(), np.uint8)]
        cols["qual"][i, : len(r.seq)] = r.qual
        cols["umi"][i] = r.umi
    cols["mate_rec"] = np.array([_mate_index(reads, i) for i in range(len(reads))], dtype=np.int64)
    records = Records(**cols)
    table = _locus_table(reference, loci, None, {}, SimulationSettings())
    molecules = pd.DataFrame({"locus": [], "kind": [], "tumor": [], "alt": []})
    sample = SimulatedSample(
        sample_id, 0.0, SimulationSettings(), reference.names, reference.offsets, table, molecules, records
    )
    sample.records = records.take(_coordinate_order(records))
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


# --------------------------------------------------------------------------------------------------------------
# Writing BAM / CRAM
# --------------------------------------------------------------------------------------------------------------
def _cigar_strings(records: Records) -> list[str]:
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


def bam_header(sample: SimulatedSample, reference: Reference) -> dict:
    """SAM header: @HD sorted by coordinate, @SQ with MD5s (needed for CRAM), one @RG, the simulator's @PG."""
    marked = "duplicates marked (0x400)" if sample.settings.duplicate_marked else "duplicates not marked"
    return {
        "HD": {"VN": "1.6", "SO": "coordinate"},
        "SQ": [
            {"SN": n, "LN": length, "M5": reference.md5(n)}
            for n, length in zip(reference.names, reference.lengths, strict=True)
        ],
        "RG": [
            {
                "ID": sample.sample_id,
                "SM": sample.sample_id,
                "LB": sample.settings.library,
                "PL": "ILLUMINA",
                "PU": sample.settings.platform_unit,
            }
        ],
        "PG": [
            {
                "ID": "mrdtrack.simulation.cfdna",
                "PN": "mrdtrack.simulation.cfdna",
                "VN": __version__,
                "DS": f"simulated cfDNA UMI capture, 2x{sample.settings.read_length}, {marked}",
            }
        ],
    }


def sam_lines(sample: SimulatedSample) -> list[str]:
    """The sample's records as SAM text lines, in coordinate order."""
    rec = sample.records
    cigars = _cigar_strings(rec)
    names = list(sample.reference_names)
    seq_bytes = _BASE_BYTES[rec.seq]
    qual_bytes = (rec.qual + 33).astype(np.uint8)
    flag, tid, mtid, mate = rec.flag.tolist(), rec.tid.tolist(), rec.mtid.tolist(), rec.mate_rec.tolist()
    pos, mpos, mapq, tlen, length = (a.tolist() for a in (rec.pos, rec.mpos, rec.mapq, rec.tlen, rec.length))
    rg = f"RG:Z:{sample.sample_id}"
    lines = []
    for i in range(len(rec)):
        n = length[i]
        rname = names[tid[i]] if tid[i] >= 0 else "*"
        rnext = "*" if mtid[i] < 0 else ("=" if mtid[i] == tid[i] else names[mtid[i]])
        tags = []
        j = mate[i]
        if j >= 0 and not flag[i] & MATE_UNMAPPED:
            tags += [f"MC:Z:{cigars[j]}", f"MQ:i:{mapq[j]}"]
        tags += [rg, f"RX:Z:{rec.umi[i]}"] + ([f"SA:Z:{rec.sa[i]}"] if rec.sa[i] else [])
        fields_ = [
            sample.qname(int(rec.qid[i])), str(flag[i]), rname, str(pos[i] + 1), str(mapq[i]), cigars[i],
            rnext, str(mpos[i] + 1), str(tlen[i]), seq_bytes[i, :n].tobytes().decode(),
            qual_bytes[i, :n].tobytes().decode(), *tags,
        ]  # fmt: skip
        lines.append("\t".join(fields_))
    return lines


def write_bam(
    sample: SimulatedSample, path: str | Path, reference: Reference, fmt: str = "bam", level: int = 9
) -> Path:
    """Write the sample as a coordinate-sorted BAM (or CRAM against `reference.fasta_path`) plus its index.

    `level` is the BAM deflate level: 9 keeps bundled files small, 6 (htslib's default) writes ~2x faster."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = pysam.AlignmentHeader.from_dict(bam_header(sample, reference))
    if fmt == "cram":
        if reference.fasta_path is None:
            raise ValueError("CRAM needs the reference on disk: call write_reference first")
        out = pysam.AlignmentFile(
            str(path), "wc", header=header, reference_filename=str(reference.fasta_path)
        )
        index = path.with_name(path.name + ".crai")
    elif fmt == "bam":
        out = pysam.AlignmentFile(str(path), "wb", header=header, format_options=[f"level={level}".encode()])
        index = path.with_name(path.name + ".bai")
    else:
        raise ValueError(f"unknown format {fmt!r} (bam or cram)")
    with out:
        for line in sam_lines(sample):
            out.write(pysam.AlignedSegment.fromstring(line, header))
    index.unlink(missing_ok=True)
    pysam.index(str(path), str(index))
    return path


# --------------------------------------------------------------------------------------------------------------
# Writing BAM in bulk (numpy): the records of `write_bam`, without one pysam object per record
# --------------------------------------------------------------------------------------------------------------
BGZF_BLOCK_SIZE = 0xFF00  # htslib's block payload; like htslib, a record never straddles two blocks
ENCODE_CHUNK = 16_384  # records encoded at once: bounds the temporary index arrays to tens of MB
_RECORD_HEADER = np.dtype(
    [("block_size", "<i4"), ("ref_id", "<i4"), ("pos", "<i4"), ("l_read_name", "u1"), ("mapq", "u1"),
     ("bin", "<u2"), ("n_cigar_op", "<u2"), ("flag", "<u2"), ("l_seq", "<i4"), ("next_ref_id", "<i4"),
     ("next_pos", "<i4"), ("tlen", "<i4")]
)  # fmt: skip
_Rows = tuple[np.ndarray, np.ndarray]  # variable-length byte strings: a (rows x width) uint8 matrix, lengths


def write_bam_fast(sample: SimulatedSample, path: str | Path, reference: Reference, level: int = 6) -> Path:
    """Write the records `write_bam` writes, as an indexed BAM, encoded by numpy in bulk.

    Several times faster than building one pysam record at a time, which matters for cohorts of hundreds of
    files. Records, tags and header read back identical to `write_bam`'s; only the compressed bytes differ.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = pysam.AlignmentHeader.from_dict(bam_header(sample, reference))
    cigars = _CigarTable.of(sample.records)
    out = pysam.BGZFile(str(path), f"wb{level}")
    try:
        out.write(bam_header_bytes(header))
        out.flush()
        for start in range(0, len(sample.records), ENCODE_CHUNK):
            data, ends = encode_bam_records(sample, start, start + ENCODE_CHUNK, cigars)
            for first, last in _block_ranges(ends):
                out.write(data[first:last].tobytes())
                out.flush()
    finally:
        out.close()
    index = path.with_name(path.name + ".bai")
    index.unlink(missing_ok=True)
    pysam.index(str(path), str(index))
    return path


def warm_up(reference: Reference, read_length: int = 100) -> None:
    """Fill the reference's caches and compile the BAM encoder now, before worker processes fork: each worker
    would otherwise do both again."""
    _context_sites(reference)
    _gc_fractions(reference, np.zeros(1, np.int64))
    _base_sites(reference, 1)
    _base_sites(reference, 2)
    _padded_codes(reference, read_length)
    _copy_rows(np.zeros(1, np.uint8), np.zeros(1, np.int64), np.zeros((1, 1), np.uint8), np.ones(1, np.int64))
    _pack_bases(np.zeros((1, 2), np.uint8), np.ones(1, np.int64))
    _CigarTable.of(Records(**_blank_records(1, 1)))


def bam_header_bytes(header: pysam.AlignmentHeader) -> bytes:
    """The binary BAM header: magic, SAM header text, and the reference names and lengths."""
    text = str(header).encode()
    parts = [b"BAM\x01", np.int32(len(text)).tobytes(), text, np.int32(len(header.references)).tobytes()]
    for name, length in zip(header.references, header.lengths, strict=True):
        parts += [np.int32(len(name) + 1).tobytes(), name.encode() + b"\0", np.int32(length).tobytes()]
    return b"".join(parts)


@dataclass
class _CigarTable:
    """Every record's CIGAR: BAM operations (length << 4 | op, left-aligned, 6 columns), their number, and the
    SAM text (for the mate's MC tag). [H][S]M[DM][S], as `_cigar_strings` writes them; none when unmapped."""

    ops: np.ndarray
    count: np.ndarray
    text: np.ndarray
    text_length: np.ndarray

    @classmethod
    def of(cls, records: Records) -> _CigarTable:
        fields_ = (records.hclip, records.cl, records.m1, records.dlen, records.m2, records.cr)
        lengths = np.ascontiguousarray(np.stack(fields_, axis=1), dtype=np.uint32)
        ops, count = _cigar_ops(lengths, (records.flag & UNMAPPED) == 0)
        text, text_length = _cigar_text(ops, count)
        return cls(ops, count, text, text_length)


@njit(cache=True)
def _cigar_ops(lengths: np.ndarray, mapped: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    codes = np.array([5, 4, 0, 2, 0, 4], np.uint32)  # H S M D M S
    ops = np.zeros(lengths.shape, np.uint32)
    count = np.zeros(lengths.shape[0], np.int64)
    for i in range(lengths.shape[0]):
        if not mapped[i]:
            continue
        for k in range(6):
            # The first M is written even when empty, the second only after a deletion.
            if lengths[i, k] > 0 and k != 4 or k == 2 or k == 4 and lengths[i, 3] > 0:
                ops[i, count[i]] = (lengths[i, k] << 4) | codes[k]
                count[i] += 1
    return ops, count


@njit(cache=True)
def _cigar_text(ops: np.ndarray, count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    letters = np.frombuffer(b"MIDNSHP=X", np.uint8)
    text = np.zeros((ops.shape[0], 11 * ops.shape[1]), np.uint8)  # up to 10 digits and a letter per operation
    length = np.zeros(ops.shape[0], np.int64)
    digits = np.zeros(10, np.uint8)
    for i in range(ops.shape[0]):
        at = 0
        for k in range(count[i]):
            value, n = ops[i, k] >> 4, 0
            while True:
                digits[n] = 48 + value % 10
                value //= 10
                n += 1
                if value == 0:
                    break
            for d in range(n):
                text[i, at + d] = digits[n - 1 - d]
            text[i, at + n] = letters[ops[i, k] & 0xF]
            at += n + 1
        length[i] = at
    return text, length


def encode_bam_records(
    sample: SimulatedSample, start: int = 0, stop: int | None = None, cigars: _CigarTable | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Records [start, stop) of the sample as binary BAM records end to end, and the offset where each ends.

    `cigars` (`_CigarTable.of(sample.records)`) saves recomputing every record's CIGAR per slice."""
    everything = sample.records
    cigars = cigars or _CigarTable.of(everything)
    stop = len(everything) if stop is None else min(stop, len(everything))
    rows = slice(start, stop)
    records = Records(**{f.name: getattr(everything, f.name)[rows] for f in fields(Records)})
    n = len(records)
    prefix, nul = f"{sample.qname_prefix}:".encode(), b"\0"
    names = _pad_rows(
        *_join_rows([_constant_rows(prefix, n), _decimal_rows(records.qid), _constant_rows(nul, n)])
    )
    fixed = np.zeros(n, _RECORD_HEADER)
    mapped = (records.flag & UNMAPPED) == 0
    span = np.where(mapped, records.m1 + records.dlen + records.m2, 1)
    values = {
        "ref_id": records.tid, "pos": records.pos, "l_read_name": names[1], "mapq": records.mapq,
        "bin": _reg2bin(records.pos, records.pos + span), "n_cigar_op": cigars.count[rows],
        "flag": records.flag, "l_seq": records.length, "next_ref_id": records.mtid, "next_pos": records.mpos,
        "tlen": records.tlen,
    }  # fmt: skip
    for name, value in values.items():
        fixed[name] = value
    cigar = (cigars.ops[rows].view(np.uint8), 4 * cigars.count[rows])
    seq, qual = _sequence_rows(records)
    body = [names, cigar, seq, qual, _tag_rows(sample, records, everything.mate_rec[rows], cigars)]
    fixed["block_size"] = _RECORD_HEADER.itemsize - 4 + sum(part[1] for part in body)
    header = (fixed.view(np.uint8).reshape(n, -1), np.full(n, _RECORD_HEADER.itemsize))
    data, lengths = _join_rows([header, *body])
    return data, np.cumsum(lengths)


def _sequence_rows(records: Records) -> tuple[_Rows, _Rows]:
    """SEQ packed two bases a byte (BAM's 4-bit codes) and QUAL as raw Phred values."""
    seq = (_pack_bases(records.seq, records.length), (records.length + 1) // 2)
    return seq, (records.qual, records.length)


@njit(cache=True)
def _pack_bases(seq: np.ndarray, length: np.ndarray) -> np.ndarray:
    nt16 = np.array([1, 2, 4, 8, 15], np.uint8)  # BAM's 4-bit codes of A, C, G, T, N
    packed = np.zeros((seq.shape[0], (seq.shape[1] + 1) // 2), np.uint8)
    for i in range(seq.shape[0]):
        for j in range(length[i]):
            code = nt16[seq[i, j]]
            packed[i, j // 2] |= code << 4 if j % 2 == 0 else code
    return packed


def _tag_rows(sample: SimulatedSample, records: Records, mates: np.ndarray, cigars: _CigarTable) -> _Rows:
    """MC:Z and MQ:i (the mate's CIGAR and MAPQ, for reads whose mate is mapped), RG:Z, RX:Z, [SA:Z]."""
    n = len(records)
    with_mate = (mates >= 0) & ((records.flag & MATE_UNMAPPED) == 0)
    mate = np.where(with_mate, mates, 0)
    mq = sample.records.mapq[mate].astype(np.uint8)[:, None]  # MQ:i holds 0-255: SAM parsers store type C
    umi, umi_length = _text_rows(records.umi)
    sa, sa_length = _text_rows(records.sa)
    has_sa = sa_length > 0
    rg = f"RGZ{sample.sample_id}\0".encode()
    parts = [
        _constant_rows(b"MCZ", n, with_mate), (cigars.text[mate], np.where(with_mate, cigars.text_length[mate], 0)),
        _constant_rows(b"\0MQC", n, with_mate), (mq, with_mate.astype(np.int64)),
        _constant_rows(rg + b"RXZ", n), (umi, umi_length), _constant_rows(b"\0", n),
        _constant_rows(b"SAZ", n, has_sa), (sa, sa_length), _constant_rows(b"\0", n, has_sa),
    ]  # fmt: skip
    return _pad_rows(*_join_rows(parts))


def _text_rows(values: np.ndarray) -> _Rows:
    """ASCII strings as a byte matrix and their lengths."""
    encoded = np.asarray(values, dtype=object).astype("S")
    width = max(encoded.dtype.itemsize, 1)
    matrix = np.frombuffer(encoded.astype(f"S{width}").tobytes(), np.uint8).reshape(len(values), width)
    return matrix, np.char.str_len(encoded).astype(np.int64)


def _constant_rows(text: bytes, n: int, present: np.ndarray | None = None) -> _Rows:
    """The same bytes in every one of `n` rows (or in the rows where `present`): a one-row matrix."""
    lengths = np.full(n, len(text), np.int64)
    if present is not None:
        lengths = np.where(present, lengths, 0)
    return np.frombuffer(text, np.uint8)[None, :], lengths


def _decimal_rows(values: np.ndarray) -> _Rows:
    """Non-negative integers as decimal ASCII digits."""
    values = np.asarray(values, np.int64)
    top = int(values.max()) if values.size else 0
    digits = np.ones(values.size, np.int64)
    for k in range(1, len(str(top))):
        digits += values >= 10**k
    width = int(digits.max()) if values.size else 1
    power = digits[:, None] - 1 - np.arange(width)[None, :]
    matrix = (values[:, None] // 10 ** np.maximum(power, 0)) % 10 + ord("0")
    return np.where(power >= 0, matrix, 0).astype(np.uint8), digits


def _join_rows(parts: Sequence[_Rows]) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise concatenation of variable-length byte strings: all rows' bytes end to end, and row lengths."""
    lengths = np.stack([np.asarray(length, np.int64) for _, length in parts], axis=1)
    totals = lengths.sum(axis=1)
    # Column-major, so that each part's starts and lengths are contiguous for the compiled copy.
    starts = np.asfortranarray((np.cumsum(totals) - totals)[:, None] + np.cumsum(lengths, axis=1) - lengths)
    lengths = np.asfortranarray(lengths)
    out = np.zeros(int(totals.sum()), np.uint8)
    for (matrix, _), start, length in zip(parts, starts.T, lengths.T, strict=True):
        _copy_rows(
            out, np.ascontiguousarray(start), np.ascontiguousarray(matrix), np.ascontiguousarray(length)
        )
    return out, totals


@njit(cache=True)
def _copy_rows(out: np.ndarray, starts: np.ndarray, matrix: np.ndarray, lengths: np.ndarray) -> None:
    # A compiled loop: numpy's fancy indexing would build an index per byte, slower than the simulation. A
    # one-row matrix is the same bytes for every row.
    same = matrix.shape[0] == 1
    for i in range(starts.size):
        row = 0 if same else i
        start = starts[i]
        for j in range(lengths[i]):
            out[start + j] = matrix[row, j]


def _pad_rows(data: np.ndarray, lengths: np.ndarray) -> _Rows:
    """Bytes laid end to end (`_join_rows`) back into one left-aligned row per string."""
    width = max(int(lengths.max()) if lengths.size else 0, 1)
    matrix = np.zeros((lengths.size, width), np.uint8)
    matrix[np.arange(width)[None, :] < lengths[:, None]] = data
    return matrix, lengths


def _reg2bin(begin: np.ndarray, end: np.ndarray) -> np.ndarray:
    """The BAM index bin of each interval [begin, end) (the SAM specification's reg2bin)."""
    begin, last = np.asarray(begin, np.int64), np.asarray(end, np.int64) - 1
    out = np.zeros(begin.size, np.int64)
    found = np.zeros(begin.size, bool)
    for shift, first_bin in ((14, 4681), (17, 585), (20, 73), (23, 9), (26, 1)):
        here = ~found & ((begin >> shift) == (last >> shift))
        out[here] = first_bin + (begin[here] >> shift)
        found |= here
    return out


def _block_ranges(ends: np.ndarray) -> list[tuple[int, int]]:
    """Byte ranges of whole records, each at most a BGZF block (a larger record gets a range of its own)."""
    ranges, first, done = [], 0, 0
    while done < ends.size:
        last = max(int(np.searchsorted(ends, first + BGZF_BLOCK_SIZE, side="right")), done + 1)
        ranges.append((first, int(ends[last - 1])))
        first, done = int(ends[last - 1]), last
    return ranges


# --------------------------------------------------------------------------------------------------------------
# Expected counter output (the oracle)
# --------------------------------------------------------------------------------------------------------------
DISCORDANT = 5
COUNT_COLUMNS = ["ref_molecules", "alt_molecules", "other_molecules", "discordant_molecules"]


def resolve_dedup_mode(records: Records, mode: str) -> str:
    """`auto` -> umi when reads carry RX, else flag when any read is duplicate-flagged, else coordinates."""
    if mode != "auto":
        if mode not in ("umi", "flag", "coordinates"):
            raise ValueError(f"unknown dedup mode {mode!r}")
        return mode
    if any(records.umi.astype(bool)):
        return "umi"
    return "flag" if np.any(records.flag & DUPLICATE) else "coordinates"


def expected_counts(
    sample: SimulatedSample, mode: str = "umi", min_mapq: int = 20, min_base_quality: int = 20
) -> pd.DataFrame:
    """Per unique locus: the truth and the molecule counts a counter following the project's rules must report.

    Rules: drop unmapped/secondary/supplementary/QC-fail/MAPQ<min_mapq reads (and 0x400 in mode `flag`); a read
    observes a locus with an aligned, non-clipped base of quality >= min_base_quality; mates agreeing give that
    base, disagreeing give 'discordant'; pairs group into families by (chrom, fragment start, |TLEN|[, UMI
    cluster]), either strand (F1R2 and F2R1 pairs of one fragment are one molecule); a family's base is the
    unique most frequent base with >= 60% of its base observations, else discordant. In mode `flag` every
    remaining pair is its own molecule (the duplicate marker already grouped them).
    """
    mode = resolve_dedup_mode(sample.records, mode)
    obs = _read_observations(sample, mode, min_mapq, min_base_quality)
    pairs = _pair_observations(sample.records, obs)
    pairs["family"] = _family_ids(pairs, mode)
    calls = _family_calls(pairs)
    out = sample.truth()
    ref_code = sample.loci["ref_code"].to_numpy()[calls["locus"]]
    alt_code = sample.loci["alt_code"].to_numpy()[calls["locus"]]
    call = calls["call"].to_numpy()
    kind = np.select([call == ref_code, call == alt_code, call == DISCORDANT], [0, 1, 3], 2)
    table = np.zeros((len(out), 4), np.int64)
    np.add.at(table, (calls["locus"].to_numpy(), kind), 1)
    out[COUNT_COLUMNS] = table
    out.insert(0, "sample_id", sample.sample_id)
    return out


def _read_observations(sample: SimulatedSample, mode: str, min_mapq: int, min_bq: int) -> pd.DataFrame:
    """One row per (read, locus) where the read has a usable base: record index, locus index, base code."""
    rec = sample.records
    drop = UNMAPPED | SECONDARY | SUPPLEMENTARY | QCFAIL | (DUPLICATE if mode == "flag" else 0)
    idx = np.flatnonzero(((rec.flag & drop) == 0) & (rec.mapq >= min_mapq) & (rec.tid >= 0))
    gstart = sample.reference_offsets[rec.tid[idx]] + rec.pos[idx]
    locus_g = sample.loci["gpos"].to_numpy()
    lo = np.searchsorted(locus_g, gstart)
    hi = np.searchsorted(locus_g, gstart + rec.aligned_span()[idx])
    r, li = _ranges(idx, lo, hi - lo)
    x = locus_g[li] - sample.reference_offsets[rec.tid[r]] - rec.pos[r]
    m1, d = rec.m1[r], rec.dlen[r]
    deleted = (x >= m1) & (x < m1 + d)
    col = rec.cl[r] + np.where(x < m1, x, x - d)
    good = ~deleted & (rec.qual[r, col] >= min_bq)
    return pd.DataFrame(
        {"rec": r[good], "locus": li[good], "base": rec.seq[r[good], col[good]].astype(np.int64)}
    )


def _pair_observations(rec: Records, obs: pd.DataFrame) -> pd.DataFrame:
    """Collapse mates: agreeing bases -> base, disagreeing -> DISCORDANT; keep the family key fields."""
    obs = obs.assign(qid=rec.qid[obs["rec"].to_numpy()])
    grouped = obs.groupby(["locus", "qid"], sort=True)
    pairs = grouped.agg(rec=("rec", "first"), lo=("base", "min"), hi=("base", "max")).reset_index()
    pairs["value"] = np.where(pairs["lo"] == pairs["hi"], pairs["lo"], DISCORDANT)
    r = pairs["rec"].to_numpy()
    pairs["tid"] = rec.tid[r]
    pairs["start"] = np.minimum(rec.pos[r], rec.mpos[r])
    pairs["tlen"] = np.abs(rec.tlen[r])
    pairs["umi"] = rec.umi[r]
    return pairs.drop(columns=["lo", "hi"])


def _family_ids(pairs: pd.DataFrame, mode: str) -> np.ndarray:
    if mode == "flag":
        return np.arange(len(pairs))
    keys = ["locus", "tid", "start", "tlen"]
    group = pairs.groupby(keys, sort=True).ngroup().to_numpy()
    if mode != "umi":
        return group
    cluster = _umi_clusters(group, pairs["umi"].to_numpy())
    return pd.DataFrame({"g": group, "c": cluster}).groupby(["g", "c"], sort=True).ngroup().to_numpy()


def _umi_clusters(group: np.ndarray, umi: np.ndarray) -> np.ndarray:
    """Cluster id per pair within its coordinate group: UMIs by (pairs desc, UMI asc); each joins the first
    earlier cluster whose seed is within Hamming distance 1 (equal length), else it seeds a new one."""
    frame = pd.DataFrame({"g": group, "u": umi})
    sizes = frame.groupby(["g", "u"]).size().rename("n").reset_index()
    sizes = sizes[sizes["g"].duplicated(keep=False)].sort_values(
        ["g", "n", "u"], ascending=[True, False, True]
    )
    cluster: dict[tuple[int, str], int] = {}
    seeds: list[str] = []
    previous = -1
    for g, u in zip(sizes["g"].tolist(), sizes["u"].tolist(), strict=True):
        if g != previous:
            seeds, previous = [], g
        cluster[(g, u)] = _join_cluster(seeds, u)
    return np.array([cluster.get(key, 0) for key in zip(group.tolist(), umi.tolist(), strict=True)])


def _join_cluster(seeds: list[str], umi: str) -> int:
    for k, seed in enumerate(seeds):
        if len(seed) == len(umi) and sum(a != b for a, b in zip(seed, umi, strict=True)) <= 1:
            return k
    seeds.append(umi)
    return len(seeds) - 1


def _family_calls(pairs: pd.DataFrame) -> pd.DataFrame:
    """Consensus per family: unique top base with share >= 0.6 of base observations, else DISCORDANT."""
    fam = pairs["family"].to_numpy()
    n_fam = int(fam.max()) + 1 if fam.size else 0
    counts = np.zeros((n_fam, 6), np.int64)
    np.add.at(counts, (fam, pairs["value"].to_numpy()), 1)
    bases = counts[:, :5]
    n_bases = bases.sum(axis=1)
    top = bases.max(axis=1)
    unique_top = (bases == top[:, None]).sum(axis=1) == 1
    # Integer form of top / n_bases >= 0.6, so no float rounding decides a borderline family.
    ok = (n_bases > 0) & unique_top & (5 * top >= 3 * n_bases)
    call = np.where(ok, bases.argmax(axis=1), DISCORDANT)
    locus = pairs.groupby("family", sort=True)["locus"].first().to_numpy()
    return pd.DataFrame({"locus": locus, "call": call})
