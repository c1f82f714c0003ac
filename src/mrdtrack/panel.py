"""The cohort panel: every patient's tumor SNVs, checked against the reference, with trinucleotide context.

Contig names are harmonized between the VCFs and the reference (`chr1` vs `1`) when the mapping is unambiguous.
A panel REF allele that disagrees with the reference is an error naming the loci: it almost always means the VCF
was called on another genome build.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pysam

from mrdtrack.sheets import InputError, Problem

log = logging.getLogger(__name__)

PANEL_COLUMNS = ["patient_id", "chrom", "pos", "ref", "alt", "context", "weight"]
BASES = frozenset("ACGT")


@dataclass(frozen=True)
class PanelSettings:
    weight_info_field: str = "CCF"
    on_invalid_record: str = "skip"  # or "error"

    @classmethod
    def from_config(cls, section: Mapping[str, Any] | None) -> PanelSettings:
        return cls(**(section or {}))


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


def read_panel_vcf(
    path: str, patient_id: str, fasta: pysam.FastaFile, settings: PanelSettings
) -> tuple[pd.DataFrame, list[Problem]]:
    """The SNVs of one patient's panel VCF as panel rows, and the problems found."""
    problems: list[Problem] = []
    try:
        vcf = pysam.VariantFile(path)
    except (OSError, ValueError) as error:
        return pd.DataFrame(columns=PANEL_COLUMNS), [
            Problem(path, f"cannot read the panel VCF ({error})", "give a VCF 4.x file, plain or bgzipped")
        ]
    with vcf:
        contigs = contig_map(list(vcf.header.contigs) or [], fasta.references)
        has_weight = settings.weight_info_field in vcf.header.info
        rows, seen = [], set()
        for record in vcf:
            row, problem = _panel_row(record, path, patient_id, fasta, contigs, has_weight, settings)
            if problem is None and row is not None and (row["chrom"], row["pos"]) in seen:
                problem = _invalid(path, record, "duplicate record for this position", settings)
                row = None
            if problem is not None:
                problems.append(problem)
            if row is not None:
                seen.add((row["chrom"], row["pos"]))
                rows.append(row)
    return pd.DataFrame(rows, columns=PANEL_COLUMNS), problems


def _panel_row(
    record: pysam.VariantRecord,
    path: str,
    patient_id: str,
    fasta: pysam.FastaFile,
    contigs: dict[str, str],
    has_weight: bool,
    settings: PanelSettings,
) -> tuple[dict[str, Any] | None, Problem | None]:
    alts = record.alts or ()
    if len(alts) != 1 or len(record.ref) != 1 or len(alts[0]) != 1:
        return None, _invalid(
            path, record, "not a single-nucleotide variant (indel or multi-allelic)", settings
        )
    ref, alt = record.ref.upper(), alts[0].upper()
    if ref not in BASES or alt not in BASES or ref == alt:
        return None, _invalid(path, record, f"alleles {ref}>{alt} are not a valid SNV", settings)
    chrom = contigs.get(record.chrom) or contig_map([record.chrom], fasta.references).get(record.chrom)
    if chrom is None:
        return None, Problem(
            path,
            f"contig '{record.chrom}' (record {record.chrom}:{record.pos}) is not in the reference",
            "use the reference the tumor was called against",
        )
    context = trinucleotide_context(fasta, chrom, record.pos)
    if context[1] != ref:
        return None, Problem(
            path,
            f"{record.chrom}:{record.pos} REF is {ref} but the reference has {context[1]}",
            "the panel was probably called on another genome build; use the matching reference",
        )
    weight = _weight(record, settings.weight_info_field) if has_weight else 1.0
    row = {"patient_id": patient_id, "chrom": chrom, "pos": record.pos, "ref": ref, "alt": alt}
    return row | {"context": context, "weight": weight}, None


def _weight(record: pysam.VariantRecord, field: str) -> float:
    value = record.info.get(field)
    if isinstance(value, tuple):
        value = value[0] if value else None
    if value is None:
        return 1.0
    # A cancer-cell fraction above 1 is an estimation artefact; a weight of 0 would make the locus useless.
    return float(min(max(float(value), 0.01), 1.0))


def _invalid(path: str, record: pysam.VariantRecord, why: str, settings: PanelSettings) -> Problem:
    severity = "error" if settings.on_invalid_record == "error" else "warning"
    fix = "keep one SNV per line" if severity == "error" else "skipped (panel.on_invalid_record: skip)"
    return Problem(
        path,
        f"{record.chrom}:{record.pos} {record.ref}>{','.join(record.alts or ())}: {why}",
        fix,
        severity=severity,
    )


def build_panel(patients: pd.DataFrame, reference: str, settings: PanelSettings) -> pd.DataFrame:
    """All patients' panels as one table; raise InputError listing every REF mismatch or unreadable VCF."""
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
    panel = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=PANEL_COLUMNS)
    return sort_loci(panel, contig_order)


def sort_loci(frame: pd.DataFrame, order: list[str] | None = None) -> pd.DataFrame:
    """Sort by contig (in `order`, default by name), position and patient, for stable output."""
    contigs = order or sorted(frame["chrom"].unique())
    rank = {name: i for i, name in enumerate(contigs)}
    keys = frame.assign(_rank=frame["chrom"].map(rank))
    sort_by = ["_rank", "pos"] + [c for c in ("patient_id", "alt") if c in frame.columns]
    return keys.sort_values(sort_by, kind="stable").drop(columns="_rank").reset_index(drop=True)


def unique_loci(panel: pd.DataFrame) -> pd.DataFrame:
    """One row per (chrom, pos, ref, alt), with the comma-separated patients whose panel holds it."""
    grouped = panel.groupby(["chrom", "pos", "ref", "alt"], sort=False)
    loci = grouped.agg(
        panel_patients=("patient_id", lambda s: ",".join(sorted(set(s)))), context=("context", "first")
    )
    return loci.reset_index()
