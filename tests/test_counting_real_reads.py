"""Counting on real reads (ctDNAtools' patient plasma and normals) agrees with samtools and with pysam."""

from __future__ import annotations

import re
import subprocess

import pandas as pd
import pysam
import pytest

from conftest import ctdnatools_panel, require_tool
from mrdtrack.counting import CountSettings, count_sample

SAMPLES = ["T1", "T2", "N1", "N2", "N3"]
READS_ONLY = CountSettings(dedup="none", merge_mates=False)


@pytest.fixture(scope="module")
def panel(ctdnatools) -> pd.DataFrame:
    return ctdnatools_panel(ctdnatools)


def mpileup_counts(bam: str, chrom: str, pos: int, ref: str, alt: str) -> dict[str, int]:
    """REF/ALT/other read counts from samtools mpileup with the same filters as mrdtrack's defaults."""
    command = [
        "samtools", "mpileup", "-q", "20", "-Q", "20", "-B", "-A", "-x", "-d", "0",
        "--ff", "UNMAP,SECONDARY,QCFAIL,SUPPLEMENTARY", "-r", f"{chrom}:{pos}-{pos}", bam,
    ]  # fmt: skip
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    if not output:
        return {"ref": 0, "alt": 0, "other": 0}
    bases = output.split("\t")[4]
    bases = re.sub(r"\^.", "", bases).replace("$", "")
    bases = _drop_indel_sequences(bases)
    called = [b.upper() for b in bases if b not in "*#<>"]
    ref_count = sum(b in ".," or b == ref for b in called)  # no reference given: REF shows as its letter
    alt_count = sum(b == alt for b in called)
    return {"ref": ref_count, "alt": alt_count, "other": len(called) - ref_count - alt_count}


def _drop_indel_sequences(bases: str) -> str:
    out, i = [], 0
    while i < len(bases):
        if bases[i] in "+-":
            match = re.match(r"[+-](\d+)", bases[i:])
            i += len(match.group(0)) + int(match.group(1))
        else:
            out.append(bases[i])
            i += 1
    return "".join(out)


@pytest.mark.external
@pytest.mark.parametrize("sample", SAMPLES)
def test_read_counts_equal_samtools_mpileup(ctdnatools, panel, sample):
    require_tool("samtools")
    bam = str(ctdnatools / f"{sample}.bam")
    counts = count_sample(sample, bam, "", panel, READS_ONLY).counts
    for row in counts.itertuples():
        expected = mpileup_counts(bam, row.chrom, row.pos, row.ref, row.alt)
        observed = {"ref": row.ref_molecules, "alt": row.alt_molecules, "other": row.other_molecules}
        assert observed == expected, f"{sample} {row.chrom}:{row.pos}"


def distinct_templates(bam: str, chrom: str, pos: int, settings: CountSettings) -> int:
    """Templates with a passing read whose base at `pos` passes the base-quality floor (independent of mrdtrack)."""
    names = set()
    with pysam.AlignmentFile(bam) as alignments:
        for read in alignments.fetch(chrom, pos - 1, pos):
            if read.flag & (0x4 | 0x100 | 0x200 | 0x800) or read.mapping_quality < settings.min_mapq:
                continue
            for query, reference in read.get_aligned_pairs(matches_only=True):
                if reference == pos - 1 and read.query_qualities[query] >= settings.min_baseq:
                    names.add(read.query_name)
    return len(names)


@pytest.mark.parametrize("sample", SAMPLES)
def test_overlapping_mates_count_once(ctdnatools, panel, sample):
    settings = CountSettings(dedup="none")
    bam = str(ctdnatools / f"{sample}.bam")
    counts = count_sample(sample, bam, "", panel, settings).counts
    molecules = counts[["ref_molecules", "alt_molecules", "other_molecules", "discordant_molecules"]].sum(
        axis=1
    )
    expected = [distinct_templates(bam, row.chrom, row.pos, settings) for row in counts.itertuples()]
    assert molecules.tolist() == expected
    assert (molecules < counts["reads"]).all(), "real pairs overlap, so molecules < reads at some loci"


def test_only_the_patient_plasma_carries_mutant_molecules(ctdnatools, panel):
    alt = {s: count_sample(s, str(ctdnatools / f"{s}.bam"), "", panel, CountSettings()).counts.alt_molecules.sum()
           for s in SAMPLES}  # fmt: skip
    assert alt["T1"] >= 8
    assert alt["T2"] == alt["N1"] == alt["N2"] == alt["N3"] == 0
