"""`mrdtrack demo`: the trial-sized simulated cohort, its plan, its files and its config."""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pysam
import pytest
import yaml

from conftest import REPO, run_snakemake
from mrdtrack import simulation as sim
from mrdtrack.cli import main
from mrdtrack.simulation import bam_bulk, demo
from mrdtrack.simulation.demo_plan import TF_MAX


@pytest.fixture(scope="module")
def small_world(tmp_path_factory):
    """One simulated library with every kind of record (duplicates marked, artifacts, unmapped pairs)."""
    folder = tmp_path_factory.mktemp("fast_bam")
    rng = np.random.default_rng(7)
    reference = sim.make_reference(rng, {"chr1": 200_000, "chr2": 150_000})
    sim.write_reference(reference, folder / "genome.fa.gz")
    panel = sim.make_panel(reference, 40, rng, with_ccf=True)
    settings = sim.SimulationSettings(molecules_per_locus=60, family_size_mean=2.0, duplicate_marked=True)
    sample = sim.simulate_sample(
        reference, panel, panel.iloc[:15], 0.02, settings, np.random.default_rng(8), sample_id="S1"
    )
    return folder, reference, sample


def _records(path):
    with pysam.AlignmentFile(str(path)) as bam:
        header = str(bam.header)
        records = [
            (r.to_string(), r.bin, r.get_tags(with_value_type=True)) for r in bam.fetch(until_eof=True)
        ]
    return header, records


def test_fast_bam_writer_reads_back_identical_to_pysams(small_world, monkeypatch):
    folder, reference, sample = small_world
    # Small chunks, so that mates and BGZF blocks fall on both sides of a chunk boundary.
    monkeypatch.setattr(bam_bulk, "ENCODE_CHUNK", 1000)
    sim.write_bam(sample, folder / "pysam.bam", reference)
    sim.write_bam_fast(sample, folder / "fast.bam", reference)
    assert _records(folder / "fast.bam") == _records(folder / "pysam.bam")
    with (
        pysam.AlignmentFile(str(folder / "fast.bam")) as fast,
        pysam.AlignmentFile(str(folder / "pysam.bam")) as slow,
    ):
        for chrom, start, end in (("chr1", 1_000, 90_000), ("chr2", 50_000, 51_000)):
            assert [r.query_name for r in fast.fetch(chrom, start, end)] == [
                r.query_name for r in slow.fetch(chrom, start, end)
            ]


def test_fast_bam_blocks_hold_whole_records(small_world):
    """Like htslib's writer, a record never straddles two BGZF blocks (readers that seek by block rely on it)."""
    folder, reference, sample = small_world
    data, ends = bam_bulk.encode_bam_records(sample)
    ranges = bam_bulk._block_ranges(ends)
    assert ranges[0][0] == 0 and ranges[-1][1] == len(data)
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:], strict=False))
    assert all(last - first <= bam_bulk.BGZF_BLOCK_SIZE for first, last in ranges)
    assert set(r[1] for r in ranges) <= set(ends.tolist())


# ------------------------------------------------------------------------------------------------------------
# The plan (full size, no files)
# ------------------------------------------------------------------------------------------------------------
def test_trial_sized_cohorts_in_capture_pools(trial_plan):
    patients = trial_plan.patients
    assert len(patients) == 82
    assert sum(p.cohort == "stop" for p in patients) == 52
    assert sum(p.cohort == "continue" for p in patients) == 30
    pool_sizes = pd.Series([p.pool for p in patients]).value_counts()
    assert (
        pool_sizes.max() <= trial_plan.study.pool_size and pool_sizes.min() >= trial_plan.study.pool_size - 1
    )
    controls = [s for s in trial_plan.samples if s.sample_type == "control"]
    assert sorted(s.pool for s in controls) == sorted(pool_sizes.index)
    assert len({s.batch for s in trial_plan.samples}) == trial_plan.study.lab_batches


