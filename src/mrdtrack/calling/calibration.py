"""The cohort step of calling: null scores, the threshold they allow, and what every sample's own call takes
from them.

Null scores are the plasma and control samples scored against panels that are not their own (`null_panels`:
at most `max_null_panels` of them, so the work is linear in the samples). The threshold is calibrated on them
when there are enough to resolve the target false-positive rate; otherwise the nominal threshold (the rate
itself) is used and the calls say so (null.py). A null score that looks like another patient's tumor DNA is
set aside from the calibration as possible contamination (`mark_contamination`).

Every score draws from its own generator (seeded by sample and panel), so the null scores can be spread over
worker processes (`calibrate(workers=...)`) with results identical to one process.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mrdtrack.calling.cohort import Cohort, build_cohort, cohort_loci, score_at_panel, with_length_model
from mrdtrack.calling.fraglen import LENGTH_COLUMNS, STATE_COLUMNS
from mrdtrack.calling.null import threshold_from_null
from mrdtrack.calling.sample_rates import sample_factors
from mrdtrack.calling.score import Score
from mrdtrack.calling.settings import CallSettings
from mrdtrack.processes import in_parallel
from mrdtrack.tables import columns_of, empty_table, read_table, write_json, write_tsv

log = logging.getLogger(__name__)

NULL_COLUMNS = columns_of("null_scores")  # mrdtrack.tables.CONTRACTS

# Contamination is a claim about the sample (a swap, another patient's tumor DNA in the tube): two mutant
# fragments at another patient's panel, the least a supported score holds, are what noise gives now and then
# (in a trial-sized demo, one tumor-free sample in a few hundred, at p = 0.006 against one panel), so the
# claim needs more than two.
CONTAMINATION_MIN_FRAGMENTS = 3


def null_panels(
    sample_id: str,
    sample_patient: str,
    panels: list[str],
    settings: CallSettings,
    covered: set[str] | None = None,
) -> list[str]:
    """The other patients' panels a sample is scored against: `max_null_panels` of them (all when None) among
    those its capture `covered` (all when None), chosen by a hash of sample and panel, so that the choice is
    fixed and the same for any order of the cohort."""
    others = [p for p in panels if p != sample_patient and (covered is None or p in covered)]
    if settings.max_null_panels is None or len(others) <= settings.max_null_panels:
        return sorted(others)
    ranked = sorted(others, key=lambda p: (zlib.crc32(f"{settings.seed}\x1f{sample_id}\x1f{p}".encode()), p))
    return sorted(ranked[: settings.max_null_panels])


def covered_panels(cohort: Cohort, sample_id: str, min_loci: int) -> set[str]:
    """The panels the sample's capture covers: molecules at `min_loci` or more of their loci (a panel with
    fewer could never give a null score that counts)."""
    seen = cohort.total[cohort.row[sample_id]] > 0
    covered = set()
    for patient, rows in cohort.layout.panels.items():
        locus = rows["locus"].to_numpy()
        if np.count_nonzero(seen[locus[locus >= 0]]) >= max(min_loci, 1):
            covered.add(patient)
    return covered


def null_scores(cohort: Cohort, settings: CallSettings, workers: int = 1) -> pd.DataFrame:
    """Every plasma and control sample scored against other patients' panels its capture covers
    (`null_panels`): work linear in the samples."""
    scored = cohort.samples[cohort.samples["sample_type"].isin(["plasma", "control"])]
    panels = list(cohort.layout.panels)
    pairs = [
        (sample_id, patient)
        for sample_id, sample_patient in zip(scored.index, scored["patient_id"], strict=True)
        for patient in null_panels(
            sample_id, sample_patient, panels, settings, covered_panels(cohort, sample_id, settings.min_loci)
        )
    ]
    records = in_parallel(_null_score, pairs, (cohort, settings), workers)
    return mark_contamination(pd.DataFrame(records, columns=NULL_COLUMNS), settings)


def _null_score(shared: tuple[Cohort, CallSettings], pair: tuple[str, str]) -> dict[str, Any]:
    cohort, settings = shared
    sample_id, patient = pair
    _, reasons, score = score_at_panel(cohort, sample_id, patient, settings, null_score=True)
    return _null_record(cohort, cohort.samples.loc[sample_id], patient, reasons, score, settings)


def mark_contamination(nulls: pd.DataFrame, settings: CallSettings) -> pd.DataFrame:
    """Set aside, from the calibration, null scores that look like contamination rather than noise.

    A score significant after Bonferroni over the panels its sample was scored against (p <= rate / panels),
    on the evidence `contamination_evidence` asks for, holds another patient's tumor DNA: a sample swap or
    cross-contamination, which the calls flag. Left in, one such score would drag the threshold below its own
    tiny p-value and silence every real positive. A sample significant against more than
    `contamination_max_panels` panels is not contaminated by a donor but noisy, and noise is exactly what the
    calibration must see: those scores stay in.
    """
    nulls = nulls.copy()
    eligible = nulls["calibration"].to_numpy(dtype=bool)
    panels = nulls["sample_id"].map(nulls[eligible].groupby("sample_id").size()).fillna(0).to_numpy()
    significant = (
        eligible
        & contamination_evidence(nulls)
        & (nulls["p_value"].to_numpy() <= settings.false_positive_rate / np.maximum(panels, 1))
    )
    per_sample = pd.Series(significant).groupby(nulls["sample_id"].to_numpy()).transform("sum").to_numpy()
    candidate = significant & (per_sample <= settings.contamination_max_panels)
    nulls["contamination_candidate"] = candidate
    nulls["calibration"] = eligible & ~candidate
    if candidate.any():
        pairs = nulls.loc[candidate, ["sample_id", "panel_patient_id"]].itertuples(index=False)
        log.warning(
            "left out of the calibration as possible contamination: %s",
            ", ".join(f"{s} at {p}" for s, p in pairs),
        )
    return nulls


def contamination_evidence(nulls: pd.DataFrame) -> np.ndarray:
    """Per null score: enough mutant evidence to say the sample may hold that panel's tumor DNA, whatever its
    p-value: the support a positive call needs, and more than two distinct mutant fragments
    (`CONTAMINATION_MIN_FRAGMENTS`).

    Parameters
    ----------
    nulls : pandas.DataFrame
        Null scores (`null_scores` contract: `supported`, `mutant_fragments`).

    Returns
    -------
    numpy.ndarray
        One bool per row.
    """
    return nulls["supported"].to_numpy(dtype=bool) & (
        nulls["mutant_fragments"].to_numpy(dtype=float) >= CONTAMINATION_MIN_FRAGMENTS
    )


def _null_record(
    cohort: Cohort,
    sample: pd.Series,
    patient: str,
    reasons: np.ndarray,
    score: Score | None,
    settings: CallSettings,
) -> dict[str, Any]:
    rows = cohort.layout.panels[patient]
    used = np.flatnonzero(reasons == "")
    r = cohort.row[sample["sample_id"]]
    locus = rows["locus"].to_numpy()[used]
    return {
        "sample_id": sample["sample_id"],
        "sample_type": sample["sample_type"],
        "sample_patient_id": sample["patient_id"],
        "panel_patient_id": patient,
        "n_loci_used": len(used),
        "mutant_molecules": int(cohort.alt[r, locus].sum()),
        "total_molecules": int(cohort.total[r, locus].sum()),
        "tumor_fraction": score.tumor_fraction if score else np.nan,
        "lr_statistic": score.statistic if score else np.nan,
        "p_value": score.p_value if score else np.nan,
        "p_value_method": score.null.method if score else "",
        # Only scores that could become a positive call (enough loci) shape the threshold.
        "calibration": bool(score is not None and len(used) >= settings.min_loci),
        "mutant_fragments": score.mutant_fragments if score else 0,
        "mutant_loci": score.mutant_loci if score else 0,
        "supported": bool(score is not None and score.supported(settings)),
    }


def decisive_p_values(nulls: pd.DataFrame) -> np.ndarray:
    """The calibrating null scores' p-values as the call sees them: 1 for a score without the support a
    positive needs (it could never be called positive, whatever its p-value)."""
    calibrating = nulls[nulls["calibration"]]
    return np.where(calibrating["supported"], calibrating["p_value"], 1.0)


@dataclass(frozen=True)
class Threshold:
    """The p-value cut every call uses, where it came from, and how many null scores it rests on.

    Parameters
    ----------
    value : float
        A call is positive when its p-value is at most this (given the support a positive needs).
    source : str
        "empirical" (calibrated on the null scores) or "nominal" (the target rate itself).
    n_null_scores : int
        The calibrating null scores.
    """

    value: float
    source: str  # "empirical" or "nominal"
    n_null_scores: int


@dataclass
class Calibration:
    """What the cohort step gives every sample's own call.

    Parameters
    ----------
    null_scores : pandas.DataFrame
        Every plasma and control sample scored at other patients' panels (the `null_scores` table contract).
    threshold : Threshold
        The p-value cut they allow.
    length_state : pandas.DataFrame or None
        The fragment-length model's state (`length_state` contract); None when lengths do not weigh in.
    length_model : pandas.DataFrame
        The length model's summary (`length_model` contract); empty when lengths do not weigh in or the
        calibration was read back from files.
    sample_rates : pandas.DataFrame
        Each plasma sample's own background factors from its flanks (`sample_rates` contract,
        sample_rates.py); empty without flank tallies or with `sample_background` off.
    """

    null_scores: pd.DataFrame
    threshold: Threshold
    length_state: pd.DataFrame | None
    length_model: pd.DataFrame  # fraglen.LengthModel.summary(); empty when lengths do not weigh in
    sample_rates: pd.DataFrame = dataclasses.field(default_factory=lambda: empty_table("sample_rates"))


def calibrate(
    counts: pd.DataFrame,
    samples: pd.DataFrame,
    panel: pd.DataFrame,
    locus_rates: pd.DataFrame,
    excluded: pd.DataFrame,
    settings: CallSettings | None = None,
    fragment_lengths: pd.DataFrame | None = None,
    workers: int = 1,
    fragments: pd.DataFrame | None = None,
    sample_rates: pd.DataFrame | None = None,
) -> Calibration:
    """The cohort step of calling: fragment-length model, null scores and the threshold they allow.

    Parameters
    ----------
    counts : pandas.DataFrame
        Every sample's count table (`counts` contract), concatenated.
    samples : pandas.DataFrame
        The sample sheet (`samples` contract).
    panel : pandas.DataFrame
        Every patient's panel loci (`panel_loci` contract).
    locus_rates, excluded : pandas.DataFrame
        The background model's locus rates and excluded loci (`build_background`).
    settings : CallSettings, optional
        The `calling:` section; defaults when None.
    fragment_lengths : pandas.DataFrame, optional
        The counting step's length histograms (sample_id, allele, length, molecules); needed when
        `settings.fragment_lengths` is on.
    workers : int
        Processes that share the scoring; the results do not depend on it.
    fragments : pandas.DataFrame, optional
        The fragments that cover several loci (sample_id + the `fragments` contract); without them every
        molecule counts at its locus alone.
    sample_rates : pandas.DataFrame, optional
        The plasma samples' own background factors (`sample_rates` contract; `cohort_sample_rates` of their
        flank tables): their null scores and calls use them. Without them (or with `sample_background` off)
        a sample's rates take one scale from its molecules at other patients' loci (or none).

    Returns
    -------
    Calibration
        The null scores, the threshold and the fragment-length model's state and summary.
    """
    settings = settings or CallSettings()
    cohort = build_cohort(counts, samples, cohort_loci(panel, locus_rates, excluded), fragments)
    if sample_rates is None or not settings.sample_background:
        sample_rates = empty_table("sample_rates")
    cohort = dataclasses.replace(cohort, own_factors=sample_factors(sample_rates))
    if settings.fragment_lengths:
        if fragment_lengths is None:
            raise ValueError("calling.fragment_lengths needs the samples' fragment-length histograms")
        cohort = with_length_model(cohort, fragment_lengths, settings)
    nulls = null_scores(cohort, settings, workers)
    calibrating = decisive_p_values(nulls)
    threshold = Threshold(*threshold_from_null(calibrating, settings), len(calibrating))
    log.info(
        "threshold %.4g (%s) from %d null scores (target rate %g)",
        threshold.value,
        threshold.source,
        len(calibrating),
        settings.false_positive_rate,
    )
    model = cohort.length_model
    summary = model.summary() if model else pd.DataFrame(columns=LENGTH_COLUMNS)
    return Calibration(nulls, threshold, model.state() if model else None, summary, sample_rates)


def write_calibration(
    calibration: Calibration,
    null_scores: str,
    threshold: str,
    length_state: str,
    sample_rates: str | None = None,
) -> None:
    """Write the cohort step's outputs, which `read_calibration` reads back.

    Parameters
    ----------
    calibration : Calibration
        What `calibrate` returned.
    null_scores, threshold, length_state : str
        Paths of null_scores.tsv, threshold.json and the length model's state (header only when lengths do
        not weigh in).
    sample_rates : str, optional
        Path of the samples' own background factors (sample_rates.tsv; header only without them).
    """
    write_tsv(calibration.null_scores, null_scores)
    write_json(dataclasses.asdict(calibration.threshold), threshold)
    state = calibration.length_state
    write_tsv(pd.DataFrame(columns=STATE_COLUMNS) if state is None else state, length_state)
    if sample_rates is not None:
        write_tsv(calibration.sample_rates, sample_rates)


def read_calibration(
    null_scores: str, threshold: str, length_state: str, sample_rates: str | None = None
) -> Calibration:
    """The cohort step's outputs as `write_calibration` wrote them.

    Parameters
    ----------
    null_scores, threshold, length_state : str
        Paths of null_scores.tsv, threshold.json and the length model's state.
    sample_rates : str, optional
        Path of the samples' own background factors (none when not given).

    Returns
    -------
    Calibration
        What a sample's own call needs (the length model's summary is left empty: no call reads it).
    """
    nulls = read_table("null_scores", null_scores)
    with open(threshold, encoding="utf-8") as handle:
        cut = Threshold(**json.load(handle))
    state = read_table("length_state", length_state)
    empty = pd.DataFrame(columns=LENGTH_COLUMNS)
    own = read_table("sample_rates", sample_rates) if sample_rates else empty_table("sample_rates")
    return Calibration(nulls, cut, state if len(state) else None, empty, own)
