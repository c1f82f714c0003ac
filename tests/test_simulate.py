"""Unit tests of the cfDNA sequencing simulator (mrdtrack.simulation) and of its counting oracle."""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter, defaultdict
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pysam
import pytest

from mrdtrack import simulation as sim
from mrdtrack.inputs.panel import WEIGHT_BOUNDS
from mrdtrack.simulation.bam import sam_lines
from mrdtrack.simulation.reads import QUALITY_BINS
from mrdtrack.simulation.records import (
    DUPLICATE,
    QCFAIL,
    READ1,
    REVERSE,
    SECONDARY,
    SUPPLEMENTARY,
    UNMAPPED,
)

TEST_DATA = Path(__file__).resolve().parents[1] / "test_data"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """A small reference, a 12-locus tumor panel plus 8 other loci, one dup-marked sample written as BAM."""
    tmp = tmp_path_factory.mktemp("sim")
    rng = np.random.default_rng(7)
    reference = sim.make_reference(rng, {"chr1": 30_000, "chr2": 20_000})
    sim.write_reference(reference, tmp / "genome.fa.gz")
    panel = sim.make_panel(reference, 12, rng, with_ccf=True)
    others = sim.make_panel(reference, 8, rng, avoid=list(zip(panel["chrom"], panel["pos"], strict=True)))
    loci = pd.concat([panel, others], ignore_index=True)
    settings = sim.SimulationSettings(molecules_per_locus=60, duplicate_marked=True, umi_error_rate=0.1)
    sample = sim.simulate_sample(
        reference, loci, panel, 0.05, settings, np.random.default_rng(11), sample_id="T"
    )
    bam = sim.write_bam(sample, tmp / "t.bam", reference)
    return SimpleNamespace(
        tmp=tmp,
        reference=reference,
        panel=panel,
        others=others,
        loci=loci,
        settings=settings,
        sample=sample,
        bam=bam,
    )


def _primary_reads(path: Path, reference: Path | None = None) -> list[pysam.AlignedSegment]:
    with pysam.AlignmentFile(str(path), reference_filename=str(reference) if reference else None) as bam:
        return [r for r in bam.fetch(until_eof=True) if not (r.is_secondary or r.is_supplementary)]


# ---------------------------------------------------------------------------------------------- reference, panel
def test_reference_composition_and_files(world: SimpleNamespace) -> None:
    codes = world.reference.codes
    gc = np.isin(codes, (1, 2)).mean()
    cpg_observed = np.mean((codes[:-1] == 1) & (codes[1:] == 2))
    cpg_expected = np.mean(codes == 1) * np.mean(codes == 2)
    assert 0.38 < gc < 0.44
    assert cpg_observed / cpg_expected < 0.4  # CpG depletion, as in the human genome
    fasta_path = world.tmp / "genome.fa.gz"
    assert (world.tmp / "genome.fa.gz.fai").exists() and (world.tmp / "genome.fa.gz.gzi").exists()
    with pysam.FastaFile(str(fasta_path)) as fasta:
        assert fasta.fetch("chr2", 100, 160) == world.reference.fetch("chr2", 100, 160)


def test_panel_spacing_bases_and_spectrum(world: SimpleNamespace) -> None:
    loci = world.loci
    gpos = world.reference.offsets[[world.reference.tid(c) for c in loci["chrom"]]] + loci["pos"].to_numpy()
    assert np.diff(np.sort(gpos)).min() >= 600
    lengths = loci["chrom"].map(dict(zip(world.reference.names, world.reference.lengths, strict=True)))
    assert (loci["pos"] > 500).all() and (loci["pos"] <= lengths - 500).all()
    for row in loci.itertuples():
        assert world.reference.fetch(row.chrom, row.pos - 1, row.pos) == row.ref != row.alt
    rng = np.random.default_rng(3)
    big = sim.make_reference(rng, {"chr1": 400_000})
    spectrum = Counter(sim.make_panel(big, 300, rng).pipe(lambda p: p["ref"] + ">" + p["alt"]))
    assert spectrum["C>T"] + spectrum["G>A"] == max(
        spectrum[a] + spectrum[b] for a, b in [("C>T", "G>A"), ("C>A", "G>T"), ("C>G", "G>C"), ("T>C", "A>G")]
    )


