"""Indel loci: molecules counted with the panel's indel allele, equal to an independent pileup.

The reads are simulated as an aligner writes them: each fragment is a haplotype (REF, the panel's ALT, or another
indel at the locus: polymerase slippage in a homopolymer, a longer deletion, another inserted base), laid on the
reference, and each mate is a 100 bp window of it whose CIGAR says how it aligns (an insertion cut by the read's
end is soft-clipped, a deletion at its end is not seen). On top: sequencing errors, low base qualities, soft
clips, MAPQ-0 reads, overlapping mates, a multi-allelic site (an SNV and a deletion at one anchor).

`samtools mpileup` (htslib's pileup, not mrdtrack's CIGAR walk) gives what each read shows at and after each
anchor: the base, its quality and the `+n`/`-n` indel that follows it. `pileup_calls` turns that into REF, ALT,
another indel or nothing by the rules of config/README.md, written from the pileup's point of view, and the
counts must equal mrdtrack's, read by read and (mates merged) read pair by read pair, in both engines. mpileup
does not show an insertion's base qualities: the simulated inserted bases are all of good quality, and the
quality rule for inserted bases is checked in tests/test_molecules.py.
"""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pysam
import pytest

from conftest import require_tool, write_indexed_bam
from mrdtrack.counting import CountSettings, count_sample

CONTIG = 4000
READ_LENGTH = 100
MIN_BASEQ = 20
# Panel indels, VCF style and left-aligned as bcftools norm writes them, with the reference bases written at
# their anchor: (pos, reference from pos, ref, alt).
LOCI = [
    (500, "GAAAAAAAC", "GA", "G"),  # one A of a 7 bp homopolymer deleted
    (900, "CTGAT", "CTGA", "C"),  # a 3 bp deletion
    (1300, "CA", "C", "CGT"),  # a 2 bp insertion
    (1700, "GCACACA", "G", "GT"),  # a 1 bp insertion before a dinucleotide repeat
    (2100, "ACGTTCAGCT", "ACGTTCAGC", "A"),  # an 8 bp deletion
    (2500, "GCA", "GC", "G"),  # a 1 bp deletion, and an SNV G>T at its anchor (a multi-allelic site)
]
SNV = (2500, "G", "T")
READS_ONLY = CountSettings(dedup="none", merge_mates=False)
PAIRS = CountSettings(dedup="none")


@dataclass(frozen=True)
class Indel:
    pos: int  # 1-based anchor
    ref: str
    alt: str

    @property
    def deleted(self) -> int:
        return max(len(self.ref) - len(self.alt), 0)

    @property
    def inserted(self) -> str:
        return self.alt[1:] if len(self.alt) > len(self.ref) else ""


def simulated_reference(rng: np.random.Generator) -> str:
    bases = list("".join(rng.choice(list("ACGT"), CONTIG)))
    for pos, sequence, _, _ in LOCI:
        bases[pos - 1 : pos - 1 + len(sequence)] = sequence
    return "".join(bases)


def panel_loci() -> list[Indel]:
    return [Indel(pos, ref, alt) for pos, _, ref, alt in LOCI] + [Indel(*SNV)]


def haplotype(reference: str, start: int, end: int, change: tuple[int, int, str] | None) -> list[tuple]:
    """The fragment's bases over reference [start, end) as (reference position or None if inserted, base):
    `change` = (anchor0, bases deleted after it, bases inserted after it)."""
    out = []
    position = start
    while position < end:
        out.append((position, reference[position]))
        if change is not None and position == change[0]:
            out.extend((None, base) for base in change[2])
            position += change[1]
        position += 1
    return out


def fragment_change(locus: Indel, rng: np.random.Generator) -> tuple[int, int, str] | None:
    """REF (None), the panel's ALT, or another indel after the anchor, as `haplotype` takes it."""
    kind = rng.choice(["ref", "alt", "other"], p=[0.7, 0.2, 0.1])
    anchor0 = locus.pos - 1
    if kind == "ref":
        return None
    if kind == "alt":
        return anchor0, locus.deleted, locus.inserted
    if locus.inserted:  # another inserted base, or a deletion instead
        return (anchor0, 0, "A" + locus.inserted) if rng.random() < 0.5 else (anchor0, 1, "")
    return anchor0, locus.deleted + 1, ""  # slippage: one base more


def aligned_read(
    bases: list[tuple], rng: np.random.Generator
) -> tuple[int, list[tuple[int, int]], str] | None:
    """(reference start, CIGAR, sequence) of a window of a haplotype, as an aligner reports it; None when no
    base of it aligns."""
    clip_left = int(rng.integers(3, 9)) if rng.random() < 0.05 else 0
    clip_right = int(rng.integers(3, 9)) if rng.random() < 0.05 else 0
    kinds = ["S"] * clip_left + [None] * (len(bases) - clip_left - clip_right) + ["S"] * clip_right
    aligned = [i for i, k in enumerate(kinds) if k is None and bases[i][0] is not None]
    if not aligned:
        return None
    first, last = aligned[0], aligned[-1]
    for i in range(len(bases)):  # inserted bases outside the aligned part are clipped
        if i < first or i > last:
            kinds[i] = "S"
    cigar: list[tuple[int, int]] = []
    previous = None
    for i, (position, _) in enumerate(bases):
        if kinds[i] == "S":
            operation = 4
        elif position is None:
            operation = 1
        else:
            if previous is not None and position > previous + 1:
                _append(cigar, 2, position - previous - 1)
            previous = position
            operation = 0
        _append(cigar, operation, 1)
    return bases[first][0], cigar, "".join(base for _, base in bases)


