"""Decoding: a video file to 16-frame clips, cut and cropped as the C3D Sports-1M model expects.

PyAV (FFmpeg inside, with dav1d for AV1) reads MP4, MKV, WebM and AVI with H.264, HEVC, VP9,
AV1, MPEG-4 or MJPEG. Frames are decoded one after the other, scaled to 171x128 by FFmpeg's
swscale (area averaging: within 1-2 grey levels on average of the OpenCV resize the original
C3D pipeline used, at half of bicubic's cost at 720p), centre-cropped to 112x112 (the C3D
input of Tran et al.) and handed on a chunk of clips at a time, so memory stays bounded however
long the video is.

decord (the maintained decord2 distribution, `--decoder decord`, an optional extra) reads the
same frames by index, in chunks, scaled by its own FFmpeg filter: within a grey level of
PyAV's on average. Its reader keeps decoding in a background thread after every read and
holds the frames, so it seeks back after every batch; PyAV is faster and leaner
(benchmarks/decode.py, docs/benchmarks.md) and stays the default (see `DECODERS`).

Frames are scaled and centre-cropped as the backbone declares (`extract/backbones.py`): C3D's
171x128 and 112x112, the Kinetics backbones' short side 256 and 224x224.

Time comes from the frames' presentation timestamps, never from frame index / nominal rate:
a variable-frame-rate video (phone and screen recordings often are) would otherwise be given
the wrong duration and every span in it shifted. The probe reads every video packet's
timestamp (demuxing, not decoding); time 0 is the first frame, the duration runs to the end of
the last one. The frame sequence samples the video at regular times, 1 / rate apart (the
nominal rate, or `sample_fps` when set), each sample the frame whose timestamp is nearest: on a
constant-rate video that is every frame, exactly the frames of frame-index sampling, and on a
variable-rate one the clips stay evenly spaced in time, so the model's positions map linearly
back to seconds.

Clip i covers positions [i * stride, i * stride + clip_len) of the frame sequence. The last frames that do not fill a
whole clip are left out, as in the standard C3D feature extraction; a video shorter than one
clip gives one clip padded with its last frame. Clips stay uint8 RGB here; the model does the
float conversion, channel order and mean subtraction (`extract/c3d.py`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from hscnet.common.errors import InputError, first_line
from hscnet.extract.backbones import backbone
from hscnet.extract.spec import FeatureSpec

SOFTWARE_DECODERS = ("pyav", "decord")
DECODERS = (*SOFTWARE_DECODERS, "nvdec")  # nvdec: extract/nvdec.py, on a GPU; software elsewhere
VIDEO_SUFFIXES = frozenset({".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".ogv"})


class VideoError(InputError):
    """A video that cannot be decoded: missing, empty, corrupt, or without frames."""


CHUNK_CLIPS = 32  # clips handed on at a time: bounds memory (32 clips are 19 MB)


@dataclass(frozen=True)
class VideoInfo:
    path: str
    fps: float  # the nominal rate (the stream's average rate)
    num_frames: int
    duration: float  # seconds from the first frame's timestamp to the end of the last frame
    width: int
    height: int
    timestamps: np.ndarray | None = None  # [num_frames] seconds, presentation order, the first at 0
    start: float = 0.0  # the first frame's time in the file (a player's clock there), seconds
    stated_duration: float = 0.0  # what the container says the video lasts; 0 where it says nothing

    def ended_early(self) -> str:
        """A warning when the frames end well before the container's stated duration (a file cut short
        in copying or downloading), else ""."""
        missing = self.stated_duration - self.duration
        if self.stated_duration > 0 and missing > max(0.5, 0.1 * self.stated_duration):
            return (
                f"the frames end at {self.duration:.2f} s but the container says {self.stated_duration:.2f} s: "
                "the file may be cut short"
            )
        return ""


def _existing(path: str | os.PathLike) -> Path:
    """The path of a video file that exists and is not empty, else a VideoError saying which."""
    path = Path(path)
    if path.is_dir():
        raise VideoError(f"{path}: is a folder, not a video file")
    if not path.is_file():
        raise VideoError(f"{path}: video file not found")
    if path.stat().st_size == 0:
        raise VideoError(f"{path}: empty file (0 bytes)")
    return path


def _open(path: str | os.PathLike):
    """The container, opened for its first video stream; a VideoError names the file and the problem."""
    path = _existing(path)
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as error:
        raise VideoError(f"{path}: cannot decode ({first_line(error)})") from error
    if not container.streams.video:
        container.close()
        raise VideoError(f"{path}: cannot decode (no video stream)")
    return container


def probe(path: str | os.PathLike, decoder: str = "pyav") -> VideoInfo:
    """Frame rate, frame count, duration, size and the frames' timestamps, as the container has them.

    PyAV reads every video packet (not decoding it) for its presentation timestamp; a stream
    without timestamps is taken as constant-rate at its nominal rate. decord reports its own
    frame index's timestamps."""
    if decoder == "decord":
        return _probe_decord(path)
    with _open(path) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.guessed_rate or 0) or 25.0
        times, last_length = [], 0.0
        try:
            for packet in container.demux(stream):
                if not packet.size:
                    continue
                times.append(packet.pts)
                last_length = float(packet.duration * packet.time_base) if packet.duration else 0.0
        except av.FFmpegError as error:
            raise VideoError(f"{path}: cannot decode ({first_line(error)})") from error
        if not times:
            raise VideoError(f"{path}: the video has no frames")
        width, height = stream.codec_context.width, stream.codec_context.height
        start = 0.0
        if any(t is None for t in times):
            timestamps = np.arange(len(times)) / fps
        else:
            timestamps = np.sort(np.asarray(times, dtype=np.float64)) * float(stream.time_base)
            start = float(timestamps[0])
            timestamps -= timestamps[0]
        stated = float(stream.duration * stream.time_base) if stream.duration else 0.0
        if not stated and container.duration:  # microseconds, from the container's header (MKV, WebM)
            stated = container.duration / 1e6 - max(0.0, start - (container.start_time or 0) / 1e6)
    # The last frame lasts its packet's duration, else the step before it (else one nominal frame).
    step = float(timestamps[-1] - timestamps[-2]) if len(timestamps) > 1 else 1.0 / fps
    duration = float(timestamps[-1]) + (last_length if 0 < last_length < 4 * step + 1e-9 else step)
    return VideoInfo(str(path), fps, len(timestamps), duration, int(width), int(height), timestamps, start, stated)


