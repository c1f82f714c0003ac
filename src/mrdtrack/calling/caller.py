"""Per-sample MRD calls: tumor fraction, its confidence interval, the test of TF = 0, LOD95 and status.

Model (likelihood.py): over the sample's fragments at its own panel's loci, each fragment counted once however
many loci it covers; for a one-locus fragment, a_i ~ Binomial(n_i, e_i + (1 - e_i) f w_i / 2), with n_i the
informative (REF + ALT) molecules, a_i the ALT molecules, e_i the background rate, w_i the variant weight and f
the tumor fraction.

A positive call needs independent support: at least `min_mutant_fragments` distinct mutant fragments at at
least `min_mutant_loci` loci, as commercial tumor-informed assays require two variants. One chimeric or
contaminating fragment with ALTs at several loci is very unlikely under noise, so its p-value is tiny; it must
still never make a call (it would move conversion dates and lead times). The same rule holds wherever the
threshold is calibrated and the LOD simulated, so both describe the call actually made.

e_i is the cohort's locus rate times the sample's own background scale: libraries differ in damage and PCR
error, and the sample's molecules at other patients' loci measure how much (`Cohort.background_scale`). Without
it, a library noisier than the cohort mean reads as tumor signal (benchmarks/detection.py, 25% library-to-library
spread: 3/180 TF-0 samples positive and a calibrated threshold pushed down to p <= 0.0073 without it; 1/180 and
the nominal 0.01 with it).

The test of f = 0 is the likelihood-ratio test. Its null sits on the boundary: the asymptotic statistic is a
50:50 mixture of chi-square 0 and 1. With the few expected background molecules typical of MRD the statistic is
discrete and the asymptotics are off (conservative for most panels, anti-conservative for very few loci), so
when the expected null ALT count is small the p-value comes from the exact null distribution of the same
statistic, drawn by Monte Carlo with a seed fixed per sample and panel. The threshold is then calibrated on null
scores (samples scored against panels that are not their own) when there are enough of them to resolve the
target false-positive rate; otherwise the nominal threshold (the rate itself) is used and the calls say so.

The interval is the profile-likelihood interval, widened for between-locus overdispersion: the loci of one
tumor do not share one VAF (subclonal variants, copy number), which binomial counts alone do not show.

Every score draws from its own generator (seeded by sample and panel), so the null scores and the calls can be
spread over worker processes (`call_cohort(workers=...)`) with results identical to one process.

This module holds the calling settings, one sample's score at one panel, the cohort's null scores and calibration,
and the per-sample call; the statistic's null distribution and the threshold are `null`'s, the LOD95 `lod`'s.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import zlib
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from mrdtrack.calling.fraglen import (
    LENGTH_COLUMNS,
    STATE_COLUMNS,
    LengthClasses,
    LengthModel,
    build_length_model,
    clip_lengths,
    own_excess,
    parse_lengths,
    ref_histograms,
)
from mrdtrack.calling.likelihood import (
    Design,
    Observed,
    Tables,
    alt_probability,
    binomial_tail,
    dispersion,
    fit,
    lr_statistics,
    profile_interval,
)
from mrdtrack.calling.lod import lod95
from mrdtrack.calling.null import NullDistribution, null_distribution, seeded_rng, threshold_from_null
from mrdtrack.processes import in_parallel
from mrdtrack.settings import StepSettings
from mrdtrack.tables import columns_of, read_table, write_json, write_tsv
from mrdtrack.vocabulary import INDETERMINATE, LOCUS_KEY, MRD_STATUSES, NEGATIVE, POSITIVE

log = logging.getLogger(__name__)

HAPLOID_GENOME_PG = 3.3  # mass of one haploid human genome
CALL_COLUMNS = columns_of("calls")  # mrdtrack.tables.CONTRACTS
LOCI_COLUMNS = columns_of("loci")  # mrdtrack.tables.CONTRACTS
NULL_COLUMNS = columns_of("null_scores")  # mrdtrack.tables.CONTRACTS


@dataclass(frozen=True)
class CallSettings(StepSettings):
    """Settings of the `calling:` config section (config/README.md documents each)."""

    SECTION: ClassVar[str] = "calling"

    false_positive_rate: float = 0.01  # target rate of positive calls among null scores
    min_loci: int = 5  # fewer usable loci: indeterminate
    min_molecules: int = 500  # fewer informative molecules over usable loci: indeterminate
    max_lod95: float = 0.01  # a negative whose LOD95 is above this is indeterminate
    p_value_method: str = "auto"  # auto | asymptotic | monte_carlo
    monte_carlo_max_expected: float = 20.0  # auto: Monte Carlo when expected null ALT molecules < this
    null_draws: int = 10_000  # Monte Carlo draws of the null distribution
    min_exceedances: int = 10  # fewer null draws beyond the statistic: the asymptotic tail may refine p
    lod_draws: int = 1_000  # Monte Carlo draws per tumor fraction for LOD95
    lod_power: float = 0.95  # detection probability that defines the LOD
    ci_level: float = 0.95  # profile-likelihood confidence level
    outlier_max_p: float = 1e-4  # in-sample outlier locus: binomial upper tail below this
    contamination_check: bool = True  # flag samples significant for another patient's panel
    contamination_max_panels: int = 1  # significant at more panels than this: noise, kept in calibration
    seed: int = 20240601  # base seed of every Monte Carlo draw (per-sample seeds derive from it)
    sample_background: bool = True  # scale locus rates by the sample's own noise at other patients' loci
    sample_background_prior: float = 10.0  # Gamma prior strength of that scale, in expected ALT molecules
    fragment_lengths: bool = True  # weigh each ALT molecule by its fragment length's tumor/normal ratio
    fragment_length_prior: float = 200.0  # pseudo tumor molecules shrinking the learned length ratio to 1
    fragment_length_bandwidth: float = 4.0  # bp, Gaussian smoothing of the length histograms
    min_mutant_fragments: int = 2  # a positive needs this many distinct fragments with an ALT ...
    min_mutant_loci: int = 2  # ... at this many loci
    empirical_min_expected: float = (
        10.0  # empirical threshold only when the null would show this many positives
    )
    overdispersion: bool = True  # widen the TF interval by the loci's between-locus overdispersion
    max_null_panels: int | None = 10  # other patients' panels each sample is scored against (None: all)


# ----------------------------------------------------------------------------------------------------------
# One sample at one panel
# ----------------------------------------------------------------------------------------------------------
@dataclass
class Score:
    """The test of one sample at one panel's usable loci."""

    used: np.ndarray  # bool per candidate locus: not an in-sample outlier
    outliers: np.ndarray  # bool per candidate locus
    tumor_fraction: float
    ci: tuple[float, float]
    statistic: float
    p_value: float
    null: NullDistribution
    design: Design
    mutant_fragments: int = 0  # distinct fragments with an ALT at a used locus
    mutant_loci: int = 0  # used loci with an ALT fragment
    dispersion: float = 1.0  # between-locus overdispersion the interval was widened by
    classes: LengthClasses | None = None  # the sample's fragment-length classes, when lengths weigh in

    @property
    def expected_background(self) -> float:
        return self.design.expected_background()

    def supported(self, settings: CallSettings) -> bool:
        """Independent support for a positive: enough distinct mutant fragments at enough loci."""
        return (
            self.mutant_fragments >= settings.min_mutant_fragments
            and self.mutant_loci >= settings.min_mutant_loci
        )


