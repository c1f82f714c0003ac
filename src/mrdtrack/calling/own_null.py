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
them into a p-value on the real call's scale. The likelihood-ratio statistics of all synthetic panels are one
vectorised fit; only a panel with a locus that the outlier screen could drop (binomial tail below
`outlier_max_p`, rare) is scored alone. Synthetic loci are independent molecules: a fragment covering two flank
positions of one synthetic panel is not merged (flank counts do not record fragment identity), which matters only
when two synthetic loci come from one window, and there the two positions' errors are independent anyway.

Positions whose ALT share is far above noise are germline or clonal-hematopoiesis sites, not noise, and never
enter a synthetic panel (`flank_pool`): at least 2 ALT molecules of one base and an ALT share of at least
`flank_max_vaf`, or a binomial tail against the sample's own rate of the class below `flank_noise_max_p`.

The threshold of the sample is its own null's at the target false-positive rate (`calibrate_threshold`), once
there are `null_scores_needed` synthetic panels; otherwise the call keeps the cohort's threshold and says why.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mrdtrack.calling.fraglen import LengthClasses
from mrdtrack.calling.inference import binomial_tail, lr_statistic_rows
from mrdtrack.calling.locus_classes import pyrimidine_class, rate_group
from mrdtrack.calling.null import NullDistribution, calibrate_threshold, null_scores_needed, seeded_rng
from mrdtrack.calling.score import Orientations, score_loci
from mrdtrack.calling.settings import CallSettings

SNV_BASES = frozenset("ACGT")

# Expected ALT molecules' worth of prior on the sample's own level at its matched flank positions (`own_level`).
# The call's rates already carry the sample's own factors (sample_rates.py, shrunk across the cohort), so the
# level is a check against rates that miss the library's noise, not a second estimate of it: strong enough
# that the ~10 flank ALT molecules a sample has at plasma depth do not swing its own null (a level of 0.7 from
# Poisson noise halves two-locus support), weak enough that a library at twice its rates with thousands of
# expected flank ALTs is held to its own noise.
OWN_LEVEL_PRIOR = 100.0


@dataclass(frozen=True)
class FlankPool:
    """A sample's usable flank rows: one per position and ALT base, with its class and molecules."""

    substitution: np.ndarray  # pyrimidine-strand substitution, e.g. C>T
    context: np.ndarray  # pyrimidine-strand trinucleotide
    n: np.ndarray  # informative molecules (REF + this ALT)
    a: np.ndarray  # ALT molecules
    alt_lengths: np.ndarray  # text, as the flank table has it
    dropped_positions: int  # germline or CHIP-like positions left out
    # Of `n` and `a`, those in F1R2 molecules (reference strand, as the flank table); `flipped`: a purine
    # reference, whose orientations swap on the pyrimidine strand.
    n_f1r2: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    a_f1r2: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    flipped: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))

    def __len__(self) -> int:
        return len(self.n)


