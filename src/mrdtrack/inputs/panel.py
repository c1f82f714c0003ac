"""The cohort panel: every patient's tumor variants, checked against the reference, normalised, annotated.

Contig names are harmonized between the VCFs and the reference (`chr1` vs `1`) when the mapping is unambiguous.
A panel REF allele that disagrees with the reference is an error naming the file and record: it almost always
means the VCF was called on another genome build.

Each ALT of a record is its own locus (multi-allelic records are split, as `bcftools norm -m-any` does). Indels
are left-aligned and trimmed to their parsimonious form against the reference, as `bcftools norm -f` does, and
written VCF-style with the anchor base (`pos=100 ref=CAT alt=C`). Equal-length multi-base records (MNVs) become
one SNV per differing base; complex records (REF and ALT differ in length and in sequence) cannot be counted and
are skipped with a warning. The weight of a variant comes from its cancer-cell fraction and multiplicity, or
from its VAF with the tumor's purity and copy number (config/README.md, "Variant weights"); its gene from the
VCF's annotation (SnpEff ANN, VEP CSQ, or GENE / GENEINFO / Gene.refGene), which flags loci in genes often
mutated in clonal hematopoiesis (`chip_suspect`).
"""

from __future__ import annotations

import logging
import re
import statistics
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pysam

from mrdtrack.inputs.problems import InputError, Problem
from mrdtrack.settings import StepSettings
from mrdtrack.tables import columns_of

log = logging.getLogger(__name__)

PANEL_COLUMNS = columns_of("panel_loci")  # mrdtrack.tables.CONTRACTS
BASES = frozenset("ACGT")

# Genes most often mutated in clonal hematopoiesis (config/README.md, `panel.chip_genes`, says where they come
# from). A plasma ALT at such a locus may come from the patient's blood cells rather than the tumor.
DEFAULT_CHIP_GENES = (
    "DNMT3A", "TET2", "ASXL1", "PPM1D", "TP53", "JAK2", "SF3B1", "SRSF2", "U2AF1", "ZRSR2", "CBL", "GNB1",
    "GNAS", "IDH1", "IDH2", "KRAS", "NRAS", "BCOR", "BCORL1", "STAG2", "RAD21", "CHEK2", "ATM",
)  # fmt: skip

# The weight w of a variant enters the call as the tumor's share (1 - e) f w / 2 of the locus's molecules; a
# clonal heterozygous SNV has w = 1, one on two of two copies w = 2. Below 0.01 a locus would carry no signal.
WEIGHT_BOUNDS = (0.01, 2.0)
MULTIPLICITY_KEY = "MULT"
COPY_NUMBER_KEYS = ("TCN", "CN")
INFO_VAF_KEYS = ("VAF", "AF")
FORMAT_VAF_KEYS = ("AF", "VAF")
GENE_INFO_KEYS = ("GENE", "GENEINFO", "Gene.refGene")
MAX_REPEAT_COPIES = 50  # repeat tracts are measured up to this many copies of the unit


@dataclass(frozen=True)
class PanelSettings(StepSettings):
    """Settings of the `panel:` config section; config/README.md documents each key.

    Parameters
    ----------
    weight_info_field : str
        INFO field with the variant's cancer-cell fraction.
    on_invalid_record : str
        `skip` (with a warning) or `error` for records that cannot be counted.
    purity : float or None
        Tumor purity for VCFs whose header gives none (`##purity=`).
    chip_genes : tuple of str
        Genes whose loci are flagged chip_suspect (upper case).
    """

    SECTION: ClassVar[str] = "panel"

    weight_info_field: str = "CCF"
    on_invalid_record: str = "skip"  # or "error"
    purity: float | None = None  # tumor purity for VCFs whose header gives none (`##purity=`)
    chip_genes: tuple[str, ...] = DEFAULT_CHIP_GENES

    @classmethod
    def from_config(cls, section: Mapping[str, Any] | None) -> PanelSettings:
        """Settings from the `panel:` section; gene names compare in upper case, as annotations write them."""
        values = dict(section or {}) if isinstance(section, Mapping) else section
        if isinstance(values, dict) and isinstance(values.get("chip_genes"), list | tuple):
            values["chip_genes"] = [str(gene).upper() for gene in values["chip_genes"]]
        return super().from_config(values)


