"""A reference whose contigs are named "1", "2", "3" (Ensembl, GRCh37 style) runs as one named "chr1".

Every table between steps reads `chrom` as text (mrdtrack.tables.CONTRACTS): were "1" read as a number, the
panel (1) and the counts ("1") would no longer join. The bundled data, renamed, must give the same calls.
"""

from __future__ import annotations

import gzip
import re
import shutil
from pathlib import Path

import pandas as pd
import pysam
import pytest
import yaml

from conftest import REPO, TEST_DATA, run_snakemake

pytestmark = pytest.mark.slow


def unprefixed(name: str) -> str:
    return re.sub(r"^chr", "", name)


def rename_bam(source: Path, target: Path) -> None:
    with pysam.AlignmentFile(str(source)) as bam:
        header = bam.header.to_dict()
        for contig in header["SQ"]:
            contig["SN"] = unprefixed(contig["SN"])
        with pysam.AlignmentFile(str(target), "wb", header=header) as out:
            for read in bam.fetch(until_eof=True):
                record = read.to_dict()
                for key in ("ref_name", "next_ref_name"):
                    if record[key] not in ("*", "="):
                        record[key] = unprefixed(record[key])
                out.write(pysam.AlignedSegment.from_dict(record, out.header))
    pysam.index(str(target))


def rename_vcf(source: Path, target: Path) -> None:
    opener = gzip.open if source.suffix == ".gz" else open
    with opener(source, "rt") as handle:
        text = re.sub(r"(?m)^chr", "", handle.read()).replace("##contig=<ID=chr", "##contig=<ID=")
    plain = target.with_suffix("") if source.suffix == ".gz" else target
    plain.write_text(text)
    if source.suffix == ".gz":
        pysam.tabix_index(str(plain), preset="vcf", force=True)


@pytest.fixture(scope="module")
def renamed_run(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("numeric_contigs")
    data = workdir / "data"
    shutil.copytree(TEST_DATA, data, ignore=shutil.ignore_patterns("*.bam", "*.bai", "*.vcf*", "reference"))
    with pysam.FastaFile(str(TEST_DATA / "reference/genome.fa.gz")) as fasta:
        lines = [f">{unprefixed(name)}\n{fasta.fetch(name)}\n" for name in fasta.references]
    (data / "reference").mkdir()
    (data / "reference/genome.fa").write_text("".join(lines))
    pysam.faidx(str(data / "reference/genome.fa"))
    for bam in TEST_DATA.glob("*/bams/*.bam"):
        rename_bam(bam, data / bam.relative_to(TEST_DATA))
    for vcf in TEST_DATA.glob("panels/*.vcf*"):
        if not vcf.name.endswith(".tbi"):
            rename_vcf(vcf, data / vcf.relative_to(TEST_DATA))
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    config["samples"] = [s.replace("test_data/", "data/") for s in config["samples"]]
    for key in ("patients", "clinical"):
        config[key] = config[key].replace("test_data/", "data/")
    config["reference"] = "data/reference/genome.fa"
    # Half the samples per job: two counting jobs at once on 2 cores, and few Python start-ups (the jobs' layout
    # changes no result: tests/test_faults.py).
    config["samples_per_job"] = 14
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    result = run_snakemake(workdir, "results/mrd/calls.tsv", "--configfile", "config.yaml")
    assert result.returncode == 0, result.stderr[-5000:]
    return workdir


def test_numeric_contig_names_give_the_same_calls_as_chr_names(renamed_run, bundled_run):
    renamed = pd.read_csv(renamed_run / "results/mrd/calls.tsv", sep="\t")
    bundled = pd.read_csv(bundled_run / "results/mrd/calls.tsv", sep="\t")
    pd.testing.assert_frame_equal(renamed, bundled)
    loci = pd.read_csv(renamed_run / "results/mrd/loci.tsv", sep="\t", dtype={"chrom": str})
    assert set(loci["chrom"]) <= {"1", "2", "3"} and len(loci)