def flank_pool(flanks: pd.DataFrame, settings: CallSettings) -> FlankPool:
    """The sample's flank rows that can enter a synthetic panel: covered, and not at a germline or CHIP-like
    position (a position where any ALT base has at least 2 molecules and either an ALT share of at least
    `flank_max_vaf` or a binomial tail against the sample's own rate of that class below `flank_noise_max_p`).

    Parameters
    ----------
    flanks : pandas.DataFrame
        The sample's flank table (`flanks` contract).
    settings : CallSettings
        `flank_max_vaf` and `flank_noise_max_p` are used.

    Returns
    -------
    FlankPool
        The usable rows, classed on the pyrimidine strand.
    """
    flanks = flanks[(flanks["ref_molecules"] + flanks["alt_molecules"]) > 0]
    classes = [
        pyrimidine_class(ref, alt, context)[:2]
        for ref, alt, context in zip(flanks["ref"], flanks["alt"], flanks["context"], strict=True)
    ]
    substitution = np.array([c[0] for c in classes], dtype=object)
    context = np.array([c[1] for c in classes], dtype=object)
    flipped = ~flanks["ref"].isin(["C", "T"]).to_numpy()
    a = flanks["alt_molecules"].to_numpy(dtype=np.int64)
    n = flanks["ref_molecules"].to_numpy(dtype=np.int64) + a
    key = pd.Series(substitution + ":" + context)
    alt_sum = pd.Series(a).groupby(key).transform("sum").to_numpy()
    n_sum = pd.Series(n).groupby(key).transform("sum").to_numpy()
    # The class rate of the sample, pseudo-counted so that a class without errors does not make one ALT
    # molecule look impossible.
    rate = (alt_sum + 1.0) / (n_sum + 1.0)
    share = a / np.maximum(n, 1)
    variant = (a >= 2) & (
        (share >= settings.flank_max_vaf) | (binomial_tail(a, n, rate) < settings.flank_noise_max_p)
    )
    position = pd.Series(list(zip(flanks["chrom"], flanks["pos"], strict=True)))
    dropped = set(position[variant])
    keep = ~position.isin(dropped).to_numpy()
    return FlankPool(
        substitution=substitution[keep],
        context=context[keep],
        n=n[keep],
        a=a[keep],
        alt_lengths=flanks["alt_lengths"].to_numpy(dtype=object)[keep],
        dropped_positions=len(dropped),
        n_f1r2=(flanks["alt_f1r2"] + flanks["ref_f1r2"]).to_numpy(dtype=np.int64)[keep],
        a_f1r2=flanks["alt_f1r2"].to_numpy(dtype=np.int64)[keep],
        flipped=flipped[keep],
    )


