"""The cohort background error model: how often sequencing and PCR noise shows a panel ALT without any tumor.

Background is learnt only from observations that cannot hold tumor signal for the locus: healthy-control plasma
at every locus, and every patient sample (plasma, and the white-blood-cell normal) at loci outside its own
patient's panel. A locus in two patients' panels (a shared hotspot) is never background for either patient.

Rates are estimated at three levels, each shrunk toward the one above by empirical Bayes (beta-binomial):

1. substitution class (6 pyrimidine-centred classes, pooled; half a pseudo-count keeps every rate above 0);
2. class x trinucleotide context (96 classes), shrunk toward the class rate;
3. locus, shrunk toward its context rate.

Indels have a model of their own, fitted the same way on the indel loci alone (so SNV rates do not change
when indels join the panel): their errors come from polymerase slippage and grow with the length of the repeat
they sit in. Class: indel type x length (`del1`, `del2`, `del3-4`, `del5+`, `ins1`, ...); context: the class
x copies of the repeat unit in the reference (`rep0`, `rep1`, `rep2-3`, `rep4-5`, `rep6-7`, `rep8+`); the classes
are `locus_classes`'.

Loci whose noise is far above their context are excluded cohort-wide; loci whose ALT shows in the patient's
own matched normal (CHIP or germline) are excluded for that patient; with `exclude_chip_genes`, loci in
clonal-hematopoiesis genes (the panel's `chip_suspect`) are excluded for everyone.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mrdtrack.calling.exclusions import EXCLUDED_COLUMNS, chip_gene_exclusions, matched_normal_exclusions
from mrdtrack.calling.inference import binomial_tail
from mrdtrack.calling.locus_classes import GROUPS, SCHEMES, SNV_SCHEME, ClassScheme, annotate_classes
from mrdtrack.calling.settings import BackgroundSettings
from mrdtrack.logs import UserFacingError
from mrdtrack.tables import columns_of
from mrdtrack.vocabulary import LOCUS_KEY

log = logging.getLogger(__name__)

ORIENTATIONS = ("all", "f1r2", "f2r1")

CONTEXT_COLUMNS = columns_of("context_rates")  # mrdtrack.tables.CONTRACTS
LOCUS_COLUMNS = columns_of("locus_rates")  # mrdtrack.tables.CONTRACTS

# Errors' worth of prior on where a context's (and a substitution's) errors fall between the read orientations.
ORIENTATION_PRIOR_ERRORS = 10.0

# Beta-binomial prior strength (pseudo-molecules) is searched within these bounds: from "the locus speaks for
# itself" to "every locus has exactly its context's rate".
PRIOR_MOLECULES_BOUNDS = (1.0, 1e10)


# ----------------------------------------------------------------------------------------------------------
# Inputs
# ----------------------------------------------------------------------------------------------------------


def background_observations(
    counts: pd.DataFrame, samples: pd.DataFrame, include_normals: bool = True
) -> pd.DataFrame:
    """The (sample, locus) rows of `counts` that hold no tumor signal for the locus.

    Controls count everywhere; a patient's plasma and normal only at loci outside that patient's panel.
    """
    info = samples.set_index("sample_id")[["patient_id", "sample_type"]]
    merged = counts.join(info, on="sample_id")
    missing = merged["sample_type"].isna()
    if missing.any():
        raise UserFacingError(f"count tables of samples not in the sample sheet: {_few(merged[missing])}")
    own = [
        p != "" and p in panel.split(",")
        for p, panel in zip(merged["patient_id"], merged["panel_patients"], strict=True)
    ]
    keep = (merged["sample_type"] == "control") | ~np.asarray(own, dtype=bool)
    if not include_normals:
        keep &= merged["sample_type"] != "normal"
    return merged[keep].reset_index(drop=True)


def _few(frame: pd.DataFrame) -> str:
    names = sorted(set(frame["sample_id"]))
    return ", ".join(names[:5]) + (" ..." if len(names) > 5 else "")


def pool_loci(counts: pd.DataFrame, observations: pd.DataFrame) -> pd.DataFrame:
    """Per unique locus (in count-table order): background molecules pooled over samples, by orientation."""
    obs = observations.assign(
        total=observations["ref_molecules"] + observations["alt_molecules"],
        f1r2_total=observations["alt_f1r2"] + observations["ref_f1r2"],
        f2r1_total=observations["alt_f2r1"] + observations["ref_f2r1"],
    )
    obs["has_data"] = obs["total"] > 0
    obs["has_alt"] = obs["alt_molecules"] > 0
    sums = obs.groupby(LOCUS_KEY, sort=False).agg(
        alt_molecules=("alt_molecules", "sum"),
        total_molecules=("total", "sum"),
        alt_f1r2=("alt_f1r2", "sum"),
        total_f1r2=("f1r2_total", "sum"),
        alt_f2r1=("alt_f2r1", "sum"),
        total_f2r1=("f2r1_total", "sum"),
        n_samples=("has_data", "sum"),
        n_samples_with_alt=("has_alt", "sum"),
    )
    loci = counts[LOCUS_KEY + ["context"]].drop_duplicates(LOCUS_KEY).reset_index(drop=True)
    loci = loci.join(sums, on=LOCUS_KEY).fillna(0)
    int_columns = list(sums.columns)
    loci[int_columns] = loci[int_columns].astype(np.int64)
    return annotate_classes(loci)


# ----------------------------------------------------------------------------------------------------------
# Empirical Bayes
# ----------------------------------------------------------------------------------------------------------
def shrink(
    alt: np.ndarray, total: np.ndarray, prior_mean: np.ndarray, prior_molecules: np.ndarray
) -> np.ndarray:
    """Posterior mean rate under a Beta(M mu, M (1 - mu)) prior: (a + M mu) / (n + M)."""
    return (alt + prior_molecules * prior_mean) / (total + prior_molecules)


def fit_prior_molecules(alt: np.ndarray, total: np.ndarray, prior_mean: np.ndarray) -> float:
    """Maximum-likelihood beta-binomial prior strength M (= alpha + beta) given each unit's prior mean.

    Small M: units differ a lot (overdispersed), each keeps its own rate; large M: units share the mean.
    """
    alt, total, mean = (np.asarray(x, dtype=float) for x in (alt, total, prior_mean))
    used = total > 0
    if not used.any():
        return PRIOR_MOLECULES_BOUNDS[1]
    alt, total, mean = alt[used], total[used], mean[used]
    from scipy import optimize, stats  # here, not at the top: per-sample call jobs import this module

    def negative_log_likelihood(log_m: float) -> float:
        m = np.exp(log_m)
        return -float(stats.betabinom.logpmf(alt, total, m * mean, m * (1 - mean)).sum())

    bounds = np.log(PRIOR_MOLECULES_BOUNDS)
    result = optimize.minimize_scalar(negative_log_likelihood, bounds=bounds, method="bounded")
    return float(np.exp(result.x))


# ----------------------------------------------------------------------------------------------------------
# Context rates
# ----------------------------------------------------------------------------------------------------------
@dataclass
class ContextModel:
    class_rate: dict[str, float]  # group (`rate_group`) -> rate
    rates: pd.DataFrame  # CONTEXT_COLUMNS (orientation all / f1r2 / f2r1)
    prior_molecules: dict[str, float]  # group -> prior strength of its contexts around the group rate

    def rate_of(self, loci: pd.DataFrame) -> np.ndarray:
        """Each locus's context rate (orientation `all`); its class rate for an unusual context (N)."""
        table = self.rates[self.rates["orientation"] == "all"].set_index(["substitution", "context"])["rate"]
        keys = pd.MultiIndex.from_arrays([loci["substitution"], loci["pyrimidine_context"]])
        rate = table.reindex(keys).to_numpy()
        fallback = loci["group"].map(self.class_rate).to_numpy(dtype=float)
        return np.where(np.isnan(rate), fallback, rate)

    def orientation_factors(self, loci: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Each locus's error rate in its F1R2 and in its F2R1 molecules (the count tables' orientations) over
        its rate in both, from where its context's errors fall.

        The share of a context's errors in F1R2 molecules is shrunk toward its substitution's, and that toward
        the share of molecules in F1R2, each by a prior worth `ORIENTATION_PRIOR_ERRORS` errors: a context with
        a few errors says little about orientation, while 8-oxoG damage, which puts a substitution's errors in
        one orientation in every context, shows in all of them. A factor is that share over the share of
        molecules, so the two move a locus's errors between its orientations and leave their sum alone.

        Context rows are on the pyrimidine strand, where a purine reference's orientations swap (`_orient`):
        8-oxoG G>T in F1R2 molecules and its C>A mirror in F2R1 ones are one row.
        """
        oriented = self.rates[self.rates["orientation"] != "all"]
        wide = oriented.pivot_table(
            index=["substitution", "context"], columns="orientation",
            values=["alt_molecules", "total_molecules"], aggfunc="sum", fill_value=0,
        )  # fmt: skip
        alt_f1r2, alt = wide[("alt_molecules", "f1r2")], wide["alt_molecules"].sum(axis=1)
        total_f1r2, total = wide[("total_molecules", "f1r2")], wide["total_molecules"].sum(axis=1)
        molecule_share = _share(total_f1r2, total, 0.5)
        by_substitution = pd.DataFrame(
            {"alt_f1r2": alt_f1r2, "alt": alt, "total_f1r2": total_f1r2, "total": total}
        )
        sums = by_substitution.groupby(level="substitution").sum()
        substitution_share = _share(
            sums["alt_f1r2"] + ORIENTATION_PRIOR_ERRORS * _share(sums["total_f1r2"], sums["total"], 0.5),
            sums["alt"] + ORIENTATION_PRIOR_ERRORS,
            0.5,
        )
        prior = substitution_share.reindex(wide.index.get_level_values("substitution")).to_numpy()
        error_share = (alt_f1r2 + ORIENTATION_PRIOR_ERRORS * prior) / (alt + ORIENTATION_PRIOR_ERRORS)
        keys = pd.MultiIndex.from_arrays([loci["substitution"], loci["pyrimidine_context"]])
        errors = error_share.reindex(keys).to_numpy()
        molecules = molecule_share.reindex(keys).to_numpy()
        known = np.isfinite(errors) & np.isfinite(molecules) & (molecules > 0) & (molecules < 1)
        pyrimidine_f1r2 = np.where(known, errors / np.where(known, molecules, 0.5), 1.0)
        pyrimidine_f2r1 = np.where(known, (1 - errors) / np.where(known, 1 - molecules, 0.5), 1.0)
        flipped = loci["flipped"].to_numpy(dtype=bool)
        return (
            np.where(flipped, pyrimidine_f2r1, pyrimidine_f1r2),
            np.where(flipped, pyrimidine_f1r2, pyrimidine_f2r1),
        )

    def pooled(self, loci: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Each locus's context totals (alt, total) pooled over the loci the model was fitted on."""
        table = self.rates[self.rates["orientation"] == "all"].set_index(["substitution", "context"])
        keys = pd.MultiIndex.from_arrays([loci["substitution"], loci["pyrimidine_context"]])
        sub = table.reindex(keys)
        return sub["alt_molecules"].fillna(0).to_numpy(), sub["total_molecules"].fillna(0).to_numpy()


