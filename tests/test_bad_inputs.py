"""Bad inputs stop with a clear message naming the problem and where it is, never a traceback or partial output.

Sheet problems already covered by test_sheets.py / test_cli.py / test_panel.py are not repeated here; these tests
cover the alignment files (unreadable, truncated, corrupt BAM and CRAM, stale index, another build, no reads,
`1` vs `chr1`), the panel's `on_invalid_record: error`, and the same problems seen through the workflow itself.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pandas as pd
import pysam
import pytest

from conftest import REPO, SAMPLE_HEADER, run_snakemake, write_config
from mrdtrack.cli import main
from mrdtrack.counting import AlignmentInputError, CountSettings, count_sample
from mrdtrack.inputs import InputError, PanelSettings, build_panel, load_inputs

sys.path.insert(0, str(REPO / "benchmarks"))
from count_speed import build_bam  # noqa: E402

TRACEBACK = "Traceback (most recent call last)"
CLINICAL_HEADER = "patient_id\tcohort\tenrollment_date\tpfs_event\tpfs_date\tos_event\tos_date\tage\n"


@pytest.fixture
def reads(tmp_path: Path) -> dict:
    """A small indexed BAM with reads at 4 panel loci (chr1), its reference and panel table."""
    folder = tmp_path / "reads"
    folder.mkdir()
    files = build_bam(folder, n_loci=4, molecules=20, copies=2)
    return {k: str(v) for k, v in files.items()}


@pytest.fixture
def tiny(reads: dict, tmp_path: Path) -> dict:
    """A complete project on `reads`: patient P1 (panel VCF from the panel table), one plasma, one control."""
    root = tmp_path / "tiny"
    bams = root / "batch1" / "bams"
    bams.mkdir(parents=True)
    for name in ("S1", "C1"):
        shutil.copy(reads["bam"], bams / f"{name}.bam")
        shutil.copy(reads["bam"] + ".bai", bams / f"{name}.bam.bai")
    panel = pd.read_csv(reads["panel"], sep="\t")
    length = pysam.FastaFile(reads["reference"]).get_reference_length("chr1")
    vcf = [
        "##fileformat=VCFv4.2",
        f"##contig=<ID=chr1,length={length}>",
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO",
    ]
    vcf += [f"chr1\t{r.pos}\t.\t{r.ref}\t{r.alt}\t.\tPASS\t." for r in panel.itertuples()]
    (root / "panels").mkdir()
    (root / "panels" / "P1.vcf").write_text("\n".join(vcf) + "\n")
    shutil.copy(reads["reference"], root / "ref.fa")
    shutil.copy(reads["reference"] + ".fai", root / "ref.fa.fai")
    (root / "batch1" / "samples.tsv").write_text(
        SAMPLE_HEADER + "S1\tP1\tplasma\t2024-01-02\tbams/S1.bam\nC1\t\tcontrol\t2024-01-03\tbams/C1.bam\n"
    )
    (root / "patients.tsv").write_text("patient_id\tpanel_vcf\nP1\tpanels/P1.vcf\n")
    (root / "clinical.tsv").write_text(
        CLINICAL_HEADER + "P1\tstop\t2024-01-01\t0\t2025-01-01\t0\t2025-01-01\t61\n"
    )
    config = {"samples": ["batch1/samples.tsv"], "patients": "patients.tsv", "clinical": "clinical.tsv",
              "reference": "ref.fa", "survival": {"covariates": ["age"]}}  # fmt: skip
    (root / "config").mkdir()
    write_config(config, root / "config" / "config.yaml")
    return {"root": root, "config": config, "panel": panel}


def _count(path: str, reads: dict, panel: pd.DataFrame | None = None):
    panel = pd.read_csv(reads["panel"], sep="\t") if panel is None else panel
    return count_sample("S", path, reads["reference"], panel, CountSettings())


def _damaged(source: str, target: Path, how: str) -> str:
    data = Path(source).read_bytes()
    if how == "truncated":
        data = data[: len(data) // 2]
    elif how == "corrupt":
        middle = len(data) // 2
        data = data[:middle] + bytes(b ^ 0xFF for b in data[middle : middle + 64]) + data[middle + 64 :]
    else:  # not an alignment file at all
        data = b"this is a sample sheet, not a BAM\n" * 10
    target.write_bytes(data)
    index = source + (".bai" if source.endswith(".bam") else ".crai")
    shutil.copy(index, str(target) + (".bai" if source.endswith(".bam") else ".crai"))
    return str(target)


def _cram(reads: dict, folder: Path) -> str:
    cram = folder / "sample.cram"
    with (
        pysam.AlignmentFile(reads["bam"]) as bam,
        pysam.AlignmentFile(str(cram), "wc", template=bam, reference_filename=reads["reference"]) as out,
    ):
        for read in bam:
            out.write(read)
    pysam.index(str(cram))
    return str(cram)


# --- alignment files, through the counting API ------------------------------------------------------------------


@pytest.mark.parametrize("how", ["truncated", "corrupt", "garbage"])
@pytest.mark.parametrize("kind", ["bam", "cram"])
def test_unreadable_alignments_raise_alignment_input_error_naming_the_file(reads, tmp_path, how, kind):
    source = reads["bam"] if kind == "bam" else _cram(reads, tmp_path)
    damaged = _damaged(source, tmp_path / f"{how}.{kind}", how)
    with pytest.raises(AlignmentInputError) as raised:
        _count(damaged, reads)
    message = str(raised.value)
    assert damaged in message
    assert "truncated or corrupt" in message or "cannot read alignments" in message


def test_an_intact_cram_counts_like_its_bam(reads, tmp_path):
    assert _count(_cram(reads, tmp_path), reads).counts.equals(_count(reads["bam"], reads).counts)


def test_chr_prefix_is_harmonized_and_counts_are_equal(reads, tmp_path):
    """The BAM says `1`, the panel and reference say `chr1`: counts are the same as with `chr1` reads."""
    renamed = tmp_path / "renamed.bam"
    with pysam.AlignmentFile(reads["bam"]) as bam:
        header = bam.header.to_dict()
        header["SQ"] = [dict(sq, SN=sq["SN"].removeprefix("chr")) for sq in header["SQ"]]
        with pysam.AlignmentFile(str(renamed), "wb", header=header) as out:
            for read in bam:
                out.write(_rehome(read, out.header))
    pysam.index(str(renamed))
    original, harmonized = _count(reads["bam"], reads), _count(str(renamed), reads)
    assert harmonized.counts["alt_molecules"].sum() + harmonized.counts["ref_molecules"].sum() > 0
    pd.testing.assert_frame_equal(harmonized.counts, original.counts)


def _rehome(read: pysam.AlignedSegment, header: pysam.AlignmentHeader) -> pysam.AlignedSegment:
    data = read.to_dict()
    data["ref_name"] = data["ref_name"].removeprefix("chr")
    if data["next_ref_name"] not in ("=", "*"):
        data["next_ref_name"] = data["next_ref_name"].removeprefix("chr")
    return pysam.AlignedSegment.from_dict(data, header)


def test_another_genome_build_is_an_error_naming_the_contigs(reads, tmp_path):
    other = tmp_path / "other_build.bam"
    header = {"HD": {"VN": "1.6", "SO": "coordinate"}, "SQ": [{"SN": "NC_000001.11", "LN": 248956422}]}
    with pysam.AlignmentFile(str(other), "wb", header=header):
        pass
    pysam.index(str(other))
    with pytest.raises(AlignmentInputError) as raised:
        _count(str(other), reads)
    assert "has no contig matching chr1" in str(raised.value)
    assert "another genome build" in str(raised.value)


def test_no_reads_at_the_panel_gives_zero_molecules_not_an_error(reads, tmp_path):
    """Reads elsewhere on the contig (a failed capture) are counted as zero molecules; QC shows it."""
    panel = pd.read_csv(reads["panel"], sep="\t")
    far = panel.assign(pos=panel["pos"] + 2000)  # between the simulated loci: no read covers them
    reference = pysam.FastaFile(reads["reference"])
    far["ref"] = [reference.fetch("chr1", p - 1, p).upper() for p in far["pos"]]
    far["alt"] = ["T" if r != "T" else "A" for r in far["ref"]]
    result = _count(reads["bam"], reads, far)
    assert (result.counts[["ref_molecules", "alt_molecules"]].to_numpy() == 0).all()
    assert result.qc["molecules"] == 0


def test_stale_index_is_a_warning_and_a_wrong_index_fails_counting_loudly(tiny, reads, tmp_path):
    """Kept a warning: an older index is not proof of staleness (copies, syncs and checkouts reorder mtimes), and
    an index that really does not match its file makes htslib fail, so counting stops instead of miscounting."""
    root = tiny["root"]
    bam = root / "batch1/bams/S1.bam"
    os.utime(str(bam) + ".bai", (1_000_000_000, 1_000_000_000))
    inputs = load_inputs(_rooted(tiny))
    assert [str(w) for w in inputs.warnings] == [
        f"{root}/batch1/samples.tsv:2:bam: index '{bam}.bai' is older than '{bam}' and may be stale (a stale "
        "index makes counting fail with 'truncated or corrupt'). "
        f"Fix: re-run: samtools index {bam}"
    ]
    other = tmp_path / "other"
    other.mkdir()
    other_files = build_bam(other, n_loci=4, molecules=40, copies=3, seed=9)
    shutil.copy(str(other_files["bam"]) + ".bai", str(bam) + ".bai")  # the index of another file
    with pytest.raises(AlignmentInputError, match="truncated or corrupt"):
        _count(str(bam), reads)


def _rooted(tiny: dict) -> dict:
    root, config = tiny["root"], dict(tiny["config"])
    config["samples"] = [str(root / s) for s in config["samples"]]
    for key in ("patients", "clinical", "reference"):
        config[key] = str(root / config[key])
    return config


# --- panel records with on_invalid_record: error ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("record", "why"),
    [
        ("chr1\t{pos}\t.\t{ref}\t<DEL>\t.\tPASS\t.", "symbolic or not a DNA sequence"),
        ("chr1\t{pos}\t.\t{ref}N\t{ref}\t.\tPASS\t.", "is not a DNA sequence"),
        ("chr1\t{pos}\t.\t{ref}\t{alt}\t.\tPASS\t.", "duplicate record for this position"),
    ],
)
def test_invalid_panel_records_are_errors_naming_file_and_record(tiny, record, why):
    root, first = tiny["root"], tiny["panel"].iloc[0]
    vcf = root / "panels/P1.vcf"
    line = record.format(pos=first.pos, ref=first.ref, alt=first.alt)
    vcf.write_text(vcf.read_text() + line + "\n")
    patients = pd.DataFrame({"patient_id": ["P1"], "panel_vcf": [str(vcf)]})
    with pytest.raises(InputError) as raised:
        build_panel(patients, str(root / "ref.fa"), PanelSettings(on_invalid_record="error"))
    assert f"{vcf}: chr1:{first.pos} " in str(raised.value)
    assert why in str(raised.value)
    assert len(build_panel(patients, str(root / "ref.fa"), PanelSettings())) == len(tiny["panel"])


# --- the same problems through `mrdtrack check` and the workflow ------------------------------------------------


def test_check_names_a_corrupt_alignment_file(tiny, capsys):
    root = tiny["root"]
    bam = root / "batch1/bams/S1.bam"
    bam.write_bytes(b"not a bam\n" * 20)
    assert main(["check", "--config", write_config(_rooted(tiny), root / "abs.yaml")]) == 1
    sheet = root / "batch1/samples.tsv"
    assert f"{sheet}:2:bam: sample S1: cannot read alignments from '{bam}'" in capsys.readouterr().err


def test_check_names_the_row_of_a_bam_aligned_to_another_build(tiny, capsys):
    root = tiny["root"]
    bam = root / "batch1/bams/C1.bam"
    header = {"HD": {"VN": "1.6", "SO": "coordinate"}, "SQ": [{"SN": "NC_000001.11", "LN": 248956422}]}
    with pysam.AlignmentFile(str(bam), "wb", header=header):
        pass
    pysam.index(str(bam))
    assert main(["check", "--config", write_config(_rooted(tiny), root / "abs.yaml")]) == 1
    sheet = root / "batch1/samples.tsv"
    expected = f"{sheet}:3:bam: sample C1: contig 'chr1' of the panel is not in the header of '{bam}'"
    assert expected in capsys.readouterr().err


def test_workflow_lists_every_sheet_problem_before_running_anything(tiny):
    """Duplicate id, unknown patient, plasma without a panel, unsafe id, missing index, bad dates, text covariate,
    an empty batch: one message listing them all with file:line:column, no traceback, no output."""
    root = tiny["root"]
    (root / "batch1/bams/C1.bam.bai").unlink()
    (root / "patients.tsv").write_text("patient_id\tpanel_vcf\nP1\tpanels/P1.vcf\nP2\t\n")
    (root / "batch1/samples.tsv").write_text(
        SAMPLE_HEADER
        + "S1\tP1\tplasma\t2024-01-02\tbams/S1.bam\n"
        + "S1\tP1\tplasma\t2024-02-30\tbams/S1.bam\n"
        + "S2\tP9\tplasma\t2024-01-02\tbams/S1.bam\n"
        + "S3\tP2\tplasma\t2024-01-02\tbams/S1.bam\n"
        + "S 4;x\tP1\tplasma\t2024-01-02\tbams/S1.bam\n"
        + "C1\t\tcontrol\t02/01/2024\tbams/C1.bam\n"
    )
    (root / "batch2").mkdir()
    (root / "batch2/samples.tsv").write_text(SAMPLE_HEADER)
    (root / "clinical.tsv").write_text(
        CLINICAL_HEADER + "P1\tstop\t2024-01-01\t1\t2023-12-01\t0\t2025-01-01\t6O\n"
    )
    config = tiny["config"] | {"samples": ["batch1/samples.tsv", "batch2/samples.tsv"]}
    write_config(config, root / "config/config.yaml")
    result = run_snakemake(root, "--dry-run")
    assert result.returncode != 0
    err = result.stdout + result.stderr  # snakemake prints a WorkflowError on stdout
    sheet = "batch1/samples.tsv"
    for expected in [
        f"{sheet}:3:sample_id: sample_id 'S1' already appears at {sheet}:2",
        f"{sheet}:3:collection_date: '2024-02-30' is not a real calendar date",
        f"{sheet}:4:patient_id: patient 'P9' is not in the patients sheet",
        f"{sheet}:5:patient_id: plasma sample of patient 'P2', who has no panel_vcf",
        f"{sheet}:6:sample_id: 'S 4;x' is not allowed here",
        f"{sheet}:7:collection_date: '02/01/2024' is not allowed here (dates are written YYYY-MM-DD)",
        f"{sheet}:7:bam: 'batch1/bams/C1.bam' has no index",
        "batch2/samples.tsv: the sheet has a header but no rows",
        "clinical.tsv:2:pfs_date: progression/follow-up date 2023-12-01 is before enrollment 2024-01-01",
        "clinical.tsv:2:age: covariate value '6O' is not a number",
    ]:
        assert expected in err, expected
    assert TRACEBACK not in err
    assert not (root / "results").exists()


def test_workflow_accepts_bom_and_windows_line_endings(tiny):
    root = tiny["root"]
    for sheet in ("batch1/samples.tsv", "patients.tsv", "clinical.tsv"):
        path = root / sheet
        path.write_bytes(b"\xef\xbb\xbf" + path.read_text().replace("\n", "\r\n").encode())
    result = run_snakemake(root, "--dry-run", "results/counts/S1.tsv")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "count_molecules" in result.stdout + result.stderr


@pytest.mark.slow
def test_workflow_job_on_a_corrupt_bam_fails_with_the_message_and_leaves_no_counts(tiny):
    root = tiny["root"]
    bam = root / "batch1/bams/S1.bam"
    _damaged(str(root / "batch1/bams/C1.bam"), bam, "truncated")
    result = run_snakemake(root, "results/counts/S1.tsv", "results/counts/C1.tsv", "--keep-going")
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "mrdtrack: cannot read alignments from 'batch1/bams/S1.bam': no BGZF EOF marker" in output
    assert "count_molecules" in output and "sample=S1" in output
    assert TRACEBACK not in output
    assert not any((root / "results/counts").glob("S1.*")), "no partial output for the failed sample"
    assert (root / "results/counts/C1.tsv").is_file(), "the intact sample is still counted (--keep-going)"


@pytest.mark.slow
def test_workflow_panel_ref_mismatch_fails_the_panel_job_with_the_loci(tiny):
    root, first = tiny["root"], tiny["panel"].iloc[0]
    wrong = next(base for base in "ACGT" if base not in (first.ref, first.alt))
    vcf = root / "panels/P1.vcf"
    vcf.write_text(
        vcf.read_text().replace(f"\t{first.pos}\t.\t{first.ref}\t", f"\t{first.pos}\t.\t{wrong}\t")
    )
    result = run_snakemake(root, "results/panel/loci.tsv")
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert f"chr1:{first.pos} REF is {wrong} but the reference has {first.ref}" in output
    assert "another genome build" in output
    assert TRACEBACK not in output
    assert not (root / "results/panel/loci.tsv").exists()
