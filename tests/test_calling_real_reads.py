"""Calling on real reads: ctDNAtools' patient plasma T1 (low-level positive) and T2 (no mutant read), with its
three normals N1-N3 as the panel of normals (healthy controls) for the background model.

The panel is the package's 10 reporter SNVs (mutations.tsv), all within 500 bp: many fragments cover several of
them. T1's 13 mutant molecules come from 5 fragments, one of which (226 bp) shows the ALT at 6 loci. No reference
FASTA ships with the reads, so every locus gets context `NNN` (its substitution class's rate stands in for the
trinucleotide rate).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd
import pysam
import pytest

from conftest import ctdnatools_panel
from mrdtrack.calling import CALL_COLUMNS, CallSettings, build_background, call_cohort
from mrdtrack.counting import CountSettings, count_sample

SAMPLES = {"T1": "plasma", "T2": "plasma", "N1": "control", "N2": "control", "N3": "control"}
SETTINGS = CallSettings(null_draws=2000)


def call_real_reads(
    bams: dict[str, str], panel: pd.DataFrame, settings: CallSettings = SETTINGS, by_fragment=True
):
    counted = {s: count_sample(s, bams[s], "", panel, CountSettings()) for s in SAMPLES}
    counts = pd.concat([c.counts for c in counted.values()], ignore_index=True)
    lengths = pd.concat(
        [c.fragment_lengths.assign(sample_id=s) for s, c in counted.items()], ignore_index=True
    )
    fragments = pd.concat([c.fragments.assign(sample_id=s) for s, c in counted.items()], ignore_index=True)
    samples = pd.DataFrame(
        {
            "sample_id": list(SAMPLES),
            "patient_id": ["T" if t == "plasma" else "" for t in SAMPLES.values()],
            "sample_type": list(SAMPLES.values()),
            "collection_date": ["2020-01-01", "2020-02-01", "", "", ""],
            "batch": "",
        }
    )
    background = build_background(counts, samples)
    # Fragment-length weighting on (the default): T1's own mutant molecules are the only tumor DNA, so its
    # length model learns nothing from them and the call rests on counts, as it should.
    result = call_cohort(
        counts,
        samples,
        panel,
        background.locus_rates,
        background.excluded,
        settings,
        lengths,
        fragments=fragments if by_fragment else None,
    )
    return counts, background, result


def real_bams(folder: Path) -> dict[str, str]:
    return {s: str(folder / f"{s}.bam") for s in SAMPLES}


@pytest.fixture(scope="module")
def called(ctdnatools):
    return call_real_reads(real_bams(ctdnatools), ctdnatools_panel(ctdnatools))


def copy_read_pair(source: str, target: str, name: str, out: Path) -> Path:
    """`target` with both records of read pair `name` from `source` added (renamed), sorted and indexed."""
    with pysam.AlignmentFile(source) as bam:
        pair = [read for read in bam.fetch(until_eof=True) if read.query_name == name]
    unsorted = out / "unsorted.bam"
    with (
        pysam.AlignmentFile(target) as bam,
        pysam.AlignmentFile(str(unsorted), "wb", template=bam) as written,
    ):
        for read in bam.fetch(until_eof=True):
            written.write(read)
        for read in pair:
            read.query_name = f"{name}_copied"
            written.write(read)
    spiked = out / "T2.bam"
    pysam.sort("-o", str(spiked), str(unsorted))
    pysam.index(str(spiked))
    return spiked


def multi_alt_read_pair(folder: Path, panel: pd.DataFrame) -> tuple[str, int]:
    """The name of T1's read pair with the ALT at the most panel loci, and that number of loci."""
    alts: dict[str, set[int]] = {}
    with pysam.AlignmentFile(str(folder / "T1.bam")) as bam:
        for locus in panel.itertuples():
            for column in bam.pileup(
                locus.chrom, locus.pos - 1, locus.pos, truncate=True, min_base_quality=20
            ):
                for read in column.pileups:
                    if read.query_position is None:
                        continue
                    if read.alignment.query_sequence[read.query_position] == locus.alt:
                        alts.setdefault(read.alignment.query_name, set()).add(locus.pos)
    name = max(alts, key=lambda n: (len(alts[n]), n))
    return name, len(alts[name])