def test_baseline_draw_within_30_days_before_enrollment(trial_plan):
    baselines = {s.patient_id: s for s in trial_plan.samples if s.sample_id.endswith("_V00")}
    assert set(baselines) == {p.patient_id for p in trial_plan.patients}
    assert all(-30 <= s.day <= 0 for s in baselines.values())
    normals = [s for s in trial_plan.samples if s.sample_type == "normal"]
    assert normals and all(s.collected == baselines[s.patient_id].collected for s in normals)


def test_quarterly_draws_until_progression_for_up_to_three_years(trial_plan):
    study = trial_plan.study
    by_patient = {p.patient_id: p for p in trial_plan.patients}
    for sample in trial_plan.samples:
        if sample.sample_type != "plasma" or sample.sample_id.endswith(("_V00", "_PD")):
            continue
        patient = by_patient[sample.patient_id]
        visit = int(sample.sample_id.rsplit("_V", 1)[1])
        assert abs(sample.day - visit * study.visit_days) <= study.visit_jitter_days
        assert sample.day < patient.progression_day and sample.day <= patient.follow_up_day
        assert sample.day <= study.max_follow_up_days
        assert sample.collected <= study.data_cutoff
    after = [s for s in trial_plan.samples if s.sample_id.endswith("_PD")]
    assert after and all(
        0 < s.day - by_patient[s.patient_id].progression_day <= 60 and by_patient[s.patient_id].progressed
        for s in after
    )
    visits = pd.Series([s.patient_id for s in trial_plan.samples if s.sample_type == "plasma"]).value_counts()
    assert visits.max() >= 10, "early enrollees are followed quarterly for years"


def test_progression_depends_on_mrd_and_every_group_has_events(trial_plan):
    """Enough events for KM and Cox per cohort and baseline group (the report's MRD-PFS story)."""
    frame = pd.DataFrame(
        {"cohort": p.cohort, "positive": p.baseline_tf > 0, "event": p.progressed}
        for p in trial_plan.patients
    )
    events = frame.groupby("cohort")["event"].sum()
    assert 25 <= events["stop"] <= 40 and events["continue"] < events["stop"]
    rates = frame.groupby(["cohort", "positive"])["event"].agg(["sum", "mean"])
    assert (rates["sum"] >= 2).all(), rates
    for cohort in ("stop", "continue"):
        assert rates.loc[(cohort, True), "mean"] > rates.loc[(cohort, False), "mean"]


def test_tumor_dna_rises_before_progression(trial_plan):
    """Shedding patients reach TF_MAX at progression; converters are negative at baseline and positive
    months before progression (lead time); tumor fractions stay within 0..1e-2."""
    tfs = [s.tf for s in trial_plan.samples]
    assert min(tfs) == 0 and max(tfs) <= TF_MAX
    converters = [p for p in trial_plan.patients if p.mrd_course == "converts" and p.progressed]
    assert len(converters) >= 10
    for p in converters:
        assert p.tumor_fraction(-10) == 0
        assert TF_MAX / 2 < p.tumor_fraction(p.progression_day - 1) < TF_MAX
        assert p.progression_day - p.conversion_day >= 60 or p.conversion_day == 14
    baseline = [s.tf for s in trial_plan.samples if s.sample_id.endswith("_V00")]
    assert 0.1 < np.mean(np.array(baseline) > 0) < 0.35, "a minority is positive at baseline"


# ------------------------------------------------------------------------------------------------------------
# Files (a tiny, shallow cohort)
# ------------------------------------------------------------------------------------------------------------
TINY = sim.DemoStudy(n_patients=3, plasma_molecules=30.0, normal_molecules=30.0, pool_size=2)


