"""Extraction speed and memory: the whole pipeline beside C3D alone and decoding alone.

Run: .venv/bin/python benchmarks/extract.py [--copies N] [--skip-memory] [--device cpu|cuda]

Throughput, on N copies of the real Charades video of ../shared/data (480x270, 15 fps), in one
run: frames/s of decoding alone (PyAV, as extraction reads), clips/s of the C3D
forward alone on those decoded clips (same batch and precision), and clips/s of the whole
bin/extract pipeline (Ray start-up included). The last line is pipeline / C3D alone (target: at
least 0.85 on 2 cores: decoding hidden behind compute). Ray's start-up and shutdown cost about
6 s once per run whatever its size (`ray.init` 2.0 s, the C3D actor ready 1.8 s, shutdown 1.4 s);
60 copies (1680 clips, about 3 minutes) keep that share nearer a real run's, where thousands of
videos share it. With 30 copies the ratio was 0.84-0.87 over three runs.

Memory: the peak resident memory of extracting a 10-minute 720p H.264 video, beside a 2-minute
one of the same kind, each in a fresh process (target: under 2 GiB, not growing with length).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Scripts here run with this folder first on sys.path, where extract.py would shadow the `extract` package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402

from extract.video import decode_clips, probe  # noqa: E402
from pipeline.extract import ExtractSettings, run_extraction  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

# VmHWM, not ru_maxrss: Linux carries the parent's resident size at fork into the child's ru_maxrss
# across exec, so ru_maxrss reported this script's own size (1.80 GiB) instead of the extraction's.
MEASURE = """
import json, sys, time
from pipeline.extract import ExtractSettings, extract_video
settings = ExtractSettings(device=sys.argv[2])
started = time.time()
features, record = extract_video(sys.argv[1], "v", settings.encoder().encode, settings, "random")
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
peak = int(status["VmHWM"].split()[0]) * 1024
print(json.dumps({"clips": record.clips, "status": record.status, "seconds": time.time() - started, "peak": peak}))
"""


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
    from pipeline.synthetic import write_video

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


def measure_memory(video: Path, device: str) -> dict:
    output = subprocess.run(
        [sys.executable, "-c", MEASURE, str(video), device], capture_output=True, text=True, check=True
    )
    return json.loads(output.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=60, help="copies of the Charades video (28 clips each)")
    parser.add_argument("--skip-memory", action="store_true", help="skip the 10-minute 720p memory measurement")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    shared = Path(os.environ.get("HSCNET_SHARED_DATA", REPO.parent / "shared" / "data"))
    source = shared / "videos" / "charades.mp4"
    if not source.is_file():
        sys.exit(f"{source} not found: set HSCNET_SHARED_DATA")
    settings = ExtractSettings(device=args.device)
    work = Path(tempfile.mkdtemp(prefix="hscnet-extract-bench-"))
    try:
        videos = work / "videos"
        videos.mkdir()
        for index in range(args.copies):
            shutil.copy(source, videos / f"charades_{index:03d}.mp4")
        info = probe(source)

        started = time.perf_counter()
        clips = [chunk for path in sorted(videos.iterdir()) for chunk in decode_clips(path, settings.clip)]
        decode_seconds = time.perf_counter() - started
        frames = args.copies * info.num_frames
        total = sum(len(c) for c in clips)

        encoder = settings.encoder()
        encoder.encode(clips[0][: settings.batch_size])  # warm-up
        started = time.perf_counter()
        for chunk in clips:
            encoder.encode(chunk)
        model_rate = total / (time.perf_counter() - started)
        del clips

        started = time.perf_counter()
        summary = run_extraction(videos, work / "features", settings, progress=False)
        pipeline_seconds = time.perf_counter() - started
        assert not summary.failed, summary.report()
        pipeline_rate = summary.clips / pipeline_seconds
        shape = f"{info.width}x{info.height}, {info.fps:.2f} fps, {info.num_frames} frames"
        print(f"{args.copies} copies of {source.name} ({shape}): {total} clips")
        print(f"{encoder.describe()}, batch {settings.batch_size}, {os.cpu_count()} cores")
        print(f"decoding alone: {frames / decode_seconds:,.0f} frames/s ({total / decode_seconds:.1f} clips/s)")
        print(f"C3D forward alone: {model_rate:.2f} clips/s")
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
        print(f"pipeline / C3D alone clips per second, ratio: {pipeline_rate / model_rate:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
