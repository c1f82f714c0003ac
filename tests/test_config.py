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
from mrdtrack.inputs.panel import PanelSettings
from mrdtrack.inputs.sheets import load_schema
from mrdtrack.outcomes.clinical import ClinicalSettings
from mrdtrack.outcomes.prediction import PredictionSettings
from mrdtrack.outcomes.survival import SurvivalSettings
from mrdtrack.report import ReportSettings

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
