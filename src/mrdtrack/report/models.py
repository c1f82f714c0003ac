"""The survival step's models, terms and notes in a reader's words.

cox.tsv and summary.json name models by key (`time_varying_ever_positive_adjusted`) and terms by column
(`mrd_positive`); the report shows "Ever MRD-positive (time-varying), adjusted for age" and "MRD-positive vs
negative" instead, says where a pooled model is stratified by cohort, and turns the producers' notes into plain
sentences without a fitting library's exception names or links.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from mrdtrack.report.context import ALL, Context
from mrdtrack.report.formatting import short_note
from mrdtrack.report.recorded import setting

# Model keys of cox.tsv, without the `_adjusted` suffix and the landmark ones (named from their month).
MODEL_NAMES = {
    "baseline_unadjusted": "Baseline MRD status",
    "baseline": "Baseline MRD status",
    "time_varying_status": "MRD status over time (time-varying)",
    "time_varying_log10_tf": "Tumor fraction over time (time-varying)",
    "time_varying_ever_positive": "Ever MRD-positive (time-varying)",
}
TERM_NAMES = {
    "mrd_positive": "MRD-positive vs negative",
    "log10_tf": "per 10-fold higher tumor fraction",
    "ever_positive": "ever positive vs never",
}
LANDMARK = re.compile(r"landmark_(\d+(?:\.\d+)?)m(_closest)?")
# A fitting library's exception as it may end up in a note ("LinAlgError: Singular matrix", "ConvergenceError").
LIBRARY_ERROR = re.compile(r"\b[A-Z][A-Za-z]*(?:Error|Exception|Warning)\b(?::[^;()]*)?")
NOTE_PREFIX = re.compile(r"^(?P<model>[a-z][a-z0-9_]*?)(?: \((?P<cohort>[^)]*)\))?: (?P<rest>.*)$", re.S)
LEVEL = re.compile(r"\bno events when (\w+) = (\d+(?:\.\d+)?)")
CONSTANT = re.compile(r"\b(\w+) does not vary: no comparison")
# What a term measures, for sentences about it ("every patient has the same MRD status").
TERM_NOUNS = {
    "mrd_positive": "MRD status",
    "ever_positive": "ever-positive status",
    "log10_tf": "tumor fraction",
}
PHRASES = {
    "no complete rows": "no patient with complete data",
    "(monotone likelihood, coefficient diverges)": "(monotone likelihood: the estimate runs off to infinity)",
    "(infinite; monotone likelihood)": "(it would be infinite: monotone likelihood)",
}
FEW_EVENTS = re.compile(r"\b(\d+(?:\.\d+)?) events per variable \(< (\d+)\)")


def recorded_covariates(ctx: Context) -> list[str]:
    """The covariates the survival step adjusted for (survival.covariates as it recorded them)."""
    value = setting(ctx.tables.settings, "survival", "covariates")
    return [str(v) for v in value] if isinstance(value, list | tuple) else []


def model_label(model: str, covariates: Sequence[str] = ()) -> str:
    """'baseline_adjusted' -> 'Baseline MRD status, adjusted for age, hr positive'."""
    adjusted = model.endswith("_adjusted")
    key = model.removesuffix("_adjusted")
    landmark = LANDMARK.fullmatch(key)
    if landmark:
        months, closest = landmark.groups()
        name = f"MRD status at the {months}-month landmark" + (
            " (sample closest to it)" if closest else " (last sample before it)"
        )
    else:
        name = MODEL_NAMES.get(key, key.replace("_", " ").capitalize())
    if adjusted:
        name += ", adjusted for " + (", ".join(term_label(c) for c in covariates) or "covariates")
    return name


def term_label(term: str) -> str:
    """'mrd_positive' -> 'MRD-positive vs negative'; a covariate keeps the clinical sheet's name (`hr_positive`
    in words would read as a hazard ratio)."""
    return TERM_NAMES.get(term, term)


def cohort_text(cohort: str, stratified: bool) -> str:
    """'cohort stop', or 'all patients, stratified by cohort' for a pooled model with cohort strata."""
    if cohort == ALL:
        return "all patients, stratified by cohort" if stratified else "all patients"
    return f"cohort {cohort}"


def is_stratified(summary: Mapping[str, Any], model: str, cohort: str, default: bool) -> bool:
    """Whether the pooled fit of `model` had cohort strata: as summary.json recorded it, else `default`."""
    if cohort != ALL:
        return False
    fits = (summary.get("cox") or {}).get(model) if isinstance(summary.get("cox"), Mapping) else None
    fit = fits.get(cohort) if isinstance(fits, Mapping) else None
    if isinstance(fit, Mapping) and isinstance(fit.get("strata"), list):
        return "cohort" in fit["strata"]
    return default


def plain_note(note: str, covariates: Sequence[str] = ()) -> str:
    """A producer's note as a sentence: the model and term named in words, no library exception, no link."""
    text = LIBRARY_ERROR.sub("the fit failed numerically", short_note(note))
    text = LEVEL.sub(_event_free_level, text)
    text = CONSTANT.sub(lambda m: f"every patient has the same {_noun(m.group(1))}: no comparison", text)
    for phrase, words in PHRASES.items():
        text = text.replace(phrase, words)
    text = FEW_EVENTS.sub(r"only \1 events per variable (fewer than \2)", text)
    match = NOTE_PREFIX.match(text)
    if match and (match["model"] in MODEL_NAMES or "_" in match["model"]):
        where = f" \u00b7 {cohort_text(match['cohort'], False)}" if match["cohort"] else ""
        text = f"{model_label(match['model'], covariates)}{where}: {match['rest']}"
    for term, name in TERM_NAMES.items():
        text = re.sub(rf"\b{term}\b", name, text)
    text = re.sub(r"\(\s*\)", "", text)
    return re.sub(r"\s+", " ", text).strip()


def _noun(term: str) -> str:
    return TERM_NOUNS.get(term, term.replace("_", " "))


def _event_free_level(match: re.Match[str]) -> str:
    """'no events when mrd_positive = 0' -> 'no progression among MRD-negative patients'."""
    term, level = match.group(1), float(match.group(2))
    groups = {
        "mrd_positive": ("MRD-negative patients", "MRD-positive patients"),
        "ever_positive": ("patients never MRD-positive", "patients once MRD-positive"),
    }
    if term in groups:
        return f"no progression among {groups[term][int(level == 1)]}"
    return f"no progression where {term.replace('_', ' ')} = {level:g}"
