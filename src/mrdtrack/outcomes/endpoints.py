"""The trial's endpoints: Kaplan-Meier 1-year PFS and 3-year OS per cohort, clinical benefit after a restart,
and where the configured cohort's observed data stand in its Simon two-stage designs."""

from __future__ import annotations

import pandas as pd
from scipy import stats

from mrdtrack.outcomes.km import km_table, value_at
from mrdtrack.outcomes.patients import Notes, cohort_subsets
from mrdtrack.outcomes.prediction import horizon_outcome
from mrdtrack.outcomes.simon import DESIGNS, simon_decision, simon_designs
from mrdtrack.outcomes.survival_settings import SurvivalSettings
from mrdtrack.tables import columns_of

ENDPOINT_COLUMNS = columns_of("endpoints")  # mrdtrack.tables.CONTRACTS


def trial_endpoints(pats: pd.DataFrame, settings: SurvivalSettings, notes: Notes) -> pd.DataFrame:
    """KM 1-year PFS and 3-year OS per cohort (and pooled), and clinical benefit after a restart."""
    rows = []
    for _analysis, cohort, subset in cohort_subsets(pats):
        rows.append(_km_endpoint(cohort, subset, "pfs", settings.pfs_endpoint_months, settings))
        rows.append(_km_endpoint(cohort, subset, "os", settings.os_endpoint_months, settings))
        rows += _restart_rows(cohort, subset, settings)
    if "restart_benefit" not in pats.columns:
        notes.add("no restart_benefit column: clinical benefit after restart not reported")
    return pd.DataFrame(rows, columns=ENDPOINT_COLUMNS)


def _km_endpoint(
    cohort: str, subset: pd.DataFrame, kind: str, timepoint: float, settings: SurvivalSettings
) -> dict:
    months, event = f"{kind}_months", f"{kind}_event"
    data = subset[[months, event]].apply(pd.to_numeric, errors="coerce").dropna()
    table = km_table(data[months], data[event], settings.conf_level)
    value = (
        value_at(table, data[months], timepoint) if not table.empty else {"at_risk": 0, "note": "no patients"}
    )
    suffix = "log" if settings.endpoint_ci == "log" else "loglog"
    return {
        "cohort": cohort,
        "endpoint": endpoint_name(kind, timepoint),
        "timepoint_months": timepoint,
        "n": len(data),
        "events": int(data[event].sum()),
        "at_risk": value["at_risk"],
        "estimate": value.get("survival"),
        "ci_low": value.get(f"ci_low_{suffix}"),
        "ci_high": value.get(f"ci_high_{suffix}"),
        "method": f"Kaplan-Meier, {settings.endpoint_ci} CI",
        "note": value["note"],
    }


def endpoint_name(kind: str, months: float) -> str:
    """pfs_1y, os_3y for whole years (the trial's names), else pfs_6m and the like."""
    years = months / 12
    return f"{kind}_{years:g}y" if float(years).is_integer() else f"{kind}_{months:g}m"


def _restart_rows(cohort: str, subset: pd.DataFrame, settings: SurvivalSettings) -> list[dict]:
    if "restart_benefit" not in subset.columns:
        return []
    benefit = pd.to_numeric(subset["restart_benefit"], errors="coerce").dropna()
    row = {
        "cohort": cohort,
        "endpoint": "restart_clinical_benefit",
        "n": len(benefit),
        "events": int(benefit.sum()),
    }
    row |= {"method": "proportion, exact (Clopper-Pearson) CI", "at_risk": None}
    if benefit.empty:
        return [row | {"note": "no patient restarted with a recorded benefit"}]
    interval = stats.binomtest(int(benefit.sum()), len(benefit)).proportion_ci(
        settings.conf_level, method="exact"
    )
    return [row | {"estimate": benefit.mean(), "ci_low": interval.low, "ci_high": interval.high, "note": ""}]


def endpoint_summary(endpoints: pd.DataFrame) -> dict:
    summary: dict = {}
    for row in endpoints.to_dict("records"):
        summary.setdefault(row["cohort"], {})[row["endpoint"]] = {
            k: v for k, v in row.items() if k not in ("cohort", "endpoint")
        }
    return summary


