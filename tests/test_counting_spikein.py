"""Spike-in on real cell-free DNA: known mutant molecules edited into FinaleToolkit's DELFI CRAM are found, and
the call turns positive.

At pseudo-SNV loci every 5 kb over chr1:1-6 Mb (~2x depth, ~1.5 fragments each; see test_counting_cram.py for the
files and the FASTA's one-base offset) and at deletion loci every 50 kb, a known share of the fragments (read
pairs with their duplicates: one molecule) is made mutant: the base at the locus is changed to ALT in every read
of the fragment, keeping its quality; for a deletion, the deleted bases are cut out of the reads and their
CIGAR, as an aligner would have written them. Each spiked fragment's reads are otherwise untouched, so the
counting rules meet real qualities, clips, duplicates and mates. The spiked reads are written as a CRAM (decoded
with the reference, as the workflow does) and as a BAM (counted by the compiled engine).

Only fragments that show REF at the locus in every read that covers it are spiked, so each spiked fragment
turns one REF molecule into one ALT molecule exactly when counting keeps the fragment: some read pair of it is
not duplicate-flagged, passes the read filters and has the locus at base quality >= 20 (decided here with pysam,
independently of mrdtrack). A spiked fragment that fails these is spiked all the same and must not count.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pysam
import pytest

from mrdtrack.calling import CallSettings, build_background, call_cohort
from mrdtrack.counting import CountSettings, count_sample
from mrdtrack.inputs.panel import repeat_unit

# A real 6 Mb CRAM, read through pysam: minutes, not seconds.
pytestmark = pytest.mark.slow

CRAM = "hg19.chr1.6Mb.cram"
FASTA = "hg19.chr1.10Mb.fa.gz"
SNV_SPACING = 5000
DELETION_SPACING = 50_000
SPIKED_SHARE = 0.05  # of the fragments at each locus that show REF
DROPPED = 0x4 | 0x100 | 0x200 | 0x800
MOLECULE_COLUMNS = ["ref_molecules", "alt_molecules", "other_molecules", "discordant_molecules"]
CONTROLS = ["C1", "C2", "C3"]


def reference_window(finaletoolkit) -> tuple[str, int]:
    """chr1:1-6 Mb of the FASTA and its offset (the FASTA's position x holds hg19's x + offset)."""
    with pysam.FastaFile(str(finaletoolkit / FASTA)) as fasta:
        offset = 10_000_000 - fasta.get_reference_length("chr1")
        return fasta.fetch("chr1", 0, 6_000_000), offset


def panel_of(finaletoolkit) -> pd.DataFrame:
    """Pseudo-SNVs (REF from hg19, ALT another base) and 2 bp deletions (REF the anchor and the next 2 bases),
    at unmasked bases only (lower case: repeats)."""
    sequence, offset = reference_window(finaletoolkit)
    rows = []
    for pos in range(1_000_001, 6_000_000, SNV_SPACING):
        ref = sequence[pos - 1 - offset]
        if ref in "ACGT":
            rows.append((pos, ref, "C" if ref == "A" else "A"))
    contexts = ["NNN"] * len(rows)  # no trinucleotide: the substitution class's rate stands in
    for pos in range(1_002_501, 6_000_000, DELETION_SPACING):
        ref = sequence[pos - 1 - offset : pos + 2 - offset]
        if set(ref) <= set("ACGT") and ref[0] != ref[2]:  # unmasked, and left-aligned
            rows.append((pos, ref, ref[0]))
            contexts.append(deletion_context(sequence[pos - offset : pos + 40 - offset], ref[1:]))
    panel = pd.DataFrame(rows, columns=["pos", "ref", "alt"]).assign(context=contexts)
    panel = panel.sort_values("pos", kind="stable").reset_index(drop=True)
    return panel.assign(patient_id="P1", chrom="chr1", weight=1.0)


def deletion_context(after_anchor: str, deleted: str) -> str:
    """The panel's indel context (`del2:ACx3`): the deleted bases' repeat unit and its copies after the anchor."""
    unit = repeat_unit(deleted)
    copies = 0
    while after_anchor[copies * len(unit) : (copies + 1) * len(unit)].upper() == unit:
        copies += 1
    return f"del{len(deleted)}:{unit}x{copies}"


def fragment_of(read: pysam.AlignedSegment) -> tuple[int, int]:
    """Read pairs with the same outer coordinates are copies of one fragment (samblaster flags all but one)."""
    return min(read.reference_start, read.next_reference_start), abs(read.template_length)


def reference_view(read: pysam.AlignedSegment, pos0: int, span: int) -> tuple[str, int] | None:
    """The read's bases at reference pos0..pos0+span-1 and the quality at pos0, if it aligns them all one after
    the other (no indel between)."""
    pairs = {ref: query for query, ref in read.get_aligned_pairs(matches_only=True)}
    if not all(pairs.get(pos0 + k, -1) == pairs.get(pos0, -2) + k for k in range(span)):
        return None
    bases = "".join(read.query_sequence[pairs[pos0 + k]] for k in range(span))
    return bases, read.query_qualities[pairs[pos0]]


def span_of(ref: str) -> int:
    """Reference bases a read must align, one after the other, to be spiked: a deletion's anchor, deleted bases
    and the base after them (so that the spiked read shows the deletion then an aligned base)."""
    return len(ref) + 1 if len(ref) > 1 else 1


def choose_spikes(cram: str, fasta: str, panel: pd.DataFrame, rng: np.random.Generator) -> dict:
    """Per locus, the fragments to spike (SPIKED_SHARE of those whose reads that align the locus all align its
    span and show REF there) and the read pairs of them that counting must keep (flag mode: one molecule each)."""
    chosen = {}
    with pysam.AlignmentFile(cram, reference_filename=fasta) as alignments:
        for locus in panel.itertuples():
            views: dict[tuple[int, int], list] = {}
            for read in alignments.fetch("chr1", locus.pos - 1, locus.pos):
                if read.is_unmapped or locus.pos - 1 not in read.get_reference_positions():
                    continue
                views.setdefault(fragment_of(read), []).append(
                    (read, reference_view(read, locus.pos - 1, span_of(locus.ref)))
                )
            eligible = [
                fragment
                for fragment, seen in views.items()
                if all(view is not None and view[0][: len(locus.ref)] == locus.ref for _, view in seen)
            ]
            n_spiked = int(rng.binomial(len(eligible), SPIKED_SHARE)) if eligible else 0
            picks = [eligible[i] for i in rng.choice(len(eligible), n_spiked, replace=False)]
            kept = {
                read.query_name for f in picks for read, (_, quality) in views[f] if _counted(read, quality)
            }
            chosen[(locus.pos, locus.ref, locus.alt)] = (set(picks), len(kept))
    return chosen


def _counted(read: pysam.AlignedSegment, quality: int) -> bool:
    return not read.flag & DROPPED and not read.is_duplicate and read.mapping_quality >= 20 and quality >= 20


def spike(read: pysam.AlignedSegment, pos: int, ref: str, alt: str) -> None:
    """Make the read carry ALT at the 1-based `pos`: a base substituted, or the deleted bases removed."""
    qualities = read.query_qualities
    pairs = {ref_pos: query for query, ref_pos in read.get_aligned_pairs(matches_only=True)}
    query = pairs[pos - 1]
    sequence = read.query_sequence
    if len(ref) == len(alt):
        read.query_sequence = sequence[:query] + alt + sequence[query + 1 :]
        read.query_qualities = qualities
        return
    deleted = len(ref) - len(alt)
    cut = query + 1  # the deleted bases follow the anchor in an ungapped stretch (reference_view made sure)
    read.cigartuples = _cigar_with_deletion(read.cigartuples, cut, deleted)
    read.query_sequence = sequence[:cut] + sequence[cut + deleted :]
    read.query_qualities = qualities[:cut] + qualities[cut + deleted :]


def _cigar_with_deletion(cigar: list[tuple[int, int]], cut: int, deleted: int) -> list[tuple[int, int]]:
    """The CIGAR with `deleted` read bases from query index `cut` (inside an aligned stretch) turned into a
    deletion: the read keeps its start and end on the reference, with that many bases fewer."""
    out, query = [], 0
    for operation, length in cigar:
        consumes = operation in (0, 1, 4, 7, 8)
        if operation in (0, 7, 8) and query <= cut < query + length:
            before, after = cut - query, query + length - cut - deleted
            out += [(operation, before), (2, deleted)] + ([(operation, after)] if after > 0 else [])
        else:
            out.append((operation, length))
        query += length if consumes else 0
    return [op for op in out if op[1] > 0]


def write_spiked(cram: str, fasta: str, chosen: dict, folder) -> tuple[str, str]:
    by_fragment = {}
    for (pos, ref, alt), (fragments, _) in chosen.items():
        for fragment in fragments:
            by_fragment.setdefault(fragment, []).append((pos, ref, alt))
    with pysam.AlignmentFile(cram, reference_filename=fasta) as alignments:
        header = alignments.header
        reads = list(alignments.fetch(until_eof=True))
    for read in reads:
        if not read.is_unmapped:
            for pos, ref, alt in by_fragment.get(fragment_of(read), []):
                if reference_view(read, pos - 1, span_of(ref)) is not None:
                    spike(read, pos, ref, alt)
    paths = str(folder / "spiked.cram"), str(folder / "spiked.bam")
    for path, mode in zip(paths, ("wc", "wb"), strict=True):
        with pysam.AlignmentFile(path, mode, header=header, reference_filename=fasta) as out:
            for read in reads:
                out.write(read)
        pysam.index(path)
    return paths


@pytest.fixture(scope="module")
def spiked(finaletoolkit, tmp_path_factory):
    cram, fasta = str(finaletoolkit / CRAM), str(finaletoolkit / FASTA)
    panel = panel_of(finaletoolkit)
    chosen = choose_spikes(cram, fasta, panel, np.random.default_rng(2024))
    spiked_cram, spiked_bam = write_spiked(cram, fasta, chosen, tmp_path_factory.mktemp("spikein"))
    counts = {
        "original": count_sample("original", cram, fasta, panel, CountSettings()),
        "spiked": count_sample("spiked", spiked_cram, fasta, panel, CountSettings()),
        "spiked_bam": count_sample("spiked", spiked_bam, fasta, panel, CountSettings(engine="compiled")),
    }
    return panel, chosen, counts


def test_counting_finds_exactly_the_spiked_mutant_molecules(spiked):
    panel, chosen, counts = spiked
    keys = ["pos", "ref", "alt"]
    original = counts["original"].counts.set_index(keys)[MOLECULE_COLUMNS]
    after = counts["spiked"].counts.set_index(keys)[MOLECULE_COLUMNS]
    kept = pd.Series({key: n for key, (_, n) in chosen.items()}).reindex(original.index)
    pd.testing.assert_series_equal(
        after["alt_molecules"] - original["alt_molecules"], kept, check_names=False
    )
    pd.testing.assert_series_equal(
        original["ref_molecules"] - after["ref_molecules"], kept, check_names=False
    )
    for column in ("other_molecules", "discordant_molecules"):
        pd.testing.assert_series_equal(after[column], original[column])
    spiked_fragments = sum(len(fragments) for fragments, _ in chosen.values())
    deletions = [key for key in chosen if len(key[1]) > 1]
    assert kept.sum() >= 30 and sum(chosen[key][1] for key in deletions) >= 3, (kept.sum(), spiked_fragments)
    assert spiked_fragments > kept.sum(), "some spiked fragments are duplicates or fail a filter: not counted"
    assert counts["spiked"].qc["dedup_mode"] == "flag"


def test_the_spiked_bam_counted_by_the_compiled_engine_equals_the_cram(spiked):
    _, _, counts = spiked
    pd.testing.assert_frame_equal(counts["spiked_bam"].counts, counts["spiked"].counts)
    pd.testing.assert_frame_equal(counts["spiked_bam"].fragments, counts["spiked"].fragments)


def test_the_call_turns_positive_with_the_spike_and_not_without(spiked):
    panel, _, counts = spiked
    original = counts["original"]
    samples = pd.DataFrame(
        {
            "sample_id": ["spiked", "original", *CONTROLS],
            "patient_id": ["P1", "P1", "", "", ""],
            "sample_type": ["plasma", "plasma", "control", "control", "control"],
            "collection_date": ["2021-01-01", "2021-04-01", "", "", ""],
            "batch": "",
        }
    )
    per_sample = {"spiked": counts["spiked"], "original": original} | {c: original for c in CONTROLS}
    table = pd.concat([c.counts.assign(sample_id=s) for s, c in per_sample.items()], ignore_index=True)
    lengths = pd.concat(
        [c.fragment_lengths.assign(sample_id=s) for s, c in per_sample.items()], ignore_index=True
    )
    fragments = pd.concat([c.fragments.assign(sample_id=s) for s, c in per_sample.items()], ignore_index=True)
    background = build_background(table, samples, panel=panel)
    result = call_cohort(table, samples, panel, background.locus_rates, background.excluded,
                         CallSettings(null_draws=2000), lengths, fragments=fragments)  # fmt: skip
    calls = result.calls.set_index("sample_id")
    assert calls.loc["spiked", "mrd_status"] == "positive", calls.loc["spiked", "status_reason"]
    assert calls.loc["original", "mrd_status"] != "positive", calls.loc["original", "status_reason"]
    # the tumor fraction is about twice the spiked VAF
    vaf = calls.loc["spiked", "mutant_molecules"] / calls.loc["spiked", "total_molecules"]
    assert calls.loc["spiked", "tf_ci_low"] < 2 * vaf < calls.loc["spiked", "tf_ci_high"]