def _decord_reader(path: str | os.PathLike, width: int = -1, height: int = -1):
    """A decord VideoReader (scaling to width x height when given); a VideoError in decord's own words."""
    try:
        import decord
    except ImportError as error:
        raise InputError(
            "--decoder decord needs the decord2 package: pip install decord2==3.4.0 (or the project's [decord] extra)"
        ) from error
    path = _existing(path)
    try:
        return decord.VideoReader(str(path), ctx=decord.cpu(0), width=width, height=height, num_threads=1)
    except (decord.DECORDError, RuntimeError) as error:
        raise VideoError(f"{path}: cannot decode ({first_line(error)})") from error


def _probe_decord(path: str | os.PathLike) -> VideoInfo:
    reader = _decord_reader(path)
    count = len(reader)
    if count == 0:
        raise VideoError(f"{path}: the video has no frames")
    try:
        spans = reader.get_frame_timestamp(range(count))  # [count, 2]: each frame's start and end, seconds
        height, width = reader[0].shape[:2]
    except Exception as error:  # decord raises its own DECORDError and plain RuntimeErrors
        raise VideoError(f"{path}: cannot decode ({first_line(error)})") from error
    starts = np.asarray(spans[:, 0], dtype=np.float64)
    order = np.argsort(starts, kind="stable")
    timestamps = starts[order] - starts[order[0]]
    duration = float(max(spans[:, 1].max() - starts[order[0]], timestamps[-1]))
    fps = float(reader.get_avg_fps()) or 25.0
    return VideoInfo(str(path), fps, count, duration, int(width), int(height), timestamps)