def find_outliers(
    a: np.ndarray,
    n: np.ndarray,
    e: np.ndarray,
    w: np.ndarray,
    max_p: float,
    level: float = 0.95,
    overdispersion: bool = True,
) -> np.ndarray:
    """Loci whose ALT count is implausible given the tumor fraction the other loci support.

    Each locus with ALT molecules is judged against the upper confidence bound of the TF fitted without it
    (so that honest low-level signal concentrated by chance in one locus is not removed); the most extreme
    locus below `max_p` is dropped and the rest re-judged, until none is left. With `overdispersion`, the other
    loci's spread around their TF (`likelihood.dispersion`) widens both that bound and the locus's tail
    (beta-binomial of the same variance): the loci of one tumor do not share one VAF, and at a high tumor
    fraction a clonal or multi-copy locus would otherwise look like an artefact beside subclonal ones.
    """
    out = np.zeros(len(a), dtype=bool)
    # A tumor fraction can only raise the ALT probability: loci unremarkable under background alone never
    # become outliers, which spares the leave-one-out fits for almost every locus.
    suspect = (a > 0) & (binomial_tail(a, n, e) < max_p)
    while (~out).sum() > 2:
        candidates = np.flatnonzero(~out & suspect)
        tails = np.array([_outlier_tail(i, a, n, e, w, out, level, overdispersion) for i in candidates])
        if not candidates.size or tails.min() >= max_p:
            break
        out[candidates[np.argmin(tails)]] = True
    return out


def _outlier_tail(
    i: int,
    a: np.ndarray,
    n: np.ndarray,
    e: np.ndarray,
    w: np.ndarray,
    out: np.ndarray,
    level: float,
    overdispersion: bool,
) -> float:
    keep = ~out
    keep[i] = False
    tables = Tables.of(a[keep][None], n[keep], e[keep], w[keep])
    spread = (
        dispersion(float(fit(tables)[0]), a[keep], n[keep], e[keep], w[keep], level)
        if overdispersion
        else 1.0
    )
    upper = profile_interval(tables, level, spread)[1]
    p = float(alt_probability(upper, e[i], w[i]))
    if spread <= 1 or n[i] < 2 or not 0 < p < 1:
        return float(binomial_tail(a[i], n[i], p))
    # Beta-binomial with the variance the other loci show: n p (1 - p) (1 + (n - 1) rho) = spread n p (1 - p).
    rho = min((spread - 1) / (n[i] - 1), 0.999)
    shape = (1 - rho) / rho
    from scipy import stats  # rarely needed; scipy.stats alone doubles a call job's start-up time

    return float(stats.betabinom.sf(a[i] - 1, n[i], p * shape, (1 - p) * shape))


@dataclass(frozen=True)
class Fragments:
    """A sample's fragments informative at two or more loci of a set of loci: each the loci it covers (local
    indices, increasing), whether it shows the ALT at each, its length (-1 without an ALT) and count."""

    loci: tuple[tuple[int, ...], ...] = ()
    alt: tuple[np.ndarray, ...] = ()
    length: tuple[int, ...] = ()
    count: tuple[int, ...] = ()


def evidence(
    n: np.ndarray,
    a: np.ndarray,
    e: np.ndarray,
    w: np.ndarray,
    fragments: Fragments = Fragments(),
    length_table: np.ndarray | None = None,
    classes: LengthClasses | None = None,
) -> Observed:
    """A sample's evidence at a set of loci: its molecules per locus (`n` informative, `a` ALT; with length
    `classes`, `length_table` holds the ALT molecules per locus and class), of which the `fragments` that cover
    several loci are taken out and counted once each, as fragments."""
    single_n = np.asarray(n, dtype=np.int64).copy()
    single_a = np.asarray(a if classes is None else length_table, dtype=np.int64).copy()
    groups: dict[tuple[int, ...], int] = {}
    patterns = []
    for loci, alt, length, count in zip(
        fragments.loci, fragments.alt, fragments.length, fragments.count, strict=True
    ):
        members = np.asarray(loci)
        single_n[members] -= count
        k = 0 if classes is None or length < 0 else int(classes.class_of_length[clip_lengths(length)])
        if alt.any():
            if classes is None:
                single_a[members[alt]] -= count
            else:
                single_a[members[alt], k] -= count
        group = groups.setdefault(loci, len(groups))
        if alt.any():
            patterns.append((group, alt, k, count))
    group_size = np.zeros(len(groups), dtype=np.int64)
    for loci, count in zip(fragments.loci, fragments.count, strict=True):
        group_size[groups[loci]] += count
    design = Design.of_fragments(np.maximum(single_n, 0), e, w, list(groups), group_size)
    return Observed.of_loci(np.maximum(single_a, 0), design).with_fragments(e, w, patterns)


