"""The config schema knows exactly the keys each step's settings understand, and the shipped config is valid."""

from __future__ import annotations

import dataclasses

import jsonschema
import pytest
import yaml

from conftest import REPO
from mrdtrack.calling.background import BackgroundSettings
from mrdtrack.calling.caller import CallSettings
from mrdtrack.counting.molecules import CountSettings
from mrdtrack.inputs.config import config_problems
from mrdtrack.inputs.panel import PanelSettings
from mrdtrack.inputs.sheets import DEFAULT_COHORTS, load_schema
from mrdtrack.logs import UserFacingError
from mrdtrack.outcomes.clinical import ClinicalSettings
from mrdtrack.outcomes.prediction import PredictionSettings
from mrdtrack.outcomes.survival import SurvivalSettings
from mrdtrack.report import ReportSettings
from mrdtrack.settings import ConfigError, StepSettings, read_settings, schema_problems, write_settings

SECTIONS = {
    "panel": PanelSettings,
    "counting": CountSettings,
    "background": BackgroundSettings,
    "calling": CallSettings,
    "clinical_join": ClinicalSettings,
    "survival": SurvivalSettings,
    "report": ReportSettings,
}


@pytest.mark.parametrize("section", SECTIONS)
def test_schema_section_lists_every_setting_and_nothing_else(section):
    properties = load_schema("config")["properties"][section]["properties"]
    assert set(properties) == {f.name for f in dataclasses.fields(SECTIONS[section])}


def test_prediction_settings_nest_under_survival():
    properties = load_schema("config")["properties"]["survival"]["properties"]["prediction"]["properties"]
    assert set(properties) == {f.name for f in dataclasses.fields(PredictionSettings)}


def test_shipped_config_is_valid():
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    jsonschema.Draft202012Validator(load_schema("config")).validate(config)


def test_a_misspelt_key_is_rejected():
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["calling"]["false_positve_rate"] = 0.05
    errors = list(jsonschema.Draft202012Validator(load_schema("config")).iter_errors(config))
    assert any("false_positve_rate" in e.message for e in errors)


def test_every_config_key_is_documented():
    readme = (REPO / "config" / "README.md").read_text()
    for section, settings in SECTIONS.items():
        for field in dataclasses.fields(settings):
            assert f"`{field.name}`" in readme, f"{section}.{field.name} is not in config/README.md"


# ----- one settings convention (mrdtrack.settings) ---------------------------------------------------------
@pytest.mark.parametrize("section", SECTIONS)
def test_every_section_is_built_one_way_and_its_defaults_pass_its_schema(section):
    settings = SECTIONS[section]
    assert issubclass(settings, StepSettings) and section == settings.SECTION
    assert settings.from_config(None) == settings.from_config({}) == settings()
    assert schema_problems(section, settings().to_dict()) == []


@pytest.mark.parametrize("section", SECTIONS)
def test_an_unknown_key_is_an_error_naming_the_section_the_key_and_the_valid_keys(section):
    with pytest.raises(ConfigError) as error:
        SECTIONS[section].from_config({"no_such_key": 1})
    valid = ", ".join(sorted(f.name for f in dataclasses.fields(SECTIONS[section])))
    assert f"unknown key '{section}.no_such_key'; valid keys of {section}: {valid}" in str(error.value)


def test_every_bad_value_is_listed_at_once_from_the_schema_ranges_and_enums():
    with pytest.raises(ConfigError) as error:
        CallSettings.from_config({"false_positive_rate": 0.7, "min_loci": 0, "p_value_method": "exact"})
    assert str(error.value).splitlines()[1:] == [
        "  - calling.false_positive_rate: 0.7 is greater than the maximum of 0.5",
        "  - calling.min_loci: 0 is less than the minimum of 1",
        "  - calling.p_value_method: 'exact' is not one of ['auto', 'asymptotic', 'monte_carlo']",
    ]


def test_nested_sections_name_their_own_keys_and_rules_between_keys_are_checked_too():
    with pytest.raises(
        ConfigError, match="unknown key 'survival.prediction.n_split'; valid keys of survival"
    ):
        SurvivalSettings.from_config({"prediction": {"n_split": 3}})
    with pytest.raises(ConfigError, match=r"survival.prediction.n_splits: 1 is less than the minimum of 2"):
        SurvivalSettings.from_config({"prediction": {"n_splits": 1}})
    with pytest.raises(ConfigError, match=r"p0 \(0.7\) must be below p1 \(0.5\)"):
        SurvivalSettings.from_config({"p0": 0.7, "p1": 0.5})
    with pytest.raises(ConfigError, match="merge_mates: false counts reads"):
        CountSettings.from_config({"merge_mates": False, "dedup": "umi"})


