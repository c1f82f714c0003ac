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
