"""A wrong sheet is reported completely: every problem, with file, line, column and a fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import SAMPLE_HEADER
from mrdtrack.inputs import InputError, load_inputs


def problems_of(config: dict) -> list[str]:
    with pytest.raises(InputError) as raised:
        load_inputs(config)
    return [str(p) for p in raised.value.problems if p.severity == "error"]


def test_a_valid_project_loads_with_paths_relative_to_each_sheet(project):
    inputs = load_inputs(project)
    assert list(inputs.samples.index) == ["S1", "C1"]
    assert inputs.samples.loc["S1", "bam"].endswith("batch1/bams/p1.bam")
    assert inputs.patients.loc[0, "panel_vcf"].endswith("panels/P1.vcf")


def test_windows_line_endings_and_bom_are_accepted(project):
    sheet = Path(project["samples"][0])
    sheet.write_bytes(b"\xef\xbb\xbf" + sheet.read_text().replace("\n", "\r\n").encode())
    assert list(load_inputs(project).samples.index) == ["S1", "C1"]


def test_every_problem_is_listed_with_file_row_and_column(project):
    sheet = Path(project["samples"][0])
    sheet.write_text(
        SAMPLE_HEADER
        + "S1\tP1\tplasma\t2024-13-02\tbams/p1.bam\n"  # bad month
        + "S1\tP9\tplasma\t2024-01-02\tbams/p1.bam\n"  # duplicate id, unknown patient
        + "bad id;rm\tP1\tblood\t2024-01-02\tbams/missing.bam\n"  # unsafe id, bad type, missing file
        + "C2\tP1\tcontrol\t2024-01-02\tbams/c1.bam\n"  # control naming a patient
    )
    problems = problems_of(project)
    text = "\n".join(problems)
    assert f"{sheet}:2:collection_date: '2024-13-02' is not a real calendar date" in text
    assert f"{sheet}:3:sample_id: sample_id 'S1' already appears at {sheet}:2" in text
    assert f"{sheet}:3:patient_id: patient 'P9' is not in the patients sheet" in text
    assert f"{sheet}:4:sample_id: 'bad id;rm' is not allowed here" in text
    assert f"{sheet}:4:sample_type: 'blood' is not one of: plasma, normal, control" in text
    assert f"{sheet}:4:bam: file '{sheet.parent}/bams/missing.bam' does not exist" in text
    assert f"{sheet}:5:patient_id: control samples are healthy donors" in text
    assert all("Fix:" in p for p in problems)


def test_missing_index_and_missing_column(project):
    Path(project["samples"][0]).parent.joinpath("bams/p1.bam.bai").unlink()
    Path(project["patients"]).write_text("patient_id\nP1\n")
    text = "\n".join(problems_of(project))
    assert "has no index. Fix: run: samtools index" in text
    assert "patients.tsv:1:panel_vcf: required column 'panel_vcf' is missing" in text


def test_clinical_dates_and_covariates_are_checked(project):
    Path(project["clinical"]).write_text(
        "patient_id\tcohort\tenrollment_date\tpfs_event\tpfs_date\tos_event\tos_date\tage\n"
        "P1\tstop\t2024-01-01\t2\t2023-06-01\t0\t2025-01-01\tsixty\n"
    )
    project["survival"] = {"covariates": ["age"]}
    text = "\n".join(problems_of(project))
    assert "clinical.tsv:2:pfs_event: '2' is not one of: 0, 1" in text
    assert (
        "clinical.tsv:2:pfs_date: progression/follow-up date 2023-06-01 is before enrollment 2024-01-01"
        in text
    )
    assert "clinical.tsv:2:age: covariate value 'sixty' is not a number" in text


def test_empty_sheet_and_missing_reference(project):
    Path(project["samples"][0]).write_text(SAMPLE_HEADER)
    project["reference"] = "nowhere.fa"
    text = "\n".join(problems_of(project))
    assert "the sheet has a header but no rows" in text
    assert "nowhere.fa: reference FASTA not found" in text


def test_batches_may_differ_in_their_optional_columns(project, tmp_path):
    """A column one batch's sheet lacks is empty in its rows (it used to be NaN, a TypeError downstream)."""
    second = tmp_path / "batch2" / "samples.tsv"
    second.parent.mkdir()
    (second.parent / "bams").symlink_to(Path(project["samples"][0]).parent / "bams")
    Path(project["samples"][0]).write_text(SAMPLE_HEADER + "S1\tP1\tplasma\t2024-01-02\tbams/p1.bam\n")
    second.write_text(
        SAMPLE_HEADER.replace("\n", "\tbatch\tplasma_ml\n")
        + "C1\t\tcontrol\t2024-01-03\tbams/c1.bam\tb2\t4.1\n"
    )
    samples = load_inputs(project | {"samples": [project["samples"][0], str(second)]}).samples
    assert samples.loc["S1", "bam"].endswith("batch1/bams/p1.bam")
    assert samples["batch"].tolist() == [project["samples"][0], "b2"]
    assert samples["plasma_ml"].isna().tolist() == [True, False]


def test_a_row_with_more_cells_than_the_header_is_named_by_its_line(project):
    sheet = Path(project["samples"][0])
    sheet.write_text(SAMPLE_HEADER + "\nS1\tP1\tplasma\t2024-01-02\tbams/p1.bam\textra\n")
    assert problems_of(project) == [
        f"{sheet}:3: the row has 6 cells but the header names 5 columns. "
        "Fix: remove the extra tab(s), or name the extra column in the header"
    ]


def test_an_empty_patient_id_in_the_clinical_sheet_is_named_as_empty(project):
    Path(project["clinical"]).write_text(
        "patient_id\tcohort\tenrollment_date\tpfs_event\tpfs_date\tos_event\tos_date\n"
        "\tstop\t2024-01-01\t0\t2025-01-01\t0\t2025-01-01\n"
    )
    assert any(
        p.startswith(f"{project['clinical']}:2:patient_id: 'patient_id' is empty")
        for p in problems_of(project)
    )
