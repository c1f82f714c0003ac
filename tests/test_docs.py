"""The documentation states what is true today: docs/demo.md's and the README's demo figures are those of the
data `mrdtrack demo` generates, and the README reads without the project's history (issue numbers, stages)."""

from __future__ import annotations

import math
import re

import pandas as pd
import pytest
from lifelines import KaplanMeierFitter

from conftest import REPO
from mrdtrack.simulation import demo
from mrdtrack.vocabulary import DAYS_PER_MONTH

DEMO_DOC = (REPO / "docs" / "demo.md").read_text()
README = (REPO / "README.md").read_text()
DOCS = {path.relative_to(REPO).as_posix(): path.read_text() for path in
        [REPO / "README.md", REPO / "config" / "README.md", *sorted((REPO / "docs").glob("*.md"))]}  # fmt: skip


def stated(pattern: str, text: str = DEMO_DOC) -> tuple[str, ...]:
    """The numbers a document states in the sentence `pattern` matches (a failure when it says no such thing)."""
    found = re.search(pattern, " ".join(text.split()))
    assert found, f"the documentation no longer says /{pattern}/: update this test with it"
    return tuple(group.replace(",", "") for group in found.groups())


@pytest.fixture(scope="module")
def demo_sheets(tmp_path_factory, trial_plan: demo.DemoPlan) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The default demo's sample sheets (all batches) and clinical sheet, as `mrdtrack demo` writes them (the
    sheets need no BAM: they are written from the plan)."""
    folder = tmp_path_factory.mktemp("demo_sheets")
    demo.write_sheets(folder, trial_plan)
    samples = pd.concat(pd.read_csv(sheet, sep="\t") for sheet in sorted(folder.glob("batch*/samples.tsv")))
    return samples, pd.read_csv(folder / "clinical.tsv", sep="\t")


def one_year_pfs_percent(clinical: pd.DataFrame, cohort: str) -> int:
    rows = clinical[clinical["cohort"] == cohort]
    days = (pd.to_datetime(rows["pfs_date"]) - pd.to_datetime(rows["enrollment_date"])).dt.days
    fitter = KaplanMeierFitter().fit(days / DAYS_PER_MONTH, rows["pfs_event"])
    return round(100 * float(fitter.survival_function_at_times(12.0).iloc[0]))


def test_demo_doc_states_the_cohorts_patients_and_follow_up_of_the_default_demo(demo_sheets, trial_plan):
    _, clinical = demo_sheets
    total, stop, cont = stated(r"\| patients \| (\d+): (\d+) stop anti-HER2 therapy, (\d+) continue it")
    assert int(total) == len(clinical)
    assert clinical["cohort"].value_counts().to_dict() == {"stop": int(stop), "continue": int(cont)}
    cutoff, low, high = stated(r"data cutoff (\d{4}-\d\d-\d\d) \((\d+)-(\d+) months\)")
    assert cutoff == trial_plan.study.data_cutoff.isoformat()
    months = (
        pd.Timestamp(trial_plan.study.data_cutoff) - pd.to_datetime(clinical["enrollment_date"])
    ).dt.days
    months = months / DAYS_PER_MONTH
    assert (round(months.min()), round(months.max())) == (int(low), int(high))
    smallest, largest = stated(r"\((\d+)-(\d+) SNVs per patient")
    sizes = [len(panel) for panel in trial_plan.panels.values()]
    assert (min(sizes), max(sizes)) == (int(smallest), int(largest))


def test_demo_doc_states_the_samples_and_events_of_the_default_demo(demo_sheets):
    samples, clinical = demo_sheets
    plasma, normal, control, stop_events, stop_pfs, continue_events, continue_pfs = stated(
        r"At the default seed: (\d+) plasma, (\d+) normal and (\d+) control samples; (\d+) progressions in "
        r"`stop` \(1-year PFS about (\d+)%\) and (\d+) in `continue` \(about (\d+)%\)"
    )
    assert samples["sample_type"].value_counts().to_dict() == {
        "plasma": int(plasma), "normal": int(normal), "control": int(control)
    }  # fmt: skip
    events = clinical.groupby("cohort")["pfs_event"].sum()
    assert (events["stop"], events["continue"]) == (int(stop_events), int(continue_events))
    assert one_year_pfs_percent(clinical, "stop") == int(stop_pfs)
    assert one_year_pfs_percent(clinical, "continue") == int(continue_pfs)


def test_demo_doc_states_the_pools_special_loci_and_jobs_of_the_default_demo(demo_sheets, trial_plan):
    samples, _ = demo_sheets
    pools = {p.pool for p in trial_plan.patients}
    words = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "eight": 8}
    assert int(stated(r"number of pools \((\d+)\)")[0]) == len(pools)
    assert words[stated(r"into capture pools of (\w+)")[0]] == trial_plan.study.pool_size
    chip, noisy, per_pools = stated(r"(\w+) patients with a matched normal carry a CHIP variant.*?(\w+) loci \(one "
                                    r"per (\w+) pools\)")  # fmt: skip
    assert len(trial_plan.chip) == words[chip] and len(trial_plan.noise) == words[noisy]
    assert trial_plan.study.noisy_loci_per_pools == words[per_pools]
    jobs, counting, calling, per_job = stated(
        r"the run has (\d+) jobs, because the demo's config sets `samples_per_job: (?:\d+)` \((\d+) counting jobs, "
        r"(\d+) calling jobs of up to (\d+) samples each"
    )
    assert int(per_job) == demo.demo_config("demo", trial_plan)["samples_per_job"]
    n_plasma = int((samples["sample_type"] == "plasma").sum())
    assert int(counting) == math.ceil(len(samples) / int(per_job))
    assert int(calling) == math.ceil(n_plasma / int(per_job))
    # One job per sample instead: every chunk becomes one job per sample it holds, the cohort steps stay.
    (one_per_sample,) = stated(r"the same run has ([\d,]+) jobs")
    assert int(one_per_sample) - int(jobs) == len(samples) - int(counting) + n_plasma - int(calling)


def test_readme_states_the_default_demos_size(demo_sheets):
    samples, clinical = demo_sheets
    patients, stop, cont = stated(r"(\d+) patients in two cohorts \((\d+) stop, (\d+) continue\)", README)
    assert (int(patients), int(stop), int(cont)) == (
        len(clinical), (clinical["cohort"] == "stop").sum(), (clinical["cohort"] == "continue").sum()
    )  # fmt: skip
    counted, calls = stated(r"(\d+) counted samples, (\d+) plasma calls", README)
    assert (int(counted), int(calls)) == (len(samples), (samples["sample_type"] == "plasma").sum())


@pytest.mark.parametrize("name", sorted(DOCS))
def test_docs_carry_no_issue_numbers_or_development_stages(name):
    """Written for a reader who never saw the project's history: no issue numbers such as `#13`, no
    development stages such as "stop 17" (a colour such as `#0072B2` is no issue number, "stop 1-year PFS" no
    stage)."""
    text = DOCS[name]
    assert re.findall(r"#\d+\b", text) == []
    assert re.findall(r"\b(?:stop|session)\s+\d+\b(?!-)", text, flags=re.IGNORECASE) == []
