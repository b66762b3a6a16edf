"""The synthetic demo world: raw MP4 videos of coloured shapes doing things, with paragraphs.

The demo needs no download (no pretrained backbone, no data set), so it brings its own data.
In each video, two to four shapes (circles, squares, triangles, each in its own colour)
take turns: a shape comes in from a side, does one thing (grows, shrinks, moves, bounces or
changes colour) and leaves. Between these episodes lie idle stretches of empty scene of uneven
length, and now and then the next shape comes in before the last has gone. A paragraph
describes the episodes in order, in varied words ("A red circle comes in from the left, grows
and leaves to the top."), with the true start and end of each: a shape is on screen exactly
during its episode, so what is drawn is what is annotated.

The world is made for the demo's random C3D (no pretrained weights here): a random network's
features show which colours are on screen and where, much less how things move, so each
episode is visible by its shape's presence; the uneven idle stretches keep the position of a
sentence in its paragraph from giving its time away (bin/eval's dataset prior measures that).

`generate_world(folder, clips, seed)` writes, sized by C3D clips, videos/<id>.mp4, annotations/{train,val,test}.jsonl
(our JSONL format) and paragraphs/<id>.txt (the paragraph as plain text, for bin/ground).
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import numpy as np
from tqdm import tqdm

from hscnet.common import atomic
from hscnet.common.errors import InputError
from hscnet.extract.video import clip_count

WIDTH, HEIGHT, FPS = 192, 144, 8
COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 190, 60),
    "blue": (50, 90, 235),
    "yellow": (240, 215, 40),
    "purple": (150, 60, 210),
    "orange": (250, 140, 30),
    "white": (240, 240, 240),
    "cyan": (40, 205, 215),
}
SHAPES = ("circle", "square", "triangle")
SHAPE_SIZES = (16.0, 24.0)  # a shape's half-width in pixels, drawn uniformly
SIDES = ("left", "right", "top", "bottom")
DIRECTIONS = {"up": (0, -1), "down": (0, 1), "left": (-1, 0), "right": (1, 0)}
ENTER = ["comes in from the {side}", "enters from the {side}", "slides in from the {side}"]
LEAVE = ["leaves to the {side}", "exits on the {side}", "goes out to the {side}"]
ACT = {
    "grow": ["grows", "gets bigger", "expands"],
    "shrink": ["shrinks", "gets smaller", "becomes small"],
    "move": ["moves {direction}", "slides {direction}", "drifts {direction}"],
    "bounce": ["bounces", "jumps up and down", "hops"],
    "recolour": ["turns {new}", "changes colour to {new}", "becomes {new}"],
}
SENTENCES = [
    "{A} {colour} {shape} {enter}, {act} and {leave}.",
    "{A} {colour} {shape} {enter}; it {act}, then {leave}.",
    "Next, {a} {colour} {shape} {enter}, {act} and {leave}.",
    "Then {a} {colour} {shape} {enter}, and it {act} before it {leave}.",
]
SPLITS = {"train": 0.75, "val": 0.125, "test": 0.125}
# C3D sees the centre 112x112 of the frame scaled to 171x128: in this frame's pixels, x in
# [33, 159] and y in [9, 135]. Shapes act inside it; they come in and leave across its edges.
VISIBLE_X, VISIBLE_Y = (36.0, 156.0), (12.0, 132.0)
_PIXEL_FORMATS = {"mjpeg": "yuvj420p"}


@dataclass(frozen=True)
class WorldShape:
    """How the stories of a world are drawn: the number of episodes a video has, the longest idle
    stretch before the first and after the last episode and between two episodes (seconds), and how
    often an idle stretch is short (under 1.5 s)."""

    episodes: tuple[int, int] = (2, 4)
    idle_at_ends: float = 10.0
    idle_between: float = 8.0
    short_idle: float = 0.5


DEMO_SHAPE = WorldShape()


@dataclass
class ShapeState:
    """Where a shape is and how it looks."""

    kind: str
    x: float
    y: float
    size: float
    rgb: tuple[float, float, float]
    lift: float = 0.0  # vertical offset of a bounce in progress


@dataclass
class Episode:
    """One shape's time on screen: keyframes (time, state) in, after coming in, after acting, out."""

    action: str
    sentence: str
    keyframes: list[tuple[float, ShapeState]]
    hops: int = 0

    @property
    def start(self) -> float:
        return self.keyframes[0][0]

    @property
    def end(self) -> float:
        return self.keyframes[-1][0]

    def _between(self, a: ShapeState, b: ShapeState, p: float, bouncing: bool) -> ShapeState:
        def mix(u: float, v: float) -> float:
            return u + (v - u) * p

        rgb = tuple(mix(u, v) for u, v in zip(a.rgb, b.rgb, strict=True))
        state = replace(a, x=mix(a.x, b.x), y=mix(a.y, b.y), size=mix(a.size, b.size), rgb=rgb)
        if self.action == "bounce" and bouncing:
            state.lift = -abs(math.sin(p * math.pi * self.hops)) * 26.0
        return state

    def state_at(self, t: float) -> ShapeState | None:
        """The shape at time t: None off its episode, else linear between keyframes (a bounce arcs)."""
        if not self.start <= t <= self.end:
            return None
        for (t0, a), (t1, b) in itertools.pairwise(self.keyframes):
            if t <= t1:
                return self._between(a, b, (t - t0) / (t1 - t0), bouncing=t0 == self.keyframes[1][0])
        return self.keyframes[-1][1]


