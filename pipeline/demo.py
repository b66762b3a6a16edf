"""make demo: from a fresh clone to a grounded video, stage by stage, each stage timed.

Generates the synthetic world (pipeline/synthetic.py), extracts its features with Ray
(bin/extract's path), trains HSCNet with configs/demo.yaml, evaluates on the held-out test
videos beside the dataset prior, and grounds one test video: a table on the terminal, the JSON
and a timeline picture in demo/. Every stage skips what an earlier run finished.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from extract import atomic
from extract.errors import PipelineError
from hscnet.checkpoint import load_checkpoint
from hscnet.config import load_config
from hscnet.evaluate import evaluate_checkpoint
from hscnet.train import train
from pipeline import cli
from pipeline.extract import ExtractSettings, run_extraction
from pipeline.ground import ground_video
from pipeline.synthetic import generate_world

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[1]


def run_demo(
    count: int, seed: int, folder: Path = REPO / "demo", overrides: list[str] = (), progress: bool = True
) -> dict:
    """Every stage of the demo into `folder`; `overrides` change configs/demo.yaml."""
    folder = Path(folder)
    paths = [f"data.{name}={folder / 'annotations' / f'{name}.jsonl'}" for name in ("train", "val", "test")]
    config = load_config(
        REPO / "configs" / "demo.yaml",
        [f"data.features={folder / 'features'}", *paths, f"run_dir={folder / 'run'}", *overrides],
    )
    timings: dict[str, float] = {}

    def stage(name: str, work):
        log.info(f"== {name}")
        started = time.time()
        result = work()
        timings[name] = round(time.time() - started, 1)
        log.info(f"== {name}: {timings[name]:.0f} s")
        return result

    splits = stage("generate", lambda: generate_world(folder, count, seed, progress))
    extraction = stage(
        "extract", lambda: run_extraction(folder / "videos", folder / "features", ExtractSettings(), progress=progress)
    )
    log.info(extraction.report())
    if extraction.failed:
        raise PipelineError(
            f"{len(extraction.failed)} demo videos failed to extract; see {folder / 'features' / 'manifest.jsonl'}"
        )
    last = Path(config.run_dir) / "last.pt"
    finished = last.is_file() and load_checkpoint(last)["state"]["epoch"] >= config.train.epochs
    if not finished:
        stage("train", lambda: train(config, load_checkpoint(last) if last.is_file() else None, progress=progress))
    evaluation = stage(
        "evaluate",
        lambda: evaluate_checkpoint(
            Path(config.run_dir) / "best.pt", "test", json_out=str(folder / "eval.json"), progress=progress
        ),
    )
    example = splits["test"][0]
    video, paragraph = folder / "videos" / f"{example['video']}.mp4", folder / "paragraphs" / f"{example['video']}.txt"
    stage(
        "ground",
        lambda: ground_video(
            video,
            paragraph,
            Path(config.run_dir) / "best.pt",
            str(folder / "ground.json"),
            str(folder / "ground.png"),
            truth=example["timestamps"],
        ),
    )
    summary = {
        "videos": {name: len(items) for name, items in splits.items()},
        "clips": extraction.clips,
        "clips_per_second": round(extraction.clips / extraction.seconds, 2) if extraction.seconds else None,
        "test": evaluation["metrics"],
        "prior": evaluation["prior"],
        "seconds": timings,
    }
    atomic.write_json(folder / "summary.json", summary)
    model, prior = evaluation["metrics"]["mIoU"], evaluation["prior"]["mIoU"]
    print(f"\ndemo: test mIoU {100 * model:.2f} (dataset prior {100 * prior:.2f}); stage times {json.dumps(timings)}")
    print(f"try it yourself: bin/ground {video} {paragraph} --plot timeline.png")
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=150, help="how many videos the world has (default 150)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args()
    cli.run(lambda: run_demo(args.videos, args.seed, progress=not args.no_progress) and 0)


if __name__ == "__main__":
    main()