def frame_sequence(info: VideoInfo, sample_fps: float) -> np.ndarray:
    """The frames that make up the clip sequence: at regular times 1 / rate apart (the nominal rate,
    or `sample_fps`), each the frame whose timestamp is nearest (see the module docstring)."""
    rate = sample_fps if sample_fps and sample_fps > 0 else info.fps
    timestamps = info.timestamps if info.timestamps is not None else np.arange(info.num_frames) / info.fps
    count = max(1, int(info.duration * rate + 1e-6))
    times = np.arange(count) / rate
    # nearest: the last frame that starts at most half a (nominal) frame after the sample time
    nearest = np.searchsorted(timestamps, times + 0.5 / info.fps + 1e-9, side="right") - 1
    return np.clip(nearest, 0, info.num_frames - 1)


def clip_count(num_frames: int, clip_len: int, stride: int) -> int:
    """Clips of `clip_len` frames every `stride` frames; at least one (padded) clip."""
    return 1 if num_frames < clip_len else (num_frames - clip_len) // stride + 1


@dataclass(frozen=True)
class Geometry:
    """Frames are scaled to width x height, then centre-cropped to crop x crop."""

    width: int
    height: int
    crop: int

    @classmethod
    def of(cls, backbone_name: str, info: VideoInfo) -> Geometry:
        declared = backbone(backbone_name)
        width, height = declared.frame_size(info.width, info.height)
        return cls(width, height, declared.crop)

    def cut(self, frame: np.ndarray) -> np.ndarray:
        top, left = (self.height - self.crop) // 2, (self.width - self.crop) // 2
        return frame[top : top + self.crop, left : left + self.crop]


def _pyav_frames(path, sequence: np.ndarray, needed, geometry: Geometry) -> Iterator[np.ndarray | None]:
    """The frames at the positions of `sequence`, in order, as uint8 [crop, crop, 3] RGB, or None
    where `needed(position)` is false (a frame in no clip is decoded but not scaled); ends early
    if the file holds fewer frames than its header says."""
    position, index = 0, -1
    # One scaler for the whole video: `frame.to_ndarray(width=...)` builds a new swscale context for
    # every frame, which cost 4.6-8.6 times the decoding and scaling itself (charades.mp4 and a 720p
    # video, PyAV 18.1); the same scaler gives the same pixels. Planar RGB (gbrp), which PyAV hands
    # on as [height, width, 3] RGB: swscale writes it faster than packed rgb24, the same pixels to the
    # last bit (H.264 4:2:0, 4:4:4 and 10-bit, VP9, MJPEG, RGB sources), and decoding took 5 % less
    # CPU on charades.mp4 (0.331 -> 0.313 s), 7 % on 720p H.264.
    scaler = VideoReformatter()
    with _open(path) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1  # the parallelism is decoding beside C3D, not inside one video
        try:
            for index, frame in enumerate(container.decode(stream)):
                small = None
                while position < len(sequence) and sequence[position] == index:  # sample_fps may repeat a frame
                    if small is None and needed(position):
                        rgb = scaler.reformat(
                            frame, width=geometry.width, height=geometry.height, format="gbrp", interpolation="AREA"
                        ).to_ndarray()  # [height, width, 3]
                        small = geometry.cut(rgb)
                    yield small if needed(position) else None
                    position += 1
                if position == len(sequence):
                    return
        except av.FFmpegError as error:
            raise VideoError(f"{path}: decoding failed at frame {index + 1} ({first_line(error)})") from error


