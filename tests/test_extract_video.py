"""extract/video.py on real and generated video: probing, clip windows, codecs, bad files, video lists."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from conftest import solid_frames

from hscnet.extract.extractor import extract_video
from hscnet.extract.spec import FeatureSpec
from hscnet.extract.video import VideoError, clip_count, decode_clips, frame_sequence, list_videos, probe
from hscnet.pipeline.synthetic import write_video

CODECS = [
    ("libx264", "mp4"),
    ("libx265", "mkv"),
    ("libvpx-vp9", "webm"),
    ("libsvtav1", "mkv"),
    ("mpeg4", "avi"),
    ("mjpeg", "avi"),
]


def test_clips_are_read_in_bounded_chunks(charades):
    chunks = list(decode_clips(charades, FeatureSpec(), chunk_clips=5))
    assert [len(c) for c in chunks] == [5, 5, 5, 5, 5, 3]
    assert chunks[0].shape[1:] == (16, 112, 112, 3) and chunks[0].dtype == np.uint8


def test_frames_are_ffmpegs_area_scale_to_rgb_centre_cropped(charades):
    import av

    with av.open(str(charades)) as container:
        decoded = [frame for _, frame in zip(range(16), container.decode(video=0), strict=False)]
    scaled = [f.to_ndarray(format="rgb24", width=171, height=128, interpolation="AREA") for f in decoded]
    expected = np.stack(scaled)[:, 8:120, 29:141]  # [16, 112, 112, 3], the centre of 128 x 171
    first_clip = next(decode_clips(charades, FeatureSpec()))[0]
    np.testing.assert_array_equal(first_clip, expected)  # to the last bit, whatever format swscale writes


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
    scheduling = os.sched_getscheduler(0), os.sched_getparam(0)
    path = write_video(tmp_path / f"red.{suffix}", solid_frames(20, (200, 30, 30)), fps=10, codec=codec)
    # SVT-AV1 as root leaves its caller at real-time priority, which every later test's processes would inherit.
    assert (os.sched_getscheduler(0), os.sched_getparam(0)) == scheduling
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


def test_list_videos_from_a_folder_or_a_list_file(tmp_path):
    (tmp_path / "a").mkdir()
    for name in ["a/x.mp4", "b.MKV", "notes.txt"]:
        (tmp_path / name).write_bytes(b"x")
    assert [p.relative_to(tmp_path).as_posix() for p in list_videos(tmp_path)] == ["a/x.mp4", "b.MKV"]
    (tmp_path / "list.txt").write_text("# my videos\na/x.mp4\n\n/abs/y.webm\n")
    assert list_videos(tmp_path / "list.txt") == [tmp_path / "a/x.mp4", Path("/abs/y.webm")]


def irregular_times(count: int, length: float, seed: int = 0) -> np.ndarray:
    """`count` frame times from 0 at irregular steps (20 to 70 ms), the last at `length` seconds."""
    steps = np.random.default_rng(seed).uniform(0.02, 0.07, count - 1)
    return np.concatenate([[0.0], np.cumsum(steps)]) * length / steps.sum()


def brightening_frames(times: np.ndarray, switch: float) -> list[np.ndarray]:
    """Dark frames before `switch` seconds, bright ones from then on."""
    return [np.full((64, 96, 3), 230 if t >= switch else 20, np.uint8) for t in times]


@pytest.mark.parametrize("suffix", ["mp4", "mkv"])
def test_a_variable_frame_rate_video_keeps_its_time(tmp_path, suffix):
    # 90 frames over 3.57 s at irregular intervals, nominally 30 fps: frame index / 30 would say 3.0 s.
    times = irregular_times(90, 3.57)
    path = write_video(tmp_path / f"vfr.{suffix}", brightening_frames(times, 2.0), fps=30, timestamps=times)
    info = probe(path)
    assert info.num_frames == 90
    np.testing.assert_allclose(info.timestamps, times, atol=1e-3)
    assert 3.58 < info.duration < 3.65  # to the end of the last frame
    # Sampled at 10 fps by timestamp, the video brightens at the sample of 2.0 s.
    spec = FeatureSpec(clip_len=1, stride=1, sample_fps=10)
    (samples,) = list(decode_clips(path, spec, info, chunk_clips=1000))
    bright = samples[:, 0].mean(axis=(1, 2, 3)) > 128
    assert len(samples) == int(info.duration * 10) == 36
    assert not bright[:20].any() and bright[20:].all()
    spec = FeatureSpec(clip_len=2, stride=2, dim=4)
    features, record = extract_video(path, "vfr", lambda clips: clips.reshape(len(clips), -1)[:, :4].astype(np.float32),
                                     spec)  # fmt: skip
    assert record.duration == pytest.approx(info.duration) and len(features) == record.clips


def test_a_video_whose_first_timestamp_is_not_zero_is_timed_from_its_first_frame(tmp_path):
    times = irregular_times(60, 2.5, seed=1)
    frames = brightening_frames(times, 1.0)
    zero = probe(write_video(tmp_path / "zero.mkv", frames, fps=24, timestamps=times))
    late = probe(write_video(tmp_path / "late.mkv", frames, fps=24, timestamps=times + 7.25))
    assert late.duration == pytest.approx(zero.duration, abs=1e-3)
    np.testing.assert_allclose(late.timestamps, zero.timestamps, atol=1e-3)
    spec = FeatureSpec(clip_len=4, stride=4, sample_fps=8)
    late_clips, zero_clips = (np.concatenate(list(decode_clips(i.path, spec, i))) for i in (late, zero))
    np.testing.assert_array_equal(late_clips, zero_clips)


def test_a_constant_rate_video_samples_the_frames_of_frame_index_sampling(charades):
    info = probe(charades)
    assert info.duration == pytest.approx(info.num_frames / info.fps)
    np.testing.assert_array_equal(frame_sequence(info, 0), np.arange(info.num_frames))
    for rate in (1, 2.5, 5, 7, 30):  # the nearest frame to each sample time, as index sampling rounded it
        count = int(info.num_frames / info.fps * rate)
        by_index = np.minimum(np.round(np.arange(count) / rate * info.fps).astype(int), info.num_frames - 1)
        np.testing.assert_array_equal(frame_sequence(info, rate), by_index)


def test_a_file_cut_short_is_extracted_with_a_warning_and_a_late_stream_keeps_its_start(tmp_path):
    frames = [np.full((48, 64, 3), 10 * i % 250, np.uint8) for i in range(50)]
    whole = write_video(tmp_path / "whole.mkv", frames, fps=10)  # 5.0 s
    data = whole.read_bytes()
    (tmp_path / "cut.mkv").write_bytes(data[: int(len(data) * 0.6)])
    assert probe(whole).ended_early() == ""
    cut = probe(tmp_path / "cut.mkv")
    assert cut.duration < 4.0 and cut.stated_duration == pytest.approx(5.0, abs=0.05)
    assert "but the container says 5.00 s: the file may be cut short" in cut.ended_early()
    spec = FeatureSpec(clip_len=2, stride=2, dim=4)
    features, record = extract_video(tmp_path / "cut.mkv", "cut", lambda c: c.reshape(len(c), -1)[:, :4] * 1.0, spec)
    assert record.status == "ok" and "cut short" in record.warning and len(features) == record.clips

    late = write_video(tmp_path / "late.mp4", frames[:20], fps=10, timestamps=[10 + i / 10 for i in range(20)])
    info = probe(late)
    assert info.start == pytest.approx(10.0, abs=1e-3) and info.duration == pytest.approx(2.0, abs=1e-3)
    assert info.ended_early() == ""
    with pytest.raises(VideoError, match=r": is a folder, not a video file"):
        probe(tmp_path)