def test_panel_vcf_plain_and_indexed(world: SimpleNamespace) -> None:
    plain = sim.write_panel_vcf(world.panel, world.tmp / "p.vcf", world.reference)
    packed = sim.write_panel_vcf(world.others, world.tmp / "o.vcf.gz", world.reference, compress=True)
    assert Path(str(packed) + ".tbi").exists()
    with pysam.VariantFile(str(plain)) as vcf:
        assert "CCF" in vcf.header.info and list(vcf.header.contigs) == ["chr1", "chr2"]
        ccf = [record.info["CCF"] for record in vcf]
    assert ccf == pytest.approx(world.panel["ccf"].tolist())
    with pysam.VariantFile(str(packed)) as vcf:
        assert "CCF" not in vcf.header.info
        assert len(list(vcf.fetch("chr1"))) == int((world.others["chrom"] == "chr1").sum())


# ---------------------------------------------------------------------------------------------- determinism
def test_same_seed_gives_identical_reads(world: SimpleNamespace) -> None:
    def run(seed: int) -> list[str]:
        rng = np.random.default_rng(seed)
        return sam_lines(
            sim.simulate_sample(world.reference, world.loci, world.panel, 0.01, world.settings, rng)
        )

    assert run(5) == run(5)
    assert run(5) != run(6)


# ---------------------------------------------------------------------------------------------- fragments
def test_fragment_length_modes_and_periodicity() -> None:
    settings = sim.SimulationSettings()
    normal = sim.fragment_length_pmf(settings.normal_fragment_mode, settings)
    tumor = sim.fragment_length_pmf(settings.tumor_fragment_mode, settings, tumor=True)
    assert 164 <= normal.argmax() <= 169
    assert 140 <= tumor.argmax() <= 150
    peaks = [n for n in range(80, 160) if normal[n - 1] < normal[n] >= normal[n + 1]]
    assert len(peaks) >= 6 and np.median(np.diff(peaks)) == pytest.approx(10.4, abs=1)


def test_tumor_fragments_are_shorter(world: SimpleNamespace) -> None:
    rng = np.random.default_rng(2)
    sample = sim.simulate_sample(world.reference, world.loci, world.panel, 0.4, world.settings, rng)
    real = sample.molecules[sample.molecules["kind"] == "real"]
    tumor, normal = real.loc[real["tumor"], "length"], real.loc[~real["tumor"], "length"]
    assert normal.median() - tumor.median() > 15
    assert real.loc[real["alt"], "tumor"].all()


# ---------------------------------------------------------------------------------------------- BAM fields
def test_mates_point_at_each_other(world: SimpleNamespace) -> None:
    reads = [r for r in _primary_reads(world.bam) if not (r.is_unmapped or r.mate_is_unmapped)]
    by_name: dict[str, list[pysam.AlignedSegment]] = defaultdict(list)
    for read in reads:
        by_name[read.query_name].append(read)
    assert len(by_name) > 1000
    for first, second in (pair for pair in by_name.values() if len(pair) == 2):
        assert first.is_paired and first.is_proper_pair and first.is_read1 != second.is_read1
        assert first.next_reference_start == second.reference_start
        assert first.mate_is_reverse == second.is_reverse and first.is_reverse != second.is_reverse
        assert first.template_length == -second.template_length != 0
        left = first if first.template_length > 0 else second
        assert left.reference_start <= (second if left is first else first).reference_start
        assert first.get_tag("MC") == second.cigarstring and first.get_tag("MQ") == second.mapping_quality
        assert first.get_tag("RX") == second.get_tag("RX")


def test_short_fragments_are_trimmed_and_mates_overlap(world: SimpleNamespace) -> None:
    reads = [r for r in _primary_reads(world.bam) if r.is_proper_pair]
    plain = [r for r in reads if r.cigarstring == f"{r.query_length}M"]
    short = [r for r in plain if abs(r.template_length) < 100]
    assert short and all(r.query_length == abs(r.template_length) for r in short)
    overlapping = [r for r in plain if r.template_length > 0 and r.next_reference_start < r.reference_end]
    assert len(overlapping) > 0.5 * len([r for r in plain if r.template_length > 0])
    cigars = Counter(op for r in reads for op, _ in r.cigartuples)
    assert cigars[4] > 0 and cigars[2] > 0  # soft clips and deletions occur
    assert {q for r in reads[:2000] for q in r.query_qualities} <= set(QUALITY_BINS)


