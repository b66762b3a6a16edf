"""bin/ground: raw videos and paragraphs to timestamps, one at a time or a batch of them.

Argument parsing is bin/ground's; the work is `hscnet.Grounder` (the checkpoint's model and
extractor); this module reads the paragraph file and writes the outputs: a table on the
terminal, and on request the JSON of `bin/ground --json`, a timeline picture and a report page.
One video runs in this process (no Ray start-up). A batch (`ground_batch`) loads the model once,
extracts its videos as `bin/extract` does (with Ray from `RAY_FROM_VIDEOS` videos on, since Ray's
start-up costs more than it gains on a few) and writes one line per item, failures included.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from hscnet.annotations import load_paragraphs
from hscnet.common import atomic
from hscnet.common.errors import InputError
from hscnet.common.paths import DEMO
from hscnet.common.wording import count
from hscnet.extract.imported import read_feature_file
from hscnet.extract.store import FeatureStore, video_id_for
from hscnet.extract.video import probe
from hscnet.grounder import EncodedVideo, Grounder
from hscnet.pipeline.extraction import RAY_FROM_VIDEOS
from hscnet.plot import plot_grounding
from hscnet.report import EMBED_VIDEO_MAX_BYTES, write_report
from hscnet.text import parse_paragraph

log = logging.getLogger(__name__)

# The demo's model is its last epoch's: 6 validation videos (19 sentences) are too few to pick an
# epoch on (docs/results.md).
DEMO_CHECKPOINT = DEMO / "run" / "last.pt"


def default_checkpoint(runs: Path = Path("runs")) -> Path:
    """The newest run under ./runs (its best.pt, else its last.pt), then the demo's."""
    found = [run / "best.pt" if (run / "best.pt").is_file() else run / "last.pt" for run in runs.glob("*/")]
    found = [path for path in found if path.is_file()]
    if found:
        return max(found, key=lambda path: path.stat().st_mtime)
    if DEMO_CHECKPOINT.is_file():
        return DEMO_CHECKPOINT
    raise InputError(
        f"no --checkpoint given, no run under {runs.resolve()} and no demo checkpoint at {DEMO_CHECKPOINT}: "
        "train one with bin/train, or run `make demo`"
    )


def read_text_file(path: str | os.PathLike, what: str) -> str:
    """A text file a user gives, as UTF-8 with or without a byte-order mark; one line naming the file when it
    is missing, a folder, or in another encoding."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not a {what} file")
    if not path.is_file():
        raise InputError(f"{path}: {what} file not found")
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")  # a byte-order mark (as some editors save) is not part of the text
    except UnicodeDecodeError as error:
        raise InputError(
            f"{path}: not UTF-8 text (byte 0x{data[error.start]:02x} at position {error.start}); save it as UTF-8"
        ) from None


def read_paragraph(path: str | os.PathLike, sentences_per_line: bool) -> str | list[str]:
    """The paragraph of a text file, checked as the model will read it (words, a script it can split)."""
    path = Path(path)
    text = read_text_file(path, "paragraph")
    if not text.strip():
        raise InputError(f"{path}: empty paragraph: the file has no text")
    paragraph = [line.strip() for line in text.splitlines() if line.strip()] if sentences_per_line else text
    try:
        parse_paragraph(paragraph)
    except InputError as error:
        raise InputError(f"{path}: {error}") from None
    return paragraph


def check_output(path: str | os.PathLike | None, what: str) -> None:
    """Refuse, before any work, an output path that cannot be written: a folder, or one inside a file or a
    folder that does not exist or cannot be written to."""
    if path is None:
        return
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a folder; give a file name for the {what}")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(f"{path}: cannot write the {what} there: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"{path}: cannot write the {what} there: {parent} is not writable")


def check_video(path: str | os.PathLike) -> None:
    """A video that is missing, a folder, or cannot be opened fails here, before anything loads: reading its
    packets' timestamps takes a fraction of a second, decoding it comes later."""
    probe(path)


def format_table(result: dict) -> str:
    lines = [
        f"{result['video']} ({result['duration']:.1f} s): paragraph {result['paragraph']['start']:.1f}-"
        f"{result['paragraph']['end']:.1f} s",
        f"{'#':>3} {'start':>7} {'end':>7}  sentence",
    ]
    for i, sentence in enumerate(result["sentences"], start=1):
        lines.append(f"{i:>3} {sentence['start']:>7.1f} {sentence['end']:>7.1f}  {sentence['text']}")
        words = ", ".join(f"{w['word']} {w['start']:.1f}-{w['end']:.1f}" for w in sentence["words"])
        lines.append(f"{'':>19}  words: {words}")
    if "chunks" in result:
        sizes = ", ".join(str(len(chunk)) for chunk in result["chunks"])
        how = (
            "as one story, each chunk in its place" if result.get("reading") == "story" else "each over the whole video"
        )
        lines.append(
            f"{count(len(result['sentences']), 'sentence')}, grounded in chunks of at most the trained length "
            f"({sizes}), {how}"
        )
    if result["unknown_words"]:
        unknown = result["unknown_words"]
        lines.append(
            f"{count(len(unknown), 'word')} neither training nor GloVe knows (read as unknown): {', '.join(unknown)}"
        )
    return "\n".join(lines)


