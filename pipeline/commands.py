"""The four commands, `bin/extract`, `bin/train`, `bin/eval` and `bin/ground`, and the same four installed
as `hscnet-extract`, `hscnet-train`, `hscnet-eval` and `hscnet-ground`: each parses its arguments and calls one
library function. Four commands rather than one with subcommands, so that an installed command takes exactly
the flags, help and examples of the bin/ script of its name.
"""

from __future__ import annotations

import argparse

from hscnet.extract.backbones import BACKBONES
from hscnet.extract.settings import ExtractSettings
from hscnet.extract.video import DECODERS
from hscnet.pipeline import cli

# Each command imports its library function inside it: one module holds all four, and `bin/extract` must
# not pay for the model, spaCy and the report it never uses (3 s of imports against 0.3 s).


def extract_main(argv: list[str] | None = None, prog: str = "hscnet-extract") -> None:
    """Raw videos to a feature store. `argv` defaults to the command line."""
    from hscnet.pipeline.extraction import extract_command, import_command

    default = ExtractSettings()
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Raw videos to clip features of C3D or a Kinetics backbone (one <video>.npy per video and "
        "manifest.jsonl), in parallel with Ray; a rerun skips finished videos and retries failed ones.",
        epilog="examples:\n  %(prog)s --videos videos/                     # into ./features\n"
        "  %(prog)s --videos list.txt --out features/ --weights c3d.pickle --stride 8\n"
        "  %(prog)s --config configs/extract.yaml --videos videos/ --out features/\n"
        "  %(prog)s --videos /shared/videos --out features/ --address auto   # join a Ray cluster\n"
        "  %(prog)s --import clip_features/ --label clip-vit-b32 --captions captions.json   # made elsewhere",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--videos", help="a folder of videos (recursive) or a file listing one path a line")
    parser.add_argument("--out", help="the feature store folder, created if needed (default: ./features)")
    parser.add_argument("--config", help="defaults for the flags below (configs/extract.yaml); given flags win")
    parser.add_argument(
        "--backbone",
        choices=list(BACKBONES),
        help=f"the video network (default {default.backbone}, the paper's; the others are Kinetics-400 "
        "models built by pytorchvideo, each with its own clip length, frame rate and frame size)",
    )
    parser.add_argument(
        "--decoder",
        choices=list(DECODERS),
        help=f"the library that reads the frames (default {default.decoder}; decord needs decord2)",
    )
    parser.add_argument(
        "--weights",
        help="C3D: the converted Sports-1M state dict (c3d.pickle); the Kinetics backbones: the model "
        "zoo's .pyth (e.g. X3D_M.pyth); else random weights, loudly",
    )
    parser.add_argument("--layer", choices=["fc6", "fc7", "pool5"], help="C3D's feature layer (default fc6)")
    parser.add_argument("--pca", help="project with the official ActivityNet PCA file (fc7: the released 500-d)")
    parser.add_argument("--pca-dims", type=int, help=f"dimensions kept by --pca (default {default.pca_dims})")
    parser.add_argument("--clip-len", type=int, help="frames per clip (default: the backbone's, C3D 16)")
    parser.add_argument("--stride", type=int, help="frames between clip starts (default: the clip length; 8 overlaps)")
    parser.add_argument(
        "--fps",
        dest="sample_fps",
        type=float,
        help="sample frames at this rate, by timestamp (default: the backbone's; C3D every frame)",
    )
    parser.add_argument("--batch-size", type=int, help=f"clips per C3D forward pass (default {default.batch_size})")
    parser.add_argument(
        "--precision",
        choices=["auto", "fp32", "bf16", "fp16"],
        help="auto: bf16 on a CPU with bf16 support, else fp32; fp16 autocast on CUDA",
    )
    parser.add_argument("--device", help="auto (default), cpu or cuda")
    parser.add_argument("--workers", type=int, help="CPUs Ray may use on this machine (default: all)")
    parser.add_argument(
        "--address", help="join this Ray cluster (e.g. auto or ray://host:10001) instead of starting one"
    )
    parser.add_argument(
        "--object-store-mb",
        type=int,
        help=f"Ray object store size when starting Ray here (default {default.object_store_mb})",
    )
    parser.add_argument("--no-ray", action="store_true", help="extract in this process, one video after another")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    imported = parser.add_argument_group(
        "features made elsewhere", "a folder of <video>.npy files ([T, D], a row per clip) instead of --videos"
    )
    imported.add_argument("--import", dest="import_dir", metavar="DIR", help="the folder of .npy files")
    imported.add_argument("--label", help="what the features are, kept in their spec (e.g. clip-vit-b32)")
    imported.add_argument("--transposed", action="store_true", help="the files are [D, T]")
    imported.add_argument("--seconds-per-row", type=float, metavar="S", help="the seconds a row covers")
    imported.add_argument("--captions", metavar="FILE",
                          help="without --seconds-per-row: each video's duration, divided by its rows")  # fmt: skip
    args = parser.parse_args(argv)
    if bool(args.videos) == bool(args.import_dir):
        parser.error("give --videos DIR (raw videos) or --import DIR (.npy features made elsewhere)")
    if args.import_dir:
        if not args.label:
            parser.error("--import needs --label, the name of the features (e.g. clip-vit-b32)")
        cli.run(
            lambda: import_command(
                args.import_dir,
                args.out,
                label=args.label,
                transposed=args.transposed,
                seconds_per_row=args.seconds_per_row,
                captions=args.captions,
            )
        )
    names = ("backbone", "decoder", "weights", "layer", "pca", "pca_dims", "clip_len", "stride", "sample_fps",
             "batch_size", "precision", "device", "object_store_mb")  # fmt: skip
    flags = {name: getattr(args, name) for name in names}
    cli.run(
        lambda: extract_command(args.videos, args.out, args.config, flags, workers=args.workers,
                                address=args.address, use_ray=not args.no_ray, progress=not args.no_progress)
    )  # fmt: skip


def train_main(argv: list[str] | None = None, prog: str = "hscnet-train") -> None:
    """Train HSCNet. `argv` defaults to the command line."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Train HSCNet on a feature store (or released HDF5 features) with ActivityNet Captions, "
        "TACoS or JSONL annotations; evaluates on the validation split every epoch. With no --config: one's own "
        "data in this folder (./features and captions.json, captions.jsonl or train/val/test files), a default "
        "config chosen by data size, the run in ./runs/<name>.",
        epilog="examples:\n  %(prog)s                                    # ./features + ./captions.json\n"
        "  %(prog)s --videos videos/ --captions captions.json   # extract what ./features lacks, then train\n"
        "  %(prog)s --config configs/tacos.yaml\n"
        "  %(prog)s --config configs/activitynet.yaml train.lr=2e-4 run_dir=runs/anet-lr2e-4\n"
        "  %(prog)s --config configs/tacos.yaml model.word_level=false   # Table 2, SL+PL\n"
        "  %(prog)s --resume runs/tacos                                  # continue after Ctrl-C",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", help="YAML config (configs/activitynet.yaml, tacos.yaml, demo.yaml, smoke.yaml)")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last.pt")
    parser.add_argument("--videos", metavar="DIR", help="without --config: extract these videos into ./features first")
    parser.add_argument(
        "--captions", metavar="FILE", help="without --config: the captions (default: found in this folder)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (for logs)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. train.epochs=5")
    args = parser.parse_args(argv)
    from hscnet.pipeline.train_command import train_command  # torch: not for --help

    cli.run(
        lambda: train_command(
            args.config, args.overrides, args.resume, args.videos, args.captions, progress=not args.no_progress
        )
    )


def eval_main(argv: list[str] | None = None, prog: str = "hscnet-eval") -> None:
    """Evaluate a checkpoint. `argv` defaults to the command line."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Evaluate a checkpoint as the VPG papers do (R@m and mIoU over all sentences), "
        "beside the dataset-prior baseline.",
    )
    parser.add_argument("--checkpoint", required=True, help="a checkpoint written by bin/train (best.pt or last.pt)")
    parser.add_argument(
        "--split", default="test", choices=["train", "val", "test"], help="which split of the run's config"
    )
    parser.add_argument("--annotations", help="evaluate on this annotation file instead of the split's")
    parser.add_argument("--features", help="read features from this store or .hdf5 file instead of the config's")
    parser.add_argument("--json", dest="json_out", metavar="OUT", help="write the metrics (fractions) as JSON")
    parser.add_argument(
        "--predictions", metavar="OUT", help="write one JSON line per paragraph: true and predicted spans"
    )
    parser.add_argument(
        "--html",
        metavar="DIR",
        help="write a report page per video (player, predicted and true spans on a timeline) and "
        "DIR/index.html listing them, the worst mIoU first",
    )
    parser.add_argument(
        "--videos",
        metavar="DIR",
        help="with --html: where the video files are (default: the sources the feature store's manifest "
        "records; pages without their video show the timeline alone)",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument(
        "--reading",
        choices=["story", "chunks"],
        default="story",
        help="an uncut paragraph longer than the trained length: story (default) places each chunk along "
        "the video first and averages with the paragraph read whole; chunks grounds each over the whole video "
        "(the paper's protocol). Files already "
        "cut into chunks (ActivityNet val_2, TACoS) read the same either way",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    from hscnet import evaluate  # torch: not for --help

    cli.run(
        lambda: evaluate.evaluate_checkpoint(
            args.checkpoint,
            args.split,
            annotations=args.annotations,
            features_path=args.features,
            outputs=evaluate.EvalOutputs(
                json=args.json_out, predictions=args.predictions, html_dir=args.html, videos=args.videos
            ),
            reading=args.reading,
            device=args.device,
            progress=not args.no_progress,
        )
    )


def ground_main(argv: list[str] | None = None, prog: str = "hscnet-ground") -> None:
    """Ground a paragraph in a video, or a batch of them. `argv` defaults to the command line."""
    from hscnet.pipeline.extraction import RAY_FROM_VIDEOS
    from hscnet.report import EMBED_VIDEO_MAX_BYTES

    parser = argparse.ArgumentParser(
        prog=prog,
        description="Ground a paragraph in a raw video: a start and end time for the paragraph, every sentence "
        "and every word. Extracts the video's features with the settings the checkpoint was trained on.",
        epilog="examples:\n  %(prog)s demo/videos/demo_0140.mp4 demo/paragraphs/demo_0140.txt\n"
        "  %(prog)s my.mp4 my.txt --checkpoint runs/x/best.pt --json out.json --plot timeline.png\n"
        "  %(prog)s my.mp4 my.txt --html report.html --truth captions.json\n"
        "  %(prog)s --batch items.jsonl --out predictions.jsonl\n"
        "  %(prog)s --features my.npy --duration 84.2 my.txt --checkpoint runs/clip/best.pt  # made elsewhere",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("video", nargs="?", help="the video file (MP4, MKV, WebM, AVI, ...)")
    parser.add_argument("paragraph", nargs="?", help="a text file with the paragraph (split into sentences by spaCy)")
    parser.add_argument(
        "--checkpoint", help="a checkpoint from bin/train (default: the newest run under ./runs, then the demo's)"
    )
    parser.add_argument("--json", dest="json_out", metavar="OUT", help="write the result as JSON")
    parser.add_argument("--plot", metavar="OUT.png", help="write a timeline picture")
    parser.add_argument("--plot-sentence", type=int, default=1, metavar="N", help="whose words to draw (default 1)")
    parser.add_argument(
        "--html",
        metavar="OUT.html",
        help="write a report page that works offline: the video player and every span on a timeline "
        "(hover a bar for its text and times, click it to play its span). The video is embedded when "
        f"at most {EMBED_VIDEO_MAX_BYTES // 1024**2} MiB, else referenced by its path relative to the "
        "page: keep the two together",
    )
    parser.add_argument(
        "--truth",
        metavar="CAPTIONS",
        help="an annotation file (ActivityNet JSON, TACoS, JSONL) holding this video's true spans, "
        "drawn beside the prediction on --html and --plot",
    )
    parser.add_argument(
        "--sentences-per-line", action="store_true", help="each line of the paragraph file is one sentence"
    )
    parser.add_argument(
        "--batch",
        metavar="ITEMS.jsonl",
        help='ground many items with the model loaded once: one {"video": path, "paragraph": text '
        "or [sentences]} a line, paths relative to the file; needs --out. The videos are extracted as "
        f"bin/extract does, with Ray from {RAY_FROM_VIDEOS} videos on",
    )
    parser.add_argument(
        "--out",
        metavar="PREDICTIONS.jsonl",
        help='with --batch: one line per item, in the --json layout with its "line", or its "error"',
    )
    parser.add_argument(
        "--features",
        metavar="FILE.npy|DIR",
        help="in place of VIDEO: the video's features made beforehand (FILE.npy, [T, D]), as a model trained on "
        "features made elsewhere (bin/extract --import) needs; with --batch: keep the extracted features in "
        "this store DIR (a rerun extracts only what it lacks), by default temporary",
    )
    parser.add_argument(
        "--duration",
        type=float,
        metavar="S",
        help="with --features FILE.npy: the video's length in seconds (default: rows times the seconds a row "
        "covers, where the features were imported with --seconds-per-row)",
    )
    parser.add_argument("--workers", type=int, help="with --batch and Ray: CPUs Ray may use (default: all)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument(
        "--weights", help="the C3D weights the checkpoint's features were extracted with, if not random"
    )
    parser.add_argument("--pca", help="the PCA file the checkpoint's features were projected with, if any")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument(
        "--reading",
        choices=["story", "chunks"],
        default="story",
        help="a paragraph longer than the model's trained length (8 sentences) is read in chunks: story "
        "(default) places each chunk along the video first and averages with the paragraph read whole; "
        "chunks grounds each over the whole video",
    )
    args = parser.parse_args(argv)
    # Imported once the arguments are read: the model's stack (torch) takes seconds, which --help need not wait.
    from hscnet.pipeline.ground import FeatureFile, GroundOutputs, ModelChoice, ground_batch, ground_command

    model = ModelChoice(checkpoint=args.checkpoint, weights=args.weights, pca=args.pca, device=args.device)
    if args.batch:
        if args.video or args.paragraph or not args.out:
            parser.error("--batch takes no VIDEO PARAGRAPH and needs --out PREDICTIONS.jsonl")
        cli.run(
            lambda: ground_batch(
                args.batch,
                args.out,
                model=model,
                features_dir=args.features,
                workers=args.workers,
                progress=not args.no_progress,
                reading=args.reading,
            )
        )
    if args.features:  # the one positional is the paragraph
        if not args.video or args.paragraph:
            parser.error("--features FILE.npy takes the PARAGRAPH file alone, no VIDEO")
        video, paragraph = FeatureFile(args.features, args.duration), args.video
    elif not args.video or not args.paragraph:
        parser.error("give a VIDEO and a PARAGRAPH file, or --batch ITEMS.jsonl --out PREDICTIONS.jsonl")
    elif args.duration is not None:
        parser.error("--duration goes with --features FILE.npy")
    else:
        video, paragraph = args.video, args.paragraph
    cli.run(
        lambda: ground_command(
            video,
            paragraph,
            model=model,
            sentences_per_line=args.sentences_per_line,
            progress=not args.no_progress,
            reading=args.reading,
            outputs=GroundOutputs(
                json=args.json_out, plot=args.plot, plot_sentence=args.plot_sentence, html=args.html, truth=args.truth
            ),
        )
    )
