"""Per-sample MRD calls: tumor fraction, its confidence interval, the test of TF = 0, LOD95 and status.

A call job holds a `SampleCaller`: the cohort's loci and the cohort step's calibration (calibration.py), to which
each plasma sample brings its own tables. The sample is scored at its own patient's panel (score.py, on the
counts and rates of cohort.py), its LOD95 simulated (lod.py), and its status decided (`decide_status`).

A positive call needs independent support: at least `min_mutant_fragments` distinct mutant fragments at at
least `min_mutant_loci` loci, as commercial tumor-informed assays require two variants. One chimeric or
contaminating fragment with ALTs at several loci is very unlikely under noise, so its p-value is tiny; it must
still never make a call (it would move conversion dates and lead times). The same rule holds wherever the
threshold is calibrated and the LOD simulated, so both describe the call actually made.

Every score draws from its own generator (seeded by sample and panel), so the calls can be spread over worker
processes (`call_cohort(workers=...)`) with results identical to one process.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from mrdtrack.calling.calibration import Calibration, Threshold, calibrate, contamination_evidence
from mrdtrack.calling.cohort import (
    Cohort,
    SampleLoci,
    build_cohort,
    cohort_loci,
    sample_level,
    sample_loci,
    score_at_panel,
    with_sample_length_model,
)
from mrdtrack.calling.flank_pool import flank_pool
from mrdtrack.calling.lod import lod95
from mrdtrack.calling.null import seeded_rng
from mrdtrack.calling.own_null import OwnThreshold, own_null, own_null_rng, own_threshold
from mrdtrack.calling.sample_rates import cohort_sample_rates, libraries_in_cohort_rates, sample_factors
from mrdtrack.calling.score import Score, mtm_per_ml
from mrdtrack.calling.settings import CallSettings
from mrdtrack.processes import in_parallel
from mrdtrack.tables import columns_of, empty_table, read_table
from mrdtrack.vocabulary import INDETERMINATE, MRD_STATUSES, NEGATIVE, POSITIVE

log = logging.getLogger(__name__)

#: The columns of calls.tsv, one row per plasma sample (the `calls` contract of `mrdtrack.tables`).
CALL_COLUMNS = columns_of("calls")
LOCI_COLUMNS = columns_of("loci")  # mrdtrack.tables.CONTRACTS


def decide_status(
    p_value: float,
    threshold: float,
    lod: float,
    n_loci: int,
    molecules: int,
    settings: CallSettings,
    *,
    mutant_fragments: int | None = None,
    mutant_loci: int | None = None,
) -> tuple[str, str]:
    """(status, reason in words). Without the mutant fragment and locus counts, support is not checked."""
    test = f"p={p_value:.3g} vs threshold {threshold:.3g}"
    if n_loci < settings.min_loci:
        return INDETERMINATE, f"only {n_loci} usable panel loci (minimum {settings.min_loci}); {test}"
    if p_value <= threshold:
        lacking = _lacking_support(mutant_fragments, mutant_loci, settings)
        if not lacking:
            return POSITIVE, f"tumor DNA detected: {test}"
        return INDETERMINATE, (
            f"{lacking}: {test}, but a positive needs {settings.min_mutant_fragments} mutant fragments at "
            f"{settings.min_mutant_loci} loci (one fragment cannot make a call)"
        )
    if molecules < settings.min_molecules:
        return INDETERMINATE, (
            f"not detected ({test}) but only {molecules} informative molecules "
            f"(minimum {settings.min_molecules}): too few to rule MRD out"
        )
    if not np.isfinite(lod) or lod > settings.max_lod95:
        shown = "not reachable" if not np.isfinite(lod) else f"{lod:.3g}"
        return INDETERMINATE, (
            f"not detected ({test}) but LOD95 {shown} is above the ceiling {settings.max_lod95:.3g}: "
            "too shallow to rule MRD out"
        )
    return NEGATIVE, f"not detected ({test}); LOD95 {lod:.3g} within the ceiling {settings.max_lod95:.3g}"


def _lacking_support(fragments: int | None, loci: int | None, settings: CallSettings) -> str:
    """Why the mutant evidence is too narrow for a positive ("" when it is not)."""
    if fragments is None or loci is None:
        return ""
    if fragments < settings.min_mutant_fragments:
        return f"{fragments} mutant fragment{'s' if fragments != 1 else ''}"
    if loci < settings.min_mutant_loci:
        return (
            f"{fragments} mutant fragments, all at {loci} locus"
            if loci == 1
            else f"mutant fragments at {loci} loci"
        )
    return ""


@dataclass
class CallResult:
    """The workflow's calling outputs, from `call_cohort` in one process.

    Parameters
    ----------
    calls : pandas.DataFrame
        calls.tsv: one row per plasma sample (`CALL_COLUMNS`).
    loci : pandas.DataFrame
        loci.tsv: every plasma sample's panel loci, used or not and why.
    null_scores : pandas.DataFrame
        The cohort step's null scores.
    threshold : float
        The p-value cut every call used.
    length_model : pandas.DataFrame
        The fragment-length model's summary; empty when lengths do not weigh in.
    """

    calls: pd.DataFrame
    loci: pd.DataFrame
    null_scores: pd.DataFrame
    threshold: float
    length_model: pd.DataFrame


def call_sample(
    cohort: Cohort,
    sample_id: str,
    cohort_threshold: Threshold,
    nulls: pd.DataFrame,
    settings: CallSettings,
    flanks: pd.DataFrame | None = None,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """One plasma sample at its own patient's panel: the calls.tsv row and its loci.tsv rows. With its flank
    table, the threshold comes from its own null (own_null.py) when that is large enough."""
    sample = cohort.samples.loc[sample_id]
    patient = sample["patient_id"]
    if patient not in cohort.layout.panels:
        return _empty_call(sample, cohort_threshold, "the patient has no panel loci", settings), _no_loci()
    rows, reasons, score = score_at_panel(cohort, sample_id, patient, settings, null_score=False)
    scale, scale_source = sample_level(cohort, sample_id, patient, settings)
    here = sample_loci(cohort, sample_id, patient, settings, null_score=False)
    loci = _loci_rows(cohort, sample, rows, reasons, here.e)
    if score is None:
        empty = _empty_call(sample, cohort_threshold, "no usable panel loci", settings, len(rows))
        return empty | {"background_scale": scale, "background_source": scale_source}, loci
    own = _own_threshold(
        here, sample_id, cohort_threshold, score, settings, flanks, _context_share(cohort, here)
    )
    threshold = Threshold(own.value, own.source, cohort_threshold.n_null_scores)
    used = loci["used"].to_numpy()
    n, a = (
        loci["ref_molecules"].to_numpy() + loci["alt_molecules"].to_numpy(),
        loci["alt_molecules"].to_numpy(),
    )
    rng = seeded_rng(settings.seed, sample_id, "lod")
    lod = lod95(score.terms, threshold.value, score.null, settings, rng, score.classes)
    molecules = int(n[used].sum())
    status, reason = decide_status(
        score.p_value, threshold.value, lod, int(used.sum()), molecules, settings,
        mutant_fragments=score.mutant_fragments, mutant_loci=score.mutant_loci,
    )  # fmt: skip
    flags = _flags(sample_id, nulls, threshold.value, int(score.outliers.sum()), settings)
    return {
        **_sample_columns(sample),
        "mrd_status": status,
        "tumor_fraction": score.tumor_fraction,
        "tf_ci_low": score.ci[0],
        "tf_ci_high": score.ci[1],
        "p_value": score.p_value,
        "threshold": threshold.value,
        "lod95": lod,
        "n_loci_used": int(used.sum()),
        "n_loci_panel": len(rows),
        "mutant_molecules": int(a[used].sum()),
        "total_molecules": molecules,
        "mtm_per_ml": mtm_per_ml(score.tumor_fraction, sample.get("cfdna_ng"), sample.get("plasma_ml")),
        "flags": flags,
        "status_reason": reason,
        "lr_statistic": score.statistic,
        "p_value_method": score.null.method,
        "expected_background_molecules": score.expected_background,
        "n_loci_outlier": int(score.outliers.sum()),
        "background_scale": scale,
        "length_weighted": score.classes is not None,
        "mutant_fragments": score.mutant_fragments,
        "mutant_loci": score.mutant_loci,
        "threshold_source": threshold.source,
        "n_null_scores": threshold.n_null_scores,
        "tf_dispersion": score.dispersion,
        "own_null_panels": own.own_null_panels,
        "empirical_p_value": own.empirical_p_value,
        "threshold_reason": own.reason,
        "background_source": scale_source,
    }, loci


def _own_threshold(
    here: SampleLoci,
    sample_id: str,
    cohort_threshold: Threshold,
    score: Score,
    settings: CallSettings,
    flanks: pd.DataFrame | None,
    context_share: np.ndarray | None = None,
) -> OwnThreshold:
    """The sample's threshold from its own null (synthetic panels of its flank positions matched to its usable
    loci, weighed by read orientation as the call is), or the cohort's with the reason. `context_share`: per
    locus, its context's rate over its own (the rate its matched flank positions show is `e` times it)."""
    usable = here.usable
    pool = flank_pool(flanks if flanks is not None else empty_table("flanks"), settings)
    rates = None if here.orientations is None else here.orientations.rate[usable]
    flank_rates = None if context_share is None else here.e[usable] * context_share[usable]
    own = own_null(
        pool, here.rows[usable], here.n[usable], here.e[usable], here.rows["weight"].to_numpy()[usable],
        settings, own_null_rng(settings, sample_id), score.classes, rates, flank_rates,
    )  # fmt: skip
    # A panel without the support a positive needs could never be called positive: its p-value is 1 against
    # its own null, as each synthetic panel's is (`OwnNull.decisive_p_values`).
    decisive = score.p_value if score.supported(settings) else 1.0
    return own_threshold(own, score.null, decisive, cohort_threshold.value, cohort_threshold.source, settings)


