"""The HTML report: self-contained, one figure per section, downloadable data, robust to missing inputs.

The fixture builder writes small synthetic tables following docs/tables.md, so these tests do not depend on the
steps that produce the real tables.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import logging
import re
import runpy
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import markupsafe
import numpy as np
import pandas as pd
import plotly.offline
import pytest
from scipy import stats

from conftest import REPO
from mrdtrack.calling import BackgroundSettings, CallSettings
from mrdtrack.counting import CountSettings
from mrdtrack.logs import UserFacingError
from mrdtrack.outcomes import ClinicalSettings, SurvivalSettings
from mrdtrack.report import Report, ReportInputs, ReportSettings, build_report, write_report
from mrdtrack.report.qc import context_matrix
from mrdtrack.settings import settings_record, write_settings
from mrdtrack.tables import columns_of
from mrdtrack.vocabulary import DAYS_PER_MONTH, SUBSTITUTIONS

ALL_FIGURES = {
    "answer", "km_pooled", "km_continue", "km_stop", "landmark_km", "forest", "endpoints", "prediction", "swimmer",
    "trajectories", "lead_time", "qc_samples", "lod", "background", "fraglen", "excluded", "locus_noise",
}  # fmt: skip
SURVIVAL_FIGURES = {
    "answer", "km_pooled", "km_continue", "km_stop", "landmark_km", "forest", "endpoints", "prediction",
}  # fmt: skip


# ---------------------------------------------------------------------------------------------------- fixtures


@dataclass
class Cohort:
    """What the fixture builder made, for the assertions."""

    inputs: ReportInputs
    folder: Path
    patients: pd.DataFrame
    calls: pd.DataFrame


def build_fixture(
    folder: Path,
    n_patients: int = 12,
    samples_per_patient: int = 5,
    seed: int = 7,
    positives: bool = True,
    survival: bool = True,
) -> Cohort:
    """Write a synthetic run's tables (docs/tables.md) under `folder` and return their paths."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    clinical = _clinical(rng, n_patients, positives)
    calls = _calls(rng, clinical, samples_per_patient)
    patients = _patients_table(clinical, calls)
    paths = {
        "calls": _tsv(calls, folder / "mrd/calls.tsv"),
        "loci": _tsv(_mrd_loci(rng, calls), folder / "mrd/loci.tsv"),
        "samples": _tsv(_sample_sheet(calls, clinical), folder / "sheets/samples.tsv"),
        "patients": _tsv(patients, folder / "clinical/patients.tsv"),
        "joined": _tsv(_joined(calls, clinical), folder / "clinical/joined.tsv"),
        **_background(rng, folder / "background"),
        **_survival(patients, calls, folder / "survival", survival),
    }
    sample_ids = list(calls["sample_id"]) + [f"CTRL{i}" for i in range(1, 4)]
    paths["fraglen"] = [_tsv(_fraglen(rng), folder / f"counts/{s}.fraglen.tsv") for s in sample_ids]
    paths["qc"] = [_qc_json(rng, folder / f"counts/{s}.qc.json") for s in sample_ids]
    paths["settings"] = [_settings_json(folder / f"{step}/settings.json", step) for step in STEP_SETTINGS]
    return Cohort(ReportInputs.from_mapping(paths), folder, patients, calls)


def _tsv(frame: pd.DataFrame, path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, sep="\t", index=False, float_format="%.6g", lineterminator="\n")
    return str(path)


def _date(start: pd.Timestamp, months: float) -> str:
    return (start + pd.Timedelta(days=round(months * DAYS_PER_MONTH))).date().isoformat()


def _clinical(rng: np.random.Generator, n: int, positives: bool) -> pd.DataFrame:
    rows = []
    for i in range(n):
        enrolled = pd.Timestamp("2021-01-04") + pd.Timedelta(days=int(rng.integers(0, 400)))
        mrd = positives and rng.random() < 0.45
        follow_up = rng.uniform(8, 30)
        pfs = min(rng.exponential(9 if mrd else 40), follow_up)
        event = int(pfs < follow_up)
        death_first = event and rng.random() < 0.15
        died = event and (death_first or rng.random() < 0.3)
        os_months = (
            pfs if death_first else (min(pfs + rng.uniform(2, 10), follow_up + 6) if died else follow_up)
        )
        cohort = "continue" if i % 2 == 0 else "stop"
        restart = _date(enrolled, pfs + 0.4) if cohort == "stop" and event and not death_first else ""
        rows.append({
            "patient_id": f"P{i + 1:03d}", "cohort": cohort, "enrollment_date": enrolled.date().isoformat(),
            "pfs_event": event, "pfs_date": _date(enrolled, pfs), "os_event": int(died),
            "os_date": _date(enrolled, max(os_months, pfs)), "restart_date": restart,
            "restart_benefit": "" if not restart else int(rng.random() < 0.5), "age": int(rng.integers(35, 80)),
            "latent_mrd": mrd, "latent_pfs": pfs, "latent_onset": rng.uniform(-1, pfs),
        })  # fmt: skip
    return pd.DataFrame(rows)


def _calls(rng: np.random.Generator, clinical: pd.DataFrame, per_patient: int) -> pd.DataFrame:
    rows = []
    for p in clinical.itertuples():
        enrolled = pd.Timestamp(p.enrollment_date)
        for k in range(per_patient):
            months = -0.15 if k == 0 else 3.0 * k + rng.uniform(-0.3, 0.3)
            rows.append(_call_row(rng, p, enrolled, k, months))
    return pd.DataFrame(rows)


def _call_row(rng: np.random.Generator, p: object, enrolled: pd.Timestamp, k: int, months: float) -> dict:
    lod = 10 ** rng.uniform(-4.6, -3.0)
    positive = p.latent_mrd and months >= p.latent_onset  # type: ignore[attr-defined]
    tf = (
        10 ** rng.uniform(-3.8, -1.8)
        if positive
        else (0.0 if rng.random() < 0.7 else lod * rng.uniform(0.05, 0.5))
    )
    status = "positive" if positive else ("indeterminate" if lod > 10**-3.25 else "negative")
    flags = "low_molecules" if rng.random() < 0.08 else ""
    total = int(10 ** rng.uniform(4, 5.5))
    fragments = int(tf * total / 2)
    return {
        "sample_id": f"{p.patient_id}_S{k + 1}", "patient_id": p.patient_id,  # type: ignore[attr-defined]
        "collection_date": _date(enrolled, months), "batch": f"B{(k % 3) + 1}", "mrd_status": status,
        "tumor_fraction": tf, "tf_ci_low": tf * 0.5, "tf_ci_high": tf * 1.8 + lod, "p_value": 1e-6 if positive else 0.4,
        "threshold": 0.01, "lod95": lod, "n_loci_used": int(rng.integers(14, 21)), "n_loci_panel": 20,
        "mutant_molecules": int(tf * total / 2), "total_molecules": total, "mtm_per_ml": tf * 900,
        "flags": flags, "status_reason": "lod_above_max" if status == "indeterminate" else "",
        "mutant_fragments": fragments, "mutant_loci": min(fragments, 3), "threshold_source": "nominal",
        "n_null_scores": 140,
    }  # fmt: skip


def _months(later: pd.Series, earlier: pd.Series) -> pd.Series:
    return (pd.to_datetime(later) - pd.to_datetime(earlier)).dt.days / DAYS_PER_MONTH


def _patients_table(clinical: pd.DataFrame, calls: pd.DataFrame) -> pd.DataFrame:
    out = clinical.drop(columns=["latent_mrd", "latent_pfs", "latent_onset"]).copy()
    out["pfs_months"] = _months(out["pfs_date"], out["enrollment_date"])
    out["os_months"] = _months(out["os_date"], out["enrollment_date"])
    first = calls.groupby("patient_id").first()
    out["baseline_sample_id"] = out["patient_id"].map(first["sample_id"])
    out["baseline_date"] = out["patient_id"].map(first["collection_date"])
    out["baseline_status"] = out["patient_id"].map(first["mrd_status"])
    out["baseline_tf"] = out["patient_id"].map(first["tumor_fraction"])
    out["baseline_lod95"] = out["patient_id"].map(first["lod95"])
    out["n_samples"] = out["patient_id"].map(calls.groupby("patient_id").size())
    out["statuses"] = out["patient_id"].map(calls.groupby("patient_id")["mrd_status"].agg(",".join))
    positive = calls[calls["mrd_status"] == "positive"].groupby("patient_id")["collection_date"].min()
    out["first_positive_date"] = out["patient_id"].map(positive).fillna("")
    lead = out["pfs_months"] - _months(out["first_positive_date"].replace("", None), out["enrollment_date"])
    out["lead_time_months"] = lead.where((out["pfs_event"] == 1) & (lead >= 0))
    out["converted_date"] = ""
    out["tf_log10_slope_per_month"] = np.nan
    return out


def _joined(calls: pd.DataFrame, clinical: pd.DataFrame) -> pd.DataFrame:
    joined = calls.merge(clinical.drop(columns=["latent_mrd", "latent_pfs", "latent_onset"]), on="patient_id")
    joined["days_from_enrollment"] = (
        pd.to_datetime(joined["collection_date"]) - pd.to_datetime(joined["enrollment_date"])
    ).dt.days
    joined["months_from_enrollment"] = joined["days_from_enrollment"] / DAYS_PER_MONTH
    return joined


def _sample_sheet(calls: pd.DataFrame, clinical: pd.DataFrame) -> pd.DataFrame:
    plasma = calls[["sample_id", "patient_id", "collection_date", "batch"]].assign(sample_type="plasma")
    normals = clinical[["patient_id", "enrollment_date"]].rename(
        columns={"enrollment_date": "collection_date"}
    )
    normals = normals.assign(sample_id="N_" + normals["patient_id"], sample_type="normal", batch="B1")
    controls = pd.DataFrame({"sample_id": [f"CTRL{i}" for i in range(1, 4)], "patient_id": "",
                             "collection_date": "2021-01-01", "batch": "B1", "sample_type": "control"})  # fmt: skip
    sheet = pd.concat([plasma, normals, controls], ignore_index=True)
    return sheet.assign(bam=sheet["sample_id"] + ".bam")


