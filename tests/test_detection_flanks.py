"""The detection benchmark's flank tables: what counting would write for a simulated sample, with the noise of
the sample's own panel loci, so that the benchmark's own nulls and own background factors are honest."""

import sys
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mrdtrack.flank_layout import compact_flanks, flank_rows
from mrdtrack.tables import columns_of, read_table, write_tsv

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
import detection  # noqa: E402

# Coarse classes with one expected rate each in the benchmark's error model.
CLASSES = {
    "transition": lambda sub, ctx: np.isin(sub, ["C>T", "T>C"]) & ~((sub == "C>T") & (ctx.str[2] == "G")),
    "C>T at CpG": lambda sub, ctx: (sub == "C>T") & (ctx.str[2] == "G"),
    "8-oxoG C>A": lambda sub, ctx: sub == "C>A",
    "other transversion": lambda sub, ctx: np.isin(sub, ["C>G", "T>A", "T>G"]),
}


@cache
def simulated(scenario_name: str, n_loci: int = 200) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(panel loci with their true rates, one tumor-free plasma sample's flank table at them) with the sample
    factors at 1, so that both sides share one expected rate per class."""
    scenario = detection.SCENARIOS[scenario_name]
    rng = np.random.default_rng(5)
    panel = detection.true_error_rates(rng, detection.draw_panels(rng, 1, n_loci), scenario)
    sites = detection.flank_sites(np.random.default_rng(6), panel, scenario)
    spec = detection.SampleSpec("S1", "P001", "plasma", 0.0, scenario.plasma_molecules)
    flanks = detection.draw_flanks(
        np.random.default_rng(7), sites, spec, detection.SampleFactors(1.0, 1.0, 1.0)
    )
    return panel, flanks


def simulated_rows(scenario_name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`simulated`, its flank table as rows per position and ALT base (`flank_rows`)."""
    panel, flanks = simulated(scenario_name)
    return panel, flank_rows(flanks)


def test_a_simulated_flank_table_is_what_counting_writes(tmp_path):
    _, table = simulated("clinical", n_loci=20)
    assert list(table.columns) == columns_of("flanks")
    # 2 x 23 positions per locus (window 25, gap 2), each covered: one row per position ...
    assert len(table) == 20 * 46
    path = tmp_path / "S1.flanks.tsv"
    write_tsv(table, path)
    pd.testing.assert_frame_equal(read_table("flanks", path), table, check_dtype=False)
    assert all(
        table[c].dtype == np.int64 for c in columns_of("flanks") if c.endswith(("_molecules", "_f1r2"))
    )
    # ... and, read per ALT base, the rows of a panel locus's counts, each position's three consistent.
    flanks = flank_rows(table)
    pd.testing.assert_frame_equal(compact_flanks(flanks), table)
    assert len(flanks) == 20 * 46 * 3
    assert (flanks["ref"] != flanks["alt"]).all()
    assert (flanks["context"].str[1] == flanks["ref"]).all()
    assert (flanks.groupby(["chrom", "pos"])["ref_molecules"].nunique() == 1).all()
    molecules = flanks.groupby(["chrom", "pos"])["alt_molecules"].transform("sum")
    assert (flanks["other_molecules"] == molecules - flanks["alt_molecules"]).all()
    assert (flanks["alt_f1r2"] + flanks["alt_f2r1"] == flanks["alt_molecules"]).all()
    assert (flanks["ref_f1r2"] + flanks["ref_f2r1"] == flanks["ref_molecules"]).all()
    lengths = flanks["alt_lengths"].map(lambda text: len(text.split(",")) if text else 0)
    assert (lengths == flanks["alt_molecules"]).all()


@pytest.mark.parametrize("scenario_name", ["clinical", "oxog"])
def test_flank_alt_rates_per_class_are_the_panel_loci_rates(scenario_name):
    panel, flanks = simulated_rows(scenario_name)
    n = flanks["ref_molecules"] + flanks["alt_molecules"]
    pyr = [
        detection.pyrimidine_class(r, a, c)[:2] for r, a, c in flanks[["ref", "alt", "context"]].to_numpy()
    ]
    flank_sub = pd.Series([p[0] for p in pyr])
    flank_ctx = pd.Series([p[1] for p in pyr])
    for name, member in CLASSES.items():
        rows = np.asarray(member(flank_sub, flank_ctx))
        loci = np.asarray(member(panel["substitution"], panel["pyr_context"]))
        observed = flanks["alt_molecules"][rows].sum() / n[rows].sum()
        expected = panel["true_rate"][loci].mean()
        # Sampling error: the spread of per-position rates (factors, noisy artifacts) over both sets of
        # positions, plus the molecules' binomial noise.
        spread = panel["true_rate"][loci].std()
        positions = rows.sum() / 3
        se = np.sqrt(spread**2 / positions + spread**2 / loci.sum() + expected / n[rows].sum())
        assert abs(observed - expected) < 4 * se, (name, observed, expected, se)


def test_8_oxog_errors_at_flanks_keep_their_read_orientation():
    _, flanks = simulated_rows("oxog")
    g_to_t = flanks[(flanks["ref"] == "G") & (flanks["alt"] == "T")]
    c_to_a = flanks[(flanks["ref"] == "C") & (flanks["alt"] == "A")]
    assert g_to_t["alt_f1r2"].sum() / g_to_t["alt_molecules"].sum() > 0.85
    assert c_to_a["alt_f2r1"].sum() / c_to_a["alt_molecules"].sum() > 0.85
