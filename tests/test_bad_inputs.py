"""Bad inputs stop with a clear message naming the problem and where it is, never a traceback or partial output.

Sheet problems already covered by test_sheets.py / test_cli.py / test_panel.py are not repeated here; these tests
cover the alignment files (unreadable, truncated, corrupt BAM and CRAM, stale index, another build, no reads,
`1` vs `chr1`), the panel's `on_invalid_record: error`, and the same problems seen through the workflow itself.
"""

from __future__ import annotations

import errno
import gzip
import json
import os
import shutil
import sys
from pathlib import Path

import pandas as pd
import pysam
import pytest

from conftest import REPO, SAMPLE_HEADER, run_snakemake, write_config
from mrdtrack.cli import main
from mrdtrack.counting import CountSettings, count_sample
from mrdtrack.inputs import (
    AlignmentInputError,
    InputError,
    PanelSettings,
    build_panel,
    load_inputs,
    load_table,
)

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
    for name in ("S1", "C1"):  # the same reads; a header comment makes them two files (a copy is an error)
        _relabelled(reads["bam"], bams / f"{name}.bam", name)
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


def _relabelled(source: str, target: Path, label: str) -> str:
    """`source`'s reads in a new indexed BAM whose header carries the comment `label`."""
    with pysam.AlignmentFile(source) as bam:
        header = bam.header.to_dict() | {"CO": [label]}
        reads = [read.to_dict() for read in bam.fetch(until_eof=True)]
    with pysam.AlignmentFile(str(target), "wb", header=header) as out:
        for read in reads:
            out.write(pysam.AlignedSegment.from_dict(read, out.header))
    pysam.index(str(target))
    return str(target)


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


# --- faults applied to the bundled data (test_data/, config/config.yaml) ----------------------------------------
# Each test starts from a copy of the bundled study (`bundled_copy`, the working directory) with one fault.


def _check(capsys: pytest.CaptureFixture) -> tuple[int, str]:
    """`mrdtrack check` on the working directory's config/config.yaml: exit code, stdout + stderr."""
    code = main(["check"])
    captured = capsys.readouterr()
    assert TRACEBACK not in captured.out + captured.err
    return code, captured.out + captured.err


def _replace(path: str | Path, old: str, new: str) -> None:
    text = Path(path).read_text()
    assert old in text, f"{old!r} not in {path}"
    Path(path).write_text(text.replace(old, new, 1))


def _rewrite_bam(path: str, header_change=None, read_change=None) -> None:
    """Rewrite an indexed BAM in place: its header (a dict) and each read (in place) changed, re-sorted."""
    with pysam.AlignmentFile(path) as bam:
        header = bam.header.to_dict()
        reads = [read.to_dict() for read in bam.fetch(until_eof=True)]
    if header_change:
        header_change(header)
    with pysam.AlignmentFile(path, "wb", header=header) as out:
        aligned = [pysam.AlignedSegment.from_dict(read, out.header) for read in reads]
        for read in aligned:
            if read_change:
                read_change(read)
        aligned.sort(key=lambda read: (read.reference_id < 0, read.reference_id, read.reference_start))
        for read in aligned:
            out.write(read)
    pysam.index(path)


def _shift(read: pysam.AlignedSegment, by: int = 37) -> None:
    if not read.is_unmapped:
        read.reference_start += by
    if read.next_reference_id >= 0:
        read.next_reference_start += by


# 1. Alignments are checked against the reference by the workflow itself ----------------------------------------


@pytest.mark.slow
def test_a_bam_whose_header_has_another_contig_length_stops_check_and_the_counting_job(bundled_copy, capsys):
    bam = "test_data/batch1/bams/P01_T1.bam"
    _rewrite_bam(bam, header_change=lambda header: header["SQ"][0].update(LN=125000))
    code, output = _check(capsys)
    assert code == 1
    assert "test_data/batch1/samples.tsv:2:bam: sample P01_T1: contig 'chr1' is 125000 bp in the alignment " \
           "header but 120000 bp in the reference" in output  # fmt: skip
    assert "Fix: re-align the sample to test_data/reference/genome.fa.gz" in output

    result = run_snakemake(bundled_copy, "results/counts/P01_T1.tsv")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "mrdtrack: sample P01_T1: the header of 'test_data/batch1/bams/P01_T1.bam' does not match the " \
           "reference" in output  # fmt: skip
    assert "re-align the sample to test_data/reference/genome.fa.gz" in output
    assert TRACEBACK not in output
    assert not Path("results/counts/P01_T1.tsv").exists()


