"""Counting speed and memory: mrdtrack vs samtools mpileup (same positions, same filters) vs samtools view -c.

Builds a paired-end BAM of realistic MRD depth (default: 500 loci x 2,000 unique molecules x 3 read pairs, UMIs,
overlapping mates), then runs each tool several times as a separate process and prints the median wall time,
the ratios and each tool's peak RSS. A counting job counts the panel loci and the flank positions around the
sample's own patient's loci (`counting.flank_window` bp either side, results/counts/{sample}.flanks.tsv): it is
compared with samtools mpileup over the same regions (every position within the window of a panel locus), and
the panel loci alone (`mrdtrack count`) with samtools mpileup at the panel positions. A second, 10x smaller BAM
(50 loci) shows whether memory stays flat as the file grows. `--indel-share 0.2` makes every fifth locus a 2 bp
deletion (10% of its molecules carry it), to measure what indel loci cost. A `--workdir` that holds the BAMs of
an earlier run with the same parameters is used again.

`--wgs` measures a genome-wide signature instead: `--wgs-patients` (20) panels of `--wgs-loci` (20,000) loci
each, all counted in one plasma BAM of 30x-like depth (`--wgs-molecules` 30 fragments per locus, Poisson, one
read pair each, 10% of them flagged duplicates as a duplicate marker leaves them, no UMIs), spread over 20
contigs, `--wgs-spacing` (1,500) bp apart, so that each locus is a cluster of its own as a signature's loci are.
The sample is one patient's plasma: its counting job counts every panel locus and the flanks of its own
patient's loci; samtools mpileup covers the same positions (duplicates left out too). The BAM of a tenth of the
patients shows whether memory grows with the loci.

    python benchmarks/count_speed.py [--loci 500] [--molecules 2000] [--copies 3] [--repeats 3]
                                     [--indel-share 0] [--workdir DIR]
    python benchmarks/count_speed.py --wgs [--wgs-patients 20] [--wgs-loci 20000] [--wgs-molecules 30]
                                     [--wgs-spacing 1500] [--repeats 1] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pysam

READ_LENGTH = 100
MPILEUP_FILTERS = [
    "-B",
    "-A",
    "-x",
    "-d",
    "0",
    "-q",
    "20",
    "-Q",
    "20",
    "--ff",
    "UNMAP,SECONDARY,QCFAIL,SUPPLEMENTARY",
]


DELETED = 2  # bases the benchmark's indel loci delete
DELETION_SHARE = 0.1  # of the molecules at an indel locus


def build_bam(
    folder: Path, n_loci: int, molecules: int, copies: int, indel_share: float = 0.0, seed: int = 7
) -> dict[str, Path]:
    """A coordinate-sorted BAM with `copies` read pairs per molecule at each locus, and its panel and BED; every
    1/indel_share-th locus is a deletion that DELETION_SHARE of its molecules carry."""
    rng = np.random.default_rng(seed)
    spacing = 4000
    length = 10_000 + n_loci * spacing
    sequence = "".join(rng.choice(list("ACGT"), length))
    (folder / "ref.fa").write_text(f">chr1\n{sequence}\n")
    pysam.faidx(str(folder / "ref.fa"))
    header = pysam.AlignmentHeader.from_dict(
        {"HD": {"VN": "1.6", "SO": "coordinate"}, "SQ": [{"SN": "chr1", "LN": length}]}
    )
    loci = [5000 + i * spacing for i in range(n_loci)]
    every = round(1 / indel_share) if indel_share else 0
    is_indel = [bool(every) and i % every == every - 1 for i in range(n_loci)]
    qualities = pysam.qualitystring_to_array("F" * READ_LENGTH)
    unsorted = folder / "unsorted.bam"
    with pysam.AlignmentFile(str(unsorted), "wb", header=header) as out:
        name = 0
        for pos, indel in zip(loci, is_indel, strict=True):
            for _ in range(molecules):
                fragment = int(rng.integers(130, 200))
                start = pos - int(rng.integers(10, fragment - 10))
                umi = "".join(rng.choice(list("ACGT"), 8))
                deletion = (
                    pos if indel and rng.random() < DELETION_SHARE else None
                )  # 0-based: after the anchor
                for _copy in range(copies):
                    name += 1
                    for read in _pair(
                        header, f"m{name}", sequence, start, fragment, umi, qualities, deletion
                    ):
                        out.write(read)
    bam = folder / "sample.bam"
    pysam.sort("-o", str(bam), "-@", "2", str(unsorted))
    pysam.index(str(bam))
    unsorted.unlink()
    (folder / "loci.bed").write_text("".join(f"chr1\t{p - 1}\t{p}\n" for p in loci))
    refs = [
        sequence[p - 1 : p + DELETED] if indel else sequence[p - 1]
        for p, indel in zip(loci, is_indel, strict=True)
    ]
    alts = [r[0] if len(r) > 1 else "T" if r != "T" else "A" for r in refs]
    panel = pd.DataFrame({"patient_id": "P1", "chrom": "chr1", "pos": loci, "ref": refs, "alt": alts,
                          "context": "NNN", "weight": 1.0})  # fmt: skip
    panel.to_csv(folder / "panel.tsv", sep="\t", index=False)
    return {
        "bam": bam,
        "bed": folder / "loci.bed",
        "panel": folder / "panel.tsv",
        "reference": folder / "ref.fa",
    }


def _pair(header, name, sequence, start, fragment, umi, qualities, deletion=None):
    """A read pair; with `deletion` (0-based), each read that has aligned bases on both sides of it lacks the
    DELETED reference bases from there."""
    mate_start = start + fragment - READ_LENGTH
    for first, read_start, other in ((True, start, mate_start), (False, mate_start, start)):
        read = pysam.AlignedSegment(header)
        read.query_name = name
        read.reference_id = read.next_reference_id = 0
        read.reference_start, read.next_reference_start = read_start, other
        before = deletion - read_start if deletion is not None else 0
        if 0 < before < READ_LENGTH:
            read.cigarstring = f"{before}M{DELETED}D{READ_LENGTH - before}M"
            read.query_sequence = (sequence[read_start:deletion] + sequence[deletion + DELETED :])[
                :READ_LENGTH
            ]
        else:
            read.cigarstring = f"{READ_LENGTH}M"
            read.query_sequence = sequence[read_start : read_start + READ_LENGTH]
        read.query_qualities = qualities
        read.flag = 0x1 | 0x2 | (0x40 | 0x20 if first else 0x80 | 0x10)
        read.mapping_quality = 60
        read.template_length = fragment if first else -fragment
        read.set_tag("RX", umi)
        yield read


WGS_CONTIGS = 20
# bp between consecutive loci of the cohort: each locus a cluster of its own (counting.molecules.CLUSTER_GAP is
# 1,000 bp), as the loci of genome-wide signatures are (tens of kb apart). `--wgs-spacing 400` chains a contig's
# loci into one cluster, as dense loci are.
WGS_SPACING = 1500
WGS_DUPLICATE_SHARE = 0.1
WGS_ALT_SHARE = 1e-3  # molecules showing a non-reference base at the locus


def build_wgs_bam(
    folder: Path,
    patients: int,
    loci_per_patient: int,
    molecules: float,
    spacing: int = WGS_SPACING,
    seed: int = 11,
) -> dict[str, Path]:
    """A coordinate-sorted, indexed BAM of `patients` x `loci_per_patient` loci over WGS_CONTIGS contigs, with
    Poisson(`molecules`) fragments per locus (one read pair each; WGS_DUPLICATE_SHARE more copies flagged 0x400),
    and the cohort panel (loci dealt to the patients in turn) and BED. Written as SAM text in coordinate order
    and compressed by samtools: building millions of pysam records one by one would take far longer."""
    rng = np.random.default_rng(seed)
    total = patients * loci_per_patient
    per_contig = -(-total // WGS_CONTIGS)
    length = 1000 + per_contig * spacing
    contigs = [f"chr{i + 1}" for i in range(WGS_CONTIGS)]
    sequences = {
        c: rng.choice(np.frombuffer(b"ACGT", dtype="S1"), length).tobytes().decode() for c in contigs
    }
    with open(folder / "ref.fa", "w") as fasta:
        for contig in contigs:
            fasta.write(f">{contig}\n{sequences[contig]}\n")
    pysam.faidx(str(folder / "ref.fa"))
    header = "@HD\tVN:1.6\tSO:coordinate\n" + "".join(f"@SQ\tSN:{c}\tLN:{length}\n" for c in contigs)
    quality = "F" * READ_LENGTH
    bam = folder / "sample.bam"
    rows = []
    with subprocess.Popen(
        ["samtools", "view", "-b", "-o", str(bam), "-"], stdin=subprocess.PIPE, text=True
    ) as job:
        job.stdin.write(header)
        locus = 0
        for contig in contigs:
            sequence = sequences[contig]
            for j in range(min(per_contig, total - locus)):
                pos = 1000 + j * spacing  # 1-based
                patient = locus % patients
                rows.append((f"P{patient + 1:02d}", contig, pos, sequence[pos - 1]))
                job.stdin.write(_wgs_locus_reads(rng, contig, sequence, pos, molecules, quality, locus))
                locus += 1
        job.stdin.close()
    pysam.index(str(bam))
    (folder / "loci.bed").write_text("".join(f"{c}\t{p - 1}\t{p}\n" for _, c, p, _ in rows))
    panel = pd.DataFrame(rows, columns=["patient_id", "chrom", "pos", "ref"])
    panel["alt"] = ["T" if r != "T" else "A" for r in panel["ref"]]
    panel = panel.assign(context="NNN", weight=1.0)[
        ["patient_id", "chrom", "pos", "ref", "alt", "context", "weight"]
    ]
    panel.to_csv(folder / "panel.tsv", sep="\t", index=False)
    return {
        "bam": bam,
        "bed": folder / "loci.bed",
        "panel": folder / "panel.tsv",
        "reference": folder / "ref.fa",
    }


def _wgs_locus_reads(rng: np.random.Generator, contig: str, sequence: str, pos: int, molecules: float,
                     quality: str, locus: int) -> str:  # fmt: skip
    """The SAM lines of one locus's fragments, sorted by start."""
    reads = []
    fragments = int(rng.poisson(molecules))
    for k in range(fragments):
        fragment = int(rng.integers(130, 200))
        start = pos - int(rng.integers(10, fragment - 10))  # 1-based start of the first read
        mate = start + fragment - READ_LENGTH
        alt = rng.random() < WGS_ALT_SHARE
        copies = 2 if rng.random() < WGS_DUPLICATE_SHARE else 1
        for copy in range(copies):
            name = f"l{locus}f{k}c{copy}"
            duplicate = 0x400 if copy else 0
            for first, read_start, other in ((True, start, mate), (False, mate, start)):
                bases = sequence[read_start - 1 : read_start - 1 + READ_LENGTH]
                offset = pos - read_start
                if alt and 0 <= offset < READ_LENGTH:
                    bases = bases[:offset] + ("T" if bases[offset] != "T" else "A") + bases[offset + 1 :]
                flag = 0x1 | 0x2 | duplicate | (0x40 | 0x20 if first else 0x80 | 0x10)
                tlen = fragment if first else -fragment
                reads.append((read_start, f"{name}\t{flag}\t{contig}\t{read_start}\t60\t{READ_LENGTH}M\t=\t"
                                          f"{other}\t{tlen}\t{bases}\t{quality}\n"))  # fmt: skip
    reads.sort(key=lambda read: read[0])
    return "".join(line for _, line in reads)


