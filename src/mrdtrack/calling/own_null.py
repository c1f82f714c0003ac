"""Every sample its own null: synthetic panels drawn from its own flank positions.

The reads around a sample's panel loci cover reference positions that hold no tumor variant (counting/flanks.py):
their non-reference molecules are this library's own noise. A synthetic panel takes, for each usable locus of
the patient's real panel, one flank position of the same substitution and trinucleotide context (pyrimidine
strand) and of similar depth (within `calling.synthetic_depth_fold`), and draws fresh molecules at the real
locus's depth (split between read orientations as at that position) at the real locus's rate times the
sample's own noise level at its matched positions (`own_level`), with lengths from the sample's non-tumor
length distribution. Fresh draws rather than the position's own molecules: at plasma depth a
context's few dozen flank positions hold well under one ALT molecule, so the positions' own counts would give a
lumpy null (a few synthetic loci with an ALT, most never) in which the two-locus support a positive needs hardly
ever shows (on the trial-sized demo 6% of tumor-free samples had an empirical p-value <= 0.01). Scored
as the real panel is scored (the real loci's background rates, by read orientation when the call weighs them,
and weights, the same outlier screen, statistic, fragment-length classes and support rule), each synthetic
panel is a draw of what this sample's own panel would
show without tumor DNA: the sample's own null, which needs no other patient and no control, so a bespoke capture
gets one too.

Sharing the work: the synthetic panels are matched locus for locus to the real panel, so their statistics are
exchangeable with the real one under the null, and the real panel's null distribution (score.py) turns each of
them into a p-value on the real call's scale. The molecules are drawn a block of panels at a time
(`DRAW_CELLS`) and only the synthetic loci with ALT molecules kept, a few per panel; the likelihood-ratio
statistics of all synthetic panels are then one fit over those and a few sums of their depths per panel
(synthetic.py), never dense panels x loci x length-class tables (1.9 GB at 20,000 loci). Only a panel with a
locus that the outlier screen could drop (binomial tail below `outlier_max_p`, rare) is scored alone. Synthetic
loci are independent molecules, as fresh draws are.

Positions whose ALT share is far above noise are germline or clonal-hematopoiesis sites, not noise, and never
enter a synthetic panel (`flank_pool`): at least 2 ALT molecules of one base and an ALT share of at least
`flank_max_vaf`, or a binomial tail against the sample's own rate of the class below `flank_noise_max_p`.

The threshold of the sample is its own null's at the target false-positive rate (`calibrate_threshold`), once
there are `null_scores_needed` synthetic panels; otherwise the call keeps the cohort's threshold and says why.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mrdtrack.calling.flank_pool import FlankPool, Matched, match_loci
from mrdtrack.calling.fraglen import LengthClasses
from mrdtrack.calling.inference import binomial_tail
from mrdtrack.calling.null import NullDistribution, calibrate_threshold, null_scores_needed, seeded_rng
from mrdtrack.calling.score import Orientations, score_loci
from mrdtrack.calling.settings import CallSettings
from mrdtrack.calling.synthetic import synthetic_statistics

# `calling.own_level_prior`, the prior on the sample's own level at its matched flank positions (`own_level`):
# the call's rates already carry the sample's own factors (sample_rates.py, shrunk across the cohort), so the
# level is a check against rates that miss the library's noise, not a second estimate of it: strong enough
# that the ~10 flank ALT molecules a sample has at plasma depth do not swing its own null (a level of 0.7 from
# Poisson noise halves two-locus support), weak enough that a library at twice its rates with thousands of
# expected flank ALTs is held to its own noise.

# The own null lowers a sample's threshold below the target rate only when more of its panels reach p <= rate
# than the rate explains (binomial upper tail below this): a check of the call's rates, not a second noisy
# estimate of the rate they already hold.
OWN_NULL_EXCESS_P = 0.05

# Synthetic (panel, locus) cells whose molecules are drawn at a time: the dense draws of one block (a few
# 8-byte arrays of this many cells, ~16 MB each) bound the memory whatever the panel's size; only the cells
# with ALT molecules are kept.
DRAW_CELLS = 2_000_000


@dataclass(frozen=True)
class OwnNull:
    """A sample's synthetic null panels: each one's statistic and whether it has the support a positive needs,
    or why there are none (`reason`)."""

    statistics: np.ndarray
    supported: np.ndarray
    reason: str = ""
    group_matched: int = 0  # real loci whose context had no flank position: matched within its rate group

    @property
    def size(self) -> int:
        return len(self.statistics)

    def decisive_p_values(self, null: NullDistribution) -> np.ndarray:
        """The synthetic panels' p-values on the real call's scale (its null distribution), 1 for a panel
        without the support a positive needs: as the calibration treats null scores."""
        p = np.ones(self.size)
        positive = (self.statistics > 0) & self.supported
        if positive.any():
            p[positive] = null.p_value(self.statistics[positive])
        return p


def no_own_null(reason: str) -> OwnNull:
    return OwnNull(np.zeros(0), np.zeros(0, dtype=bool), reason)


def own_null(
    pool: FlankPool,
    loci: pd.DataFrame,
    n: np.ndarray,
    e: np.ndarray,
    w: np.ndarray,
    settings: CallSettings,
    rng: np.random.Generator,
    classes: LengthClasses | None = None,
    rates: np.ndarray | None = None,
    flank_rates: np.ndarray | None = None,
) -> OwnNull:
    """`settings.synthetic_null_panels` synthetic panels matched to the sample's usable panel loci, scored.

    Parameters
    ----------
    pool : FlankPool
        The sample's usable flank rows (`flank_pool`).
    loci : pandas.DataFrame
        The usable real loci: `ref`, `alt`, `context` (as the panel writes them).
    n, e, w : numpy.ndarray
        Their informative molecules (for the depth match), background rates and weights, as the real call
        uses them: every synthetic panel is scored with the real loci's rates and weights.
    settings : CallSettings
        The call's settings (`synthetic_null_panels`, `synthetic_depth_fold`, the outlier screen and support
        rule).
    rng : numpy.random.Generator
        The draws' generator (seeded per sample).
    classes : LengthClasses, optional
        The sample's fragment-length classes, when lengths weigh in.
    rates : numpy.ndarray, optional
        The real loci's background rates in their F1R2 and F2R1 molecules (loci x 2), when the real call
        weighs orientations (`e` is then their pooled rate): each synthetic locus's molecules are weighed by
        orientation too, its orientations taken on the real locus's strand (a C>A flank position's F2R1
        molecules stand for a G>T locus's F1R2 ones), so that the statistic is the real call's.
    flank_rates : numpy.ndarray, optional
        Per real locus, the rate its matched flank positions show if the call's rates hold: its context's
        rate times the sample's own factors (`e` without the locus's own factor over its context). The
        sample's level (`own_level`) is its flank ALTs over these; without them, over `e`.

    Returns
    -------
    OwnNull
        One statistic and support flag per synthetic panel, or none and why.
    """
    if settings.synthetic_null_panels <= 0:
        return no_own_null("calling.synthetic_null_panels is 0")
    if not len(pool):
        return no_own_null("no flank position with molecules (no flank table, or flank_window 0)")
    matched = match_loci(
        pool, loci["ref"].to_numpy(), loci["alt"].to_numpy(), loci["context"].to_numpy(), n,
        settings.synthetic_depth_fold,
    )  # fmt: skip
    if matched.reason:
        return no_own_null(matched.reason)
    panels = settings.synthetic_null_panels
    n = np.asarray(n, dtype=np.int64)
    e = np.asarray(e, dtype=float)
    # Fresh molecules at the real locus's depth, split between orientations (on the real locus's strand) as at
    # the drawn position, at the call's rates times the sample's own level at its matched positions
    # (`own_level`). The real depth: flank positions are covered by a few percent fewer molecules than the locus
    # they flank, and two-locus support grows with the square of the expected ALTs. Without orientations the
    # drawn position changes nothing (its depth is not used), so none is drawn.
    level = own_level(
        matched, e if flank_rates is None else np.asarray(flank_rates, dtype=float), settings.own_level_prior
    )
    n_f1r2 = None
    if rates is not None:
        n_f1r2 = drawn_f1r2(pool, matched.candidates, loci["ref"].to_numpy(), n, panels, rng)
        p = np.minimum(np.asarray(rates, dtype=float) * level, 0.5)
    else:
        p = np.minimum(e * level, 0.5)
    cells = fresh_molecules(n, p, panels, rng, n_f1r2)
    suspect = binomial_tail(cells.alt, n[cells.locus], e[cells.locus]) < settings.outlier_max_p
    alone = np.unique(cells.panel[suspect])
    table = None if classes is None else length_draws(cells.alt, classes, rng)
    batch = ~np.isin(cells.panel, alone)
    statistics = cell_statistics(
        cells, batch, table, n, e, w, rates, None if classes is None else classes.ratio
    )
    fragments = np.bincount(cells.panel, cells.alt, panels).astype(np.int64)
    loci_with_alt = np.bincount(cells.panel, minlength=panels)
    quiet = settings_without_p_values(settings)
    for i in alone:  # a locus the outlier screen may drop: the real call's whole score
        mine = cells.panel == i
        a = np.zeros(len(n), dtype=np.int64)
        a[cells.locus[mine]] = cells.alt[mine]
        parts = None
        if rates is not None:
            alt_f1r2 = np.zeros(len(n), dtype=np.int64)
            alt_f1r2[cells.locus[mine]] = cells.alt_f1r2[mine]
            total_f1r2 = cells.n_f1r2[i].astype(np.int64)
            parts = Orientations(
                alt=np.stack([alt_f1r2, a - alt_f1r2], axis=1),
                total=np.stack([total_f1r2, n - total_f1r2], axis=1),
                rate=rates,
            )
        length_table = None
        if table is not None:
            length_table = np.zeros((len(n), table.shape[1]), dtype=np.int64)
            length_table[cells.locus[mine]] = table[mine]
        score = score_loci(
            a, n, e, w, quiet, rng, full=False, length_table=length_table, classes=classes, orientations=parts
        )
        statistics[i] = score.statistic
        fragments[i], loci_with_alt[i] = score.mutant_fragments, score.mutant_loci
    supported = (fragments >= settings.min_mutant_fragments) & (loci_with_alt >= settings.min_mutant_loci)
    return OwnNull(statistics, supported, group_matched=matched.fallbacks)


@dataclass(frozen=True)
class FreshCells:
    """The synthetic loci that drew ALT molecules, panel by panel: each one's panel, locus, ALT molecules and,
    with orientations, those of them in F1R2 molecules; with orientations also every synthetic locus's F1R2
    molecules (panels x loci, 32-bit), which the scores' depth sums need."""

    panels: int
    panel: np.ndarray
    locus: np.ndarray
    alt: np.ndarray
    alt_f1r2: np.ndarray | None = None
    n_f1r2: np.ndarray | None = None


