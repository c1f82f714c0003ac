"""The cohort as a call sees it: the count matrices on the cohort's unique loci, each patient's panel on them,
the loci excluded for everyone or for one patient, and one sample's counts and background rates at one panel.

e_i is the cohort's locus rate times the sample's own factor: libraries differ in damage and PCR error, by
context and read orientation. With the sample's flank tallies (sample_rates.py, `Cohort.own_factors`), each
locus's rate in each orientation is multiplied by the sample's factor for the locus's context and that
orientation. A sample without them (a control, a count table without flanks) falls back to one scale measured
by its molecules at other patients' loci (`Cohort.background_scale`). Without either, a library noisier than
the cohort mean reads as tumor signal (benchmarks/detection.py, 25% library-to-library spread: 3/180 TF-0
samples positive and a calibrated threshold pushed down to p <= 0.0073 without the scale; 1/180 and the nominal
0.01 with it).

Each locus's molecules also come by read orientation (F1R2, F2R1), each orientation at the locus rate times the
background's orientation factor (`rate_f1r2` / `rate`, `rate_f2r1` / `rate`): damage such as 8-oxoG puts a
substitution's errors in one orientation (score.py, `Orientations`).

With fragment lengths on, the cohort also carries the fragment-length model (fraglen.py) that gives each sample
its length classes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from mrdtrack.calling.fraglen import (
    LengthClasses,
    LengthModel,
    build_length_model,
    own_excess,
    parse_lengths,
    ref_histograms,
)
from mrdtrack.calling.null import seeded_rng
from mrdtrack.calling.sample_rates import SampleFactors
from mrdtrack.calling.score import Fragments, Orientations, Score, score_loci
from mrdtrack.calling.settings import CallSettings
from mrdtrack.vocabulary import LOCUS_KEY

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CohortLoci:
    """The cohort's unique loci (the background table's rows), each patient's panel on them, and the loci excluded
    for everyone or for one patient: what every sample's `Cohort` shares, so a job calling many samples lays it
    out once."""

    loci: pd.DataFrame  # locus_rates rows (unique loci)
    index: pd.MultiIndex  # LOCUS_KEY -> row of `loci`
    panels: dict[str, pd.DataFrame]  # patient -> chrom, pos, ref, alt, context, locus (row of loci), weight
    cohort_reason: np.ndarray  # per locus: "" or why excluded for everyone
    patient_reason: dict[str, dict[int, str]]  # patient -> locus -> why excluded for that patient
    # per locus: its rate in F1R2 and in F2R1 molecules over its rate (None: a background without orientations)
    orientation_factor: np.ndarray | None = None


@dataclass(frozen=True, kw_only=True)
class Cohort:
    """Count matrices (samples x unique loci) aligned with the background table. Built whole by
    `build_cohort`, then only ever replaced (`with_length_model`, `dataclasses.replace`), never changed."""

    layout: CohortLoci  # the unique loci, each patient's panel on them and the exclusions
    alt: np.ndarray
    ref: np.ndarray
    total: np.ndarray  # alt + ref
    row: dict[str, int]  # sample_id -> matrix row
    samples: pd.DataFrame  # indexed by sample_id
    # F1R2 molecules, ALT and all (F2R1: the rest); None when the count tables lack read orientations
    alt_f1r2: np.ndarray | None = None
    total_f1r2: np.ndarray | None = None
    alt_lengths: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)  # (row, locus) -> lengths
    # row -> the sample's fragments informative at several loci: (cohort loci, ALT at each, length, count)
    fragments: dict[int, list[tuple[np.ndarray, np.ndarray, int, int]]] = field(default_factory=dict)
    length_model: LengthModel | None = None  # set when fragment lengths weigh in
    counts_only: frozenset[str] = frozenset()  # samples lacking some ALT molecules' lengths
    contaminating: Mapping[str, frozenset[str]] = field(default_factory=dict)  # sample -> panels set aside
    own_factors: Mapping[str, SampleFactors] = field(default_factory=dict)  # sample -> its flanks' factors
    # Memo of `length_classes`: derived from the fields above, so a replaced cohort starts a fresh one.
    _classes: dict[str, LengthClasses] = field(default_factory=dict, init=False, repr=False, compare=False)

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
        table = self.layout.loci.iloc[loci]
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
        use = (self.layout.cohort_reason == "") & (self.total[r] > 0)
        # Loci of a patient whose tumor DNA the sample seems to carry (`contaminating`, known once the null
        # scores are in) hold signal, not noise: left in, they would make the sample look noisy and hide its
        # own MRD.
        set_aside = self.contaminating.get(sample_id, frozenset())
        panels = self.layout.panels
        for patient in {panel_patient, self.samples.loc[sample_id, "patient_id"], *set_aside}:
            if patient in panels:
                where = panels[patient]["locus"].to_numpy()
                use[where[where >= 0]] = False
        loci = np.flatnonzero(use)
        if not loci.size:
            return 1.0
        expected = float((self.total[r, loci] * self.rates_without(sample_id, loci)).sum())
        observed = float(self.alt[r, loci].sum())
        return (observed + prior) / (expected + prior)


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
    oriented = {"rate_f1r2", "rate_f2r1"} <= set(loci.columns)
    factor = None
    if oriented:
        rate = loci["rate"].to_numpy(dtype=float)
        factor = np.stack(
            [np.divide(loci[c].to_numpy(dtype=float), rate, out=np.ones(len(loci)), where=rate > 0)
             for c in ("rate_f1r2", "rate_f2r1")],
            axis=1,
        )  # fmt: skip
    return CohortLoci(
        loci=loci, index=index, panels=panels, cohort_reason=cohort_reason, patient_reason=patient_reason,
        orientation_factor=factor,
    )  # fmt: skip


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
    alt_f1r2, total_f1r2 = _f1r2_molecules(rows, r[ok], c[ok], ok, shape)
    text = rows["alt_lengths"].to_numpy() if "alt_lengths" in rows else np.full(len(rows), "")
    alt_lengths = {
        (int(i), int(j)): parse_lengths(t) for i, j, t, keep in zip(r, c, text, ok, strict=True) if keep and t
    }
    return Cohort(
        layout=layout,
        alt=alt,
        ref=ref,
        total=alt + ref,
        alt_f1r2=alt_f1r2,
        total_f1r2=total_f1r2,
        row=row,
        samples=samples.set_index("sample_id", drop=False),
        alt_lengths=alt_lengths,
        fragments=_fragments_by_row(fragments, index, row),
    )


def _f1r2_molecules(
    rows: pd.DataFrame, r: np.ndarray, c: np.ndarray, ok: np.ndarray, shape: tuple[int, int]
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The F1R2 molecules (ALT, and REF + ALT) on the cohort's loci; (None, None) when the count rows lack
    orientations or theirs do not add up to the molecules (then no call uses orientations)."""
    columns = ["alt_f1r2", "alt_f2r1", "ref_f1r2", "ref_f2r1"]
    if not set(columns) <= set(rows.columns):
        return None, None
    alt_f1r2, alt_f2r1, ref_f1r2, ref_f2r1 = (rows[k].to_numpy()[ok] for k in columns)
    whole = (alt_f1r2 + alt_f2r1 == rows["alt_molecules"].to_numpy()[ok]) & (
        ref_f1r2 + ref_f2r1 == rows["ref_molecules"].to_numpy()[ok]
    )
    if not whole.all():
        log.warning("read orientations do not add up to the molecules in some count rows: not used")
        return None, None
    alt, total = np.zeros(shape, dtype=np.int64), np.zeros(shape, dtype=np.int64)
    alt[r, c], total[r, c] = alt_f1r2, alt_f1r2 + ref_f1r2
    return alt, total


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
    layout = cohort.layout
    rows = layout.panels[panel_patient]
    excluded_here = layout.patient_reason.get(panel_patient, {})
    own = set(layout.panels[sample_patient]["locus"]) if sample_patient in layout.panels else set()
    reasons = []
    for locus in rows["locus"]:
        if locus < 0:
            reasons.append("no_background")
        elif layout.cohort_reason[locus]:
            reasons.append(layout.cohort_reason[locus])
        elif locus in excluded_here:
            reasons.append(excluded_here[locus])
        elif panel_patient != sample_patient and locus in own:
            reasons.append("in_sample_patient_panel")
        else:
            reasons.append("")
    return rows, np.asarray(reasons, dtype=object)


