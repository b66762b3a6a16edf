"""Wall time of bin/ground on a 2-minute video beside the time of extracting that video alone.

Run: .venv/bin/python benchmarks/ground.py [--checkpoint CKPT]

It writes a 2-minute, 30 fps video of the demo world (pipeline/synthetic.py) with a paragraph
of its episodes, times `bin/ground` on it as a user runs it (a new process: start-up, imports,
model loading, decoding, C3D, text, model), then the decoding and C3D of the same video alone,
in this process, with the same settings. The last line is their ratio (target: at most 1.2, so
start-up, text and model add little). The checkpoint defaults to the demo's (make demo).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from hscnet.checkpoint import load_model
from hscnet.extract.encoders import build_encoder
from hscnet.extract.extractor import extract_video
from hscnet.extract.store import video_id_for
from hscnet.grounder import extraction_settings
from hscnet.pipeline import synthetic
from hscnet.pipeline.ground import DEMO_CHECKPOINT

REPO = Path(__file__).resolve().parents[1]


def two_minute_scene(rng: np.random.Generator) -> synthetic.Scene:
    """Episodes of the demo world, one after another, until two minutes are filled."""
    episodes, t = [], 2.0
    while t < 110:
        scene = synthetic.make_scene("part", rng)
        shift = t - scene.episodes[0].start  # once: shifting the first episode moves scene.episodes[0].start
        for episode in scene.episodes:
            episode.keyframes = [(time + shift, state) for time, state in episode.keyframes]
            episodes.append(episode)
        t = episodes[-1].end + 2.0
    return synthetic.Scene("ground-bench", 120.0, [e for e in episodes if e.end < 119])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=str(DEMO_CHECKPOINT))
    args = parser.parse_args()
    if not Path(args.checkpoint).is_file():
        sys.exit(f"{args.checkpoint} not found: run `make demo` first, or give --checkpoint")
    with tempfile.TemporaryDirectory(prefix="hscnet-ground-bench-") as folder:
        work = Path(folder)
        rng = np.random.default_rng(0)
        scene = two_minute_scene(rng)
        frames = (
            synthetic.render(scene.states_at(i / 30), np.full((synthetic.HEIGHT, synthetic.WIDTH, 3), 30, np.float32))
            for i in range(120 * 30)
        )
        video = synthetic.write_video(
            work / "two_minutes.mp4", frames, fps=30, options={"x264-params": "log-level=error"}
        )
        paragraph = work / "two_minutes.txt"
        paragraph.write_text(" ".join(e.sentence for e in scene.episodes) + "\n")

        started = time.perf_counter()
        subprocess.run(
            [
                str(REPO / "bin" / "ground"),
                str(video),
                str(paragraph),
                "--checkpoint",
                args.checkpoint,
                "--json",
                str(work / "out.json"),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        ground_seconds = time.perf_counter() - started

        trained = load_model(args.checkpoint)
        settings = extraction_settings(trained.feature_spec, args.checkpoint, None, None, "cpu")
        encoder = build_encoder(settings)
        started = time.perf_counter()
        _, record = extract_video(video, video_id_for(video), encoder.encode, settings.spec())
        extract_seconds = time.perf_counter() - started
        print(f"2-minute 30 fps video, {len(scene.episodes)} sentences, {record.clips} clips ({encoder.describe()})")
        print(f"bin/ground, whole command: {ground_seconds:.1f} s")
        print(f"extracting the video alone: {extract_seconds:.1f} s")
        print(f"bin/ground / extraction alone wall time, ratio: {ground_seconds / extract_seconds:.2f}")


if __name__ == "__main__":
    main()