def _share(part: pd.Series, whole: pd.Series, empty: float) -> pd.Series:
    """part / whole, `empty` where whole is 0."""
    return (part / whole.where(whole > 0)).fillna(empty)


def class_rates(loci: pd.DataFrame, groups: Sequence[str] = GROUPS) -> dict[str, float]:
    """Pooled rate per group (substitution class; CpG apart), with half a pseudo-count so that no rate is 0.

    A group with no background molecules at all takes the cohort-wide rate.
    """
    grouped = loci.groupby("group")[["alt_molecules", "total_molecules"]].sum()
    alt_all, total_all = grouped["alt_molecules"].sum(), grouped["total_molecules"].sum()
    if total_all == 0:
        raise UserFacingError(
            "no background molecules: the background needs healthy-control plasma or other patients' samples "
            "covering the panel loci"
        )
    overall = (alt_all + 0.5) / (total_all + 1)
    rates = {}
    for group in groups:
        alt, total = grouped.loc[group] if group in grouped.index else (0, 0)
        rates[group] = float((alt + 0.5) / (total + 1)) if total > 0 else float(overall)
    return rates


def fit_context_model(
    loci: pd.DataFrame, settings: BackgroundSettings | None = None, scheme: ClassScheme = SNV_SCHEME
) -> ContextModel:
    """96-class context rates (and per orientation) shrunk toward their group's rate (`rate_group`).

    The prior strength is fitted per group: one cohort-wide value would be set by the groups whose contexts
    differ most and leave thin contexts of a uniform group with their own noisy rates (too low ones make
    single background molecules look like tumor). A group with fewer than `min_contexts_dispersion` contexts
    with data uses the cohort-wide value. As for loci, the prior carries at least `min_prior_alt` expected ALT
    molecules (Beta alpha >= 1: no prior that piles its mass on a rate of 0, which sparse data otherwise
    favour).
    """
    settings = settings or BackgroundSettings()
    by_class = class_rates(loci, scheme.groups)
    base = scheme.classes()
    extra = loci[["substitution", "pyrimidine_context"]].drop_duplicates()
    extra = extra.rename(columns={"pyrimidine_context": "context"})
    keys = pd.concat([base, extra]).drop_duplicates().reset_index(drop=True)
    sums = loci.groupby(["substitution", "pyrimidine_context"]).agg(
        alt=("alt_molecules", "sum"),
        total=("total_molecules", "sum"),
        **_oriented_sums(),
    )
    sums.index = sums.index.set_names(["substitution", "context"])
    table = keys.join(sums, on=["substitution", "context"]).fillna(0)
    table["group"] = [
        scheme.group_of(sub, ctx) for sub, ctx in zip(table["substitution"], table["context"], strict=True)
    ]
    prior = table["group"].map(by_class).to_numpy(dtype=float)
    by_class_m = _per_group_prior_molecules(table, prior, settings.min_contexts_dispersion, scheme.groups)
    by_class_m = {g: max(m, settings.min_prior_alt / by_class[g]) for g, m in by_class_m.items()}
    m = table["group"].map(by_class_m).to_numpy(dtype=float)
    rate_all = shrink(table["alt"].to_numpy(), table["total"].to_numpy(), prior, m)
    frames = [_context_rows(table, "all", table["alt"], table["total"], rate_all)]
    for orientation in ORIENTATIONS[1:]:
        alt, total = table[f"alt_{orientation}"], table[f"total_{orientation}"]
        # One orientation is shrunk toward the two orientations' rate with the weakest prior allowed (worth
        # `min_prior_alt` ALT molecules): strand-specific damage is exactly what these rows should show.
        rate = shrink(alt.to_numpy(), total.to_numpy(), rate_all, settings.min_prior_alt / rate_all)
        frames.append(_context_rows(table, orientation, alt, total, rate))
    rates = pd.concat(frames, ignore_index=True)
    return ContextModel(by_class, rates, by_class_m)