@dataclass
class Scene:
    video: str
    duration: float
    episodes: list[Episode]  # in order of their start

    def states_at(self, t: float) -> list[ShapeState]:
        return [state for episode in self.episodes if (state := episode.state_at(t)) is not None]

    def paragraph(self) -> dict:
        return {
            "video": self.video,
            "duration": round(self.duration, 3),
            "sentences": [e.sentence for e in self.episodes],
            "timestamps": [[round(e.start, 3), round(e.end, 3)] for e in self.episodes],
        }


def _inside(rng: np.random.Generator, size: float) -> tuple[float, float]:
    """A random place inside C3D's view."""
    return (
        float(rng.uniform(VISIBLE_X[0] + size, VISIBLE_X[1] - size)),
        float(rng.uniform(VISIBLE_Y[0] + size, VISIBLE_Y[1] - size)),
    )


def _offscreen(side: str, x: float, y: float, size: float) -> tuple[float, float]:
    margin = size + 4
    return {"left": (-margin, y), "right": (WIDTH + margin, y), "top": (x, -margin), "bottom": (x, HEIGHT + margin)}[
        side
    ]


def idle_stretch(rng: np.random.Generator, longest: float, short_share: float) -> float:
    """An idle stretch of empty scene: often short, else up to `longest`. Seconds of idle scene cost
    C3D clips and tell nothing; their unevenness is what keeps a sentence's place in its paragraph
    from giving its time away (the dataset prior of bin/eval)."""
    return float(rng.uniform(0.0, 1.5)) if rng.random() < short_share else float(rng.uniform(2.0, longest))


def make_scene(video: str, rng: np.random.Generator, shape: WorldShape = DEMO_SHAPE) -> Scene:
    """A random story of episodes with uneven idle stretches and some overlaps."""
    count = int(rng.integers(shape.episodes[0], shape.episodes[1] + 1))
    colours = [str(c) for c in rng.choice(list(COLOURS), size=count, replace=False)]
    spare = [str(c) for c in rng.choice([c for c in COLOURS if c not in colours], size=count)]  # what one turns into
    episodes: list[Episode] = []
    t = idle_stretch(rng, shape.idle_at_ends, shape.short_idle)
    for k in range(count):
        overlap = bool(episodes) and rng.random() < 0.3
        previous = episodes[-1] if episodes else None
        start = previous.start + (previous.end - previous.start) * float(rng.uniform(0.3, 0.7)) if overlap else t
        episode = _episode(colours[k], spare[k], start, start + float(rng.uniform(3.0, 8.0)), rng)
        episodes.append(episode)
        t = max(t, episode.end) + idle_stretch(rng, shape.idle_between, shape.short_idle)
    episodes.sort(key=lambda e: (e.start, e.end))
    ending = idle_stretch(rng, shape.idle_at_ends, shape.short_idle)
    return Scene(video, max(e.end for e in episodes) + ending, episodes)