def _mrd_loci(rng: np.random.Generator, calls: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for call in calls.itertuples():
        for i in range(call.n_loci_panel):
            used = i < call.n_loci_used
            rows.append({
                "sample_id": call.sample_id, "patient_id": call.patient_id, "chrom": "chr1", "pos": 1000 + i,
                "ref": "C", "alt": "T", "context": "ACG", "weight": 1, "ref_molecules": int(rng.integers(500, 3000)),
                "alt_molecules": int(rng.integers(0, 3)), "background_rate": 1e-4, "used": used,
                "reason": "" if used else ("excluded_noisy" if i % 2 else "low_depth"),
                "chip_suspect": i == 3 and call.patient_id in ("P001", "P002"),  # e.g. a DNMT3A variant
            })  # fmt: skip
    return pd.DataFrame(rows)


def _background(rng: np.random.Generator, folder: Path) -> dict[str, str]:
    rates = []
    for orientation in ("all", "f1r2", "f2r1"):
        for sub in SUBSTITUTIONS:
            for five in "ACGT":
                for three in "ACGT":
                    total = int(rng.integers(10**5, 10**6))
                    alt = 0 if rng.random() < 0.05 else int(total * 10 ** rng.uniform(-5.5, -3.5))
                    rates.append({"substitution": sub, "context": f"{five}{sub[0]}{three}", "orientation": orientation,
                                  "alt_molecules": alt, "total_molecules": total, "rate": alt / total})  # fmt: skip
    locus = pd.DataFrame({
        "chrom": "chr1", "pos": np.arange(1000, 1060), "ref": "C", "alt": "T", "context": "ACG",
        "substitution": "C>T", "alt_molecules": rng.integers(0, 20, 60), "total_molecules": 10**5, "n_samples": 20,
        "n_samples_with_alt": rng.integers(0, 8, 60), "context_rate": 1e-4, "rate": 10 ** rng.uniform(-5, -2.5, 60),
    })  # fmt: skip
    locus["excluded"] = locus["rate"] > 10**-3
    locus["reason"] = np.where(locus["excluded"], "noisy_vs_context", "")
    excluded = locus.loc[locus["excluded"], ["chrom", "pos", "ref", "alt"]].assign(
        patient_id="", reason="noisy_vs_context"
    )
    chip = pd.DataFrame({"chrom": ["chr2", "chr3"], "pos": [5, 9], "ref": ["G", "A"], "alt": ["A", "C"],
                         "patient_id": ["P001", "P002"], "reason": ["seen_in_normal", "seen_in_normal"]})  # fmt: skip
    return {
        "context_rates": _tsv(pd.DataFrame(rates), folder / "context_rates.tsv"),
        "locus_rates": _tsv(locus, folder / "locus_rates.tsv"),
        "excluded": _tsv(pd.concat([excluded, chip], ignore_index=True), folder / "excluded_loci.tsv"),
    }


def _fraglen(rng: np.random.Generator) -> pd.DataFrame:
    lengths = np.arange(60, 400)
    ref = np.round(4000 * np.exp(-0.5 * ((lengths - 167) / 18) ** 2)).astype(int)
    alt = rng.poisson(3 * np.exp(-0.5 * ((lengths - 145) / 20) ** 2))
    return pd.concat([
        pd.DataFrame({"allele": "REF", "length": lengths, "molecules": ref}),
        pd.DataFrame({"allele": "ALT", "length": lengths, "molecules": alt}),
    ]).query("molecules > 0")  # fmt: skip


def _qc_json(rng: np.random.Generator, path: Path, counting: CountSettings | None = None) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"reads_seen": 200000, "molecules": int(rng.integers(20000, 90000)), "mean_family_size": 2.4,
            "duplicate_rate": float(rng.uniform(0.4, 0.8)), "median_fragment_length": 166,
            "dedup_mode": "coordinates", "settings": settings_record(counting or CountSettings())}  # fmt: skip
    path.write_text(json.dumps(data))
    return str(path)


# The settings.json each step writes beside its outputs (the defaults here), which the methods quote.
STEP_SETTINGS = {"background": BackgroundSettings(), "mrd": CallSettings(), "clinical": ClinicalSettings(),
                 "survival": SurvivalSettings()}  # fmt: skip


def _settings_json(path: Path, step: str) -> str:
    write_settings(path, STEP_SETTINGS[step])
    return str(path)


def kaplan_meier(times: np.ndarray, events: np.ndarray) -> pd.DataFrame:
    """A small Kaplan-Meier with Greenwood log-log CIs, one row per distinct time plus time 0."""
    rows = [
        {
            "time": 0.0,
            "survival": 1.0,
            "ci_low": 1.0,
            "ci_high": 1.0,
            "at_risk": len(times),
            "events": 0,
            "censored": 0,
        }
    ]
    surv, var = 1.0, 0.0
    for t in np.unique(times):
        at_risk, d = int((times >= t).sum()), int(((times == t) & (events == 1)).sum())
        surv *= 1 - d / at_risk
        var += d / (at_risk * (at_risk - d)) if at_risk > d else 0
        lo, hi = _loglog_ci(surv, var)
        rows.append({"time": t, "survival": surv, "ci_low": lo, "ci_high": hi, "at_risk": at_risk, "events": d,
                     "censored": int(((times == t) & (events == 0)).sum())})  # fmt: skip
    return pd.DataFrame(rows)


def _loglog_ci(surv: float, var: float) -> tuple[float, float]:
    if surv <= 0 or surv >= 1 or var == 0:
        return (np.nan, np.nan) if surv <= 0 else (surv, surv)
    z = 1.96 * np.sqrt(var) / abs(np.log(surv))
    return surv ** np.exp(z), surv ** np.exp(-z)


def _survival(patients: pd.DataFrame, calls: pd.DataFrame, folder: Path, estimable: bool) -> dict[str, str]:
    """Survival tables shaped like mrdtrack.outcomes.survival writes them (an `all` curve beside the MRD groups)."""
    curves, summary = [], []
    subsets = [("overall", "all", patients)] + [("cohort", c, r) for c, r in patients.groupby("cohort")]
    for analysis, cohort, rows in subsets:
        groups = [("all", rows)] + list(rows.groupby("baseline_status"))
        for group, g in groups:
            km = kaplan_meier(g["pfs_months"].to_numpy(), g["pfs_event"].to_numpy())
            curves.append(km.assign(analysis=analysis, cohort=cohort, group=group))
            median = km.loc[km["survival"] <= 0.5, "time"].min()
            at_year = km[km["time"] <= 12].iloc[-1]
            summary.append({"analysis": analysis, "cohort": cohort, "group": group, "n": len(g),
                            "events": int(g["pfs_event"].sum()), "timepoint_months": 12,
                            "survival": at_year["survival"], "ci_low_loglog": at_year["ci_low"],
                            "ci_high_loglog": at_year["ci_high"], "median": median,
                            "median_ci_low_loglog": median * 0.6, "median_ci_high_loglog": np.nan})  # fmt: skip
    curve_columns = ["analysis", "cohort", "group", "time", "survival", "ci_low", "ci_high", "at_risk", "events",
                     "censored"]  # fmt: skip
    km_curves = pd.concat(curves)[curve_columns] if estimable else pd.DataFrame(columns=curve_columns)
    km_summary = (
        pd.DataFrame(summary)
        if estimable
        else pd.DataFrame(columns=["analysis", "cohort", "group", "median"])
    )
    return {
        "km_curves": _tsv(km_curves, folder / "km_curves.tsv"),
        "km_summary": _tsv(km_summary, folder / "km_summary.tsv"),
        "cox": _tsv(_cox(estimable), folder / "cox.tsv"),
        "endpoints": _tsv(_endpoints(estimable), folder / "endpoints.tsv"),
        "design": _tsv(_design(), folder / "design.tsv"),
        "summary": _summary(folder / "summary.json", estimable),
        **_safe_to_stop(patients, calls, folder, estimable),
        **_landmark_km(_landmark_status(patients, calls), folder, estimable),
        "prediction": _tsv(_prediction(estimable), folder / "prediction.tsv"),
    }


def _landmark_km(at_landmark: pd.DataFrame, folder: Path, estimable: bool) -> dict[str, str]:
    """KM curves and summaries from the landmark, as the survival step writes them (one status rule here)."""
    key = {"landmark_months": LANDMARK_MONTHS, "status_rule": "last_at_or_before"}
    curves, summary = [], []
    at_landmark = at_landmark.assign(
        group=at_landmark["status"].where(at_landmark["status"].isin(["positive", "negative"]), "unknown")
    )
    for analysis, cohort, rows in [
        ("overall", "all", at_landmark),
        *(("cohort", c, r) for c, r in at_landmark.groupby("cohort")),
    ]:
        for group, g in [("all", rows), *((s, rows[rows["group"] == s]) for s in ("positive", "negative"))]:
            if g.empty:
                continue
            km = kaplan_meier(g["time"].to_numpy(), g["pfs_event"].to_numpy())
            curves.append(km.assign(**key, analysis=analysis, cohort=cohort, group=group))
            summary.append(
                key
                | {
                    "analysis": analysis,
                    "cohort": cohort,
                    "group": group,
                    "n": len(g),
                    "events": int(g["pfs_event"].sum()),
                    "timepoint_months": 12,
                }
            )
    curve_columns = columns_of("landmark_km_curves")
    return {
        "landmark_km_curves": _tsv(pd.concat(curves)[curve_columns] if estimable else pd.DataFrame(columns=curve_columns),
                                   folder / "landmark_km_curves.tsv"),
        "landmark_km_summary": _tsv(pd.DataFrame(summary if estimable else [], columns=columns_of("landmark_km_summary")),
                                    folder / "landmark_km_summary.tsv"),
    }  # fmt: skip


def _prediction(estimable: bool) -> pd.DataFrame:
    rows = [
        {"model": "mrd_status", "features": "baseline_mrd_positive", "n": 10, "n_events": 5, "n_not_evaluable": 2,
         "n_without_baseline_status": 0, "n_splits": 5, "n_repeats": 20, "auc": 0.74, "auc_ci_low": 0.55,
         "auc_ci_high": 0.9, "auc_repeat_min": 0.7, "auc_repeat_max": 0.78, "brier": 0.19, "note": ""},
        {"model": "mrd_status_tf", "features": "baseline_mrd_positive,baseline_log10_tf", "n": 10, "n_events": 5,
         "n_not_evaluable": 2, "n_without_baseline_status": 0, "n_splits": 5, "n_repeats": 20, "auc": 0.81,
         "auc_ci_low": 0.62, "auc_ci_high": 0.95, "auc_repeat_min": 0.77, "auc_repeat_max": 0.84, "brier": 0.17,
         "note": ""},
        {"model": "mrd_status_tf_covariates", "features": "baseline_mrd_positive,baseline_log10_tf,age", "n": 4,
         "n_events": 2, "n_not_evaluable": 2, "n_without_baseline_status": 0, "n_splits": 0, "n_repeats": 20,
         "note": "too few patients in the smaller outcome class (2 < 5): no model fitted"},
    ]  # fmt: skip
    return pd.DataFrame(rows if estimable else [], columns=columns_of("prediction"))


