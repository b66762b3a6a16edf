"""extract/video.py's two decoders: PyAV and decord read the same clips, times and failures."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import solid_frames
from test_extract_video import brightening_frames, irregular_times

from hscnet.common.errors import InputError
from hscnet.extract.encoders import build_encoder
from hscnet.extract.extractor import extract_video
from hscnet.extract.settings import ExtractSettings
from hscnet.extract.spec import FeatureSpec
from hscnet.extract.video import VideoError, decode_clips, probe
from hscnet.pipeline.synthetic import write_video

pytest.importorskip("decord", reason="decord2 is a dev dependency: make test installs it")

GENERATED = [("libx264", "mp4"), ("libx265", "mkv"), ("libvpx-vp9", "webm"), ("libsvtav1", "mkv")]


def moving_frames(count: int) -> list[np.ndarray]:
    """A gradient with a square that moves: detail that scaling must keep."""
    y, x = np.mgrid[0:180, 0:320]
    frames = []
    for i in range(count):
        frame = np.stack([(x + 3 * i) % 256, (y * 1.4).astype(int) % 256, np.full_like(x, 90)], -1).astype(np.uint8)
        frame[60:120, 20 + 8 * i : 80 + 8 * i] = (230, 40, 40)
        frames.append(frame)
    return frames


def both(path, spec: FeatureSpec):
    clips = {d: np.concatenate(list(decode_clips(path, spec, probe(path, d), decoder=d))) for d in ("pyav", "decord")}
    return clips["pyav"], clips["decord"]


def test_the_decoders_read_the_same_clips_of_the_real_video(charades):
    pyav, decord = both(charades, FeatureSpec(stride=40))
    assert pyav.shape == decord.shape == (12, 16, 112, 112, 3)
    difference = np.abs(pyav.astype(np.int16) - decord.astype(np.int16))
    assert difference.mean() < 1.5 and np.percentile(difference, 99) < 16  # scaling filters differ slightly
    resampled = both(charades, FeatureSpec(clip_len=4, stride=4, sample_fps=5))
    assert resampled[0].shape == resampled[1].shape and np.abs(np.subtract(*resampled, dtype=np.int16)).mean() < 1.5


@pytest.mark.parametrize(("codec", "suffix"), GENERATED)
def test_the_decoders_agree_on_generated_videos(tmp_path, codec, suffix):
    path = write_video(tmp_path / f"moving.{suffix}", moving_frames(24), fps=12, codec=codec)
    pyav, decord = both(path, FeatureSpec(clip_len=8, stride=8))
    assert pyav.shape == decord.shape == (3, 8, 112, 112, 3)
    assert np.abs(pyav.astype(np.int16) - decord.astype(np.int16)).mean() < 3


def test_float32_c3d_features_agree_across_decoders(charades):
    settings = {d: ExtractSettings(stride=160, precision="fp32", decoder=d) for d in ("pyav", "decord")}
    encoder = build_encoder(settings["pyav"])
    features = {}
    for decoder, chosen in settings.items():
        features[decoder], record = extract_video(charades, "c", encoder.encode, chosen.spec(), decoder=decoder)
        assert record.decoder == decoder and record.status == "ok"
    a, b = (features[d].astype(np.float64) for d in ("pyav", "decord"))
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert len(cosine) == 3 and cosine.min() >= 0.98  # the start, middle and end of the video


def test_decord_times_a_variable_frame_rate_video_by_its_timestamps(tmp_path):
    times = irregular_times(90, 3.57)
    path = write_video(tmp_path / "vfr.mkv", brightening_frames(times, 2.0), fps=30, timestamps=times)
    by_pyav, by_decord = probe(path, "pyav"), probe(path, "decord")
    np.testing.assert_allclose(by_decord.timestamps, by_pyav.timestamps, atol=2e-3)
    assert by_decord.duration == pytest.approx(by_pyav.duration, abs=0.04)
    spec = FeatureSpec(clip_len=1, stride=1, sample_fps=10)
    (samples,) = list(decode_clips(path, spec, by_decord, chunk_clips=1000, decoder="decord"))
    bright = samples[:, 0].mean(axis=(1, 2, 3)) > 128
    assert not bright[:20].any() and bright[20:].all()


def test_decord_failures_are_recorded_in_its_own_words(tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 50)
    with pytest.raises(VideoError, match=r"empty\.mp4: empty file"):
        probe(tmp_path / "empty.mp4", "decord")
    with pytest.raises(VideoError, match=r"corrupt\.mp4: cannot decode \(.+\)"):
        probe(tmp_path / "corrupt.mp4", "decord")
    _, record = extract_video(tmp_path / "corrupt.mp4", "corrupt", None, FeatureSpec(), decoder="decord")
    assert record.status == "failed" and record.decoder == "decord" and "cannot decode" in record.error
    with pytest.raises(InputError, match="unknown software decoder 'opencv': use one of pyav, decord"):
        list(decode_clips(write_video(tmp_path / "x.mp4", solid_frames(16, (9, 9, 9)), fps=8), FeatureSpec(),
                          decoder="opencv"))  # fmt: skip