def score_loci(
    a: np.ndarray,
    n: np.ndarray,
    e: np.ndarray,
    w: np.ndarray,
    settings: CallSettings,
    rng: np.random.Generator,
    full: bool = True,
    length_table: np.ndarray | None = None,
    classes: LengthClasses | None = None,
    fragments: Fragments = Fragments(),
) -> Score:
    """Outlier screen, MLE, LRT and its p-value for one sample at one set of loci.

    `full` adds what only a sample's own call needs: the profile CI and the null distribution even when the
    statistic is 0 (for the LOD). Null scores skip both, and a statistic of 0 has p = 1 whatever the null.
    With `classes`, `length_table` holds the ALT molecules per locus and length class (rows sum to `a`) and
    the fit, test and null weigh each by its class's length ratio; the outlier screen stays on counts.
    `fragments` are those covering several of these loci (local indices): each is one piece of evidence.
    """
    outliers = find_outliers(a, n, e, w, settings.outlier_max_p, settings.ci_level, settings.overdispersion)
    used = ~outliers
    if not used.any():
        empty = Design.of_loci(np.zeros(0), np.zeros(0), np.zeros(0))
        return Score(
            used, outliers, np.nan, (np.nan, np.nan), 0.0, 1.0, NullDistribution("asymptotic"), empty
        )
    kept = _fragments_within(fragments, used)
    table = None if classes is None else length_table[used]
    observed = evidence(n[used], a[used], e[used], w[used], kept, table, classes)
    tables = observed.tables(None if classes is None else classes.ratio)
    f_hat = float(fit(tables)[0])
    spread = (
        dispersion(f_hat, a[used], n[used], e[used], w[used], settings.ci_level)
        if settings.overdispersion
        else 1.0
    )
    ci = profile_interval(tables, settings.ci_level, spread) if full else (np.nan, np.nan)
    statistic = float(lr_statistics(tables)[0])
    mutant_fragments = int(observed.count.sum())
    mutant_loci = int(np.count_nonzero(a[used]))
    needed = full or statistic > 0
    null = null_distribution(observed.design, settings, rng, classes) if needed else NullDistribution("none")
    p_value = null.p_value(statistic) if statistic > 0 else 1.0
    return Score(
        used, outliers, f_hat, ci, statistic, p_value, null, observed.design, mutant_fragments, mutant_loci,
        spread, classes,
    )  # fmt: skip


def _fragments_within(fragments: Fragments, keep: np.ndarray) -> Fragments:
    """The fragments restricted to the kept loci (renumbered); those left on fewer than two are one-locus
    molecules again, already in the per-locus counts."""
    new_index = np.cumsum(keep) - 1
    loci, alt, length, count = [], [], [], []
    for members, is_alt, fragment_length, n in zip(
        fragments.loci, fragments.alt, fragments.length, fragments.count, strict=True
    ):
        members = np.asarray(members)
        inside = keep[members]
        if inside.sum() < 2:
            continue
        loci.append(tuple(int(i) for i in new_index[members[inside]]))
        alt.append(is_alt[inside])
        length.append(fragment_length if is_alt[inside].any() else -1)
        count.append(n)
    return Fragments(tuple(loci), tuple(alt), tuple(length), tuple(count))


# ----------------------------------------------------------------------------------------------------------
# Helpers for the sample table
# ----------------------------------------------------------------------------------------------------------
def mtm_per_ml(tumor_fraction: float, cfdna_ng: float, plasma_ml: float) -> float:
    """Mean tumor molecules per mL: (f / 2) x haploid genome equivalents per mL (1 haploid genome = 3.3 pg).

    f / 2 is the expected ALT share for a clonal heterozygous SNV, so this counts mutant molecules per locus
    per mL of plasma, as Signatera reports. NaN when cfDNA mass or plasma volume is unknown.
    """
    values = (tumor_fraction, cfdna_ng, plasma_ml)
    if any(v is None or not np.isfinite(v) for v in values) or plasma_ml <= 0:
        return float("nan")
    return float(tumor_fraction / 2 * cfdna_ng * 1000 / HAPLOID_GENOME_PG / plasma_ml)


