"""The config schema knows exactly the keys each step's settings understand, describes each of them, and agrees
with config/README.md key for key and default for default; the shipped config is valid."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import jsonschema
import pytest
import yaml

from conftest import REPO
from mrdtrack.calling import BackgroundSettings, CallSettings
from mrdtrack.counting import CountSettings
from mrdtrack.inputs import PanelSettings
from mrdtrack.inputs.config import config_problems
from mrdtrack.inputs.panel import DEFAULT_CHIP_GENES
from mrdtrack.inputs.sheets import DEFAULT_COHORTS, load_schema
from mrdtrack.logs import UserFacingError
from mrdtrack.outcomes import ClinicalSettings, PredictionSettings, SurvivalSettings
from mrdtrack.report import ReportSettings
from mrdtrack.settings import (
    ConfigError,
    StepSettings,
    config_schema,
    read_settings,
    schema_problems,
    write_settings,
)

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
    properties = config_schema()["properties"][section]["properties"]
    assert set(properties) == {f.name for f in dataclasses.fields(SECTIONS[section])}


def test_prediction_settings_nest_under_survival():
    properties = config_schema()["properties"]["survival"]["properties"]["prediction"]["properties"]
    assert set(properties) == {f.name for f in dataclasses.fields(PredictionSettings)}


def test_shipped_config_is_valid():
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    jsonschema.Draft202012Validator(config_schema()).validate(config)


def test_a_misspelt_key_is_rejected():
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["calling"]["false_positve_rate"] = 0.05
    errors = list(jsonschema.Draft202012Validator(config_schema()).iter_errors(config))
    assert any("false_positve_rate" in e.message for e in errors)


# ----- the schema and config/README.md describe the same keys ------------------------------------------------
README = REPO / "config" / "README.md"
SETTINGS = {**SECTIONS, "survival.prediction": PredictionSettings}
# Defaults config/README.md states in words: a list below the table, a value taken from the top-level keys, or
# one derived from the data. Every other default it states is checked against the settings classes.
DEFAULTS_IN_WORDS = {
    "panel.chip_genes", "survival.prediction", "report.study_name", "report.report_date", "report.tf_floor",
    "report.risk_table_step_months",
}  # fmt: skip
WORDS = object()  # a README default written in words, not as a value


def schema_keys(schema: dict[str, Any], prefix: str = "") -> dict[str, dict[str, Any]]:
    """Every property of the schema, at every level, by its dotted path."""
    keys = {}
    for name, spec in schema.get("properties", {}).items():
        keys[prefix + name] = spec
        keys |= schema_keys(spec, f"{prefix}{name}.")
    return keys


def table_cells(line: str) -> list[str]:
    """The cells of a Markdown table row; a `|` inside a code span is text."""
    cells, cell, in_code = [], "", False
    for char in line.strip().strip("|"):
        if char == "`":
            in_code = not in_code
        if char == "|" and not in_code:
            cells, cell = [*cells, cell.strip()], ""
        else:
            cell += char
    return [*cells, cell.strip()]


def table_section(heading: str) -> str:
    """The dotted section a key table documents: the first code span of the heading above it ('' at the top)."""
    if heading == "## Top-level keys":
        return ""
    spans = re.findall(r"`([^`]+)`", heading)
    assert spans, f"the key table under {heading!r} does not name its config section"
    return "".join(f"{word.rstrip(':')}." for word in spans[0].split())


def readme_keys(text: str) -> dict[str, dict[str, str]]:
    """The rows of config/README.md's key tables (header `| key | ...`) by dotted key, cells by column."""
    keys: dict[str, dict[str, str]] = {}
    heading, columns = "", []
    for line in text.splitlines():
        if line.startswith("#"):
            heading, columns = line, []
        elif line.startswith("| key |"):
            columns = table_cells(line)
        elif columns and line.startswith("|") and not line.startswith("| ---"):
            row = dict(zip(columns, table_cells(line), strict=True))
            for name in re.findall(r"`([^`]+)`", row["key"]):
                key = table_section(heading) + name
                assert key not in keys, f"{key} is documented twice in config/README.md"
                keys[key] = row
        elif not line.startswith("|"):
            columns = []
    return keys


