"""Shared fixtures: paths to the repository, the bundled test data and the optional real data in ../shared."""

from __future__ import annotations

import fcntl
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pysam
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
TEST_DATA = REPO / "test_data"
SHARED_REAL_DATA = REPO.parent / "shared" / "real_data"


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def ctdnatools() -> Path:
    folder = SHARED_REAL_DATA / "ctdnatools"
    if not folder.is_dir():
        pytest.skip(
            f"real ctDNAtools reads not available at {folder} (only in CI and dev machines with ../shared)"
        )
    return folder


@pytest.fixture(scope="session")
def finaletoolkit() -> Path:
    folder = SHARED_REAL_DATA / "finaletoolkit_delfi"
    if not folder.is_dir():
        pytest.skip(f"real FinaleToolkit cfDNA CRAM not available at {folder} (only with ../shared)")
    return folder


def toy_panel(positions: list[int], context: str = "NAN", chrom: str = "chr1") -> pd.DataFrame:
    """A one-patient panel of A>T SNVs at 1-based `positions`, as counting takes it."""
    return pd.DataFrame(
        {"patient_id": "P1", "chrom": chrom, "pos": positions, "ref": "A", "alt": "T", "context": context,
         "weight": 1.0}
    )  # fmt: skip


def ctdnatools_panel(folder: Path) -> pd.DataFrame:
    """The ctDNAtools patient's SNVs (mutations.tsv) as a counting panel."""
    mutations = pd.read_csv(folder / "mutations.tsv", sep="\t")
    return pd.DataFrame(
        {"patient_id": "T", "chrom": mutations.CHROM, "pos": mutations.POS, "ref": mutations.REF,
         "alt": mutations.ALT, "context": "NNN", "weight": 1.0}
    )  # fmt: skip


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (apt-get install {name}); .ci/run installs it")
    return path


SAMPLE_HEADER = "sample_id\tpatient_id\tsample_type\tcollection_date\tbam\n"


def _write(path: Path, text: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def write_indexed_bam(path: Path | str, reads: list[pysam.AlignedSegment], header) -> str:
    """`reads` written as a coordinate-sorted, indexed BAM (a stable sort: reads at one position keep their
    order); `header` as pysam.AlignmentFile takes it. Returns the path as text."""
    reads = sorted(reads, key=lambda read: (read.reference_id, read.reference_start))
    with pysam.AlignmentFile(str(path), "wb", header=header) as out:
        for read in reads:
            out.write(read)
    pysam.index(str(path))
    return str(path)


def read_name_hash(name: bytes, key_bit: int) -> int:
    """The name hash the compiled engine's record kernel stores per observation (64-bit FNV-1a of the name, then
    of the key bit), for tests that write observation tables by hand."""
    value = 14695981039346656037
    for byte in (*name, key_bit):
        value = ((value ^ byte) * 1099511628211) % 2**64
    return value


def assert_same_counts(fast, reference) -> None:
    """Two SampleCounts hold the same panel-locus counts, fragment lengths, fragments and QC."""
    pd.testing.assert_frame_equal(fast.counts, reference.counts)
    pd.testing.assert_frame_equal(fast.fragment_lengths, reference.fragment_lengths)
    pd.testing.assert_frame_equal(fast.fragments, reference.fragments)
    assert fast.qc == reference.qc


def per_position_flank_molecules(
    bam: str, fasta: str, panel: pd.DataFrame, settings, patient_id: str = "P1"
) -> tuple[pd.DataFrame, list]:
    """The flank positions of a sample of `patient_id` and each position's molecules, formed position by position
    (the per-position engines, not the flank kernel): what a flank table is specified by. Returns the positions
    and (chrom, locus, molecules) per position."""
    from mrdtrack.counting.flanks import FlankWindow, flank_loci, flank_positions
    from mrdtrack.counting.molecules import ReadStats, resolve_dedup_mode
    from mrdtrack.counting.sample import cluster_molecules
    from mrdtrack.inputs.panel import contig_map

    with pysam.FastaFile(fasta) as handle:
        positions = flank_positions(
            panel, patient_id, handle, FlankWindow(settings.flank_window, settings.flank_gap)
        )
    with pysam.AlignmentFile(bam) as alignments:
        units = flank_loci(positions, contig_map(positions["chrom"].unique(), alignments.references))
        mode = resolve_dedup_mode(alignments, settings)
        found = [
            (chrom, locus, molecules)
            for chrom, cluster, per_locus in cluster_molecules(alignments, units, settings, mode, ReadStats())
            for locus, molecules in zip(cluster, per_locus, strict=True)
        ]
    return positions, found


def _bam(folder: Path, name: str) -> None:
    # The comment keeps two samples' empty files apart: identical files under two sample_ids are an error.
    header = {"HD": {"VN": "1.6", "SO": "coordinate"}, "SQ": [{"SN": "chr1", "LN": 1000}], "CO": [name]}
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with pysam.AlignmentFile(str(path), "wb", header=header):
        pass
    pysam.index(str(path))


@pytest.fixture
def project(tmp_path: Path) -> dict:
    """A minimal valid project: one patient with a panel, one plasma and one control sample."""
    batch = tmp_path / "batch1"
    _bam(batch, "bams/p1.bam")
    _bam(batch, "bams/c1.bam")
    _write(
        tmp_path / "panels/P1.vcf", "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
    )
    (tmp_path / "ref.fa").write_text(">chr1\n" + "A" * 1000 + "\n")
    pysam.faidx(str(tmp_path / "ref.fa"))
    return {
        "samples": [_write(batch / "samples.tsv", SAMPLE_HEADER + "S1\tP1\tplasma\t2024-01-02\tbams/p1.bam\n"
                           "C1\t\tcontrol\t2024-01-03\tbams/c1.bam\n")],
        "patients": _write(tmp_path / "patients.tsv", "patient_id\tpanel_vcf\nP1\tpanels/P1.vcf\n"),
        "clinical": _write(tmp_path / "clinical.tsv",
                           "patient_id\tcohort\tenrollment_date\tpfs_event\tpfs_date\tos_event\tos_date\tage\n"
                           "P1\tstop\t2024-01-01\t0\t2025-01-01\t0\t2025-01-01\t61\n"),
        "reference": str(tmp_path / "ref.fa"),
    }  # fmt: skip


def write_config(project: dict, path: Path) -> str:
    """Write `project` (config keys) as a config YAML and return its path."""
    path.write_text(yaml.safe_dump(project))
    return str(path)


def prepare_workdir(workdir: Path) -> Path:
    """The bundled config in `workdir`, beside a link to the bundled data."""
    (workdir / "config").mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "config" / "config.yaml", workdir / "config" / "config.yaml")
    (workdir / "test_data").symlink_to(TEST_DATA)
    return workdir


