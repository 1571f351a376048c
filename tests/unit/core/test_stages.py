"""The stage graph is the one declaration both executors run: every declared stage has its runner, every
setting it names exists in the configuration, and the ensemble's steps come from the same list."""

from __future__ import annotations

from dataclasses import fields

import pytest

from imgdiff_rt import stages as S
from imgdiff_rt.config.options import BY_NAME
from imgdiff_rt.detectors.model.detector import ModelDetector, SegmentConfig
from imgdiff_rt.errors import UsageError
from imgdiff_rt.pipeline import Pipeline
from imgdiff_rt.triton.config import ensemble_config
from imgdiff_rt.triton.glue import GLUE, GlueParams
from imgdiff_rt.triton.repository import default_specs, refuse_unserved

_PARTS = {"segment": {f.name for f in fields(SegmentConfig)}}


@pytest.mark.parametrize("stage", S.STAGES, ids=lambda s: s.name)
def test_every_setting_a_stage_names_is_in_the_configuration(stage):
    for name in stage.settings:
        part, _, field = name.rpartition(".")
        assert (field in _PARTS[part]) if part else (name in BY_NAME), f"{stage.name}: unknown setting {name!r}"


def test_each_executor_has_a_runner_for_each_of_its_stages_and_no_other():
    assert {n[len("stage_"):] for n in dir(Pipeline) if n.startswith("stage_")} == {s.name for s in S.PAIR_STAGES}
    assert {n[len("stage_"):] for n in dir(ModelDetector) if n.startswith("stage_")} == \
        {s.name for s in S.MODEL_STAGES}


def test_stage_names_are_unique_and_the_served_models_exist():
    assert len(S.BY_NAME) == len(S.STAGES)
    graphs = set(default_specs())
    for stage in S.MODEL_STAGES:
        assert set(stage.served_by) <= set(GLUE) | graphs, stage.name


def test_the_ensemble_steps_are_the_served_models_in_stage_order():
    assert S.ensemble_models() == ("preprocess", "segmenter", "proposals", "clip_image", "filter")
    text = ensemble_config(default_specs(), {})
    steps = [line.split('"')[1] for line in text.splitlines() if "model_name" in line]
    assert tuple(steps) == S.ensemble_models()


def test_the_ensemble_refuses_by_name_a_setting_of_a_stage_it_does_not_run():
    assert S.unserved_settings() == ("pair_gate",)
    refuse_unserved(SegmentConfig())  # defaults: nothing to refuse
    refuse_unserved(SegmentConfig(pixel_gate=None, clip_threshold=0.5))  # stages the ensemble runs
    with pytest.raises(UsageError, match="pair_gate: the imgdiff_detect ensemble does not run") as err:
        refuse_unserved(SegmentConfig(pair_gate=(0.5, 0.9)))
    assert err.value.parameter == "pair_gate"


@pytest.mark.parametrize("gate", [None, 0.0, 2.5])
def test_the_glue_carries_the_pixel_gate_both_ways(gate):
    params = GlueParams(segment=SegmentConfig(pixel_gate=gate))
    text = params.as_strings()
    assert text["pixel_gate"] == ("none" if gate is None else repr(gate))
    assert GlueParams.from_strings(text) == params