@dataclass(frozen=True)
class SampleLoci:
    """One sample at one patient's panel loci: the panel's rows, why each locus is not usable for the sample
    ("" = usable), and per locus the cohort locus, the sample's molecules, ALT molecules and background rate."""

    rows: pd.DataFrame
    reasons: np.ndarray
    locus: np.ndarray
    n: np.ndarray
    a: np.ndarray
    e: np.ndarray
    orientations: Orientations | None = None  # the molecules and rates by read orientation, when known

    @property
    def usable(self) -> np.ndarray:
        return self.reasons == ""


def sample_loci(
    cohort: Cohort, sample_id: str, panel_patient: str, settings: CallSettings, null_score: bool
) -> SampleLoci:
    """The sample's counts and rates at `panel_patient`'s panel loci (a null score's rates leave the sample's
    own molecules out)."""
    sample = cohort.samples.loc[sample_id]
    rows, reasons = candidate_loci(cohort, panel_patient, sample["patient_id"])
    r = cohort.row[sample_id]
    locus = rows["locus"].to_numpy()
    safe = np.where(locus >= 0, locus, 0)
    n, a = np.where(locus >= 0, cohort.total[r, safe], 0), cohort.alt[r, safe]
    reasons = np.where((reasons == "") & (n == 0), "no_molecules", reasons)
    # Null scores use rates without the sample's own molecules; a sample's own loci never held them.
    e = cohort.rates_without(sample_id, safe) if null_score else cohort.layout.loci["rate"].to_numpy()[safe]
    own = own_locus_factors(cohort, sample_id, safe, settings)
    if own is None:
        e = np.minimum(e * sample_scale(cohort, sample_id, panel_patient, settings), 0.5)
    oriented = _orientations(cohort, r, locus, e, own)
    if oriented is not None:
        e = oriented.pooled_rate()
    elif own is not None:  # counts without orientations: the two orientations' factors, weighed alike
        factor = cohort.layout.orientation_factor
        weights = np.ones_like(own) if factor is None else factor[safe]
        e = np.minimum(e * (own * weights).sum(axis=1) / weights.sum(axis=1), 0.5)
    return SampleLoci(rows=rows, reasons=reasons, locus=locus, n=n, a=a, e=e, orientations=oriented)


