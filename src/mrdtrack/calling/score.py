"""One sample's score at one set of loci: the outlier screen, the tumor fraction, its interval and the test of
TF = 0, over DNA fragments.

Model (likelihood.py): over the sample's fragments at its own panel's loci, each fragment counted once however
many loci it covers; for a one-locus fragment, a_i ~ Binomial(n_i, e_i + (1 - e_i) f w_i / 2), with n_i the
informative (REF + ALT) molecules, a_i the ALT molecules, e_i the background rate, w_i the variant weight and f
the tumor fraction. With read orientations known (`Orientations`), a locus's F1R2 and F2R1 molecules are two
binomials of their own, each at its own background rate and the same tumor share.

The test of f = 0 is the likelihood-ratio test. Its null sits on the boundary: the asymptotic statistic is a
50:50 mixture of chi-square 0 and 1. With the few expected background molecules typical of MRD the statistic is
discrete and the asymptotics are off (conservative for most panels, anti-conservative for very few loci), so
when the expected null ALT count is small the p-value comes from the exact null distribution of the same
statistic, drawn by Monte Carlo (null.py).

The interval is the profile-likelihood interval, widened for between-locus overdispersion: the loci of one
tumor do not share one VAF (subclonal variants, copy number), which binomial counts alone do not show.

A score also counts the distinct mutant fragments and loci behind it: a positive call needs that independent
support (`Score.supported`; caller.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mrdtrack.calling.fraglen import LengthClasses, clip_lengths
from mrdtrack.calling.inference import binomial_tail, dispersion, fit, lr_statistics, profile_interval
from mrdtrack.calling.likelihood import LikelihoodTerms, LocusParts, Observed, Tables, alt_probability
from mrdtrack.calling.null import NullDistribution, null_distribution
from mrdtrack.calling.settings import CallSettings

HAPLOID_GENOME_PG = 3.3  # mass of one haploid human genome


@dataclass(frozen=True, kw_only=True)
class Score:
    """The test of one sample at one panel's usable loci."""

    used: np.ndarray  # bool per candidate locus: not an in-sample outlier
    outliers: np.ndarray  # bool per candidate locus
    tumor_fraction: float
    ci: tuple[float, float]
    statistic: float
    p_value: float
    null: NullDistribution
    terms: LikelihoodTerms
    mutant_fragments: int = 0  # distinct fragments with an ALT at a used locus
    mutant_loci: int = 0  # used loci with an ALT fragment
    dispersion: float = 1.0  # between-locus overdispersion the interval was widened by
    classes: LengthClasses | None = None  # the sample's fragment-length classes, when lengths weigh in

    @property
    def expected_background(self) -> float:
        return self.terms.expected_background()

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
    loci's spread around their TF (`inference.dispersion`) widens both that bound and the locus's tail
    (beta-binomial of the same variance): the loci of one tumor do not share one VAF, and at a high tumor
    fraction a clonal or multi-copy locus would otherwise look like an artefact beside subclonal ones. Only
    when the other loci show tumor DNA (their binomial interval excludes 0): without it there are no tumor
    VAFs to spread.
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
    low, upper = profile_interval(tables, level)
    # The tumor's VAFs can only spread where the other loci show tumor DNA: with a binomial interval that
    # reaches 0, their "spread" is a few noise molecules at quiet loci (a locus's excess is weighed by
    # 1 / rate^2) and would pass any one locus. On simulated tumor-free plasma such a spread widened the bound
    # and the tail until 11 ALT molecules in 2,668 where 0.04 were expected (a CHIP clone) had a tail of 0.008.
    spread = (
        dispersion(float(fit(tables)[0]), a[keep], n[keep], e[keep], w[keep], level)
        if overdispersion and low > 0
        else 1.0
    )
    if spread > 1:
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
class Orientations:
    """A sample's molecules at a set of loci by read orientation, each orientation with its background rate:
    column 0 F1R2, column 1 F2R1, as the count tables give them (reference strand).

    An error's chance depends on the orientation for some substitutions (8-oxoG: G>T on one orientation only),
    a tumor's ALT does not: each orientation is a part of its locus in the likelihood (`LocusParts`).
    """

    alt: np.ndarray  # loci x 2: ALT molecules
    total: np.ndarray  # loci x 2: informative molecules
    rate: np.ndarray  # loci x 2: background rate

    def __getitem__(self, keep: np.ndarray) -> Orientations:
        return Orientations(self.alt[keep], self.total[keep], self.rate[keep])

    def pooled_rate(self) -> np.ndarray:
        """Per locus, the background rate of a molecule whatever its orientation: the two rates weighed by the
        locus's molecules in each (their mean without molecules)."""
        n = self.total.sum(axis=1)
        weighed = (self.total * self.rate).sum(axis=1)
        return np.divide(weighed, n, out=self.rate.mean(axis=1), where=n > 0)

    def parts(self, n: np.ndarray, alt: np.ndarray) -> tuple[LocusParts, np.ndarray]:
        """The loci's one-locus fragments as two parts each, F1R2 (column 2i) and F2R1 (2i + 1), with their ALT
        fragments per part (and length class, when `alt` has one).

        `n` and `alt` are what is left at each locus once the fragments covering several loci are counted as
        fragments: the fragment tables do not give their orientation, so each orientation gives them up in
        proportion to its molecules. The ALTs of a length class are shared between the parts as the locus's
        ALTs are (fractions: lengths are not tied to orientations in the count tables).
        """
        n_parts = _split(np.asarray(n), self.total)
        alt = np.asarray(alt)
        alt_total = alt if alt.ndim == 1 else alt.sum(axis=1)
        alt_parts = _split(alt_total, self.alt)
        if alt.ndim == 1:
            part_alt = alt_parts.reshape(-1)
        else:
            share = np.divide(
                alt_parts, alt_total[:, None], out=np.full(alt_parts.shape, 0.5), where=alt_total[:, None] > 0
            )
            part_alt = (share[:, :, None] * alt[:, None, :]).reshape(-1, alt.shape[1])
        locus = np.repeat(np.arange(len(self.rate)), 2)
        return LocusParts(locus, n_parts.reshape(-1), self.rate.reshape(-1)), part_alt


