"""PipelineConfig: defaults valid, from_params rejects unknown keys and bad values by name."""

from __future__ import annotations

import dataclasses

import pytest

from models.config import PipelineConfig


def test_defaults_round_trip_through_params() -> None:
    cfg = PipelineConfig()
    assert PipelineConfig.from_params(cfg.to_dict()) == cfg
    assert PipelineConfig.from_params(None) == cfg
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.rounds = 3  # type: ignore[misc]


def test_from_params_coerces_json_numbers() -> None:
    cfg = PipelineConfig.from_params({"rounds": 3.0, "lambda_adv": 0, "device": "cpu"})
    assert cfg.rounds == 3 and isinstance(cfg.rounds, int)
    assert cfg.lambda_adv == 0.0 and isinstance(cfg.lambda_adv, float)


def test_epochs_sets_every_stage_unless_named() -> None:
    cfg = PipelineConfig.from_params({"epochs": 4, "epochs_pnet": 7})
    assert (cfg.epochs_lnet, cfg.epochs_pnet, cfg.epochs_round) == (4, 7, 4)


def test_unknown_keys_are_named() -> None:
    with pytest.raises(ValueError, match=r"unknown parameter.*bogus.*lamda_adv"):
        PipelineConfig.from_params({"bogus": 1, "lamda_adv": 0.1, "rounds": 1})


@pytest.mark.parametrize(
    "params,name",
    [
        ({"rounds": -1}, "rounds"),
        ({"rounds": 1.5}, "rounds"),
        ({"rounds": True}, "rounds"),
        ({"image_size": "big"}, "image_size"),
        ({"device": "tpu"}, "device"),
        ({"lambda_pl": float("nan")}, "lambda_pl"),
        ({"tau_min": 0.95, "tau_max": 0.5}, "tau_min"),
        ({"cam_pool": "mean"}, "cam_pool"),
        ({"cam_rule": "max"}, "cam_rule"),
    ],
)
def test_bad_values_are_named(params: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        PipelineConfig.from_params(params)