def decide_status(
    p_value: float,
    threshold: float,
    lod: float,
    n_loci: int,
    molecules: int,
    settings: CallSettings,
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


# ----------------------------------------------------------------------------------------------------------
# The cohort
# ----------------------------------------------------------------------------------------------------------
@dataclass
class Cohort:
    """Count matrices (samples x unique loci) aligned with the background table."""

    loci: pd.DataFrame  # locus_rates rows (unique loci)
    alt: np.ndarray
    total: np.ndarray
    ref: np.ndarray
    row: dict[str, int]  # sample_id -> matrix row
    samples: pd.DataFrame  # indexed by sample_id
    panels: dict[str, pd.DataFrame]  # patient -> chrom, pos, ref, alt, context, locus (row of loci), weight
    cohort_reason: np.ndarray  # per locus: "" or why excluded for everyone
    patient_reason: dict[str, dict[int, str]]  # patient -> locus -> why excluded for that patient
    alt_lengths: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)  # (row, locus) -> lengths
    length_model: LengthModel | None = None  # set when fragment lengths weigh in
    counts_only: set[str] = field(default_factory=set)  # samples lacking some ALT molecules' lengths
    contaminating: dict[str, set[str]] = field(default_factory=dict)  # sample -> panels set aside (see below)
    # row -> the sample's fragments informative at several loci: (cohort loci, ALT at each, length, count)
    fragments: dict[int, list[tuple[np.ndarray, np.ndarray, int, int]]] = field(default_factory=dict)
    _classes: dict[str, LengthClasses] = field(default_factory=dict)

    def fragments_at(self, sample_id: str, loci: np.ndarray) -> Fragments:
        """The sample's fragments informative at two or more of `loci` (cohort loci), on local indices."""
        found = self.fragments.get(self.row[sample_id])
        if not found:
            return Fragments()
        local = {int(locus): i for i, locus in enumerate(loci)}
        projected = Fragments()
        members, alts, lengths, counts = [], [], [], []
        for cohort_loci, alt, length, count in found:
            inside = np.array([int(locus) in local for locus in cohort_loci])
            if inside.sum() < 2:
                continue
            members.append(tuple(local[int(locus)] for locus in cohort_loci[inside]))
            alts.append(alt[inside])
            lengths.append(length if alt[inside].any() else -1)
            counts.append(count)
        if members:
            projected = Fragments(tuple(members), tuple(alts), tuple(lengths), tuple(counts))
        return projected

    def length_classes(self, sample_id: str) -> LengthClasses | None:
        """The sample's fragment-length classes (its tumor length model learned without its ALT molecules);
        None when lengths do not weigh in, or the sample's count table lacks some ALT molecules' lengths."""
        if self.length_model is None or sample_id in self.counts_only:
            return None
        if sample_id not in self._classes:
            self._classes[sample_id] = self.length_model.classes(sample_id)
        return self._classes[sample_id]

    def has_all_lengths(self, sample_id: str) -> bool:
        """Whether the count table gave a length for every ALT molecule of the sample."""
        r = self.row[sample_id]
        loci = np.flatnonzero(self.alt[r])
        return all(
            len(lengths) == n
            for lengths, n in zip(self.lengths_at(sample_id, loci), self.alt[r, loci], strict=True)
        )

    def lengths_at(self, sample_id: str, loci: np.ndarray) -> list[np.ndarray]:
        """Fragment lengths of the sample's ALT molecules at each of `loci`."""
        r, empty = self.row[sample_id], np.zeros(0, dtype=np.int64)
        return [self.alt_lengths.get((r, int(locus)), empty) for locus in loci]

    def rates_without(self, sample_id: str, loci: np.ndarray) -> np.ndarray:
        """Background rates at `loci` with this sample's own molecules taken out of the pool.

        Null scores must not test a sample against rates it helped to estimate (that would flatter them).
        """
        r = self.row[sample_id]
        table = self.loci.iloc[loci]
        alt = table["alt_molecules"].to_numpy() - self.alt[r, loci]
        total = table["total_molecules"].to_numpy() - self.total[r, loci]
        m, mu = table["prior_molecules"].to_numpy(), table["context_rate"].to_numpy()
        return (np.maximum(alt, 0) + m * mu) / (np.maximum(total, 0) + m)

    def background_scale(self, sample_id: str, panel_patient: str, prior: float) -> float:
        """How noisy this library is relative to the cohort: its ALT molecules over the expected background at
        every usable locus outside its own patient's panel and outside the panel being scored.

        Libraries differ in damage and PCR error (input, extraction, batch); the locus rates are cohort means.
        The same sample's molecules at other patients' loci hold no tumor signal for it and measure its own
        level (as INVAR uses the other patients' loci sequenced in the same sample). The estimate is shrunk
        toward 1 by a Gamma prior worth `prior` expected molecules: (observed + prior) / (expected + prior).
        """
        r = self.row[sample_id]
        use = (self.cohort_reason == "") & (self.total[r] > 0)
        # Loci of a patient whose tumor DNA the sample seems to carry (`contaminating`, set once the null scores
        # are in) hold signal, not noise: left in, they would make the sample look noisy and hide its own MRD.
        set_aside = self.contaminating.get(sample_id, set())
        for patient in {panel_patient, self.samples.loc[sample_id, "patient_id"], *set_aside}:
            if patient in self.panels:
                where = self.panels[patient]["locus"].to_numpy()
                use[where[where >= 0]] = False
        loci = np.flatnonzero(use)
        if not loci.size:
            return 1.0
        expected = float((self.total[r, loci] * self.rates_without(sample_id, loci)).sum())
        observed = float(self.alt[r, loci].sum())
        return (observed + prior) / (expected + prior)


@dataclass(frozen=True)
class CohortLoci:
    """The cohort's unique loci (the background table's rows), each patient's panel on them, and the loci excluded
    for everyone or for one patient: what every sample's `Cohort` shares, so a job calling many samples lays it
    out once."""

    loci: pd.DataFrame
    index: pd.MultiIndex  # LOCUS_KEY -> row of `loci`
    panels: dict[str, pd.DataFrame]
    cohort_reason: np.ndarray
    patient_reason: dict[str, dict[int, str]]


