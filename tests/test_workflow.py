"""End to end: the default config runs the bundled data and every output contract holds."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from conftest import TEST_DATA, prepare_workdir, run_snakemake
from mrdtrack.calling import CallSettings, call_cohort
from mrdtrack.tables import columns_of, read_table, read_tables, write_tsv

CALLS_CONTRACT = [
    "sample_id", "patient_id", "collection_date", "mrd_status", "tumor_fraction", "tf_ci_low", "tf_ci_high",
    "p_value", "lod95", "n_loci_used", "mutant_molecules", "total_molecules",
]  # fmt: skip
SUMMARY_KEYS = {"n_patients", "n_events", "logrank", "cox", "endpoints", "design", "notes"}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(bundled_run):
    return bundled_run


def test_every_sample_gets_a_count_table_with_every_cohort_locus(run):
    samples = pd.concat(pd.read_csv(s, sep="\t") for s in sorted(TEST_DATA.glob("batch*/samples.tsv")))
    panel = pd.read_csv(run / "results/panel/loci.tsv", sep="\t")
    n_loci = len(panel.drop_duplicates(["chrom", "pos", "ref", "alt"]))
    for sample_id in samples["sample_id"]:
        counts = pd.read_csv(run / f"results/counts/{sample_id}.tsv", sep="\t")
        assert list(counts.columns) == columns_of("counts")  # the contract, docs/tables.md
        assert len(counts) == n_loci


def test_calls_hold_one_row_per_plasma_sample_with_the_contract_columns(run):
    samples = pd.concat(pd.read_csv(s, sep="\t") for s in sorted(TEST_DATA.glob("batch*/samples.tsv")))
    calls = pd.read_csv(run / "results/mrd/calls.tsv", sep="\t")
    assert set(CALLS_CONTRACT) <= set(calls.columns)
    assert sorted(calls["sample_id"]) == sorted(samples.loc[samples.sample_type == "plasma", "sample_id"])
    assert set(calls["mrd_status"]) <= {"positive", "negative", "indeterminate"}
    assert {"positive", "negative"} <= set(calls["mrd_status"]), "the demo data should show both outcomes"
    assert (calls["tf_ci_low"] <= calls["tumor_fraction"]).all()
    assert (calls["tumor_fraction"] <= calls["tf_ci_high"]).all()


def test_survival_summary_has_its_stable_keys(run):
    summary = json.loads((run / "results/survival/summary.json").read_text())
    assert set(summary) >= SUMMARY_KEYS


def test_report_is_one_self_contained_html(run):
    html = (run / "results/report/mrd_report.html").read_text()
    assert html.count("plotly.js v") >= 1
    assert 'src="http' not in html and "src='http" not in html


def test_a_second_run_has_nothing_to_do(run):
    result = run_snakemake(run, "--dry-run")
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


def test_one_job_per_sample_gives_the_calls_of_one_process(run, tmp_path):
    results = run / "results"
    samples = read_table("samples", results / "sheets/samples.tsv")
    counts = [results / f"counts/{s}" for s in samples["sample_id"]]
    in_memory = call_cohort(
        read_tables("counts", [f"{c}.tsv" for c in counts]),
        samples,
        read_table("panel_loci", results / "panel/loci.tsv"),
        read_table("locus_rates", results / "background/locus_rates.tsv"),
        read_table("excluded", results / "background/excluded_loci.tsv"),
        CallSettings.from_config({"false_positive_rate": 0.01}),
        read_tables("fraglen", [f"{c}.fraglen.tsv" for c in counts]),
        fragments=read_tables("fragments", [f"{c}.fragments.tsv" for c in counts]),
        flanks=read_tables("flanks", [f"{c}.flanks.tsv" for c in counts]),
        context_rates=read_table("context_rates", results / "background/context_rates.tsv"),
    )
    for table, name in (
        (in_memory.calls, "calls"),
        (in_memory.loci, "loci"),
        (in_memory.null_scores, "null_scores"),
    ):
        write_tsv(table, tmp_path / f"{name}.tsv")
        assert (tmp_path / f"{name}.tsv").read_bytes() == (results / f"mrd/{name}.tsv").read_bytes(), name


def test_every_results_table_has_exactly_its_contract_columns(run):
    from mrdtrack.tables import CONTRACTS, OPTIONAL_CLINICAL_COLUMNS

    sheet = (run / "results/sheets/clinical.tsv").read_text().split("\n", 1)[0].split("\t")
    for contract in CONTRACTS.values():
        pattern = contract.path.replace("{sample}", "*")
        dots = pattern.rsplit("/", 1)[1].count(".")  # {sample}.tsv, not {sample}.fraglen.tsv
        paths = [p for p in sorted(run.glob(pattern)) if p.name.count(".") == dots]
        assert paths, f"{contract.path}: no such output"
        for path in paths[:3]:
            header = path.read_text().split("\n", 1)[0].split("\t")
            if contract.covariates:  # the clinical sheet's covariates (and its optional columns) travel along
                assert set(header) - set(contract.columns) <= set(sheet), path
                assert set(contract.columns) - set(header) <= set(OPTIONAL_CLINICAL_COLUMNS), path
            else:
                assert header == list(contract.columns), path


def test_samples_per_job_groups_the_samples_into_fewer_jobs(tmp_path):
    """The jobs of `samples_per_job: 4`; that their results are byte for byte those of one job per sample is
    tested by tests/test_faults.py, whose killed run groups its samples so."""
    workdir = prepare_workdir(tmp_path)
    planned = run_snakemake(workdir, "results/mrd/calls.tsv", "--config", "samples_per_job=4", "--dry-run")
    assert planned.returncode == 0, planned.stderr[-3000:]
    jobs = planned.stdout + planned.stderr
    samples = pd.concat(pd.read_csv(s, sep="\t") for s in sorted(TEST_DATA.glob("batch*/samples.tsv")))
    n_plasma = (samples["sample_type"] == "plasma").sum()
    for rule, n_samples in (("count_molecules", len(samples)), ("call_sample", n_plasma)):
        chunks = -(-n_samples // 4)
        assert f"{rule}_{chunks:04d}" in jobs and f"{rule}_{chunks + 1:04d}" not in jobs, jobs[-2000:]
    assert "count_molecules " not in jobs  # no one-sample rule beside the chunks
