"""Config files: typed values, overrides, unknown keys, the resolved copy of a run."""

from __future__ import annotations

import pytest

from hscnet.common.errors import InputError
from hscnet.config import Config, config_from_dict, dataclass_from_yaml, load_config, save_config


def test_values_overrides_and_round_trip(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data:\n  num_clips: 512\n  feature_dim: 4096\nmodel:\n  depths: [3, 3, 3]\nrun_dir: runs/x\n")
    config = load_config(path, ["train.lr=2e-4", "model.word_level=false", "eval.thresholds=[0.1, 0.3, 0.5]"])
    assert config.data.num_clips == 512 and config.model.depths == [3, 3, 3]
    assert config.train.lr == pytest.approx(2e-4) and isinstance(config.train.lr, float)
    assert config.model.word_level is False and config.eval.thresholds == [0.1, 0.3, 0.5]
    save_config(config, tmp_path / "resolved.yaml")
    assert load_config(tmp_path / "resolved.yaml") == config


@pytest.mark.parametrize(
    ("text", "overrides", "message"),
    [
        ("model:\n  hiden_dim: 128\n", [], r"c\.yaml: unknown config key 'model\.hiden_dim'"),
        (
            "",
            ["train.learning_rate=1"],
            r"^override 'train\.learning_rate=1': unknown config key",
        ),
        ("", ["colour=red"], r"^override 'colour=red': unknown config key 'colour'"),
        (
            "",
            ["train.epochs=8", "train.epochs=many"],
            r"^override 'train\.epochs=many': config key 'train\.epochs'",
        ),
        ("train:\n  epochs: many\n", [], r"config key 'train\.epochs' must be int, got 'many'"),
        ("model:\n  word_level: 1\n", [], r"'model\.word_level' must be bool"),
        ("model:\n  depths: 3\n", [], r"'model\.depths' must be a list"),
        ("data: [1, 2]\n", [], r"'data' must be a mapping"),
        ("", ["train.lr"], r"expected key=value"),
        ("model: {depths: [1, 1\n", [], r"c\.yaml: not valid YAML"),
    ],
)
def test_bad_configs_are_one_clear_error(tmp_path, text, overrides, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        load_config(path, overrides)


def test_missing_config_file(tmp_path):
    with pytest.raises(InputError, match="config file not found"):
        load_config(tmp_path / "absent.yaml")


def test_shipped_configs_load():
    from conftest import REPO

    from hscnet.extract.settings import ExtractSettings

    training = sorted(p for p in (REPO / "configs").glob("*.yaml") if p.name != "extract.yaml")
    assert [p.name for p in training] == [
        "activitynet.yaml",
        "demo.yaml",
        "own-large.yaml",
        "own-small.yaml",
        "smoke.yaml",
        "tacos.yaml",
    ]
    for path in training:
        assert isinstance(load_config(path), Config), path
    assert dataclass_from_yaml(ExtractSettings, REPO / "configs" / "extract.yaml") == ExtractSettings()
    assert config_from_dict({}) == Config()


def test_training_precision_is_float32_unless_bf16_is_asked_for():
    import torch

    from hscnet.common.devices import autocast_dtype

    for device in (torch.device("cpu"), torch.device("cuda")):
        assert autocast_dtype(Config().train.precision, device) is None
        assert autocast_dtype("bf16", device) is torch.bfloat16
    with pytest.raises(InputError, match="unknown precision 'fp8'"):
        autocast_dtype("fp8", torch.device("cpu"))
