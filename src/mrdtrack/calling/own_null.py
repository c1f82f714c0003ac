"""Every sample its own null: synthetic panels drawn from its own flank positions.

The reads around a sample's panel loci cover reference positions that hold no tumor variant (counting/flanks.py):
their non-reference molecules are this library's own noise. A synthetic panel takes, for each usable locus of
the patient's real panel, one flank position of the same substitution and trinucleotide context (pyrimidine
strand) and of similar depth (within `calling.synthetic_depth_fold`), with the sample's molecules there. Scored
as the real panel is scored (the real loci's background rates and weights, the same outlier screen, statistic,
fragment-length classes and support rule), each synthetic panel is a draw of what this sample's own panel would
show without tumor DNA: the sample's own null, which needs no other patient and no control, so a bespoke capture
gets one too.

Sharing the work: the synthetic panels are matched locus for locus to the real panel, so their statistics are
exchangeable with the real one under the null, and the real panel's null distribution (score.py) turns each of
them into a p-value on the real call's scale. The likelihood-ratio statistics of all synthetic panels are one
fit over their ALT molecules and a few sums of their depths per panel (synthetic.py); only a panel with a locus
that the outlier screen could drop (binomial tail below `outlier_max_p`, rare) is scored alone. Synthetic loci
are independent molecules: a fragment covering two flank positions of one synthetic panel is not merged (flank
counts do not record fragment identity), which matters only when two synthetic loci come from one window, and
there the two positions' errors are independent anyway.

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

from mrdtrack.calling.fraglen import LengthClasses
from mrdtrack.calling.inference import binomial_tail
from mrdtrack.calling.locus_classes import pyrimidine_class, rate_group
from mrdtrack.calling.null import NullDistribution, calibrate_threshold, null_scores_needed, seeded_rng
from mrdtrack.calling.score import score_loci
from mrdtrack.calling.settings import CallSettings
from mrdtrack.calling.synthetic import alt_cells, class_counts, synthetic_statistics

SNV_BASES = frozenset("ACGT")


@dataclass(frozen=True)
class FlankPool:
    """A sample's usable flank rows: one per position and ALT base, with its class and molecules."""

    substitution: np.ndarray  # pyrimidine-strand substitution, e.g. C>T
    context: np.ndarray  # pyrimidine-strand trinucleotide
    n: np.ndarray  # informative molecules (REF + this ALT)
    a: np.ndarray  # ALT molecules
    alt_lengths: np.ndarray  # text, as the flank table has it
    dropped_positions: int  # germline or CHIP-like positions left out
    key: np.ndarray  # each row's index in `classes`
    classes: tuple[tuple[str, str], ...]  # the (substitution, context) classes of the rows

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
    covered = (flanks["ref_molecules"] + flanks["alt_molecules"]).to_numpy() > 0

    def column(name: str) -> np.ndarray:  # the covered rows (a genome-wide table is millions of them)
        values = flanks[name].to_numpy()
        return values if covered.all() else values[covered]

    key, classes = _pyrimidine_classes(column("ref"), column("alt"), column("context"))
    substitution = np.array([c[0] for c in classes], dtype=object)[key]
    context = np.array([c[1] for c in classes], dtype=object)[key]
    a = column("alt_molecules").astype(np.int64)
    n = column("ref_molecules").astype(np.int64) + a
    alt_sum, n_sum = np.bincount(key, a)[key], np.bincount(key, n)[key]
    # The class rate of the sample, pseudo-counted so that a class without errors does not make one ALT
    # molecule look impossible.
    rate = (alt_sum + 1.0) / (n_sum + 1.0)
    share = a / np.maximum(n, 1)
    some = np.flatnonzero(a >= 2)
    variant = np.zeros(len(a), dtype=bool)
    variant[some] = (share[some] >= settings.flank_max_vaf) | (
        binomial_tail(a[some], n[some], rate[some]) < settings.flank_noise_max_p
    )
    chrom, _ = pd.factorize(column("chrom"))
    pos = column("pos").astype(np.int64)
    position = chrom.astype(np.int64) * (int(pos.max(initial=0)) + 1) + pos
    dropped = np.unique(position[variant])
    keep = ~np.isin(position, dropped)
    return FlankPool(
        substitution=substitution[keep],
        context=context[keep],
        n=n[keep],
        a=a[keep],
        alt_lengths=column("alt_lengths").astype(object)[keep],
        dropped_positions=len(dropped),
        key=key[keep],
        classes=classes,
    )


# Bases as codes 0-3, anything else (N, padding) 4.
_BASE_CODES = np.full(256, 4, dtype=np.int64)
_BASE_CODES[np.frombuffer(b"ACGT", dtype=np.uint8)] = np.arange(4)


