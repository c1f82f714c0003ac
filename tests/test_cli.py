"""`mrdtrack check` validates a run's inputs without running it, listing every problem."""

from __future__ import annotations

from pathlib import Path

import pysam

from conftest import SAMPLE_HEADER, write_config
from mrdtrack.cli import main


def test_check_passes_a_valid_project(project, tmp_path, capsys):
    assert main(["check", "--config", write_config(project, tmp_path / "config.yaml")]) == 0
    assert "ready to run" in capsys.readouterr().out


def test_check_lists_config_and_sheet_problems_and_fails(project, tmp_path, capsys):
    Path(project["samples"][0]).write_text(SAMPLE_HEADER + "S1\tP1\tplasma\t2024-01-02\tbams/gone.bam\n")
    config = write_config(project, tmp_path / "config.yaml")
    assert main(["check", "--config", config]) == 1
    assert "bams/gone.bam' does not exist" in capsys.readouterr().err
    project["counting"] = {"min_mapq": "high"}
    assert main(["check", "--config", write_config(project, tmp_path / "config.yaml")]) == 1
    assert "counting.min_mapq: 'high' is not of type 'integer'" in capsys.readouterr().err


def test_check_reports_alignment_headers_of_another_genome_build(project, tmp_path, capsys):
    vcf = Path(project["patients"]).parent / "panels/P1.vcf"
    vcf.write_text(vcf.read_text() + "chr1\t5\t.\tA\tT\t.\tPASS\t.\n")
    Path(project["reference"]).write_text(">chr1\n" + "A" * 2000 + "\n")
    Path(project["reference"] + ".fai").unlink()
    pysam.faidx(project["reference"])
    assert main(["check", "--config", write_config(project, tmp_path / "config.yaml")]) == 0
    assert "is 1000 bp in the alignment header but 2000 bp in the reference" in capsys.readouterr().err


def test_missing_config_file_is_a_clear_message(tmp_path, capsys):
    assert main(["check", "--config", str(tmp_path / "nope.yaml")]) == 1
    assert "config file not found" in capsys.readouterr().err


def _new_batch(project: dict, rows: str) -> str:
    folder = Path(project["samples"][0]).parent.parent / "batch2"
    folder.mkdir()
    (folder / "bams").mkdir()
    for suffix in (".bam", ".bam.bai"):
        source = Path(project["samples"][0]).parent / "bams" / f"p1{suffix}"
        (folder / "bams" / f"p2{suffix}").write_bytes(source.read_bytes())
    (folder / "samples.tsv").write_text(SAMPLE_HEADER + rows)
    return str(folder / "samples.tsv")


def test_add_batch_accepts_a_clean_batch(project, tmp_path, capsys):
    config = write_config(project, tmp_path / "config.yaml")
    sheet = _new_batch(project, "S2\tP1\tplasma\t2024-03-01\tbams/p2.bam\n")
    assert main(["add-batch", sheet, "--config", config]) == 0
    assert f"  - {sheet}" in capsys.readouterr().out


def test_add_batch_names_a_reused_sample_id_and_what_changed(project, tmp_path, capsys):
    config = write_config(project, tmp_path / "config.yaml")
    sheet = _new_batch(
        project, "S1\tP1\tplasma\t2024-03-01\tbams/p2.bam\nS3\tP7\tplasma\t2024-03-01\tbams/p2.bam\n"
    )
    assert main(["add-batch", sheet, "--config", config]) == 1
    err = capsys.readouterr().err
    assert f"{sheet}:2:sample_id: sample_id 'S1' is already in batch {project['samples'][0]} with a different " \
           "collection_date, bam" in err  # fmt: skip
    assert f"{sheet}:3:patient_id: patient 'P7' is not in the patients sheet" in err
    assert main(["add-batch", project["samples"][0], "--config", config]) == 1
    assert "already listed" in capsys.readouterr().err


def test_add_batch_reports_a_bad_date_once(project, tmp_path, capsys):
    config = write_config(project, tmp_path / "config.yaml")
    sheet = _new_batch(project, "S2\tP1\tplasma\t2024-02-30\tbams/p2.bam\n")
    assert main(["add-batch", sheet, "--config", config]) == 1
    err = capsys.readouterr().err
    assert err.count("'2024-02-30' is not a real calendar date") == 1
    assert "found 1 problem(s)" in err


def test_check_lists_problems_in_file_and_row_order(project, tmp_path, capsys):
    """Schema, date and patient checks run one after another; the list still reads top to bottom."""
    sheet = Path(project["samples"][0])
    sheet.write_text(
        SAMPLE_HEADER
        + "S1\tP9\tplasma\t2024-01-02\tbams/p1.bam\n"  # row 2: unknown patient (cross-sheet check)
        + "S2\tP1\tplasma\t2024-02-30\tbams/p1.bam\n"  # row 3: impossible date (date check)
        + "S3\tP1\tblood\t2024-01-02\tbams/p1.bam\n"  # row 4: bad sample_type (schema check)
    )
    Path(project["patients"]).write_text("patient_id\tpanel_vcf\nP1\tpanels/P1.vcf\nP1\tpanels/P1.vcf\n")
    assert main(["check", "--config", write_config(project, tmp_path / "config.yaml")]) == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("  - ")]
    located = [line.removeprefix("  - ").split(": ", 1)[0] for line in lines]
    assert located == [
        f"{sheet}:2:patient_id",
        f"{sheet}:3:collection_date",
        f"{sheet}:4:sample_type",
        f"{project['patients']}:3:patient_id",
    ]
