"""Raw video to features on real decoded video: decoding, C3D, the store, Ray orchestration."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from common.errors import InputError
from extract.c3d import C3D, LAYERS, cpu_has_native_bf16, load_c3d
from extract.extractor import ExtractSettings, extract_video
from extract.spec import FeatureSpec
from extract.store import FeatureStore
from extract.video import VideoError, clip_count, decode_clips, frame_sequence, list_videos, probe
from pipeline.extraction import extract_command, run_extraction
from pipeline.synthetic import write_video

CODECS = [
    ("libx264", "mp4"),
    ("libx265", "mkv"),
    ("libvpx-vp9", "webm"),
    ("libsvtav1", "mkv"),
    ("mpeg4", "avi"),
    ("mjpeg", "avi"),
]


def solid_frames(count: int, colour, size=(64, 96)) -> list[np.ndarray]:
    frames = [np.zeros((*size, 3), np.uint8) for _ in range(count)]
    for frame in frames:
        frame[:] = colour
    return frames


@pytest.fixture(scope="module")
def charades(shared_data):
    return shared_data / "videos" / "charades.mp4"


def test_the_real_video_gives_the_rows_its_frames_and_stride_imply(charades):
    info = probe(charades)
    assert (info.num_frames, info.width, info.height) == (460, 480, 270) and info.fps == pytest.approx(14.985, abs=1e-3)
    assert info.duration == pytest.approx(30.70, abs=0.01)
    settings = ExtractSettings(stride=64)  # the fewest clips that still show the count: C3D costs per clip
    features, record = extract_video(charades, "charades", settings.encoder().encode, settings.spec())
    assert record.status == "ok" and record.error == "" and record.spec == settings.spec()
    assert features.shape == (clip_count(460, 16, 64), 4096) == (7, 4096)
    assert features.dtype == np.float16 and np.isfinite(features).all() and (features > 0).any()
    # Stride 8 (ActivityNet-style overlapping windows) and resampling to 5 fps change the count as implied.
    assert sum(len(c) for c in decode_clips(charades, FeatureSpec(stride=8), info)) == (460 - 16) // 8 + 1 == 56
    resampled = sum(len(c) for c in decode_clips(charades, FeatureSpec(sample_fps=5), info))
    assert resampled == (int(info.duration * 5) - 16) // 16 + 1 == 9


def test_clips_are_read_in_bounded_chunks(charades):
    chunks = list(decode_clips(charades, FeatureSpec(), chunk_clips=5))
    assert [len(c) for c in chunks] == [5, 5, 5, 5, 5, 3]
    assert chunks[0].shape[1:] == (16, 112, 112, 3) and chunks[0].dtype == np.uint8


@pytest.mark.parametrize(
    "spec",
    [FeatureSpec(stride=8), FeatureSpec(stride=40), FeatureSpec(sample_fps=30), FeatureSpec(sample_fps=5)],
    ids=["overlapping", "gaps", "frames-repeated", "frames-skipped"],
)
def test_each_clip_holds_the_frames_its_window_names(charades, spec):
    info = probe(charades)
    (single,) = list(decode_clips(charades, FeatureSpec(clip_len=1, stride=1), info, chunk_clips=1000))
    frames = single[:, 0]  # every video frame once, [460, 112, 112, 3]
    sequence = frames[frame_sequence(info, spec.sample_fps)]
    clips = np.concatenate(list(decode_clips(charades, spec, info)))
    assert len(clips) == clip_count(len(sequence), 16, spec.stride)
    for index in (0, 1, len(clips) // 2, len(clips) - 1):
        start = index * spec.stride
        np.testing.assert_array_equal(clips[index], sequence[start : start + 16])


@pytest.mark.parametrize(("codec", "suffix"), CODECS)
def test_videos_written_in_several_codecs_decode_in_rgb(tmp_path, codec, suffix):
    path = write_video(tmp_path / f"red.{suffix}", solid_frames(20, (200, 30, 30)), fps=10, codec=codec)
    info = probe(path)
    assert info.num_frames == 20 and info.fps == pytest.approx(10)
    (clips,) = list(decode_clips(path, FeatureSpec(), info))
    assert clips.shape == (1, 16, 112, 112, 3)
    assert np.abs(clips.reshape(-1, 3).mean(0) - [200, 30, 30]).max() < 6


def test_a_video_shorter_than_a_clip_gives_one_padded_clip(tmp_path):
    frames = solid_frames(5, (0, 0, 0)) + solid_frames(1, (255, 255, 255))
    (clips,) = list(decode_clips(write_video(tmp_path / "short.mp4", frames, fps=10), FeatureSpec()))
    assert clips.shape[:2] == (1, 16)
    assert clips[0, :5].mean() < 20 and (clips[0, 5:].mean(axis=(1, 2, 3)) > 235).all()


def test_undecodable_files_are_clear_failures(tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "corrupt.mp4").write_bytes(b"\x00\x01 not a video" * 100)
    with pytest.raises(VideoError, match=r"empty\.mp4: empty file \(0 bytes\)"):
        probe(tmp_path / "empty.mp4")
    with pytest.raises(VideoError, match=r"corrupt\.mp4: cannot decode"):
        probe(tmp_path / "corrupt.mp4")
    with pytest.raises(VideoError, match="video file not found"):
        probe(tmp_path / "absent.mp4")
    features, record = extract_video(tmp_path / "corrupt.mp4", "corrupt", lambda c: c, FeatureSpec())
    assert features is None and record.status == "failed" and "cannot decode" in record.error


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
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")  # as on a CPU without native bf16
    assert not cpu_has_native_bf16()
    encoder = ExtractSettings(device="cpu").encoder()
    assert (encoder.precision, encoder.memory_format) == ("fp32", torch.channels_last_3d)
    assert "fp32, channels_last_3d" in encoder.describe()
    clips = next(decode_clips(charades, FeatureSpec(), chunk_clips=2))
    contiguous = ExtractSettings(device="cpu", precision="fp32").encoder(layout="contiguous")
    assert contiguous.memory_format == torch.contiguous_format
    channels_last, reference = encoder.encode(clips), contiguous.encode(clips)
    assert np.linalg.norm(channels_last - reference) / np.linalg.norm(reference) < 1e-5  # summation order only


@pytest.mark.skipif(not cpu_has_native_bf16(), reason="this CPU has no native bfloat16")
def test_bf16_channels_last_matches_float32_within_about_half_a_percent(charades):
    clips = next(decode_clips(charades, FeatureSpec(), chunk_clips=4))
    fp32 = ExtractSettings(precision="fp32", device="cpu").encoder().encode(clips)
    bf16 = ExtractSettings(precision="bf16", device="cpu").encoder().encode(clips)
    assert ExtractSettings(device="cpu").encoder().precision == "bf16"  # where bf16 is native, auto picks it
    assert np.linalg.norm(bf16 - fp32) / np.linalg.norm(fp32) < 0.005  # 0.49 % measured
    for layer, dim in LAYERS.items():
        assert ExtractSettings(layer=layer, device="cpu").encoder().encode(clips[:1]).shape == (1, dim)


def test_list_videos_from_a_folder_or_a_list_file(tmp_path):
    (tmp_path / "a").mkdir()
    for name in ["a/x.mp4", "b.MKV", "notes.txt"]:
        (tmp_path / name).write_bytes(b"x")
    assert [p.relative_to(tmp_path).as_posix() for p in list_videos(tmp_path)] == ["a/x.mp4", "b.MKV"]
    (tmp_path / "list.txt").write_text("# my videos\na/x.mp4\n\n/abs/y.webm\n")
    assert list_videos(tmp_path / "list.txt") == [tmp_path / "a/x.mp4", Path("/abs/y.webm")]


@pytest.mark.slow
def test_ray_extraction_records_failures_resumes_and_matches_the_plain_function(tmp_path, ray_session):
    videos = tmp_path / "videos"
    videos.mkdir()
    write_video(videos / "green.mp4", solid_frames(40, (20, 200, 20)), fps=10)
    write_video(videos / "blue.webm", solid_frames(20, (20, 20, 200)), fps=10, codec="libvpx-vp9")
    (videos / "corrupt.mp4").write_bytes(b"\x00garbage" * 50)
    (videos / "empty.avi").write_bytes(b"")
    settings = ExtractSettings(batch_size=4)
    summary = run_extraction(videos, tmp_path / "store", settings, progress=False)
    assert sorted(summary.done) == ["blue", "green"] and summary.clips == 3
    assert set(summary.failed) == {"corrupt", "empty"} and "empty file" in summary.failed["empty"]
    assert "failed 2" in summary.report() and "corrupt: " in summary.report()
    store = FeatureStore(tmp_path / "store")
    assert store.ids() == {"blue", "green"} and store.read("green").shape == (2, 4096)
    records = {r.video_id: r for r in store.records().values()}
    assert (
        records["green"].status == "ok" and records["green"].num_frames == 40 and records["green"].spec.weights == "random"
    )
    assert records["corrupt"].status == "failed" and records["corrupt"].error
    lines = (tmp_path / "store" / "manifest.jsonl").read_text().splitlines()
    assert len(lines) == 4 and all(json.loads(line)["video_id"] for line in lines)

    # The same features without Ray.
    plain, _ = extract_video(videos / "green.mp4", "green", settings.encoder().encode, settings.spec())
    np.testing.assert_array_equal(plain, store.read("green"))

    # A rerun skips what is done and retries what failed.
    (videos / "empty.avi").unlink()
    rerun = run_extraction(videos, tmp_path / "store", settings, use_ray=False, progress=False)
    assert sorted(rerun.skipped) == ["blue", "green"] and rerun.done == [] and set(rerun.failed) == {"corrupt"}
    with pytest.raises(InputError, match=r"other settings \(stride 16 -> 8\)"):
        run_extraction(videos, tmp_path / "store", ExtractSettings(stride=8), use_ray=False)


def test_two_videos_with_the_same_name_are_refused(tmp_path):
    for folder in ["a", "b"]:
        (tmp_path / folder).mkdir()
        write_video(tmp_path / folder / "same.mp4", solid_frames(16, (9, 9, 9)), fps=10)
    with pytest.raises(InputError, match=r"same\.mp4 and .*same\.mp4 have the same name \(same\)"):
        run_extraction(tmp_path, tmp_path / "store", ExtractSettings(), use_ray=False, progress=False)
    assert not (tmp_path / "store" / "same.npy").exists()


def test_an_extract_config_gives_defaults_and_flags_win(tmp_path, capsys):
    videos = tmp_path / "videos"
    videos.mkdir()
    write_video(videos / "grey.mp4", solid_frames(20, (99, 99, 99)), fps=10)
    (tmp_path / "extract.yaml").write_text("stride: 4\nlayer: pool5\n")
    flags = {"stride": None, "layer": None}
    assert (
        extract_command(videos, tmp_path / "a", str(tmp_path / "extract.yaml"), flags, use_ray=False, progress=False)
        == 0
    )
    assert FeatureStore(tmp_path / "a").read("grey").shape == ((20 - 16) // 4 + 1, 8192)
    flags = {"stride": 16, "layer": None}
    assert (
        extract_command(videos, tmp_path / "b", str(tmp_path / "extract.yaml"), flags, use_ray=False, progress=False)
        == 0
    )
    assert FeatureStore(tmp_path / "b").read("grey").shape == (1, 8192)
    assert "extracted 1, skipped 0" in capsys.readouterr().out


def test_the_activitynet_pca_projects_fc7_to_500_dimensions(charades, tmp_path):
    import h5py

    rng = np.random.default_rng(0)
    basis, mean = rng.standard_normal((4096, 600)).astype(np.float32), rng.random(4096).astype(np.float32)
    with h5py.File(tmp_path / "pca.hdf5", "w") as f:
        f["data/U"], f["data/S"], f["data/x_mean"] = basis, np.ones(600, np.float32), mean
    clips = next(decode_clips(charades, FeatureSpec(), chunk_clips=3))
    fc7 = ExtractSettings(layer="fc7").encoder().encode(clips)
    projected = ExtractSettings(layer="fc7", pca=str(tmp_path / "pca.hdf5")).encoder().encode(clips)
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
        ExtractSettings(layer="pool5", pca=str(tmp_path / "pca.hdf5")).encoder()
