"""extract/settings.py: settings derive the spec, a spec gives back its settings, one meaning per sentinel."""

from __future__ import annotations

import pytest

from hscnet.common.errors import InputError
from hscnet.config import dataclass_from_yaml
from hscnet.extract.backbones import BACKBONES
from hscnet.extract.settings import ExtractSettings


@pytest.mark.parametrize(
    "settings",
    [ExtractSettings(), ExtractSettings(stride=8, layer="fc7"), ExtractSettings(sample_fps=5.0),
     ExtractSettings(backbone="x3d_m"), ExtractSettings(backbone="slowfast_r50", stride=16)],
)  # fmt: skip
def test_a_spec_gives_back_the_settings_that_remake_it(settings):
    spec = settings.spec()
    assert ExtractSettings.from_spec(spec).spec() == spec


def test_none_is_the_backbones_and_zero_frames_per_second_is_every_frame(tmp_path):
    c3d, x3d = ExtractSettings().spec(), ExtractSettings(backbone="x3d_m").spec()
    assert (c3d.clip_len, c3d.stride, c3d.sample_fps) == (16, 16, 0.0)  # C3D reads every frame
    assert (x3d.clip_len, x3d.stride, x3d.sample_fps) == (16, 16, BACKBONES["x3d_m"].sample_fps)
    assert ExtractSettings(backbone="x3d_m", sample_fps=0.0).spec().sample_fps == 0.0  # every frame, asked for
    (tmp_path / "extract.yaml").write_text("stride: null\nsample_fps: null\n")
    assert dataclass_from_yaml(ExtractSettings, tmp_path / "extract.yaml") == ExtractSettings()
    wrongs = [
        ({"stride": 0}, "stride must be a positive number"),
        ({"clip_len": -1}, "clip_len must be a positive number"),
        ({"sample_fps": -2.0}, "sample_fps must be 0"),
        ({"backbone": "x3d_m", "clip_len": 8}, "x3d_m takes clips of 16 frames, not 8"),
    ]
    for wrong, message in wrongs:
        with pytest.raises(InputError, match=message):
            ExtractSettings(**wrong).spec()