def own_locus_factors(
    cohort: Cohort, sample_id: str, loci: np.ndarray, settings: CallSettings
) -> np.ndarray | None:
    """The sample's own factors (sample_rates.py) at `loci` (cohort loci) in their F1R2 and F2R1 molecules,
    loci x 2; None when `sample_background` is off or the sample has no flank tallies."""
    factors = cohort.own_factors.get(sample_id) if settings.sample_background else None
    if factors is None:
        return None
    return factors.of_loci(cohort.layout.loci.iloc[loci])


def _orientations(
    cohort: Cohort, r: int, locus: np.ndarray, e: np.ndarray, own: np.ndarray | None = None
) -> Orientations | None:
    """The sample's molecules at `locus` (cohort loci; -1: none) by read orientation, each orientation at the
    locus's rate `e` times its orientation factor and the sample's `own` factor of that orientation (at most
    0.5); None when counts or background lack them."""
    factor = cohort.layout.orientation_factor
    if factor is None or cohort.alt_f1r2 is None or cohort.total_f1r2 is None:
        return None
    known = locus >= 0
    safe = np.where(known, locus, 0)
    alt, total = np.where(known, cohort.alt[r, safe], 0), np.where(known, cohort.total[r, safe], 0)
    alt_f1r2 = np.where(known, cohort.alt_f1r2[r, safe], 0)
    total_f1r2 = np.where(known, cohort.total_f1r2[r, safe], 0)
    return Orientations(
        alt=np.stack([alt_f1r2, alt - alt_f1r2], axis=1),
        total=np.stack([total_f1r2, total - total_f1r2], axis=1),
        rate=np.minimum(e[:, None] * factor[safe] * (1.0 if own is None else own), 0.5),
    )