def cohort_loci(panel: pd.DataFrame, locus_rates: pd.DataFrame, excluded: pd.DataFrame) -> CohortLoci:
    loci = locus_rates.reset_index(drop=True)
    index = pd.MultiIndex.from_frame(loci[LOCUS_KEY])
    panels = {}
    for patient, group in panel.groupby("patient_id", sort=True):
        where = index.get_indexer(pd.MultiIndex.from_frame(group[LOCUS_KEY]))
        rows = group[LOCUS_KEY + ["context"]].reset_index(drop=True)
        rows = rows.assign(
            # The CHIP-gene flag of mrdtrack.inputs.panel, for loci.tsv and the report (absent in an older panel table).
            gene=group["gene"].to_numpy() if "gene" in group else "",
            chip_suspect=group["chip_suspect"].to_numpy(dtype=bool) if "chip_suspect" in group else False,
        )
        panels[str(patient)] = rows.assign(locus=where, weight=group["weight"].to_numpy(dtype=float))
    cohort_reason = np.full(len(loci), "", dtype=object)
    patient_reason: dict[str, dict[int, str]] = {}
    ex_index = index.get_indexer(pd.MultiIndex.from_frame(excluded[LOCUS_KEY])) if len(excluded) else []
    for locus, patient, reason in zip(ex_index, excluded["patient_id"], excluded["reason"], strict=True):
        if locus < 0:
            continue
        if patient == "":
            cohort_reason[locus] = reason
        else:
            patient_reason.setdefault(patient, {}).setdefault(int(locus), reason)
    return CohortLoci(loci, index, panels, cohort_reason, patient_reason)


def build_cohort(
    counts: pd.DataFrame,
    samples: pd.DataFrame,
    layout: CohortLoci,
    fragments: pd.DataFrame | None = None,
) -> Cohort:
    """The samples' count matrices on the cohort's loci."""
    index = layout.index
    sample_ids = list(samples["sample_id"])
    row = {s: i for i, s in enumerate(sample_ids)}
    shape = (len(sample_ids), len(layout.loci))
    alt, ref = np.zeros(shape, dtype=np.int64), np.zeros(shape, dtype=np.int64)
    rows = counts[counts["sample_id"].isin(row)]
    r = rows["sample_id"].map(row).to_numpy()
    c = index.get_indexer(pd.MultiIndex.from_frame(rows[LOCUS_KEY]))
    ok = c >= 0
    alt[r[ok], c[ok]] = rows["alt_molecules"].to_numpy()[ok]
    ref[r[ok], c[ok]] = rows["ref_molecules"].to_numpy()[ok]
    text = rows["alt_lengths"].to_numpy() if "alt_lengths" in rows else np.full(len(rows), "")
    alt_lengths = {
        (int(i), int(j)): parse_lengths(t) for i, j, t, keep in zip(r, c, text, ok, strict=True) if keep and t
    }
    return Cohort(
        layout.loci, alt, alt + ref, ref, row, samples.set_index("sample_id", drop=False), layout.panels,
        layout.cohort_reason, layout.patient_reason, alt_lengths,
        fragments=_fragments_by_row(fragments, index, row),
    )  # fmt: skip


def _fragments_by_row(
    fragments: pd.DataFrame | None, index: pd.MultiIndex, row: dict[str, int]
) -> dict[int, list[tuple[np.ndarray, np.ndarray, int, int]]]:
    """The counting step's multi-locus fragments (sample_id + counting.FRAGMENT_COLUMNS) on cohort loci."""
    by_row: dict[int, list[tuple[np.ndarray, np.ndarray, int, int]]] = {}
    if fragments is None or not len(fragments):
        return by_row
    for sample_id, chrom, loci, alleles, length, count in fragments[
        ["sample_id", "chrom", "loci", "alleles", "length", "fragments"]
    ].itertuples(index=False):
        if sample_id not in row:
            continue
        keys = [
            (chrom, int(pos), ref, alt) for pos, ref, alt in (item.split(":") for item in loci.split(","))
        ]
        where = index.get_indexer(keys)
        known = where >= 0
        if known.sum() < 2:
            continue
        is_alt = np.array([letter == "A" for letter in alleles])
        by_row.setdefault(row[sample_id], []).append((where[known], is_alt[known], int(length), int(count)))
    return by_row


def candidate_loci(
    cohort: Cohort, panel_patient: str, sample_patient: str
) -> tuple[pd.DataFrame, np.ndarray]:
    """A panel's loci with the reason each is not usable for this sample ("" = usable)."""
    rows = cohort.panels[panel_patient]
    excluded_here = cohort.patient_reason.get(panel_patient, {})
    own = set(cohort.panels[sample_patient]["locus"]) if sample_patient in cohort.panels else set()
    reasons = []
    for locus in rows["locus"]:
        if locus < 0:
            reasons.append("no_background")
        elif cohort.cohort_reason[locus]:
            reasons.append(cohort.cohort_reason[locus])
        elif locus in excluded_here:
            reasons.append(excluded_here[locus])
        elif panel_patient != sample_patient and locus in own:
            reasons.append("in_sample_patient_panel")
        else:
            reasons.append("")
    return rows, np.asarray(reasons, dtype=object)


@dataclass
class CallResult:
    calls: pd.DataFrame
    loci: pd.DataFrame
    null_scores: pd.DataFrame
    threshold: float
    length_model: pd.DataFrame  # fraglen.LengthModel.summary(); empty when lengths do not weigh in


@dataclass
class PanelData:
    """One sample at one panel: the panel's loci, why each is not usable ("" = usable), and per locus the
    cohort locus, molecules, ALT molecules and the sample's background rate."""

    rows: pd.DataFrame
    reasons: np.ndarray
    locus: np.ndarray
    n: np.ndarray
    a: np.ndarray
    e: np.ndarray

    @property
    def usable(self) -> np.ndarray:
        return self.reasons == ""


