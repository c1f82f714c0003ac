"""Loci excluded from calls beyond the cohort's noisy ones: those whose ALT shows in the patient's own matched
normal (CHIP or germline, for that patient), and with `exclude_chip_genes` the panel's clonal-hematopoiesis
suspects (for everyone)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import special

from mrdtrack.calling.inference import binomial_tail
from mrdtrack.calling.settings import BackgroundSettings
from mrdtrack.logs import UserFacingError
from mrdtrack.tables import columns_of
from mrdtrack.vocabulary import LOCUS_KEY

EXCLUDED_COLUMNS = columns_of("excluded")  # mrdtrack.tables.CONTRACTS


# One-sided level of the upper bound on a normal's VAF that `normal_min_vaf` is held against.
NORMAL_VAF_LEVEL = 0.95


def matched_normal_exclusions(
    counts: pd.DataFrame, samples: pd.DataFrame, locus_rates: pd.DataFrame, settings: BackgroundSettings
) -> pd.DataFrame:
    """Loci of a patient's panel whose ALT shows in the patient's own normal beyond background.

    A locus is excluded for the patient when its normal holds at least `normal_min_alt` ALT molecules, their
    binomial upper tail against the locus background is below `normal_max_p` (something in the blood other
    than noise), and the normal's VAF could be `normal_min_vaf` or more: the upper bound of its
    `NORMAL_VAF_LEVEL` one-sided interval (`vaf_upper_bound`) reaches it. The VAF a normal shows is a few
    molecules' worth: CHIP at 0.3% in 4,000-6,000 molecules shows 12-18 ALT molecules, and one normal in
    eleven reads it below 0.2% (9 in 5,582); held against the point VAF, such a locus stayed in the calls and
    put ~9 non-tumor ALT molecules into every plasma sample of the patient. The bound keeps what the floor is
    for: a deep normal that shows a handful of molecules at a VAF far below what could reach a plasma
    sample's count does not cost a tumor locus.
    """
    normals = samples[samples["sample_type"] == "normal"].set_index("sample_id")["patient_id"]
    rows = counts[counts["sample_id"].isin(normals.index)].copy()
    rows["patient_id"] = rows["sample_id"].map(normals)
    own = [p in panel.split(",") for p, panel in zip(rows["patient_id"], rows["panel_patients"], strict=True)]
    rows = rows[np.asarray(own, dtype=bool)]
    rates = locus_rates.set_index(LOCUS_KEY)["rate"]
    background = rates.reindex(pd.MultiIndex.from_frame(rows[LOCUS_KEY])).to_numpy()
    alt, total = rows["alt_molecules"].to_numpy(), (rows["ref_molecules"] + rows["alt_molecules"]).to_numpy()
    vaf = np.divide(alt, total, out=np.zeros(len(rows)), where=total > 0)
    p_tail = binomial_tail(alt, total, background)
    hit = (
        (alt >= settings.normal_min_alt)
        & (vaf_upper_bound(alt, total, NORMAL_VAF_LEVEL) >= settings.normal_min_vaf)
        & (p_tail < settings.normal_max_p)
    )
    found = rows.loc[hit, LOCUS_KEY + ["patient_id"]].copy()
    found["reason"] = np.where(
        vaf[hit] >= settings.germline_min_vaf, "germline_in_matched_normal", "chip_in_matched_normal"
    )
    # Two normals of one patient may both show it: keep one row, the germline reading first.
    found = found.sort_values("reason", kind="stable").drop_duplicates(LOCUS_KEY + ["patient_id"])
    return found[EXCLUDED_COLUMNS]


def vaf_upper_bound(alt: np.ndarray, total: np.ndarray, level: float) -> np.ndarray:
    """The one-sided Clopper-Pearson upper bound at `level` on the VAF of `alt` ALT in `total` molecules (1
    without molecules): the largest VAF under which this few ALT molecules are still at least 1 - `level`
    likely."""
    alt, total = np.asarray(alt, dtype=float), np.asarray(total, dtype=float)
    bound = special.betaincinv(alt + 1, np.maximum(total - alt, 1e-12), level)
    return np.where((total > 0) & (alt < total), bound, 1.0)


def chip_gene_exclusions(
    panel: pd.DataFrame | None, locus_rates: pd.DataFrame, settings: BackgroundSettings
) -> pd.DataFrame:
    """With `exclude_chip_genes`: the panel's `chip_suspect` loci, excluded for everyone (reason `chip_gene`).

    Their molecules stay in the rates: in other patients' samples such a locus is background like any other. A
    locus already excluded for everyone keeps its first reason.
    """
    if not settings.exclude_chip_genes:
        return pd.DataFrame(columns=EXCLUDED_COLUMNS)
    if panel is None or "chip_suspect" not in panel.columns:
        raise UserFacingError(
            "background.exclude_chip_genes needs the panel table with its chip_suspect column "
            "(results/panel/loci.tsv, from the current `panel` step)"
        )
    suspect = panel.loc[_is_true(panel["chip_suspect"]), LOCUS_KEY]
    keys = pd.MultiIndex.from_frame(locus_rates[LOCUS_KEY])
    hit = keys.isin(pd.MultiIndex.from_frame(suspect)) & ~locus_rates["excluded"].to_numpy(dtype=bool)
    found = locus_rates.loc[hit, LOCUS_KEY].assign(patient_id="", reason="chip_gene")
    return found[EXCLUDED_COLUMNS]


def _is_true(values: pd.Series) -> np.ndarray:
    """Booleans as written to a table (True / true / 1) or kept in memory."""
    return values.astype(str).str.strip().str.lower().isin(["true", "1"]).to_numpy()