LANDMARK_MONTHS = 3.0


def _safe_to_stop(
    patients: pd.DataFrame, calls: pd.DataFrame, folder: Path, estimable: bool
) -> dict[str, str]:
    """1-year PFS by MRD status and the accuracy of MRD-positivity, at baseline and at a 3-month landmark, per
    cohort and pooled: safe_to_stop.tsv and safe_to_stop_accuracy.tsv as the survival step writes them."""
    at_landmark = _landmark_status(patients, calls)
    sets = [("baseline", patients.assign(status=patients["baseline_status"], time=patients["pfs_months"])),
            (f"landmark_{LANDMARK_MONTHS:g}m", at_landmark)]  # fmt: skip
    pfs, accuracy = [], []
    for timepoint, rows in sets:
        for cohort, subset in [*rows.groupby("cohort"), ("all", rows)]:
            outcome = _one_year_outcome(subset)
            pfs += [
                _pfs_row(cohort, timepoint, status, subset, outcome) for status in ("positive", "negative")
            ]
            accuracy.append(_accuracy_row(cohort, timepoint, subset, outcome))
    empty = not estimable
    return {
        "safe_to_stop": _tsv(pd.DataFrame([] if empty else pfs, columns=columns_of("safe_to_stop")),
                             folder / "safe_to_stop.tsv"),
        "safe_to_stop_accuracy": _tsv(pd.DataFrame([] if empty else accuracy,
                                                   columns=columns_of("safe_to_stop_accuracy")),
                                      folder / "safe_to_stop_accuracy.tsv"),
    }  # fmt: skip


def _landmark_status(patients: pd.DataFrame, calls: pd.DataFrame) -> pd.DataFrame:
    """Patients progression-free at the landmark, with the status of their last sample at or before it."""
    enrolled = calls["patient_id"].map(patients.set_index("patient_id")["enrollment_date"])
    samples = calls.assign(months=_months(calls["collection_date"], enrolled))
    last = samples[samples["months"] <= LANDMARK_MONTHS].sort_values("months").groupby("patient_id").last()
    at_risk = patients[patients["pfs_months"] > LANDMARK_MONTHS]
    return at_risk.assign(status=at_risk["patient_id"].map(last["mrd_status"]),
                          time=at_risk["pfs_months"] - LANDMARK_MONTHS)  # fmt: skip


def _one_year_outcome(rows: pd.DataFrame) -> pd.Series:
    """'progressed' within a year, 'free' when followed beyond it, 'not evaluable' when censored before."""
    progressed = (rows["pfs_event"] == 1) & (rows["time"] <= 12)
    free = ~progressed & (rows["time"] >= 12)
    return pd.Series(np.where(progressed, "progressed", np.where(free, "free", "not evaluable")), rows.index)


def _exact_ci(successes: int, trials: int) -> tuple[float, float, float]:
    if trials == 0:
        return (np.nan, np.nan, np.nan)
    interval = stats.binomtest(successes, trials).proportion_ci(0.95, method="exact")
    return successes / trials, interval.low, interval.high


def _pfs_row(cohort: str, timepoint: str, status: str, rows: pd.DataFrame, outcome: pd.Series) -> dict:
    group = rows["status"] == status
    km = kaplan_meier(rows.loc[group, "time"].to_numpy(), rows.loc[group, "pfs_event"].to_numpy())
    at_year = km[km["time"] <= 12].iloc[-1]
    progressed, free = int((outcome[group] == "progressed").sum()), int((outcome[group] == "free").sum())
    rate = _exact_ci(free, progressed + free)
    return {"cohort": cohort, "timepoint": timepoint, "mrd_status": status, "n": int(group.sum()),
            "evaluable": progressed + free, "progressed_1y": progressed,
            "not_evaluable": int((outcome[group] == "not evaluable").sum()), "km_pfs_1y": at_year["survival"],
            "km_ci_low": at_year["ci_low"], "km_ci_high": at_year["ci_high"], "rate_pfs_1y": rate[0],
            "rate_ci_low": rate[1], "rate_ci_high": rate[2]}  # fmt: skip


def _accuracy_row(cohort: str, timepoint: str, rows: pd.DataFrame, outcome: pd.Series) -> dict:
    def count(status: str, result: str) -> int:
        return int(((rows["status"] == status) & (outcome == result)).sum())

    tp, fp = count("positive", "progressed"), count("positive", "free")
    tn, fn = count("negative", "free"), count("negative", "progressed")
    determinate = rows["status"].isin(["positive", "negative"])
    row = {"cohort": cohort, "timepoint": timepoint, "true_positive": tp, "false_positive": fp,
           "true_negative": tn, "false_negative": fn,
           "not_evaluable": int((determinate & (outcome == "not evaluable")).sum())}  # fmt: skip
    for name, (k, n) in {"sensitivity": (tp, tp + fn), "specificity": (tn, tn + fp), "ppv": (tp, tp + fp),
                         "npv": (tn, tn + fn)}.items():  # fmt: skip
        row[name], row[f"{name}_ci_low"], row[f"{name}_ci_high"] = _exact_ci(k, n)
    return row


def _cox(estimable: bool) -> pd.DataFrame:
    columns = ["model", "cohort", "term", "n", "events", "coef", "se", "hr", "hr_ci_low", "hr_ci_high", "p_wald",
               "p_lr", "concordance", "ph_chisq", "ph_p", "note", "method"]  # fmt: skip
    nan = np.nan
    rows = [
        ["baseline_unadjusted", "all", "mrd_positive", 12, 7, 1.22, 0.5, 3.4, 1.2, 9.6, 0.02, 0.015, 0.68, 0.4, 0.53, "", "cox"],
        ["baseline_unadjusted", "continue", "mrd_positive", 6, 3, 0.74, 0.7, 2.1, 0.5, 8.8, 0.3, 0.28, 0.6, nan, nan, "", "cox"],
        ["baseline_unadjusted", "stop", "mrd_positive", 6, 4, nan, nan, nan, nan, nan, nan, nan, nan, nan, nan,
         "not estimable: no event among MRD-negative", "cox"],
        ["landmark_3m", "all", "mrd_positive", 10, 5, 1.06, 0.6, 2.9, 0.9, 9.1, 0.07, 0.06, 0.7, nan, nan, "", "cox"],
        ["landmark_3m", "stop", "mrd_positive", 5, 3, 1.87, 1.1, 6.5, 0.8, nan, nan, 0.04, nan, nan, nan,
         "no events when mrd_positive = 0: Firth-penalized", "firth"],
        ["time_varying_status", "all", "mrd_positive", 12, 7, 1.65, 0.5, 5.2, 1.8, 15.0, 0.0002, 0.0001, nan, nan, nan, "", "cox"],
        ["time_varying_ever_positive_adjusted", "all", "ever_positive", 12, 7, 2.08, 1.7, 8.0, 0.9, 250.0, 0.2, 0.1, nan, nan, nan, "", "cox"],
        ["time_varying_ever_positive_adjusted", "all", "hr_positive", 12, 7, 0.1, 0.4, 1.1, 0.5, 2.4, 0.8, 0.8, nan, nan, nan, "", "cox"],
    ]  # fmt: skip
    return pd.DataFrame(rows if estimable else [], columns=columns)


def _endpoints(estimable: bool) -> pd.DataFrame:
    columns = [
        "cohort",
        "endpoint",
        "n",
        "events",
        "estimate",
        "ci_low",
        "ci_high",
        "method",
        "at_risk",
        "note",
    ]
    rows = [["continue", "pfs_12m", 6, 2, 0.71, 0.45, 0.86, "Kaplan-Meier, log-log CI", 4, ""],
            ["stop", "pfs_12m", 6, 3, 0.55, 0.3, 0.75, "Kaplan-Meier, log-log CI", 3, ""],
            ["all", "pfs_12m", 12, 5, 0.63, 0.45, 0.78, "Kaplan-Meier, log-log CI", 7, ""],
            ["all", "os_36m", 12, 2, 0.8, 0.6, 0.91, "Kaplan-Meier, log-log CI", 2, ""]]  # fmt: skip
    return pd.DataFrame(rows if estimable else [], columns=columns)


SIMON = {"design": "optimal", "selected": True, "p0": 0.5, "p1": 0.68, "target_alpha": 0.1, "target_power": 0.8,
         "r1": 8, "n1": 15, "r": 23, "n": 39, "en0": 22.1, "pet0": 0.7, "alpha": 0.097, "power": 0.8,
         "cohort": "stop", "n_patients": 6, "n_evaluable": 5, "n_success": 3, "decision": "stage 1 ongoing",
         "decision_other_handling": "failure: stage 1 ongoing"}  # fmt: skip


def _design() -> pd.DataFrame:
    minimax = SIMON | {"design": "minimax", "selected": False, "r1": 12, "n1": 22, "r": 22, "n": 36}
    return pd.DataFrame([SIMON, minimax])


def _summary(path: Path, estimable: bool) -> str:
    logrank = {"overall": {"groups": ["positive", "negative"], "p": 0.0123, "chisq": 6.3, "note": ""},
               "per_cohort": {"continue": {"p": 0.3, "note": ""},
                              "stop": {"p": None, "note": "one group is empty: no comparison"}}}  # fmt: skip
    data = {
        "n_patients": 12, "n_events": 7, "logrank": logrank if estimable else {},
        "landmarks": {f"{LANDMARK_MONTHS:g}": {"landmark_months": LANDMARK_MONTHS, "n_at_risk": 10,
                                               "logrank": {"p": 0.0004, "note": ""}}} if estimable else {},
        "prediction": {"horizon_months": 12.0},
        "design": {"selected": SIMON, "designs": [SIMON], "censored_handling": "exclude",
                   "success_rate": {"n": 5, "successes": 3, "estimate": 0.6, "ci_low": 0.15, "ci_high": 0.95}},
        "notes": [] if estimable else ["no PFS event: survival analyses not estimable"],
    }  # fmt: skip
    path.write_text(json.dumps(data))
    return str(path)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Cohort:
    return build_fixture(tmp_path_factory.mktemp("report") / "results")


@pytest.fixture(scope="module")
def report(cohort: Cohort) -> Report:
    return build_report(
        cohort.inputs, ReportSettings(study_name="STOP-HER2", report_date="2024-05-01"), strict=True
    )


# ---------------------------------------------------------------------------------------------------- helpers


def figure_ids(page: str) -> list[str]:
    return re.findall(r'<div id="fig-([\w-]+)" class="plotly-graph-div"', page)