def _episode(colour: str, spare_colour: str, start: float, end: float, rng: np.random.Generator) -> Episode:
    kind, size = str(rng.choice(SHAPES)), float(rng.uniform(*SHAPE_SIZES))
    side_in, side_out = str(rng.choice(SIDES)), str(rng.choice(SIDES))
    action = str(rng.choice(list(ACT)))
    x, y = _inside(rng, size)
    arrived = ShapeState(kind, x, y, size, tuple(float(c) for c in COLOURS[colour]))
    acted, words = replace(arrived), {}
    if action == "grow":
        acted.size = size * 1.6
    elif action == "shrink":
        acted.size = size * 0.6
    elif action == "recolour":
        acted.rgb, words = tuple(float(c) for c in COLOURS[spare_colour]), {"new": spare_colour}
    elif action == "move":
        name = str(rng.choice(list(DIRECTIONS)))
        dx, dy = DIRECTIONS[name]
        acted.x = min(max(x + dx * 50, VISIBLE_X[0] + size), VISIBLE_X[1] - size)
        acted.y = min(max(y + dy * 50, VISIBLE_Y[0] + size), VISIBLE_Y[1] - size)
        if abs(acted.x - x) + abs(acted.y - y) < 20:  # against the edge of the view: the other way
            name = {"up": "down", "down": "up", "left": "right", "right": "left"}[name]
            acted.x = min(max(x - dx * 50, VISIBLE_X[0] + size), VISIBLE_X[1] - size)
            acted.y = min(max(y - dy * 50, VISIBLE_Y[0] + size), VISIBLE_Y[1] - size)
        words = {"direction": name if name in ("up", "down") else f"to the {name}"}
    came_in = replace(arrived, x=_offscreen(side_in, x, y, size)[0], y=_offscreen(side_in, x, y, size)[1])
    going = _offscreen(side_out, acted.x, acted.y, acted.size)
    gone = replace(acted, x=going[0], y=going[1])
    duration = end - start
    arrive_at = start + duration * float(rng.uniform(0.2, 0.3))
    leave_at = end - duration * float(rng.uniform(0.2, 0.3))
    article = "an" if colour[0] in "aeiou" else "a"
    sentence = str(rng.choice(SENTENCES)).format(
        a=article,
        A=article.capitalize(),
        colour=colour,
        shape=kind,
        enter=str(rng.choice(ENTER)).format(side=side_in),
        act=str(rng.choice(ACT[action])).format(**words),
        leave=str(rng.choice(LEAVE)).format(side=side_out),
    )
    keyframes = [(start, came_in), (arrive_at, arrived), (leave_at, acted), (end, gone)]
    return Episode(action, sentence, keyframes, hops=int(rng.integers(2, 4)))


def render(states: list[ShapeState], background: np.ndarray) -> np.ndarray:
    """One RGB frame [HEIGHT, WIDTH, 3]."""
    frame = background.copy()
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH]
    for state in states:  # a shape off screen gives an empty mask
        cx, cy, r = state.x, state.y + state.lift, state.size
        if state.kind == "circle":
            mask = (xs - cx) ** 2 + (ys - cy) ** 2 <= r * r
        elif state.kind == "square":
            mask = (np.abs(xs - cx) <= r * 0.85) & (np.abs(ys - cy) <= r * 0.85)
        else:  # an upright triangle
            mask = (ys <= cy + r * 0.8) & (ys >= cy - r) & (np.abs(xs - cx) <= (ys - (cy - r)) * 0.6)
        frame[mask] = np.asarray(state.rgb, dtype=np.float32)
    return frame.astype(np.uint8)


def frames_of(scene: Scene, rng: np.random.Generator) -> Iterable[np.ndarray]:
    top, bottom = rng.uniform(10, 60, 3), rng.uniform(10, 60, 3)
    background = np.linspace(top, bottom, HEIGHT, dtype=np.float32)[:, None, :].repeat(WIDTH, axis=1)
    for index in range(round(scene.duration * FPS)):
        yield render(scene.states_at(index / FPS), background)


