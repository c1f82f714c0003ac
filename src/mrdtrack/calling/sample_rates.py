"""Every sample its own background: its error rates by context and read orientation, from its flank positions,
shrunk toward the cohort's by empirical Bayes.

Libraries differ in damage and PCR error (input, extraction, batch), and not by one number: 8-oxoG puts G>T
errors in one read orientation only, deamination C>T at CpG. The flank positions around a sample's own panel
loci (counting/flanks.py) hold millions of its molecules with no tumor variant, so they measure its noise in
each substitution x trinucleotide context x orientation; the cohort's panel-locus rates (background.py) stay,
and the sample's own factor multiplies them.

Per sample s and cell (pyrimidine-strand substitution x context, orientation on the pyrimidine strand as in
context_rates.tsv), `a` ALT and `n` molecules at its flank positions (germline and CHIP-like positions left out
by the own null's rule, flank_pool.flank_pool). The cohort rate of the cell is that of the other samples' flanks
(the sample left out, one expected ALT's worth of shrinkage toward its group so an empty cell is not 0); `E =
n x cohort rate` is what the sample would show at the cohort's level. The factor has three nested levels:

1. the sample's own level `lambda_s`, common to all its cells (a Gamma(k1, k1) prior centred on 1);
2. group x orientation (the substitution, with C>N at CpG apart; `locus_classes.rate_group`), a unit `u`:
   `lambda_s x delta`, delta ~ Gamma(k_u, k_u), posterior mean `(a + k_u) / (E + k_u / lambda_s)`;
3. context x orientation, likewise around its group's factor with a strength per unit.

`lambda_s` is the posterior mean given every unit of the sample, each unit's ALT molecules negative binomial
(`a ~ Poisson(E lambda_s delta)`), so a unit whose factor varies a lot from sample to sample (8-oxoG damage,
which one library has 2x more of than the next) says little about the level the other units share: the sample's
~2,000 damaged C>A molecules do not set the level of its ~7 T>G ones. The strengths of levels 1 and 2 are fitted
together across samples by maximum marginal likelihood (`sample_levels`), those of level 3 per unit given the
group factors (`unit_strengths`), as background.py fits its beta-binomial priors; a unit keeps a strength of
its own only when its samples differ beyond their levels and Poisson noise with evidence (`SPREAD_EVIDENCE`),
otherwise every sample's unit takes its parent's factor. So a cohort whose libraries differ only by Poisson
noise gives every sample its parent's factor, and a batch with 8-oxoG damage gives its samples their own G>T
factor in the damaged orientation.

The factor is over the other plasma samples' flanks when the sample's library is part of the panel-locus rates
(it was sequenced at other patients' loci at least as deeply as at its own: `libraries_in_cohort_rates`).
Otherwise (a bespoke capture, whose panel-locus rates come from other libraries such as controls) it is also
multiplied by the other samples' flank rate over the background's context rate of each cell, which carries a
damage every plasma library shares and the controls lack, but also what the flanks hold and the panel-locus
rates screened out (noisy positions that a 30x flank position cannot show), so it is used only there.

A locus's rate in one read orientation is then its cohort rate in that orientation times the sample's factor
for its context and that orientation (`SampleFactors.of_loci`). Indels (no flank tally) take the sample's
overall factor.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import special

from mrdtrack.calling.flank_pool import flank_pool
from mrdtrack.calling.locus_classes import pyrimidine_class, rate_group
from mrdtrack.calling.settings import CallSettings
from mrdtrack.tables import columns_of, empty_table

SAMPLE_RATE_COLUMNS = columns_of("sample_rates")  # mrdtrack.tables.CONTRACTS
TALLY_COLUMNS = ["substitution", "context", "orientation", "alt_molecules", "total_molecules"]
ORIENTED = ("f1r2", "f2r1")
LEVELS = ("sample", "group", "context")

# Prior strengths (ALT molecules' worth) are searched on this range, log-spaced: from "each sample's own counts
# speak" to "every sample has its parent's rate".
STRENGTH_GRID = np.exp(np.linspace(np.log(0.5), np.log(1e6), 241))
# A sample's own level is integrated out on this grid (even in log, 1 on it).
LEVEL_GRID = np.exp(np.linspace(-np.log(50.0), np.log(50.0), 161))
# The strengths of the levels and the units are fitted together on a coarser grid than STRENGTH_GRID (every
# fourth point: 27% apart).
JOINT_GRID = STRENGTH_GRID[::4]
# Log-likelihood a unit's (or the samples' levels') best prior strength must gain over the grid's top, "no
# spread beyond the parent": a likelihood-ratio test on the boundary at about p 0.01 (2 x 2.7 = 5.4, half the
# chi-square(1) tail).
SPREAD_EVIDENCE = 2.7
# Rows whose likelihoods over the strength grid are computed at a time (a genome-wide cohort has ~100,000
# context rows; the block stays ~50 MB).
ROWS_AT_A_TIME = 25_000


def flank_tallies(flanks: pd.DataFrame, settings: CallSettings) -> pd.DataFrame:
    """One sample's flank molecules per pyrimidine-strand substitution x context x orientation.

    Positions the own null leaves out (germline or CHIP-like: `flank_pool.flank_pool`) are left out here too.

    Parameters
    ----------
    flanks : pandas.DataFrame
        The sample's flank table (`flanks` contract).
    settings : CallSettings
        `flank_max_vaf` and `flank_noise_max_p` are used.

    Returns
    -------
    pandas.DataFrame
        `substitution, context, orientation` (`f1r2` / `f2r1` on the pyrimidine strand), `alt_molecules`,
        `total_molecules`; cells without molecules are absent.
    """
    pool = flank_pool(flanks, settings)
    if not len(pool):
        return pd.DataFrame(columns=TALLY_COLUMNS)
    # On the pyrimidine strand a purine reference's orientations swap (background.py's `_orient`): 8-oxoG
    # G>T in F1R2 molecules and C>A in F2R1 ones are one cell.
    flipped = pool.flipped
    a_f1r2 = np.where(flipped, pool.a - pool.a_f1r2, pool.a_f1r2)
    n_f1r2 = np.where(flipped, pool.n - pool.n_f1r2, pool.n_f1r2)
    frame = pd.DataFrame(
        {
            "substitution": pool.substitution,
            "context": pool.context,
            "alt_f1r2": a_f1r2,
            "alt_f2r1": pool.a - a_f1r2,
            "total_f1r2": n_f1r2,
            "total_f2r1": pool.n - n_f1r2,
        }
    )
    sums = frame.groupby(["substitution", "context"], sort=True).sum()
    parts = [
        sums[[f"alt_{o}", f"total_{o}"]]
        .set_axis(["alt_molecules", "total_molecules"], axis=1)
        .assign(orientation=o)
        .reset_index()
        for o in ORIENTED
    ]
    out = pd.concat(parts, ignore_index=True)
    return out[out["total_molecules"] > 0][TALLY_COLUMNS].reset_index(drop=True)


def fit_sample_rates(
    tallies: pd.DataFrame,
    context_rates: pd.DataFrame | None = None,
    in_cohort_rates: Collection[str] = (),
) -> pd.DataFrame:
    """Every sample's factors over the background's rates, at the three levels (module docstring).

    Parameters
    ----------
    tallies : pandas.DataFrame
        `sample_id` and the columns of `flank_tallies`, for the cohort's samples with flank molecules.
    context_rates : pandas.DataFrame, optional
        The background's context rates (`context_rates` contract), which the locus rates are shrunk toward:
        a factor is the sample's rate over them. Without them, over the other samples' flanks.
    in_cohort_rates : collection of str
        Samples whose libraries are part of the panel-locus rates (`libraries_in_cohort_rates`): their factors
        stay over the other samples' flanks, whatever `context_rates` says (module docstring).

    Returns
    -------
    pandas.DataFrame
        The `sample_rates` table: per sample one `sample` row, one `group` row per group and orientation, one
        `context` row per context and orientation with molecules; empty with fewer than two samples (no cohort
        to compare a sample with).
    """
    t = tallies.groupby(["sample_id", "substitution", "context", "orientation"], sort=True, as_index=False)[
        ["alt_molecules", "total_molecules"]
    ].sum()
    if t["sample_id"].nunique() < 2:
        return empty_table("sample_rates")
    t["group"] = [rate_group(s, c) for s, c in zip(t["substitution"], t["context"], strict=True)]
    n = t["total_molecules"].to_numpy(dtype=float)
    flank_rate = _cohort_rate_without_sample(t, _context_strength(t))
    t["e"] = flank_rate * n  # expected at the other samples' flank rates
    # ... and at the background's: the factors' reference (the other samples' flanks without context rates).
    t["b"] = n * _background_rate(t, context_rates, flank_rate)
    t = t[np.isfinite(t["e"].to_numpy()) & np.isfinite(t["b"].to_numpy())].reset_index(drop=True)
    a, e = t["alt_molecules"].to_numpy(dtype=float), t["e"].to_numpy()

    sums = {
        "a": ("alt_molecules", "sum"),
        "e": ("e", "sum"),
        "b": ("b", "sum"),
        "n": ("total_molecules", "sum"),
    }
    sample = t.groupby("sample_id", sort=True).agg(**sums)
    keys = ["sample_id", "group", "orientation"]
    group = t.groupby(keys, sort=True).agg(**sums)
    unit = _units(group.index.get_level_values("group"), group.index.get_level_values("orientation"))
    of_sample = sample.index.get_indexer(group.index.get_level_values("sample_id"))
    levels, k1, k2 = sample_levels(group["a"].to_numpy(), group["e"].to_numpy(), of_sample, unit)
    sample["factor"] = levels
    parent = levels[of_sample]
    group["factor"] = (group["a"] + k2) / (group["e"] + k2 / parent)

    parent = group["factor"].reindex(pd.MultiIndex.from_frame(t[keys])).to_numpy()
    cell_unit = _units(t["group"], t["orientation"])
    k3 = unit_strengths(a, e, parent, cell_unit)[cell_unit]
    t["factor"] = (a + k3) / (e + k3 / parent)

    # Over the background's rates: the factor over the other samples' flanks times their rate over the
    # background's (weighed by the sample's molecules at the coarser levels), except for a library that is part
    # of the panel-locus rates, which keeps its factor over the other libraries' flanks.
    for frame in (sample, group, t):
        flanks, background = frame["e"].to_numpy(dtype=float), frame["b"].to_numpy(dtype=float)
        ratio = np.divide(flanks, background, out=np.ones(len(frame)), where=background > 0)
        ids = t["sample_id"] if frame is t else frame.index.get_level_values("sample_id")
        ratio[np.isin(np.asarray(ids), list(in_cohort_rates))] = 1.0
        frame["factor"] = frame["factor"].to_numpy() * ratio
        frame["b"] = np.where(ratio == 1.0, flanks, background)
    rows = [
        pd.DataFrame({
            "sample_id": sample.index, "level": "sample", "substitution": "", "context": "", "orientation": "",
            "alt_molecules": sample["a"].to_numpy(), "total_molecules": sample["n"].to_numpy(),
            "expected_molecules": sample["b"].to_numpy(), "prior_strength": k1, "factor": sample["factor"].to_numpy(),
        }),
        pd.DataFrame({
            "sample_id": group.index.get_level_values("sample_id"), "level": "group",
            "substitution": group.index.get_level_values("group"), "context": "",
            "orientation": group.index.get_level_values("orientation"), "alt_molecules": group["a"].to_numpy(),
            "total_molecules": group["n"].to_numpy(), "expected_molecules": group["b"].to_numpy(),
            "prior_strength": k2, "factor": group["factor"].to_numpy(),
        }),
        t.assign(level="context", expected_molecules=t["b"].to_numpy(), prior_strength=k3),
    ]  # fmt: skip
    out = pd.concat([r.reset_index(drop=True) for r in rows], ignore_index=True)
    out["alt_molecules"] = out["alt_molecules"].astype(np.int64)
    out["total_molecules"] = out["total_molecules"].astype(np.int64)
    order = {level: i for i, level in enumerate(LEVELS)}
    out = out.sort_values(["sample_id", "level"], key=lambda c: c.map(order) if c.name == "level" else c,
                          kind="stable")  # fmt: skip
    return out[SAMPLE_RATE_COLUMNS].reset_index(drop=True)


def _background_rate(t: pd.DataFrame, context_rates: pd.DataFrame | None, fallback: np.ndarray) -> np.ndarray:
    """Per row, the background's rate of its context and orientation (pyrimidine strand, as the rows);
    `fallback` without context rates or for a context they lack."""
    if context_rates is None or not len(context_rates):
        return fallback
    table = context_rates[context_rates["orientation"].isin(ORIENTED)]
    table = table.set_index(["substitution", "context", "orientation"])["rate"]
    keys = pd.MultiIndex.from_frame(t[["substitution", "context", "orientation"]])
    rate = table.reindex(keys).to_numpy(dtype=float)
    return np.where(np.isfinite(rate) & (rate > 0), rate, fallback)


def _cohort_rate_without_sample(t: pd.DataFrame, strength: float) -> np.ndarray:
    """Per row (sample x cell), the cell's rate over the other samples' flanks: shrunk toward the group's rate
    (same orientation, also without the sample) by `strength` molecules (`_context_strength`); NaN where the
    other samples have no molecules in the group."""

    def others(keys: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """ALT and molecules of the rows' `keys` group over all samples, less the sample's own."""
        own = t.groupby(["sample_id", *keys])[["alt_molecules", "total_molecules"]].transform("sum")
        every = t.groupby(keys)[["alt_molecules", "total_molecules"]].transform("sum")
        left = (every - own).to_numpy(dtype=float)
        return left[:, 0], left[:, 1]

    cell_a, cell_n = others(["substitution", "context", "orientation"])
    group_a, group_n = others(["group", "orientation"])
    group_rate = (group_a + 0.5) / (group_n + 1.0)
    rate = (cell_a + strength * group_rate) / (cell_n + strength)
    return np.where(group_n > 0, rate, np.nan)


def _context_strength(t: pd.DataFrame) -> float:
    """How far the cohort's contexts differ from their group's rate: the beta-binomial prior strength
    (molecules) of the cells' pooled molecules around their group x orientation rate, fitted as background.py
    fits its context model. Contexts that do not differ get a strong prior: a cell's cohort rate is then its
    group's, and few ALT molecules in a thin cell do not pass for a sample's own excess."""
    from mrdtrack.calling.background import fit_prior_molecules  # scipy.optimize: the cohort step only

    cells = t.groupby(["substitution", "context", "orientation", "group"], as_index=False)[
        ["alt_molecules", "total_molecules"]
    ].sum()
    groups = cells.groupby(["group", "orientation"])[["alt_molecules", "total_molecules"]].transform("sum")
    mean = (groups["alt_molecules"] + 0.5) / (groups["total_molecules"] + 1.0)
    strength = fit_prior_molecules(cells["alt_molecules"], cells["total_molecules"], mean.to_numpy())
    # At least one expected ALT molecule's worth, as background.py's `min_prior_alt`.
    return max(strength, float(1.0 / mean.min()))


def unit_strengths(
    alt: np.ndarray, expected: np.ndarray, prior_mean: np.ndarray, unit: np.ndarray
) -> np.ndarray:
    """Per unit, the maximum-marginal-likelihood Gamma prior strength k (shape, in ALT molecules) of its rows:
    alt ~ Poisson(expected x lambda), lambda ~ Gamma(k, rate k / prior_mean), so alt is negative binomial with
    mean expected x prior_mean. Searched on `STRENGTH_GRID` (no scipy.optimize: call jobs import this module).
    A unit keeps the grid's top (every row takes its prior mean) unless its best strength beats it by
    `SPREAD_EVIDENCE`: with few samples a unit's likelihood is flat, and its maximum falls anywhere.

    Parameters
    ----------
    alt, expected, prior_mean : numpy.ndarray
        Per row (sample x unit): ALT molecules, ALT molecules expected at the cohort's rates, and the prior's
        mean factor.
    unit : numpy.ndarray
        Each row's unit, a code 0..units - 1.

    Returns
    -------
    numpy.ndarray
        The fitted k of each unit.
    """
    alt, unit = np.asarray(alt, dtype=float), np.asarray(unit, dtype=np.int64)
    mu = np.asarray(expected, dtype=float) * np.asarray(prior_mean, dtype=float)
    n_units = int(unit.max()) + 1 if len(unit) else 1
    log_lik = np.zeros((n_units, len(STRENGTH_GRID)))
    used = np.flatnonzero(mu > 0)
    for begin in range(0, len(used), ROWS_AT_A_TIME):
        rows = used[begin : begin + ROWS_AT_A_TIME]
        block = _negative_binomial(alt[rows, None], mu[rows, None], STRENGTH_GRID[None, :])
        np.add.at(log_lik, unit[rows], block)
    return STRENGTH_GRID[[_most_likely(row) for row in log_lik]]


def sample_levels(
    alt: np.ndarray, expected: np.ndarray, sample: np.ndarray, unit: np.ndarray, sweeps: int = 4
) -> tuple[np.ndarray, float, np.ndarray]:
    """Each sample's own level (posterior mean of `lambda_s`), the strength of its Gamma(k1, k1) prior, and per
    row the strength of its unit (module docstring: levels 1 and 2).

    The strengths maximise the marginal likelihood of all rows together, the levels integrated out on
    `LEVEL_GRID` and each unit's factors analytically (negative binomial), one strength at a time for a few
    sweeps, each on `JOINT_GRID` and kept at the top unless its best beats it by `SPREAD_EVIDENCE`. Jointly,
    because the levels and the units compete for the same spread: fitted in turn, units fitted first take the
    spread that all of a library's units share, and levels fitted first take the spread of the damaged unit.

    Parameters
    ----------
    alt, expected : numpy.ndarray
        Per (sample, unit) row: ALT molecules and those expected at the cohort's rates.
    sample, unit : numpy.ndarray
        Per row, the sample's (0..samples - 1) and the unit's code (0..units - 1).
    sweeps : int
        Passes over the strengths.

    Returns
    -------
    tuple
        (levels per sample, k1, strength per row).
    """
    n_samples, n_units = int(sample.max()) + 1, int(unit.max()) + 1
    used = np.asarray(expected, dtype=float) > 0
    alt, expected = np.asarray(alt, dtype=float)[used], np.asarray(expected, dtype=float)[used]
    sample, unit_used = np.asarray(sample)[used], np.asarray(unit)[used]
    top = len(JOINT_GRID) - 1
    chosen = np.full(n_units, top)
    # Each unit's log-likelihood (samples x levels) at its chosen strength; the full block over every strength
    # (samples x levels x strengths, ~40 MB at 500 samples) only while the unit is fitted.
    part = [
        _unit_block(alt, expected, sample, unit_used == u, n_samples, [top])[:, :, 0] for u in range(n_units)
    ]
    total = sum(part)
    k1 = top
    priors = np.stack([_log_gamma_prior(k) for k in JOINT_GRID], axis=1)  # levels x strengths
    for _ in range(sweeps):
        before = (k1, chosen.copy())
        k1 = _most_likely(_log_sum_exp(total[:, :, None] + priors[None, :, :]).sum(axis=0))
        prior = _log_gamma_prior(JOINT_GRID[k1])[None, :, None]
        for u in range(n_units):
            block = _unit_block(alt, expected, sample, unit_used == u, n_samples, range(top + 1))
            rest = total - part[u]
            chosen[u] = _most_likely(_log_sum_exp(rest[:, :, None] + block + prior).sum(axis=0))
            part[u] = block[:, :, chosen[u]]
            total = rest + part[u]
        if before[0] == k1 and np.array_equal(before[1], chosen):
            break
    posterior = total + _log_gamma_prior(JOINT_GRID[k1])[None, :]
    weights = np.exp(posterior - posterior.max(axis=1, keepdims=True))
    levels = weights @ LEVEL_GRID / weights.sum(axis=1)
    return levels, float(JOINT_GRID[k1]), JOINT_GRID[chosen][unit]


def _unit_block(
    alt: np.ndarray,
    expected: np.ndarray,
    sample: np.ndarray,
    rows: np.ndarray,
    n_samples: int,
    strengths: Iterable[int],
) -> np.ndarray:
    """samples x levels x `strengths` (indices into `JOINT_GRID`): the log-likelihood of one unit's row of each
    sample at each level and strength (0 for a sample without the row)."""
    k = JOINT_GRID[list(strengths)][None, None, :]
    block = np.zeros((n_samples, len(LEVEL_GRID), k.shape[2]))
    a = alt[rows, None, None]
    mean = expected[rows, None, None] * LEVEL_GRID[None, :, None]
    block[sample[rows]] = _negative_binomial(a, mean, k)
    return block


def _most_likely(marginal: np.ndarray) -> int:
    """The index of the best strength, or the grid's top unless the best beats it by `SPREAD_EVIDENCE`."""
    best = int(np.argmax(marginal))
    return best if marginal[best] - marginal[-1] > SPREAD_EVIDENCE else len(marginal) - 1