def _split(kept: np.ndarray, by_orientation: np.ndarray) -> np.ndarray:
    """`kept` molecules of each locus (at most its molecules by orientation) as F1R2 and F2R1 counts: each
    orientation gives up the molecules counted elsewhere in proportion to its own."""
    total = by_orientation.sum(axis=1)
    taken = np.maximum(total - kept, 0)
    share = np.divide(by_orientation[:, 0], total, out=np.full(len(total), 0.5), where=total > 0)
    first = by_orientation[:, 0] - np.rint(taken * share).astype(np.int64)
    first = np.clip(first, np.maximum(kept - by_orientation[:, 1], 0), np.minimum(by_orientation[:, 0], kept))
    return np.stack([first, kept - first], axis=1)


@dataclass(frozen=True)
class Fragments:
    """A sample's fragments informative at two or more loci of a set of loci: each the loci it covers (local
    indices, increasing), whether it shows the ALT at each, its length (-1 without an ALT) and count."""

    loci: tuple[tuple[int, ...], ...] = ()
    alt: tuple[np.ndarray, ...] = ()
    length: tuple[int, ...] = ()
    count: tuple[int, ...] = ()


def evidence(
    a: np.ndarray,
    n: np.ndarray,
    e: np.ndarray,
    w: np.ndarray,
    fragments: Fragments = Fragments(),
    length_table: np.ndarray | None = None,
    classes: LengthClasses | None = None,
    orientations: Orientations | None = None,
) -> Observed:
    """A sample's evidence at a set of loci: its molecules per locus (`a` ALT, `n` informative; with length
    `classes`, `length_table` holds the ALT molecules per locus and class), of which the `fragments` that cover
    several loci are taken out and counted once each, as fragments. With `orientations`, each locus's
    one-locus fragments are its two orientation parts, each at its own background rate."""
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
    single_n, single_a = np.maximum(single_n, 0), np.maximum(single_a, 0)
    if orientations is None:
        terms = LikelihoodTerms.of_fragments(single_n, e, w, list(groups), group_size)
        return Observed.of_loci(single_a, terms).with_fragments(e, w, patterns)
    parts, part_alt = orientations.parts(single_n, single_a)
    terms = LikelihoodTerms.of_parts(parts, e, w, list(groups), group_size)
    return Observed.of_loci(part_alt, terms).with_fragments(e, w, patterns)