def build_labelled_bam(
    workdir: Path, label: str, n_loci: int, molecules: int, copies: int, indel_share: float = 0.0
) -> tuple[dict[str, Path], float]:
    """`build_bam` in workdir/label, announced on stdout; returns the files and the BAM's size in MB. A BAM that
    an earlier run built there with the same parameters is used again (building takes minutes)."""
    folder = workdir / label
    folder.mkdir(parents=True, exist_ok=True)
    built = folder / "built_with.txt"
    wanted = f"{n_loci} {molecules} {copies} {indel_share}\n"
    files = {name: folder / file for name, file in BUILT_FILES.items()}
    if built.exists() and built.read_text() == wanted and all(path.exists() for path in files.values()):
        print(f"using the {label} BAM built earlier in {folder}", flush=True)
    else:
        print(f"building {label} BAM: {n_loci} loci ({indel_share:.0%} deletions) x {molecules} molecules x "
              f"{copies} pairs ...", flush=True)  # fmt: skip
        files = build_bam(folder, n_loci, molecules, copies, indel_share)
        built.write_text(wanted)
    return files, files["bam"].stat().st_size / 1e6


BUILT_FILES = {"bam": "sample.bam", "bed": "loci.bed", "panel": "panel.tsv", "reference": "ref.fa"}