def contig_map(names: Iterable[str], targets: Iterable[str]) -> dict[str, str]:
    """Map each name to a target contig: itself, or with the `chr` prefix added or removed.

    Names with no target, or with two possible targets, are left out of the map.
    """
    target_set = set(targets)
    mapping = {}
    for name in names:
        candidates = {c for c in _spellings(name) if c in target_set}
        if name in target_set:
            mapping[name] = name
        elif len(candidates) == 1:
            mapping[name] = candidates.pop()
    return mapping


def _spellings(name: str) -> set[str]:
    bare = name[3:] if name.lower().startswith("chr") else name
    spellings = {bare, f"chr{bare}"}
    if bare in ("M", "MT"):
        spellings |= {"M", "MT", "chrM", "chrMT"}
    return spellings


def trinucleotide_context(fasta: pysam.FastaFile, chrom: str, pos: int) -> str:
    """Reference bases at pos-1, pos, pos+1 (1-based pos), upper case, `N` beyond the contig ends."""
    length = fasta.get_reference_length(chrom)
    left = "N" if pos == 1 else ""
    right = "N" if pos == length else ""
    return left + fasta.fetch(chrom, max(pos - 2, 0), min(pos + 1, length)).upper() + right


# ----------------------------------------------------------------------------------------------------------
# Allele normalisation (left-aligned and parsimonious, as bcftools norm -f; Tan et al., Bioinformatics 2015)
# ----------------------------------------------------------------------------------------------------------
def normalize_allele(
    fasta: pysam.FastaFile, chrom: str, pos: int, ref: str, alt: str
) -> tuple[int, str, str]:
    """(pos, ref, alt) left-aligned through repeats and trimmed of common suffix and prefix bases.

    A shared last base is trimmed; an allele left empty takes the reference base before it (shifting the
    variant one base left), until neither changes. Then shared first bases are trimmed while both alleles keep
    at least one base. At the contig start the variant stays where it is.
    """
    while ref[-1] == alt[-1] and (min(len(ref), len(alt)) > 1 or pos > 1):
        ref, alt = ref[:-1], alt[:-1]
        if not ref or not alt:
            pos -= 1
            base = fasta.fetch(chrom, pos - 1, pos).upper()
            ref, alt = base + ref, base + alt
    while len(ref) > 1 and len(alt) > 1 and ref[0] == alt[0]:
        ref, alt, pos = ref[1:], alt[1:], pos + 1
    return pos, ref, alt


def variant_type(ref: str, alt: str) -> str:
    """`snv`, `deletion`, `insertion` (anchor base first), `mnv` (equal lengths) or `complex`, of normalised
    alleles."""
    if len(ref) == len(alt):
        return "snv" if len(ref) == 1 else "mnv"
    if ref[0] == alt[0] and min(len(ref), len(alt)) == 1:
        return "deletion" if len(ref) > len(alt) else "insertion"
    return "complex"