def downloads(page: str) -> dict[str, pd.DataFrame]:
    """Every TSV download link of the page, decoded and parsed."""
    links = re.findall(
        r'download="([^"]+)" href="data:text/tab-separated-values;charset=utf-8;base64,([^"]+)"', page
    )
    return {name: pd.read_csv(io.BytesIO(base64.b64decode(data)), sep="\t", dtype=str, keep_default_na=False)
            for name, data in links}  # fmt: skip


def plot_data(page: str, key: str) -> list[dict]:
    """The traces passed to Plotly.newPlot for figure `key`, parsed from the page."""
    traces, _ = json.JSONDecoder().raw_decode(page, _newplot_start(page, key))
    return traces


def values(array: object) -> list:
    """A trace array as a list: plotly 7 writes numeric arrays as base64 typed arrays ({dtype, bdata})."""
    if isinstance(array, dict) and "bdata" in array:
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=np.dtype(array["dtype"])).tolist()
    return list(array or [])


def _newplot_start(page: str, key: str) -> int:
    match = re.search(r'Plotly\.newPlot\(\s*"fig-' + re.escape(key) + r'",\s*', page)
    assert match, f"no Plotly.newPlot for {key}"
    return match.end()


def section_html(page: str, key: str) -> str:
    """The rendered section `key` (its HTML keeps the class and anchor names "panel")."""
    start = page.index(f'<section class="panel" id="panel-{key}"')
    return page[start : page.index("</section>", start)]


def read_input(path: str) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)


# ---------------------------------------------------------------------------------------------------- tests


def test_plotly_js_is_embedded_exactly_once(report: Report):
    banner = plotly.offline.get_plotlyjs()[:300]
    assert report.html.count(banner) == 1
    assert report.html.count("<script") == report.html.count("</script>")


def test_nothing_is_loaded_from_the_network(report: Report):
    assert not re.search(r"<script[^>]*\ssrc\s*=", report.html, re.IGNORECASE)
    assert not re.search(
        r"<(link|img|iframe)[^>]*\s(href|src)\s*=\s*[\"']?(https?:)?//", report.html, re.IGNORECASE
    )
    assert not re.search(r"@import|url\(\s*[\"']?https?:", report.html.split("<script", 1)[0])


def test_one_figure_div_per_expected_figure(report: Report):
    ids = figure_ids(report.html)
    assert sorted(ids) == sorted(ALL_FIGURES)
    assert all(f'id="panel-{key}"' in report.html for key in ALL_FIGURES | {"flagged"})


def test_header_names_study_date_version_and_inputs(report: Report, cohort: Cohort):
    import mrdtrack

    header = report.html.split("</header>", 1)[0]
    assert "STOP-HER2" in header and "2024-05-01" in header and f"mrdtrack {mrdtrack.__version__}" in header
    assert f"<b>{len(cohort.patients)}</b><span>patients</span>" in header
    assert f"<b>{len(cohort.calls)}</b><span>plasma samples</span>" in header
    assert "<b>3</b><span>batches</span>" in header and "<b>3</b><span>healthy controls</span>" in header


def test_header_folds_missing_inputs_and_survival_notes_apart(cohort: Cohort, tmp_path: Path):
    summary = json.loads(Path(cohort.inputs.summary).read_text())
    glued = "Please see the tips: https://lifelines.example/convergence-modelA singular matrix detected"
    summary["notes"] = [
        f"baseline_adjusted (all): not estimable ({glued})",
        "log-rank (stop): one group is empty",
    ]
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(summary))
    inputs = dataclasses.replace(cohort.inputs, summary=str(path), design=None)
    header = build_report(inputs, ReportSettings(), strict=True).html.split("</header>", 1)[0]
    assert "<summary>1 input missing or unreadable</summary><ul>" in header and "design: not given" in header
    assert "<summary>2 survival-model notes</summary>" in header and "input note" not in header
    assert "Baseline MRD status, adjusted for covariates \u00b7 all patients: not estimable" in header
    assert "lifelines.example" not in header and "A singular matrix detected" in header


def test_swimmer_has_one_lane_per_patient(report: Report, cohort: Cohort):
    traces = plot_data(report.html, "swimmer")
    lanes = next(t for t in traces if t.get("meta") == "lanes")
    assert sorted(values(lanes["y"])) == sorted(cohort.patients["patient_id"])
    assert 'data-lanes="12"' in report.html
    section = next(s for s in report.sections if s.key == "swimmer")
    menus = section.figure.layout.updatemenus[0].buttons
    assert {b.label for b in menus} == {"Sort by cohort", "Sort by time to progression"}
    for button in menus:  # each sort order lists every patient once
        assert sorted(button.args[0]["yaxis.categoryarray"]) == sorted(cohort.patients["patient_id"])


def test_swimmer_samples_match_the_calls(report: Report, cohort: Cohort):
    traces = plot_data(report.html, "swimmer")
    statuses = {"MRD-positive": "positive", "MRD-negative": "negative", "indeterminate": "indeterminate"}
    drawn = {statuses[t["name"]]: len(values(t["x"])) for t in traces if t.get("name") in statuses}
    assert drawn == cohort.calls["mrd_status"].value_counts().to_dict()


def test_km_curves_are_steps_with_bands_and_risk_table(report: Report):
    traces = plot_data(report.html, "km_pooled")
    curves = [t for t in traces if t.get("name", "").startswith(("MRD", "all patients", "indeterminate"))]
    assert len(curves) >= 3 and all(t["line"]["shape"] == "hv" for t in curves)
    assert any(t.get("fill") == "toself" for t in traces)
    assert any(t.get("mode") == "text" for t in traces)  # number at risk
    section = next(s for s in report.sections if s.key == "km_pooled")
    assert "log-rank p = 0.012" in section.caption and "HR 3.40 (95% CI 1.20\u20139.60)" in section.caption
    stop = next(s for s in report.sections if s.key == "km_stop")
    assert (
        "log-rank: one group is empty: no comparison" in stop.caption and "HR not estimable" in stop.caption
    )
    reference = next(t for t in curves if t["name"].startswith("all patients"))  # the producers' `all` curve
    assert reference["line"]["dash"] == "dash"


def test_km_bands_are_steps_even_where_the_producer_leaves_the_ci_empty(cohort: Cohort, tmp_path: Path):
    """survival writes no CI where S = 1 (log-log is undefined there) or S = 0: the band still shows between."""
    curves = read_input(cohort.inputs.km_curves)
    survival = curves["survival"].astype(float)
    curves.loc[(survival >= 1) | (survival <= 0), ["ci_low", "ci_high"]] = ""
    path = tmp_path / "km_curves.tsv"
    curves.to_csv(path, sep="\t", index=False)
    report = build_report(
        dataclasses.replace(cohort.inputs, km_curves=str(path)), ReportSettings(), strict=True
    )
    bands = {t["legendgroup"]: t for t in plot_data(report.html, "km_pooled") if t.get("fill") == "toself"}
    assert "negative" in bands and "all" not in bands  # the all-patients reference curve has none
    rows = curves[(curves["analysis"] == "overall") & (curves["group"] == "negative")].astype({"time": float})
    x, y = values(bands["negative"]["x"]), values(bands["negative"]["y"])
    first_ci = rows[rows["ci_high"] != ""].iloc[0]
    times = rows["time"].tolist()
    assert x[:4] == [0.0, times[1], times[1], times[2]]  # steps: each row's CI holds until the next time
    assert float(first_ci["ci_high"]) in y and float(first_ci["ci_low"]) in y
    section = next(s for s in report.sections if s.key == "km_pooled")
    assert "shaded bands: pointwise 95% CI (log-log)" in section.caption


def test_tsv_downloads_decode_to_the_input_tables(report: Report, cohort: Cohort):
    tables = downloads(report.html)
    inputs = cohort.inputs
    for name, path in (("cox.tsv", inputs.cox), ("excluded_loci.tsv", inputs.excluded),
                       ("context_rates.tsv", inputs.context_rates), ("endpoints.tsv", inputs.endpoints)):  # fmt: skip
        pd.testing.assert_frame_equal(tables[name], read_input(path), check_dtype=False)
    km = read_input(inputs.km_curves)
    pd.testing.assert_frame_equal(
        tables["km_pooled.tsv"], km[km["analysis"] == "overall"].reset_index(drop=True)
    )
    samples = tables["swimmer_samples.tsv"]
    assert sorted(samples["sample_id"]) == sorted(cohort.calls["sample_id"])
    assert len(tables["swimmer_patients.tsv"]) == len(cohort.patients)


def test_every_figure_has_its_data_downloadable(report: Report):
    for section in report.sections:
        if section.figure is not None:
            assert section.downloads, section.key
    names = re.findall(r'class="tsv" download="([^"]+)"', report.html)
    assert len(names) == len(set(names))


def test_context_heatmap_is_6_by_16(cohort: Cohort):
    matrix = context_matrix(read_input(cohort.inputs.context_rates).astype({"rate": float}), "all")
    assert matrix.shape == (6, 16) and matrix.notna().all().all()
    rates = read_input(cohort.inputs.context_rates)
    expected = rates.query("orientation == 'all' and context == 'ACG' and substitution == 'C>T'")["rate"]
    assert matrix.loc["C>T", "A_G"] == pytest.approx(float(expected.iloc[0]))


def test_endpoint_labels_and_design_lines(report: Report):
    from mrdtrack.report.survival import endpoint_label

    assert endpoint_label("pfs_12m") == "PFS at 12 months" and endpoint_label("os_3y") == "OS at 3 years"
    assert endpoint_label("restart_clinical_benefit") == "restart clinical benefit"
    section = next(s for s in report.sections if s.key == "endpoints")
    assert sorted(round(shape.y0, 2) for shape in section.figure.layout.shapes) == [0.5, 0.68]
    html = section_html(report.html, "endpoints")
    assert "<th>decision</th><td>stage 1 ongoing</td>" in html and "<th>r1</th><td>8</td>" in html
    # The design table has a column per design, a row per field, so it fits the page width.
    designs = html.split("<h4>Design table</h4>", 1)[1]
    assert "<th></th><th>optimal</th><th>minimax</th>" in designs
    assert "<tr><th>r1</th><td>8</td><td>12</td></tr>" in designs


def test_mrd_colors_are_the_same_everywhere(report: Report):
    colors = {"MRD-positive": "#D55E00", "MRD-negative": "#0072B2", "indeterminate": "#8C8C8C"}
    for key in ("swimmer", "trajectories", "lod", "qc_samples"):
        for trace in plot_data(report.html, key):
            if trace.get("name") in colors:
                color = trace.get("marker", {}).get("color")
                assert color == colors[trace["name"]], (key, trace["name"], color)


