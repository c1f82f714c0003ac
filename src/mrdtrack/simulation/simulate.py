"""One simulated sample: its four layers put together and sorted like a coordinate-sorted BAM.

1. molecules (`molecules`): cfDNA fragments captured around each panel locus. A molecule is tumor-derived with
   probability TF (shorter fragments); at the tumor's own loci it carries the ALT with probability w/2.
   Molecule-level errors (PCR / damage) are shared by every copy: a flat substitution rate, C>T at CpG, and
   8-oxoG G>T on the strand sequenced as read 1 (so G>T in F1R2 pairs and C>A in F2R1 pairs, in reference
   terms).
2. read pairs (`reads`): PCR duplicates of each molecule, all with the molecule's UMI (RX); one copy
   occasionally has a one-base UMI error.
3. reads (`reads`): paired-end, adapter-trimmed (read length = fragment length below the read length),
   Illumina-binned base qualities with per-read sequencing errors at the matching rates, a few 3' soft clips
   and deletions.
4. artifacts that must never be counted (here): MAPQ 0, secondary, supplementary and QC-fail records carrying
   the ALT, unmapped pairs and pairs with an unmapped mate.

Each layer is vectorised with numpy, so that hundreds of samples over hundreds of loci take minutes.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from mrdtrack.simulation.bam_bulk import compile_bam_encoder
from mrdtrack.simulation.molecules import Molecules, draw_molecules, locus_table, molecule_variants
from mrdtrack.simulation.reads import Pairs, build_reads, draw_pairs, qualities, umi_strings
from mrdtrack.simulation.records import (
    DUPLICATE,
    MATE_REVERSE,
    MATE_UNMAPPED,
    PAIRED,
    QCFAIL,
    READ1,
    READ2,
    REVERSE,
    SECONDARY,
    SUPPLEMENTARY,
    UNMAPPED,
    LocusKey,
    Records,
    SimulatedSample,
    SimulationSettings,
    blank_records,
    cigar_strings,
    coordinate_order,
)
from mrdtrack.simulation.reference import (
    BASE_BYTES,
    Reference,
    base_sites,
    cpg_sites,
    gc_fractions,
    padded_codes,
)


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
    """Simulate one library over `loci` (duplicate rows collapsed).

    Parameters
    ----------
    reference
        The genome.
    loci
        Every captured locus: chrom, 1-based pos, ref, alt.
    tumor_loci
        Rows of the sample's patient panel (optional `ccf`/`weight`), which carry tumor signal at `tf`; None
        for a sample without a tumor (normals, controls).
    tf
        Tumor fraction: the probability that a molecule is tumor-derived.
    settings
        Depth, PCR, read, error and artifact settings.
    rng
        The random stream; the same stream gives the same sample.
    sample_id
        The sample's name (read group, sample tag).
    chip
        Locus -> clonal-hematopoiesis VAF present in the non-tumor molecules.

    Returns
    -------
    SimulatedSample
        Its records sorted like a coordinate-sorted BAM, its molecules and per-locus truth.
    """
    table = locus_table(reference, loci, tumor_loci, chip or {}, settings)
    mol = draw_molecules(reference, table, tf, settings, rng)
    variants = molecule_variants(reference, table, mol, settings, rng)
    pairs = draw_pairs(mol, settings, rng)
    reads, read_locus = build_reads(reference, mol, pairs, variants, settings, rng)
    split = _split_artifacts(reference, table, reads, read_locus, settings, rng)
    unmapped = _unmapped_records(
        reference, table, settings, rng, int(pairs.qid.size), len(reads) + len(split)
    )
    records = Records.concat([reads, split, unmapped])
    records = records.take(coordinate_order(records))
    molecules = _molecule_frame(mol, pairs)
    return SimulatedSample(
        sample_id, float(tf), settings, reference.names, reference.offsets, table, molecules, records
    )


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
    cols = blank_records(len(kinds), width)
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
        cigar = cigar_strings(reads.take(np.array([p])))[0]
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
    cols = blank_records(n, width)
    cols["qid"] = np.repeat(np.arange(first_qid, first_qid + n_pairs), 2)
    cols["mate_rec"] = offset + (np.arange(n) ^ 1)
    cols["length"] = np.full(n, width)
    cols["seq"] = rng.integers(0, 4, (n, width), dtype=np.uint8)
    cols["qual"] = qualities(cols["length"], width, settings, rng)[0]
    cols["umi"] = np.repeat(
        umi_strings(
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


def _molecule_frame(mol: Molecules, pairs: Pairs) -> pd.DataFrame:
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
            "locus_base": BASE_BYTES[mol.locus_base].view("S1").astype(str),
        }
    )


def warm_up(reference: Reference, read_length: int = 100) -> None:
    """Fill the reference's caches and compile the BAM encoder now, before worker processes fork: each worker
    would otherwise do both again.

    Parameters
    ----------
    reference
        The genome the workers will simulate on.
    read_length
        The read length they will use.

    Returns
    -------
    None
    """
    cpg_sites(reference)
    gc_fractions(reference, np.zeros(1, np.int64))
    base_sites(reference, 1)
    base_sites(reference, 2)
    padded_codes(reference, read_length)
    compile_bam_encoder()
