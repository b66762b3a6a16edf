"""The synthetic demo world: raw MP4 videos of coloured shapes doing things, with paragraphs.

(The world generator follows; `write_video` is shared with the tests.)
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from extract import atomic

# Containers and pixel formats the encoders accept.
_PIXEL_FORMATS = {"mjpeg": "yuvj420p"}


def write_video(
    path: str | os.PathLike,
    frames: Iterable[np.ndarray],
    fps: float,
    codec: str = "libx264",
    options: dict | None = None,
) -> Path:
    """Encode RGB uint8 frames [H, W, 3] with PyAV (FFmpeg inside: no system ffmpeg needed), atomically."""
    import av

    path = Path(path)
    frames = iter(frames)
    first = next(frames)
    with atomic.atomic_path(path) as tmp, av.open(str(tmp), mode="w", format=_container_format(path)) as container:
        stream = container.add_stream(codec, rate=_rate(fps), options=options or {})
        stream.height, stream.width = first.shape[:2]
        stream.pix_fmt = _PIXEL_FORMATS.get(codec, "yuv420p")
        for frame in itertools.chain([first], frames):
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _rate(fps: float):
    from fractions import Fraction

    return Fraction(fps).limit_denominator(1001)


def _container_format(path: Path) -> str:
    return {".mkv": "matroska", ".webm": "webm", ".avi": "avi", ".mov": "mov"}.get(path.suffix.lower(), "mp4")
