"""C3D extraction on a GPU with decoding beside it: which of the two bounds it, and at what rate.

Run: python3 benchmarks/gpu_extract.py [--copies N] [--workers W] [--device cuda]

Made for a GPU machine without Ray (benchmarks/gpu.sh runs it): decoding runs in W processes
(PyAV, as bin/extract reads; default all cores but one), C3D in this process. It writes a
one-minute 1280x720 30 fps H.264 video (a typical source for ActivityNet-style videos) and
times, on N copies of it, one after another: decoding alone (clips/s with W processes), the C3D
forward alone in fp16 autocast (contiguous and channels_last_3d), bf16 and float32, and both
together, chunks streaming from the decoders to C3D. It says which one bounds the pipeline and
by how much, and where decoding's time goes: one process's frames/s decoding alone and with the
scale to C3D's 171x128 RGB, in software and, on CUDA, on the GPU's video decoder (NVDEC, through
PyAV's hwaccel). On CUDA it then times `--decoder nvdec`'s path (`hscnet.extract.nvdec`: frames kept
on the GPU, converted and cropped there) alone with 1 to K streams at once (threads of this process),
and with C3D, each stream encoding what it decodes; and forecasts an ActivityNet-sized corpus
(20,000 two-minute 720p videos at stride 8) from the best pipeline's rate. The last line is the
pipeline's rate over the slower of the two alone; with NVDEC, the line before it is NVDEC's
pipeline over C3D alone.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from layouts import encoder_in_layout

from hscnet.extract.c3d import C3DEncoder
from hscnet.extract.settings import ExtractSettings
from hscnet.extract.spec import FeatureSpec
from hscnet.extract.video import decode_clips


def test_video(path: Path, seconds: int, width: int = 1280, height: int = 720, fps: int = 30) -> Path:
    """A moving square over a gradient, H.264, `seconds` long."""
    from hscnet.pipeline.synthetic import write_video

    rng = np.random.default_rng(0)
    base = np.linspace(rng.uniform(0, 80, 3), rng.uniform(80, 160, 3), height, dtype=np.float32)[:, None, :]
    background = np.repeat(base, width, axis=1).astype(np.uint8)

    def frames():
        for index in range(fps * seconds):
            frame = background.copy()
            x = int(width * (0.2 + 0.6 * (0.5 + 0.5 * np.sin(index / 40))))
            frame[height // 3 : height // 3 + 120, x : x + 120] = (220, 40, 40)
            yield frame

    return write_video(path, frames(), fps=fps, options={"preset": "ultrafast", "x264-params": "log-level=error"})


def frame_rates(path: str, hardware: bool) -> tuple[float, float]:
    """Frames/s of one process reading `path`: decoding alone, and decoding with the scale to
    C3D's 171x128 RGB (as `decode_clips` does it), in software or on NVDEC (`hardware`)."""
    import av
    from av.codec.hwaccel import HWAccel
    from av.video.reformatter import VideoReformatter

    rates = []
    for scale in (False, True):
        options = {"hwaccel": HWAccel("cuda", allow_software_fallback=False)} if hardware else {}
        frames, started, scaler = 0, time.perf_counter(), VideoReformatter()
        with av.open(path, **options) as container:
            stream = container.streams.video[0]
            if not hardware:
                stream.codec_context.thread_count = 1  # as decode_clips: one core per video
            for frame in container.decode(stream):
                if scale:
                    scaler.reformat(frame, width=171, height=128, format="rgb24", interpolation="AREA").to_ndarray()
                frames += 1
        rates.append(frames / (time.perf_counter() - started))
    return rates[0], rates[1]


def decoders(path: str, device: str) -> None:
    """Where decoding's time goes, software beside NVDEC where there is CUDA."""
    import av

    kinds = [("software", False)] + ([("NVDEC (PyAV hwaccel cuda)", True)] if device == "cuda" else [])
    for name, hardware in kinds:
        try:
            alone, scaled = frame_rates(path, hardware)
        except (av.FFmpegError, OSError) as error:  # an FFmpeg or a driver without NVDEC: say so, go on
            print(f"one process, {name}: not available ({type(error).__name__}: {str(error)[:120]})")
            continue
        print(
            f"one process, {name}: {alone:.0f} frames/s decoding alone, {scaled:.0f} with the scale to "
            f"171x128 RGB (the scale takes {1 - scaled / alone:.0%} of the time)"
        )