def stated_value(cell: str) -> Any:
    """A README default as a value: a whole-cell code span or a bare number, true, false or null; else WORDS."""
    code = re.fullmatch(r"`([^`]*)`", cell)
    if code is None and not re.fullmatch(r"[-+.0-9e]+|true|false|null", cell):
        return WORDS
    text = code.group(1) if code else cell
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:  # `:` and other bare punctuation are text
        return text
    if isinstance(value, str):  # YAML 1.1 reads 1e-6 as text
        try:
            return float(value)
        except ValueError:
            return value
    return value


def section_of(key: str) -> str:
    return key.rsplit(".", 1)[0] if "." in key else ""


def settings_default(key: str) -> Any:
    section, name = section_of(key), key.rsplit(".", 1)[-1]
    field = next(f for f in dataclasses.fields(SETTINGS[section]) if f.name == name)
    value = field.default_factory() if field.default is dataclasses.MISSING else field.default
    return list(value) if isinstance(value, tuple) else value


def test_every_schema_key_at_every_level_has_a_description():
    keys = schema_keys(config_schema())
    assert len(keys) > 100
    undescribed = sorted(key for key, spec in keys.items() if not str(spec.get("description", "")).strip())
    assert undescribed == []


def test_config_readme_documents_every_schema_key_and_no_other():
    documented, known = set(readme_keys(README.read_text())), set(schema_keys(config_schema()))
    assert sorted(known - documented) == [], "in the schema, not in config/README.md"
    assert sorted(documented - known) == [], "in config/README.md, not in the schema"


def test_config_readme_says_which_top_level_keys_are_required_as_the_schema_does():
    rows = {key: row for key, row in readme_keys(README.read_text()).items() if "." not in key}
    required = {key for key, row in rows.items() if row["required"] == "yes"}
    assert required == set(config_schema()["required"])
    assert {row["required"] for row in rows.values()} == {"yes", "no"}


def test_config_readme_defaults_are_the_settings_defaults():
    rows = {key: row for key, row in readme_keys(README.read_text()).items() if "default" in row}
    assert set(rows) == {key for key in schema_keys(config_schema()) if section_of(key) in SETTINGS}
    stated = {key: stated_value(row["default"]) for key, row in rows.items()}
    assert {key for key, value in stated.items() if value is WORDS} == DEFAULTS_IN_WORDS
    wrong = {
        key: (value, settings_default(key))
        for key, value in stated.items()
        if value is not WORDS and value != settings_default(key)
    }
    assert wrong == {}, "config/README.md default vs the settings class default"


def test_schema_defaults_are_the_settings_defaults():
    given = {key: spec["default"] for key, spec in schema_keys(config_schema()).items() if "default" in spec}
    step_keys = {key: value for key, value in given.items() if section_of(key) in SETTINGS}
    assert step_keys, "the schema gives no step setting a default: nothing to compare"
    # a nested section's default is a mapping of its own keys' values ({}: all their defaults)
    as_set = {key: SETTINGS[key].from_config(v) if key in SETTINGS else v for key, v in step_keys.items()}
    assert {key: value for key, value in as_set.items() if value != settings_default(key)} == {}


def test_config_readme_lists_the_default_chip_genes():
    text = README.read_text()
    paragraph = text[text.index("The default list:") : text.index("It is a judgement")]
    listed = {gene.strip() for span in re.findall(r"`([^`]+)`", paragraph) for gene in span.split(",")}
    assert listed == set(DEFAULT_CHIP_GENES)


def test_the_readme_reader_sees_a_key_in_the_wrong_section_and_a_wrong_default():
    text = "## `report:` configuration\n\n| key | default | meaning |\n| --- | --- | --- |\n| `title` | `x` | a\n"
    assert readme_keys(text) == {"report.title": {"key": "`title`", "default": "`x`", "meaning": "a"}}
    assert stated_value("`x`") != settings_default("report.title")
    assert [stated_value(c) for c in ("`1e-6`", "20", "`[3, 6]`", "null", "`:`")] == [
        1e-6,
        20,
        [3, 6],
        None,
        ":",
    ]
    assert stated_value("automatic") is WORDS and table_cells("| `a|b` | c |") == ["`a|b`", "c"]


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


def test_every_sample_sheet_column_is_documented_and_described():
    readme = README.read_text()
    for column, spec in load_schema("samples")["properties"].items():
        assert f"| `{column}` |" in readme, f"sample sheet column {column} is not in config/README.md"
        assert spec.get("description"), f"sample sheet column {column} has no description in its schema"


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