@pytest.mark.slow
def test_reads_shifted_under_an_unchanged_header_stop_the_counting_job_and_qc_records_the_mismatch_rate(
    bundled_copy,
):
    _rewrite_bam("test_data/batch1/bams/P01_T2.bam", read_change=_shift)
    result = run_snakemake(
        bundled_copy, "--keep-going", "results/counts/P01_T1.tsv", "results/counts/P01_T2.tsv"
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "mrdtrack: sample P01_T2: " in output
    assert "differ from the reference (more than 2%): aligned to another reference?" in output
    assert "Fix: re-align it to the configured `reference`, or remove it from its sample sheet" in output
    assert TRACEBACK not in output
    assert not Path("results/counts/P01_T2.tsv").exists(), "the shifted sample never enters the background"
    qc = json.loads(Path("results/counts/P01_T1.qc.json").read_text())
    assert 0 < qc["reference_mismatch_rate"] < 0.005 and qc["reference_bases_compared"] > 10_000


@pytest.mark.parametrize("how", ["same path", "a copy"])
def test_one_alignment_file_under_two_sample_ids_is_an_error_unless_marked_a_technical_replicate(
    bundled_copy, capsys, how
):
    sheet = "test_data/batch2/samples.tsv"
    if how == "same path":
        _replace(sheet, "\tbams/P01_T3.bam\t", "\t../batch1/bams/P01_T2.bam\t")
        found = "'test_data/batch1/bams/P01_T2.bam' is also the file of sample P01_T2"
    else:
        for suffix in ("", ".bai"):
            shutil.copy(
                f"test_data/batch1/bams/P01_T2.bam{suffix}", f"test_data/batch2/bams/P01_T3.bam{suffix}"
            )
        found = "'test_data/batch2/bams/P01_T3.bam' is a copy of 'test_data/batch1/bams/P01_T2.bam', the file of " \
                "sample P01_T2"  # fmt: skip
    code, output = _check(capsys)
    assert code == 1
    assert f"{sheet}:2:bam: {found} (test_data/batch1/samples.tsv:3)" in output
    assert "write P01_T2 in its `replicate_of` column" in output

    _replace(sheet, "cfdna_ng\n", "cfdna_ng\treplicate_of\n")
    _replace(sheet, "\t7.3\n", "\t7.3\tP01_T2\n")
    code, output = _check(capsys)
    assert code == 0, output


def test_a_cram_encoded_against_another_reference_says_so_instead_of_corrupt(bundled_copy, capsys, tmp_path):
    reference, cram = "test_data/reference/genome.fa.gz", "test_data/batch2/bams/P04_T3.cram"
    other = tmp_path / "other.fa"
    with pysam.FastaFile(reference) as fasta:
        other.write_text("".join(f">{name}\n{_every_1000th_changed(fasta.fetch(name))}\n"
                                 for name in fasta.references))  # fmt: skip
    pysam.faidx(str(other))
    with pysam.AlignmentFile(cram, reference_filename=reference) as original:
        header = original.header.to_dict()
        reads = [read.to_dict() for read in original]
    header["SQ"] = [{"SN": sq["SN"], "LN": sq["LN"]} for sq in header["SQ"]]  # htslib adds the other's M5
    with pysam.AlignmentFile(cram, "wc", header=header, reference_filename=str(other)) as out:
        for read in reads:
            out.write(pysam.AlignedSegment.from_dict(read, out.header))
    pysam.index(cram)

    code, output = _check(capsys)
    assert code == 1
    assert "test_data/batch2/samples.tsv:6:bam: sample P04_T3: contig 'chr1' has MD5" in output
    assert "the CRAM was encoded against another reference" in output
    panel = _bundled_panel()
    with pytest.raises(AlignmentInputError) as raised:
        count_sample("P04_T3", cram, reference, panel, CountSettings(), check_reference=True)
    assert "sample P04_T3: " in str(raised.value)
    assert "'MD5 checksum reference mismatch'" in str(raised.value)
    assert "truncated or corrupt" not in str(raised.value)


def _bundled_panel() -> pd.DataFrame:
    patients, _ = load_table("test_data/patients.tsv", "patients")
    return build_panel(patients, "test_data/reference/genome.fa.gz", PanelSettings())


def _every_1000th_changed(sequence: str) -> str:
    bases = list(sequence)
    for i in range(0, len(bases), 1000):
        bases[i] = {"A": "C", "C": "G", "G": "T"}.get(bases[i].upper(), "A")
    return "".join(bases)


# 2. Cohorts, dates and config keys ------------------------------------------------------------------------------


@pytest.mark.parametrize("typo", ["stpo", "Stop"])
def test_a_cohort_not_declared_in_the_config_is_an_error_with_row_and_column(bundled_copy, capsys, typo):
    _replace("test_data/clinical.tsv", "P02\tstop\t", f"P02\t{typo}\t")
    code, output = _check(capsys)
    assert code == 1
    assert f"test_data/clinical.tsv:3:cohort: cohort '{typo}' is not one of the config's cohorts: stop, " \
           "continue. Fix: correct the spelling (case matters), or add the cohort to `cohorts`" in output  # fmt: skip

    _replace("config/config.yaml", "samples:\n", f"cohorts: [stop, continue, {typo}]\nsamples:\n")
    assert _check(capsys)[0] == 0


def test_a_death_or_follow_up_date_before_the_progression_date_is_an_error(bundled_copy, capsys):
    _replace("test_data/clinical.tsv", "2024-06-04\t0\t2025-05-31", "2024-06-04\t0\t2024-05-31")  # P03
    code, output = _check(capsys)
    assert code == 1
    assert "test_data/clinical.tsv:4:os_date: death/follow-up date 2024-05-31 is before the progression/" \
           "follow-up date 2024-06-04. Fix: check both dates" in output  # fmt: skip


@pytest.mark.parametrize(
    ("added", "expected"),
    [
        ("samples_per_jobs: 4\n", "unknown key 'samples_per_jobs' (did you mean 'samples_per_job'?); valid keys "
                                  "at the top level: background, calling, clinical, clinical_join, cohorts,"),
        ("countng:\n  min_mapq: 30\n", "unknown key 'countng' (did you mean 'counting'?)"),
        ("report:\n  titel: x\n", "unknown key 'report.titel' (did you mean 'title'?); valid keys of report: "
                                  "max_table_rows, report_date,"),
    ],
)  # fmt: skip
def test_an_unknown_config_key_at_any_level_is_an_error_listing_the_valid_names(
    bundled_copy, capsys, added, expected
):
    config = Path("config/config.yaml")
    config.write_text(config.read_text().replace("report: {}\n", "") + added)
    code, output = _check(capsys)
    assert code == 1
    assert f"config/config.yaml: {expected}" in output


def test_the_workflow_stops_on_an_unknown_config_section_before_reading_a_sheet(bundled_copy):
    _replace("config/config.yaml", "counting:\n", "countng:\n")
    result = run_snakemake(bundled_copy, "--dry-run")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "config/config.yaml: unknown key 'countng' (did you mean 'counting'?); valid keys at the top level: " \
           "background, calling, clinical," in output  # fmt: skip
    assert TRACEBACK not in output


@pytest.mark.parametrize("date", ["2026-02-30", "23 Nov 2026"])
def test_report_date_must_be_a_real_date(bundled_copy, capsys, date):
    _replace("config/config.yaml", 'report_date: "2026-11-23"', f'report_date: "{date}"')
    code, output = _check(capsys)
    assert code == 1
    assert "config/config.yaml: report_date: " in output
    assert "Fix: " in output


def test_an_unquoted_report_date_is_the_date_it_reads_as(bundled_copy, capsys):
    _replace("config/config.yaml", 'report_date: "2026-11-23"', "report_date: 2026-11-23")
    assert _check(capsys)[0] == 0
    result = run_snakemake(bundled_copy, "--dry-run", "results/sheets/samples.tsv")
    assert result.returncode == 0, result.stdout[-3000:]


# 3. No traceback for predictable inputs -------------------------------------------------------------------------


def test_a_sample_sheet_saved_as_csv_is_named_with_the_fix(bundled_copy, capsys):
    csv = Path("test_data/batch1/samples.csv")
    csv.write_text(Path("test_data/batch1/samples.tsv").read_text().replace("\t", ","))
    _replace("config/config.yaml", "batch1/samples.tsv", "batch1/samples.csv")
    expected = (
        "test_data/batch1/samples.csv:1: the header line has no tab but 7 commas: the sheet looks like CSV"
    )
    code, output = _check(capsys)
    assert code == 1
    assert expected in output and "Fix: save it as tab-separated text" in output

    result = run_snakemake(bundled_copy, "--dry-run")
    assert result.returncode != 0
    assert expected in result.stdout + result.stderr
    assert TRACEBACK not in result.stdout + result.stderr and "TypeError" not in result.stdout + result.stderr


def test_a_panel_vcf_compressed_with_plain_gzip_is_named_with_the_fix(bundled_copy, capsys):
    plain = Path("test_data/panels/P01.vcf")
    with gzip.open(f"{plain}.gz", "wb") as compressed:
        compressed.write(plain.read_bytes())
    _replace("test_data/patients.tsv", "panels/P01.vcf", "panels/P01.vcf.gz")
    code, output = _check(capsys)
    assert code == 1
    assert "test_data/panels/P01.vcf.gz: the panel VCF is compressed with plain gzip, which htslib cannot read " \
           "(it needs bgzip). Fix: recompress it: gunzip test_data/panels/P01.vcf.gz && bgzip " \
           "test_data/panels/P01.vcf" in output  # fmt: skip


def test_a_panel_position_beyond_its_contig_end_is_named(bundled_copy, capsys):
    vcf = Path("test_data/panels/P04.vcf")
    first = next(line for line in vcf.read_text().splitlines() if not line.startswith("#"))
    chrom, pos = first.split("\t")[:2]
    _replace(vcf, f"{chrom}\t{pos}\t", f"{chrom}\t{int(pos) + 10_000_000}\t")
    code, output = _check(capsys)
    assert code == 1
    assert (
        f"test_data/panels/P04.vcf: {chrom}:{int(pos) + 10_000_000} is beyond the end of contig {chrom}"
        in output
    )


def test_a_full_disk_names_the_output_and_the_free_space(bundled_copy, monkeypatch, capsys):
    """`mrdtrack count` (as every step) writes through one atomic writer: ENOSPC is a message, not a traceback."""

    def disk_full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    _bundled_panel().to_csv("panel.tsv", sep="\t", index=False)
    monkeypatch.setattr(pd.DataFrame, "to_csv", disk_full)
    output = Path("results/counts/P01_T1.tsv")
    with pytest.raises(SystemExit) as exit_code:
        main(["count", "test_data/batch1/bams/P01_T1.bam", "--panel", "panel.tsv",
              "--reference", "test_data/reference/genome.fa.gz", "--output", str(output)])  # fmt: skip
    assert exit_code.value.code == 1
    err = capsys.readouterr().err
    assert f"mrdtrack: cannot write '{output}': no space left on the device (" in err
    assert " free on the file system of 'results/counts'). Fix: free disk space" in err
    assert not output.exists() and not list(output.parent.iterdir()), "no partial file is left"


def test_sheet_rows_are_file_lines_and_each_empty_cell_is_named_by_its_column(bundled_copy, capsys):
    sheet = Path("test_data/batch1/samples.tsv")
    lines = sheet.read_text().splitlines()
    lines[1:1] = ["# received 2023-11-30", ""]  # P01_T1 moves from line 2 to line 4
    lines[6] = lines[6].replace("P02\tplasma\t2023-05-31\t", "P02\t\t\t")  # P02_T1, line 7
    sheet.write_text("\n".join(lines) + "\n")
    code, output = _check(capsys)
    assert code == 1
    assert f"{sheet}:7:sample_type: 'sample_type' is empty. Fix: sample_type is plasma" in output
    assert f"{sheet}:7:collection_date: 'collection_date' is empty. Fix: collection_date is date" in output
    assert "found 2 problem(s)" in output
