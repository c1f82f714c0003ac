"""The matched normal's exclusions: a locus whose ALT shows in the patient's own white-blood-cell DNA (CHIP,
germline) is not tumor signal, and the few molecules a normal holds are weighed as evidence, not as a point VAF."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mrdtrack.calling import BackgroundSettings
from mrdtrack.calling.exclusions import matched_normal_exclusions, vaf_upper_bound

# (ALT molecules, informative molecules, background rate) of the normal at each of the patient's loci.
NORMAL = {
    "chip_read_below_its_vaf": (9, 5582, 1e-5),  # CHIP at 0.3% that this normal reads at 0.16%
    "chip_in_a_shallow_normal": (2, 800, 1e-5),
    "clear_chip": (15, 4440, 1e-5),
    "deep_normal_tiny_clone": (6, 100_000, 1e-5),  # real, but far below what reaches a plasma count
    "noise": (2, 5000, 3e-4),  # two molecules where 1.5 are expected
    "germline": (2600, 5000, 1e-5),
}


def normal_counts() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(counts, samples, locus_rates) of one patient's normal at its panel loci, as NORMAL lays them out."""
    names = list(NORMAL)
    alt = np.array([NORMAL[k][0] for k in names])
    total = np.array([NORMAL[k][1] for k in names])
    keys = pd.DataFrame({"chrom": "chr1", "pos": 1000 + 100 * np.arange(len(names)), "ref": "C", "alt": "T"})
    counts = keys.assign(sample_id="P1_N", panel_patients="P1", ref_molecules=total - alt, alt_molecules=alt)
    samples = pd.DataFrame({"sample_id": ["P1_N"], "patient_id": ["P1"], "sample_type": ["normal"]})
    rates = keys.assign(rate=[NORMAL[k][2] for k in names])
    return counts, samples, rates


def excluded_reasons(settings: BackgroundSettings | None = None) -> dict[str, str]:
    counts, samples, rates = normal_counts()
    found = matched_normal_exclusions(counts, samples, rates, settings or BackgroundSettings())
    assert set(found["patient_id"]) <= {"P1"}
    by_pos = dict(zip(found["pos"], found["reason"], strict=True))
    return {name: by_pos.get(pos, "") for name, pos in zip(NORMAL, counts["pos"], strict=True)}


def test_a_chip_locus_the_normal_reads_below_the_vaf_floor_is_still_excluded():
    reasons = excluded_reasons()
    # 9 ALT in 5,582 (0.16%) against an expected 0.06: a blood clone whose VAF could well be 0.3%.
    assert reasons["chip_read_below_its_vaf"] == "chip_in_matched_normal"
    assert reasons["clear_chip"] == "chip_in_matched_normal"


def test_a_chip_locus_at_0_3_percent_that_a_shallow_normal_shows_with_2_alt_in_800_is_excluded():
    assert excluded_reasons()["chip_in_a_shallow_normal"] == "chip_in_matched_normal"


def test_a_deep_normals_tiny_clone_and_ordinary_noise_do_not_cost_a_tumor_locus():
    reasons = excluded_reasons()
    assert reasons["deep_normal_tiny_clone"] == ""  # 0.006%: its 95% bound is 0.012%, far below 0.2%
    assert reasons["noise"] == ""
    assert reasons["germline"] == "germline_in_matched_normal"


def test_the_vaf_floor_can_still_be_raised_to_keep_low_level_clones():
    reasons = excluded_reasons(BackgroundSettings(normal_min_vaf=0.006))
    assert reasons["chip_read_below_its_vaf"] == ""  # 9 in 5,582: at most 0.28%
    assert reasons["chip_in_a_shallow_normal"] == "chip_in_matched_normal"  # 2 in 800 could be 0.78%


def test_a_normal_misses_chip_at_0_3_percent_rarely():
    # CHIP at 0.3% in normals of 2,000-8,000 molecules over a background of 1e-5.
    rng = np.random.default_rng(3)
    total = rng.integers(2000, 8000, 4000)
    alt = rng.binomial(total, 0.003 + 1e-5)
    pos = np.arange(len(total))
    counts = pd.DataFrame({
        "sample_id": "P1_N", "chrom": "chr1", "pos": pos, "ref": "C", "alt": "T", "panel_patients": "P1",
        "ref_molecules": total - alt, "alt_molecules": alt,
    })  # fmt: skip
    samples = pd.DataFrame({"sample_id": ["P1_N"], "patient_id": ["P1"], "sample_type": ["normal"]})
    rates = counts[["chrom", "pos", "ref", "alt"]].assign(rate=1e-5)
    found = matched_normal_exclusions(counts, samples, rates, BackgroundSettings())
    missed = 1 - len(found) / len(total)
    assert missed < 0.01
    point = np.mean(alt / total < 0.002)  # held against its point VAF, about one in ten is missed
    assert point > 0.05


@pytest.mark.parametrize(("alt", "total"), [(0, 100), (2, 800), (9, 5582), (40, 60)])
def test_the_vaf_bound_is_the_one_sided_clopper_pearson_bound(alt, total):
    exact = stats.beta.ppf(0.95, alt + 1, total - alt)
    assert vaf_upper_bound(np.array([alt]), np.array([total]), 0.95)[0] == pytest.approx(exact, rel=1e-9)