def test_background_from_the_normals_keeps_every_locus_with_a_low_rate(called):
    _, background, _ = called
    rates = background.locus_rates
    assert len(rates) == 10 and not rates["excluded"].any()
    assert (rates["n_samples"] == 3).all() and (rates["alt_molecules"] == 0).all()
    # No ALT in ~4,300 background molecules: the half-pseudo-count floor keeps rates small but above 0.
    assert ((rates["rate"] > 0) & (rates["rate"] < 2e-3)).all()
    assert background.excluded.empty


def test_t1_is_positive_and_t2_negative(called):
    _, _, result = called
    calls = result.calls.set_index("sample_id")
    assert list(result.calls.columns) == CALL_COLUMNS
    t1, t2 = calls.loc["T1"], calls.loc["T2"]
    assert t1["mrd_status"] == "positive", t1["status_reason"]
    assert t1["mutant_molecules"] >= 8 and t1["n_loci_used"] == 10 and t1["n_loci_outlier"] == 0
    assert t1["p_value"] < 1e-4
    # ~13 mutant molecules of ~3,400: TF ~ 2 x 13 / 3,400 ~ 0.8%, and the interval holds that.
    assert t1["tf_ci_low"] < 2 * t1["mutant_molecules"] / t1["total_molecules"] < t1["tf_ci_high"]
    assert 1e-3 < t1["tumor_fraction"] < 0.02
    # T2 has no mutant molecule over ~5,600 molecules: negative, and deep enough to say so (LOD95 < 1%).
    assert t2["mrd_status"] == "negative", t2["status_reason"]
    assert t2["mutant_molecules"] == 0 and t2["tumor_fraction"] == 0 and t2["tf_ci_low"] == 0
    assert t2["lod95"] < CallSettings().max_lod95
    assert t2["tf_ci_high"] < t1["tumor_fraction"]


def test_the_normals_scored_at_the_patient_panel_are_quiet(called):
    _, _, result = called
    nulls = result.null_scores
    assert sorted(nulls["sample_id"]) == ["N1", "N2", "N3"]
    assert (nulls["mutant_molecules"] == 0).all() and (nulls["p_value"] == 1).all()
    assert result.threshold == CallSettings().false_positive_rate


def test_t1s_mutant_molecules_are_counted_as_five_fragments(called):
    _, _, result = called
    t1 = result.calls.set_index("sample_id").loc["T1"]
    assert t1["mutant_molecules"] == 13 and t1["mutant_fragments"] == 5 and t1["mutant_loci"] == 9


def test_one_copied_multi_alt_read_pair_does_not_make_t2_positive(ctdnatools, tmp_path):
    panel = ctdnatools_panel(ctdnatools)
    name, loci = multi_alt_read_pair(ctdnatools, panel)
    assert loci == 6  # the 226 bp fragment of T1
    spiked = copy_read_pair(str(ctdnatools / "T1.bam"), str(ctdnatools / "T2.bam"), name, tmp_path)
    bams = real_bams(ctdnatools) | {"T2": str(spiked)}
    _, _, result = call_real_reads(bams, panel)
    calls = result.calls.set_index("sample_id")
    t1, t2 = calls.loc["T1"], calls.loc["T2"]
    assert t1["mrd_status"] == "positive", t1["status_reason"]
    assert (t2["mutant_molecules"], t2["mutant_fragments"], t2["mutant_loci"]) == (6, 1, 6)
    assert t2["mrd_status"] != "positive"
    assert "1 mutant fragment" in t2["status_reason"]
    # Counted locus by locus, as before fragments were told apart, the one pair was a call on its own.
    _, _, per_locus = call_real_reads(
        bams, panel, replace(SETTINGS, min_mutant_fragments=1, min_mutant_loci=1), by_fragment=False
    )
    assert per_locus.calls.set_index("sample_id").loc["T2", "mrd_status"] == "positive"