def _context_share(cohort: Cohort, here: SampleLoci) -> np.ndarray:
    """Per panel locus, its context's rate over its own rate (1 without a background row): what turns the call's
    rate of a locus into the rate of flank positions of its context, which do not share the locus's own noise."""
    table = cohort.layout.loci
    if "context_rate" not in table:
        return np.ones(len(here.locus))
    known = here.locus >= 0
    safe = np.where(known, here.locus, 0)
    context, rate = (
        table["context_rate"].to_numpy(dtype=float)[safe],
        table["rate"].to_numpy(dtype=float)[safe],
    )
    return np.where(known & (rate > 0), np.divide(context, rate, out=np.ones(len(safe)), where=rate > 0), 1.0)


def _sample_columns(sample: pd.Series) -> dict[str, Any]:
    return {k: sample.get(k, "") for k in ("sample_id", "patient_id", "collection_date", "batch")}


def _empty_call(
    sample: pd.Series, threshold: Threshold, why: str, settings: CallSettings, n_panel: int = 0
) -> dict[str, Any]:
    row = dict.fromkeys(CALL_COLUMNS, np.nan) | _sample_columns(sample)
    return row | {
        "mrd_status": INDETERMINATE,
        "threshold": threshold.value,
        "threshold_source": threshold.source,
        "n_null_scores": threshold.n_null_scores,
        "own_null_panels": 0,
        "threshold_reason": f"cohort threshold: no own null ({why})",
        "mutant_fragments": 0,
        "mutant_loci": 0,
        "n_loci_used": 0,
        "n_loci_panel": n_panel,
        "mutant_molecules": 0,
        "total_molecules": 0,
        "flags": "",
        "status_reason": why,
        "p_value_method": "",
        "n_loci_outlier": 0,
        "length_weighted": False,
    }