def _families(reads: list[pysam.AlignedSegment]) -> dict[tuple, list[pysam.AlignedSegment]]:
    """Read-1 records grouped like a UMI-aware duplicate marker: coordinates, then UMIs within one mismatch."""
    groups: dict[tuple, list[pysam.AlignedSegment]] = defaultdict(list)
    for r in reads:
        if r.is_read1 and r.is_proper_pair:
            start = min(r.reference_start, r.next_reference_start)
            groups[(r.reference_id, start, abs(r.template_length), r.is_reverse)].append(r)
    families: dict[tuple, list[pysam.AlignedSegment]] = defaultdict(list)
    for key, members in groups.items():
        seeds: list[str] = []
        for umi, _ in Counter(r.get_tag("RX") for r in members).most_common():
            seed = next((s for s in seeds if sum(a != b for a, b in zip(s, umi, strict=True)) <= 1), umi)
            if seed == umi:
                seeds.append(umi)
            families[(*key, seed)] += [r for r in members if r.get_tag("RX") == umi]
    return families


def test_duplicate_families_umi_errors_and_marking(world: SimpleNamespace) -> None:
    families = _families(_primary_reads(world.bam))
    sizes = np.array([len(f) for f in families.values()])
    assert 1.8 < sizes.mean() < 3.3 and sizes.max() >= 5
    assert any(len({r.get_tag("RX") for r in f}) == 2 for f in families.values())  # a one-mismatch UMI copy
    unflagged = [sum(not r.is_duplicate for r in f) for f in families.values()]
    assert set(unflagged) == {1}  # Picard-style: exactly one representative pair per family


def test_unmarked_library_has_no_duplicate_flag(world: SimpleNamespace) -> None:
    settings = world.settings.replace(duplicate_marked=False)
    sample = sim.simulate_sample(world.reference, world.loci, None, 0.0, settings, np.random.default_rng(1))
    assert not np.any(sample.records.flag & DUPLICATE)
    assert sim.oracle_dedup_mode(sample.records, "auto") == "umi"


def test_artifact_records_carry_alt_and_are_flagged(world: SimpleNamespace) -> None:
    rec, s = world.sample.records, world.settings
    assert np.sum((rec.flag & SECONDARY) > 0) == s.n_secondary
    assert np.sum((rec.flag & SUPPLEMENTARY) > 0) == s.n_supplementary
    assert np.sum((rec.flag & QCFAIL) > 0) == 2 * s.n_qcfail
    assert np.sum((rec.mapq == 0) & ((rec.flag & UNMAPPED) == 0)) >= 2 * s.n_mapq0
    assert np.sum((rec.flag & UNMAPPED) > 0) == 2 * s.n_unmapped_pairs + s.n_mate_unmapped
    loci = world.sample.loci
    for i in np.flatnonzero(rec.flag & (SECONDARY | SUPPLEMENTARY)):
        gstart = world.reference.offsets[rec.tid[i]] + rec.pos[i]
        hit = np.flatnonzero((loci["gpos"] >= gstart) & (loci["gpos"] < gstart + rec.m1[i]))
        assert hit.size == 1
        assert rec.seq[i, loci["gpos"].iloc[hit[0]] - gstart] == loci["alt_code"].iloc[hit[0]]
    counts = sim.expected_counts(world.sample)
    assert (counts["alt_molecules"] <= counts["true_molecules"]).all()


# ---------------------------------------------------------------------------------------------- error model
def _mismatches(sample: sim.SimulatedSample, reference: sim.Reference) -> pd.DataFrame:
    """(ref base, read base, quality, F1R2?, CpG?) of every aligned base of plain primary reads."""
    rec = sample.records
    ok = (rec.flag & (UNMAPPED | SECONDARY | SUPPLEMENTARY)) == 0
    ok &= (rec.cl == 0) & (rec.cr == 0) & (rec.dlen == 0) & (rec.hclip == 0)
    idx = np.flatnonzero(ok)
    col = np.arange(rec.seq.shape[1])[None, :]
    gpos = (reference.offsets[rec.tid[idx]] + rec.pos[idx])[:, None] + col
    inside = col < rec.length[idx][:, None]
    gpos = np.where(inside, gpos, 0)
    flag = rec.flag[idx]
    f1r2 = ((flag & READ1) > 0) != ((flag & REVERSE) > 0)
    ref = reference.codes[gpos]
    cpg = ((ref == 1) & (reference.codes[gpos + 1] == 2)) | ((ref == 2) & (reference.codes[gpos - 1] == 1))
    return pd.DataFrame(
        {
            "ref": ref[inside],
            "read": rec.seq[idx][inside],
            "qual": rec.qual[idx][inside],
            "f1r2": np.broadcast_to(f1r2[:, None], inside.shape)[inside],
            "cpg": cpg[inside],
        }
    )