def test_a_config_error_is_a_message_for_people_and_a_value_error():
    with pytest.raises(UserFacingError) as error:
        BackgroundSettings.from_config({"noisy_max_p": 2})
    assert isinstance(error.value, ValueError)
    with pytest.raises(ConfigError, match="'calling' must be a mapping"):
        CallSettings.from_config("config/calling.yaml")


def test_yaml_exponents_read_as_text_still_mean_numbers():
    assert yaml.safe_load("noisy_max_p: 1e-6") == {"noisy_max_p": "1e-6"}  # YAML 1.1, as Snakemake reads it
    assert BackgroundSettings.from_config({"noisy_max_p": "1e-6"}).noisy_max_p == 1e-6
    with pytest.raises(ConfigError, match="background.noisy_max_p: 'tiny' is not of type 'number'"):
        BackgroundSettings.from_config({"noisy_max_p": "tiny"})


def test_recorded_settings_read_back_equal(tmp_path):
    used = [CountSettings(min_mapq=30), SurvivalSettings(landmarks_months=(6.0,), covariates=("age",))]
    write_settings(tmp_path / "settings.json", *used)
    recorded = read_settings(tmp_path / "settings.json")
    assert set(recorded) == {"counting", "survival"}
    assert CountSettings.from_recorded(recorded["counting"]) == used[0]
    assert SurvivalSettings.from_recorded(recorded["survival"]) == used[1]


def test_each_step_records_its_settings_beside_its_outputs_and_the_report_reads_those():
    rules = {path.name: path.read_text() for path in (REPO / "workflow" / "rules").glob("*.smk")}
    for folder in ("background", "mrd", "clinical", "survival"):
        assert f'settings="results/{folder}/settings.json"' in "".join(rules.values())
        assert f'"results/{folder}/settings.json",' in rules["report.smk"]
    assert "settings_record(settings)" in (REPO / "workflow/scripts/count_molecules.py").read_text()
    assert not (
        REPO / "src/mrdtrack/report/defaults.py"
    ).exists()  # no more importing the producers' defaults


# ----- the config as a whole (mrdtrack.inputs.config) ------------------------------------------------------
def test_the_shipped_config_has_no_problem_and_its_cohorts_are_the_default_ones():
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    assert config_problems(config, "config/config.yaml") == []
    clinical = (REPO / "test_data" / "clinical.tsv").read_text().splitlines()
    assert {line.split("\t")[1] for line in clinical[1:]} == set(DEFAULT_COHORTS)


def test_every_top_level_key_and_sample_sheet_column_is_documented_and_described():
    readme = (REPO / "config" / "README.md").read_text()
    for schema in ("config", "samples"):
        for key, spec in load_schema(schema)["properties"].items():
            assert f"`{key}`" in readme, f"{schema} key {key} is not in config/README.md"
            if key not in SECTIONS:
                assert spec.get("description"), f"{schema} key {key} has no description in its schema"


def test_an_unknown_key_is_named_with_the_valid_keys_of_its_level_and_the_closest_one():
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["survival"]["predictoin"] = {"n_splits": 3}
    [problem] = config_problems(config, "c.yaml")
    valid = ", ".join(sorted(load_schema("config")["properties"]["survival"]["properties"]))
    assert str(problem) == (
        f"c.yaml: unknown key 'survival.predictoin' (did you mean 'prediction'?); valid keys of survival: {valid}. "
        "Fix: correct the key's spelling or remove it (config/README.md)"
    )


def test_cohort_settings_must_name_a_declared_cohort():
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["cohorts"] = ["A", "B"]
    config["survival"]["design_cohort"] = "stop"
    config["survival"]["prediction"] = {"cohort": "B"}
    assert [str(p) for p in config_problems(config, "c.yaml")] == [
        "c.yaml: survival.design_cohort: 'stop' is not one of the cohorts: A, B. "
        "Fix: name a cohort listed under `cohorts` (case matters)"
    ]