def matched_candidates(
    pool: FlankPool, ref: np.ndarray, alt: np.ndarray, context: np.ndarray, n: np.ndarray, fold: float
) -> tuple[list[np.ndarray], int, str]:
    """For each real locus, the pool rows of its substitution and context (pyrimidine strand) whose depth is
    within `fold` of its own (all rows of its class when none is).

    A class without any flank position (CpG contexts are rare in a few kb) falls back to the rows of its rate
    group, the substitution with C>N at CpG on its own (locus_classes.rate_group): the group the background
    model shrinks the context toward.

    Returns
    -------
    tuple of (list of numpy.ndarray, int, str)
        The candidates per locus, how many loci fell back to their group, and "" or why some locus has no
        match at all (then no candidates).
    """
    keys = pd.Series(pool.substitution + ":" + pool.context, dtype=object)
    groups = pd.Series(
        [rate_group(s, c) for s, c in zip(pool.substitution, pool.context, strict=True)], dtype=object
    )
    by_class = {str(k): np.asarray(v, dtype=np.int64) for k, v in keys.groupby(keys).groups.items()}
    by_group = {str(k): np.asarray(v, dtype=np.int64) for k, v in groups.groupby(groups).groups.items()}
    candidates, fallbacks = [], 0
    for locus_ref, locus_alt, locus_context, depth in zip(ref, alt, context, n, strict=True):
        if len(locus_ref) != 1 or len(locus_alt) != 1 or not {locus_ref, locus_alt} <= SNV_BASES:
            return [], 0, f"indel locus {locus_ref}>{locus_alt}: flank positions match SNVs only"
        substitution, ctx, _ = pyrimidine_class(locus_ref, locus_alt, locus_context)
        rows = by_class.get(f"{substitution}:{ctx}")
        if rows is None:
            rows = by_group.get(rate_group(substitution, ctx))
            fallbacks += 1
        if rows is None:
            return [], 0, f"no flank position of class {substitution} at {ctx}, nor of its group"
        depth_ok = (pool.n[rows] * fold >= depth) & (pool.n[rows] <= depth * fold)
        candidates.append(rows[depth_ok] if depth_ok.any() else rows)
    return candidates, fallbacks, ""


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

    Returns
    -------
    OwnNull
        One statistic and support flag per synthetic panel, or none and why.
    """
    if settings.synthetic_null_panels <= 0:
        return no_own_null("calling.synthetic_null_panels is 0")
    if not len(pool):
        return no_own_null("no flank position with molecules (no flank table, or flank_window 0)")
    candidates, fallbacks, why = matched_candidates(
        pool, loci["ref"].to_numpy(), loci["alt"].to_numpy(), loci["context"].to_numpy(), n,
        settings.synthetic_depth_fold,
    )  # fmt: skip
    if why:
        return no_own_null(why)
    panels = settings.synthetic_null_panels
    draw = draw_panels(candidates, panels, rng)
    # Fresh molecules at the real locus's depth, split between orientations (on the real locus's strand) as at
    # the drawn position, at the call's rates times the sample's own level at its matched positions
    # (`own_level`). The real depth: flank positions are covered by a few percent fewer molecules than the locus
    # they flank, and two-locus support grows with the square of the expected ALTs.
    n_syn = np.broadcast_to(np.asarray(n, dtype=np.int64), draw.shape)
    level = own_level(pool, candidates, e)
    oriented = None
    if rates is None:
        a_syn = rng.binomial(n_syn, np.minimum(e * level, 0.5)[None, :])
    else:
        share = np.divide(
            _on_real_strands(pool, draw, loci["ref"].to_numpy()), pool.n[draw], out=np.full(draw.shape, 0.5),
            where=pool.n[draw] > 0,
        )  # fmt: skip
        n_f1r2 = np.rint(n_syn * share).astype(np.int64)
        a_f1r2 = rng.binomial(n_f1r2, np.minimum(rates[:, 0] * level, 0.5)[None, :])
        a_syn = a_f1r2 + rng.binomial(n_syn - n_f1r2, np.minimum(rates[:, 1] * level, 0.5)[None, :])
        oriented = (a_f1r2, n_f1r2)
    statistics = np.zeros(panels)
    with_alt = np.flatnonzero(a_syn.any(axis=1))
    suspect = (a_syn > 0) & (binomial_tail(a_syn, n_syn, e[None, :]) < settings.outlier_max_p)
    alone = with_alt[suspect[with_alt].any(axis=1)]
    batch = np.setdiff1d(with_alt, alone)
    table = _length_tables(a_syn, classes, rng)
    ratio = None if classes is None else classes.ratio
    if batch.size:
        a_rows = a_syn[batch] if table is None else table[batch]
        if oriented is None:
            statistics[batch] = lr_statistic_rows(a_rows, n_syn[batch], e, w, ratio)
        else:
            a_parts, n_parts = _parts(
                a_rows, a_syn[batch], oriented[0][batch], n_syn[batch], oriented[1][batch]
            )
            statistics[batch] = lr_statistic_rows(a_parts, n_parts, rates.reshape(-1), np.repeat(w, 2), ratio)
    fragments = a_syn.sum(axis=1)
    loci_with_alt = np.count_nonzero(a_syn, axis=1)
    quiet = settings_without_p_values(settings)
    for i in alone:  # a locus the outlier screen may drop: the real call's whole score
        parts = None
        if oriented is not None:
            alt_f1r2, total_f1r2 = oriented[0][i], oriented[1][i]
            parts = Orientations(
                alt=np.stack([alt_f1r2, a_syn[i] - alt_f1r2], axis=1),
                total=np.stack([total_f1r2, n_syn[i] - total_f1r2], axis=1),
                rate=rates,
            )
        score = score_loci(
            a_syn[i], n_syn[i], e, w, quiet, rng, full=False,
            length_table=None if table is None else table[i], classes=classes, orientations=parts,
        )  # fmt: skip
        statistics[i] = score.statistic
        fragments[i], loci_with_alt[i] = score.mutant_fragments, score.mutant_loci
    supported = (fragments >= settings.min_mutant_fragments) & (loci_with_alt >= settings.min_mutant_loci)
    return OwnNull(statistics, supported, group_matched=fallbacks)


def _on_real_strands(pool: FlankPool, draw: np.ndarray, real_ref: np.ndarray) -> np.ndarray:
    """Per synthetic panel and locus, the drawn position's informative molecules in the real locus's F1R2
    orientation: a flank position on the other strand than its real locus (C>A for G>T) gives its F2R1 ones."""
    real_flipped = ~np.isin(real_ref, ["C", "T"])
    swap = pool.flipped[draw] != real_flipped[None, :]
    n_f1r2 = pool.n_f1r2[draw]
    return np.where(swap, pool.n[draw] - n_f1r2, n_f1r2)


def _parts(
    a_rows: np.ndarray, a: np.ndarray, a_f1r2: np.ndarray, n: np.ndarray, n_f1r2: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Panels x loci (x length classes) as panels x parts (F1R2 of locus i in column 2i, F2R1 in 2i + 1), as
    `Orientations.parts` lays out the real call: a length class's ALTs shared between a locus's parts as its
    ALTs are (the flank table does not tie lengths to orientations)."""
    n_parts = np.stack([n_f1r2, n - n_f1r2], axis=2).reshape(len(n), -1)
    if a_rows.ndim == 2:
        return np.stack([a_f1r2, a - a_f1r2], axis=2).reshape(len(a), -1), n_parts
    share = np.divide(a_f1r2, a, out=np.full(a.shape, 0.5), where=a > 0)[..., None]
    a_parts = np.stack([share * a_rows, (1 - share) * a_rows], axis=2)
    return a_parts.reshape(len(a), -1, a_rows.shape[-1]), n_parts