def _log_gamma_prior(k: float) -> np.ndarray:
    """log Gamma(k, rate k) density of `LEVEL_GRID` per unit of log level (the grid is even in log)."""
    return k * np.log(k) - special.gammaln(k) + k * np.log(LEVEL_GRID) - k * LEVEL_GRID


def _log_sum_exp(x: np.ndarray) -> np.ndarray:
    """log sum exp over axis 1."""
    top = x.max(axis=1, keepdims=True)
    return np.squeeze(top, axis=1) + np.log(np.exp(x - top).sum(axis=1))


def _negative_binomial(alt: np.ndarray, mean: np.ndarray, k: np.ndarray) -> np.ndarray:
    """log P(alt) for a negative binomial of this mean and shape k, without log(alt!) (no parameter in it);
    broadcast, with one logarithm over the full shape."""
    return (
        special.gammaln(alt + k) - special.gammaln(k) + k * np.log(k) + alt * np.log(mean)
        - (k + alt) * np.log(k + mean)
    )  # fmt: skip


def _units(group: Iterable[str], orientation: Iterable[str]) -> np.ndarray:
    """Each row's unit (group x orientation) as a code."""
    codes, _ = pd.factorize(
        pd.MultiIndex.from_arrays([np.asarray(list(group)), np.asarray(list(orientation))])
    )
    return codes