def read_truth(path: str | os.PathLike, video: str | os.PathLike, sentences: int) -> list[list[float]]:
    """The true spans of `video`'s paragraph in an annotation file (any format bin/train reads)."""
    video_id = video_id_for(video)
    found = [p for p in load_paragraphs(path) if p.video == video_id]
    if not found:
        raise InputError(f"{path}: no paragraph of video {video_id} in this annotation file")
    truth = [list(span) for p in found for span in p.timestamps]
    if len(truth) != sentences:
        raise InputError(
            f"{path}: video {video_id} has {len(truth)} annotated sentences, the paragraph grounded has {sentences}; "
            "give the annotation's sentences one a line with --sentences-per-line"
        )
    return truth


@dataclass(frozen=True)
class ModelChoice:
    """Which trained model grounds, and the files its features were made with (when not a random C3D)."""

    checkpoint: str | os.PathLike | None = None  # None: the newest run under ./runs, then the demo's
    weights: str | None = None
    pca: str | None = None
    device: str = "auto"

    def load(self) -> Grounder:
        checkpoint = self.checkpoint
        if checkpoint is None:
            checkpoint = default_checkpoint()
            log.info(f"no --checkpoint given: using {checkpoint}")
        return Grounder.from_checkpoint(checkpoint, weights=self.weights, pca=self.pca, device=self.device)


@dataclass(frozen=True)
class GroundOutputs:
    """What bin/ground writes besides its table; each is skipped when None."""

    json: str | None = None  # the result, in the layout of `Grounder.ground`
    plot: str | None = None  # a timeline picture (PNG)
    plot_sentence: int = 1  # whose words the picture draws, from 1
    html: str | None = None  # a report page
    truth: str | None = None  # an annotation file with the video's true spans, drawn beside the prediction
    embed_max_bytes: int = EMBED_VIDEO_MAX_BYTES  # a larger video is referenced by the page, not embedded


@dataclass(frozen=True)
class FeatureFile:
    """bin/ground --features: a video's features made beforehand, in place of the video."""

    path: str | os.PathLike
    duration: float | None = None  # seconds; None: from the rows, where the model's features say a row's length


def ground_command(
    video: str | os.PathLike | FeatureFile,
    paragraph_file: str | os.PathLike,
    *,
    model: ModelChoice = ModelChoice(),
    outputs: GroundOutputs = GroundOutputs(),
    sentences_per_line: bool = False,
    progress: bool = True,
    reading: str = "story",
) -> dict:
    """bin/ground: prints the table, writes what `outputs` asks for, returns the result dict. Every input
    and output path is checked before the model loads."""
    if isinstance(video, FeatureFile):
        read_feature_file(video.path)  # a damaged file fails before the model loads
    else:
        check_video(video)
    paragraph = read_paragraph(paragraph_file, sentences_per_line)
    for path, what in ((outputs.json, "JSON"), (outputs.plot, "picture"), (outputs.html, "report page")):
        check_output(path, what)
    if outputs.truth:
        read_text_file(outputs.truth, "annotation")
    grounder = model.load()
    if isinstance(video, FeatureFile):
        encoded = grounder.read_features(video.path, video.duration)
        result = grounder.ground(encoded, paragraph, progress=progress, reading=reading)
        video = Path(video.path)  # names the video in --truth's file; no player on the page
        playable = None
    else:
        result = grounder.ground(video, paragraph, progress=progress, reading=reading)
        playable = video
    truth = read_truth(outputs.truth, video, len(result["sentences"])) if outputs.truth else None
    print(format_table(result))
    if outputs.json:
        atomic.write_json(outputs.json, result)
    if outputs.plot:
        plot_grounding(result, outputs.plot, word_sentence=outputs.plot_sentence - 1, truth=truth)
    if outputs.html:
        write_report(result, outputs.html, video=playable, truth=truth, embed_max_bytes=outputs.embed_max_bytes)
        print(f"report page: {outputs.html}")
    return result


@dataclass
class BatchItem:
    """One line of a `--batch` file: a video and its paragraph, or why the line cannot be one."""

    line: int
    video: Path | None = None
    paragraph: str | list[str] | None = None
    error: str = ""
    given: str | None = None  # the video as the line names it, what the output line names too