def timed(command: list[str]) -> tuple[float, float, float]:
    """Wall seconds, peak RSS (MiB, sampled every 5 ms) and CPU seconds (user + system) of one command run as a
    child process. CPU time is the fairer figure on a shared machine: wall time also counts waiting for a core."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    process = psutil.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    while process.poll() is None:
        with contextlib.suppress(psutil.Error):
            peak = max(peak, process.memory_info().rss)
        time.sleep(0.005)
    elapsed = time.perf_counter() - start
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {process.stderr.read().decode()[-2000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, peak / 2**20, cpu


# What the workflow's counting job does (count_sample: the panel loci and, given a patient, the flanks of its loci,
# written as the workflow writes its tables), with `threads` worker processes and a counting engine; the CLI counts
# the panel loci alone in one process with the default engine.
JOB = """
import sys
from mrdtrack.counting import CountSettings, count_sample
from mrdtrack.inputs.panel import compact_panel
from mrdtrack.tables import read_table, write_tsv
bam, panel, reference, output, threads, engine, patient = sys.argv[1:]
settings = CountSettings(engine=engine)
panel = compact_panel(read_table("panel_loci", panel, required=["chrom", "pos", "ref", "alt"]))
result = count_sample("s", bam, reference, panel, settings, threads=int(threads), patient_id=patient or None,
                      counts_path=output)