def _per_group_prior_molecules(
    table: pd.DataFrame, prior: np.ndarray, min_contexts: int, groups: Sequence[str]
) -> dict[str, float]:
    alt, total = table["alt"].to_numpy(), table["total"].to_numpy()
    cohort_m = fit_prior_molecules(alt, total, prior)
    result = {}
    for group in groups:
        sel = (table["group"] == group).to_numpy() & (total > 0)
        enough = sel.sum() >= min_contexts
        result[group] = fit_prior_molecules(alt[sel], total[sel], prior[sel]) if enough else cohort_m
    return result


def _oriented_sums() -> dict[str, tuple[str, str]]:
    # Orientation on the pyrimidine strand: for a purine reference the two orientations swap (see
    # `_orient`), so 8-oxoG G>T seen on read 1 and its C>A mirror land in the same orientation of C>A.
    return {f"{kind}_{o}": (f"{kind}_{o}_pyr", "sum") for kind in ("alt", "total") for o in ORIENTATIONS[1:]}


def _orient(loci: pd.DataFrame) -> pd.DataFrame:
    """Add orientation counts on the pyrimidine strand (`*_pyr`): F1R2 and F2R1 swap when flipped."""
    out = loci.copy()
    flipped = out["flipped"].to_numpy(dtype=bool)
    for kind in ("alt", "total"):
        f1r2, f2r1 = out[f"{kind}_f1r2"].to_numpy(), out[f"{kind}_f2r1"].to_numpy()
        out[f"{kind}_f1r2_pyr"] = np.where(flipped, f2r1, f1r2)
        out[f"{kind}_f2r1_pyr"] = np.where(flipped, f1r2, f2r1)
    return out