def test_context_errors_cpg_and_oxog_orientation(world: SimpleNamespace) -> None:
    settings = world.settings.replace(
        substitution_rate=0.0, cpg_deamination_rate=0.02, oxog_rate=0.01, low_quality_segments=0.0,
        quality_tail_fraction=0.0, q2_tail_fraction=0.0, molecules_per_locus=40,
    )  # fmt: skip
    sample = sim.simulate_sample(world.reference, world.loci, None, 0.0, settings, np.random.default_rng(4))
    bases = _mismatches(sample, world.reference)
    c = bases[bases["ref"] == 1]
    assert (c[c["cpg"]]["read"] == 3).mean() > 0.005 > 20 * (c[~c["cpg"]]["read"] == 3).mean()
    g = bases[bases["ref"] == 2]
    g_to_t = g[g["read"] == 3]
    assert g_to_t["f1r2"].mean() > 0.9  # G>T (8-oxoG) only on read-1 orientation F1R2
    c_to_a = c[c["read"] == 0]
    assert (~c_to_a["f1r2"]).mean() > 0.9  # ... which shows as C>A in F2R1 pairs


def test_sequencing_errors_follow_quality(world: SimpleNamespace) -> None:
    settings = world.settings.replace(
        substitution_rate=0.0, cpg_deamination_rate=0.0, oxog_rate=0.0, low_quality_segments=4.0
    )
    sample = sim.simulate_sample(world.reference, world.loci, None, 0.0, settings, np.random.default_rng(8))
    bases = _mismatches(sample, world.reference)
    rate = (bases["ref"] != bases["read"]).groupby(bases["qual"]).mean()
    assert rate[12] == pytest.approx(10**-1.2, rel=0.25)
    assert rate[23] == pytest.approx(10**-2.3, rel=0.5)
    assert rate[37] < 1e-3


# ---------------------------------------------------------------------------------------------- oracle
LOCUS = (
    101  # 1-based; reads are 20 bp: read 1 forward at `start`, read 2 reverse at 101 (both cover the locus)
)
U1, U1_ERR, U2 = "AAAAA-CCCCC", "AAAAA-CCCCA", "GGGGG-TTTTT"


@pytest.fixture(scope="module")
def tiny_reference() -> sim.Reference:
    codes = np.random.default_rng(0).integers(0, 4, 300).astype(np.uint8)
    codes[LOCUS - 1] = 0  # REF A, ALT G
    return sim.Reference(("chr1",), (300,), codes)


def _pair(
    ref: sim.Reference, q: int, start: int, b1: str, b2: str | None, umi: str = U1, q1: int = 37, extra: int = 0,
    mapq: int = 60,
) -> list[sim.ReadSpec]:  # fmt: skip
    """Read 1 at `start` (base b1 at the locus), read 2 at the locus (base b2) or beyond it (b2 None)."""
    r2_start = LOCUS if b2 is not None else LOCUS + 4
    s1, s2 = (
        list(ref.fetch("chr1", start - 1, start + 19)),
        list(ref.fetch("chr1", r2_start - 1, r2_start + 19)),
    )
    s1[LOCUS - start] = b1
    if b2 is not None:
        s2[0] = b2
    quals = [37] * 20
    quals[LOCUS - start] = q1
    tlen = r2_start + 20 - start
    return [
        sim.ReadSpec(q, 0x1 | 0x2 | 0x20 | 0x40 | extra, "chr1", start, "20M", "".join(s1), quals, mapq, r2_start, tlen, umi),
        sim.ReadSpec(q, 0x1 | 0x2 | 0x10 | 0x80 | extra, "chr1", r2_start, "20M", "".join(s2), 37, mapq, start, -tlen, umi),
    ]  # fmt: skip