def _no_loci() -> pd.DataFrame:
    return pd.DataFrame(columns=LOCI_COLUMNS)


def _loci_rows(
    cohort: Cohort, sample: pd.Series, rows: pd.DataFrame, reasons: np.ndarray, e: np.ndarray
) -> pd.DataFrame:
    locus = rows["locus"].to_numpy()
    safe = np.where(locus >= 0, locus, 0)
    r = cohort.row[sample["sample_id"]]
    known = locus >= 0
    return pd.DataFrame(
        {
            "sample_id": sample["sample_id"],
            "patient_id": sample["patient_id"],
            **{k: rows[k].to_numpy() for k in ("chrom", "pos", "ref", "alt", "context")},
            "weight": rows["weight"].to_numpy(),
            "ref_molecules": np.where(known, cohort.ref[r, safe], 0),
            "alt_molecules": np.where(known, cohort.alt[r, safe], 0),
            "background_rate": np.where(known, e, np.nan),
            "used": reasons == "",
            "reason": reasons,
            "gene": rows["gene"].to_numpy(),  # gene and chip_suspect: the panel's (build_cohort)
            "chip_suspect": rows["chip_suspect"].to_numpy(),
        }
    )


def _flags(
    sample_id: str, nulls: pd.DataFrame, threshold: float, n_outliers: int, settings: CallSettings
) -> str:
    flags = []
    if settings.contamination_check:
        mine = nulls[(nulls["sample_id"] == sample_id) & (nulls["n_loci_used"] >= settings.min_loci)]
        # Bonferroni over the other panels this sample was scored against.
        hits = mine[(mine["p_value"] <= threshold / max(len(mine), 1)) & contamination_evidence(mine)]
        flags += [f"possible_contamination:{p}" for p in sorted(hits["panel_patient_id"])]
    if n_outliers:
        flags.append(f"outlier_loci:{n_outliers}")
    return ";".join(flags)