def test_trajectories_are_colored_by_cohort_and_name_their_patient(report: Report, cohort: Cohort):
    traces = plot_data(report.html, "trajectories")
    lines = [t for t in traces if t.get("meta") == "patient"]
    assert sorted(t["name"] for t in lines) == sorted(cohort.patients["patient_id"])
    legend = {t["name"]: t for t in traces if t.get("name", "").startswith("cohort ")}
    assert set(legend) == {"cohort continue (6 patients)", "cohort stop (6 patients)"}
    # Okabe-Ito, as in the swimmer's cohort strip
    colors = {"continue": "rgba(0,158,115,0.6)", "stop": "rgba(204,121,167,0.6)"}
    for line in lines:
        group = cohort.patients.set_index("patient_id").loc[line["name"], "cohort"]
        assert line["legendgroup"] == f"cohort-{group}" and line["line"]["color"] == colors[group]
        assert line["text"][0].startswith(f"<b>{line['name']}</b>")  # the hover names the patient
    assert "plotly_hover" in section_html(report.html, "trajectories")  # the hover highlight's script


def _methods(page: str) -> str:
    return " ".join(page.split('id="methods"', 1)[1].split())  # as a browser shows it: white space collapsed


def test_methods_quote_the_settings_each_step_recorded_and_list_the_config(cohort: Cohort, tmp_path: Path):
    rng = np.random.default_rng(1)
    counted = CountSettings(min_mapq=37, dedup="umi")
    qc = [_qc_json(rng, tmp_path / Path(path).name, counted) for path in cohort.inputs.qc]
    config = {"counting": {"min_mapq": 20}, "calling": {"control_fpr": 0.01}}  # changed after counting
    page = build_report(dataclasses.replace(cohort.inputs, qc=qc), ReportSettings(), config, strict=True).html
    assert "mapping quality 37" in _methods(page) and "mode umi" in _methods(page)
    assert "calling.control_fpr" in _methods(page) and "0.01" in _methods(page)


def test_methods_say_when_samples_were_counted_with_different_settings(cohort: Cohort, tmp_path: Path):
    rng = np.random.default_rng(1)
    qc = [_qc_json(rng, tmp_path / Path(path).name, CountSettings(min_mapq=30 if i < 2 else 20))
          for i, path in enumerate(cohort.inputs.qc)]  # fmt: skip
    page = build_report(dataclasses.replace(cohort.inputs, qc=qc), ReportSettings(), {}, strict=True).html
    assert f"varies by sample: 20 ({len(qc) - 2}), 30 (2)" in _methods(page)


def test_methods_say_not_recorded_for_results_without_settings(cohort: Cohort):
    inputs = dataclasses.replace(cohort.inputs, settings=())
    assert "a share (not recorded) of" in _methods(build_report(inputs, ReportSettings(), {}).html)


CALLING = {"calling": {"false_positive_rate": 0.01, "empirical_min_expected": 10}}


def _calls_with(
    cohort: Cohort, tmp_path: Path, drop: tuple[str, ...] = (), **columns: object
) -> ReportInputs:
    calls = read_input(cohort.inputs.calls).drop(columns=list(drop)).assign(**columns)
    calls.to_csv(tmp_path / "calls.tsv", sep="\t", index=False)
    return dataclasses.replace(cohort.inputs, calls=str(tmp_path / "calls.tsv"))


def _calling_methods(page: str) -> str:
    return " ".join(page.split("<b>MRD calling.</b>", 1)[1].split("</p>", 1)[0].split())


def test_methods_and_qc_say_how_the_threshold_was_set(cohort: Cohort, tmp_path: Path):
    report = build_report(cohort.inputs, ReportSettings(), CALLING, strict=True)
    nominal = "p \u2264 0.01, nominal: only 140 null scores, fewer than the 1,000 needed to resolve a 1% false-positive rate"
    assert (
        f"Threshold: {nominal} (null scores are samples scored at other patients' panels"
        in _calling_methods(report.html)
    )
    qc = next(s for s in report.sections if s.key == "qc_samples")
    assert f"Calling threshold: {nominal}." in qc.caption
    inputs = _calls_with(cohort, tmp_path, threshold_source="empirical", n_null_scores=3820, threshold=0.0073)
    report = build_report(inputs, ReportSettings(), CALLING, strict=True)
    empirical = "p \u2264 0.0073, empirical, from 3,820 null scores"
    assert f"Threshold: {empirical}, the cut at which a share 0.01 of the null scores" in _calling_methods(
        report.html
    )
    assert (
        f"Calling threshold: {empirical}."
        in next(s for s in report.sections if s.key == "qc_samples").caption
    )


def test_thresholds_from_each_samples_own_null_are_described_per_sample(cohort: Cohort, tmp_path: Path):
    calls = read_input(cohort.inputs.calls)
    thresholds = [0.0014 if i % 2 else 0.01 for i in range(len(calls))]
    inputs = _calls_with(
        cohort, tmp_path, threshold_source="empirical", own_null_panels=1000, threshold=thresholds
    )
    report = build_report(inputs, ReportSettings(), CALLING, strict=True)
    expected = (
        f"p \u2264 0.0014-0.01 per sample, empirical for {len(calls)} of {len(calls)} calls, each from its own "
        "null of up to 1,000 synthetic panels"
    )
    assert (
        f"Calling threshold: {expected}." in next(s for s in report.sections if s.key == "qc_samples").caption
    )


def test_calls_without_the_threshold_source_keep_the_plain_sentence(cohort: Cohort, tmp_path: Path):
    inputs = _calls_with(cohort, tmp_path, drop=("threshold_source", "n_null_scores"))
    report = build_report(inputs, ReportSettings(), CALLING, strict=True)
    assert "The threshold was set so that a share 0.01 of null scores is positive." in _calling_methods(
        report.html
    )
    assert "Calling threshold" not in next(s for s in report.sections if s.key == "qc_samples").caption


def test_mutant_fragments_and_loci_are_in_hovers_and_sample_tables(
    report: Report, cohort: Cohort, tmp_path: Path
):
    swimmer = plot_data(report.html, "swimmer")
    hovers = [text for t in swimmer if t.get("name") == "MRD-positive" for text in t["text"]]
    assert hovers and all(re.search(r"<br>mutant fragments \d+ at \d+ loc(us|i)$", h) for h in hovers)
    tables = downloads(report.html)
    for name in ("swimmer_samples.tsv", "tf_trajectories.tsv", "qc_samples.tsv"):
        assert {"mutant_fragments", "mutant_loci"} <= set(tables[name].columns), name
    qc_hover = next(t for t in plot_data(report.html, "qc_samples") if t.get("type") == "bar")["text"][0]
    assert "mutant fragments" in qc_hover and "threshold: nominal" in qc_hover
    older = build_report(
        _calls_with(cohort, tmp_path, drop=("mutant_fragments", "mutant_loci")), ReportSettings(), strict=True
    )
    assert "<br>mutant fragments" not in older.html
    assert "mutant_fragments" not in downloads(older.html)["swimmer_samples.tsv"].columns


def test_chip_suspect_loci_are_listed_with_an_explanation(report: Report, cohort: Cohort, tmp_path: Path):
    section = next(s for s in report.sections if s.key == "chip_loci")
    table = section.downloads["chip_suspect_loci.tsv"]
    assert list(table["patient_id"]) == ["P001", "P002"] and list(table["pos"]) == [1003, 1003]
    samples = cohort.calls["patient_id"].value_counts()
    assert list(table["samples"]) == [samples["P001"], samples["P002"]]
    assert "clonal hematopoiesis" in section.caption and "matched normal" in section.caption
    assert "<td>P001</td>" in section_html(report.html, "chip_loci")
    qc_hovers = [
        text for t in plot_data(report.html, "qc_samples") if t.get("type") == "bar" for text in t["text"]
    ]
    assert any("CHIP-suspect loci 1" in h for h in qc_hovers)
    loci, path = read_input(cohort.inputs.loci), tmp_path / "loci.tsv"
    loci.assign(chip_suspect=False).to_csv(path, sep="\t", index=False)
    none = build_report(dataclasses.replace(cohort.inputs, loci=str(path)), ReportSettings(), strict=True)
    assert next(s for s in none.sections if s.key == "chip_loci").message.startswith("No panel locus is in a")
    loci.drop(columns=["chip_suspect"]).to_csv(
        path, sep="\t", index=False
    )  # a caller that does not mark them
    older = build_report(dataclasses.replace(cohort.inputs, loci=str(path)), ReportSettings(), strict=True)
    assert "chip_loci" not in {s.key for s in older.sections}


def test_empty_survival_gives_not_estimable_sections(tmp_path: Path):
    cohort = build_fixture(tmp_path / "results", survival=False)
    report = build_report(cohort.inputs, ReportSettings(), strict=True)
    assert set(figure_ids(report.html)) == ALL_FIGURES - SURVIVAL_FIGURES
    for key in SURVIVAL_FIGURES:
        section = next(s for s in report.sections if s.key == key)
        assert section.figure is None and section.message.startswith("Not estimable: "), key
    assert "no PFS event: survival analyses not estimable" in report.html


def test_no_positive_sample(tmp_path: Path):
    cohort = build_fixture(tmp_path / "results", positives=False)
    report = build_report(cohort.inputs, ReportSettings(), strict=True)
    lead = next(s for s in report.sections if s.key == "lead_time")
    assert lead.figure is None and "no patient had an MRD-positive sample" in lead.message
    assert {"swimmer", "trajectories", "km_pooled"} <= set(figure_ids(report.html))


def test_no_inputs_at_all_still_renders():
    report = build_report(ReportInputs(), ReportSettings(), strict=True)
    assert figure_ids(report.html) == []
    assert report.html.count('class="not-estimable"') >= 10
    assert "calls: not given" in report.html


def test_missing_optional_column_degrades_one_section(tmp_path: Path):
    cohort = build_fixture(tmp_path / "results")
    calls = read_input(cohort.inputs.calls).drop(columns=["lod95", "batch"])
    calls.to_csv(cohort.inputs.calls, sep="\t", index=False)
    (Path(cohort.inputs.fraglen[0]).parent / "extra.txt").write_text("ignored")
    report = build_report(cohort.inputs, ReportSettings(), strict=True)
    lod = next(s for s in report.sections if s.key == "lod")
    assert lod.figure is None and "lacks column(s) lod95" in lod.message
    assert {"swimmer", "trajectories", "qc_samples"} <= set(figure_ids(report.html))