def nvdec_rates(videos: list[str], encoder: C3DEncoder, streams: tuple[int, ...]) -> float | None:
    """Clips/s of NVDEC's path alone and beside C3D, with 1 to K videos decoding at once; the best
    pipeline rate, or None where there is no NVDEC."""
    from concurrent.futures import ThreadPoolExecutor

    from hscnet.extract.nvdec import decode_clips_nvdec, nvdec_missing, nvdec_reads
    from hscnet.extract.video import probe

    reason = nvdec_missing() or nvdec_reads(videos[0])
    if reason:
        print(f"NVDEC clips: not available ({reason})")
        return None
    spec = FeatureSpec()
    infos = {video: probe(video) for video in videos}

    def decoded(video: str) -> int:
        return sum(len(chunk) for chunk in decode_clips_nvdec(video, spec, infos[video]))

    def encoded(video: str) -> int:
        return sum(len(encoder.encode(chunk)) for chunk in decode_clips_nvdec(video, spec, infos[video]))

    best = 0.0
    for work, label in ((decoded, "NVDEC decoding alone"), (encoded, f"NVDEC and C3D ({encoder.precision})")):
        for count in streams:
            with ThreadPoolExecutor(count) as pool:
                work(videos[0])  # warm-up: the decoder's and the kernels' first use, not timed
                torch.cuda.synchronize()
                started = time.perf_counter()
                total = sum(pool.map(work, videos))
                torch.cuda.synchronize()
                rate = total / (time.perf_counter() - started)
            print(f"{label}, {count} stream(s): {rate:.1f} clips/s")
            if work is encoded:
                best = max(best, rate)
    return best


def count_clips(path: str) -> int:
    torch.set_num_threads(1)
    return sum(len(chunk) for chunk in decode_clips(path, FeatureSpec()))


def chunks_of(path: str) -> list[np.ndarray]:
    return list(decode_clips(path, FeatureSpec()))


def c3d_rate(encoder: C3DEncoder, clips: np.ndarray, rounds: int = 3) -> float:
    encoder.encode(clips[: encoder.batch_size])
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        encoder.encode(clips)
        if encoder.device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - started)
    return len(clips) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=8, help="copies of the one-minute video (112 clips each)")
    parser.add_argument("--seconds", type=int, default=60, help="length of the test video")
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 1), help="decoding processes")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, default=32, help="clips per C3D forward")
    args = parser.parse_args()
    where = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"device {args.device} ({where}); torch {torch.__version__}; {args.workers} decoding processes")
    work = Path(tempfile.mkdtemp(prefix="hscnet-gpu-extract-"))
    context = multiprocessing.get_context("spawn")  # CUDA and fork do not mix
    try:
        first = test_video(work / "video_000.mp4", args.seconds)
        videos = [str(first)] + [str(shutil.copy(first, work / f"video_{i:03d}.mp4")) for i in range(1, args.copies)]

        with context.Pool(args.workers) as pool:
            pool.map(count_clips, videos[:1])  # the workers' start-up and imports, not timed
            started = time.perf_counter()
            total = sum(pool.map(count_clips, videos))
            decode_rate = total / (time.perf_counter() - started)
        print(f"decoding alone: {decode_rate:.1f} clips/s ({total} clips of 1280x720 30 fps H.264)")
        decoders(videos[0], args.device)

        sample = np.concatenate(chunks_of(videos[0]))[: 4 * args.batch_size]
        precisions = [("fp16", "contiguous"), ("fp16", "channels_last_3d"), ("bf16", "channels_last_3d"),
                      ("fp32", "contiguous")]  # fmt: skip
        if args.device != "cuda":
            precisions = [("auto", "auto")]
        rates, encoders = {}, {}
        settings = ExtractSettings(device=args.device, batch_size=args.batch_size)
        for precision, layout in precisions:
            encoder = encoder_in_layout(replace(settings, precision=precision), layout)
            name = f"{encoder.precision} {layout}"
            rates[name], encoders[name] = c3d_rate(encoder, sample), encoder
            print(f"C3D alone, {name}: {rates[name]:.1f} clips/s")
        best = max(rates, key=rates.get)
        encoder = encoders[best]  # built and warmed up by its timing

        with context.Pool(args.workers) as pool:
            pool.map(count_clips, videos[:1])
            started = time.perf_counter()
            encoded = 0
            for chunks in pool.imap(chunks_of, videos):
                for chunk in chunks:
                    encoded += len(encoder.encode(chunk))
            pipeline_rate = encoded / (time.perf_counter() - started)
        print(f"decoding and C3D ({best}) together: {pipeline_rate:.1f} clips/s")
        bound, slower = ("decoding", decode_rate) if decode_rate < rates[best] else ("C3D", rates[best])
        print(
            f"bound by {bound}: decoding {decode_rate:.1f} clips/s, C3D {rates[best]:.1f} clips/s "
            f"({max(decode_rate, rates[best]) / min(decode_rate, rates[best]):.1f}x apart)"
        )
        if args.device == "cuda":
            gpu_rate = nvdec_rates(videos, encoder, tuple(sorted({1, 2, 4, args.workers})))
            if gpu_rate is not None:
                pipeline_rate = max(pipeline_rate, gpu_rate)
                print(f"NVDEC pipeline / C3D alone: {gpu_rate / rates[best]:.2f}")
        # ActivityNet-sized: 20,000 videos of 2 minutes at 30 fps, clips every 8 frames.
        clips = 20_000 * (120 * 30 - 16) // 8
        print(f"forecast, 20,000 two-minute 720p videos at stride 8 ({clips:,} clips): "
              f"{clips / pipeline_rate / 3600:.1f} hours at {pipeline_rate:.0f} clips/s")  # fmt: skip
        print(f"pipeline / the slower stage alone, ratio: {pipeline_rate / slower:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