def _append(cigar: list[tuple[int, int]], operation: int, length: int) -> None:
    if cigar and cigar[-1][0] == operation:
        cigar[-1] = (operation, cigar[-1][1] + length)
    else:
        cigar.append((operation, length))


def simulate_bam(folder: Path, seed: int = 11, fragments_per_locus: int = 150) -> tuple[str, list[Indel]]:
    rng = np.random.default_rng(seed)
    reference = simulated_reference(rng)
    loci = panel_loci()
    header = pysam.AlignmentHeader.from_dict(
        {"HD": {"VN": "1.6", "SO": "coordinate"}, "SQ": [{"SN": "chr1", "LN": CONTIG}]}
    )
    reads = []
    for locus in loci[:-1]:  # the SNV shares the last deletion's anchor and fragments
        for i in range(fragments_per_locus):
            reads += simulated_pair(header, reference, locus, f"p{locus.pos}_{i}", rng)
    return write_indexed_bam(folder / "indels.bam", reads, header), loci


def simulated_pair(header, reference: str, locus: Indel, name: str, rng: np.random.Generator) -> list:
    length = int(rng.integers(130, 260))
    start = locus.pos - 1 - int(rng.integers(0, length - 10))
    change = fragment_change(locus, rng)
    bases = haplotype(reference, max(start, 0), min(start + length, CONTIG), change)
    if locus.pos == 2500 and rng.random() < 0.2:  # the SNV's ALT at the anchor
        bases = [(p, "T" if p == 2499 else b) for p, b in bases]
    pair = []
    for first, window in ((True, bases[:READ_LENGTH]), (False, bases[-READ_LENGTH:])):
        placed = aligned_read(window, rng)
        if placed is None:
            return []
        pair.append((first, *placed))
    mapq = 0 if rng.random() < 0.05 else 60
    return [_record(header, name, first, pair, mapq, rng) for first, *_ in pair]


def _record(header, name: str, first: bool, pair: list, mapq: int, rng: np.random.Generator):
    mine = next(p for p in pair if p[0] == first)
    mate = next(p for p in pair if p[0] != first)
    _, start, cigar, sequence = mine
    read = pysam.AlignedSegment(header)
    read.query_name = name
    read.flag = 0x1 | 0x2 | (0x40 | 0x20 if first else 0x80 | 0x10)
    read.reference_id = read.next_reference_id = 0
    read.reference_start, read.next_reference_start = start, mate[1]
    read.mapping_quality = mapq
    read.cigartuples = cigar
    errors = rng.random(len(sequence)) < 0.003
    read.query_sequence = "".join(
        rng.choice(list("ACGT")) if e else b for b, e in zip(sequence, errors, strict=True)
    )
    qualities = np.where(rng.random(len(sequence)) < 0.05, rng.integers(2, 16, len(sequence)), 37)
    query = 0
    for operation, length in cigar:  # inserted bases: good quality (mpileup does not show theirs)
        if operation == 1:
            qualities[query : query + length] = 37
        if operation in (0, 1, 4):
            query += length
    read.query_qualities = pysam.qualitystring_to_array("".join(chr(int(q) + 33) for q in qualities))
    end = max(
        start + sum(n for op, n in cigar if op in (0, 2)),
        mate[1] + sum(n for op, n in mate[2] if op in (0, 2)),
    )
    left = min(start, mate[1])
    read.template_length = (end - left) if start <= mate[1] else -(end - left)
    return read


# --- the independent pileup ---------------------------------------------------------------------------------

_TOKEN = re.compile(r"(\^.)?([ACGTNacgtn*#<>])([+-])?(?(3)(\d+))")


def mpileup_reads(bam: str, first: int, last: int) -> dict[int, dict[tuple[str, bool], tuple[str, str, int]]]:
    """Per 1-based position in [first, last]: each read (name, is read 1) shown there, with its base (upper case;
    `*` inside a deletion), the indel after it (`+AC`, `-3` or '') and its base quality, from samtools mpileup
    with mrdtrack's read filters and no base-quality floor."""
    command = [
        "samtools", "mpileup", "-B", "-A", "-x", "-d", "0", "-q", "20", "-Q", "0",
        "--ff", "UNMAP,SECONDARY,QCFAIL,SUPPLEMENTARY", "--output-extra", "QNAME,FLAG",
        "-r", f"chr1:{first}-{last}", bam,
    ]  # fmt: skip
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    shown = {}
    for line in output.splitlines():
        _, pos, _, _, bases, qualities, names, flags = line.split("\t")
        tokens = _tokens(bases)
        keys = [(n, bool(int(f) & 0x40)) for n, f in zip(names.split(","), flags.split(","), strict=True)]
        shown[int(pos)] = {
            key: (base, indel, ord(q) - 33)
            for key, (base, indel), q in zip(keys, tokens, qualities, strict=True)
        }
    return shown