def score_at_panel(
    cohort: Cohort, sample_id: str, panel_patient: str, settings: CallSettings, null_score: bool
) -> tuple[pd.DataFrame, np.ndarray, Score | None]:
    """The sample scored at `panel_patient`'s panel: the panel's rows, why each locus was not used ("" = used,
    in-sample outliers included) and the score (None without a usable locus)."""
    here = sample_loci(cohort, sample_id, panel_patient, settings, null_score)
    usable = here.usable
    if not usable.any():
        return here.rows, here.reasons, None
    rng = seeded_rng(settings.seed, sample_id, panel_patient)
    w = here.rows["weight"].to_numpy()[usable]
    classes = cohort.length_classes(sample_id)
    table = classes.table(cohort.lengths_at(sample_id, here.locus[usable])) if classes else None
    fragments = cohort.fragments_at(sample_id, here.locus[usable])
    oriented = None if here.orientations is None else here.orientations[usable]
    score = score_loci(
        here.a[usable], here.n[usable], here.e[usable], w, settings, rng,
        full=not null_score, length_table=table, classes=classes, fragments=fragments, orientations=oriented,
    )  # fmt: skip
    reasons = here.reasons.copy()
    reasons[np.flatnonzero(usable)[score.outliers]] = "outlier_in_sample"
    return here.rows, reasons, score


def with_length_model(cohort: Cohort, fragment_lengths: pd.DataFrame, settings: CallSettings) -> Cohort:
    """The cohort with its fragment-length model (fraglen.py), learned from the samples' REF lengths and the
    plasma samples' ALT molecules at their own usable panel loci, with the background expected there."""
    incomplete = _incomplete_lengths(cohort)
    own_panel_alt = {}
    for sample_id in cohort.samples.index:
        found = None if sample_id in incomplete else _own_panel_alt(cohort, sample_id, settings)
        if found is not None:
            own_panel_alt[sample_id] = found
    model = build_length_model(
        ref_histograms(fragment_lengths),
        own_panel_alt,
        settings.fragment_length_prior,
        settings.fragment_length_bandwidth,
    )
    _, molecules = model.tumor_ratio()
    log.info("fragment-length model: %.0f tumor molecules estimated in the cohort", molecules)
    return replace(cohort, length_model=model, counts_only=frozenset(incomplete))


def with_sample_length_model(
    cohort: Cohort,
    sample_id: str,
    fragment_lengths: pd.DataFrame,
    state: pd.DataFrame,
    settings: CallSettings,
) -> Cohort:
    """A one-sample cohort with the cohort's length model (its `LengthModel.state()`) around its sample: the
    classes it gives the sample are those `with_length_model` on the whole cohort gives it."""
    incomplete = _incomplete_lengths(cohort)
    ref = ref_histograms(fragment_lengths).get(sample_id)
    cohort_ref = state["cohort_ref"].to_numpy(dtype=float)
    found = None if incomplete else _own_panel_alt(cohort, sample_id, settings)
    excess = None if found is None else own_excess(cohort_ref if ref is None else ref, cohort_ref, *found)
    model = LengthModel.for_sample(
        state, sample_id, ref, excess, settings.fragment_length_prior, settings.fragment_length_bandwidth
    )
    return replace(cohort, length_model=model, counts_only=frozenset(incomplete))


def _incomplete_lengths(cohort: Cohort) -> list[str]:
    """The samples whose count table lacks some ALT molecules' lengths: they are called on counts only."""
    incomplete = [s for s in cohort.samples.index if not cohort.has_all_lengths(s)]
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
    if sample["sample_type"] != "plasma" or sample["patient_id"] not in cohort.layout.panels:
        return None
    here = sample_loci(cohort, sample_id, sample["patient_id"], settings, null_score=False)
    usable = here.usable
    lengths = cohort.lengths_at(sample_id, here.locus[usable])
    expected = float((here.n[usable] * here.e[usable]).sum())
    return np.concatenate([np.zeros(0, np.int64), *lengths]), expected


def sample_scale(cohort: Cohort, sample_id: str, panel_patient: str, settings: CallSettings) -> float:
    """The one factor applied to every locus rate of a sample without flank tallies at this panel (1 when
    `sample_background` is off)."""
    if not settings.sample_background:
        return 1.0
    return cohort.background_scale(sample_id, panel_patient, settings.sample_background_prior)


def sample_level(
    cohort: Cohort, sample_id: str, panel_patient: str, settings: CallSettings
) -> tuple[float, str]:
    """The sample's overall noise level relative to the cohort and where it comes from: `own_flanks` (its flank
    tallies' overall factor; each locus has its context and orientation's), `other_panels` (one scale from its
    molecules at other patients' loci) or `off` (`sample_background: false`)."""
    if not settings.sample_background:
        return 1.0, "off"
    own = cohort.own_factors.get(sample_id)
    if own is not None:
        return own.overall, "own_flanks"
    return sample_scale(cohort, sample_id, panel_patient, settings), "other_panels"
