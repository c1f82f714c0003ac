"""Stage 3, calling (workflow/rules/background.smk, calling.smk): the cohort background error model, fragment
lengths, the fragment likelihood and the per-sample MRD call with its calibration.

Import the entry points from here (`from mrdtrack.calling import calibrate, SampleCaller`); the modules behind
them are laid out by level and may move:

- `settings`: the `background:` and `calling:` config sections (`BackgroundSettings`, `CallSettings`);
- `background`: the cohort background error model (`build_background`), over the error classes of
  `locus_classes`, with the matched-normal and CHIP-gene exclusions of `exclusions`;
- `fraglen`: fragment-length evidence (`LengthModel`);
- `likelihood`: the likelihood of a tumor fraction over DNA fragments (`LikelihoodTerms`), and `inference`:
  its estimate, test and interval;
- `null` and `lod`: the statistic's null distribution, the threshold rule and the LOD95, simulated over
  drawn tables held by their ALT fragments (`drawn`) or computed (`analytic_lod`, on `saddlepoint`);
- `score`: one sample's score at one set of loci (outliers, tumor fraction, interval, test);
- `cohort`: the count matrices, panels and exclusions a call reads, and one sample at one panel;
- `sample_rates`: each sample's own background factors by context and orientation, from its flanks;
- `own_null`: each sample's own null, synthetic panels of fresh draws at loci matched to its flank positions
  (`flank_pool`), scored together through their ALT molecules (`synthetic`);
- `calibration`: the cohort step (null scores, threshold, contamination, the samples' own factors);
- `caller`: the per-sample call, its status, and calls.tsv.
"""

from mrdtrack.calling.background import BackgroundModel, BackgroundSettings, build_background
from mrdtrack.calling.calibration import (
    Calibration,
    Threshold,
    calibrate,
    read_calibration,
    write_calibration,
)
from mrdtrack.calling.caller import (
    CALL_COLUMNS,
    CallResult,
    SampleCaller,
    call_cohort,
    gather_calls,
    read_call_rows,
)
from mrdtrack.calling.fraglen import LengthClasses, LengthModel, build_length_model
from mrdtrack.calling.likelihood import LikelihoodTerms
from mrdtrack.calling.lod import lod95
from mrdtrack.calling.null import (
    NullDistribution,
    null_distribution,
    null_scores_needed,
    seeded_rng,
    threshold_from_null,
)
from mrdtrack.calling.sample_rates import cohort_sample_rates, libraries_in_cohort_rates
from mrdtrack.calling.settings import CallSettings

__all__ = [
    "BackgroundModel", "BackgroundSettings", "CALL_COLUMNS", "Calibration", "CallResult", "CallSettings",
    "LengthClasses", "LengthModel", "LikelihoodTerms", "NullDistribution", "SampleCaller", "Threshold",
    "build_background", "build_length_model", "calibrate", "call_cohort", "cohort_sample_rates", "gather_calls",
    "libraries_in_cohort_rates", "lod95", "null_distribution", "null_scores_needed", "read_calibration", "read_call_rows", "seeded_rng",
    "threshold_from_null", "write_calibration",
]  # fmt: skip