def test_extra_columns_and_unreadable_tables_are_tolerated(tmp_path: Path):
    cohort = build_fixture(tmp_path / "results")
    cox = read_input(cohort.inputs.cox).assign(new_column="x")
    cox.to_csv(cohort.inputs.cox, sep="\t", index=False)
    Path(cohort.inputs.endpoints).write_bytes(b"\xff\xfe\x00garbage")
    Path(cohort.inputs.summary).write_text("{not json")
    report = build_report(cohort.inputs, ReportSettings(), strict=True)
    assert "forest" in figure_ids(report.html)
    endpoints = next(s for s in report.sections if s.key == "endpoints")
    assert endpoints.figure is None and "could not be read" in endpoints.message


def test_a_failing_section_is_shown_not_raised(cohort: Cohort, monkeypatch: pytest.MonkeyPatch):
    import mrdtrack.report.page as module

    def broken(ctx: object) -> None:
        """Broken section"""
        raise RuntimeError("boom")

    monkeypatch.setattr(module, "CHAPTERS", (("x", "X", (broken, module.section_swimmer)),))
    report = build_report(cohort.inputs, ReportSettings())
    assert "Not drawn: RuntimeError: boom" in report.html and "fig-swimmer" in report.html
    with pytest.raises(RuntimeError):
        build_report(cohort.inputs, ReportSettings(), strict=True)


def test_write_report_writes_page_and_one_html_per_figure(cohort: Cohort, tmp_path: Path):
    html_path, figures = tmp_path / "report/mrd_report.html", tmp_path / "report/figures"
    figures.mkdir(parents=True)
    (figures / "stale.html").write_text("old")
    report = write_report(cohort.inputs, html_path, figures, ReportSettings())
    assert html_path.read_text(encoding="utf-8") == report.html
    written = {p.name for p in figures.iterdir()}
    assert written == {f"{k}.html" for k in ALL_FIGURES} | {"plotly.min.js", "index.html"}
    page = (figures / "swimmer.html").read_text()
    assert (
        re.search(r'<script[^>]* src="plotly.min.js"', page) and "https://" not in page.split("<body>", 1)[0]
    )
    assert sorted(p.name for p in html_path.parent.iterdir()) == ["figures", "mrd_report.html"]
    assert "plotly_hover" in (figures / "trajectories.html").read_text()  # the highlight works there too


