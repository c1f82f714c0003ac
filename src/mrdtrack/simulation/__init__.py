"""Simulated data with a known truth: cell-free DNA reads for tests, benchmarks and test_data, and the
trial-sized demo cohort (`mrdtrack demo DIR`).

The simulator, one module per step:
- `reference`: the genome (random contigs with a CpG deficit), its FASTA and cached derived arrays;
- `panels`: tumor variant panels, their weights, capture efficiency and VCFs;
- `records`: the settings, a sample's SAM records as arrays, and the sample with its truth;
- `molecules`, `reads`, `simulate`: one sample, layer by layer (`simulate_sample`);
- `handmade`: samples made of hand-written records (unit tests of counters);
- `bam` (through pysam) and `bam_bulk` (numpy, faster): writing a sample's BAM;
- `oracle`: the counts a counter following the project's rules must report (`expected_counts`);
- `demo_plan` and `demo`: the demo study, planned from a seed, then written.
"""

from mrdtrack.simulation.bam import write_bam
from mrdtrack.simulation.bam_bulk import write_bam_fast
from mrdtrack.simulation.demo import run_demo_command, write_demo
from mrdtrack.simulation.demo_plan import DemoPlan, DemoStudy, plan_demo
from mrdtrack.simulation.handmade import ReadSpec, sample_from_reads
from mrdtrack.simulation.molecules import fragment_length_pmf
from mrdtrack.simulation.oracle import MOLECULE_COUNT_COLUMNS, expected_counts, oracle_dedup_mode
from mrdtrack.simulation.panels import (
    DEFAULT_SPECTRUM,
    best_captured_locus,
    capture_efficiency,
    locus_key,
    locus_truth_table,
    make_panel,
    make_panels,
    panel_weights,
    plasma_yield,
    spread_weights,
    write_panel_vcf,
)
from mrdtrack.simulation.records import LocusKey, SimulatedSample, SimulationSettings
from mrdtrack.simulation.reference import Reference, make_reference, read_reference, write_reference
from mrdtrack.simulation.simulate import simulate_sample, warm_up

__all__ = [
    "DEFAULT_SPECTRUM",
    "DemoPlan",
    "DemoStudy",
    "LocusKey",
    "MOLECULE_COUNT_COLUMNS",
    "ReadSpec",
    "Reference",
    "SimulatedSample",
    "SimulationSettings",
    "best_captured_locus",
    "capture_efficiency",
    "expected_counts",
    "fragment_length_pmf",
    "locus_key",
    "locus_truth_table",
    "make_panel",
    "make_panels",
    "make_reference",
    "oracle_dedup_mode",
    "panel_weights",
    "plan_demo",
    "plasma_yield",
    "read_reference",
    "run_demo_command",
    "sample_from_reads",
    "simulate_sample",
    "spread_weights",
    "warm_up",
    "write_bam",
    "write_bam_fast",
    "write_demo",
    "write_panel_vcf",
    "write_reference",
]