def _handmade(ref: sim.Reference) -> sim.SimulatedSample:
    reads: list[sim.ReadSpec] = []
    add = reads.extend
    add(_pair(ref, 1, 91, "A", "A"))  # A: ref
    add(_pair(ref, 2, 92, "A", "G"))  # B: mates disagree -> discordant
    add(
        _pair(ref, 3, 93, "G", "G") + _pair(ref, 4, 93, "A", "A", extra=0x400)
    )  # C: 1 G vs 1 A tie -> discordant
    add(
        _pair(ref, 5, 94, "G", "G")
        + _pair(ref, 6, 94, "G", "G", extra=0x400)
        + _pair(ref, 7, 94, "A", "A", extra=0x400)
    )
    add(_pair(ref, 8, 95, "G", "A", q1=12))  # E: low-quality G ignored -> ref
    # F: read 1 has a deletion over the locus, read 2 shows C -> other
    s1 = ref.fetch("chr1", 95, 100) + ref.fetch("chr1", 103, 118)
    add(
        [
            sim.ReadSpec(9, 0x63, "chr1", 96, "5M3D15M", s1, 37, 60, LOCUS, 25, U1),
            sim.ReadSpec(
                9, 0x93, "chr1", LOCUS, "20M", "C" + ref.fetch("chr1", LOCUS, LOCUS + 19), 37, 60, 96, -25, U1
            ),
        ]
    )
    # G: the locus sits in read 1's soft clip and read 2 starts after it -> no molecule
    clipped = _pair(ref, 10, 97, "G", None)
    clipped[0].cigar = "4M16S"
    add(clipped)
    # H: never counted: a secondary G record, a MAPQ 10 pair, a QC-fail pair
    add(
        [
            sim.ReadSpec(
                1, 0x1 | 0x100 | 0x40, "chr1", 91, "20M", _pair(ref, 1, 91, "G", "G")[0].seq, 37, 60, LOCUS
            )
        ]
    )
    add(_pair(ref, 11, 98, "G", "G", mapq=10) + _pair(ref, 12, 99, "G", "G", extra=0x200))
    # I: UMI clustering: a one-mismatch copy joins, a distant UMI is another molecule
    add(
        _pair(ref, 13, 100, "G", "G")
        + _pair(ref, 14, 100, "G", "G", umi=U1_ERR)
        + _pair(ref, 15, 100, "A", "A", umi=U2)
    )
    add(
        _pair(ref, 16, 85, "A", "G") + _pair(ref, 17, 85, "G", "G") + _pair(ref, 18, 85, "G", "G")
    )  # J: -> alt
    add(_pair(ref, 19, 86, "A", "G") + _pair(ref, 20, 86, "C", "G"))  # K: only discordant pairs -> discordant
    add(sum((_pair(ref, 21 + i, 87, b, b) for i, b in enumerate("GGGAA")), []))  # L: 3/5 = 0.6 -> alt
    add(sum((_pair(ref, 26 + i, 88, b, b) for i, b in enumerate("GGAC")), []))  # M: 2/4 < 0.6 -> discordant
    loci = pd.DataFrame({"chrom": ["chr1"], "pos": [LOCUS], "ref": ["A"], "alt": ["G"]})
    return sim.sample_from_reads(ref, loci, reads)


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("umi", [3, 4, 1, 4]),  # ref: A E I(U2); alt: D I(U1) J L; other: F; discordant: B C K M
        ("auto", [3, 4, 1, 4]),
        ("coordinates", [2, 4, 1, 4]),  # I collapses to one family G,G,A -> alt
        ("flag", [6, 11, 2, 4]),  # 0x400 pairs dropped, every other pair is one molecule
    ],
)
def test_expected_counts_handmade(tiny_reference: sim.Reference, mode: str, expected: list[int]) -> None:
    counts = sim.expected_counts(_handmade(tiny_reference), mode=mode)
    assert counts[sim.MOLECULE_COUNT_COLUMNS].iloc[0].tolist() == expected


def test_handmade_sample_writes_a_valid_bam(tiny_reference: sim.Reference, tmp_path: Path) -> None:
    path = sim.write_bam(_handmade(tiny_reference), tmp_path / "hand.bam", tiny_reference)
    reads = _primary_reads(path)
    assert len(reads) == 58 and sum(r.is_duplicate for r in reads) == 6  # 29 pairs, 3 of them flagged
    assert [r.reference_start for r in reads] == sorted(r.reference_start for r in reads)


