"""extract/c3d.py: weights, precision and layout per CPU, feature layers, the ActivityNet PCA."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import solid_frames

from hscnet.common.errors import InputError
from hscnet.extract import precision
from hscnet.extract.backbones import C3D_LAYERS
from hscnet.extract.c3d import C3D, load_c3d
from hscnet.extract.encoders import build_encoder
from hscnet.extract.precision import cpu_prefers_bf16
from hscnet.extract.settings import ExtractSettings
from hscnet.extract.spec import FeatureSpec
from hscnet.extract.store import FeatureStore
from hscnet.extract.video import decode_clips
from hscnet.pipeline.extraction import extract_command
from hscnet.pipeline.synthetic import write_video


def test_c3d_weights_are_checked_key_by_key_and_shape_by_shape(tmp_path):
    torch.manual_seed(3)
    reference = C3D()
    torch.save(reference.state_dict(), tmp_path / "c3d.pickle")
    model, identity = load_c3d(tmp_path / "c3d.pickle")
    assert identity.startswith("c3d.pickle sha256:") and len(identity.split(":")[1]) == 64
    assert torch.equal(model.fc6.weight, reference.fc6.weight)
    state = reference.state_dict()
    del state["fc8.bias"]
    torch.save(state, tmp_path / "partial.pickle")
    with pytest.raises(InputError, match=r"partial\.pickle: not C3D Sports-1M weights \(missing \['fc8\.bias'\]"):
        load_c3d(tmp_path / "partial.pickle")
    state = reference.state_dict()
    state["conv1.weight"] = torch.zeros(64, 3, 3, 3, 4)
    torch.save(state, tmp_path / "shape.pickle")
    with pytest.raises(InputError, match=r"conv1\.weight has shape \(64, 3, 3, 3, 4\), C3D expects \(64, 3, 3, 3, 3\)"):
        load_c3d(tmp_path / "shape.pickle")
    random_a, random_b = load_c3d(None)[0], load_c3d(None)[0]
    assert torch.equal(random_a.conv1.weight, random_b.conv1.weight)  # seeded


def test_float32_runs_channels_last_3d_and_equals_the_contiguous_layout(charades, monkeypatch):
    with monkeypatch.context() as patch:
        # oneDNN reads this cap once, at its first convolution: set only while no convolution runs.
        patch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
        assert not cpu_prefers_bf16()  # a cap below bf16 counts as no bf16
    monkeypatch.setattr(precision, "cpu_prefers_bf16", lambda: False)  # as on a CPU where float32 is faster
    encoder = build_encoder(ExtractSettings(device="cpu"))
    assert (encoder.precision, encoder.memory_format) == ("fp32", torch.channels_last_3d)
    assert "fp32, channels_last_3d" in encoder.describe()
    clips = next(decode_clips(charades, FeatureSpec(), chunk_clips=2))
    contiguous = build_encoder(ExtractSettings(device="cpu", precision="fp32"))
    contiguous.memory_format = torch.contiguous_format  # the layout C3D ran in before channels_last_3d
    contiguous.model = contiguous.model.to(memory_format=torch.contiguous_format)
    channels_last, reference = encoder.encode(clips), contiguous.encode(clips)
    assert np.linalg.norm(channels_last - reference) / np.linalg.norm(reference) < 1e-5  # summation order only


@pytest.mark.skipif(not cpu_prefers_bf16(), reason="this CPU runs C3D faster in float32")
def test_bf16_channels_last_matches_float32_within_about_half_a_percent(charades):
    clips = next(decode_clips(charades, FeatureSpec(), chunk_clips=4))
    fp32 = build_encoder(ExtractSettings(precision="fp32", device="cpu")).encode(clips)
    bf16 = build_encoder(ExtractSettings(precision="bf16", device="cpu")).encode(clips)
    assert build_encoder(ExtractSettings(device="cpu")).precision == "bf16"  # where bf16 is native, auto picks it
    assert np.linalg.norm(bf16 - fp32) / np.linalg.norm(fp32) < 0.005  # 0.49 % measured
    for layer, dim in C3D_LAYERS.items():
        assert build_encoder(ExtractSettings(layer=layer, device="cpu")).encode(clips[:1]).shape == (1, dim)


def test_the_activitynet_pca_projects_fc7_to_500_dimensions(charades, tmp_path):
    import h5py

    rng = np.random.default_rng(0)
    basis, mean = rng.standard_normal((4096, 600)).astype(np.float32), rng.random(4096).astype(np.float32)
    with h5py.File(tmp_path / "pca.hdf5", "w") as f:
        f["data/U"], f["data/S"], f["data/x_mean"] = basis, np.ones(600, np.float32), mean
    clips = next(decode_clips(charades, FeatureSpec(), chunk_clips=3))
    fc7 = build_encoder(ExtractSettings(layer="fc7")).encode(clips)
    projected = build_encoder(ExtractSettings(layer="fc7", pca=str(tmp_path / "pca.hdf5"))).encode(clips)
    expected = (fc7 - mean) @ basis[:, :500]
    assert projected.shape == (3, 500)
    assert np.linalg.norm(projected - expected) / np.linalg.norm(expected) < 1e-5  # float32 sums, in another order

    videos = tmp_path / "videos"
    videos.mkdir()
    write_video(videos / "grey.mp4", solid_frames(16, (99, 99, 99)), fps=10)
    flags = {"layer": "fc7", "pca": str(tmp_path / "pca.hdf5")}
    assert extract_command(videos, tmp_path / "store", None, flags, use_ray=False, progress=False) == 0
    store = FeatureStore(tmp_path / "store")
    assert store.read("grey").shape == (1, 500)
    assert store.spec().pca.startswith("pca.hdf5 sha256:") and store.spec().pca.endswith(" to 500")
    with pytest.raises(InputError, match=r"pca\.hdf5: U \(4096, 600\) .* do not project 8192-d features to 500"):
        build_encoder(ExtractSettings(layer="pool5", pca=str(tmp_path / "pca.hdf5")))
