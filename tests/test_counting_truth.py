"""On the bundled data, molecule counts equal the simulator's truth exactly (dup-marked, unmarked and CRAM)."""

from __future__ import annotations

import pandas as pd
import pytest

from conftest import TEST_DATA
from mrdtrack.counting import CountSettings, count_sample
from mrdtrack.inputs import PanelSettings, build_panel, load_samples, load_table

REFERENCE = str(TEST_DATA / "reference" / "genome.fa.gz")
COUNT_COLUMNS = ["ref_molecules", "alt_molecules", "other_molecules", "discordant_molecules"]


@pytest.fixture(scope="module")
def bundled() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    samples, _ = load_samples([str(p) for p in sorted(TEST_DATA.glob("batch*/samples.tsv"))])
    patients, _ = load_table(str(TEST_DATA / "patients.tsv"), "patients")
    panel = build_panel(patients, REFERENCE, PanelSettings())
    truth = pd.read_csv(TEST_DATA / "truth" / "locus_counts.tsv", sep="\t")
    return samples.set_index("sample_id"), panel, truth


def _truth_samples() -> list[str]:
    return pd.read_csv(TEST_DATA / "truth" / "samples.tsv", sep="\t")["sample_id"].tolist()


@pytest.mark.parametrize("sample_id", _truth_samples())
def test_molecule_counts_equal_the_simulated_truth(bundled, sample_id):
    samples, panel, truth = bundled
    counts = count_sample(sample_id, samples.loc[sample_id, "bam"], REFERENCE, panel, CountSettings()).counts
    expected = truth[truth.sample_id == sample_id].set_index(["chrom", "pos", "ref", "alt"])[COUNT_COLUMNS]
    observed = counts.set_index(["chrom", "pos", "ref", "alt"])[COUNT_COLUMNS]
    pd.testing.assert_frame_equal(observed.sort_index(), expected.sort_index(), check_dtype=False)


def test_bundled_files_cover_marked_unmarked_and_cram():
    truth = pd.read_csv(TEST_DATA / "truth" / "samples.tsv", sep="\t")
    assert set(truth["duplicate_marked"]) == {0, 1}
    assert "cram" in set(truth["file_format"])