@dataclass(frozen=True)
class SampleFactors:
    """One sample's factors over the cohort's rates: overall, and per (substitution, context, orientation on the
    pyrimidine strand) with the group x orientation factor for a context without flank molecules."""

    overall: float
    by_group: Mapping[tuple[str, str], float]  # (group, orientation) -> factor
    by_context: Mapping[tuple[str, str, str], float]  # (substitution, context, orientation) -> factor

    def of_loci(self, loci: pd.DataFrame) -> np.ndarray:
        """Per locus (chrom, ref, alt, context as locus_rates.tsv has them), its factor in its F1R2 and F2R1
        molecules (reference strand, as the count tables): loci x 2. An indel takes the overall factor.
        Worked out once per distinct (ref, alt, context): a genome-wide panel has tens of thousands of loci
        but at most 192 SNV classes."""
        if not len(loci):
            return np.full((0, 2), self.overall)
        kind, kinds = pd.factorize(pd.MultiIndex.from_frame(loci[["ref", "alt", "context"]].astype(str)))
        return np.array([self._of_kind(*each) for each in kinds], dtype=float).reshape(-1, 2)[kind]

    def _of_kind(self, ref: str, alt: str, context: str) -> tuple[float, float]:
        if len(ref) != 1 or len(alt) != 1:
            return self.overall, self.overall
        substitution, ctx, flipped = pyrimidine_class(ref, alt, context)
        group = rate_group(substitution, ctx)
        factors = [
            self.by_context.get(
                (substitution, ctx, orientation), self.by_group.get((group, orientation), self.overall)
            )
            for orientation in (ORIENTED[::-1] if flipped else ORIENTED)
        ]
        return factors[0], factors[1]