def test_truth_matches_simulated_tumor_signal(world: SimpleNamespace) -> None:
    counts = sim.expected_counts(world.sample)
    tumor_keys = set(zip(world.panel["chrom"], world.panel["pos"], strict=True))
    is_tumor = [k in tumor_keys for k in zip(counts["chrom"], counts["pos"], strict=True)]
    assert counts.loc[is_tumor, "true_tumor_alt_molecules"].sum() > 5
    assert counts.loc[[not t for t in is_tumor], "true_tumor_alt_molecules"].sum() == 0
    counted = counts[sim.MOLECULE_COUNT_COLUMNS].sum(axis=1)
    assert (counted <= counts["true_molecules"]).all() and (counted > 0.8 * counts["true_molecules"]).all()


# ---------------------------------------------------------------------------------------------- CRAM, samtools
def test_cram_decodes_to_the_same_reads(world: SimpleNamespace) -> None:
    cram = sim.write_bam(world.sample, world.tmp / "t.cram", world.reference, fmt="cram")
    assert Path(str(cram) + ".crai").exists()
    from_cram = _primary_reads(cram, world.tmp / "genome.fa.gz")
    from_bam = _primary_reads(world.bam)
    assert [(r.query_name, r.flag, r.reference_start, r.query_sequence) for r in from_cram] == [
        (r.query_name, r.flag, r.reference_start, r.query_sequence) for r in from_bam
    ]


@pytest.mark.external
@pytest.mark.skipif(shutil.which("samtools") is None, reason="samtools not installed")
def test_samtools_accepts_the_files(world: SimpleNamespace) -> None:
    subprocess.run(["samtools", "quickcheck", str(world.bam)], check=True)
    flagstat = subprocess.run(
        ["samtools", "flagstat", str(world.bam)], check=True, capture_output=True, text=True
    )
    lines = flagstat.stdout.splitlines()
    assert lines[2].startswith(f"{world.settings.n_secondary} + 0 secondary")
    assert lines[3].startswith(f"{world.settings.n_supplementary} + 0 supplementary")
    n_dup = int(np.sum((world.sample.records.flag & DUPLICATE) > 0))
    assert lines[4].startswith(f"{n_dup} + 0 duplicates")


# ---------------------------------------------------------------------------------------------- bundled data
@pytest.mark.skipif(not (TEST_DATA / "truth" / "samples.tsv").exists(), reason="bundled data not generated")
def test_bundled_dataset_is_complete() -> None:
    truth = pd.read_csv(TEST_DATA / "truth" / "samples.tsv", sep="\t")
    sheets = pd.concat(
        [pd.read_csv(TEST_DATA / b / "samples.tsv", sep="\t").assign(folder=b) for b in ("batch1", "batch2")]
    )
    assert sorted(sheets["sample_id"]) == sorted(truth["sample_id"])
    for row in sheets.itertuples():
        path = TEST_DATA / row.folder / row.bam
        index = Path(str(path) + (".crai" if path.suffix == ".cram" else ".bai"))
        assert path.exists() and index.exists()
    loci = pd.read_csv(TEST_DATA / "truth" / "loci.tsv", sep="\t")
    counts = pd.read_csv(TEST_DATA / "truth" / "locus_counts.tsv", sep="\t")
    n_unique = len(loci.drop_duplicates(["chrom", "pos", "ref", "alt"]))
    assert len(counts) == len(truth) * n_unique
    assert set(loci["special"].dropna()) == {"chip", "noisy"}


def test_spread_weights_scatter_around_the_panel_and_keep_its_mean():
    panel = np.r_[np.ones(100_000), np.full(100_000, 0.5), np.full(3, 2.0)]
    real = sim.spread_weights(np.random.default_rng(3), panel, 0.5)
    assert real.max() <= WEIGHT_BOUNDS[1]  # a tumor copy shows the ALT at most once
    # Mean 1 times the panel's after the cap: the panel is right on average (a mean-1 factor capped at 2
    # would average 0.974 at spread 0.5).
    assert real[:100_000].mean() == pytest.approx(1.0, abs=0.005)
    assert real[100_000:200_000].mean() == pytest.approx(0.5, abs=0.0025)
    assert np.log(real[:100_000]).std() == pytest.approx(0.5, abs=0.05)
    assert real[-3:].tolist() == [2.0, 2.0, 2.0]  # nothing to spread upward
    assert (sim.spread_weights(np.random.default_rng(3), panel, 0.0) == panel).all()
