"""The cohort panel: variants from every patient's VCF, checked against the reference, with context.

Indels, multi-allelic records, genes and weights in detail: tests/test_panel_variants.py."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pysam
import pytest

from mrdtrack.inputs import InputError, PanelSettings, build_panel
from mrdtrack.inputs.panel import contig_map, unique_loci

REFERENCE = "ACGTACGTAC" * 10  # position 5 is A, context TAC... see tests


@pytest.fixture
def reference(tmp_path: Path) -> str:
    path = tmp_path / "ref.fa"
    path.write_text(f">chr1\n{REFERENCE}\n>chr2\n{REFERENCE}\n")
    pysam.faidx(str(path))
    return str(path)


def _vcf(tmp_path: Path, name: str, records: list[str], contigs=("1", "2")) -> str:
    header = ["##fileformat=VCFv4.2"] + [f"##contig=<ID={c},length=100>" for c in contigs]
    header += ['##INFO=<ID=CCF,Number=1,Type=Float,Description="cancer cell fraction">']
    header += ["#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"]
    path = tmp_path / name
    path.write_text("\n".join(header + records) + "\n")
    return str(path)


def _patients(**vcfs: str) -> pd.DataFrame:
    return pd.DataFrame({"patient_id": list(vcfs), "panel_vcf": list(vcfs.values())})


def test_contig_names_are_harmonized_when_unambiguous():
    assert contig_map(["1", "chrX", "MT", "7"], ["chr1", "X", "chrM"]) == {
        "1": "chr1",
        "chrX": "X",
        "MT": "chrM",
    }


def test_panel_rows_carry_reference_context_and_ccf_weight(tmp_path, reference):
    vcf = _vcf(tmp_path, "p1.vcf", ["1\t5\t.\tA\tT\t.\tPASS\tCCF=0.5", "2\t10\t.\tC\tG\t.\tPASS\t."])
    panel = build_panel(_patients(P1=vcf), reference, PanelSettings())
    assert panel.to_dict("records") == [
        {
            "patient_id": "P1",
            "chrom": "chr1",
            "pos": 5,
            "ref": "A",
            "alt": "T",
            "context": "TAC",
            "weight": 0.5,
            "variant_type": "snv",
            "gene": "",
            "chip_suspect": False,
            "weight_source": "ccf",
        },
        {
            "patient_id": "P1",
            "chrom": "chr2",
            "pos": 10,
            "ref": "C",
            "alt": "G",
            "context": "ACA",
            "weight": 1.0,
            "variant_type": "snv",
            "gene": "",
            "chip_suspect": False,
            "weight_source": "default",
        },
    ]


def test_ref_mismatch_names_every_locus_as_a_build_problem(tmp_path, reference):
    vcf = _vcf(tmp_path, "p1.vcf", ["1\t5\t.\tG\tT\t.\tPASS\t.", "1\t6\t.\tA\tT\t.\tPASS\t."])
    with pytest.raises(InputError) as raised:
        build_panel(_patients(P1=vcf), reference, PanelSettings())
    message = str(raised.value)
    assert "1:5 REF is G but the reference has A" in message
    assert "1:6 REF is A but the reference has C" in message
    assert "another genome build" in message


def test_duplicates_and_uncountable_records_are_skipped_with_a_warning(tmp_path, reference, caplog):
    records = ["1\t5\t.\tA\tT\t.\tPASS\t.", "1\t5\t.\tA\tT\t.\tPASS\t.", "1\t9\t.\tA\tAT\t.\tPASS\t.",
               "1\t13\t.\tG\tC,T\t.\tPASS\t.", "1\t15\t.\tA\t<DEL>\t.\tPASS\t.",
               "1\t21\t.\tACG\tT\t.\tPASS\t."]  # fmt: skip
    panel = build_panel(_patients(P1=_vcf(tmp_path, "p1.vcf", records)), reference, PanelSettings())
    # The insertion and both ALTs of the multi-allelic record are loci; duplicate, symbolic, complex are not.
    assert panel[["pos", "ref", "alt"]].values.tolist() == [[5, "A", "T"], [9, "A", "AT"], [13, "G", "C"],
                                                            [13, "G", "T"]]  # fmt: skip
    assert caplog.text.count("skipped") == 3
    with pytest.raises(InputError):
        build_panel(
            _patients(P1=_vcf(tmp_path, "p1.vcf", records)),
            reference,
            PanelSettings(on_invalid_record="error"),
        )


def test_a_locus_shared_by_two_patients_is_counted_once(tmp_path, reference):
    shared = "1\t5\t.\tA\tT\t.\tPASS\t."
    panel = build_panel(
        _patients(P1=_vcf(tmp_path, "p1.vcf", [shared]), P2=_vcf(tmp_path, "p2.vcf", [shared])), reference,
        PanelSettings(),
    )  # fmt: skip
    assert len(panel) == 2
    assert unique_loci(panel)["panel_patients"].tolist() == ["P1,P2"]
