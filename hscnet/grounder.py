"""The Python API: a trained model with its video extractor, loaded once, for any number of videos.

    from hscnet import Grounder

    grounder = Grounder.from_checkpoint("demo/run/last.pt")
    result = grounder.ground("video.mp4", "A red circle comes in. Then it leaves.")
    for sentence in result["sentences"]:
        print(sentence["start"], sentence["end"], sentence["text"])

`ground` returns the dict that `bin/ground --json` writes; `encode_video` gives a video's
features, which `ground` also takes, so that one video is extracted once for many paragraphs.
`read_features` reads features made elsewhere (a `.npy` of [T, D]): the only way to ground with a
model trained on imported features (`bin/extract --import`), which this tool cannot make from a video.
A new video is extracted with the feature spec the checkpoint was trained on; a checkpoint whose
features cannot be made again here (released HDF5 features, proxy features) is refused, and so are
C3D weights or a PCA file other than the ones the spec names.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from tqdm import tqdm

from hscnet.checkpoint import TrainedModel, load_model
from hscnet.common.devices import resolve_device
from hscnet.common.errors import InputError
from hscnet.common.wording import count
from hscnet.extract.backbones import BACKBONES, C3D_LAYERS
from hscnet.extract.c3d import C3DEncoder, load_c3d, load_pca
from hscnet.extract.encoders import build_encoder
from hscnet.extract.extractor import extract_video, read_clips
from hscnet.extract.imported import is_imported, read_feature_file
from hscnet.extract.nvdec import decoder_for
from hscnet.extract.settings import ExtractSettings
from hscnet.extract.spec import RANDOM_WEIGHTS, RELEASED_ACTIVITYNET, FeatureSpec, file_identity
from hscnet.extract.store import video_id_for
from hscnet.extract.video import VideoInfo, clip_count, frame_sequence
from hscnet.infer import ground_paragraph
from hscnet.text import PAD, UNK, Vocabulary, english, load_word_vectors, parse_paragraph

if TYPE_CHECKING:  # pytorchvideo: imported only where a Kinetics backbone runs
    from hscnet.extract.kinetics import KineticsEncoder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EncodedVideo:
    """A video's features as extracted ([clips, D], before the model's resampling), its length, and the
    time of its first frame in the file (where a player's clock stands there)."""

    name: str
    features: np.ndarray
    duration: float
    start: float = 0.0


UNKNOWN_WARNING_SHARE = 0.5  # a paragraph with at least this share of unknown words is grounded with a warning
# A paragraph longer than the trained length with fewer of the model's clips a sentence than this is grounded with a
# warning: at 1.3 a sentence the demo model's story reading fell far below the even split, at 5 and more the proxy
# model's beat it (docs/results.md, long paragraphs).
MIN_CLIPS_PER_SENTENCE = 4


def extraction_settings(
    spec: FeatureSpec | None, checkpoint: str, weights: str | None, pca: str | None, device: str
) -> ExtractSettings:
    """The settings that extract a new video as the checkpoint's training features were, or a clear refusal."""
    if spec is None:
        raise InputError(
            f"{checkpoint}: trained on features whose making is unknown (released HDF5 features other than "
            "ActivityNet's, such as TACoS's 64-frame TALL windows); bin/ground needs a checkpoint trained on "
            "a feature store written by bin/extract or on the released ActivityNet features"
        )
    if spec.backbone not in BACKBONES:
        raise InputError(f"{checkpoint}: trained on {spec.backbone} features, which bin/ground cannot extract")
    if spec == RELEASED_ACTIVITYNET:
        return _released_activitynet_settings(checkpoint, weights, pca, device)
    network = spec.backbone if spec.backbone != "c3d" else "C3D"
    if spec.weights != RANDOM_WEIGHTS:
        if not weights:
            raise InputError(
                f"{checkpoint}: trained on features of {network} weights {spec.weights}; give them with --weights"
            )
        if not Path(weights).is_file():
            raise InputError(f"{weights}: {network} weights not found")
        if file_identity(weights) != spec.weights:
            raise InputError(
                f"{weights}: these {network} weights ({file_identity(weights)}) are not the checkpoint's "
                f"({spec.weights})"
            )
    elif weights:
        raise InputError(
            f"{checkpoint}: trained on features of a random {network}; --weights {weights} would not match them"
        )
    if spec.pca and not pca:
        raise InputError(f"{checkpoint}: trained on features projected with the PCA {spec.pca}; give it with --pca")
    if pca:
        if not Path(pca).is_file():
            raise InputError(f"{pca}: PCA file not found")
        if f"{file_identity(pca)} to {spec.dim}" != spec.pca:
            raise InputError(f"{pca}: not the PCA the checkpoint's features were projected with ({spec.pca or 'none'})")
    return ExtractSettings.from_spec(spec, weights=weights or "", pca=pca or "", device=device)


def _released_activitynet_settings(checkpoint: str, weights: str | None, pca: str | None, device: str):
    """The released ActivityNet recipe, with the user's Sports-1M C3D and official PCA files, checked by content."""
    if not weights or not pca:
        raise InputError(
            f"{checkpoint}: trained on the released ActivityNet features (Sports-1M C3D fc7, PCA to 500); "
            "give the C3D weights and the PCA file with --weights c3d.pickle --pca PCA_activitynet_v1-3.hdf5"
        )
    load_c3d(weights)  # keys and shapes of the converted Sports-1M C3D, or a one-line refusal
    import h5py

    try:
        with h5py.File(pca, "r") as f:
            has_layout = all(f"data/{name}" in f for name in ("U", "S", "x_mean"))
    except OSError as error:
        raise InputError(f"{pca}: not a readable HDF5 file ({error})") from error
    if not has_layout:
        raise InputError(f"{pca}: not the official ActivityNet PCA file (data/U, data/S and data/x_mean)")
    spec = RELEASED_ACTIVITYNET
    load_pca(pca, spec.dim, C3D_LAYERS[spec.layer])  # U [4096, >= 500], x_mean [4096], or a one-line refusal
    return ExtractSettings.from_spec(spec, weights=weights, pca=pca, device=device)


class Grounder:
    """A trained HSCNet and the extractor of its features, ready to ground raw videos."""

    def __init__(self, trained: TrainedModel, settings: ExtractSettings | None, device: torch.device):
        """`settings` None: the model's features cannot be extracted here (imported ones), only read."""
        self.trained, self.settings, self.device = trained, settings, device
        # spaCy takes about a second to import and build: let that happen while the backbone loads and decodes.
        self._text_ready = threading.Thread(target=english, daemon=True)
        self._text_ready.start()
        # The files' own identities, also where the checkpoint names a released recipe.
        self.spec = settings.spec() if settings is not None else trained.feature_spec
        if settings is not None:
            settings.check_files()  # a missing weights or PCA file fails here, before any video is read
        self._encoder = None  # built for the first video: features given (--features) or extracted by Ray
        # (--batch) never need it here, nor its load time, nor its warning about random weights

    @property
    def encoder(self) -> C3DEncoder | KineticsEncoder | None:
        """The backbone that extracts this model's features from a video; None where it cannot be made here."""
        if self._encoder is None and self.settings is not None:
            self._encoder = build_encoder(self.settings)
        return self._encoder

    @classmethod
    def from_checkpoint(
        cls, path: str | os.PathLike, weights: str | None = None, pca: str | None = None, device: str = "auto"
    ) -> Grounder:
        """Load the model and its vocabulary once, and its extractor at the first video. `weights` and `pca` are
        the files the checkpoint's features were made with, when they were not a random C3D without projection."""
        torch_device = resolve_device(device)
        trained = load_model(path, torch_device)
        if is_imported(trained.feature_spec):
            if weights or pca:
                raise InputError(f"{path}: trained on features made elsewhere; --weights and --pca are for extraction")
            return cls(trained, None, torch_device)
        return cls(
            trained, extraction_settings(trained.feature_spec, str(path), weights, pca, str(torch_device)), torch_device
        )

    def encode_video(self, video: str | os.PathLike, *, progress: bool = False) -> EncodedVideo:
        """Decode a video and extract its features with the checkpoint's spec; `progress` shows a bar of its
        clips (a long video takes minutes on a CPU). A video that ends before its container says is
        extracted, with a warning."""
        if self.encoder is None:
            raise InputError(
                f"{video}: the model was trained on features made elsewhere, {self.spec.describe()}, which this "
                "tool cannot make from a video; give the video's features with --features FILE.npy --duration S"
            )
        bar = tqdm(unit="clip", desc=f"extracting {Path(video).name}", disable=not progress, leave=False)
        decoder = self.settings.decoder
        if decoder == "nvdec":
            decoder = decoder_for(video)

        def decode(info: VideoInfo):
            bar.total = clip_count(
                len(frame_sequence(info, self.spec.sample_fps)), self.spec.clip_len, self.spec.stride
            )
            bar.refresh()
            yield from read_clips(video, self.spec, info, decoder)

        def encode(clips: np.ndarray) -> np.ndarray:
            features = self.encoder.encode(clips)
            bar.update(len(clips))
            return features

        try:
            features, record = extract_video(video, video_id_for(video), encode, self.spec, decode, decoder)
        finally:
            bar.close()
        if features is None:
            raise InputError(record.error)
        if record.warning:
            log.warning(f"{video}: {record.warning}")
        return EncodedVideo(Path(video).name, features, record.duration, record.start)

    def read_features(
        self, path: str | os.PathLike, duration: float | None = None, *, transposed: bool = False
    ) -> EncodedVideo:
        """A video's features from a `.npy` file ([T, D], or [D, T] `transposed`), checked against the model's
        feature size. `duration` in seconds; None takes it from the rows, where the features' spec says the
        seconds a row covers."""
        features = read_feature_file(path, transposed=transposed, dim=self.trained.config.data.feature_dim)
        if duration is None:
            if not (is_imported(self.spec) and self.spec.sample_fps):
                raise InputError(f"{path}: give the video's duration (--duration S): the rows' times are not known")
            duration = len(features) / self.spec.sample_fps
        if not duration > 0:
            raise InputError(f"{path}: duration {duration} must be above 0")
        return EncodedVideo(Path(path).name, features, float(duration))

    def ground(
        self,
        video: str | os.PathLike | EncodedVideo,
        paragraph: str | Sequence[str],
        *,
        progress: bool = False,
        reading: str = "story",
    ) -> dict:
        """A start and end time (seconds) for the paragraph, each sentence and each word; `paragraph` is
        text (split into sentences by spaCy) or a list of sentences (kept as given). A paragraph most of
        whose words the model does not know is grounded with a warning: its spans mean little. A paragraph
        longer than the trained length is read as `reading` says (`hscnet.infer`: one story by default), with a
        warning where the model's clips are too few for its sentences."""
        self._text_ready.join()
        parsed = parse_paragraph(paragraph)  # a paragraph that cannot be read fails before the video is read
        if not isinstance(video, EncodedVideo):
            video = self.encode_video(video, progress=progress)
        self.learn_words(parsed.words)
        words = [word for sentence in parsed.sentences for word in sentence]
        unknown = sum(word not in self.trained.vocab.index for word in words)
        if words and unknown / len(words) >= UNKNOWN_WARNING_SHARE:
            log.warning(
                f"{unknown} of the paragraph's {count(len(words), 'word')} ({unknown / len(words):.0%}) are unknown "
                "to the model, which reads English through GloVe: the spans mean little"
            )
        sentences, clips = len(parsed.sentences), self.trained.config.data.num_clips
        if sentences > self.trained.config.data.max_sentences and clips < MIN_CLIPS_PER_SENTENCE * sentences:
            log.warning(
                f"{video.name}: {sentences} sentences over the model's {clips} clips ({clips / sentences:.1f} a "
                "sentence) are too coarse to tell the events apart: the spans may be worse than an even split"
            )
        texts = list(parsed.texts)
        result = ground_paragraph(self.trained, video.features, video.duration, texts, video=video.name,
                                  device=self.device, reading=reading)  # fmt: skip
        return {**result, "video_start": round(video.start, 3)}

    def learn_words(self, words: Sequence[str]) -> list[str]:
        """Give words the vocabulary lacks their GloVe vectors (the checkpoint's GloVe source), where GloVe
        has them: the word vectors are frozen and carry no labels, so such a word is as known as any.
        Returns the words added; words GloVe lacks stay unknown."""
        vocab = self.trained.vocab
        new = sorted(set(words) - set(vocab.words))
        glove = self.trained.config.text.glove
        if not new or (glove and not Path(glove).is_file()):
            if new:
                log.warning(f"{glove}: GloVe file not found; {len(new)} words the model never saw stay unknown")
            return []
        vectors = load_word_vectors(
            Vocabulary([PAD, UNK, *new]), glove or None, self.trained.config.text.cache_dir or None
        )
        lacking = set(vectors.missing)
        found = [word for word in new if word not in lacking]
        if found:
            rows = torch.from_numpy(vectors.matrix[[2 + new.index(word) for word in found]])
            model = self.trained.model
            embedding = model.text_encoder.embedding
            weight = torch.cat([embedding.weight.detach(), rows.to(embedding.weight)])
            model.text_encoder.embedding = torch.nn.Embedding.from_pretrained(weight, freeze=True, padding_idx=0)
            model.args = replace(model.args, vocab_size=len(weight))
            self.trained.vocab = Vocabulary([*vocab.words, *found])
        return found
