"""Decoding on the GPU: NVDEC through PyAV, with the frames kept there and turned into clips by torch.

On a GPU node software decoding cannot feed C3D (docs/benchmarks.md), and NVDEC with every frame copied
back to the CPU for scaling was slower still. So the decoded frames stay on the GPU: PyAV hands each
NV12 plane over through DLPack without a copy, and the colour conversion, the scale to the backbone's
frame size and the centre crop run here, in torch, beside the backbone.

The arithmetic mirrors the software path (`extract/video.py`): FFmpeg's swscale scales the luma and
chroma planes to the output size and then converts YUV to RGB with the frame's matrix (BT.709 where the
frame says so, BT.601 otherwise, BT.2020 for BT.2020 video), limited range unless the frame is full
range; the scaling here is area averaging, as there. It runs the same on CPU tensors, which is how the
tests compare it with the software decoder's clips on real video.

A machine without a CUDA device, or a video NVDEC cannot read (a codec or profile it lacks), is read in
software instead, with a warning, and its manifest line says "pyav".
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Iterable, Iterator

import av
import torch
import torch.nn.functional as F
from av.codec.hwaccel import HWAccel, hwdevices_available

from hscnet.common.errors import first_line
from hscnet.extract.spec import FeatureSpec
from hscnet.extract.video import (
    CHUNK_CLIPS,
    Geometry,
    VideoError,
    VideoInfo,
    assemble_clips,
    clip_frames,
    frame_sequence,
)

log = logging.getLogger(__name__)

# (Kr, Kb) of the YUV matrices, by the colorspace numbers of FFmpeg (AVColorSpace) that use them;
# any other number, unspecified included, is BT.601, as swscale reads it.
MATRICES = {1: (0.2126, 0.0722), 9: (0.2627, 0.0593), 10: (0.2627, 0.0593)}
BT601 = (0.299, 0.114)
FULL_RANGE = 2  # AVCOL_RANGE_JPEG
FRAMES_PER_CONVERSION = 64  # frames converted in one batch: one kernel launch each for many frames


@functools.cache
def nvdec_missing() -> str:
    """Why this process cannot decode with NVDEC ("" when it can); said once, as a warning, when it cannot."""
    reason = ""
    if not torch.cuda.is_available():
        reason = "no CUDA device"
    elif "cuda" not in hwdevices_available():
        reason = "PyAV's FFmpeg was built without CUDA"
    if reason:
        log.warning(f"--decoder nvdec: no NVDEC here ({reason}); the videos are decoded in software (pyav)")
    return reason


def decoder_for(path: str | os.PathLike) -> str:
    """The decoder that reads this video here: "nvdec" where NVDEC can, else "pyav" (with a warning naming
    the video when the machine has NVDEC but the video's codec or profile is one it lacks)."""
    if nvdec_missing():
        return "pyav"
    reason = nvdec_reads(path)
    if reason:
        log.warning(f"{path}: NVDEC cannot read it ({reason}); decoded in software (pyav)")
        return "pyav"
    return "nvdec"


def open_on_gpu(path: str | os.PathLike):
    """The container, decoding on the GPU with every frame left there; no silent software fallback."""
    return av.open(str(path), hwaccel=HWAccel("cuda", allow_software_fallback=False, is_hw_owned=True))


def nvdec_reads(path: str | os.PathLike) -> str:
    """Why NVDEC cannot read this video ("" when its first frame decodes on the GPU)."""
    try:
        with open_on_gpu(path) as container:
            frame = next(container.decode(container.streams.video[0]), None)
    except (av.FFmpegError, OSError, StopIteration) as error:
        return first_line(error)
    if frame is None:
        return "no frame"
    if frame.format.name != "cuda":
        return f"decoded to {frame.format.name}, not on the GPU"
    return ""


def nv12_planes(frame: av.VideoFrame) -> tuple[torch.Tensor, torch.Tensor]:
    """A frame's NV12 planes as uint8 tensors where the frame lies (GPU or CPU), without a copy:
    luma [H, W] and interleaved chroma [H/2, W/2, 2]."""
    # The capsule itself, not the plane: torch would ask for it on a CUDA stream, which PyAV refuses. NVDEC
    # writes its frames on the default stream, which torch's work here also runs on, so they are in order.
    luma = torch.from_dlpack(frame.planes[0].__dlpack__())
    chroma = torch.from_dlpack(frame.planes[1].__dlpack__())
    return luma, chroma


def area_resize(planes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """[N, C, h, w] float to [N, C, height, width] by area averaging (swscale's AREA when shrinking)."""
    if planes.shape[-2:] == (height, width):
        return planes
    return F.interpolate(planes, size=(height, width), mode="area")


def nv12_to_clip_frames(
    luma: torch.Tensor, chroma: torch.Tensor, geometry: Geometry, *, colorspace: int, color_range: int
) -> torch.Tensor:
    """NV12 frames (luma uint8 [N, H, W], chroma uint8 [N, H/2, W/2, 2]) to the clips' frames:
    uint8 RGB [N, crop, crop, 3], scaled and cropped as `geometry` says, on the planes' device."""
    size = (geometry.height, geometry.width)
    y = area_resize(luma[:, None].float(), *size)[:, 0]  # [N, height, width]
    uv = area_resize(chroma.permute(0, 3, 1, 2).float(), *size)  # [N, 2, height, width]
    top, left = (geometry.height - geometry.crop) // 2, (geometry.width - geometry.crop) // 2
    crop = slice(top, top + geometry.crop), slice(left, left + geometry.crop)
    y, u, v = y[:, crop[0], crop[1]], uv[:, 0, crop[0], crop[1]], uv[:, 1, crop[0], crop[1]]  # [N, crop, crop]
    kr, kb = MATRICES.get(colorspace, BT601)
    kg = 1 - kr - kb
    if color_range == FULL_RANGE:
        y, u, v = y, u - 128, v - 128
    else:  # limited range: luma 16-235, chroma 16-240
        y, u, v = (y - 16) * (255 / 219), (u - 128) * (255 / 224), (v - 128) * (255 / 224)
    r = y + 2 * (1 - kr) * v
    g = y - (2 * (1 - kb) * kb / kg) * u - (2 * (1 - kr) * kr / kg) * v
    b = y + 2 * (1 - kb) * u
    return torch.stack([r, g, b], dim=-1).round_().clamp_(0, 255).to(torch.uint8)  # [N, crop, crop, 3]


def clip_frames_from_nv12(
    decoded: Iterable[av.VideoFrame], sequence, needed, geometry: Geometry
) -> Iterator[torch.Tensor | None]:
    """The frames at the positions of `sequence`, in order, as uint8 [crop, crop, 3] RGB tensors on the
    frames' device, or None where `needed(position)` is false; converted `FRAMES_PER_CONVERSION` at a time."""
    position, pending, slots = 0, [], []  # pending: (luma, chroma) to convert; slots: per position, an index or None
    colour = None

    def convert():
        luma = torch.stack([planes[0] for planes in pending])  # [n, H, W]
        chroma = torch.stack([planes[1] for planes in pending])  # [n, H/2, W/2, 2]
        return nv12_to_clip_frames(luma, chroma, geometry, colorspace=colour[0], color_range=colour[1])

    for index, frame in enumerate(decoded):
        colour = colour or (int(frame.colorspace), int(frame.color_range))
        wanted = None
        while position < len(sequence) and sequence[position] == index:  # sample_fps may repeat a frame
            if needed(position):
                if wanted is None:
                    # A copy at once: NVDEC decodes into a small pool of frames, which a held frame would drain.
                    pending.append(tuple(plane.clone() for plane in nv12_planes(frame)))
                    wanted = len(pending) - 1
                slots.append(wanted)
            else:
                slots.append(None)
            position += 1
        if len(pending) >= FRAMES_PER_CONVERSION or (position == len(sequence) and slots):
            converted = convert() if pending else None
            yield from (None if slot is None else converted[slot] for slot in slots)
            pending, slots = [], []
        if position == len(sequence):
            return
    if slots:  # the file held fewer frames than its header said
        converted = convert() if pending else None
        yield from (None if slot is None else converted[slot] for slot in slots)


def decode_clips_nvdec(
    path: str | os.PathLike, spec: FeatureSpec, info: VideoInfo, chunk_clips: int = CHUNK_CLIPS
) -> Iterator[torch.Tensor]:
    """As `extract.video.decode_clips`, decoded by NVDEC: uint8 [n, clip_len, crop, crop, 3] on the GPU."""
    sequence = frame_sequence(info, spec.sample_fps)
    geometry = Geometry.of(spec.backbone, info)
    with open_on_gpu(path) as container:
        stream = container.streams.video[0]
        frames = clip_frames_from_nv12(container.decode(stream), sequence, clip_frames(spec), geometry)
        try:
            yield from assemble_clips(frames, len(sequence), spec, path, chunk_clips=chunk_clips, stack=torch.stack)
        except av.FFmpegError as error:
            raise VideoError(f"{path}: NVDEC decoding failed ({first_line(error)})") from error