if patient:
    write_tsv(result.flanks, output.replace(".tsv", ".flanks.tsv"))
"""
PATIENT = "P1"  # the sample's patient in build_bam's panel (all its loci)


def job_command(files: dict[str, Path], output: Path, threads: int, engine: str, patient: str) -> list[str]:
    """The counting job as a child process: `patient` "" counts the panel loci only."""
    return [sys.executable, "-c", JOB, str(files["bam"]), str(files["panel"]), str(files["reference"]), str(output),
            str(threads), engine, patient]  # fmt: skip


def flank_bed(files: dict[str, Path], patient: str, window: int | None = None) -> Path:
    """A BED of the positions a counting job of `patient`'s sample looks at: every panel position, and every
    position up to `window` bp (default: counting.flank_window) either side of the patient's own loci, merged."""
    from mrdtrack.counting import CountSettings

    window = CountSettings().flank_window if window is None else window
    panel = pd.read_csv(files["panel"], sep="\t")
    reach = np.where(panel["patient_id"] == patient, window, 0)
    order = {c: i for i, c in enumerate(panel["chrom"].unique())}
    intervals = sorted(
        zip(panel["chrom"], panel["pos"] - 1 - reach, panel["pos"] + reach, strict=True),
        key=lambda row: (order[row[0]], row[1]),
    )
    merged: list[list] = []
    for chrom, start, end in intervals:
        if merged and merged[-1][0] == chrom and start <= merged[-1][2]:
            merged[-1][2] = max(merged[-1][2], end)
        else:
            merged.append([chrom, max(int(start), 0), int(end)])
    bed = files["bed"].with_name(f"flanks_{patient}.bed")
    bed.write_text("".join(f"{c}\t{a}\t{b}\n" for c, a, b in merged))
    return bed


def mpileup(bed: Path, bam: Path, filters: list[str] = MPILEUP_FILTERS) -> list[str]:
    return [shutil.which("samtools"), "mpileup", *filters, "-l", str(bed), str(bam)]


def commands(files: dict[str, Path], output: Path) -> dict[str, list[str]]:
    mrdtrack = [sys.executable, "-m", "mrdtrack.cli", "count", str(files["bam"]), "--panel", str(files["panel"]),
                "--reference", str(files["reference"]), "--output", str(output)]  # fmt: skip
    return {
        "mrdtrack count": mrdtrack,
        "mrdtrack threads=2": job_command(files, output.with_suffix(".threads2.tsv"), 2, "auto", ""),
        "mrdtrack engine=pysam": job_command(files, output.with_suffix(".pysam.tsv"), 1, "pysam", ""),
        "samtools mpileup": mpileup(files["bed"], files["bam"]),
        "samtools view -c": [
            shutil.which("samtools"),
            "view",
            "-c",
            "-L",
            str(files["bed"]),
            str(files["bam"]),
        ],
        "job with flanks": job_command(files, output.with_suffix(".job.tsv"), 1, "auto", PATIENT),
        "job with flanks, 2 proc.": job_command(files, output.with_suffix(".job2.tsv"), 2, "auto", PATIENT),
        "mpileup, flank regions": mpileup(flank_bed(files, PATIENT), files["bam"]),
    }