def draw_panels(candidates: list[np.ndarray], panels: int, rng: np.random.Generator) -> np.ndarray:
    """Synthetic panels x real loci: pool rows drawn uniformly, with replacement, among each locus's candidates."""
    if not candidates:
        return np.zeros((panels, 0), dtype=np.int64)
    return np.column_stack([c[rng.integers(0, len(c), panels)] for c in candidates])


def settings_without_p_values(settings: CallSettings) -> CallSettings:
    """The settings with the asymptotic p-value: a synthetic panel needs only its statistic, which the p-value
    method does not change (the real call's null distribution gives it its p-value)."""
    from dataclasses import replace

    return replace(settings, p_value_method="asymptotic")


def _length_tables(
    a_syn: np.ndarray, classes: LengthClasses | None, rng: np.random.Generator
) -> np.ndarray | None:
    """ALT molecules per synthetic panel, locus and length class (None without length classes): each noise
    molecule's class drawn from the sample's own non-tumor length distribution, as the real call's null draws
    them (the flanks' few ALT molecules would give a thin and noisy one)."""
    if classes is None:
        return None
    share = np.asarray(classes.normal, dtype=float)
    table = np.zeros((*a_syn.shape, len(share)), dtype=np.int64)
    cells = np.nonzero(a_syn)
    if cells[0].size:
        table[cells] = rng.multinomial(a_syn[cells], share / share.sum())
    return table


def own_level(
    pool: FlankPool, candidates: list[np.ndarray], e: np.ndarray, prior: float = OWN_LEVEL_PRIOR
) -> float:
    """The sample's noise at its matched flank positions over what the call's rates expect there: (ALT
    molecules + `prior`) / (expected + `prior`) over every locus's candidate positions (each at its locus's
    rate), a Gamma prior worth `prior` expected molecules centred on 1 (`OWN_LEVEL_PRIOR`).

    Synthetic molecules are drawn at the call's rates times this level: a library noisier than its rates is
    held to its own noise, while a thin flank pool (a few ALT molecules per context at plasma depth) does not
    make its loci's own null lumpy: the positions' few ALTs would otherwise sit at a handful of synthetic loci
    and leave the rest without any, and the two-locus support a positive needs would hardly ever show."""
    alt = sum(float(pool.a[rows].sum()) for rows in candidates)
    expected = sum(float(pool.n[rows].sum()) * rate for rows, rate in zip(candidates, e, strict=True))
    return (alt + prior) / (expected + prior)


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
    value = calibrate_threshold(decisive, settings.false_positive_rate)
    matched = f" ({own.group_matched} loci matched by substitution group)" if own.group_matched else ""
    return OwnThreshold(
        value, "empirical", own.size, empirical_p, f"own null of {own.size} synthetic panels{matched}"
    )


def own_null_rng(settings: CallSettings, sample_id: str) -> np.random.Generator:
    return seeded_rng(settings.seed, sample_id, "own_null")