def _context_rows(
    table: pd.DataFrame, orientation: str, alt: pd.Series, total: pd.Series, rate: np.ndarray
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "substitution": table["substitution"],
            "context": table["context"],
            "orientation": orientation,
            "alt_molecules": alt.astype(np.int64).to_numpy(),
            "total_molecules": total.astype(np.int64).to_numpy(),
            "rate": rate,
        }
    )


# ----------------------------------------------------------------------------------------------------------
# Noisy loci and locus rates
# ----------------------------------------------------------------------------------------------------------
def leave_one_out_context_rate(loci: pd.DataFrame, model: ContextModel, fitted: np.ndarray) -> np.ndarray:
    """Each locus's context rate computed without the locus itself (at the context and the class level).

    A noisy locus inflates its own context's and class's rate; judged against itself it would hide in a thin
    context. `fitted` marks the loci the context model was fitted on (only those are taken out again).
    """
    alt = np.where(fitted, loci["alt_molecules"], 0)
    total = np.where(fitted, loci["total_molecules"], 0)
    ctx_alt, ctx_total = model.pooled(loci)
    cls = loci[fitted].groupby("group")[["alt_molecules", "total_molecules"]].sum()
    cls_alt = loci["group"].map(cls["alt_molecules"]).fillna(0).to_numpy() - alt
    cls_total = loci["group"].map(cls["total_molecules"]).fillna(0).to_numpy() - total
    all_alt, all_total = cls["alt_molecules"].sum() - alt, cls["total_molecules"].sum() - total
    # Half a pseudo-count, as in `class_rates`; a class left empty falls back to the rest of the cohort.
    class_rate = np.where(cls_total > 0, (cls_alt + 0.5) / (cls_total + 1), (all_alt + 0.5) / (all_total + 1))
    m = loci["group"].map(model.prior_molecules).to_numpy(dtype=float)
    return shrink(ctx_alt - alt, ctx_total - total, class_rate, m)


