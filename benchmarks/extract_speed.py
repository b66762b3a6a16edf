"""Extraction speed and memory: the whole pipeline beside the best C3D rate this CPU offers.

Run: .venv/bin/python benchmarks/extract_speed.py [--minutes M | --copies N] [--skip-memory] [--device cpu|cuda]
                                                [--backbone c3d|x3d_m|slowfast_r50|r2plus1d_r50] [--seconds S]

With `--backbone` another network is timed the same way (its precisions; layouts are C3D's), and
the cost of a clip is also given per second of video, since the backbones' clips span different
lengths of time (C3D's 16 frames at the video's rate, X3D-M's 16 at 6 fps).

It prints what the processor offers (`torch.backends.cpu.get_cpu_capability()`, native bf16 or
not), then, in one run, on N copies of the real Charades video of ../shared/data (480x270,
15 fps; with --seconds S its first S seconds, encoded again: a quick check): frames/s of
decoding alone (PyAV, as extraction reads); clips/s of the C3D forward
alone in every precision and layout this device runs (float32 contiguous and channels_last_3d,
and bf16 where it is native; fp16 and float32 on CUDA), each on the same decoded clips,
alternating, and which of them `C3DEncoder` picks by itself; on CPU that one again as the
extraction worker runs it, two forward passes at once of half the threads each
(`hscnet.pipeline.passes.cpu_passes`); and clips/s of the whole bin/extract pipeline (Ray start-up
included). The last line is the pipeline's rate over the best of those C3D rates (target: at
least 0.85 on 2 cores, on either kind of CPU: decoding hidden behind compute).
Ray's start-up and shutdown cost about 6 s once per run whatever its size, so the run is sized by
time, not by a count of videos: as many copies as the best C3D rate would take `--minutes` (3)
to encode, which on every CPU keeps that share about the same, nearer a real run's, where
thousands of videos share it. A fixed 60 copies (1680 clips) took 100 s on the AMX Xeon and
19 minutes on a 2-core CPU without bf16.

Memory: the peak resident memory of extracting a 10-minute 720p H.264 video, beside a 2-minute
one of the same kind, each in a fresh process (target: under 2 GiB, not growing with length).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from layouts import encoder_in_layout

from hscnet.extract.encoders import build_encoder
from hscnet.extract.precision import cpu_prefers_bf16
from hscnet.extract.settings import ExtractSettings
from hscnet.extract.video import decode_clips, probe
from hscnet.pipeline.extraction import run_extraction
from hscnet.pipeline.passes import cpu_passes

REPO = Path(__file__).resolve().parents[1]
DECODE_COPIES = 20  # decoding alone is timed on at most this many copies: a rate, steady after a few

# VmHWM, not ru_maxrss: Linux carries the parent's resident size at fork into the child's ru_maxrss
# across exec, so ru_maxrss reported this script's own size (1.80 GiB) instead of the extraction's.
MEASURE = """
import json, sys, time
from hscnet.extract.extractor import extract_video
from hscnet.extract.settings import ExtractSettings
settings = ExtractSettings(device=sys.argv[2])
started = time.time()
features, record = extract_video(sys.argv[1], "v", build_encoder(settings).encode, settings.spec())
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
peak = int(status["VmHWM"].split()[0]) * 1024
print(json.dumps({"clips": record.clips, "status": record.status, "seconds": time.time() - started, "peak": peak}))
"""


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            return next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        return "unknown CPU"


def modes(device: str, backbone: str = "c3d") -> list[tuple[str, str]]:
    """(precision, layout) pairs this device runs the backbone in natively (layouts are C3D's choice only)."""
    if backbone != "c3d":
        if device == "cuda":
            return [("fp32", "contiguous"), ("fp16", "contiguous")]
        return [("fp32", "contiguous")] + ([("bf16", "contiguous")] if cpu_prefers_bf16() else [])
    if device == "cuda":
        return [("fp16", "contiguous"), ("fp16", "channels_last_3d"), ("fp32", "contiguous")]
    found = [("fp32", "contiguous"), ("fp32", "channels_last_3d")]
    return found + ([("bf16", "channels_last_3d"), ("bf16", "contiguous")] if cpu_prefers_bf16() else [])


def layout_name(encoder) -> str:
    return "channels_last_3d" if getattr(encoder, "memory_format", None) == torch.channels_last_3d else "contiguous"


def in_passes(encoder, passes: int, threads: int):
    """`encoder.encode` as a CPU worker runs it (hscnet.pipeline.passes.cpu_passes): the clips split among
    `passes` Python threads that each run the network on `threads` torch threads.

    Fresh threads, not `ForwardPasses`, whose first part runs on the calling thread: here that is the
    thread that timed the other modes on every core, and in one process it ran these passes 10 % slower
    (23.1 against 25.7 clips/s, 32 clips, 3 rounds), which a worker's threads, always on `threads`, are not."""

    def encode(clips: np.ndarray) -> None:
        saved = torch.get_num_threads()
        torch.set_num_threads(threads)  # each new thread starts with this count
        try:
            parts = [part for part in np.array_split(clips, passes) if len(part)]
            workers = [threading.Thread(target=encoder.encode, args=(part,)) for part in parts]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
        finally:
            torch.set_num_threads(saved)

    return encode


def c3d_rates(pairs, clips: np.ndarray, picked, rounds: int = 3, backbone: str = "c3d") -> dict[str, float]:
    """Clips/s of each mode on the same clips: rounds of every mode in turn, the best round each. On
    CPU `picked`, the encoder in the mode it picks by itself, is also timed as the extraction worker
    runs it, in passes at once."""
    device, batch_size = str(picked.device), picked.batch_size
    settings = ExtractSettings(batch_size=batch_size, device=device, backbone=backbone)
    encoders = {
        f"{precision} {layout}": encoder_in_layout(replace(settings, precision=precision), layout).encode
        for precision, layout in pairs
    }
    passes, threads = cpu_passes(os.cpu_count() or 1)
    if device == "cpu" and passes > 1:
        name = f"{picked.precision} {layout_name(picked)}, the worker's {passes} passes of {threads} thread(s) at once"
        encoders[name] = in_passes(picked, passes, threads)
    best = dict.fromkeys(encoders, float("inf"))
    per_round = clips[: max(min(batch_size, len(clips)), len(clips) // rounds)]
    for encode in encoders.values():
        encode(clips[:batch_size])  # warm-up: oneDNN builds its kernels
    for _ in range(rounds):
        for name, encode in encoders.items():
            started = time.perf_counter()
            encode(per_round)
            if device == "cuda":
                torch.cuda.synchronize()
            best[name] = min(best[name], time.perf_counter() - started)
    return {name: len(per_round) / seconds for name, seconds in best.items()}


def long_video(path: Path, minutes: int, minute: Path) -> Path:
    """A video of `minutes` minutes: one encoded minute, its packets muxed again and again."""
    import av

    with av.open(str(minute)) as source, av.open(str(path), "w", format="mp4") as target:
        stream_in = source.streams.video[0]
        stream_out = target.add_stream_from_template(stream_in)
        packets = [p for p in source.demux(stream_in) if p.dts is not None]
        span = packets[-1].pts + packets[-1].duration - packets[0].pts
        for repeat in range(minutes):
            for packet in packets:
                packet.pts += span if repeat else 0
                packet.dts += span if repeat else 0
                packet.stream = stream_out
                target.mux(packet)
    return path


def one_minute_720p(path: Path) -> Path:
    from hscnet.pipeline.synthetic import write_video

    rng = np.random.default_rng(0)
    base = np.linspace(rng.uniform(0, 80, 3), rng.uniform(80, 160, 3), 720, dtype=np.float32)[:, None, :]
    background = np.repeat(base, 1280, axis=1).astype(np.uint8)

    def frames():
        for index in range(30 * 60):
            frame = background.copy()
            x = int(200 + 800 * (0.5 + 0.5 * np.sin(index / 40)))
            frame[300:420, x : x + 120] = (220, 40, 40)
            yield frame

    return write_video(path, frames(), fps=30, options={"preset": "ultrafast", "x264-params": "log-level=error"})


def first_seconds(source: Path, seconds: float, path: Path) -> Path:
    """The first `seconds` of `source`, decoded and encoded again (H.264) at its size and frame rate."""
    import av

    from hscnet.pipeline.synthetic import write_video

    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate)
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)][: round(seconds * fps)]
    return write_video(path, frames, fps=fps, options={"preset": "ultrafast", "x264-params": "log-level=error"})


