"""PyAV beside decord on the same videos: frames/s, CPU per frame and peak memory, each in a fresh process.

Run: .venv/bin/python benchmarks/decode.py [--minutes 10] [--pause 1.0]

Videos: the real Charades video (480x270 H.264), a generated 1280x720 30 fps H.264 video of
`--minutes` minutes, and a generated 640x360 AV1 one. Each decoder reads each video through
`hscnet.extract.video.decode_clips` (C3D's 16-frame clips at 112x112, as `bin/extract` does) twice, in
fresh processes: once flat out, for frames/s; once pausing `--pause` seconds after every chunk
of 32 clips, as the C3D actor leaves the decoder waiting, for the peak resident memory (VmHWM)
and the CPU time the process spent per frame (a decoder that works ahead during the pauses
spends it there, taking it from C3D). The last line is the default decoder's frames/s over the
faster decoder's on the 720p video.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from hscnet.extract.settings import ExtractSettings

REPO = Path(__file__).resolve().parents[1]
CHARADES = Path(os.environ.get("HSCNET_SHARED_DATA", REPO.parent / "shared" / "data")) / "videos" / "charades.mp4"

DECODE = """
import json, os, sys, time
from hscnet.extract.spec import FeatureSpec
from hscnet.extract.video import decode_clips, probe
path, decoder, pause = sys.argv[1], sys.argv[2], float(sys.argv[3])
started, cpu_started = time.perf_counter(), time.process_time()
info = probe(path, decoder)
clips = 0
for chunk in decode_clips(path, FeatureSpec(), info, decoder=decoder):
    clips += len(chunk)
    time.sleep(pause)
seconds = time.perf_counter() - started - pause * (-(-clips // 32))
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
print(json.dumps({"frames": clips * 16, "seconds": seconds, "cpu": time.process_time() - cpu_started,
                  "peak": int(status["VmHWM"].split()[0]) * 1024}))
"""


# decord read directly, four ways, to find what stops its read-ahead from holding frames (dmlc/decord's
# issues suggest seek(0), num_threads=1, or one reader per chunk): chunks of 512 frames at 171x128.
DECORD_VARIANT = """
import json, sys, time
from decord import VideoReader, cpu
path, variant, pause = sys.argv[1], sys.argv[2], float(sys.argv[3])
threads = 1 if variant in ("num_threads=1", "seek(0)") else 0
reader = VideoReader(path, ctx=cpu(0), width=171, height=128, num_threads=threads)
total = len(reader)
for start in range(0, total, 512):
    if variant == "a reader per chunk" and start:
        reader = VideoReader(path, ctx=cpu(0), width=171, height=128, num_threads=threads)
    reader.get_batch(list(range(start, min(start + 512, total)))).asnumpy()
    if variant == "seek(0)":
        reader.seek(0)
    time.sleep(pause)
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
print(json.dumps({"peak": int(status["VmHWM"].split()[0]) * 1024}))
"""
DECORD_VARIANTS = ("plain", "num_threads=1", "seek(0)", "a reader per chunk")


def run(video: Path, decoder: str, pause: float, script: str = DECODE) -> dict:
    output = subprocess.run(
        [sys.executable, "-c", script, str(video), decoder, str(pause)], capture_output=True, text=True, cwd=REPO
    )
    if output.returncode:
        raise SystemExit(f"{decoder} on {video.name} failed: {output.stderr.strip().splitlines()[-1]}")
    return json.loads(output.stdout.strip().splitlines()[-1])


def av1_video(path: Path) -> Path:
    from hscnet.pipeline.synthetic import write_video

    y, x = np.mgrid[0:360, 0:640]
    frames = (
        np.stack([(x + 4 * i) % 256, (y + i) % 256, np.full_like(x, 100)], -1).astype(np.uint8) for i in range(30 * 20)
    )
    return write_video(path, frames, fps=30, codec="libsvtav1", options={"preset": "12"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=10, help="length of the generated 720p video")
    parser.add_argument("--pause", type=float, default=1.0, help="seconds of simulated C3D work per chunk of 32 clips")
    parser.add_argument(
        "--decord-variants",
        action="store_true",
        help="also the peak memory of decord read four ways on the 720p video (slow: pauses)",
    )
    args = parser.parse_args()
    from extract_speed import cpu_name, long_video, one_minute_720p  # benchmarks/ is this script's folder

    with tempfile.TemporaryDirectory(prefix="hscnet-decode-bench-") as folder:
        work = Path(folder)
        long = long_video(work / f"{args.minutes}min_720p.mp4", args.minutes, one_minute_720p(work / "minute.mp4"))
        videos = {"charades 480x270 H.264 30 s": CHARADES, f"1280x720 H.264 {args.minutes} min": long,
                  "640x360 AV1 20 s": av1_video(work / "av1.mkv")}  # fmt: skip
        default = ExtractSettings().decoder
        print(f"CPU: {cpu_name()}; default decoder: {default}; pause per chunk {args.pause:g} s")
        print(f"{'video':32} {'decoder':8} {'frames/s':>9} {'CPU ms/frame (paused)':>22} {'peak GiB (paused)':>18}")
        rates = {}
        for label, video in videos.items():
            for decoder in ("pyav", "decord"):
                flat, paused = run(video, decoder, 0.0), run(video, decoder, args.pause)
                rates[label, decoder] = flat["frames"] / flat["seconds"]
                print(
                    f"{label:32} {decoder:8} {rates[label, decoder]:9.0f} "
                    f"{1000 * paused['cpu'] / paused['frames']:22.2f} {paused['peak'] / 1024**3:18.2f}"
                )
        long_label = next(label for label in videos if "720" in label)
        if args.decord_variants:
            for variant in DECORD_VARIANTS:
                peak = run(long, variant, 1.5 * args.pause, DECORD_VARIANT)["peak"]
                print(f"{long_label}, decord read directly, {variant}: peak {peak / 1024**3:.2f} GiB (paused)")
        fastest = max(rates[long_label, d] for d in ("pyav", "decord"))
        print(f"{long_label}: the default decoder ({default}) over the faster one, frames/s ratio: "
              f"{rates[long_label, default] / fastest:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