def noise_flags(
    loci: pd.DataFrame, reference: np.ndarray, settings: BackgroundSettings
) -> tuple[np.ndarray, np.ndarray]:
    """(reason per locus or "", binomial tail p) for loci whose noise is far above `reference`."""
    alt = loci["alt_molecules"].to_numpy()
    total = loci["total_molecules"].to_numpy()
    p_tail = binomial_tail(alt, total, reference)
    raw = np.divide(alt, total, out=np.zeros(len(loci)), where=total > 0)
    far_above = raw >= settings.noisy_min_fold * reference
    noisy = (p_tail < settings.noisy_max_p) & far_above
    n_samples = loci["n_samples"].to_numpy()
    share = np.divide(
        loci["n_samples_with_alt"].to_numpy(), n_samples, out=np.zeros(len(loci)), where=n_samples > 0
    )
    widespread = (
        (share > settings.max_alt_sample_share) & (n_samples >= settings.min_samples_share) & far_above
    )
    reason = np.where(noisy, "noisy_locus", np.where(widespread, "alt_in_many_samples", ""))
    return reason, p_tail


def find_noisy_loci(
    loci: pd.DataFrame, settings: BackgroundSettings, max_rounds: int = 10, scheme: ClassScheme = SNV_SCHEME
) -> pd.DataFrame:
    """Flag noisy loci, refit the context rates without them, and repeat until the flags settle."""
    reason = np.full(len(loci), "", dtype=object)
    p_tail = np.ones(len(loci))
    for _ in range(max_rounds):
        fitted = reason == ""
        model = fit_context_model(_orient(loci[fitted]), settings, scheme)
        new_reason, p_tail = noise_flags(loci, leave_one_out_context_rate(loci, model, fitted), settings)
        if np.array_equal(new_reason == "", reason == ""):
            reason = new_reason
            break
        reason = new_reason
    out = loci.copy()
    out["reason"] = reason
    out["noise_p_value"] = p_tail
    return out


def locus_prior_molecules(
    loci: pd.DataFrame, prior_mean: np.ndarray, settings: BackgroundSettings, groups: Sequence[str] = GROUPS
) -> np.ndarray:
    """Per-locus beta-binomial prior strength: fitted per group (`rate_group`) on clean loci.

    A group with fewer than `min_loci_dispersion` clean loci with data borrows the cohort-wide value; every
    prior carries at least `min_prior_alt` expected ALT molecules, so that a locus with no ALT in a modest
    number of molecules is not trusted to be quieter than its context by orders of magnitude.
    """
    clean = (loci["reason"] == "").to_numpy() & (loci["total_molecules"] > 0).to_numpy()
    alt, total = loci["alt_molecules"].to_numpy(), loci["total_molecules"].to_numpy()
    cohort_m = fit_prior_molecules(alt[clean], total[clean], prior_mean[clean])
    m = np.full(len(loci), cohort_m)
    for group in groups:
        in_class = (loci["group"] == group).to_numpy()
        if (in_class & clean).sum() >= settings.min_loci_dispersion:
            sel = in_class & clean
            m[in_class] = fit_prior_molecules(alt[sel], total[sel], prior_mean[sel])
    return np.maximum(m, settings.min_prior_alt / prior_mean)