def measure(files: dict[str, Path], repeats: int, output: Path) -> dict[str, dict[str, float]]:
    """Median figures per command, after one untimed run of mrdtrack that compiles the numba kernels if this
    machine has not cached them yet (printed: it is a one-off cost per installation)."""
    first, _, _ = timed(commands(files, output)["mrdtrack count"])
    print(
        f"  first mrdtrack run (includes numba compilation unless already cached): {first:.1f} s", flush=True
    )
    results = {}
    for label, command in commands(files, output).items():
        runs = [timed(command) for _ in range(repeats)]
        results[label] = {
            "seconds": statistics.median(r[0] for r in runs),
            "rss_mib": max(r[1] for r in runs),
            "cpu_seconds": statistics.median(r[2] for r in runs),
        }
    return results


def wgs_commands(files: dict[str, Path], output: Path) -> dict[str, list[str]]:
    """mrdtrack (duplicates by their flag, as the workflow's `dedup: auto` finds them) and samtools mpileup
    with duplicates left out as well: the panel loci alone, and a counting job of patient P01's plasma sample
    (every panel locus and the flanks of P01's loci) against mpileup over the same positions."""
    mrdtrack = [sys.executable, "-m", "mrdtrack.cli", "count", str(files["bam"]), "--panel", str(files["panel"]),
                "--reference", str(files["reference"]), "--output", str(output)]  # fmt: skip
    filters = [f if f != "UNMAP,SECONDARY,QCFAIL,SUPPLEMENTARY" else f + ",DUP" for f in MPILEUP_FILTERS]
    return {
        "mrdtrack count": mrdtrack,
        "mrdtrack --threads 2": [*mrdtrack[:-1], str(output.with_suffix(".threads2.tsv")), "--threads", "2"],
        "samtools mpileup": mpileup(files["bed"], files["bam"], filters),
        "job with flanks": job_command(files, output.with_suffix(".job.tsv"), 1, "auto", WGS_PATIENT),
        "mpileup, flank regions": mpileup(flank_bed(files, WGS_PATIENT), files["bam"], filters),
    }


WGS_PATIENT = "P01"


