"""Proxy features: the real paragraph annotations, with synthetic clip features that carry them.

Where the released C3D features are not at hand, real-scale
training is shown on a stand-in: a feature store with one file per real video, as many clips
as the video's real duration gives (one per 16 frames at 30 fps), in which every clip holds a
noisy trace of the words of the sentences whose span covers it. Each content word has its own
random direction in feature space; each video adds its own background and every clip its own
noise. Overlapping sentences overlap in the features as they do in the videos. A video that
several paragraphs describe (ActivityNet's val_1 and val_2 annotate the same videos; TACoS has
several annotators) carries the traces of all of them.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from hscnet.annotations import Paragraph
from hscnet.extract.spec import FeatureSpec
from hscnet.extract.store import FeatureStore, ManifestRecord
from hscnet.text import tokenize

CLIPS_PER_SECOND = 30 / 16  # C3D clips of 16 frames at 30 fps
# Words that describe no visual content: no trace of their own.
STOPWORDS = frozenset(
    (
        "a an the and or but then than of to in on at by for with from into onto over is are was were be been being "
        "it its he she his her they them their this that these those there here as so while when after before "
        "again also very just up down out off"
    ).split()
)


def word_direction(word: str, dim: int, seed: int) -> np.ndarray:
    """A fixed random unit vector for a word (the same in every video and every run)."""
    digest = hashlib.sha256(f"{seed}:{word}".encode()).digest()
    vector = np.random.default_rng(int.from_bytes(digest[:8], "little")).standard_normal(dim)
    return vector / np.linalg.norm(vector)


def proxy_features(
    sentences: list[tuple[str, float, float]],
    duration: float,
    dim: int,
    rng: np.random.Generator,
    seed: int,
    *,
    signal: float = 1.0,
    background: float = 1.0,
    noise: float = 1.5,
) -> np.ndarray:
    """[T, dim] float16 clips of one video from its (sentence, start, end) annotations.

    `signal`, `background` and `noise` are the norms of a sentence's trace, the video's
    background and a clip's noise.
    """
    rows = max(1, round(duration * CLIPS_PER_SECOND))
    centres = (np.arange(rows) + 0.5) / CLIPS_PER_SECOND
    base = rng.standard_normal(dim)
    features = np.tile(background * base / np.linalg.norm(base), (rows, 1))
    features += rng.standard_normal((rows, dim)) * (noise / np.sqrt(dim))
    for text, start, end in sentences:
        words = [w for w in tokenize(text) if w not in STOPWORDS] or tokenize(text)
        if not words:
            continue
        trace = np.sum([word_direction(w, dim, seed) for w in words], axis=0)
        covered = (centres >= start) & (centres <= end)
        features[covered] += signal * trace / np.linalg.norm(trace)
    return features.astype(np.float16)


def write_proxy_store(
    paragraph_sets: Iterable[list[Paragraph]],
    folder: str | Path,
    dim: int = 500,
    seed: int = 0,
    progress: bool = True,
    **levels,
) -> FeatureStore:
    """Write the proxy feature file of every video of the given annotation sets (skipping those written)."""
    by_video: dict[str, list] = defaultdict(list)
    durations: dict[str, float] = {}
    for paragraphs in paragraph_sets:
        for paragraph in paragraphs:
            durations[paragraph.video] = paragraph.duration
            by_video[paragraph.video] += [
                (t, s, e) for t, (s, e) in zip(paragraph.sentences, paragraph.timestamps, strict=True)
            ]
    store = FeatureStore(folder, create=True)
    spec = FeatureSpec(backbone="proxy", layer="words", weights=f"proxy seed {seed}", dim=dim)
    for video in tqdm(sorted(by_video), desc="proxy features", unit="video", disable=not progress):
        if video in store:
            continue
        rng = np.random.default_rng(int.from_bytes(hashlib.sha256(f"{seed}/{video}".encode()).digest()[:8], "little"))
        features = proxy_features(by_video[video], durations[video], dim, rng, seed, **levels)
        store.write(video, features)
        store.append(
            ManifestRecord(
                video_id=video,
                source="proxy",
                status="ok",
                spec=spec,
                duration=durations[video],
                clips=len(features),
            )
        )
    return store