def sample_factors(table: pd.DataFrame) -> dict[str, SampleFactors]:
    """The `sample_rates` table as each sample's `SampleFactors`.

    Parameters
    ----------
    table : pandas.DataFrame
        The `sample_rates` table (`fit_sample_rates`).

    Returns
    -------
    dict of str to SampleFactors
        Per sample with a `sample` row.
    """
    out = {}
    for sample_id, rows in table.groupby("sample_id", sort=False):
        level = rows["level"].to_numpy()
        overall = rows.loc[level == "sample", "factor"]
        if overall.empty:
            continue
        group = rows[level == "group"]
        context = rows[level == "context"]
        out[str(sample_id)] = SampleFactors(
            overall=float(overall.iloc[0]),
            by_group=dict(zip(zip(group["substitution"], group["orientation"], strict=True), group["factor"],
                              strict=True)),
            by_context=dict(zip(zip(context["substitution"], context["context"], context["orientation"],
                                    strict=True), context["factor"], strict=True)),
        )  # fmt: skip
    return out


def cohort_sample_rates(
    flanks: Iterable[tuple[str, pd.DataFrame]],
    settings: CallSettings,
    context_rates: pd.DataFrame | None = None,
    in_cohort_rates: Collection[str] = (),
) -> pd.DataFrame:
    """`fit_sample_rates` over the tallies of each sample's flank table.

    Parameters
    ----------
    flanks : iterable of (str, pandas.DataFrame)
        Each sample's id and flank table (`flanks` contract), one at a time (a generator keeps memory flat);
        plasma samples only, as the calls are.
    settings : CallSettings
        The flank exclusion rule's settings.
    context_rates : pandas.DataFrame, optional
        The background's context rates (`context_rates` contract): the factors' reference (`fit_sample_rates`).
    in_cohort_rates : collection of str
        Samples whose libraries are part of the panel-locus rates (`libraries_in_cohort_rates`).

    Returns
    -------
    pandas.DataFrame
        The `sample_rates` table.
    """
    tallies = [flank_tallies(table, settings).assign(sample_id=s) for s, table in flanks]
    tallies = [t for t in tallies if len(t)]
    if not tallies:
        return empty_table("sample_rates")
    return fit_sample_rates(pd.concat(tallies, ignore_index=True), context_rates, in_cohort_rates)


