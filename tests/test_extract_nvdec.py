"""NVDEC's path: the NV12 conversion, scaling and crop run here on CPU tensors against the software decoder's
clips of real video; the fallback to software where there is no NVDEC; the GPU itself where there is one."""

from __future__ import annotations

import logging

import av
import numpy as np
import pytest
import torch
from conftest import solid_frames

from hscnet.extract import nvdec
from hscnet.extract.encoders import build_encoder
from hscnet.extract.extractor import extract_video
from hscnet.extract.nvdec import clip_frames_from_nv12
from hscnet.extract.settings import ExtractSettings
from hscnet.extract.spec import FeatureSpec
from hscnet.extract.store import FeatureStore
from hscnet.extract.video import Geometry, assemble_clips, clip_frames, decode_clips, frame_sequence, probe
from hscnet.pipeline.extraction import run_extraction
from hscnet.pipeline.synthetic import write_video

# What the software decoder (swscale) and the torch path may differ by: mean absolute difference in grey
# levels over every pixel of every clip, and the cosine of float32 C3D features of the same clips.
GREY_LEVELS = 1.5
COSINE = 0.98


def clips_through_nv12(path, spec: FeatureSpec, *, limit: int | None = None) -> np.ndarray:
    """The clips of `path` as NVDEC's path makes them, with PyAV's software frames turned into NV12 on the CPU
    standing in for NVDEC's: the same planes, the same conversion code."""
    info = probe(path)
    sequence = frame_sequence(info, spec.sample_fps)
    geometry = Geometry.of(spec.backbone, info)
    with av.open(str(path)) as container:
        decoded = (frame.reformat(format="nv12") for frame in container.decode(video=0))
        frames = clip_frames_from_nv12(decoded, sequence, clip_frames(spec), geometry)
        chunks = assemble_clips(frames, len(sequence), spec, path, chunk_clips=8, stack=torch.stack)
        clips = []
        for chunk in chunks:
            clips.append(chunk.numpy())
            if limit and sum(map(len, clips)) >= limit:
                break
    return np.concatenate(clips)[:limit]


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_the_nv12_path_makes_the_software_decoders_clips_of_a_real_video(charades):
    spec = FeatureSpec()
    software = next(decode_clips(charades, spec, chunk_clips=3))  # C3D costs: 3 clips of its 28
    through_nv12 = clips_through_nv12(charades, spec, limit=3)
    assert through_nv12.shape == software.shape == (3, 16, 112, 112, 3)
    difference = np.abs(through_nv12.astype(np.float32) - software.astype(np.float32)).mean()
    assert difference < GREY_LEVELS
    encoder = build_encoder(ExtractSettings(precision="fp32", device="cpu"))
    assert cosines(encoder.encode(through_nv12), encoder.encode(software)).min() >= COSINE


def bt709_video(path, source, frames: int = 24):
    """A 640x360 H.264 video tagged BT.709 (as HD video is), from the real video's frames."""
    with av.open(str(path), "w") as output:
        stream = output.add_stream("libx264", rate=24, options={"preset": "ultrafast", "crf": "18"})
        stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
        stream.codec_context.colorspace, stream.codec_context.color_range = 1, 1  # BT.709, limited
        with av.open(str(source)) as original:
            for index, frame in enumerate(original.decode(video=0)):
                if index == frames:
                    break
                frame = frame.reformat(width=640, height=360, format="yuv420p", dst_colorspace=1, dst_color_range=1)
                frame.colorspace, frame.color_range, frame.pts = 1, 1, None
                output.mux(stream.encode(frame))
        output.mux(stream.encode())
    return path


def test_a_bt709_video_is_converted_with_its_own_matrix(charades, tmp_path, monkeypatch):
    video = bt709_video(tmp_path / "hd.mp4", charades)
    spec = FeatureSpec()
    software = np.concatenate(list(decode_clips(video, spec)))
    right = np.abs(clips_through_nv12(video, spec).astype(np.float32) - software).mean()
    monkeypatch.setattr(nvdec, "MATRICES", {})  # every frame read as BT.601
    wrong = np.abs(clips_through_nv12(video, spec).astype(np.float32) - software).mean()
    assert right < GREY_LEVELS < wrong


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_without_nvdec_extraction_falls_back_to_software_with_one_warning(tmp_path, caplog):
    nvdec.nvdec_missing.cache_clear()
    videos = tmp_path / "videos"
    videos.mkdir()
    for name, colour in (("a", (200, 30, 30)), ("b", (30, 30, 200))):
        write_video(videos / f"{name}.mp4", solid_frames(16, colour), fps=8)  # one clip each
    settings = ExtractSettings(decoder="nvdec", precision="fp32", device="cpu")
    with caplog.at_level(logging.WARNING, logger="hscnet"):
        summary = run_extraction(videos, tmp_path / "features", settings, use_ray=False, progress=False)
    assert not summary.failed
    said = [r.getMessage() for r in caplog.records if "nvdec" in r.getMessage().lower()]
    assert said == ["--decoder nvdec: no NVDEC here (no CUDA device); the videos are decoded in software (pyav)"]
    store = FeatureStore(tmp_path / "features")
    assert {record.decoder for record in store.records().values()} == {"pyav"}

    # A worker asked for NVDEC decides for itself, video by video, and records what read each.
    encoder = build_encoder(settings)
    features, record = extract_video(videos / "a.mp4", "a", encoder.encode, settings.spec(), decoder="nvdec")
    assert record.decoder == "pyav" and np.array_equal(features, store.read("a"))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_nvdec_makes_the_software_decoders_clips_on_the_gpu(charades):
    assert nvdec.nvdec_missing() == "" and nvdec.decoder_for(charades) == "nvdec"
    spec = FeatureSpec()
    software = np.concatenate(list(decode_clips(charades, spec)))
    on_gpu = torch.cat(list(nvdec.decode_clips_nvdec(charades, spec, probe(charades))))
    assert on_gpu.is_cuda and on_gpu.shape == software.shape
    assert np.abs(on_gpu.cpu().numpy().astype(np.float32) - software).mean() < GREY_LEVELS
    encoder = build_encoder(ExtractSettings(precision="fp32", device="cuda"))
    assert cosines(encoder.encode(on_gpu), encoder.encode(software)).min() >= COSINE