def write_video(
    path: str | os.PathLike,
    frames: Iterable[np.ndarray],
    fps: float,
    codec: str = "libx264",
    options: dict | None = None,
    timestamps: Iterable[float] | None = None,
) -> Path:
    """Encode RGB uint8 frames [H, W, 3] with PyAV (FFmpeg inside: no system ffmpeg needed), atomically.

    `timestamps` (seconds, one per frame) makes a variable-frame-rate video, `fps` then its nominal
    rate; they are kept to the millisecond, and need not start at 0."""
    import av

    path = Path(path)
    frames = iter(frames)
    first = next(frames)
    times = iter(timestamps) if timestamps is not None else None
    with (
        _scheduling_kept(),
        atomic.atomic_path(path) as tmp,
        av.open(str(tmp), mode="w", format=_container_format(path)) as container,
    ):
        stream = container.add_stream(codec, rate=_rate(fps), options=options or {})
        stream.height, stream.width = first.shape[:2]
        stream.pix_fmt = _PIXEL_FORMATS.get(codec, "yuv420p")
        if times is not None:
            stream.codec_context.time_base = stream.time_base = MILLISECOND
        for frame in itertools.chain([first], frames):
            video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            if times is not None:
                video_frame.pts, video_frame.time_base = round(next(times) * 1000), MILLISECOND
            for packet in stream.encode(video_frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


MILLISECOND = Fraction(1, 1000)


@contextlib.contextmanager
def _scheduling_kept():
    """Put the calling thread's scheduling back as it was. SVT-AV1 (libsvtav1), run as root, raises the thread
    that opens it to real-time priority (SCHED_FIFO 99) and leaves it there: every process started from it
    afterwards inherits that, and on a 2-core machine two such busy processes starve everything else, a
    browser's start among them."""
    if not hasattr(os, "sched_getscheduler"):  # Linux only
        yield
        return
    policy, param = os.sched_getscheduler(0), os.sched_getparam(0)
    try:
        yield
    finally:
        if (os.sched_getscheduler(0), os.sched_getparam(0)) != (policy, param):
            os.sched_setscheduler(0, policy, param)


def _rate(fps: float):
    return Fraction(fps).limit_denominator(1001)


def _container_format(path: Path) -> str:
    return {".mkv": "matroska", ".webm": "webm", ".avi": "avi", ".mov": "mov"}.get(path.suffix.lower(), "mp4")


def split_of(index: int, count: int) -> str:
    """train, val or test by position, so a seed's test videos are fixed and never trained on."""
    bounds = np.cumsum([round(count * share) for share in SPLITS.values()])
    return next((name for name, bound in zip(SPLITS, bounds, strict=True) if index < bound), "test")


def scene_clips(scene: Scene) -> int:
    """The C3D clips bin/extract will cut from the scene's video (16 frames every 16)."""
    return clip_count(round(scene.duration * FPS), 16, 16)


def plan_world(clips: int, seed: int = 0, shape: WorldShape = DEMO_SHAPE) -> list[Scene]:
    """Scenes, drawn in order, until their videos hold `clips` C3D clips: the world is sized by what
    extraction costs (C3D's time goes per clip), not by its number of videos."""
    scenes: list[Scene] = []
    total = 0
    while total < clips:
        scene = make_scene(f"demo_{len(scenes):04d}", np.random.default_rng([seed, len(scenes)]), shape)
        scenes.append(scene)
        total += scene_clips(scene)
    return scenes


def generate_world(
    folder: str | os.PathLike,
    clips: int = 600,
    seed: int = 0,
    progress: bool = True,
    shape: WorldShape = DEMO_SHAPE,
) -> dict[str, list[dict]]:
    """Write videos holding about `clips` C3D clips, with their paragraphs; returns the paragraphs of each split."""
    folder = Path(folder)
    # Videos already written are kept (a rerun resumes), so they must be of the same world.
    made = {"clips": clips, "seed": seed, "fps": FPS, "shape": dataclasses.asdict(shape)}
    record = folder / "world.json"
    if (folder / "videos").is_dir() and (
        not record.is_file() or json.loads(record.read_text()) != json.loads(json.dumps(made))
    ):
        raise InputError(
            f"{folder}: holds a demo world of other settings or of an earlier version; remove it (make clean-demo)"
        )
    atomic.write_json(record, made)
    scenes = plan_world(clips, seed, shape)
    splits: dict[str, list[dict]] = {name: [] for name in SPLITS}
    for index, scene in enumerate(tqdm(scenes, desc="demo videos", unit="video", disable=not progress)):
        rng = np.random.default_rng([seed, index, 1])  # the frames' background
        path = folder / "videos" / f"{scene.video}.mp4"
        if not path.exists():
            write_video(path, frames_of(scene, rng), FPS, options={"crf": "20", "x264-params": "log-level=error"})
        paragraph = scene.paragraph()
        splits[split_of(index, len(scenes))].append(paragraph)
        atomic.write_text(folder / "paragraphs" / f"{scene.video}.txt", " ".join(paragraph["sentences"]) + "\n")
    for name, paragraphs in splits.items():
        atomic.write_text(folder / "annotations" / f"{name}.jsonl", "".join(json.dumps(p) + "\n" for p in paragraphs))
    return splits
