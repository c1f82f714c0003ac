"""The calling stage's config sections, `background:` and `calling:`: the one home of their defaults
(config/README.md documents each key)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from mrdtrack.settings import StepSettings


@dataclass(frozen=True)
class CallSettings(StepSettings):
    """Settings of the `calling:` config section. Build with `CallSettings.from_config(section)`; each key's
    full description lives once, in workflow/schemas/config.schema.yaml (config/README.md lists them), and the
    comment beside each field here says what it sets.

    Parameters
    ----------
    min_loci, min_molecules, max_lod95 : int, int, float
        The QC gate: a sample that is not positive with fewer usable loci or informative molecules, or with a
        LOD95 above `max_lod95`, is indeterminate.
    min_mutant_fragments, min_mutant_loci : int
        The support a positive needs: this many distinct mutant fragments at this many loci.
    false_positive_rate, empirical_min_expected : float
        The threshold: the largest p-value cut allowed, set from the null scores when they would hold at least
        `empirical_min_expected` false positives at that rate.
    synthetic_null_panels, synthetic_depth_fold, own_level_prior : int, float, float
        The sample's own null: synthetic panels from its flank positions, their depth matching, and the prior
        on the sample's own noise level that scales their rates.
    flank_max_vaf, flank_noise_max_p : float, float
        The germline/CHIP and noisy flank positions left out of the own null and the sample's own rates.
    max_null_panels, contamination_check, contamination_max_panels : int or None, bool, int
        The cross-patient null: other patients' panels each sample is scored at, and the contamination flag.
    p_value_method, monte_carlo_max_expected, null_draws, min_exceedances : str, float, int, int
        How the likelihood-ratio statistic becomes a p-value (chi-bar asymptotics or Monte Carlo).
    lod_method, lod_analytic_min_expected, lod_draws, lod_power : str, float, int, float
        How the LOD is computed (saddlepoint or Monte Carlo) and the detection probability that defines it.
    ci_level, overdispersion, outlier_max_p : float, bool, float
        The tumor-fraction interval, its widening by between-locus overdispersion, and the in-sample outlier
        test.
    sample_background, sample_background_prior : bool, float
        The sample's own background: its factors by context and read orientation from its flank tallies
        (shrunk toward the cohort's with prior strengths fitted across samples), or for a sample without
        flanks one scale from other patients' loci, with the strength of that scale's prior.
    fragment_lengths, fragment_length_prior, fragment_length_bandwidth : bool, float, float
        Fragment-length evidence: whether it weighs in, its shrinkage toward a ratio of 1, its smoothing (bp).
    seed : int
        Base seed of every Monte Carlo draw (each sample's seed derives from it).
    """

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
    lod_method: str = "auto"  # auto | analytic | monte_carlo
    lod_analytic_min_expected: float = 5.0  # auto: analytic LOD when expected null ALT fragments >= this
    ci_level: float = 0.95  # profile-likelihood confidence level
    outlier_max_p: float = 1e-4  # in-sample outlier locus: binomial upper tail below this
    contamination_check: bool = True  # flag samples significant for another patient's panel
    contamination_max_panels: int = 1  # significant at more panels than this: noise, kept in calibration
    seed: int = 20240601  # base seed of every Monte Carlo draw (per-sample seeds derive from it)
    sample_background: bool = True  # the sample's own rates: flank factors (else a scale at other loci)
    sample_background_prior: float = 10.0  # Gamma prior strength of the other-loci scale, in expected ALTs
    fragment_lengths: bool = True  # weigh each ALT molecule by its fragment length's tumor/normal ratio
    fragment_length_prior: float = 200.0  # pseudo tumor molecules shrinking the learned length ratio to 1
    fragment_length_bandwidth: float = 4.0  # bp, Gaussian smoothing of the length histograms
    min_mutant_fragments: int = 2  # a positive needs this many distinct fragments with an ALT ...
    min_mutant_loci: int = 2  # ... at this many loci
    empirical_min_expected: float = (
        10.0  # empirical threshold only when the null would show this many positives
    )
    overdispersion: bool = True  # widen the TF interval by the loci's between-locus overdispersion
    # Other patients' panels each sample is scored against (None: all); workflow/rules/common.smk sizes the
    # calibrate job from it.
    max_null_panels: int | None = 10
    # The sample's own null (own_null.py): synthetic panels drawn from its flank positions.
    synthetic_null_panels: int = 1000  # synthetic panels per sample (0: none; the cohort threshold is used)
    synthetic_depth_fold: float = 2.0  # a synthetic locus's depth within this factor of the real locus's
    own_level_prior: float = 100.0  # expected ALT molecules' worth of prior on the own null's noise level
    flank_max_vaf: float = (
        0.05  # a flank position with 2+ ALT molecules at this ALT share: germline/CHIP, out
    )
    flank_noise_max_p: float = 1e-3  # ... or with a binomial tail vs the sample's class rate below this


@dataclass(frozen=True)
class BackgroundSettings(StepSettings):
    """Settings of the `background:` config section. Build with `BackgroundSettings.from_config(section)`; each
    key's full description lives once, in workflow/schemas/config.schema.yaml (config/README.md lists them).

    Parameters
    ----------
    include_normals : bool
        Patients' normals (WBC DNA) at other patients' loci count as background.
    min_prior_alt, min_loci_dispersion, min_contexts_dispersion : float, int, int
        The empirical-Bayes priors: the fewest expected ALT molecules a prior carries, and the loci and contexts
        a group needs to fit its own prior strength (else the cohort-wide one).
    noisy_max_p, noisy_min_fold, max_alt_sample_share, min_samples_share : float, float, float, int
        Loci excluded for everyone: noisy (binomial tail and fold over the context rate) or recurrent (ALT in
        too large a share of the background samples).
    normal_min_alt, normal_min_vaf, normal_max_p, germline_min_vaf : int, float, float, float
        Loci excluded for one patient by the matched normal, and the VAF from which the reason reads germline
        rather than CHIP.
    exclude_chip_genes : bool
        Exclude the panel's chip_suspect loci from every call (else they are only flagged).
    """

    SECTION: ClassVar[str] = "background"

    include_normals: bool = True  # use normals at other patients' loci as background
    min_prior_alt: float = 1.0  # a locus prior carries at least this many expected ALT molecules
    min_loci_dispersion: int = 20  # fewer loci in a group: use the cohort-wide locus overdispersion
    min_contexts_dispersion: int = 4  # fewer contexts with data in a group: cohort-wide value
    noisy_max_p: float = 1e-6  # binomial tail of the locus ALT count vs its context rate
    noisy_min_fold: float = 5.0  # ... and raw locus rate at least this many times the context rate
    max_alt_sample_share: float = 0.25  # ALT seen in more than this share of background samples ...
    min_samples_share: int = 8  # ... when the locus has at least this many background samples
    normal_min_alt: int = 2  # matched normal: at least this many ALT molecules ...
    normal_min_vaf: float = 0.002  # ... and a VAF that could be this much (95% upper bound) ...
    normal_max_p: float = 1e-3  # ... and binomial tail vs the locus background below this
    germline_min_vaf: float = 0.2  # normal VAF from which the reason says germline rather than CHIP
    exclude_chip_genes: bool = False  # exclude the panel's chip_suspect loci for everyone (else: flag only)