def panel_data(
    cohort: Cohort, sample_id: str, panel_patient: str, settings: CallSettings, null_score: bool
) -> PanelData:
    sample = cohort.samples.loc[sample_id]
    rows, reasons = candidate_loci(cohort, panel_patient, sample["patient_id"])
    r = cohort.row[sample_id]
    locus = rows["locus"].to_numpy()
    safe = np.where(locus >= 0, locus, 0)
    n, a = np.where(locus >= 0, cohort.total[r, safe], 0), cohort.alt[r, safe]
    reasons = np.where((reasons == "") & (n == 0), "no_molecules", reasons)
    # Null scores use rates without the sample's own molecules; a sample's own loci never held them.
    e = cohort.rates_without(sample_id, safe) if null_score else cohort.loci["rate"].to_numpy()[safe]
    e = np.minimum(e * sample_scale(cohort, sample_id, panel_patient, settings), 0.5)
    return PanelData(rows, reasons, locus, n, a, e)


def _score_sample_at_panel(
    cohort: Cohort, sample_id: str, panel_patient: str, settings: CallSettings, null_score: bool
) -> tuple[pd.DataFrame, np.ndarray, Score | None]:
    data = panel_data(cohort, sample_id, panel_patient, settings, null_score)
    usable = data.usable
    if not usable.any():
        return data.rows, data.reasons, None
    rng = seeded_rng(settings.seed, sample_id, panel_patient)
    w = data.rows["weight"].to_numpy()[usable]
    classes = cohort.length_classes(sample_id)
    table = classes.table(cohort.lengths_at(sample_id, data.locus[usable])) if classes else None
    fragments = cohort.fragments_at(sample_id, data.locus[usable])
    score = score_loci(
        data.a[usable], data.n[usable], data.e[usable], w, settings, rng, not null_score, table, classes,
        fragments,
    )  # fmt: skip
    data.reasons[np.flatnonzero(usable)[score.outliers]] = "outlier_in_sample"
    return data.rows, data.reasons, score


def attach_length_model(cohort: Cohort, fragment_lengths: pd.DataFrame, settings: CallSettings) -> None:
    """Learn the cohort's fragment-length model (fraglen.py) from the samples' REF lengths and the plasma
    samples' ALT molecules at their own usable panel loci, with the background expected there."""
    incomplete = _mark_incomplete_lengths(cohort)
    own_panel_alt = {}
    for sample_id in cohort.samples.index:
        found = None if sample_id in incomplete else _own_panel_alt(cohort, sample_id, settings)
        if found is not None:
            own_panel_alt[sample_id] = found
    cohort.length_model = build_length_model(
        ref_histograms(fragment_lengths),
        own_panel_alt,
        settings.fragment_length_prior,
        settings.fragment_length_bandwidth,
    )
    _, molecules = cohort.length_model.tumor_ratio()
    log.info("fragment-length model: %.0f tumor molecules estimated in the cohort", molecules)


def attach_sample_length_model(
    cohort: Cohort,
    sample_id: str,
    fragment_lengths: pd.DataFrame,
    state: pd.DataFrame,
    settings: CallSettings,
) -> None:
    """The cohort's length model (its `LengthModel.state()`) around one sample of a one-sample cohort: the
    classes it gives the sample are those `attach_length_model` on the whole cohort gives it."""
    incomplete = _mark_incomplete_lengths(cohort)
    ref = ref_histograms(fragment_lengths).get(sample_id)
    cohort_ref = state["cohort_ref"].to_numpy(dtype=float)
    found = None if incomplete else _own_panel_alt(cohort, sample_id, settings)
    excess = None if found is None else own_excess(cohort_ref if ref is None else ref, cohort_ref, *found)
    cohort.length_model = LengthModel.for_sample(
        state, sample_id, ref, excess, settings.fragment_length_prior, settings.fragment_length_bandwidth
    )


def _mark_incomplete_lengths(cohort: Cohort) -> list[str]:
    incomplete = [s for s in cohort.samples.index if not cohort.has_all_lengths(s)]
    cohort.counts_only = set(incomplete)
    if incomplete:
        log.warning(
            "no fragment length for some mutant molecules of %d samples (%s): they are called on counts only "
            "(count tables from an older mrdtrack? recount them)",
            len(incomplete),
            ", ".join(incomplete[:5]),
        )
    return incomplete


def _own_panel_alt(cohort: Cohort, sample_id: str, settings: CallSettings) -> tuple[np.ndarray, float] | None:
    """A plasma sample's ALT lengths at its own usable panel loci and the background expected there; None for
    a sample that teaches the length model nothing (not plasma, no panel)."""
    sample = cohort.samples.loc[sample_id]
    if sample["sample_type"] != "plasma" or sample["patient_id"] not in cohort.panels:
        return None
    data = panel_data(cohort, sample_id, sample["patient_id"], settings, null_score=False)
    usable = data.usable
    lengths = cohort.lengths_at(sample_id, data.locus[usable])
    expected = float((data.n[usable] * data.e[usable]).sum())
    return np.concatenate([np.zeros(0, np.int64), *lengths]), expected


def sample_scale(cohort: Cohort, sample_id: str, panel_patient: str, settings: CallSettings) -> float:
    """The factor applied to every locus rate of this sample at this panel (1 when `sample_background` is off)."""
    if not settings.sample_background:
        return 1.0
    return cohort.background_scale(sample_id, panel_patient, settings.sample_background_prior)


def null_panels(sample_id: str, sample_patient: str, panels: list[str], settings: CallSettings) -> list[str]:
    """The other patients' panels a sample is scored against: `max_null_panels` of them (all when None), chosen
    by a hash of sample and panel, so that the choice is fixed and the same for any order of the cohort."""
    others = [p for p in panels if p != sample_patient]
    if settings.max_null_panels is None or len(others) <= settings.max_null_panels:
        return sorted(others)
    ranked = sorted(others, key=lambda p: (zlib.crc32(f"{settings.seed}\x1f{sample_id}\x1f{p}".encode()), p))
    return sorted(ranked[: settings.max_null_panels])


