"""Panel variants beyond plain SNVs: indels normalised as bcftools norm does, multi-allelic records split per
ALT, MNVs and complex records, gene annotation and the CHIP flag, and variant weights from every accepted key."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pysam
import pytest

from mrdtrack.inputs import InputError, PanelSettings, build_panel
from mrdtrack.inputs.panel import DEFAULT_CHIP_GENES, indel_context, normalize_allele, repeat_unit

# 1-based positions: 1-7 GATTACA, 8-13 CCCCCC (homopolymer), 14-15 GT, 16-23 CACACACA (dinucleotide repeat),
# 24-26 TTG, 27-34 AAAAAAAA, 35-37 CGT, 38-77 (ACGT)x10, 78-83 TATATA, 84-88 GGCAT.
REFERENCE = (
    "GATTACA" + "CCCCCC" + "GT" + "CACACACA" + "TTG" + "AAAAAAAA" + "CGT" + "ACGT" * 10 + "TATATA" + "GGCAT"
)


@pytest.fixture
def reference(tmp_path: Path) -> str:
    path = tmp_path / "ref.fa"
    path.write_text(f">chr1\n{REFERENCE}\n")
    pysam.faidx(str(path))
    return str(path)


def write_vcf(path: Path, records: list[str], header: list[str] = (), samples: list[str] = ()) -> str:
    lines = ["##fileformat=VCFv4.2", f"##contig=<ID=chr1,length={len(REFERENCE)}>", *header]
    lines.append("\t".join(["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", *(
        ["FORMAT", *samples] if samples else []
    )]))  # fmt: skip
    path.write_text("\n".join(lines + records) + "\n")
    return str(path)


def panel_of(
    tmp_path: Path, reference: str, records: list[str], settings: PanelSettings | None = None, **kwargs
) -> pd.DataFrame:
    """The panel of patient P1 whose VCF (p1.vcf) holds `records`."""
    vcf = write_vcf(tmp_path / "p1.vcf", records, **kwargs)
    patients = pd.DataFrame({"patient_id": ["P1"], "panel_vcf": [vcf]})
    return build_panel(patients, reference, settings or PanelSettings())


def loci(panel: pd.DataFrame) -> list[tuple[int, str, str]]:
    return list(zip(panel["pos"], panel["ref"], panel["alt"], strict=True))


def record(pos: int, ref: str, alt: str, info: str = ".") -> str:
    return f"chr1\t{pos}\t.\t{ref}\t{alt}\t.\tPASS\t{info}"


INFO_HEADER = [
    f'##INFO=<ID={key},Number={number},Type=Float,Description="{key}">'
    for key, number in (("CCF", "1"), ("MULT", "1"), ("TCN", "1"), ("CN", "1"), ("VAF", "A"), ("AF", "A"))
]


# ----------------------------------------------------------------------------------------------------------
# Indels: left-aligned and parsimonious, as bcftools norm -f
# ----------------------------------------------------------------------------------------------------------
def test_indels_are_written_vcf_style_with_the_anchor_base_and_shifted_left_through_repeats(
    tmp_path, reference
):
    panel = panel_of(tmp_path, reference, [
        record(12, "CC", "C"),  # one C of CCCCCC deleted, written at the run's right end
        record(13, "C", "CTT"),  # TT inserted after the run
        record(21, "ACA", "A"),  # CA deleted at the right of CACACACA
    ])  # fmt: skip
    assert loci(panel) == [(7, "AC", "A"), (13, "C", "CTT"), (15, "TCA", "T")]
    assert list(panel["variant_type"]) == ["deletion", "insertion", "deletion"]


def test_an_indel_context_names_type_length_repeat_unit_and_its_copies_in_the_reference(reference):
    with pysam.FastaFile(reference) as fasta:
        assert indel_context(fasta, "chr1", 7, "AC", "A") == "del1:Cx6"  # a C of a 6-C homopolymer
        assert indel_context(fasta, "chr1", 7, "A", "AC") == "ins1:Cx6"
        assert indel_context(fasta, "chr1", 15, "TCA", "T") == "del2:CAx4"  # CACACACA: 4 copies of CA
        assert indel_context(fasta, "chr1", 26, "G", "GAA") == "ins2:Ax8"  # unit of AA is A
        assert indel_context(fasta, "chr1", 3, "T", "TG") == "ins1:Gx0"  # no G after the anchor
    assert (repeat_unit("CACA"), repeat_unit("AAA"), repeat_unit("CAT")) == ("CA", "A", "CAT")


def test_normalisation_stops_at_the_contig_start(reference):
    with pysam.FastaFile(reference) as fasta:
        assert normalize_allele(fasta, "chr1", 1, "GA", "G") == (1, "GA", "G")
        assert normalize_allele(fasta, "chr1", 2, "ATTA", "ATA") == (2, "AT", "A")


TRICKY_RECORDS = [
    record(12, "CC", "C"), record(13, "C", "CC"), record(13, "C", "CCC,CCCC,T"), record(21, "ACA", "A"),
    record(23, "A", "ACA"), record(33, "AA", "AAA"), record(34, "AC", "AAC"), record(35, "CGT", "CAT"),
    record(30, "AAAAAC", "AAAAC"), record(54, "ACGTA", "A"), record(80, "TATA", "TA"), record(2, "ATTA", "ATA"),
    record(1, "GA", "G"), record(20, "CACAT", "CAT,CACACAT"), record(9, "CCCCCGT", "CCCCGT"),
    record(9, "CCCCCGT", "CCCCCG"), record(4, "TACACC", "TACACCC"),  # shared first bases trimmed
]  # fmt: skip


def bcftools_norm(vcf: str, reference: str) -> set[tuple[int, str, str]]:
    result = subprocess.run(
        ["bcftools", "norm", "-f", reference, "-m-any", vcf], capture_output=True, text=True, check=True
    )
    rows = [line.split("\t") for line in result.stdout.splitlines() if not line.startswith("#")]
    return {(int(r[1]), r[3], r[4]) for r in rows}


needs_bcftools = pytest.mark.skipif(
    shutil.which("bcftools") is None, reason="bcftools is not installed (apt-get install bcftools)"
)


@needs_bcftools
def test_tricky_indels_normalise_exactly_as_bcftools_norm(tmp_path, reference):
    """Homopolymers, dinucleotide and 4-base repeats, padded records, multi-allelic records, the contig start."""
    panel = panel_of(tmp_path, reference, TRICKY_RECORDS)
    expected = bcftools_norm(str(tmp_path / "p1.vcf"), reference)
    assert set(loci(panel)) == expected


def random_repeat_reference(rng: np.random.Generator, length: int) -> str:
    """Homopolymers (1-10 bases), di- and trinucleotide repeats (2-6 copies) back to back."""
    parts = []
    while sum(map(len, parts)) < length:
        unit = "".join(rng.choice(list("ACGT"), rng.integers(1, 4)))
        parts.append(unit * int(rng.integers(1, 11 if len(unit) == 1 else 7)))
    return "".join(parts)[:length]


def random_indel_record(rng: np.random.Generator, sequence: str) -> tuple[int, str, str]:
    """A deletion or insertion (random bases, or a copy of the bases at the site) written with 0-3 extra
    reference bases on each side, as some callers write them."""
    pos = int(rng.integers(5, len(sequence) - 20))
    size, left, right = (int(x) for x in rng.integers([1, 0, 0], [5, 4, 4]))
    before, after = sequence[pos - 1 - left : pos], sequence[pos : pos + right]  # before ends with the anchor
    if rng.random() < 0.5:
        deleted = sequence[pos : pos + size]
        return pos - left, before + deleted + sequence[pos + size : pos + size + right], before + sequence[
            pos + size : pos + size + right
        ]  # fmt: skip
    inserted = sequence[pos : pos + size] if rng.random() < 0.7 else "".join(rng.choice(list("ACGT"), size))
    return pos - left, before + after, before + inserted + after


@needs_bcftools
def test_random_indels_in_repeat_rich_sequence_normalise_exactly_as_bcftools_norm(tmp_path):
    rng = np.random.default_rng(15)
    sequence = random_repeat_reference(rng, 3000)
    fasta = tmp_path / "repeats.fa"
    fasta.write_text(f">chr1\n{sequence}\n")
    pysam.faidx(str(fasta))
    records = sorted({random_indel_record(rng, sequence) for _ in range(400)})
    vcf = tmp_path / "p1.vcf"
    lines = ["##fileformat=VCFv4.2", f"##contig=<ID=chr1,length={len(sequence)}>"]
    lines += ["#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"] + [record(*r) for r in records]
    vcf.write_text("\n".join(lines) + "\n")
    panel = build_panel(
        pd.DataFrame({"patient_id": ["P1"], "panel_vcf": [str(vcf)]}), str(fasta), PanelSettings()
    )
    expected = bcftools_norm(str(vcf), str(fasta))
    assert set(loci(panel)) == expected
    assert len(panel) == len(expected)  # records that normalise to one allele are one locus
    assert (panel["variant_type"] != "snv").sum() > 300


def test_an_indel_whose_ref_disagrees_with_the_reference_is_an_error_naming_file_and_record(
    tmp_path, reference
):
    vcf = write_vcf(tmp_path / "p1.vcf", [record(9, "CCG", "C"), record(5, "A", "AT")])
    with pytest.raises(InputError) as raised:
        build_panel(pd.DataFrame({"patient_id": ["P1"], "panel_vcf": [vcf]}), reference, PanelSettings())
    message = str(raised.value)
    assert f"{vcf}: chr1:9 REF is CCG but the reference has CCC" in message
    assert "another genome build" in message
    assert "chr1:5" not in message  # the valid insertion is not blamed


def test_a_ref_running_past_the_contig_end_is_an_error(tmp_path, reference):
    with pytest.raises(InputError, match="chr1:87 REF is ATGG but the reference has AT"):
        panel_of(tmp_path, reference, [record(87, "ATGG", "A")])


# ----------------------------------------------------------------------------------------------------------
# Multi-allelic records, MNVs, complex and symbolic alleles
# ----------------------------------------------------------------------------------------------------------
def test_each_alt_of_a_multiallelic_record_is_its_own_locus(tmp_path, reference):
    panel = panel_of(tmp_path, reference, [record(5, "A", "T,G", "CCF=0.4")], header=INFO_HEADER)
    assert loci(panel) == [(5, "A", "G"), (5, "A", "T")]
    assert list(panel["context"]) == ["TAC", "TAC"]
    assert list(panel["weight"]) == [0.4, 0.4]  # a Number=1 field holds for every ALT


def test_duplicates_are_found_per_allele_after_normalisation(tmp_path, reference, caplog):
    records = [record(5, "A", "T"), record(5, "A", "G"), record(5, "A", "T"), record(12, "CC", "C"),
               record(7, "AC", "A")]  # fmt: skip
    panel = panel_of(tmp_path, reference, records)
    assert loci(panel) == [(5, "A", "G"), (5, "A", "T"), (7, "AC", "A")]
    assert caplog.text.count("duplicate record for this position and allele") == 2


def test_an_mnv_becomes_one_snv_per_differing_base(tmp_path, reference):
    panel = panel_of(tmp_path, reference, [record(35, "CGT", "TGA", "CCF=0.5")], header=INFO_HEADER)
    assert loci(panel) == [(35, "C", "T"), (37, "T", "A")]
    assert list(panel["context"]) == ["ACG", "GTA"]
    assert list(panel["weight"]) == [0.5, 0.5]


@pytest.mark.parametrize(
    ("alt", "why"),
    [
        ("CA", "complex indel (GT>A after normalisation)"),
        ("<DEL>", "symbolic or not a DNA sequence"),
        ("C[chr1:50[", "symbolic or not a DNA sequence"),
        ("CNT", "symbolic or not a DNA sequence"),
    ],
)
def test_complex_and_symbolic_alleles_are_skipped_with_a_warning_or_an_error(
    tmp_path, reference, caplog, alt, why
):
    records = [record(35, "CGT", alt), record(5, "A", "T")]
    assert loci(panel_of(tmp_path, reference, records)) == [(5, "A", "T")]
    assert why in caplog.text
    with pytest.raises(InputError) as raised:
        panel_of(tmp_path, reference, records, PanelSettings(on_invalid_record="error"))
    assert f"{tmp_path / 'p1.vcf'}: chr1:35 CGT>{alt}: " in str(raised.value) and why in str(raised.value)


def test_a_spanning_deletion_allele_is_left_to_its_own_record(tmp_path, reference, caplog):
    assert loci(panel_of(tmp_path, reference, [record(5, "A", "T,*")])) == [(5, "A", "T")]
    assert "skipped" not in caplog.text


# ----------------------------------------------------------------------------------------------------------
# Gene annotation and CHIP genes
# ----------------------------------------------------------------------------------------------------------
ANN_HEADER = ['##INFO=<ID=ANN,Number=.,Type=String,Description="Functional annotations: \'Allele | Annotation | '
              'Annotation_Impact | Gene_Name | Gene_ID | Feature_Type\'">']  # fmt: skip
CSQ_HEADER = ['##INFO=<ID=CSQ,Number=.,Type=String,Description="Consequence annotations from Ensembl VEP. '
              'Format: Allele|Consequence|IMPACT|SYMBOL|Gene|CANONICAL">']  # fmt: skip


def test_snpeff_ann_gives_each_alt_the_gene_of_its_own_annotation(tmp_path, reference):
    ann = (
        "ANN=T|missense_variant|MODERATE|DNMT3A|E1|transcript,G|missense_variant|MODERATE|ERBB2|E2|transcript"
    )
    panel = panel_of(tmp_path, reference, [record(5, "A", "T,G", ann)], header=ANN_HEADER)
    assert dict(zip(panel["alt"], panel["gene"], strict=True)) == {"T": "DNMT3A", "G": "ERBB2"}
    assert dict(zip(panel["alt"], panel["chip_suspect"], strict=True)) == {"T": True, "G": False}


def test_vep_csq_fields_are_read_from_the_header_and_matched_to_vep_alleles(tmp_path, reference):
    # VEP strips the shared first base: the deletion's allele is "-", the insertion's "TT".
    csq_del = "CSQ=-|frameshift|HIGH|TET2|E1|YES"
    csq_ins = "CSQ=TT|intron|MODIFIER|ESR1|E3|,TT|frameshift|HIGH|PIK3CA|E2|YES"
    records = [record(12, "CC", "C", csq_del), record(13, "C", "CTT", csq_ins)]
    panel = panel_of(tmp_path, reference, records, header=CSQ_HEADER)
    assert list(panel["gene"]) == ["TET2", "PIK3CA"]  # the canonical transcript first
    assert list(panel["chip_suspect"]) == [True, False]


@pytest.mark.parametrize(
    ("key", "value", "gene"),
    [("GENE", "TP53", "TP53"), ("GENEINFO", "ASXL1:171023|X:1", "ASXL1"),
     ("Gene.refGene", "PPM1D\\x3bBCAS3", "PPM1D"), ("Gene.refGene", ".", "")],
)  # fmt: skip
def test_gene_info_keys_give_the_first_gene_named(tmp_path, reference, key, value, gene):
    header = [f'##INFO=<ID={key},Number=.,Type=String,Description="gene">']
    panel = panel_of(tmp_path, reference, [record(5, "A", "T", f"{key}={value}")], header=header)
    assert panel["gene"].tolist() == [gene]
    assert panel["chip_suspect"].tolist() == [gene != ""]


def test_ann_takes_precedence_over_gene_keys_and_no_annotation_flags_nothing(tmp_path, reference):
    header = ANN_HEADER + ['##INFO=<ID=GENE,Number=1,Type=String,Description="gene">']
    records = [record(5, "A", "T", "ANN=T|missense|MODERATE|ERBB2|E|t;GENE=TET2"), record(6, "C", "T")]
    panel = panel_of(tmp_path, reference, records, header=header)
    assert panel["gene"].tolist() == ["ERBB2", ""]
    assert not panel["chip_suspect"].any()


def test_the_chip_gene_list_is_a_setting(tmp_path, reference):
    settings = PanelSettings.from_config({"chip_genes": ["erbb2"]})
    assert settings.chip_genes == ("ERBB2",)
    panel = panel_of(tmp_path, reference, [record(5, "A", "T", "GENE=ERBB2")], settings,
                     header=['##INFO=<ID=GENE,Number=1,Type=String,Description="gene">'])  # fmt: skip
    assert panel["chip_suspect"].tolist() == [True]
    expected = {"DNMT3A", "TET2", "ASXL1", "PPM1D", "TP53", "JAK2", "SF3B1", "SRSF2", "CBL", "GNB1"}
    assert expected <= set(DEFAULT_CHIP_GENES)


# ----------------------------------------------------------------------------------------------------------
# Weights
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("info", "purity", "weight", "source"),
    [
        ("CCF=0.33", None, 0.33, "ccf"),  # the VCF's value, not float32's 0.33000001311302185
        ("CCF=1.7", None, 1.0, "ccf"),  # a CCF above 1 is estimation noise
        ("CCF=0.8;MULT=2", None, 1.6, "ccf_x_multiplicity"),  # two mutant copies per cell
        ("CCF=1;MULT=3", None, 2.0, "ccf_x_multiplicity"),  # at most 2
        ("MULT=2", None, 2.0, "ccf_x_multiplicity"),  # CCF 1 when not given
        ("VAF=0.25", 0.5, 1.0, "vaf_purity"),  # clonal heterozygous in a diploid region: 0.25 at 50% purity
        ("VAF=0.3;TCN=4", 0.5, 1.8, "vaf_purity"),  # 0.3 (0.5 * 4 + 2 * 0.5) / 0.5
        ("AF=0.3;CN=4", 0.5, 1.8, "vaf_purity"),
        ("CCF=0.5;VAF=0.4", 0.5, 0.5, "ccf"),  # CCF first
        (".", 0.5, 1.0, "default"),
        ("CCF=0.001", None, 0.01, "ccf"),  # a weight of 0 would make the locus useless
    ],
)
def test_weights_from_info_keys(tmp_path, reference, info, purity, weight, source):
    header = INFO_HEADER + ([f"##purity={purity}"] if purity is not None else [])
    panel = panel_of(tmp_path, reference, [record(5, "A", "T", info)], header=header)
    assert panel["weight"].iloc[0] == pytest.approx(weight, rel=1e-12)
    assert panel["weight_source"].iloc[0] == source


def test_a_float32_ccf_keeps_the_value_the_vcf_wrote(tmp_path, reference):
    panel = panel_of(tmp_path, reference, [record(5, "A", "T", "CCF=0.33")], header=INFO_HEADER)
    assert panel["weight"].iloc[0] == 0.33
    assert repr(float(panel["weight"].iloc[0])) == "0.33"


def test_the_tumor_samples_format_ad_gives_the_vaf_per_alt(tmp_path, reference):
    header = ["##purity=0.8", "##tumor_sample=TUMOR_1",
              '##FORMAT=<ID=AD,Number=R,Type=Integer,Description="allelic depths">']  # fmt: skip
    # tumor: 60 REF, 40 T, 10 G; the normal column says nothing about the tumor.
    records = [record(5, "A", "T,G") + "\tAD\t100,0,0\t60,40,10"]
    panel = panel_of(tmp_path, reference, records, header=header, samples=["NORMAL_1", "TUMOR_1"])
    by_alt = dict(zip(panel["alt"], panel["weight"], strict=True))
    assert by_alt["T"] == pytest.approx(40 / 110 * (0.8 * 2 + 0.4) / 0.8)
    assert by_alt["G"] == pytest.approx(10 / 110 * (0.8 * 2 + 0.4) / 0.8)


def test_format_af_of_a_sample_named_tumor_and_the_purity_setting(tmp_path, reference):
    header = ['##FORMAT=<ID=AF,Number=A,Type=Float,Description="allele fraction">']
    records = [record(5, "A", "T") + "\tAF\t0.01\t0.35"]
    settings = PanelSettings(purity=0.7)
    panel = panel_of(tmp_path, reference, records, settings, header=header, samples=["NORMAL", "TUMOR"])
    assert panel["weight"].iloc[0] == pytest.approx(0.35 * (0.7 * 2 + 0.6) / 0.7)
    assert panel["weight_source"].iloc[0] == "vaf_purity"


def test_with_vafs_but_no_purity_weights_are_relative_to_the_panels_median_vaf(tmp_path, reference):
    records = [record(5, "A", "T", "VAF=0.2"), record(6, "C", "T", "VAF=0.4"), record(9, "C", "T", "VAF=0.1")]
    panel = panel_of(tmp_path, reference, records, header=INFO_HEADER)
    assert panel["weight"].tolist() == pytest.approx([1.0, 2.0, 0.5])
    assert set(panel["weight_source"]) == {"vaf_relative"}


def test_a_purity_header_that_is_not_a_fraction_is_an_error_naming_the_file(tmp_path, reference):
    with pytest.raises(InputError, match=r"p1.vcf: header line ##purity=60 is not a number in \(0, 1\]"):
        panel_of(tmp_path, reference, [record(5, "A", "T")], header=["##purity=60"])