def _tokens(bases: str) -> list[tuple[str, str]]:
    out, i = [], 0
    while i < len(bases):
        if bases[i] == "$":
            i += 1
            continue
        match = _TOKEN.match(bases, i)
        base, sign, count = match.group(2).upper(), match.group(3), match.group(4)
        i = match.end()
        indel = ""
        if sign:
            indel = sign + (bases[i : i + int(count)].upper() if sign == "+" else count)
            i += int(count)
        out.append((base.replace("#", "*"), indel))
    return out


def pileup_call(shown: dict, key: tuple[str, bool], locus: Indel) -> tuple[str | None, int]:
    """REF/ALT/other/None for one read at an indel locus, and its anchor base quality, from what the pileup
    shows at the anchor and the reference bases after it."""
    at_anchor = shown[locus.pos].get(key)
    if at_anchor is None or at_anchor[0] in "*<>":
        return None, 0
    quality = at_anchor[2]
    alt = f"+{locus.inserted}" if locus.inserted else f"-{locus.deleted}"
    if at_anchor[1] == alt:
        after = shown.get(locus.pos + locus.deleted + 1, {}).get(key)  # the base after the indel
        last_deleted = shown.get(locus.pos + locus.deleted, {}).get(key) if locus.deleted else None
        if last_deleted is not None and last_deleted[1]:  # a second indel right after the deletion
            return "other", quality
        if after is None or after[0] in "<>":
            return None, quality
        return ("other" if after[0] == "*" else "alt"), quality
    window = max(locus.deleted, 1)
    for offset in range(window + 1):  # the anchor and the next `window` reference bases
        here = shown.get(locus.pos + offset, {}).get(key)
        if here is None or here[0] in "*<>":
            return None, quality
        if here[1] and offset < window:
            return "other", quality
    return "ref", quality


def pileup_counts(bam: str, loci: list[Indel], merge_mates: bool) -> pd.DataFrame:
    rows = []
    for locus in loci:
        shown = mpileup_reads(bam, locus.pos, locus.pos + max(locus.deleted, 1) + 1)
        calls: dict = {}
        reads = 0
        for key in shown.get(locus.pos, {}):
            if len(locus.ref) == len(locus.alt):  # the SNV
                base, _, quality = shown[locus.pos][key]
                call = None if base in "*<>" else {locus.ref: "ref", locus.alt: "alt"}.get(base, "other")
            else:
                call, quality = pileup_call(shown, key, locus)
            if call is None:
                continue
            reads += 1
            template = key[0] if merge_mates else key
            calls.setdefault(template, [])
            if quality >= MIN_BASEQ:
                calls[template].append(call)
        tally = Counter(c[0] if len(set(c)) == 1 else "discordant" for c in calls.values() if c)
        rows.append({"pos": locus.pos, "ref": locus.ref, "alt": locus.alt, "reads": reads} | {
            f"{allele}_molecules": tally[allele] for allele in ("ref", "alt", "other", "discordant")
        })  # fmt: skip
    return pd.DataFrame(rows).set_index(["pos", "ref", "alt"])


def as_panel(loci: list[Indel]) -> pd.DataFrame:
    return pd.DataFrame(
        {"patient_id": "P1", "chrom": "chr1", "pos": [x.pos for x in loci], "ref": [x.ref for x in loci],
         "alt": [x.alt for x in loci], "context": "NNN", "weight": 1.0}
    )  # fmt: skip


@pytest.fixture(scope="module")
def simulated(tmp_path_factory) -> tuple[str, list[Indel]]:
    return simulate_bam(tmp_path_factory.mktemp("indels"))


COLUMNS = ["ref_molecules", "alt_molecules", "other_molecules", "discordant_molecules", "reads"]


@pytest.mark.external
@pytest.mark.parametrize("engine", ["pysam", "compiled"])
@pytest.mark.parametrize("settings", [READS_ONLY, PAIRS], ids=["reads", "read pairs"])
def test_indel_counts_equal_samtools_mpileup(simulated, engine, settings):
    require_tool("samtools")
    bam, loci = simulated
    counted = count_sample(
        "s", bam, "", as_panel(loci), CountSettings(**{**vars(settings), "engine": engine})
    )
    observed = counted.counts.set_index(["pos", "ref", "alt"])[COLUMNS]
    expected = pileup_counts(bam, loci, settings.merge_mates)[COLUMNS]
    pd.testing.assert_frame_equal(observed, expected, check_dtype=False)
    # the simulation reaches every case: ALT, REF and other indels at every indel locus, and no-calls
    indels = observed.iloc[:-1]
    assert (indels[["ref_molecules", "alt_molecules", "other_molecules"]] > 0).all().all(), indels