def _pyrimidine_classes(
    ref: np.ndarray, alt: np.ndarray, context: np.ndarray
) -> tuple[np.ndarray, tuple[tuple[str, str], ...]]:
    """Each row's (substitution, context) class on the pyrimidine strand, as an index into the distinct classes.

    A genome-wide panel's flanks are millions of rows of a few hundred (ref, alt, context): the bases become
    codes, and each combination present is classed once (`pyrimidine_class`)."""
    bases = [_base_code_matrix(column, width) for column, width in ((ref, 1), (alt, 1), (context, 3))]
    combination = np.zeros(len(ref), dtype=np.int64)
    for column in np.hstack(bases).T:
        combination = combination * 5 + column
    found: dict[tuple[str, str], int] = {}
    class_of = np.zeros(5**5, dtype=np.int64)
    for code in np.flatnonzero(np.bincount(combination, minlength=5**5)):
        letters = "".join("ACGTN"[(code // 5**power) % 5] for power in range(4, -1, -1))
        name = pyrimidine_class(letters[0], letters[1], letters[2:])[:2]
        class_of[code] = found.setdefault(name, len(found))
    return class_of[combination], tuple(found)


def _base_code_matrix(column: np.ndarray, width: int) -> np.ndarray:
    """The column's text as base codes, rows x `width` (shorter text padded with 4)."""
    text = np.asarray(column, dtype=object).astype(f"S{width}")
    return _BASE_CODES[np.frombuffer(text.tobytes(), dtype=np.uint8)].reshape(-1, width)


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
    names = [f"{s}:{c}" for s, c in pool.classes]
    group, group_names = pd.factorize(np.array([rate_group(s, c) for s, c in pool.classes], dtype=object))
    by_class = dict(zip(names, _by_depth(pool.key, len(names), pool.n, fold), strict=True))
    by_group = dict(zip(group_names, _by_depth(group[pool.key], len(group_names), pool.n, fold), strict=True))
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
        ordered, depths, folded = rows
        # Depths within `fold` of the locus's: n * fold >= depth and n <= depth * fold, a run of the sorted rows.
        low, high = np.searchsorted(folded, depth, "left"), np.searchsorted(depths, depth * fold, "right")
        candidates.append(ordered[low:high] if high > low else ordered)
    return candidates, fallbacks, ""


def _by_depth(
    code: np.ndarray, count: int, n: np.ndarray, fold: float
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The rows of each code (0..count-1) by increasing depth (ties in row order), with their depths and their
    depths times the fold."""
    small = code.astype(np.int16) if count < 2**15 else code  # 16-bit codes: a radix sort
    order = np.argsort(small, kind="stable")
    bounds = np.searchsorted(code[order], np.arange(count + 1))
    found = []
    for first, last in zip(bounds[:-1], bounds[1:], strict=True):
        rows = order[first:last]
        rows = rows[np.argsort(n[rows], kind="stable")]
        found.append((rows, n[rows], n[rows] * fold))
    return found


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
    panel, locus, row = alt_cells(pool.a, draw)  # the few synthetic loci with ALT molecules
    alt = pool.a[row]
    suspect = binomial_tail(alt, pool.n[row], e[locus]) < settings.outlier_max_p
    alone = np.unique(panel[suspect])
    batch = ~np.isin(panel, alone)
    table = None if classes is None else class_counts(pool.alt_lengths, row, classes)
    statistics = synthetic_statistics(
        pool.n, draw, panel[batch], locus[batch], (alt if table is None else table)[batch], e, w,
        None if classes is None else classes.ratio,
    )  # fmt: skip
    fragments = np.bincount(panel, alt, panels).astype(np.int64)
    loci_with_alt = np.bincount(panel, minlength=panels)
    quiet = settings_without_p_values(settings)
    for i in alone:  # a locus the outlier screen may drop: the real call's whole score
        score = score_loci(
            pool.a[draw[i]], pool.n[draw[i]], e, w, quiet, rng, full=False,
            length_table=None if table is None else _length_table(len(e), locus, table, panel == i),
            classes=classes,
        )  # fmt: skip
        statistics[i] = score.statistic
        fragments[i], loci_with_alt[i] = score.mutant_fragments, score.mutant_loci
    supported = (fragments >= settings.min_mutant_fragments) & (loci_with_alt >= settings.min_mutant_loci)
    return OwnNull(statistics, supported, group_matched=fallbacks)


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


def _length_table(loci: int, locus: np.ndarray, table: np.ndarray, mine: np.ndarray) -> np.ndarray:
    """One synthetic panel's ALT molecules per locus and length class, from its cells."""
    out = np.zeros((loci, table.shape[1]), dtype=np.int64)
    out[locus[mine]] = table[mine]
    return out


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