@dataclass
class SampleCaller:
    """Calls plasma samples one at a time from their own tables and the cohort step's `calibration`: what a
    workflow call job holds. The cohort's loci are laid out once for all the samples it calls.

    Parameters
    ----------
    samples : pandas.DataFrame
        The sample sheet (`samples` contract).
    panel : pandas.DataFrame
        Every patient's panel loci (`panel_loci` contract).
    locus_rates, excluded : pandas.DataFrame
        The background model's locus rates and excluded loci, as the cohort step used them.
    calibration : Calibration
        The cohort step's null scores, threshold and length model state (`calibrate`, `read_calibration`).
    settings : CallSettings
        The `calling:` settings the cohort step used.
    """

    samples: pd.DataFrame
    panel: pd.DataFrame
    locus_rates: pd.DataFrame
    excluded: pd.DataFrame
    calibration: Calibration
    settings: CallSettings = field(default_factory=CallSettings)

    def __post_init__(self) -> None:
        self._layout = cohort_loci(self.panel, self.locus_rates, self.excluded)
        self._factors = sample_factors(self.calibration.sample_rates)

    def call(
        self,
        sample_id: str,
        counts: pd.DataFrame,
        fragment_lengths: pd.DataFrame | None = None,
        fragments: pd.DataFrame | None = None,
        flanks: pd.DataFrame | None = None,
    ) -> tuple[dict[str, Any], pd.DataFrame]:
        """One plasma sample's call at its own patient's panel.

        Parameters
        ----------
        sample_id : str
            A plasma sample of `samples`.
        counts : pandas.DataFrame
            Count table rows (`counts` contract); only the sample's are read, so it may hold that sample alone.
        fragment_lengths : pandas.DataFrame, optional
            Length histogram rows, likewise; needed when `settings.fragment_lengths` is on.
        fragments : pandas.DataFrame, optional
            Rows of the fragments that cover several loci, likewise.
        flanks : pandas.DataFrame, optional
            The sample's flank table (`flanks` contract; with a `sample_id` column, only the sample's rows are
            read): its own null. Without it the call uses the cohort threshold.

        Returns
        -------
        tuple of (dict, pandas.DataFrame)
            The sample's calls.tsv row (column -> value) and its loci.tsv rows, as `gather_calls` takes them.
        """
        samples, calibration, settings = self.samples, self.calibration, self.settings
        cohort = build_cohort(
            _rows_of(counts, sample_id), samples[samples["sample_id"] == sample_id], self._layout,
            None if fragments is None else _rows_of(fragments, sample_id),
        )  # fmt: skip
        if settings.fragment_lengths:
            if fragment_lengths is None or calibration.length_state is None:
                raise ValueError(
                    "calling.fragment_lengths needs the sample's length histogram and the cohort model"
                )
            lengths = _rows_of(fragment_lengths, sample_id)
            cohort = with_sample_length_model(cohort, sample_id, lengths, calibration.length_state, settings)
        nulls = calibration.null_scores[calibration.null_scores["sample_id"] == sample_id]
        # Set aside only now: the length model was learned without them, as in the cohort step.
        set_aside = frozenset(nulls.loc[nulls["contamination_candidate"], "panel_patient_id"])
        own = {sample_id: self._factors[sample_id]} if sample_id in self._factors else {}
        cohort = replace(cohort, contaminating={sample_id: set_aside}, own_factors=own)
        own_flanks = (
            None if flanks is None else _rows_of(flanks, sample_id) if "sample_id" in flanks else flanks
        )
        return call_sample(cohort, sample_id, calibration.threshold, nulls, settings, own_flanks)