@pytest.fixture
def bundled_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A writable copy of the bundled data and config/config.yaml, made the working directory: apply one fault
    to it, then run `mrdtrack check` or the workflow there."""
    root = tmp_path / "bundled"
    shutil.copytree(TEST_DATA, root / "test_data", ignore=shutil.ignore_patterns("truth", "*.py", "*.md"))
    (root / "config").mkdir()
    shutil.copy(REPO / "config" / "config.yaml", root / "config" / "config.yaml")
    monkeypatch.chdir(root)
    return root


def run_snakemake(workdir: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "workflow" / "Snakefile"),
               "--directory", str(workdir), *args]  # fmt: skip
    if not any(a.startswith("--workflow-profile") or a == "--executor" for a in args):
        command += ["--cores", "2"]
    return subprocess.run(command, capture_output=True, text=True, cwd=workdir, timeout=timeout)


@pytest.fixture(scope="session")
def trial_plan():
    """The full-size default `mrdtrack demo` cohort, planned (no file written; shared by the demo and docs tests)."""
    from mrdtrack.simulation import demo

    return demo.plan_demo()


@pytest.fixture(scope="session")
def bundled_run(tmp_path_factory, worker_id: str) -> Path:
    """The default config run once, locally, on the bundled data (shared by the end-to-end tests, and by every
    pytest-xdist worker of this session: the first to ask runs it, the others wait on its lock and read it)."""
    if worker_id == "master":  # one process, no workers
        return _run_bundled(tmp_path_factory.mktemp("bundled_run"))
    # The workers' base temporary folders share a parent of this session's own.
    shared = tmp_path_factory.getbasetemp().parent
    with open(shared / "bundled_run.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        workdir = shared / "bundled_run"
        done = shared / "bundled_run.done"
        if not done.exists():
            _run_bundled(workdir)
            done.touch()
    return workdir


def _run_bundled(workdir: Path) -> Path:
    workdir.mkdir(exist_ok=True)
    result = run_snakemake(prepare_workdir(workdir))
    assert result.returncode == 0, result.stderr[-5000:]
    return workdir


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow (end-to-end) tests first, in their files' order: pytest-xdist hands out whole files in this order,
    so the longest ones start at once instead of leaving one worker running the last of them alone."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