def read_batch(path: str | os.PathLike) -> list[BatchItem]:
    """The items of a JSONL file of `{"video", "paragraph"}` lines (a relative video path is relative to
    the file's folder; a paragraph is text or a list of sentences). A bad line is an item that failed."""
    path = Path(path)
    items = []
    for number, line in enumerate(read_text_file(path, "batch").splitlines(), start=1):
        if not line.strip():
            continue
        item = BatchItem(number)
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as error:
            item.error = f"{path}:{number}: not JSON ({error.msg} at column {error.colno})"
            items.append(item)
            continue
        video, paragraph = (entry.get("video"), entry.get("paragraph")) if isinstance(entry, dict) else (None, None)
        item.given = video if isinstance(video, str) else None
        if not isinstance(video, str) or not video:
            item.error = f'{path}:{number}: no "video" path'
        elif _is_paragraph(paragraph):
            item.paragraph = paragraph
        else:
            item.error = f'{path}:{number}: "paragraph" is neither text nor a list of sentences'
        if not item.error:
            item.video = Path(video) if Path(video).is_absolute() else path.parent / video
        items.append(item)
    if not items:
        raise InputError(f'{path}: no items (one JSON object a line: {{"video": ..., "paragraph": ...}})')
    return items


def _is_paragraph(paragraph) -> bool:
    if isinstance(paragraph, str):
        return bool(paragraph.strip())
    return isinstance(paragraph, list) and bool(paragraph) and all(isinstance(s, str) and s.strip() for s in paragraph)


def ground_batch(
    items_file: str | os.PathLike,
    out: str | os.PathLike,
    *,
    model: ModelChoice = ModelChoice(),
    features_dir: str | None = None,
    workers: int | None = None,
    progress: bool = True,
    ray_from_videos: int = RAY_FROM_VIDEOS,
    reading: str = "story",
) -> int:
    """bin/ground --batch: one line per item in `out` (the `--json` layout with the item's line number, or
    `{"line", "video", "error"}`); exit code 0 only when every item was grounded. `features_dir` keeps the
    extracted features (a feature store: a rerun extracts only what it lacks); by default they are temporary."""
    from hscnet.pipeline.extraction import run_extraction

    items = read_batch(items_file)
    check_output(out, "predictions")
    for item in items:
        if item.video is not None and not item.video.is_file():
            item.error = (
                f"{item.video}: {'is a folder, not a video file' if item.video.is_dir() else 'video file not found'}"
            )
        elif item.paragraph is not None:
            try:
                parse_paragraph(item.paragraph)
            except InputError as error:  # this item's paragraph: recorded, the others go on
                item.error = f"{items_file}:{item.line}: {error}"
    grounder = model.load()
    videos = sorted({item.video.resolve() for item in items if not item.error})
    with tempfile.TemporaryDirectory(prefix="hscnet-batch-") as scratch:
        store_path = Path(features_dir) if features_dir else Path(scratch) / "features"
        encoded: dict[Path, EncodedVideo | str] = {}
        if videos:
            use_ray = len(videos) >= ray_from_videos
            log.info(f"{count(len(videos), 'video')} to extract ({'with Ray' if use_ray else 'in this process'})")
            run_extraction(videos, store_path, grounder.settings, workers=workers, use_ray=use_ray, progress=progress)
            store = FeatureStore(store_path)
            records = store.records()
            for video in videos:
                record = records[video_id_for(video)]
                if record.status == "ok":
                    features = store.read(record.video_id)
                    encoded[video] = EncodedVideo(video.name, features, record.duration, record.start)
                else:
                    encoded[video] = record.error
        lines, failed = [], 0
        for item in tqdm(items, desc="grounding", unit="item", disable=not progress):
            line = _ground_item(grounder, item, encoded, reading)
            failed += "error" in line
            lines.append(json.dumps(line) + "\n")
    atomic.write_text(out, "".join(lines))
    failures = f"; {failed} failed:" if failed else ""
    print(f"grounded {len(items) - failed} of {len(items)} items into {out}{failures}")
    for entry in map(json.loads, lines):
        if "error" in entry:
            print(f"  line {entry['line']}: {entry['error']}")
    return 1 if failed else 0


def _ground_item(grounder: Grounder, item: BatchItem, encoded: dict, reading: str) -> dict:
    video = item.given
    if item.error:
        return {"line": item.line, "video": video, "error": item.error}
    features = encoded[item.video.resolve()]
    if isinstance(features, str):
        return {"line": item.line, "video": video, "error": features}
    try:
        return {"line": item.line, **grounder.ground(features, item.paragraph, reading=reading), "video": video}
    except InputError as error:  # this item's paragraph (no words, say): recorded, the others go on
        return {"line": item.line, "video": video, "error": str(error)}