def null_scores(cohort: Cohort, settings: CallSettings, workers: int = 1) -> pd.DataFrame:
    """Every plasma and control sample scored against other patients' panels (`null_panels`): work linear in
    the samples."""
    scored = cohort.samples[cohort.samples["sample_type"].isin(["plasma", "control"])]
    panels = list(cohort.panels)
    pairs = [
        (sample_id, patient)
        for sample_id, sample_patient in zip(scored.index, scored["patient_id"], strict=True)
        for patient in null_panels(sample_id, sample_patient, panels, settings)
    ]
    records = in_parallel(_null_score, pairs, (cohort, settings), workers)
    return mark_contamination(pd.DataFrame(records, columns=NULL_COLUMNS), settings)


def _null_score(shared: tuple[Cohort, CallSettings], pair: tuple[str, str]) -> dict[str, Any]:
    cohort, settings = shared
    sample_id, patient = pair
    _, reasons, score = _score_sample_at_panel(cohort, sample_id, patient, settings, null_score=True)
    return _null_record(cohort, cohort.samples.loc[sample_id], patient, reasons, score, settings)


def mark_contamination(nulls: pd.DataFrame, settings: CallSettings) -> pd.DataFrame:
    """Set aside, from the calibration, null scores that look like contamination rather than noise.

    A score significant after Bonferroni over the panels its sample was scored against (p <= rate / panels)
    holds another patient's tumor DNA: a sample swap or cross-contamination, which the calls flag. Left in,
    one such score would drag the threshold below its own tiny p-value and silence every real positive. A
    sample significant against more than `contamination_max_panels` panels is not contaminated by a donor but
    noisy, and noise is exactly what the calibration must see: those scores stay in.
    """
    nulls = nulls.copy()
    eligible = nulls["calibration"].to_numpy(dtype=bool)
    panels = nulls["sample_id"].map(nulls[eligible].groupby("sample_id").size()).fillna(0).to_numpy()
    significant = (
        eligible
        & nulls["supported"].to_numpy(dtype=bool)
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


def _null_record(
    cohort: Cohort,
    sample: pd.Series,
    patient: str,
    reasons: np.ndarray,
    score: Score | None,
    settings: CallSettings,
) -> dict[str, Any]:
    rows = cohort.panels[patient]
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
    """The p-value cut every call uses, where it came from, and how many null scores it rests on."""

    value: float
    source: str  # "empirical" or "nominal"
    n_null_scores: int


def call_sample(
    cohort: Cohort, sample_id: str, threshold: Threshold, nulls: pd.DataFrame, settings: CallSettings
) -> tuple[dict[str, Any], pd.DataFrame]:
    """One plasma sample at its own patient's panel: the calls.tsv row and its loci.tsv rows."""
    sample = cohort.samples.loc[sample_id]
    patient = sample["patient_id"]
    if patient not in cohort.panels:
        return _empty_call(sample, threshold, "the patient has no panel loci", settings), _no_loci()
    rows, reasons, score = _score_sample_at_panel(cohort, sample_id, patient, settings, null_score=False)
    scale = sample_scale(cohort, sample_id, patient, settings)
    loci = _loci_rows(cohort, sample, rows, reasons, scale)
    if score is None:
        return _empty_call(sample, threshold, "no usable panel loci", settings, len(rows)), loci
    used = loci["used"].to_numpy()
    n, a = (
        loci["ref_molecules"].to_numpy() + loci["alt_molecules"].to_numpy(),
        loci["alt_molecules"].to_numpy(),
    )
    rng = seeded_rng(settings.seed, sample_id, "lod")
    lod = lod95(score.design, threshold.value, score.null, settings, rng, score.classes)
    molecules = int(n[used].sum())
    status, reason = decide_status(
        score.p_value, threshold.value, lod, int(used.sum()), molecules, settings, score.mutant_fragments,
        score.mutant_loci,
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
    }, loci


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
    cohort: Cohort, sample: pd.Series, rows: pd.DataFrame, reasons: np.ndarray, scale: float = 1.0
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
            "background_rate": np.where(
                known, np.minimum(cohort.loci["rate"].to_numpy()[safe] * scale, 0.5), np.nan
            ),
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
        hits = mine[(mine["p_value"] <= threshold / max(len(mine), 1)) & mine["supported"]]
        flags += [f"possible_contamination:{p}" for p in sorted(hits["panel_patient_id"])]
    if n_outliers:
        flags.append(f"outlier_loci:{n_outliers}")
    return ";".join(flags)


@dataclass
class Calibration:
    """What the cohort step gives every sample's own call: the null scores, the threshold and the fragment-length
    model's state (None when lengths do not weigh in)."""

    null_scores: pd.DataFrame
    threshold: Threshold
    length_state: pd.DataFrame | None
    length_model: pd.DataFrame  # fraglen.LengthModel.summary(); empty when lengths do not weigh in


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
) -> Calibration:
    """The cohort step of calling: fragment-length model, null scores and the threshold they allow.

    `fragment_lengths` (sample_id, allele, length, molecules: the counting step's histograms) is needed when
    `settings.fragment_lengths` is on. `fragments` (sample_id + counting.FRAGMENT_COLUMNS) are the fragments
    that cover several loci; without them every molecule counts at its locus alone. `workers` processes share
    the scoring; the results do not depend on it."""
    settings = settings or CallSettings()
    cohort = build_cohort(counts, samples, cohort_loci(panel, locus_rates, excluded), fragments)
    if settings.fragment_lengths:
        if fragment_lengths is None:
            raise ValueError("calling.fragment_lengths needs the samples' fragment-length histograms")
        attach_length_model(cohort, fragment_lengths, settings)
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
    return Calibration(nulls, threshold, model.state() if model else None, summary)