def score_loci(
    a: np.ndarray,
    n: np.ndarray,
    e: np.ndarray,
    w: np.ndarray,
    settings: CallSettings,
    rng: np.random.Generator,
    *,
    full: bool = True,
    length_table: np.ndarray | None = None,
    classes: LengthClasses | None = None,
    fragments: Fragments = Fragments(),
    orientations: Orientations | None = None,
) -> Score:
    """Outlier screen, MLE, LRT and its p-value for one sample at one set of loci.

    `full` adds what only a sample's own call needs: the profile CI and the null distribution even when the
    statistic is 0 (for the LOD). Null scores skip both, and a statistic of 0 has p = 1 whatever the null.
    With `classes`, `length_table` holds the ALT molecules per locus and length class (rows sum to `a`) and
    the fit, test and null weigh each by its class's length ratio; the outlier screen stays on counts.
    `fragments` are those covering several of these loci (local indices): each is one piece of evidence.
    With `orientations`, the fit, test, null and LOD weigh each read orientation at its own background rate;
    the outlier screen and the dispersion stay per locus, at `e`, which should then be the orientations'
    pooled rate (`Orientations.pooled_rate`).
    """
    outliers = find_outliers(a, n, e, w, settings.outlier_max_p, settings.ci_level, settings.overdispersion)
    used = ~outliers
    if not used.any():
        return Score(
            used=used,
            outliers=outliers,
            tumor_fraction=np.nan,
            ci=(np.nan, np.nan),
            statistic=0.0,
            p_value=1.0,
            null=NullDistribution("asymptotic"),
            terms=LikelihoodTerms.of_loci(np.zeros(0), np.zeros(0), np.zeros(0)),
        )
    kept = _fragments_within(fragments, used)
    table = None if classes is None else length_table[used]
    oriented = None if orientations is None else orientations[used]
    observed = evidence(a[used], n[used], e[used], w[used], kept, table, classes, oriented)
    tables = observed.tables(None if classes is None else classes.ratio)
    f_hat = float(fit(tables)[0])
    spread = (
        dispersion(f_hat, a[used], n[used], e[used], w[used], settings.ci_level)
        if settings.overdispersion
        else 1.0
    )
    ci = profile_interval(tables, settings.ci_level, spread) if full else (np.nan, np.nan)
    statistic = float(lr_statistics(tables)[0])
    needed = full or statistic > 0
    null = null_distribution(observed.terms, settings, rng, classes) if needed else NullDistribution("none")
    p_value = null.p_value(statistic) if statistic > 0 else 1.0
    return Score(
        used=used,
        outliers=outliers,
        tumor_fraction=f_hat,
        ci=ci,
        statistic=statistic,
        p_value=p_value,
        null=null,
        terms=observed.terms,
        mutant_fragments=int(round(observed.count.sum())),  # whole, though parts may share a class's ALTs
        mutant_loci=int(np.count_nonzero(a[used])),
        dispersion=spread,
        classes=classes,
    )


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


def mtm_per_ml(tumor_fraction: float, cfdna_ng: float, plasma_ml: float) -> float:
    """Mean tumor molecules per mL: (f / 2) x haploid genome equivalents per mL (1 haploid genome = 3.3 pg).

    f / 2 is the expected ALT share for a clonal heterozygous SNV, so this counts mutant molecules per locus
    per mL of plasma, as Signatera reports. NaN when cfDNA mass or plasma volume is unknown.
    """
    values = (tumor_fraction, cfdna_ng, plasma_ml)
    if any(v is None or not np.isfinite(v) for v in values) or plasma_ml <= 0:
        return float("nan")
    return float(tumor_fraction / 2 * cfdna_ng * 1000 / HAPLOID_GENOME_PG / plasma_ml)
