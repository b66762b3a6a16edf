"""Decoding: a video file to 16-frame clips, cut and cropped as the C3D Sports-1M model expects.

decord (installed as `decord2`, with FFmpeg 8 inside) reads MP4, MKV, WebM and AVI with H.264,
HEVC, VP9, AV1, MPEG-4 or MJPEG. Frames are scaled to 171x128 by the decoder itself (the C3D
input of Tran et al.: resize to 128x171, then a centre crop of 112x112) and read a chunk of
clips at a time, so memory stays bounded however long the video is.

Clip i covers frames [i * stride, i * stride + clip_len) of the frame sequence: the video's
own frames, or frames sampled at `target_fps` when set. The last frames that do not fill a
whole clip are left out, as in the standard C3D feature extraction; a video shorter than one
clip gives one clip padded with its last frame. Clips stay uint8 RGB here; the model does the
float conversion, channel order and mean subtraction (`extract/c3d.py`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from extract.errors import InputError

RESIZE_HEIGHT, RESIZE_WIDTH = 128, 171
CROP = 112
VIDEO_SUFFIXES = frozenset({".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".ogv"})


class VideoError(InputError):
    """A video that cannot be decoded: missing, empty, corrupt, or without frames."""


@dataclass(frozen=True)
class ClipSettings:
    clip_len: int = 16
    stride: int = 16  # 8 gives ActivityNet-style overlapping windows
    target_fps: float = 0.0  # 0 keeps the video's own frame rate
    chunk_clips: int = 32  # clips decoded at a time: bounds memory (32 clips are 19 MB)


@dataclass(frozen=True)
class VideoInfo:
    path: str
    fps: float
    num_frames: int
    duration: float
    width: int
    height: int


def _reader(path: str | os.PathLike, resized: bool):
    import decord  # the decord2 distribution

    path = Path(path)
    if not path.is_file():
        raise VideoError(f"{path}: video file not found")
    if path.stat().st_size == 0:
        raise VideoError(f"{path}: empty file (0 bytes)")
    size = {"width": RESIZE_WIDTH, "height": RESIZE_HEIGHT} if resized else {}
    try:
        return decord.VideoReader(str(path), num_threads=1, **size)
    except Exception as error:  # decord raises DECORDError, RuntimeError or ValueError for broken files
        raise VideoError(f"{path}: cannot decode ({_first_line(error)})") from error


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[0][:300] if text else type(error).__name__


def probe(path: str | os.PathLike) -> VideoInfo:
    """Frame rate, frame count, duration and size of a video, as the decoder reports them."""
    reader = _reader(path, resized=False)
    num_frames = len(reader)
    if num_frames == 0:
        raise VideoError(f"{path}: the video has no frames")
    fps = float(reader.get_avg_fps()) or 25.0
    height, width = reader[0].shape[:2]
    return VideoInfo(str(path), fps, num_frames, num_frames / fps, int(width), int(height))


def frame_sequence(info: VideoInfo, target_fps: float) -> np.ndarray:
    """Indices of the video frames that make up the clip sequence (all, or sampled at target_fps)."""
    if not target_fps or target_fps <= 0:
        return np.arange(info.num_frames)
    count = max(1, int(info.duration * target_fps))
    times = np.arange(count) / target_fps
    return np.minimum(np.round(times * info.fps).astype(int), info.num_frames - 1)


def clip_count(num_frames: int, clip_len: int, stride: int) -> int:
    """Clips of `clip_len` frames every `stride` frames; at least one (padded) clip."""
    return 1 if num_frames < clip_len else (num_frames - clip_len) // stride + 1


def decode_clips(
    path: str | os.PathLike, settings: ClipSettings, info: VideoInfo | None = None
) -> Iterator[np.ndarray]:
    """Yield the video's clips, `chunk_clips` at a time: uint8 [n, clip_len, 112, 112, 3] RGB."""
    info = info or probe(path)
    frames = frame_sequence(info, settings.target_fps)
    total = clip_count(len(frames), settings.clip_len, settings.stride)
    reader = _reader(path, resized=True)
    top, left = (RESIZE_HEIGHT - CROP) // 2, (RESIZE_WIDTH - CROP) // 2
    for first in range(0, total, settings.chunk_clips):
        clips = range(first, min(first + settings.chunk_clips, total))
        positions = np.concatenate(
            [np.arange(c * settings.stride, c * settings.stride + settings.clip_len) for c in clips]
        )
        positions = np.minimum(positions, len(frames) - 1)  # a short video repeats its last frame
        wanted = frames[positions]
        unique, inverse = np.unique(wanted, return_inverse=True)
        try:
            decoded = reader.get_batch(unique.tolist()).asnumpy()  # [u, 128, 171, 3]
        except Exception as error:
            raise VideoError(
                f"{path}: decoding failed at frames {unique[0]}-{unique[-1]} ({_first_line(error)})"
            ) from error
        cropped = decoded[:, top : top + CROP, left : left + CROP]
        yield np.ascontiguousarray(cropped[inverse].reshape(len(clips), settings.clip_len, CROP, CROP, 3))


def list_videos(source: str | os.PathLike) -> list[Path]:
    """The videos of a folder (recursively, by file suffix, sorted) or of a list file (one path a line)."""
    source = Path(source)
    if source.is_dir():
        return sorted(p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
    if source.is_file():
        lines = [line.strip() for line in source.read_text(encoding="utf-8").splitlines()]
        return [
            Path(line) if Path(line).is_absolute() else source.parent / line
            for line in lines
            if line and not line.startswith("#")
        ]
    raise InputError(f"{source}: no such folder or list file of videos")