def repeat_unit(sequence: str) -> str:
    """The shortest unit whose repeats make up `sequence` (`CACA` -> `CA`, `AAA` -> `A`, `CAT` -> `CAT`)."""
    for size in range(1, len(sequence)):
        if len(sequence) % size == 0 and sequence[:size] * (len(sequence) // size) == sequence:
            return sequence[:size]
    return sequence


def tandem_copies(fasta: pysam.FastaFile, chrom: str, pos: int, unit: str) -> int:
    """Copies of `unit` in the reference right after 1-based `pos`, back to back (at most MAX_REPEAT_COPIES)."""
    length = fasta.get_reference_length(chrom)
    window = fasta.fetch(chrom, pos, min(pos + len(unit) * MAX_REPEAT_COPIES, length)).upper()
    copies = 0
    while window[copies * len(unit) : (copies + 1) * len(unit)] == unit:
        copies += 1
    return copies


def indel_context(fasta: pysam.FastaFile, chrom: str, pos: int, ref: str, alt: str) -> str:
    """`{del|ins}{length}:{unit}x{copies}` for a normalised indel, e.g. `del1:Ax6`, `ins2:CAx3`.

    `unit` is the repeat unit of the deleted or inserted bases and `copies` the unit's copies in the reference
    right after the anchor base: a left-aligned indel sits at the left end of its repeat tract, so this is the
    tract's length (a deletion counts its own deleted copies, an insertion does not). Indel errors grow with it.
    """
    kind, bases = ("ins", alt[1:]) if len(alt) > len(ref) else ("del", ref[1:])
    unit = repeat_unit(bases)
    return f"{kind}{len(bases)}:{unit}x{tandem_copies(fasta, chrom, pos, unit)}"


# ----------------------------------------------------------------------------------------------------------
# Gene annotation
# ----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GeneReader:
    """Reads a record's gene for one ALT from whichever annotation the VCF header declares, in the order ANN
    (SnpEff), CSQ (VEP), then the GENE, GENEINFO and Gene.refGene INFO keys."""

    has_ann: bool
    csq_fields: tuple[str, ...]  # VEP's field names from the CSQ header's "Format: ..." description
    info_keys: tuple[str, ...]

    @classmethod
    def from_header(cls, header: pysam.VariantHeader) -> GeneReader:
        csq = header.info["CSQ"].description if "CSQ" in header.info else ""
        found = re.search(r"Format:\s*([^\"]+)", csq)
        csq_fields = tuple(f.strip() for f in found.group(1).split("|")) if found else ()
        keys = tuple(k for k in GENE_INFO_KEYS if k in header.info)
        return cls("ANN" in header.info, csq_fields, keys)

    def gene(self, record: pysam.VariantRecord, alt_index: int) -> str:
        return (
            (self._ann_gene(record, alt_index) if self.has_ann else "")
            or (self._csq_gene(record, alt_index) if self.csq_fields else "")
            or next(filter(None, (_first_gene(record.info.get(key)) for key in self.info_keys)), "")
        )

    def _ann_gene(self, record: pysam.VariantRecord, alt_index: int) -> str:
        # SnpEff: Allele | Annotation | Annotation_Impact | Gene_Name | ..., most severe entry first.
        alt = record.alts[alt_index]
        entries = [e.split("|") for e in _as_tuple(record.info.get("ANN"))]
        mine = [e for e in entries if e[0] == alt] or entries
        return next((e[3] for e in mine if len(e) > 3 and _is_gene(e[3])), "")

    def _csq_gene(self, record: pysam.VariantRecord, alt_index: int) -> str:
        if "SYMBOL" not in self.csq_fields:
            return ""
        entries = [
            dict(zip(self.csq_fields, e.split("|"), strict=False)) for e in _as_tuple(record.info.get("CSQ"))
        ]
        mine = [e for e in entries if _is_vep_allele(e, record, alt_index)] or entries
        # VEP lists transcripts unordered: prefer its picked one, then the canonical transcript.
        mine.sort(key=lambda e: (e.get("PICK") != "1", e.get("CANONICAL") != "YES"))
        return next((e["SYMBOL"] for e in mine if _is_gene(e.get("SYMBOL", ""))), "")


def _as_tuple(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    return tuple(value) if isinstance(value, tuple) else (value,)


def _is_gene(name: str) -> bool:
    return bool(name) and name not in (".", "-", "NONE")


def _first_gene(value: Any) -> str:
    """The first gene name in GENE (`TP53`), GENEINFO (`TP53:7157|WRAP53:55135`) or ANNOVAR's Gene.refGene
    (`TET2`, `GENE1;GENE2`, `GENE1\\x3bGENE2`)."""
    for text in _as_tuple(value):
        for part in re.split(r"\\x3b|[|,;&]", str(text)):
            name = part.split(":")[0].strip()
            if _is_gene(name):
                return name
    return ""


def _is_vep_allele(entry: dict[str, str], record: pysam.VariantRecord, alt_index: int) -> bool:
    if entry.get("ALLELE_NUM", "").isdigit():
        return int(entry["ALLELE_NUM"]) == alt_index + 1
    alleles = (record.ref, *record.alts)
    alt = record.alts[alt_index]
    # VEP drops the first base when every allele shares it (a deletion's ALT becomes "-").
    shared = len({a[0] for a in alleles}) == 1 and any(len(a) > 1 for a in alleles)
    return entry.get("Allele") == ((alt[1:] or "-") if shared else alt)


# ----------------------------------------------------------------------------------------------------------
# Variant weights
# ----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WeightInputs:
    """What a VCF record says about one ALT's clonality (None = not given)."""

    ccf: float | None = None
    multiplicity: float | None = None
    vaf: float | None = None
    copy_number: float | None = None


def variant_weight(inputs: WeightInputs, purity: float | None) -> tuple[float | None, str]:
    """(w, its source), w = CCF x multiplicity, else from the tumor VAF, purity p and copy number CN.

    The tumor's VAF is p CCF m / (p CN + 2 (1 - p)), so CCF m = VAF (p CN + 2 (1 - p)) / p, with CN 2 when not
    given. With a VAF but no purity, w is None: it is the VAF relative to the panel's median (`relative_weights`).
    """
    if inputs.ccf is not None or inputs.multiplicity is not None:
        # A CCF above 1 is estimation noise.
        ccf = 1.0 if inputs.ccf is None else min(max(inputs.ccf, WEIGHT_BOUNDS[0]), 1.0)
        multiplicity = 1.0 if inputs.multiplicity is None else max(inputs.multiplicity, 1.0)
        source = "ccf" if inputs.multiplicity is None else "ccf_x_multiplicity"
        return _clip_weight(ccf * multiplicity), source
    if inputs.vaf is not None and purity is not None:
        copy_number = 2.0 if inputs.copy_number is None else inputs.copy_number
        return _clip_weight(inputs.vaf * (purity * copy_number + 2 * (1 - purity)) / purity), "vaf_purity"
    if inputs.vaf is not None:
        return None, "vaf_relative"
    return 1.0, "default"


def relative_weights(vafs: Sequence[float]) -> list[float]:
    """Each VAF over the median VAF of the same panel: its typical variant is taken as clonal heterozygous."""
    median = statistics.median(vafs)
    return [_clip_weight(v / median) if median > 0 else 1.0 for v in vafs]


def _clip_weight(value: float) -> float:
    return float(min(max(value, WEIGHT_BOUNDS[0]), WEIGHT_BOUNDS[1]))


def vcf_float(value: Any) -> float:
    """A VCF Float as the VCF wrote it: htslib stores float32, which pysam widens (0.33 -> 0.33000001311302185)."""
    return float(str(np.float32(value))) if isinstance(value, float) else float(value)


@dataclass(frozen=True)
class WeightReader:
    """Reads WeightInputs for one ALT from INFO keys and the tumor sample's FORMAT fields."""

    header: pysam.VariantHeader
    ccf_key: str
    tumor_sample: str | None

    def inputs(self, record: pysam.VariantRecord, alt_index: int) -> WeightInputs:
        return WeightInputs(
            ccf=self._info(record, self.ccf_key, alt_index),
            multiplicity=self._info(record, MULTIPLICITY_KEY, alt_index),
            vaf=_first_given(
                self._format_vaf(record, alt_index), self._first_info(record, INFO_VAF_KEYS, alt_index)
            ),
            copy_number=self._first_info(record, COPY_NUMBER_KEYS, alt_index),
        )

    def _first_info(self, record: pysam.VariantRecord, keys: Sequence[str], alt_index: int) -> float | None:
        return _first_given(*(self._info(record, k, alt_index) for k in keys))

    def _info(self, record: pysam.VariantRecord, key: str, alt_index: int) -> float | None:
        if key not in self.header.info or key not in record.info:
            return None
        return _per_allele(record.info[key], self.header.info[key].number, alt_index)

    def _format_vaf(self, record: pysam.VariantRecord, alt_index: int) -> float | None:
        if self.tumor_sample is None:
            return None
        sample = record.samples[self.tumor_sample]
        for key in FORMAT_VAF_KEYS:
            if key in self.header.formats:
                vaf = _per_allele(sample.get(key), self.header.formats[key].number, alt_index)
                if vaf is not None:
                    return vaf
        if "AD" in self.header.formats:
            depths = [d for d in _as_tuple(sample.get("AD")) if d is not None]
            if len(depths) > alt_index + 1 and sum(depths) > 0:
                return depths[alt_index + 1] / sum(depths)
        return None


def _first_given(*values: float | None) -> float | None:
    return next((v for v in values if v is not None), None)


def _per_allele(value: Any, number: Any, alt_index: int) -> float | None:
    """The value for ALT `alt_index` of a field with VCF Number `number` (A: one per ALT, R: REF first)."""
    values = _as_tuple(value)
    index = alt_index + 1 if number == "R" else alt_index if number == "A" or len(values) > 1 else 0
    chosen = values[index] if index < len(values) else None
    return None if chosen is None else vcf_float(chosen)


def tumor_sample(header: pysam.VariantHeader) -> str | None:
    """The tumor's sample column: the header's `##tumor_sample=`, a sample named TUMOR, or the only sample."""
    samples = list(header.samples)
    named = _header_value(header, "tumor_sample")
    if named in samples:
        return named
    tumor = [s for s in samples if s.upper() == "TUMOR"]
    if len(tumor) == 1:
        return tumor[0]
    return samples[0] if len(samples) == 1 else None


def _header_value(header: pysam.VariantHeader, key: str) -> str | None:
    return next((r.value for r in header.records if r.key == key and r.value is not None), None)


# ----------------------------------------------------------------------------------------------------------
# Reading one VCF
# ----------------------------------------------------------------------------------------------------------
@dataclass
class _VcfReader:
    """One patient's VCF: what each record becomes (panel rows) and what is wrong with it (problems)."""

    path: str
    patient_id: str
    fasta: pysam.FastaFile
    settings: PanelSettings
    contigs: dict[str, str]
    genes: GeneReader
    weights: WeightReader
    purity: float | None
    problems: list[Problem] = field(default_factory=list)

    def rows(self, record: pysam.VariantRecord) -> Iterator[dict[str, Any]]:
        chrom = self._reference_contig(record.chrom)
        if chrom is None:
            self.problems.append(Problem(
                self.path,
                f"contig '{record.chrom}' (record {record.chrom}:{record.pos}) is not in the reference",
                "use the reference the tumor was called against",
            ))  # fmt: skip
            return
        ref = record.ref.upper()
        if not set(ref) <= BASES:
            self.invalid(record, f"REF {ref} is not a DNA sequence of A, C, G, T")
            return
        if not self._ref_matches(record, chrom, ref):
            return
        if not record.alts:
            self.invalid(record, "no ALT allele")
        for alt_index, alt in enumerate(record.alts or ()):
            yield from self._allele_rows(record, chrom, ref, alt_index, alt.upper())

    def _reference_contig(self, name: str) -> str | None:
        # A contig missing from the VCF header may still name a reference contig.
        return self.contigs.get(name) or contig_map([name], self.fasta.references).get(name)

    def _ref_matches(self, record: pysam.VariantRecord, chrom: str, ref: str) -> bool:
        start, length = record.pos - 1, self.fasta.get_reference_length(chrom)
        # A position past the contig's end cannot be fetched; a REF that runs past it is compared below.
        if start >= length:
            self.problems.append(Problem(
                self.path,
                f"{record.chrom}:{record.pos} is beyond the end of contig {chrom} ({length:,} bp in the reference)",
                "the panel was probably called on another genome build; use the matching reference",
            ))  # fmt: skip
            return False
        actual = self.fasta.fetch(chrom, start, min(start + len(ref), length))
        if actual.upper() == ref:
            return True
        self.problems.append(Problem(
            self.path,
            f"{record.chrom}:{record.pos} REF is {ref} but the reference has {actual.upper()}",
            "the panel was probably called on another genome build; use the matching reference",
        ))  # fmt: skip
        return False

    def _allele_rows(
        self, record: pysam.VariantRecord, chrom: str, ref: str, alt_index: int, alt: str
    ) -> Iterator[dict[str, Any]]:
        if alt == "*":
            return  # a deletion spanning this position, reported at its own record
        if not set(alt) <= BASES:
            self.invalid(
                record, f"ALT {alt} is symbolic or not a DNA sequence (only sequence alleles are counted)"
            )
            return
        if alt == ref:
            self.invalid(record, f"ALT {alt} equals REF")
            return
        pos, nref, nalt = normalize_allele(self.fasta, chrom, record.pos, ref, alt)
        kind = variant_type(nref, nalt)
        if kind == "complex":
            self.invalid(
                record, f"ALT {alt} is a complex indel ({nref}>{nalt} after normalisation): not counted"
            )
            return
        annotation = self._annotation(record, alt_index)
        if kind == "mnv":
            # One SNV per differing base: a fragment showing several of them is still one piece of evidence.
            for offset, (r, a) in enumerate(zip(nref, nalt, strict=True)):
                if r != a:
                    yield self._row(chrom, pos + offset, r, a, "snv", annotation)
        else:
            yield self._row(chrom, pos, nref, nalt, kind, annotation)

    def _annotation(self, record: pysam.VariantRecord, alt_index: int) -> dict[str, Any]:
        gene = self.genes.gene(record, alt_index)
        inputs = self.weights.inputs(record, alt_index)
        weight, source = variant_weight(inputs, self.purity)
        return {
            "weight": weight, "weight_source": source, "_vaf": inputs.vaf, "gene": gene,
            "chip_suspect": gene.upper() in self.settings.chip_genes,
        }  # fmt: skip

    def _row(
        self, chrom: str, pos: int, ref: str, alt: str, kind: str, annotation: dict[str, Any]
    ) -> dict[str, Any]:
        if kind == "snv":
            context = trinucleotide_context(self.fasta, chrom, pos)
        else:
            context = indel_context(self.fasta, chrom, pos, ref, alt)
        locus = {"patient_id": self.patient_id, "chrom": chrom, "pos": pos, "ref": ref, "alt": alt}
        return locus | {"context": context, "variant_type": kind} | annotation

    def invalid(self, record: pysam.VariantRecord, why: str) -> None:
        self.problems.append(_invalid(self.path, record, why, self.settings))


def read_panel_vcf(
    path: str, patient_id: str, fasta: pysam.FastaFile, settings: PanelSettings
) -> tuple[pd.DataFrame, list[Problem]]:
    """The variants of one patient's panel VCF as panel rows (one per ALT), and the problems found."""
    try:
        vcf = pysam.VariantFile(path)
    except NotImplementedError:  # htslib cannot seek in gzip that is not bgzip
        return pd.DataFrame(columns=PANEL_COLUMNS), [
            Problem(path, "the panel VCF is compressed with plain gzip, which htslib cannot read (it needs bgzip)",
                    f"recompress it: gunzip {path} && bgzip {path.removesuffix('.gz')}; or give it uncompressed")
        ]  # fmt: skip
    except (OSError, ValueError) as error:
        return pd.DataFrame(columns=PANEL_COLUMNS), [
            Problem(path, f"cannot read the panel VCF ({error})", "give a VCF 4.x file, plain or bgzipped")
        ]
    with vcf:
        reader, problems = _reader(path, patient_id, fasta, settings, vcf.header)
        if reader is None:
            return pd.DataFrame(columns=PANEL_COLUMNS), problems
        rows, seen = [], set()
        for record in vcf:
            for row in reader.rows(record):
                key = (row["chrom"], row["pos"], row["ref"], row["alt"])
                if key in seen:
                    reader.invalid(record, "duplicate record for this position and allele")
                    continue
                seen.add(key)
                rows.append(row)
    _resolve_relative_weights(rows)
    return pd.DataFrame(rows, columns=PANEL_COLUMNS), problems + reader.problems


def _reader(
    path: str, patient_id: str, fasta: pysam.FastaFile, settings: PanelSettings, header: pysam.VariantHeader
) -> tuple[_VcfReader | None, list[Problem]]:
    purity_text = _header_value(header, "purity")
    purity = settings.purity
    if purity_text is not None:
        try:
            purity = float(purity_text)
        except ValueError:
            purity = -1.0
        if not 0 < purity <= 1:
            fix = "give the tumor purity as a fraction, e.g. ##purity=0.6"
            return None, [Problem(path, f"header line ##purity={purity_text} is not a number in (0, 1]", fix)]
    sample = tumor_sample(header)
    if sample is None and len(header.samples) > 1 and any(k in header.formats for k in ("AF", "VAF", "AD")):
        log.warning("%s: no ##tumor_sample= header and no sample named TUMOR: FORMAT VAFs are not used", path)
    contigs = contig_map(list(header.contigs) or [], fasta.references)
    weights = WeightReader(header, settings.weight_info_field, sample)
    reader = _VcfReader(
        path, patient_id, fasta, settings, contigs, GeneReader.from_header(header), weights, purity
    )
    return reader, []


def _resolve_relative_weights(rows: list[dict[str, Any]]) -> None:
    """Weights of VAF-only rows: relative to the panel's median VAF (in place); drop the helper column."""
    relative = [row for row in rows if row["weight"] is None]
    if relative:
        for row, weight in zip(relative, relative_weights([row["_vaf"] for row in relative]), strict=True):
            row["weight"] = weight
    for row in rows:
        del row["_vaf"]


def _invalid(path: str, record: pysam.VariantRecord, why: str, settings: PanelSettings) -> Problem:
    severity = "error" if settings.on_invalid_record == "error" else "warning"
    fix = "fix or remove the record" if severity == "error" else "skipped (panel.on_invalid_record: skip)"
    return Problem(
        path,
        f"{record.chrom}:{record.pos} {record.ref}>{','.join(record.alts or ())}: {why}",
        fix,
        severity=severity,
    )


def build_panel(patients: pd.DataFrame, reference: str, settings: PanelSettings) -> pd.DataFrame:
    """All patients' panels as one table.

    Parameters
    ----------
    patients : pandas.DataFrame
        The patients sheet (`patient_id`, `panel_vcf`).
    reference : str
        The reference FASTA (indexed).
    settings : PanelSettings
        The `panel:` settings.

    Returns
    -------
    pandas.DataFrame
        One row per patient and locus (PANEL_COLUMNS), sorted by contig, position and patient.

    Raises
    ------
    InputError
        Listing every REF mismatch or unreadable VCF.
    """
    frames, problems = [], []
    with pysam.FastaFile(reference) as fasta:
        contig_order = list(fasta.references)
        for patient_id, vcf in zip(patients["patient_id"], patients["panel_vcf"], strict=True):
            if not vcf:
                continue
            frame, found = read_panel_vcf(vcf, patient_id, fasta, settings)
            frames.append(frame)
            problems += found
    for problem in problems:
        if problem.severity != "error":
            log.warning("%s", problem)
    if any(p.severity == "error" for p in problems):
        raise InputError(problems)
    frames = [f for f in frames if len(f)]
    panel = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=PANEL_COLUMNS)
    return sort_loci(panel, contig_order)


def sort_loci(frame: pd.DataFrame, order: list[str] | None = None) -> pd.DataFrame:
    """Sort by contig (in `order`, default by name), position and patient, for stable output."""
    contigs = order or sorted(frame["chrom"].unique())
    rank = {name: i for i, name in enumerate(contigs)}
    keys = frame.assign(_rank=frame["chrom"].map(rank))
    sort_by = ["_rank", "pos"] + [c for c in ("patient_id", "ref", "alt") if c in frame.columns]
    return keys.sort_values(sort_by, kind="stable").drop(columns="_rank").reset_index(drop=True)


def compact_panel(panel: pd.DataFrame) -> pd.DataFrame:
    """The panel with its text columns as categories: a genome-wide cohort panel's hundreds of thousands of rows
    share a few dozen contigs, alleles and contexts, and a few hundred patients, which then take a byte or two
    per row instead of a pointer to a string each."""
    text = [name for name in panel.columns if panel[name].dtype == object]
    return panel.astype(dict.fromkeys(text, "category"))


def unique_loci(panel: pd.DataFrame) -> pd.DataFrame:
    """One row per (chrom, pos, ref, alt), with the comma-separated patients whose panel holds it."""
    grouped = panel.groupby(["chrom", "pos", "ref", "alt"], sort=False, observed=True)
    loci = grouped.agg(context=("context", "first")).reset_index()
    patients = _joined_patients(grouped.ngroup().to_numpy(), panel["patient_id"].to_numpy(), len(loci))
    loci.insert(4, "panel_patients", patients)
    return loci


def _joined_patients(group: np.ndarray, patients: np.ndarray, n_groups: int) -> np.ndarray:
    """Each group's distinct patients, sorted and comma-joined. Without a Python call per group: a genome-wide
    cohort panel has hundreds of thousands of loci, nearly all of one patient."""
    kept = group >= 0  # rows with a missing key belong to no group
    group, patients = group[kept], patients[kept].astype(str)
    order = np.lexsort((patients, group))
    group, patients = group[order], patients[order]
    new = np.ones(len(group), dtype=bool)
    new[1:] = (group[1:] != group[:-1]) | (patients[1:] != patients[:-1])
    group, patients = group[new], patients[new]
    starts = np.flatnonzero(np.diff(group, prepend=-1))
    # one str object per patient, not one per locus (a genome-wide cohort's loci are nearly all one patient's)
    codes, names = pd.factorize(patients[starts])
    text = names.astype(object)[codes]
    ends = np.append(starts[1:], len(group))
    for i in np.flatnonzero(ends - starts > 1):
        text[i] = ",".join(patients[starts[i] : ends[i]].tolist())
    joined = np.full(n_groups, "", dtype=object)
    joined[group[starts]] = text
    return joined