DESIGN_COLUMNS = columns_of("design")  # mrdtrack.tables.CONTRACTS
# Patients censored before the horizon: left out of the Simon design's counts, or counted as failures.
CENSORED_HANDLING = ("exclude", "failure")


def trial_design(pats: pd.DataFrame, settings: SurvivalSettings, notes: Notes) -> tuple[pd.DataFrame, dict]:
    """Simon designs for the configured cohort and where its observed 1-year PFS data stand.

    Success = progression-free at the horizon. Patients censored before it are not evaluable: left out
    (`design_censored: exclude`, default) or counted as failures (`failure`); the other choice is shown as a
    sensitivity decision. Stage 1 = the first n1 evaluable patients in enrollment order.
    """
    designs = simon_designs(settings.p0, settings.p1, settings.alpha, settings.power, settings.design_nmax)
    observed = _design_outcomes(pats, settings)
    if observed["n_patients"] == 0:
        notes.add(f"design: no patients in cohort '{settings.design_cohort}'")
    rows = []
    for name in DESIGNS:
        if name not in designs:
            notes.add(f"design: no {name} Simon design with n <= {settings.design_nmax}")
            continue
        design = designs[name]
        decisions = {h: _decide(design, observed[h]) for h in CENSORED_HANDLING}
        other = next(h for h in CENSORED_HANDLING if h != settings.design_censored)
        rows.append(
            design.as_dict()
            | {"selected": name == settings.design, "p0": settings.p0, "p1": settings.p1}
            | {
                "target_alpha": settings.alpha,
                "target_power": settings.power,
                "cohort": settings.design_cohort,
            }
            | _observed_counts(observed[settings.design_censored], observed["n_patients"], design)
            | {
                "decision": decisions[settings.design_censored],
                "decision_other_handling": f"{other}: {decisions[other]}",
            }
        )
    table = pd.DataFrame(rows, columns=DESIGN_COLUMNS)
    chosen = table[table["selected"]].to_dict("records")
    summary = {"selected": chosen[0] if chosen else None, "designs": table.to_dict("records")}
    summary |= {"censored_handling": settings.design_censored, "success_rate": observed["rate"]}
    return table, summary


def _design_outcomes(pats: pd.DataFrame, settings: SurvivalSettings) -> dict:
    cohort = pats[pats["cohort"] == settings.design_cohort]
    cohort = cohort.sort_values(["enrollment_date", "patient_id"]) if "enrollment_date" in cohort else cohort
    free = 1 - horizon_outcome(cohort["pfs_months"], cohort["pfs_event"], settings.pfs_endpoint_months)
    result: dict = {
        "n_patients": len(cohort),
        "exclude": free.dropna().astype(int),
        "failure": free.fillna(0).astype(int),
    }
    chosen = result[settings.design_censored]
    result["rate"] = _proportion(chosen, settings.conf_level) | {"n_not_evaluable": int(free.isna().sum())}
    return result


def _proportion(successes: pd.Series, conf_level: float) -> dict:
    if successes.empty:
        return {"n": 0, "successes": 0, "estimate": None, "ci_low": None, "ci_high": None}
    interval = stats.binomtest(int(successes.sum()), len(successes)).proportion_ci(conf_level, method="exact")
    return {
        "n": len(successes),
        "successes": int(successes.sum()),
        "estimate": float(successes.mean()),
        "ci_low": interval.low,
        "ci_high": interval.high,
        "method": "exact (Clopper-Pearson); ignores the two-stage sampling",
    }


def _decide(design, outcomes: pd.Series) -> str:
    stage1 = outcomes.iloc[: design.n1]
    return simon_decision(
        design, int(stage1.sum()), len(stage1), int(outcomes.iloc[: design.n].sum()), len(outcomes)
    )


def _observed_counts(outcomes: pd.Series, n_patients: int, design) -> dict:
    stage1 = outcomes.iloc[: design.n1]
    return {
        "n_patients": n_patients,
        "n_evaluable": len(outcomes),
        "n_success": int(outcomes.sum()),
        "n_not_evaluable": n_patients - len(outcomes),
        "stage1_evaluable": len(stage1),
        "stage1_success": int(stage1.sum()),
    }