def libraries_in_cohort_rates(counts: pd.DataFrame, samples: pd.DataFrame) -> set[str]:
    """Samples sequenced at other patients' panel loci at least as deeply as at their own (INVAR-style pools,
    genome-wide signatures: their molecules are part of the panel-locus rates), not those captured at their own
    patient's panel alone (bespoke captures, whose panel rates come from other libraries, e.g. controls).

    Parameters
    ----------
    counts : pandas.DataFrame
        The cohort's count tables (`counts` contract: `panel_patients` says whose panel each locus is).
    samples : pandas.DataFrame
        The sample sheet (`sample_id`, `patient_id`).

    Returns
    -------
    set of str
        Their sample ids.
    """
    patient_of = dict(zip(samples["sample_id"], samples["patient_id"], strict=True))
    patient = counts["sample_id"].map(patient_of).fillna("").astype(str).to_numpy()
    listed = counts["panel_patients"].astype(str).to_numpy()
    own = np.array(
        [p != "" and p in lst.split(",") for p, lst in zip(patient, listed, strict=True)], dtype=bool
    )
    molecules = (counts["ref_molecules"] + counts["alt_molecules"]).to_numpy(dtype=float)
    frame = pd.DataFrame({"sample_id": counts["sample_id"].to_numpy(), "own": own * molecules,
                          "other": ~own * molecules})  # fmt: skip
    depth = frame.groupby("sample_id", sort=False)[["own", "other"]].sum()
    return set(depth.index[(depth["other"] >= depth["own"]) & (depth["own"] > 0)].astype(str))
