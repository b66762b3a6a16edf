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

from hscnet.checkpoint import load_checkpoint
from hscnet.common import atomic
from hscnet.common.errors import PipelineError
from hscnet.common.paths import CONFIGS, DEMO
from hscnet.config import load_config
from hscnet.evaluate import EvalOutputs, evaluate_checkpoint
from hscnet.extract.backbones import backbone
from hscnet.extract.encoders import build_encoder
from hscnet.extract.settings import ExtractSettings
from hscnet.extract.video import clip_count
from hscnet.grounder import Grounder
from hscnet.pipeline import cli
from hscnet.pipeline.extraction import run_extraction
from hscnet.pipeline.ground import DEMO_CHECKPOINT, format_table
from hscnet.pipeline.synthetic import DEMO_SHAPE, WorldShape, generate_world, plan_world, scene_clips
from hscnet.plot import plot_grounding
from hscnet.train import train

log = logging.getLogger("hscnet.pipeline.demo")  # not __name__: `python -m hscnet.pipeline.demo` runs it as __main__
DEMO_MODEL = DEMO_CHECKPOINT.name  # last.pt: see hscnet.pipeline.ground.DEMO_CHECKPOINT


# The world's size in C3D clips, what extraction costs: sized so that the whole demo, its virtual
# environment included, stays within 15 minutes on a 2-core CPU without native bf16.
DEMO_CLIPS = 560


def c3d_rate(settings: ExtractSettings, clips: int = 2) -> tuple[float, str]:
    """Clips/s of the settings' backbone (C3D by default) on this machine, measured on `clips` random clips
    after a warm-up on them (its cost does not depend on what the clips show), and how it runs.

    Two clips, not a batch of 8: C3D runs as fast per clip on 2 as on 8, so the forecast costs the demo
    4 clips instead of 16."""
    import numpy as np

    encoder = build_encoder(settings)
    declared = backbone(settings.backbone)
    shape = (clips, declared.clip_len, declared.crop, declared.crop, 3)
    sample = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    encoder.encode(sample)  # oneDNN builds its kernels for this shape on the first call
    started = time.perf_counter()
    encoder.encode(sample)
    return clips / (time.perf_counter() - started), encoder.describe()


def run_demo(
    clips: int = DEMO_CLIPS,
    seed: int = 0,
    *,
    folder: Path = DEMO,
    overrides: list[str] = (),
    progress: bool = True,
    shape: WorldShape = DEMO_SHAPE,
    backbone_name: str = "c3d",
    use_ray: bool = True,
) -> dict:
    """Every stage of the demo into `folder`, a world of about `clips` C3D clips; `overrides` change
    configs/demo.yaml. `backbone_name` extracts with another backbone (the world stays the same);
    `use_ray=False` extracts in this process, as `bin/extract --no-ray` does."""
    folder = Path(folder)
    settings = ExtractSettings(backbone=backbone_name)
    spec = settings.spec()
    paths = [f"data.{name}={folder / 'annotations' / f'{name}.jsonl'}" for name in ("train", "val", "test")]
    config = load_config(
        CONFIGS / "demo.yaml",
        [f"data.features={folder / 'features'}", f"data.feature_dim={spec.dim}", *paths, f"run_dir={folder / 'run'}",
         *overrides],
    )  # fmt: skip
    timings: dict[str, float] = {}

    def stage(name: str, work):
        log.info(f"== {name}")
        started = time.time()
        result = work()
        timings[name] = round(time.time() - started, 1)
        log.info(f"== {name}: {timings[name]:.0f} s")
        return result

    scenes = plan_world(clips, seed, shape)
    planned = sum(scene_clips(scene) for scene in scenes)
    rate, how = c3d_rate(settings)
    if backbone_name != "c3d":  # its clips span other lengths of time than C3D's 16 frames
        planned = sum(clip_count(int(scene.duration * spec.sample_fps), spec.clip_len, spec.stride) for scene in scenes)
    log.info(
        f"the demo world holds {planned} {backbone_name} clips; {how} runs {rate:.2f} clips/s here, so extracting "
        f"them costs about {planned / rate / 60:.1f} minutes (then training, a few minutes)"
    )
    splits = stage("generate", lambda: generate_world(folder, clips, seed, progress, shape))
    videos, store = folder / "videos", folder / "features"
    extraction = stage("extract", lambda: run_extraction(videos, store, settings, use_ray=use_ray, progress=progress))
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
            Path(config.run_dir) / DEMO_MODEL,
            "test",
            outputs=EvalOutputs(json=str(folder / "eval.json")),
            progress=progress,
        ),
    )
    example = splits["test"][0]
    video, paragraph = folder / "videos" / f"{example['video']}.mp4", folder / "paragraphs" / f"{example['video']}.txt"

    def ground() -> dict:
        result = Grounder.from_checkpoint(Path(config.run_dir) / DEMO_MODEL).ground(video, paragraph.read_text())
        print(format_table(result))
        atomic.write_json(folder / "ground.json", result)
        plot_grounding(result, folder / "ground.png", truth=example["timestamps"])
        return result

    stage("ground", ground)
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
    parser.add_argument(
        "--clips", type=int, default=DEMO_CLIPS, help=f"the world's size in C3D clips (default {DEMO_CLIPS})"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backbone", default="c3d", help="extract with this backbone (default c3d, the paper's)")
    parser.add_argument("--folder", default=str(DEMO), help="where the demo is written (default demo/)")
    parser.add_argument("--no-ray", action="store_true", help="extract in this process, without starting Ray")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args()
    cli.run(
        lambda: (
            run_demo(
                args.clips,
                args.seed,
                folder=args.folder,
                progress=not args.no_progress,
                backbone_name=args.backbone,
                use_ray=not args.no_ray,
            )
            and 0
        )
    )


if __name__ == "__main__":
    main()
