"""extract/video.py on real and generated video: probing, clip windows, codecs, bad files, video lists."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import solid_frames

from extract.extractor import extract_video
from extract.spec import FeatureSpec
from extract.video import VideoError, clip_count, decode_clips, frame_sequence, list_videos, probe
from pipeline.synthetic import write_video

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


def test_list_videos_from_a_folder_or_a_list_file(tmp_path):
    (tmp_path / "a").mkdir()
    for name in ["a/x.mp4", "b.MKV", "notes.txt"]:
        (tmp_path / name).write_bytes(b"x")
    assert [p.relative_to(tmp_path).as_posix() for p in list_videos(tmp_path)] == ["a/x.mp4", "b.MKV"]
    (tmp_path / "list.txt").write_text("# my videos\na/x.mp4\n\n/abs/y.webm\n")
    assert list_videos(tmp_path / "list.txt") == [tmp_path / "a/x.mp4", Path("/abs/y.webm")]