def _rows_of(table: pd.DataFrame, sample_id: str) -> pd.DataFrame:
    return table[table["sample_id"] == sample_id]


def gather_calls(results: list[tuple[dict[str, Any], pd.DataFrame]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """calls.tsv and loci.tsv from the per-sample calls, in the contract's order.

    Parameters
    ----------
    results : list of (dict, pandas.DataFrame)
        Each sample's call row and loci rows (`SampleCaller.call`, `read_call_rows`), in any order.

    Returns
    -------
    tuple of (pandas.DataFrame, pandas.DataFrame)
        calls.tsv (sorted by patient, collection date and sample) and loci.tsv (in the same sample order).
    """
    calls = pd.DataFrame([call for call, _ in results], columns=CALL_COLUMNS)
    calls = calls.sort_values(["patient_id", "collection_date", "sample_id"], kind="stable")
    order = {sample_id: i for i, sample_id in enumerate(calls["sample_id"])}
    loci = sorted((frame for _, frame in results if len(frame)), key=lambda f: order[f["sample_id"].iloc[0]])
    loci_frame = pd.concat(loci, ignore_index=True) if loci else _no_loci()
    log.info("calls: %s", summarize(calls))
    return calls.reset_index(drop=True), loci_frame[LOCI_COLUMNS]


def call_cohort(
    counts: pd.DataFrame,
    samples: pd.DataFrame,
    panel: pd.DataFrame,
    locus_rates: pd.DataFrame,
    excluded: pd.DataFrame,
    settings: CallSettings | None = None,
    fragment_lengths: pd.DataFrame | None = None,
    workers: int = 1,
    fragments: pd.DataFrame | None = None,
    flanks: pd.DataFrame | Mapping[str, pd.DataFrame] | None = None,
    context_rates: pd.DataFrame | None = None,
) -> CallResult:
    """`calibrate`, then `SampleCaller.call` for every plasma sample: the workflow's calling steps in one
    process (tests, benchmarks). The results are those of the workflow's jobs, whatever their layout.

    Parameters
    ----------
    counts, samples, panel, locus_rates, excluded, settings, fragment_lengths, workers, fragments
        As `calibrate` takes them; `workers` processes also share the per-sample calls.
    flanks : pandas.DataFrame or mapping of str to pandas.DataFrame, optional
        The samples' flank tables (sample_id + the `flanks` contract), or each sample's own table by sample id
        (no copy of a cohort's genome-wide tables, hundreds of MB each, into one frame): the plasma samples'
        own background rates (sample_rates.py) and own nulls. Without them every call uses the cohort
        threshold and one background scale per sample.
    context_rates : pandas.DataFrame, optional
        The background's context rates (`build_background`): the reference of the samples' own factors. Without
        them, only the samples' own nulls use the flanks.

    Returns
    -------
    CallResult
        calls.tsv, loci.tsv, the null scores, the threshold and the length model's summary.
    """
    settings = settings or CallSettings()
    plasma = set(samples.loc[samples["sample_type"] == "plasma", "sample_id"])
    own_rates = None
    flank_tables = _by_sample(flanks)
    if flank_tables is not None and context_rates is not None and settings.sample_background:
        by_sample = ((s, flank_tables[s]) for s in sorted(flank_tables) if s in plasma)
        shared = libraries_in_cohort_rates(counts, samples)
        own_rates = cohort_sample_rates(by_sample, settings, context_rates, shared)
    calibration = calibrate(
        counts, samples, panel, locus_rates, excluded, settings,
        fragment_lengths=fragment_lengths, workers=workers, fragments=fragments, sample_rates=own_rates,
    )  # fmt: skip
    plasma = list(samples.loc[samples["sample_type"] == "plasma", "sample_id"])
    inputs = _SampleInputs(counts, fragment_lengths, fragments, flank_tables)
    caller = SampleCaller(samples, panel, locus_rates, excluded, calibration, settings)
    calls, loci = gather_calls(in_parallel(_call_one, plasma, (inputs, caller), workers))
    return CallResult(
        calls=calls,
        loci=loci,
        null_scores=calibration.null_scores,
        threshold=calibration.threshold.value,
        length_model=calibration.length_model,
    )


@dataclass
class _SampleInputs:
    """The cohort's tables, split by sample once so that each sample's call reads only its own rows."""

    counts: pd.DataFrame
    fragment_lengths: pd.DataFrame | None
    fragments: pd.DataFrame | None
    flanks: Mapping[str, pd.DataFrame] | None = None

    def __post_init__(self) -> None:
        self._by_sample = {
            "counts": _by_sample(self.counts), "fragment_lengths": _by_sample(self.fragment_lengths),
            "fragments": _by_sample(self.fragments), "flanks": self.flanks,
        }  # fmt: skip

    def own(self, name: str, sample_id: str) -> pd.DataFrame | None:
        groups = self._by_sample[name]
        if groups is None:
            return None
        if sample_id in groups:
            return groups[sample_id]
        table = getattr(self, name)
        # Only the flank tables come as a mapping.
        return table.iloc[:0] if isinstance(table, pd.DataFrame) else empty_table("flanks")


def _by_sample(
    table: pd.DataFrame | Mapping[str, pd.DataFrame] | None,
) -> Mapping[str, pd.DataFrame] | None:
    """Each sample's rows of a cohort's table, by sample id (a mapping is already that)."""
    if table is None or isinstance(table, Mapping):
        return table
    return dict(tuple(table.groupby("sample_id", sort=False)))


def _call_one(
    shared: tuple[_SampleInputs, SampleCaller], sample_id: str
) -> tuple[dict[str, Any], pd.DataFrame]:
    inputs, caller = shared
    return caller.call(
        sample_id, inputs.own("counts", sample_id), inputs.own("fragment_lengths", sample_id),
        inputs.own("fragments", sample_id), inputs.own("flanks", sample_id),
    )  # fmt: skip


def summarize(calls: pd.DataFrame) -> str:
    """One log line: how many samples got each status."""
    counts = calls["mrd_status"].value_counts()
    return ", ".join(f"{status}: {counts.get(status, 0)}" for status in MRD_STATUSES)


def read_call_rows(paths: list[str]) -> list[tuple[dict[str, Any], pd.DataFrame]]:
    """The per-sample call jobs' outputs, for `gather_calls`.

    Parameters
    ----------
    paths : list of str
        {sample}.call.tsv, {sample}.loci.tsv, {sample}.call.tsv, ... (pairs, call first).

    Returns
    -------
    list of (dict, pandas.DataFrame)
        Each sample's call row and loci rows.
    """
    results = []
    for call_path, loci_path in zip(paths[::2], paths[1::2], strict=True):
        call = read_table("calls", call_path).fillna({"collection_date": ""}).iloc[0].to_dict()
        loci = read_table("loci", loci_path)
        results.append((call, loci))
    return results