# ----------------------------------------------------------------------------------------------------------
# The whole step
# ----------------------------------------------------------------------------------------------------------
@dataclass
class BackgroundModel:
    """The cohort background error model, as the background step writes it.

    Parameters
    ----------
    context_rates : pandas.DataFrame
        Error rate per substitution class and context (`context_rates` contract).
    locus_rates : pandas.DataFrame
        Error rate per panel locus, shrunk toward its context (`locus_rates` contract).
    excluded : pandas.DataFrame
        Loci excluded for everyone (patient_id "") or for one patient, with the reason (`excluded` contract).
    """

    context_rates: pd.DataFrame  # CONTEXT_COLUMNS
    locus_rates: pd.DataFrame  # LOCUS_COLUMNS
    excluded: pd.DataFrame  # EXCLUDED_COLUMNS


def build_background(
    counts: pd.DataFrame,
    samples: pd.DataFrame,
    settings: BackgroundSettings | None = None,
    panel: pd.DataFrame | None = None,
) -> BackgroundModel:
    """Fit context and locus error rates from the cohort's background observations; list excluded loci.

    SNVs and indels are fitted apart, each kind on its own loci.

    Parameters
    ----------
    counts : pandas.DataFrame
        Every sample's count table (`counts` contract), concatenated.
    samples : pandas.DataFrame
        The sample sheet (`samples` contract).
    settings : BackgroundSettings, optional
        The `background:` section; defaults when None.
    panel : pandas.DataFrame, optional
        Every patient's panel loci (results/panel/loci.tsv); needed only with `exclude_chip_genes`.

    Returns
    -------
    BackgroundModel
        The context rates, locus rates and excluded loci.
    """
    settings = settings or BackgroundSettings()
    observations = background_observations(counts, samples, settings.include_normals)
    pooled = pool_loci(counts, observations)
    # A cohort without loci still goes through the SNV fit, which says there is no background.
    schemes = [s for s in SCHEMES if (pooled["kind"] == s.kind).any()] or [SNV_SCHEME]
    fits = [_fit_kind(pooled[(pooled["kind"] == s.kind).to_numpy()], settings, s) for s in schemes]
    # Back in count-table order: each kind kept the pooled table's index.
    loci = pd.concat([locus for locus, _ in fits]).sort_index(kind="stable")
    clean = ~loci["excluded"].to_numpy(dtype=bool)
    locus_rates = loci[LOCUS_COLUMNS].reset_index(drop=True)
    noisy = locus_rates.loc[~clean, LOCUS_KEY + ["reason"]].assign(patient_id="")
    chip = chip_gene_exclusions(panel, locus_rates, settings)
    excluded = pd.concat(
        [noisy[EXCLUDED_COLUMNS]]
        + ([chip] if len(chip) else [])
        + [matched_normal_exclusions(counts, samples, locus_rates, settings)],
        ignore_index=True,
    )
    log.info(
        "background: %d loci (%d indels), %d excluded cohort-wide, %d patient-specific exclusions",
        len(locus_rates), int((loci["kind"] == "indel").sum()), int((excluded["patient_id"] == "").sum()),
        int((excluded["patient_id"] != "").sum()),
    )  # fmt: skip
    context_rates = pd.concat([model.rates[CONTEXT_COLUMNS] for _, model in fits], ignore_index=True)
    return BackgroundModel(context_rates, locus_rates, excluded.reset_index(drop=True))


def _fit_kind(
    loci: pd.DataFrame, settings: BackgroundSettings, scheme: ClassScheme
) -> tuple[pd.DataFrame, ContextModel]:
    """The loci of one kind with their rates and exclusions (LOCUS_COLUMNS + kind), and their context model."""
    loci = find_noisy_loci(loci, settings, scheme=scheme)
    clean = (loci["reason"] == "").to_numpy()
    model = fit_context_model(_orient(loci[clean]), settings, scheme)
    context_rate = model.rate_of(loci)
    prior_m = locus_prior_molecules(loci, context_rate, settings, scheme.groups)
    loci["context_rate"] = context_rate
    loci["prior_molecules"] = prior_m
    alt, total = loci["alt_molecules"].to_numpy(), loci["total_molecules"].to_numpy()
    # An excluded locus was found not to belong to its context's distribution: report its own rate instead.
    loci["rate"] = np.where(clean, shrink(alt, total, context_rate, prior_m), (alt + 0.5) / (total + 1))
    loci["excluded"] = ~clean
    loci["rate_f1r2"], loci["rate_f2r1"] = (
        loci["rate"].to_numpy() * f for f in model.orientation_factors(loci)
    )
    log.info(
        "%s context prior strength (molecules) per group: %s",
        scheme.kind, {g: f"{m:.3g}" for g, m in model.prior_molecules.items()},
    )  # fmt: skip
    return loci, model