def _decord_frames(path, sequence: np.ndarray, needed, geometry: Geometry, chunk: int) -> Iterator[np.ndarray | None]:
    """As `_pyav_frames`, read with decord `chunk` sequence positions at a time (`get_batch`)."""
    reader = _decord_reader(path, geometry.width, geometry.height)
    last = len(reader) - 1
    for start in range(0, len(sequence), chunk):
        positions = range(start, min(start + chunk, len(sequence)))
        wanted = sorted({min(int(sequence[p]), last) for p in positions if needed(p)})
        try:
            batch = reader.get_batch(wanted).asnumpy() if wanted else []  # [len(wanted), height, width, 3]
            reader.seek(0)  # stops the reader's read-ahead from holding the rest of the file (benchmarks/decode.py)
        except Exception as error:  # decord raises its own DECORDError and plain RuntimeErrors
            raise VideoError(f"{path}: decoding failed near frame {wanted[0] + 1} ({first_line(error)})") from error
        frames = {index: geometry.cut(frame) for index, frame in zip(wanted, batch, strict=True)}
        for position in positions:
            yield frames[min(int(sequence[position]), last)] if needed(position) else None


def decode_clips(
    path: str | os.PathLike,
    spec: FeatureSpec,
    info: VideoInfo | None = None,
    chunk_clips: int = CHUNK_CLIPS,
    decoder: str = "pyav",
) -> Iterator[np.ndarray]:
    """Yield the clips `spec` cuts from the video, `chunk_clips` at a time: uint8 [n, clip_len, crop, crop, 3] RGB.
    Software decoders only: NVDEC's clips stay on the GPU (`extract/nvdec.py`)."""
    if decoder not in SOFTWARE_DECODERS:
        raise InputError(f"unknown software decoder {decoder!r}: use one of {', '.join(SOFTWARE_DECODERS)}")
    info = info or probe(path, decoder)
    sequence = frame_sequence(info, spec.sample_fps)
    geometry = Geometry.of(spec.backbone, info)
    needed = clip_frames(spec)
    if decoder == "decord":
        frames = _decord_frames(path, sequence, needed, geometry, chunk=chunk_clips * max(spec.stride, spec.clip_len))
    else:
        frames = _pyav_frames(path, sequence, needed, geometry)
    yield from assemble_clips(frames, len(sequence), spec, path, chunk_clips=chunk_clips, stack=np.stack)


def clip_frames(spec: FeatureSpec):
    """Whether the frame at a sequence position lies in a clip (a frame in none is not scaled)."""
    return lambda position: position % spec.stride < spec.clip_len


def assemble_clips(frames, positions: int, spec: FeatureSpec, path, *, chunk_clips: int, stack) -> Iterator:
    """Clips of `spec.clip_len` frames every `spec.stride` from `frames` (one per sequence position, None where
    no clip needs it), stacked by `stack` (NumPy's, or torch's for frames on a GPU) `chunk_clips` at a time."""
    clip_len, stride = spec.clip_len, spec.stride
    total = clip_count(positions, clip_len, stride)
    window: list = []  # the frames at sequence positions first, first + 1, ...
    first, chunk, clips_done = 0, [], 0
    for frame in frames:
        window.append(frame)
        start = clips_done * stride
        if first + len(window) < start + clip_len:
            continue
        chunk.append(stack(window[start - first : start - first + clip_len]))  # [clip_len, crop, crop, 3]
        clips_done += 1
        drop = min(clips_done * stride - first, len(window))  # what no later clip needs
        del window[:drop]
        first += drop
        if len(chunk) == chunk_clips or clips_done == total:
            yield stack(chunk)  # [n, clip_len, crop, crop, 3]
            chunk = []
        if clips_done == total:
            return
    if chunk:  # the file held fewer frames than its header said
        yield stack(chunk)
    elif clips_done == 0 and window:  # shorter than one clip: its last frame repeated
        window += [window[-1]] * (clip_len - len(window))
        yield stack(window)[None]  # [1, clip_len, crop, crop, 3]
    elif clips_done == 0:
        raise VideoError(f"{path}: no frame could be decoded")


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
