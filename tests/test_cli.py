"""`mrdtrack check` validates a run's inputs without running it, listing every problem."""

from __future__ import annotations

import re
import tomllib
import zipfile
from pathlib import Path

import pysam
import pytest
import yaml

from conftest import REPO, SAMPLE_HEADER, run_snakemake, write_config
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


def test_check_stops_on_alignment_headers_of_another_genome_build(project, tmp_path, capsys):
    vcf = Path(project["patients"]).parent / "panels/P1.vcf"
    vcf.write_text(vcf.read_text() + "chr1\t5\t.\tA\tT\t.\tPASS\t.\n")
    Path(project["reference"]).write_text(">chr1\n" + "A" * 2000 + "\n")
    Path(project["reference"] + ".fai").unlink()
    pysam.faidx(project["reference"])
    assert main(["check", "--config", write_config(project, tmp_path / "config.yaml")]) == 1
    err = capsys.readouterr().err
    sheet = project["samples"][0]
    assert f"{sheet}:2:bam: sample S1: contig 'chr1' is 1000 bp in the alignment header but 2000 bp in the " \
           "reference" in err  # fmt: skip
    assert (
        f"the reads were aligned to another genome build. Fix: re-align the sample to {project['reference']}"
        in err
    )


def test_missing_config_file_is_a_clear_message(tmp_path, capsys):
    assert main(["check", "--config", str(tmp_path / "nope.yaml")]) == 1
    assert "config file not found" in capsys.readouterr().err


def _new_batch(project: dict, rows: str) -> str:
    folder = Path(project["samples"][0]).parent.parent / "batch2"
    _empty_bam(folder / "bams" / "p2.bam")
    (folder / "samples.tsv").write_text(SAMPLE_HEADER + rows)
    return str(folder / "samples.tsv")


def _empty_bam(path: Path, contigs: dict[str, int] | None = None) -> None:
    """An indexed BAM without reads, its own file (a comment names it: a copy of another would be an error)."""
    header = {"HD": {"VN": "1.6", "SO": "coordinate"}, "CO": [path.name],
              "SQ": [{"SN": name, "LN": length} for name, length in (contigs or {"chr1": 1000}).items()]}  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    with pysam.AlignmentFile(str(path), "wb", header=header):
        pass
    pysam.index(str(path))


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
    for name in ("p2.bam", "p3.bam"):
        _empty_bam(sheet.parent / "bams" / name)
    sheet.write_text(
        SAMPLE_HEADER
        + "S1\tP9\tplasma\t2024-01-02\tbams/p1.bam\n"  # row 2: unknown patient (cross-sheet check)
        + "S2\tP1\tplasma\t2024-02-30\tbams/p2.bam\n"  # row 3: impossible date (date check)
        + "S3\tP1\tblood\t2024-01-02\tbams/p3.bam\n"  # row 4: bad sample_type (schema check)
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


def test_check_ends_by_saying_what_it_checked(bundled_copy, capsys):
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "mrdtrack check: inputs of config/config.yaml are ready to run."
    assert out.splitlines()[1:] == [
        "Checked:",
        "  - the config (every key and value)",
        "  - 2 sample sheets (28 samples: 19 plasma, 3 normal, 6 control)",
        "  - the patients sheet (6 patients)",
        "  - the clinical sheet (6 patients; cohorts stop, continue)",
        "  - 6 panel VCFs (150 loci on 3 contigs) against the reference",
        "  - 28 alignment headers against the reference and the panel",
    ]


def test_add_batch_runs_every_check_of_check_on_the_new_sheet_and_lists_all_problems(bundled_copy, capsys):
    """A repeated sample_id and a BAM without a panel contig (chr3), which `check` rejects, both at once."""
    without_chr3 = Path("batch3/bams/N1.bam")
    without_chr3.parent.mkdir(parents=True)
    with pysam.AlignmentFile("test_data/batch2/bams/P01_T3.bam") as bam:
        header = bam.header.to_dict()
        header["SQ"] = [sq for sq in header["SQ"] if sq["SN"] != "chr3"]
        reads = [r.to_dict() for r in bam.fetch("chr1")] + [r.to_dict() for r in bam.fetch("chr2")]
    with pysam.AlignmentFile(str(without_chr3), "wb", header=header) as out:
        for read in reads:
            if "chr3" not in (read["ref_name"], read["next_ref_name"]):
                out.write(pysam.AlignedSegment.from_dict(read, out.header))
    pysam.index(str(without_chr3))
    sheet = "batch3/samples.tsv"
    Path(sheet).write_text(SAMPLE_HEADER + "N1\tP01\tplasma\t2024-10-01\tbams/N1.bam\n" * 2)

    assert main(["add-batch", sheet]) == 1
    captured = capsys.readouterr()
    assert "found 3 problem(s)" in captured.err  # both rows lack chr3
    assert f"{sheet}:2:bam: sample N1: contig 'chr3' of the panel is not in the header of '{without_chr3}'" \
           in captured.err  # fmt: skip
    assert f"{sheet}:3:sample_id: sample_id 'N1' already appears at {sheet}:2" in captured.err
    assert "is ready" not in captured.out
    assert "  - 2 alignment headers against the reference and the panel" in captured.out


def test_snakemake_report_needs_pygments_which_the_plain_install_and_the_conda_env_declare():
    """`snakemake --report` imports pygments; `pip install -e .` without the test extra must bring it."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert any(re.match(r"pygments\b", requirement, re.IGNORECASE) for requirement in project["dependencies"])
    environment = yaml.safe_load((REPO / "environment.yml").read_text())["dependencies"]
    assert any(isinstance(d, str) and re.match(r"pygments\b", d, re.IGNORECASE) for d in environment)
    readme = (REPO / "README.md").read_text()
    assert "snakemake --report report.zip" in readme


@pytest.mark.slow
def test_snakemake_report_packs_a_finished_bundled_run(bundled_run, tmp_path):
    report = tmp_path / "report.zip"
    result = run_snakemake(bundled_run, "--report", str(report))
    assert result.returncode == 0, result.stderr[-3000:]
    with zipfile.ZipFile(report) as packed:
        assert any(name.endswith("report.html") for name in packed.namelist())