def run_wgs(args: argparse.Namespace, workdir: Path) -> None:
    sizes = {"genome-wide": args.wgs_patients, "a tenth of the patients": max(args.wgs_patients // 10, 1)}
    figures = {}
    for label, patients in sizes.items():
        folder = workdir / label.replace(" ", "_")
        folder.mkdir(parents=True, exist_ok=True)
        began = time.perf_counter()
        files = build_wgs_bam(folder, patients, args.wgs_loci, args.wgs_molecules, args.wgs_spacing)
        print(f"{label}: {patients} patients x {args.wgs_loci:,} loci = {patients * args.wgs_loci:,} loci, "
              f"{files['bam'].stat().st_size / 1e6:.0f} MB BAM, built in {time.perf_counter() - began:.0f} s",
              flush=True)  # fmt: skip
        commands_here = wgs_commands(files, folder / "counts.tsv")
        first, _, _ = timed(commands_here["mrdtrack count"])
        print(f"  first mrdtrack run (numba compiles unless cached): {first:.1f} s", flush=True)
        repeats = args.repeats if label == "genome-wide" else 1
        figures[label] = {}
        for name, command in commands_here.items():
            runs = [timed(command) for _ in range(repeats)]
            figures[label][name] = [statistics.median(r[i] for r in runs) for i in range(3)]
            wall, rss, cpu = figures[label][name]
            print(f"  {name:22s} {wall:8.1f} s wall {cpu:8.1f} s CPU {rss:8.0f} MiB peak RSS", flush=True)
        for mine_name, theirs_name in (("mrdtrack count", "samtools mpileup"),
                                       ("job with flanks", "mpileup, flank regions")):  # fmt: skip
            mine, theirs = figures[label][mine_name], figures[label][theirs_name]
            print(f"  {mine_name} / {theirs_name}: {mine[0] / theirs[0]:.2f} wall, {mine[2] / theirs[2]:.2f} CPU "
                  "(target <= 1.0)")  # fmt: skip
        flanks = pd.read_csv(folder / "counts.job.flanks.tsv", sep="\t")
        print(f"  flanks of {WGS_PATIENT}: {len(flanks):,} covered positions (one row each)", flush=True)
        counts = pd.read_csv(folder / "counts.tsv", sep="\t")
        print(f"  {len(counts):,} loci counted, {counts['ref_molecules'].sum() + counts['alt_molecules'].sum():,} "
              "informative molecules", flush=True)  # fmt: skip
    small, large = figures["a tenth of the patients"], figures["genome-wide"]
    for name in ("mrdtrack count", "job with flanks"):
        loci = f"{sizes['a tenth of the patients'] * args.wgs_loci:,} -> {sizes['genome-wide'] * args.wgs_loci:,}"
        print(f"peak RSS of {name}, {loci} loci: {small[name][1]:.0f} -> {large[name][1]:.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--wgs", action="store_true", help="a genome-wide signature in a 30x-like BAM")
    parser.add_argument("--wgs-patients", type=int, default=20)
    parser.add_argument("--wgs-loci", type=int, default=20_000, help="loci per patient")
    parser.add_argument("--wgs-molecules", type=float, default=30.0, help="fragments per locus")
    parser.add_argument("--wgs-spacing", type=int, default=WGS_SPACING, help="bp between consecutive loci")
    parser.add_argument("--loci", type=int, default=500)
    parser.add_argument("--molecules", type=int, default=2000)
    parser.add_argument("--copies", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--indel-share", type=float, default=0.0, help="share of loci that are deletions")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    if shutil.which("samtools") is None:
        sys.exit("samtools is needed for the comparison: apt-get install samtools")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="mrdtrack-count-speed-"))
    if args.wgs:
        run_wgs(args, workdir)
        return
    sizes = {"large": args.loci, "small": max(args.loci // 10, 1)}
    report = {}
    for label, n_loci in sizes.items():
        files, size_mb = build_labelled_bam(
            workdir, label, n_loci, args.molecules, args.copies, args.indel_share
        )
        folder = files["bam"].parent
        report[label] = (
            size_mb,
            measure(files, args.repeats if label == "large" else 1, folder / "counts.tsv"),
        )
    print_report(report)
    folder = workdir / "large"
    tables = [pd.read_csv(folder / name, sep="\t") for name in ("counts.threads2.tsv", "counts.pysam.tsv")]
    same = tables[0].equals(tables[1])
    print(f"count tables of the compiled engine (2 processes) and the pysam engine identical: {same}")
    flanks = [
        pd.read_csv(folder / name, sep="\t") for name in ("counts.job.flanks.tsv", "counts.job2.flanks.tsv")
    ]
    print(f"flank tables of 1 and 2 processes identical: {flanks[0].equals(flanks[1])}; "
          f"{len(flanks[0]):,} flank positions covered")  # fmt: skip


def print_report(report: dict[str, tuple[float, dict[str, dict[str, float]]]]) -> None:
    size, large = report["large"]
    print(f"\nlarge BAM: {size:.1f} MB; median wall time, median CPU time (user + system) and peak RSS")
    for label, figures in large.items():
        print(
            f"  {label:24s} {figures['seconds']:8.2f} s wall {figures['cpu_seconds']:8.2f} s CPU "
            f"{figures['rss_mib']:8.1f} MiB"
        )
    mpileup = large["samtools mpileup"]["seconds"]
    print(
        f"  ratio mrdtrack / samtools mpileup: {large['mrdtrack count']['seconds'] / mpileup:.2f} wall, "
        f"{large['mrdtrack count']['cpu_seconds'] / large['samtools mpileup']['cpu_seconds']:.2f} CPU "
        "(target <= 1.5)"
    )
    threaded = large["mrdtrack threads=2"]
    print(
        f"  ratio mrdtrack threads=2 / samtools mpileup: {threaded['seconds'] / mpileup:.2f} wall, "
        f"{threaded['cpu_seconds'] / large['samtools mpileup']['cpu_seconds']:.2f} CPU (both cores)"
    )
    print(
        f"  ratio mrdtrack / samtools view -c: {large['mrdtrack count']['seconds'] / large['samtools view -c']['seconds']:.2f}"
    )
    job, flank_mpileup = large["job with flanks"], large["mpileup, flank regions"]
    wall, cpu = job["seconds"] / flank_mpileup["seconds"], job["cpu_seconds"] / flank_mpileup["cpu_seconds"]
    print(f"  ratio job with flanks / samtools mpileup over the same regions: {wall:.2f} wall, {cpu:.2f} CPU "
          "(target <= 1.0)")  # fmt: skip
    small_size, small = report["small"]
    for name in ("mrdtrack count", "job with flanks"):
        print(f"memory as the BAM grows {small_size:.1f} MB -> {size:.1f} MB: {name} peak RSS "
              f"{small[name]['rss_mib']:.1f} -> {large[name]['rss_mib']:.1f} MiB")  # fmt: skip


if __name__ == "__main__":
    main()