def _contents(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_seed_writes_identical_files_whatever_the_workers(tmp_path):
    sim.write_demo(tmp_path / "one", sim.plan_demo(TINY, seed=5), workers=1)
    sim.write_demo(tmp_path / "two", sim.plan_demo(TINY, seed=5), workers=2)
    one, two = _contents(tmp_path / "one"), _contents(tmp_path / "two")
    assert one.keys() == two.keys() and any(name.endswith(".bam") for name in one)
    config_one, config_two = one.pop("config.yaml").decode(), two.pop("config.yaml").decode()
    assert config_one.replace(str(tmp_path / "one"), "DIR") == config_two.replace(
        str(tmp_path / "two"), "DIR"
    )
    assert one == two
    other = sim.plan_demo(TINY, seed=6)
    assert [s.collected for s in other.samples] != [s.collected for s in sim.plan_demo(TINY, seed=5).samples]


def test_the_command_writes_a_config_that_check_accepts(tmp_path, capsys):
    folder = tmp_path / "demo"
    assert main(["demo", str(folder), "--patients", "2", "--threads", "2"]) == 0
    out = capsys.readouterr().out
    assert f"--configfile {folder.as_posix()}/config.yaml" in out
    assert main(["check", "--config", str(folder / "config.yaml")]) == 0
    clinical = pd.read_csv(folder / "clinical.tsv", sep="\t")
    bundled = pd.read_csv(REPO / "test_data" / "clinical.tsv", sep="\t")
    assert list(clinical.columns) == list(bundled.columns)
    truth = pd.read_csv(folder / "truth" / "samples.tsv", sep="\t")
    sheets = pd.concat(pd.read_csv(s, sep="\t") for s in sorted(folder.glob("batch*/samples.tsv")))
    assert sorted(truth["sample_id"]) == sorted(sheets["sample_id"])


def test_a_full_folder_is_refused_and_only_a_demo_is_overwritten(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(demo, "DemoStudy", lambda n_patients: replace(TINY, n_patients=n_patients))
    user_data = tmp_path / "mine"
    user_data.mkdir()
    (user_data / "notes.txt").write_text("precious")
    assert main(["demo", str(user_data), "--patients", "2"]) == 1
    assert "is not empty" in capsys.readouterr().err
    assert main(["demo", str(user_data), "--patients", "2", "--overwrite"]) == 1
    assert "does not hold an mrdtrack demo" in capsys.readouterr().err
    assert (user_data / "notes.txt").read_text() == "precious"
    folder = tmp_path / "demo"
    sim.write_demo(folder, sim.plan_demo(TINY))
    (folder / "stale.txt").write_text("left over")
    assert main(["demo", str(folder), "--patients", "2", "--overwrite"]) == 0
    assert not (folder / "stale.txt").exists()


def _keys(mapping: dict, prefix: str = "") -> set[str]:
    keys = set()
    for key, value in mapping.items():
        keys.add(prefix + key)
        if isinstance(value, dict):
            keys |= _keys(value, f"{prefix}{key}.")
    return keys


def test_demo_config_sets_every_key_of_the_default_config(trial_plan):
    """snakemake merges --configfile into the Snakefile's config/config.yaml: a key the demo left out would
    silently come from the bundled test data's config."""
    default = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    assert _keys(default) <= _keys(demo.demo_config("demo", trial_plan))


def test_shared_cohort_helpers_reproduce_the_bundled_generator(monkeypatch):
    """test_data/generate.py's own pieces give what the shared helpers in mrdtrack.simulation give, so it can
    use them and still write byte-identical files."""
    spec = importlib.util.spec_from_file_location("generate", REPO / "test_data" / "generate.py")
    generate = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "generate", generate)  # its dataclasses look their module up
    spec.loader.exec_module(generate)
    reference = sim.make_reference(np.random.default_rng(generate.SEED), generate.CONTIGS)
    own = generate.make_panels(reference, np.random.default_rng(1))
    sizes = {p.patient_id: p.n_loci for p in generate.PATIENTS}
    ccf = {p.patient_id: p.with_ccf for p in generate.PATIENTS}
    shared = sim.make_panels(reference, sizes, np.random.default_rng(1), with_ccf=ccf)
    assert own.keys() == shared.keys() and all(own[k].equals(shared[k]) for k in own)
    chip, noisy = generate.special_loci(reference, own)
    assert chip == sim.best_captured_locus(reference, own["P01"], ("CT", "GA"))
    assert noisy == sim.best_captured_locus(reference, own["P06"])
    expected = generate.locus_table(own, chip, noisy)
    assert expected.equals(
        sim.locus_truth_table(own, {chip: generate.CHIP_VAF}, {noisy: generate.NOISE_RATE})
    )
    assert generate._plasma_yield(np.random.default_rng(3)) == sim.plasma_yield(np.random.default_rng(3))


# ------------------------------------------------------------------------------------------------------------
# The workflow on a tiny demo: zero-molecule loci (outside a sample's capture pool) are no data
# ------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("demo_run")
    # Two pools of two, followed for a year or so: a few draws each, so that the run takes minutes.
    study = replace(
        TINY, n_patients=4, plasma_molecules=60.0, accrual_days=120, data_cutoff=date(2024, 9, 30)
    )
    plan = sim.plan_demo(study)
    sim.write_demo(workdir / "demo", plan)
    # As the README says: from the folder the demo was written in, with --configfile last.
    result = run_snakemake(workdir, "--configfile", "demo/config.yaml")
    assert result.returncode == 0, result.stderr[-5000:]
    return workdir, plan


def _pools(workdir: Path) -> tuple[pd.DataFrame, dict[str, int]]:
    truth = pd.read_csv(workdir / "demo/truth/samples.tsv", sep="\t", keep_default_na=False)
    loci = pd.read_csv(workdir / "demo/truth/loci.tsv", sep="\t")
    patients = pd.read_csv(workdir / "demo/truth/patients.tsv", sep="\t")
    pool_of = dict(zip(patients["patient_id"], patients["pool"], strict=True))
    return loci.assign(pool=loci["patient_id"].map(pool_of)), dict(
        zip(truth["sample_id"], truth["pool"], strict=True)
    )


@pytest.mark.slow
def test_demo_runs_end_to_end(tiny_run):
    workdir, plan = tiny_run
    calls = pd.read_csv(workdir / "results/mrd/calls.tsv", sep="\t")
    plasma = [s.sample_id for s in plan.samples if s.sample_type == "plasma"]
    assert sorted(calls["sample_id"]) == sorted(plasma)
    assert (workdir / "results/report/mrd_report.html").stat().st_size > 0
    summary = yaml.safe_load((workdir / "results/survival/summary.json").read_text())
    assert summary["n_patients"] == 4


@pytest.mark.slow
def test_loci_outside_a_samples_pool_have_no_molecules_and_count_as_no_data(tiny_run):
    workdir, _ = tiny_run
    loci, pool_of_sample = _pools(workdir)
    key = ["chrom", "pos", "ref", "alt"]
    for sample_id, pool in pool_of_sample.items():
        counts = pd.read_csv(workdir / f"results/counts/{sample_id}.tsv", sep="\t").merge(
            loci[key + ["pool"]]
        )
        outside = counts[counts["pool"] != pool]
        assert len(outside) and (outside[["ref_molecules", "alt_molecules"]].to_numpy() == 0).all()
    # Background: a locus's samples are those of its pool that hold no tumor signal for it, not every sample.
    rates = pd.read_csv(workdir / "results/background/locus_rates.tsv", sep="\t").merge(
        loci[key + ["pool", "patient_id"]]
    )
    truth = pd.read_csv(workdir / "demo/truth/samples.tsv", sep="\t", keep_default_na=False)
    for row in rates.itertuples():
        in_pool = truth[(truth["pool"] == row.pool) & (truth["patient_id"] != row.patient_id)]
        assert row.n_samples == len(in_pool)
    # A sample is scored only against the panels its capture covers: those of its own pool, never another's.
    nulls = pd.read_csv(workdir / "results/mrd/null_scores.tsv", sep="\t")
    pool_of_patient = dict(zip(loci["patient_id"], loci["pool"], strict=False))
    elsewhere = nulls["sample_id"].map(pool_of_sample) != nulls["panel_patient_id"].map(pool_of_patient)
    assert len(nulls) and not elsewhere.any()
