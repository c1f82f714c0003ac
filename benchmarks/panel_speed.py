"""How long does reading the panel VCFs of genome-wide signatures take (the workflow's `panel` rule)?

Writes a random reference (20 contigs) and `--patients` bgzipped, tabix-indexed panel VCFs of `--records` SNVs
each (a genome-wide signature: tens of thousands of somatic SNVs, with a VAF, a depth and a gene per record, as
a somatic caller's filtered output has them), then times `mrdtrack.inputs.build_panel` on one VCF and on all of
them, as the `panel` rule runs it. `--profile` prints where one VCF's time goes.

    python benchmarks/panel_speed.py [--records 30000] [--patients 20] [--profile] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pysam

from mrdtrack.inputs import PanelSettings, build_panel

CONTIGS = 20
CONTIG_LENGTH = 5_000_000
HEADER = """##fileformat=VCFv4.2
##INFO=<ID=GENE,Number=1,Type=String,Description="Gene">
##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">
##FORMAT=<ID=AF,Number=A,Type=Float,Description="Allele fraction">
##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Depth">
##tumor_sample=TUMOR
"""


def write_reference(folder: Path, rng: np.random.Generator) -> tuple[Path, dict[str, str]]:
    sequences = {
        f"chr{i + 1}": rng.choice(np.frombuffer(b"ACGT", dtype="S1"), CONTIG_LENGTH).tobytes().decode()
        for i in range(CONTIGS)
    }
    path = folder / "genome.fa"
    with open(path, "w") as fasta:
        for name, sequence in sequences.items():
            fasta.write(f">{name}\n{sequence}\n")
    pysam.faidx(str(path))
    return path, sequences


def write_vcf(path: Path, sequences: dict[str, str], records: int, rng: np.random.Generator) -> Path:
    """A bgzipped, indexed VCF of `records` SNVs at distinct random positions."""
    names = list(sequences)
    contig = np.sort(rng.integers(0, len(names), records))
    lines = [HEADER, *(f"##contig=<ID={n},length={CONTIG_LENGTH}>\n" for n in names)]
    lines.append("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tTUMOR\tNORMAL\n")
    for index, name in enumerate(names):
        count = int((contig == index).sum())
        positions = np.sort(rng.choice(np.arange(100, CONTIG_LENGTH - 100), count, replace=False))
        for pos in positions:
            ref = sequences[name][pos - 1]
            alt = "ACGT"[("ACGT".index(ref) + int(rng.integers(1, 4))) % 4]
            af, depth = rng.uniform(0.05, 0.5), int(rng.integers(30, 120))
            lines.append(f"{name}\t{pos}\t.\t{ref}\t{alt}\t.\tPASS\tGENE=G{pos % 977}\tGT:AF:DP\t"
                         f"0/1:{af:.3f}:{depth}\t0/0:0:{depth}\n")  # fmt: skip
    plain = path.with_suffix("")
    plain.write_text("".join(lines))
    pysam.tabix_compress(str(plain), str(path), force=True)
    pysam.tabix_index(str(path), preset="vcf", force=True)
    plain.unlink()
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=30_000, help="SNVs per panel VCF")
    parser.add_argument("--patients", type=int, default=20)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    folder = args.workdir or Path(tempfile.mkdtemp(prefix="mrdtrack-panel-speed-"))
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(5)
    reference, sequences = write_reference(folder, rng)
    vcfs = [
        write_vcf(folder / f"P{p:02d}.vcf.gz", sequences, args.records, rng) for p in range(args.patients)
    ]
    patients = pd.DataFrame(
        {"patient_id": [f"P{p:02d}" for p in range(args.patients)], "panel_vcf": map(str, vcfs)}
    )
    settings = PanelSettings()
    began_cpu, began = time.process_time(), time.perf_counter()
    one = build_panel(patients.iloc[:1], str(reference), settings)
    print(f"one VCF of {args.records:,} records: {len(one):,} panel rows in {time.perf_counter() - began:.1f} s "
          f"wall, {time.process_time() - began_cpu:.1f} s CPU")  # fmt: skip
    began_cpu, began = time.process_time(), time.perf_counter()
    every = build_panel(patients, str(reference), settings)
    print(f"{args.patients} VCFs: {len(every):,} panel rows in {time.perf_counter() - began:.1f} s wall, "
          f"{time.process_time() - began_cpu:.1f} s CPU")  # fmt: skip
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        build_panel(patients.iloc[:1], str(reference), settings)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
    return 0


if __name__ == "__main__":
    sys.exit(main())
