"""extract/kinetics.py: the Kinetics backbones of pytorchvideo on a real video, their weights, their settings."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hscnet.common.errors import InputError
from hscnet.extract.backbones import BACKBONES, backbone
from hscnet.extract.encoders import build_encoder
from hscnet.extract.extractor import extract_video
from hscnet.extract.kinetics import KineticsEncoder, build_kinetics_model
from hscnet.extract.settings import ExtractSettings
from hscnet.extract.video import Geometry, decode_clips, probe


@pytest.mark.parametrize("name", ["x3d_m", "slowfast_r50", "r2plus1d_r50"])
def test_each_backbone_gives_finite_features_of_its_declared_size_from_the_real_video(charades, name):
    settings = ExtractSettings(backbone=name)
    spec = settings.spec()
    declared = backbone(name)
    assert (spec.backbone, spec.clip_len, spec.sample_fps, spec.dim) == (
        name, declared.clip_len, declared.sample_fps, declared.dim
    )  # fmt: skip
    info = probe(charades)
    assert Geometry.of(name, info) == Geometry(455, 256, 224)  # 480x270: short side 256, crop 224
    first = next(decode_clips(charades, spec, info, chunk_clips=1))  # one clip: these networks cost per clip
    assert first.shape == (1, declared.clip_len, 224, 224, 3)
    features = build_encoder(settings).encode(first)
    assert features.shape == (1, declared.dim) and features.dtype == np.float32 and np.isfinite(features).all()


def test_a_store_line_records_the_backbone_and_its_clip_count_follows_its_frame_rate(charades):
    settings = ExtractSettings(backbone="x3d_m")
    features, record = extract_video(charades, "charades", build_encoder(settings).encode, settings.spec())
    assert record.status == "ok" and record.spec.backbone == "x3d_m" and record.spec.sample_fps == 6.0
    assert features.shape == ((int(record.duration * 6) - 16) // 16 + 1, 2048) == (11, 2048)


def test_model_zoo_weights_load_with_every_key_checked(tmp_path, charades):
    torch.manual_seed(5)
    model = build_kinetics_model("x3d_m")
    torch.save({"model_state": model.state_dict(), "epoch": 1}, tmp_path / "X3D_M.pyth")
    clips = next(decode_clips(charades, ExtractSettings(backbone="x3d_m").spec(), chunk_clips=1))
    with_weights = KineticsEncoder(name="x3d_m", weights=str(tmp_path / "X3D_M.pyth"), device="cpu",
                                   precision="fp32", batch_size=1)  # fmt: skip
    model.blocks[-1].proj, model.blocks[-1].activation = torch.nn.Identity(), None
    expected = model.eval()(with_weights._inputs(clips)).detach().numpy()
    np.testing.assert_allclose(with_weights.encode(clips), expected, rtol=1e-4, atol=1e-5)

    state = build_kinetics_model("x3d_m").state_dict()
    state.pop(next(iter(state)))
    torch.save(state, tmp_path / "partial.pyth")
    with pytest.raises(InputError, match=r"partial\.pyth: not the x3d_m of pytorchvideo's model zoo: keys 1 missing"):
        KineticsEncoder(name="x3d_m", weights=str(tmp_path / "partial.pyth"), device="cpu", precision="fp32",
                        batch_size=1)  # fmt: skip
    torch.save({"model_state": np.random.default_rng(0)}, tmp_path / "payload.pyth")  # needs pickled code
    with pytest.raises(InputError, match=r"payload\.pyth: not a loadable x3d_m checkpoint: it holds objects other"):
        KineticsEncoder(name="x3d_m", weights=str(tmp_path / "payload.pyth"), device="cpu", precision="fp32",
                        batch_size=1)  # fmt: skip


def test_settings_a_backbone_cannot_take_are_refused():
    assert set(BACKBONES) == {"c3d", "x3d_m", "slowfast_r50", "r2plus1d_r50"}
    with pytest.raises(InputError, match="x3d_m takes clips of 16 frames, not 8"):
        ExtractSettings(backbone="x3d_m", clip_len=8).spec()
    with pytest.raises(InputError, match="slowfast_r50 gives its pooled features"):
        ExtractSettings(backbone="slowfast_r50", layer="fc7").spec()
    with pytest.raises(InputError, match="unknown backbone 'i3d'"):
        ExtractSettings(backbone="i3d").spec()
    assert ExtractSettings(backbone="x3d_m", stride=8, sample_fps=10).spec().stride == 8
    assert ExtractSettings().spec() == ExtractSettings(clip_len=16, stride=16, layer="fc6").spec()