def test_static_export_without_kaleido_only_warns(
    cohort: Cohort, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    with caplog.at_level(logging.WARNING):
        write_report(
            cohort.inputs, tmp_path / "r.html", tmp_path / "figures", ReportSettings(static_formats=("png",))
        )
    pngs = list((tmp_path / "figures").glob("*.png"))
    assert (tmp_path / "figures" / "swimmer.html").is_file()
    assert pngs or caplog.text.count("static export skipped") == 1


def test_settings_from_config():
    settings = ReportSettings.from_config(
        {"title": "T", "tf_floor": "1e-7"}, {"study_name": "S", "report_date": None}
    )
    assert (settings.title, settings.study_name, settings.tf_floor, settings.report_date) == (
        "T",
        "S",
        1e-7,
        "",
    )
    import datetime

    dated = ReportSettings.from_config({"report_date": datetime.date(2024, 5, 1), "static_formats": "png"})
    assert dated.report_date == "2024-05-01" and dated.static_formats == ("png",)
    for bad in ({"tf_floor": 0}, {"swimmer_sort": "name"}, {"static_formats": ["gif"]}, {"tf_floor": "x"}):
        with pytest.raises(UserFacingError):
            ReportSettings.from_config(bad)


def test_an_unknown_setting_is_an_error_that_lists_the_valid_keys():
    with pytest.raises(UserFacingError, match="unknown key 'report.titel'; valid keys of report: .*title"):
        ReportSettings.from_config({"titel": "typo"})


def test_report_date_defaults_to_latest_data_date(cohort: Cohort):
    page = build_report(cohort.inputs, ReportSettings(), strict=True).html
    latest = max(pd.to_datetime(cohort.patients[["pfs_date", "os_date"]].stack()).max(),
                 pd.to_datetime(cohort.calls["collection_date"]).max())  # fmt: skip
    assert f"Report date {latest.date().isoformat()}" in page


def test_snakemake_script_glue(cohort: Cohort, tmp_path: Path):
    names = [f for f in ReportInputs.__dataclass_fields__]
    inputs = {name: getattr(cohort.inputs, name) for name in names}
    inputs["fraglen"], inputs["qc"] = list(inputs["fraglen"]), list(inputs["qc"])
    fake = SimpleNamespace(
        input=SimpleNamespace(items=lambda: inputs.items()),
        params=SimpleNamespace(settings={"title": "Glue"}, config={"study_name": "STOP-HER2", "report": {}}),
        output=SimpleNamespace(html=str(tmp_path / "r.html"), figures=str(tmp_path / "figs")),
        log=[str(tmp_path / "report.log")],
    )
    runpy.run_path(str(REPO / "workflow/scripts/report.py"), init_globals={"snakemake": fake})
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "<title>Glue</title>" in page and "STOP-HER2" in page
    assert (tmp_path / "figs" / "swimmer.html").is_file()
    assert "report:" in (tmp_path / "report.log").read_text()


def test_100_patients_by_8_samples_render_completely(tmp_path: Path):
    """Correctness at the benchmark's size; the speed target (< 10 s) is checked by benchmarks/report_speed.py."""
    cohort = build_fixture(tmp_path / "results", n_patients=100, samples_per_patient=8)
    report = write_report(cohort.inputs, tmp_path / "r.html", tmp_path / "figures", ReportSettings())
    assert len(set(values(plot_data(report.html, "swimmer")[0]["y"]))) == 100
    assert sorted(figure_ids(report.html)) == sorted(ALL_FIGURES)
    names = {p.name for p in (tmp_path / "figures").glob("*.html")}
    assert names == {f"{k}.html" for k in ALL_FIGURES} | {"index.html"}


def test_figure_index_shows_every_figure_with_its_caption(tmp_path: Path, cohort: Cohort):
    """figures/index.html is the entry page `snakemake --report` shows (htmlindex); it needs no network."""
    report = write_report(cohort.inputs, tmp_path / "r.html", tmp_path / "figures", ReportSettings(title="T"))
    index = (tmp_path / "figures" / "index.html").read_text()
    frames = re.findall(r'<iframe src="([^"]+)"', index)
    assert sorted(frames) == sorted(f"{k}.html" for k in ALL_FIGURES)
    assert all((tmp_path / "figures" / f).is_file() for f in frames)
    for section in report.sections:
        if section.figure is not None:
            assert markupsafe.escape(section.caption) in index, section.key
    assert "http" not in index and "<script" not in index


TABLE_INPUTS = [
    "calls", "loci", "context_rates", "locus_rates", "excluded", "samples", "patients", "joined", "km_curves",
    "km_summary", "cox", "endpoints", "design", "landmark_km_curves", "landmark_km_summary", "prediction",
    "safe_to_stop", "safe_to_stop_accuracy",
]  # fmt: skip


@pytest.mark.parametrize("name", TABLE_INPUTS + ["summary", "fraglen", "qc"])
def test_any_single_input_missing_never_crashes(cohort: Cohort, name: str):
    inputs = dataclasses.replace(cohort.inputs, **{name: () if name in ("fraglen", "qc") else None})
    report = build_report(inputs, ReportSettings(), strict=True)
    assert report.html.count('class="panel"') == len(report.sections) >= 15


@pytest.mark.parametrize("name", TABLE_INPUTS)
def test_any_single_table_with_only_a_header_never_crashes(cohort: Cohort, tmp_path: Path, name: str):
    header_only = tmp_path / f"{name}.tsv"
    header_only.write_text("\t".join(read_input(getattr(cohort.inputs, name)).columns) + "\n")
    report = build_report(
        dataclasses.replace(cohort.inputs, **{name: str(header_only)}), ReportSettings(), strict=True
    )
    assert "<h2" in report.html


def test_samples_of_unknown_patients_and_missing_dates(cohort: Cohort, tmp_path: Path):
    calls = read_input(cohort.inputs.calls)
    stray = calls.iloc[:2].assign(
        patient_id="P999", sample_id=["X1", "X2"], collection_date=["", "not a date"]
    )
    path = tmp_path / "calls.tsv"
    pd.concat([calls, stray]).to_csv(path, sep="\t", index=False)
    report = build_report(dataclasses.replace(cohort.inputs, calls=str(path)), ReportSettings(), strict=True)
    assert {"swimmer", "trajectories", "qc_samples"} <= set(figure_ids(report.html))


def test_rerun_is_byte_identical(cohort: Cohort, tmp_path: Path):
    """Nothing depends on the clock or on random ids, so Snakemake's rerun leaves identical files."""
    for run in ("a", "b"):
        write_report(cohort.inputs, tmp_path / run / "r.html", tmp_path / run / "figures", ReportSettings())
    a, b = tmp_path / "a", tmp_path / "b"
    assert (a / "r.html").read_bytes() == (b / "r.html").read_bytes()
    names = sorted(p.name for p in (a / "figures").iterdir())
    assert names == sorted(p.name for p in (b / "figures").iterdir())
    for name in names:
        assert (a / "figures" / name).read_bytes() == (b / "figures" / name).read_bytes(), name


def test_tf_floor_defaults_to_a_decade_below_the_data(cohort: Cohort):
    from mrdtrack.report.context import Context, load_tables

    ctx = Context.build(load_tables(cohort.inputs), ReportSettings(), {})
    smallest = min(v for v in pd.concat([cohort.calls["tumor_fraction"], cohort.calls["lod95"]]) if v > 0)
    assert ctx.tf_floor() <= smallest / 10 < ctx.tf_floor() * 100
    assert np.log10(ctx.tf_floor()) == round(np.log10(ctx.tf_floor()))
    fixed = Context.build(load_tables(cohort.inputs), ReportSettings(tf_floor=1e-7), {})
    assert fixed.tf_floor() == 1e-7


def test_qc_bars_keep_their_text_for_the_hover(report: Report):
    bars = [t for t in plot_data(report.html, "qc_samples") if t.get("type") == "bar"]
    assert bars and all(t.get("textposition") == "none" for t in bars)


def test_qc_molecules_show_the_minimum_molecules_cut_and_label_samples_once(report: Report, cohort: Cohort):
    section = next(s for s in report.sections if s.key == "qc_samples")
    (cut,) = [shape for shape in section.figure.layout.shapes if shape.yref == "y"]
    assert cut.y0 == cut.y1 == 500  # the calling.min_molecules the calibration recorded (the default)
    assert "calling.min_molecules = 500" in section.caption
    layout = section.figure.layout
    assert (
        layout.xaxis.showticklabels is False and layout.xaxis2.showticklabels is True
    )  # labels under the bottom
    low, high = layout.yaxis.range
    assert low < np.log10(min(500, cohort.calls["total_molecules"].min())) and high > np.log10(
        cohort.calls["total_molecules"].max()
    )


def test_the_qc_cut_is_the_one_calling_recorded_not_the_current_config(cohort: Cohort, tmp_path: Path):
    write_settings(tmp_path / "mrd.json", CallSettings(min_molecules=800))
    inputs = dataclasses.replace(
        cohort.inputs, settings=(*cohort.inputs.settings, str(tmp_path / "mrd.json"))
    )
    configured = build_report(inputs, ReportSettings(), {"calling": {"min_molecules": 300}}, strict=True)
    section = next(s for s in configured.sections if s.key == "qc_samples")
    assert [shape.y0 for shape in section.figure.layout.shapes] == [800]


def test_not_estimable_cox_models_are_one_row_each_with_short_notes(cohort: Cohort, tmp_path: Path):
    cox = read_input(str(cohort.inputs.cox))
    advice = "Convergence halted. Please see the following tips in the lifelines documentation: https://x.y/z"
    extra = pd.DataFrame(
        {"model": ["baseline_adjusted"] * 2, "cohort": ["stop"] * 2, "term": ["mrd_positive", "age"],
         "note": [f"not estimable: the fit did not converge ({advice})"] * 2}
    )  # fmt: skip
    path = tmp_path / "cox.tsv"
    pd.concat([cox, extra]).to_csv(path, sep="\t", index=False)
    report = build_report(dataclasses.replace(cohort.inputs, cox=str(path)), ReportSettings())
    forest = next(s for s in report.sections if s.key == "forest")
    assert forest.figure is not None and "2 models could not be estimated" in forest.caption
    html = section_html(report.html, "forest")
    assert html.count("<tr") == 3  # header + baseline_unadjusted/stop + baseline_adjusted/stop
    assert "Please see" not in html and "https://" not in html


def test_sparse_fragment_lengths_are_binned_with_empty_bins_at_zero():
    from mrdtrack.report.qc import fraglen_bin_width, fraglen_bins

    assert (fraglen_bin_width(50_000), fraglen_bin_width(5_000), fraglen_bin_width(68)) == (1, 5, 10)
    bins = fraglen_bins(pd.Series([71, 79, 115, 384]), pd.Series([1.0, 2.0, 1.0, 1.0]), 10)
    assert bins.index[0] == 70 and bins.index[-1] == 380 and bins.loc[70] == 3 and bins.loc[200] == 0
    assert bins.sum() == 5 and len(bins) == 32


# ---------------------------------------------------------------------------------------------- the first screen


def answer_cells(page: str) -> dict[tuple[str, str], dict[str, str]]:
    """The first screen's table cells by (cohort, status): their text and data-* attributes."""
    html = section_html(page, "answer")
    cells = {}
    for attrs, text in re.findall(r"<td ((?:data-[\w-]+=\"[^\"]*\" ?)+)>(.*?)</td>", html, re.S):
        found = dict(re.findall(r'data-([\w-]+)="([^"]*)"', attrs))
        cells[(found["cohort"], found["status"])] = found | {"text": re.sub(r"<[^>]+>", " ", text)}
    return cells


def test_the_first_section_answers_who_may_safely_stop(report: Report):
    assert report.sections[0].key == "answer"
    start = report.html.index('id="panel-answer"')
    assert start < report.html.index('<nav class="toc">')  # above the table of contents: the first screen
    assert start < min(report.html.index(f'id="panel-{key}"') for key in ALL_FIGURES - {"answer"})


def test_first_screen_pfs_and_npv_are_the_safe_to_stop_tables(report: Report, cohort: Cohort):
    cells = answer_cells(report.html)
    pfs = read_input(str(cohort.folder / "survival/safe_to_stop.tsv")).query("timepoint == 'baseline'")
    for row in pfs.itertuples():
        cell = cells[(row.cohort, row.mrd_status)]
        if row.n == "0":
            assert cell["text"].strip() == "no patients" and not cell.get("value")
            continue
        assert cell["value"] == row.km_pfs_1y and cell["n"] == row.n, (row.cohort, row.mrd_status)
        estimate = f"{round(100 * float(row.km_pfs_1y))}%"
        if row.km_ci_low and row.km_ci_high:
            low, high = (round(100 * float(v)) for v in (row.km_ci_low, row.km_ci_high))
            estimate += f" (95% CI {low}\u2013{high}%)"
        assert cell["text"].startswith(estimate)
        free = int(row.evaluable) - int(row.progressed_1y)
        assert f"{free} of {row.evaluable} evaluable at 1 year" in cell["text"]
    accuracy = read_input(str(cohort.folder / "survival/safe_to_stop_accuracy.tsv"))
    for row in accuracy.query("timepoint == 'baseline'").itertuples():
        cell = cells[(row.cohort, "npv")]
        assert cell["value"] == row.npv and f"{round(100 * float(row.npv))}% (95% exact CI" in cell["text"]
        evaluable = int(row.true_negative) + int(row.false_negative)
        assert f"{row.true_negative} of {evaluable} evaluable MRD-negative patients" in cell["text"]
    assert {cohort for cohort, _ in cells} == {"continue", "stop", "all"}


def test_first_screen_curves_mark_one_year_with_the_events_by_then(report: Report, cohort: Cohort):
    traces = plot_data(report.html, "answer")
    curves = [t for t in traces if t.get("line", {}).get("shape") == "hv"]
    assert {t["name"] for t in curves} == {"MRD-negative at baseline", "MRD-positive at baseline"}
    pfs = read_input(str(cohort.folder / "survival/safe_to_stop.tsv")).query("timepoint == 'baseline'")
    assert len(curves) == (pfs["n"].astype(int) > 0).sum()  # each group with patients, per cohort and pooled
    marks = [t for t in traces if values(t.get("x")) == [12.0] and t.get("hovertext")]
    stop_negative = pfs.query("cohort == 'stop' and mrd_status == 'negative'").iloc[0]
    hover = next(
        t["hovertext"][0]
        for t in marks
        if "Cohort stop" in t["hovertext"][0] and "negative" in t["hovertext"][0]
    )
    events = int(stop_negative.progressed_1y)
    assert f"{events} progression event{'s' if events != 1 else ''} by 12 months" in hover


def test_without_the_safe_to_stop_tables_the_first_screen_says_not_computed(cohort: Cohort):
    inputs = dataclasses.replace(cohort.inputs, safe_to_stop=None, safe_to_stop_accuracy=None)
    report = build_report(inputs, ReportSettings(), strict=True)
    answer = report.sections[0]
    assert answer.key == "answer" and answer.figure is not None
    html = section_html(report.html, "answer")
    assert "NPV are not computed" in " ".join(html.split()) and html.count("<td>not computed</td>") == 3
    assert "safe_to_stop" not in report.html.split("</header>", 1)[0]  # optional: not a missing input
    summary = read_input(cohort.inputs.km_summary).query("timepoint_months == '12'")
    cells = answer_cells(report.html)
    for row in summary[summary["group"].isin(["positive", "negative"])].itertuples():
        assert cells[(row.cohort, row.group)]["value"] == row.survival  # the Kaplan-Meier summary's value


# ---------------------------------------------------------------------------------------------------- the forest


def forest_ticks(report: Report) -> list[str]:
    return list(next(s for s in report.sections if s.key == "forest").figure.layout.yaxis.ticktext)


def test_forest_names_models_in_words_grouped_under_headings(report: Report):
    ticks = forest_ticks(report)
    headings = [t for t in ticks if t.startswith("<b>")]
    assert headings == [
        "<b>Baseline MRD status: MRD-positive vs negative</b>",
        "<b>MRD status at the 3-month landmark (last sample before it): MRD-positive vs negative</b>",
        "<b>MRD status over time (time-varying): MRD-positive vs negative</b>",
        "<b>Ever MRD-positive (time-varying), adjusted for covariates</b>",
    ]
    rows = [t.strip("\u00a0").removesuffix(" \u26a0") for t in ticks if not t.startswith("<b>")]
    assert rows[0] == "all patients, stratified by cohort" and "cohort stop (Firth)" in rows
    assert "all patients, stratified by cohort \u00b7 ever positive vs never" in rows
    forest = section_html(report.html, "forest").split("Plotly.newPlot", 1)[1]
    assert "time_varying_ever_positive_adjusted" not in forest and "mrd_positive" not in forest


def test_forest_has_an_axis_at_the_top_and_clips_intervals_with_arrows(report: Report):
    fig = next(s for s in report.sections if s.key == "forest").figure
    top, bottom = fig.layout.xaxis2, fig.layout.xaxis
    assert top.side == "top" and top.overlaying == "x" and tuple(top.range) == tuple(bottom.range)
    assert list(top.tickvals) == list(bottom.tickvals) and 1 in bottom.tickvals
    low, high = (10**v for v in bottom.range)
    segments = next(t for t in fig.data if t.mode == "lines")
    drawn = [x for x in segments.x if x is not None]
    assert min(drawn) >= low * (1 - 1e-9) and max(drawn) <= high * (1 + 1e-9)
    (arrows,) = [t for t in fig.data if t.marker.symbol == "triangle-right"]
    ticks = dict(zip(fig.layout.yaxis.tickvals, fig.layout.yaxis.ticktext, strict=True))
    clipped = sorted(ticks[y].strip("\u00a0").removesuffix(" \u26a0") for y in arrows.y)
    # the 0.9-250 interval, and the Firth fit whose profile interval has no upper end
    assert clipped == [
        "all patients, stratified by cohort \u00b7 ever positive vs never",
        "cohort stop (Firth)",
    ]
    assert arrows.x == pytest.approx([high, high]) and high < 250


def test_forest_cautions_where_a_compared_group_has_fewer_than_5_patients(report: Report, cohort: Cohort):
    fig = next(s for s in report.sections if s.key == "forest").figure
    baseline = cohort.patients.groupby("cohort")["baseline_status"].value_counts().unstack(fill_value=0)
    ticks = forest_ticks(report)
    baseline_rows = ticks[1 : next(i for i, t in enumerate(ticks[1:], 1) if t.startswith("<b>"))]
    for name, counts in baseline.iterrows():
        labels = [t.strip("\u00a0") for t in baseline_rows if t.strip("\u00a0").startswith(f"cohort {name}")]
        if not labels:  # the fixture's stop cohort has no baseline estimate
            continue
        small = min(counts.get("positive", 0), counts.get("negative", 0)) < 5
        assert labels[0].endswith("\u26a0") == small, (name, dict(counts))
    estimates = next(t for t in fig.data if t.mode == "markers" and t.text)
    cautioned = [h for h in estimates.text if "\u26a0" in h]
    assert all(
        re.search(
            r"(only \d+|no) (ever )?MRD-(positive|negative) patients?: the estimate rests on very few", h
        )
        for h in cautioned
    )
    assert (
        cautioned and "fewer than 5 patients" in next(s for s in report.sections if s.key == "forest").caption
    )


def test_p_values_read_p_less_than_not_p_equals_less_than(report: Report):
    hovers = next(t for t in plot_data(report.html, "forest") if t.get("text"))["text"]
    assert any("p < 0.001" in h for h in hovers) and any("p = 0.02" in h for h in hovers)
    assert "p = <" not in report.html and "p=<" not in report.html
    assert "HR 3.40 (95% CI 1.20\u20139.60), Cox stratified by cohort" in report.sections[1].caption


# ------------------------------------------------------------------------------- trajectories, landmarks, prediction


def test_trajectories_draw_samples_below_their_lod_at_the_lod_not_at_a_floor(report: Report, cohort: Cohort):
    lines = {t["name"]: t for t in plot_data(report.html, "trajectories") if t.get("meta") == "patient"}
    calls = cohort.calls.set_index("sample_id")
    checked = 0
    for patient, line in lines.items():
        samples = calls[calls["patient_id"] == patient].sort_values("collection_date")
        for (sample_id, call), y, symbol in zip(samples.iterrows(), values(line["y"]), line["marker"]["symbol"],
                                                strict=True):  # fmt: skip
            below = call["mrd_status"] != "positive" and call["tumor_fraction"] < call["lod95"]
            assert y == pytest.approx(call["lod95"] if below else call["tumor_fraction"], rel=1e-5), sample_id
            assert (symbol == "triangle-down") == below, sample_id
            checked += below
    assert checked > 10  # the fixture's negatives have TF 0 or below the LOD95
    section = next(s for s in report.sections if s.key == "trajectories")
    assert "below LOD95 (drawn at it)" in {t.name for t in section.figure.data}
    assert not section.figure.layout.shapes  # no plotting floor: every sample has a LOD95


def test_trajectories_mark_progression_in_a_band_of_its_own(report: Report, cohort: Cohort):
    fig = next(s for s in report.sections if s.key == "trajectories").figure
    band = [t for t in fig.data if t.name == "progression"]
    assert band and all(t.yaxis == "y2" for t in band)
    progressed = cohort.patients[cohort.patients["pfs_event"] == 1]
    marked = sorted(p for t in band for p in t.text)
    dead_first = (progressed["os_event"] == 1) & (
        (progressed["os_months"] - progressed["pfs_months"]).abs() < 0.5
    )
    assert marked == sorted(progressed.loc[~dead_first, "patient_id"])  # a death is not a progression
    assert list(fig.layout.yaxis2.categoryarray) == ["stop", "continue"] and fig.layout.yaxis.type == "log"


def test_a_sample_without_a_lod_and_no_tumor_fraction_sits_at_the_plotting_floor(
    cohort: Cohort, tmp_path: Path
):
    calls = read_input(cohort.inputs.calls)
    calls.loc[0, ["lod95", "tumor_fraction"]] = ["", "0"]
    calls.to_csv(tmp_path / "calls.tsv", sep="\t", index=False)
    inputs = dataclasses.replace(cohort.inputs, calls=str(tmp_path / "calls.tsv"))
    report = build_report(inputs, ReportSettings(tf_floor=1e-6), strict=True)
    section = next(s for s in report.sections if s.key == "trajectories")
    line = next(
        t for t in section.figure.data if t.meta == "patient" and t.name == calls.loc[0, "patient_id"]
    )
    assert line.y[0] == 1e-6 and [s.y0 for s in section.figure.layout.shapes] == [1e-6]
    assert "plotting floor 1e-06" in section.caption


def test_landmark_curves_are_shown_per_landmark_with_a_cohort_switch(report: Report, cohort: Cohort):
    section = next(s for s in report.sections if s.key == "landmark_km")
    curves = [t for t in section.figure.data if t.mode == "lines" and t.line.shape == "hv"]
    shown = {t.name for t in curves if t.visible is not False}
    assert shown == {"MRD-negative at the landmark", "MRD-positive at the landmark"}
    at_risk = read_input(str(cohort.folder / "survival/landmark_km_summary.tsv"))
    pooled = at_risk.query("cohort == 'all' and group != 'all'").set_index("group")["n"]
    title = section.figure.layout.annotations[0].text
    assert title.startswith("3-month landmark: ") and f"{pooled['negative']} MRD\u2212" in title
    assert "log-rank p < 0.001" in title  # summary.json's landmark test
    buttons = section.figure.layout.updatemenus[0].buttons
    assert [b.label for b in buttons] == ["All patients", "cohort continue", "cohort stop"]
    for button in buttons:
        visible = button.args[0]["visible"]
        assert len(visible) == len(section.figure.data) and any(visible)


def test_prediction_shows_the_cross_validated_auc_and_why_a_model_was_not_fitted(report: Report):
    section = next(s for s in report.sections if s.key == "prediction")
    points = next(t for t in section.figure.data if t.mode == "markers+text")
    assert list(points.y) == ["baseline MRD status", "baseline MRD status + baseline tumor fraction"]
    assert list(points.x) == [0.74, 0.81] and list(points.text) == ["AUC 0.74", "AUC 0.81"]
    assert "AUC 0.74 (95% CI 0.55\u20130.90); repeats 0.70\u20130.78" in points.hovertext[0]
    assert "out-of-fold" in section.caption and "20 repeats of 5-fold" in section.caption
    html = section_html(report.html, "prediction")
    assert "baseline MRD status + baseline tumor fraction + age: too few patients" in html


# ------------------------------------------------------------------------------------------- fixes of the demo


def test_the_design_lines_are_drawn_over_the_design_cohort_only(report: Report):
    section = next(s for s in report.sections if s.key == "endpoints")
    cohorts = list(section.figure.layout.xaxis.categoryarray)
    stop = cohorts.index("stop")
    for shape in section.figure.layout.shapes:
        assert (shape.xref, shape.x0, shape.x1) == ("x", stop - 0.42, stop + 0.42)
    assert "Dashed lines over cohort stop" in section.caption


def test_hovers_where_the_1_year_rate_is_shown_give_the_events_by_12_months(report: Report, cohort: Cohort):
    section = next(s for s in report.sections if s.key == "endpoints")
    pfs = next(t for t in section.figure.data if t.name == "PFS at 12 months")
    patients = cohort.patients
    for cohort_name, hover in zip(pfs.x, pfs.hovertext, strict=True):
        rows = patients if cohort_name == "all" else patients[patients["cohort"] == cohort_name]
        events = int(((rows["pfs_event"] == 1) & (rows["pfs_months"] <= 12)).sum())
        assert f"{events} progression event{'s' if events != 1 else ''} by 12 months" in hover, cohort_name
    km = next(s for s in report.sections if s.key == "km_pooled").figure
    assert "events so far" in next(t for t in km.data if t.line.shape == "hv").hovertemplate


def test_methods_state_the_tumor_fraction_floor_of_the_survival_models(report: Report):
    methods = _methods(report.html)
    assert (
        "the tumor-fraction floor, 0.5 \u00d7 the sample's LOD95 (1e-05 when the sample has no LOD95)"
        in methods
    )


def test_booleans_read_yes_and_no(report: Report):
    html = section_html(report.html, "endpoints")
    assert "<tr><th>selected</th><td>Yes</td><td>No</td></tr>" in html
    assert ">True<" not in report.html and ">False<" not in report.html


def test_survival_notes_are_plain_sentences_without_library_errors_or_links(cohort: Cohort, tmp_path: Path):
    summary = json.loads(Path(cohort.inputs.summary).read_text())
    summary["notes"] = [
        "baseline_adjusted (all): not estimable (Convergence halted. Please see the tips: https://x.example/a-b)",
        "time_varying_status (stop): LinAlgError: Singular matrix",
        "time_varying_ever_positive (all): no events when ever_positive = 0: hazard ratio not estimable",
    ]
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(summary))
    page = build_report(
        dataclasses.replace(cohort.inputs, summary=str(path)), ReportSettings(), strict=True
    ).html
    header = page.split("<header>", 1)[1].split("</header>", 1)[0]
    assert "http" not in header and "LinAlgError" not in header and "<a href" not in header
    assert "MRD status over time (time-varying) \u00b7 cohort stop: the fit failed numerically" in header
    assert (
        "Ever MRD-positive (time-varying) \u00b7 all patients: no progression among patients never MRD-positive"
        in header
    )