@dataclass
class SampleCaller:
    """Calls plasma samples one at a time from their own tables and the cohort step's `calibration`: what a
    workflow call job holds. The cohort's loci are laid out once for all the samples it calls."""

    samples: pd.DataFrame
    panel: pd.DataFrame
    locus_rates: pd.DataFrame
    excluded: pd.DataFrame
    calibration: Calibration
    settings: CallSettings = field(default_factory=CallSettings)

    def __post_init__(self) -> None:
        self._layout = cohort_loci(self.panel, self.locus_rates, self.excluded)

    def call(
        self,
        sample_id: str,
        counts: pd.DataFrame,
        fragment_lengths: pd.DataFrame | None = None,
        fragments: pd.DataFrame | None = None,
    ) -> tuple[dict[str, Any], pd.DataFrame]:
        """The sample's calls.tsv row and loci.tsv rows. Only the sample's rows of `counts`, `fragment_lengths`
        and `fragments` are read, so each may hold that sample alone."""
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
            attach_sample_length_model(cohort, sample_id, lengths, calibration.length_state, settings)
        nulls = calibration.null_scores[calibration.null_scores["sample_id"] == sample_id]
        cohort.contaminating[sample_id] = set(nulls.loc[nulls["contamination_candidate"], "panel_patient_id"])
        return call_sample(cohort, sample_id, calibration.threshold, nulls, settings)


def _rows_of(table: pd.DataFrame, sample_id: str) -> pd.DataFrame:
    return table[table["sample_id"] == sample_id]


def gather_calls(results: list[tuple[dict[str, Any], pd.DataFrame]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """calls.tsv and loci.tsv from the per-sample calls, in the contract's order."""
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
) -> CallResult:
    """`calibrate`, then `SampleCaller.call` for every plasma sample: the workflow's calling steps in one
    process (tests, benchmarks). The results are those of the workflow's jobs, whatever their layout."""
    settings = settings or CallSettings()
    calibration = calibrate(
        counts, samples, panel, locus_rates, excluded, settings, fragment_lengths, workers, fragments
    )
    plasma = list(samples.loc[samples["sample_type"] == "plasma", "sample_id"])
    inputs = _SampleInputs(counts, fragment_lengths, fragments)
    caller = SampleCaller(samples, panel, locus_rates, excluded, calibration, settings)
    results = in_parallel(_call_one, plasma, (inputs, caller), workers)
    calls, loci = gather_calls(results)
    threshold = calibration.threshold.value
    return CallResult(calls, loci, calibration.null_scores, threshold, calibration.length_model)


@dataclass
class _SampleInputs:
    """The cohort's tables, split by sample once so that each sample's call reads only its own rows."""

    counts: pd.DataFrame
    fragment_lengths: pd.DataFrame | None
    fragments: pd.DataFrame | None

    def __post_init__(self) -> None:
        self._by_sample = {
            name: dict(tuple(table.groupby("sample_id", sort=False))) if table is not None else None
            for name, table in (
                ("counts", self.counts), ("fragment_lengths", self.fragment_lengths), ("fragments", self.fragments)
            )
        }  # fmt: skip

    def own(self, name: str, sample_id: str) -> pd.DataFrame | None:
        groups = self._by_sample[name]
        if groups is None:
            return None
        table = getattr(self, name)
        return groups.get(sample_id, table.iloc[:0])


def _call_one(
    shared: tuple[_SampleInputs, SampleCaller], sample_id: str
) -> tuple[dict[str, Any], pd.DataFrame]:
    inputs, caller = shared
    return caller.call(
        sample_id, inputs.own("counts", sample_id), inputs.own("fragment_lengths", sample_id),
        inputs.own("fragments", sample_id),
    )  # fmt: skip


def summarize(calls: pd.DataFrame) -> str:
    """One log line: how many samples got each status."""
    counts = calls["mrd_status"].value_counts()
    return ", ".join(f"{status}: {counts.get(status, 0)}" for status in MRD_STATUSES)


def write_calibration(calibration: Calibration, null_scores: str, threshold: str, length_state: str) -> None:
    """The cohort step's outputs: null_scores.tsv, threshold.json and the length model's state (header only
    when lengths do not weigh in)."""
    write_tsv(calibration.null_scores, null_scores)
    write_json(dataclasses.asdict(calibration.threshold), threshold)
    state = calibration.length_state
    write_tsv(pd.DataFrame(columns=STATE_COLUMNS) if state is None else state, length_state)


def read_calibration(null_scores: str, threshold: str, length_state: str) -> Calibration:
    nulls = read_table("null_scores", null_scores)
    with open(threshold, encoding="utf-8") as handle:
        cut = Threshold(**json.load(handle))
    state = read_table("length_state", length_state)
    empty = pd.DataFrame(columns=LENGTH_COLUMNS)
    return Calibration(nulls, cut, state if len(state) else None, empty)


def read_call_rows(paths: list[str]) -> list[tuple[dict[str, Any], pd.DataFrame]]:
    """The per-sample call jobs' outputs ({sample}.call.tsv, {sample}.loci.tsv pairs) for `gather_calls`."""
    results = []
    for call_path, loci_path in zip(paths[::2], paths[1::2], strict=True):
        call = read_table("calls", call_path).fillna({"collection_date": ""}).iloc[0].to_dict()
        loci = read_table("loci", loci_path)
        results.append((call, loci))
    return results