def measure_memory(video: Path, device: str) -> dict:
    output = subprocess.run(
        [sys.executable, "-c", MEASURE, str(video), device], capture_output=True, text=True, check=True
    )
    return json.loads(output.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sized = "copies of the Charades video, 28 clips each (default: as many as --minutes of C3D at its best rate)"
    parser.add_argument("--copies", type=int, default=0, help=sized)
    parser.add_argument("--minutes", type=float, default=3.0, help="the pipeline's work, in minutes of C3D alone")
    parser.add_argument("--skip-memory", action="store_true", help="skip the 10-minute 720p memory measurement")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--sample-clips", type=int, default=96, help="clips each C3D mode is timed on (default 96)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over the modes, the best of each kept")
    parser.add_argument("--backbone", default="c3d", help="c3d (default), x3d_m, slowfast_r50 or r2plus1d_r50")
    quick = "time the first this many seconds of the video (a quick check; 0: all 30.7 s)"
    parser.add_argument("--seconds", type=float, default=0.0, help=quick)
    args = parser.parse_args()
    shared = Path(os.environ.get("HSCNET_SHARED_DATA", REPO.parent / "shared" / "data"))
    source = shared / "videos" / "charades.mp4"
    if not source.is_file():
        sys.exit(f"{source} not found: set HSCNET_SHARED_DATA")
    settings = ExtractSettings(device=args.device, backbone=args.backbone)
    spec = settings.spec()
    work = Path(tempfile.mkdtemp(prefix="hscnet-extract-bench-"))
    try:
        if args.seconds > 0:
            source = first_seconds(source, args.seconds, work / source.name)
        info = probe(source)
        started = time.perf_counter()
        per_copy = np.concatenate(list(decode_clips(source, spec)))  # [clips, ...] of one copy
        decode_bound = len(per_copy) / (time.perf_counter() - started) * (os.cpu_count() or 1)  # on a GPU
        sample = per_copy[: args.sample_clips]

        chosen = build_encoder(settings)
        print(
            f"CPU: {cpu_name()}, {os.cpu_count()} cores; torch capability {torch.backends.cpu.get_cpu_capability()}, "
            f"bf16 preferred {'yes' if cpu_prefers_bf16() else 'no'}; {chosen.describe()}"
        )
        network = "C3D" if args.backbone == "c3d" else args.backbone
        rates = c3d_rates(modes(chosen.device.type, args.backbone), sample, chosen, args.rounds, args.backbone)
        clip_seconds = spec.clip_len / (spec.sample_fps or info.fps)  # of video, for stride = clip length
        for name, rate in rates.items():
            print(f"{network} forward alone, {name}: {rate:.2f} clips/s, {1000 / rate:.0f} ms a clip "
                  f"({1000 / rate / clip_seconds:.0f} ms per second of video; {spec.dim}-d)")  # fmt: skip
        best = max(rates, key=rates.get)
        picked = f"{chosen.precision} {layout_name(chosen)}"
        print(f"best: {best} ({rates[best]:.2f} clips/s); the encoder picks {picked} by itself")
        model_rate = rates[best]

        expected = min(model_rate, decode_bound)  # clips/s, what bounds the pipeline
        copies = args.copies or max(2, math.ceil(args.minutes * 60 * expected / len(per_copy)))
        videos = work / "videos"
        videos.mkdir()
        for index in range(copies):
            shutil.copy(source, videos / f"charades_{index:03d}.mp4")
        started = time.perf_counter()
        timed = sorted(videos.iterdir())[:DECODE_COPIES]
        decoded = sum(len(chunk) for path in timed for chunk in decode_clips(path, spec))
        decode_seconds = time.perf_counter() - started
        frames = len(timed) * info.num_frames

        started = time.perf_counter()
        summary = run_extraction(videos, work / "features", settings, progress=False)
        pipeline_seconds = time.perf_counter() - started
        assert not summary.failed, summary.report()
        pipeline_rate = summary.clips / pipeline_seconds
        shape = f"{info.width}x{info.height}, {info.fps:.2f} fps, {info.num_frames} frames"
        size = "" if args.copies else f"; {args.minutes:g} minutes' work at {expected:.2f} clips/s"
        batch = f"{network} batch {settings.batch_size}"
        print(f"{copies} copies of {source.name} ({shape}{size}): {summary.clips} clips, {batch}")
        print(f"decoding alone: {frames / decode_seconds:,.0f} frames/s ({decoded / decode_seconds:.1f} clips/s)")
        print(f"bin/extract pipeline (Ray start-up included): {pipeline_rate:.2f} clips/s, {pipeline_seconds:.1f} s")
        if not args.skip_memory:
            minute = one_minute_720p(work / "minute.mp4")
            for minutes in (2, 10):
                video = long_video(work / f"{minutes}min.mp4", minutes, minute)
                result = measure_memory(video, args.device)
                print(
                    f"{minutes}-minute 1280x720 30 fps video: {result['clips']} clips in {result['seconds']:.0f} s, "
                    f"peak memory {result['peak'] / 2**30:.2f} GiB"
                )
        print(f"pipeline / best {network} alone clips per second, ratio: {pipeline_rate / model_rate:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