def test_flagged_samples_table_keeps_the_columns_a_reader_needs(cohort: Cohort, tmp_path: Path):
    calls = read_input(cohort.inputs.calls)
    calls.loc[0, "flags"] = "possible_contamination:P003;outlier_loci:2"
    calls.to_csv(tmp_path / "calls.tsv", sep="\t", index=False)
    report = build_report(
        dataclasses.replace(cohort.inputs, calls=str(tmp_path / "calls.tsv")), ReportSettings()
    )
    section = next(s for s in report.sections if s.key == "flagged")
    (table,) = section.blocks
    assert table.header == ["sample", "patient", "batch", "MRD status", "flags", "why this status", "LOD95",
                            "molecules", "loci used", "duplicates"]  # fmt: skip
    first = dict(zip(table.header, table.rows[0], strict=True))
    assert first["flags"] == "possible contamination (scores positive at P003's panel); 2 outlier loci"
    assert re.fullmatch(r"\d{1,3}(,\d{3})*", first["molecules"]) and first["duplicates"].endswith("%")
    assert len(section.downloads["flagged_samples.tsv"].columns) > len(table.header)  # the TSV has them all


def test_an_estimate_beyond_the_axis_sits_at_its_edge_as_a_triangle_with_its_value_beside():
    from mrdtrack.report.forest import ForestRow, axis_range, forest_figure

    rows = [ForestRow("Tumor fraction", "cohort continue", 1439.0, 27.7, 74743.0, "", ""),
            ForestRow("Tumor fraction", "cohort stop", 40.0, 14.3, 112.0, "", "")]  # fmt: skip
    assert axis_range(rows) == (0.5, 100.0)
    fig = forest_figure(rows)
    estimates = next(t for t in fig.data if t.mode == "markers" and t.text)
    assert list(estimates.x) == [100.0, 40.0] and list(estimates.marker.symbol) == [
        "triangle-right",
        "square",
    ]
    assert [a.text for a in fig.layout.annotations][:2] == [
        "1,439 (27.7\u201374,743)",
        "40.0 (14.3\u2013112)",
    ]