def fresh_molecules(
    n: np.ndarray, p: np.ndarray, panels: int, rng: np.random.Generator, n_f1r2: np.ndarray | None = None
) -> FreshCells:
    """Every synthetic panel's fresh molecules at the real loci's depths `n`: ALT ~ Binomial(n, p), drawn a
    block of panels at a time (`DRAW_CELLS`), only the loci with ALT molecules kept.

    Parameters
    ----------
    n : numpy.ndarray
        The real loci's informative molecules.
    p : numpy.ndarray
        Each locus's chance of an ALT molecule (loci), or of one in its F1R2 and in its F2R1 molecules (loci x
        2, with `n_f1r2`).
    panels : int
        Synthetic panels.
    rng : numpy.random.Generator
        The draws' generator.
    n_f1r2 : numpy.ndarray, optional
        With per-orientation `p`: each synthetic locus's F1R2 molecules (panels x loci, `drawn_f1r2`).

    Returns
    -------
    FreshCells
    """
    loci = len(n)
    block = max(1, DRAW_CELLS // max(loci, 1))
    found: list[tuple[np.ndarray, ...]] = []
    for first in range(0, panels, block):
        rows = slice(first, min(first + block, panels))
        if n_f1r2 is None:
            alt = rng.binomial(n, p, (rows.stop - first, loci))
            alt_f1r2 = alt
        else:
            total_f1r2 = n_f1r2[rows].astype(np.int64)
            alt_f1r2 = rng.binomial(total_f1r2, p[:, 0])
            alt = alt_f1r2 + rng.binomial(n - total_f1r2, p[:, 1])
        panel, locus = np.nonzero(alt)
        found.append((panel + first, locus, alt[panel, locus], alt_f1r2[panel, locus]))
    panel, locus, alt, alt_f1r2 = (np.concatenate(x).astype(np.int64) for x in zip(*found, strict=True))
    return FreshCells(panels, panel, locus, alt, None if n_f1r2 is None else alt_f1r2, n_f1r2)


def drawn_f1r2(
    pool: FlankPool,
    candidates: list[np.ndarray],
    real_ref: np.ndarray,
    n: np.ndarray,
    panels: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Per synthetic panel and locus, its F1R2 molecules (panels x loci, 32-bit): the real depth split between
    orientations as at a flank position drawn among the locus's candidates (`draw_panels`), a block of loci at
    a time (`DRAW_CELLS`), on the real locus's strand (a C>A flank position's F2R1 molecules stand for a G>T
    locus's F1R2 ones)."""
    out = np.zeros((panels, len(n)), dtype=np.int32)
    width = max(1, DRAW_CELLS // max(panels, 1))
    for first in range(0, len(n), width):
        span = slice(first, first + width)
        share = f1r2_share(pool, draw_panels(candidates[span], panels, rng), real_ref[span])
        out[:, span] = np.rint(n[span] * share)
    return out


def f1r2_share(pool: FlankPool, draw: np.ndarray, real_ref: np.ndarray) -> np.ndarray:
    """Per synthetic panel and locus, the drawn position's share of informative molecules in the real locus's
    F1R2 orientation (a half without molecules)."""
    real_flipped = ~np.isin(real_ref, ["C", "T"])
    swap = pool.flipped[draw] != real_flipped[None, :]
    total = pool.n[draw]
    n_f1r2 = pool.n_f1r2[draw]
    on_real = np.where(swap, total - n_f1r2, n_f1r2)
    return np.divide(on_real, total, out=np.full(draw.shape, 0.5), where=total > 0)


def length_draws(alt: np.ndarray, classes: LengthClasses, rng: np.random.Generator) -> np.ndarray:
    """ALT molecules per length class of each cell (cells x classes): each noise molecule's class drawn from
    the sample's own non-tumor length distribution, as the real call's null draws them (the flanks' few ALT
    molecules would give a thin and noisy one)."""
    share = np.asarray(classes.normal, dtype=float)
    if not len(alt):
        return np.zeros((0, len(share)), dtype=np.int64)
    return rng.multinomial(alt, share / share.sum())


def cell_statistics(
    cells: FreshCells,
    keep: np.ndarray,
    table: np.ndarray | None,
    n: np.ndarray,
    e: np.ndarray,
    w: np.ndarray,
    rates: np.ndarray | None = None,
    ratio: np.ndarray | None = None,
) -> np.ndarray:
    """The likelihood-ratio statistic of each synthetic panel from its kept cells (0 for a panel without
    any), as the real call scores its panel: by locus, or with `rates` by read orientation, a locus's F1R2
    molecules in column 2i and its F2R1 ones in 2i + 1 (as `Orientations.parts` lays out the real call), each
    part at its own rate with the locus's weight.

    Parameters
    ----------
    cells : FreshCells
        The panels' ALT cells (`fresh_molecules`).
    keep : numpy.ndarray
        The cells to score (those of panels scored together).
    table : numpy.ndarray, optional
        The cells' ALT molecules per length class (cells x classes), with `ratio`.
    n, e, w : numpy.ndarray
        The real loci's informative molecules, background rates and weights.
    rates : numpy.ndarray, optional
        The loci's rates in F1R2 and F2R1 molecules (loci x 2), when orientations weigh in.
    ratio : numpy.ndarray, optional
        The length classes' tumor/non-tumor ratios.

    Returns
    -------
    numpy.ndarray
        One statistic per panel.
    """
    alt = (cells.alt if table is None else table)[keep]
    panel, locus = cells.panel[keep], cells.locus[keep]
    if rates is None:
        return synthetic_statistics(n, cells.panels, panel, locus, alt, e, w, ratio)
    # A length class's ALTs shared between a locus's parts as its ALTs are (the flank table does not tie
    # lengths to orientations).
    in_f1r2 = cells.alt_f1r2[keep] / cells.alt[keep]  # type: ignore[index]
    if table is None:
        parts = np.stack([cells.alt_f1r2[keep], alt - cells.alt_f1r2[keep]], axis=1)  # type: ignore[index]
    else:
        parts = np.stack([in_f1r2[:, None] * alt, (1 - in_f1r2[:, None]) * alt], axis=1)
    part_alt = parts.reshape(2 * len(panel), *parts.shape[2:])
    some = part_alt.reshape(len(part_alt), -1).any(axis=1)
    n_f1r2 = cells.n_f1r2

    def sizes(rows: np.ndarray) -> np.ndarray:  # each panel's molecules per part
        total_f1r2 = n_f1r2[rows].astype(np.int64)  # type: ignore[index]
        return np.stack([total_f1r2, n - total_f1r2], axis=2).reshape(len(rows), -1)

    return synthetic_statistics(
        sizes, cells.panels, np.repeat(panel, 2)[some], (2 * locus[:, None] + [0, 1]).ravel()[some],
        part_alt[some], np.asarray(rates, dtype=float).reshape(-1), np.repeat(w, 2), ratio,
    )  # fmt: skip


def draw_panels(candidates: list[np.ndarray], panels: int, rng: np.random.Generator) -> np.ndarray:
    """Synthetic panels x real loci: pool rows drawn uniformly, with replacement, among each locus's candidates."""
    by_locus = np.zeros((len(candidates), panels), dtype=np.int64)  # each locus's draws written at once
    for locus, rows in enumerate(candidates):
        by_locus[locus] = rows[rng.integers(0, len(rows), panels)]
    return by_locus.T


def settings_without_p_values(settings: CallSettings) -> CallSettings:
    """The settings with the asymptotic p-value: a synthetic panel needs only its statistic, which the p-value
    method does not change (the real call's null distribution gives it its p-value)."""
    from dataclasses import replace

    return replace(settings, p_value_method="asymptotic")


def own_level(matched: Matched, e: np.ndarray, prior: float) -> float:
    """The sample's noise at its matched flank positions over what the call's rates expect there: (ALT
    molecules + `prior`) / (expected + `prior`) over every locus's candidate positions, each at `e` (the rate
    its positions should show: its locus's context rate times the sample's own factors, `own_null`'s
    `flank_rates`), a Gamma prior worth `prior` expected molecules centred on 1 (`calling.own_level_prior`).

    Not at the loci's own rates: a locus's rate holds its own factor over its context (the cohort measures it),
    which the flank positions of that context do not share. Against those the level was a property of the
    patient's panel rather than of the library (0.80 to 1.24 between the patients of one simulated cohort,
    0.93 to 1.04 at the context rates) and held a patient whose noisiest contexts have quiet panel loci to a
    null a quarter noisier than its own.

    Synthetic molecules are drawn at the call's rates times this level: a library noisier than its rates is
    held to its own noise, while a thin flank pool (a few ALT molecules per context at plasma depth) does not
    make its loci's own null lumpy: the positions' few ALTs would otherwise sit at a handful of synthetic loci
    and leave the rest without any, and the two-locus support a positive needs would hardly ever show."""
    return float((matched.alt.sum() + prior) / (matched.n @ np.asarray(e, dtype=float) + prior))


@dataclass(frozen=True)
class OwnThreshold:
    """The p-value cut of one sample's call from its own null, or the cohort's and why."""

    value: float
    source: str  # "empirical" or "nominal"
    own_null_panels: int
    empirical_p_value: float
    reason: str


def own_threshold(
    own: OwnNull,
    null: NullDistribution,
    p_value: float,
    cohort_value: float,
    cohort_source: str,
    settings: CallSettings,
) -> OwnThreshold:
    """The sample's threshold: its own null's at the target rate when it has `null_scores_needed` panels,
    else the cohort's (cross-patient null scores or the nominal rate) with the reason.

    The empirical p-value is (1 + synthetic panels whose decisive p-value is at most the sample's) / (1 +
    panels): the share of the sample's own null at least as extreme as its panel (NaN without an own null).

    Parameters
    ----------
    own : OwnNull
        The sample's synthetic panels.
    null : NullDistribution
        The real call's null distribution (turns statistics into p-values).
    p_value : float
        The real call's p-value.
    cohort_value, cohort_source : float, str
        The cohort step's threshold and its source.
    settings : CallSettings
        `false_positive_rate` and `empirical_min_expected` are used.

    Returns
    -------
    OwnThreshold
    """
    if not own.size:
        return OwnThreshold(
            cohort_value, cohort_source, 0, np.nan, f"cohort threshold: no own null ({own.reason})"
        )
    decisive = own.decisive_p_values(null)
    empirical_p = float((1 + np.count_nonzero(decisive <= p_value)) / (1 + own.size))
    needed = null_scores_needed(settings.false_positive_rate, settings.empirical_min_expected)
    if own.size < needed:
        return OwnThreshold(
            cohort_value, cohort_source, own.size, empirical_p,
            f"cohort threshold: own null of {own.size} panels, {needed} needed",
        )  # fmt: skip
    rate = settings.false_positive_rate
    value = calibrate_threshold(decisive, rate)
    matched = f" ({own.group_matched} loci matched by substitution group)" if own.group_matched else ""
    beyond = np.count_nonzero(decisive <= rate)
    if value < rate and binomial_tail(beyond, own.size, rate) >= OWN_NULL_EXCESS_P:
        # As many of its panels at p <= rate as chance gives at that rate: the own null agrees with the
        # call's p-values. Its 1% quantile is a noisy estimate (11 or more of 1,000 panels 42% of the time
        # at a rate of exactly 1%), and a cut capped at the rate only ever moves down with that noise.
        value = rate
        matched += f"; {beyond} of its panels at p <= {rate:g}, as the rate gives"
    return OwnThreshold(
        value, "empirical", own.size, empirical_p, f"own null of {own.size} synthetic panels{matched}"
    )


def own_null_rng(settings: CallSettings, sample_id: str) -> np.random.Generator:
    return seeded_rng(settings.seed, sample_id, "own_null")
